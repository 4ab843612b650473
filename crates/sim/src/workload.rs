//! Workloads of stateful chains: seed 003's, made from a Spår trace of DAG
//! jobs as its simulator made them (StateSim v1.1.1, `job.cpp`; see
//! `docs/seed-003-statesim.md`, §4).
//!
//! A job of the trace is a DAG of tasks. Its chain is its first task and
//! every task that depends on it, directly or not, in the order of their
//! numbers; the tasks a chain task depends on that are not in the chain
//! become the job's states, which the chain task reads and writes. A job
//! without states is left out of the pool (the seed studies stateful
//! chains).

use crate::topology::InputError;
use std::collections::BTreeSet;
use std::path::Path;

/// How a trace's figures become operations and bytes (the seed's factors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factors {
    /// Operations per second of duration at one core (the seed: 1e5).
    pub ops: f64,
    /// Bytes of argument per unit of requested memory (the seed: 1e6).
    pub arg: f64,
    /// Bytes of state per unit of requested memory (the seed: 1e6).
    pub state: f64,
}

impl Default for Factors {
    fn default() -> Self {
        Factors {
            ops: 1e5,
            arg: 1e6,
            state: 1e6,
        }
    }
}

/// One invocation of a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Operations it runs.
    pub ops: u64,
    /// Bytes of its argument.
    pub arg_bytes: u64,
    /// The job's states it reads and writes (indices into [`Job::states`]).
    pub states: Vec<usize>,
}

/// A stateful chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its name in the trace (`j_N`).
    pub name: String,
    /// Its arrival, seconds from the trace's start.
    pub arrival_secs: f64,
    /// The chain, in order.
    pub chain: Vec<Task>,
    /// Bytes of each state.
    pub states: Vec<u64>,
    /// Bytes the chain returns to its client: its first argument's.
    pub return_bytes: u64,
}

/// The jobs a replication draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// The stateful jobs, in trace order.
    pub jobs: Vec<Job>,
    /// Jobs in the trace, stateful or not.
    pub traced: usize,
}

/// One task of a trace's job, before the chain is found.
#[derive(Debug, Clone, Default)]
struct Traced {
    ops: u64,
    mem: f64,
    deps: Vec<usize>,
}

impl Pool {
    /// The pool of a Spår `batch_task.csv`.
    pub fn from_spar(path: &Path, f: Factors) -> Result<Pool, InputError> {
        Pool::parse_spar(path, &crate::topology::read(path)?, f)
    }

    /// Seed 003's pool: the Spår trace the binary carries
    /// (`data/spar/batch_task.csv`), with the seed's factors.
    pub fn seed003() -> Result<Pool, InputError> {
        Pool::parse_spar(
            Path::new("data/spar/batch_task.csv"),
            include_str!("../../../data/spar/batch_task.csv"),
            Factors::default(),
        )
    }

    /// The pool of a Spår trace's `text`, `path` naming it in errors.
    pub fn parse_spar(path: &Path, text: &str, f: Factors) -> Result<Pool, InputError> {
        let bad = |line: usize, message: String| InputError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut jobs = Vec::new();
        let mut traced = 0;
        // The job being read: its name, arrival and tasks by index.
        let mut current: Option<(String, f64, Vec<Traced>)> = None;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                break;
            }
            let fields: Vec<&str> = line.split(',').collect();
            let [arrival, job, task, duration, cpu, mem, _instances] = fields[..] else {
                return Err(bad(
                    n,
                    format!(
                        "{} fields; a task is `arrival,job,task,duration,cpu,memory,instances`",
                        fields.len()
                    ),
                ));
            };
            if !job.starts_with("j_") || task.is_empty() {
                return Err(bad(
                    n,
                    format!("job `{job}` is not `j_N`, or the task has no name"),
                ));
            }
            if task.contains("task_") {
                // An independent task, not part of a DAG.
                continue;
            }
            let number = |what: &str, text: &str| -> Result<f64, InputError> {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad(n, format!("{what} `{text}` is not a number ≥ 0")))
            };
            let (duration, cpu, mem) = (
                number("duration", duration)?,
                number("cpu", cpu)?,
                number("memory", mem)?,
            );
            let arrival = number("arrival", arrival)?;
            let mut parts = task.get(1..).unwrap_or_default().split('_');
            let index = |text: Option<&str>| -> Result<usize, InputError> {
                text.and_then(|t| t.parse::<usize>().ok())
                    .filter(|k| *k > 0)
                    .map(|k| k - 1)
                    .ok_or_else(|| {
                        bad(
                            n,
                            format!("task name `{task}`: not a letter, a number from 1 and `_N` dependencies"),
                        )
                    })
            };
            let k = index(parts.next())?;
            let deps = parts
                .map(|d| index(Some(d)))
                .collect::<Result<Vec<_>, _>>()?;
            if current.as_ref().is_none_or(|(name, _, _)| name != job) {
                if let Some(done) = current.take() {
                    traced += 1;
                    jobs.extend(chain_of(done, f));
                }
                current = Some((job.to_string(), arrival, Vec::new()));
            }
            if let Some((_, _, tasks)) = current.as_mut() {
                if tasks.len() <= k {
                    tasks.resize(k + 1, Traced::default());
                }
                tasks[k] = Traced {
                    ops: (0.5 + duration * cpu / 100.0 * f.ops).floor() as u64,
                    mem,
                    deps,
                };
            }
        }
        if let Some(done) = current.take() {
            traced += 1;
            jobs.extend(chain_of(done, f));
        }
        Ok(Pool { jobs, traced })
    }
}

/// The stateful chain of a traced job, if it has states.
fn chain_of((name, arrival, tasks): (String, f64, Vec<Traced>), f: Factors) -> Option<Job> {
    let bytes = |mem: f64, factor: f64| (0.5 + factor * mem).floor() as u64;
    // Task 0 and everything that depends on it.
    let mut chain: BTreeSet<usize> = BTreeSet::new();
    let mut frontier = vec![0];
    while let Some(cur) = frontier.pop() {
        if cur >= tasks.len() || !chain.insert(cur) {
            continue;
        }
        frontier.extend(
            tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.deps.contains(&cur))
                .map(|(i, _)| i),
        );
    }
    let states: Vec<usize> = chain
        .iter()
        .flat_map(|&c| tasks[c].deps.iter().copied())
        .filter(|d| !chain.contains(d))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if states.is_empty() {
        return None;
    }
    let chain: Vec<Task> = chain
        .iter()
        .map(|&c| Task {
            ops: tasks[c].ops,
            arg_bytes: bytes(tasks[c].mem, f.arg),
            states: tasks[c]
                .deps
                .iter()
                .filter_map(|d| states.iter().position(|s| s == d))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
        .collect();
    Some(Job {
        name,
        arrival_secs: arrival,
        return_bytes: chain.first().map_or(0, |t| t.arg_bytes),
        states: states
            .iter()
            .map(|&s| tasks.get(s).map_or(0, |t| bytes(t.mem, f.state)))
            .collect(),
        chain,
    })
}
