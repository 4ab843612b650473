//! `[workflows.NAME]`: a durable composition of functions, as a graph of
//! steps.
//!
//! ```toml
//! [workflows.thumbnail]
//! steps = ["resize", "detect", "store"]        # a sequence
//!
//! [workflows.report]
//! deadline = "1m"
//! steps = [
//!   "fetch",                                   # after nothing: the run's input
//!   { name = "score", function = "rank", after = ["fetch"], timeout = "5s" },
//!   { name = "enrich", function = "geo", after = ["fetch"], retry = { attempts = 5 } },
//!   { name = "merge", function = "merge", after = ["score", "enrich"] },
//! ]
//! ```
//!
//! A step is a function's name, or a table. A step's `after` defaults to
//! the step listed before it, so a list is a sequence; `after = []` starts
//! a step from the run's input. A step after one other step takes its
//! output as input; after several, a JSON object of their outputs by step
//! name (fan-in). The run's result is the output of `output` (default: the
//! last step listed).

use crate::caps::RetrySpec;
use crate::error::{FieldError, bad};
use crate::spec::{bounds, check_range};
use crate::units::{HumanDuration, Name};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Most steps of one workflow.
pub const MAX_STEPS: usize = 1000;

/// Longest overall deadline of a run: a year, as AWS Step Functions'
/// Standard workflows allow.
pub const MAX_RUN_DEADLINE: Duration = Duration::from_secs(365 * 86_400);

/// One workflow, as declared in `[workflows.NAME]` of `weft.toml` and as
/// sent to `PUT /v1/workflows/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// A line saying what the workflow does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// The steps: a function's name, or a table with `function` and
    /// optionally `name`, `after`, `timeout` and `retry`. A step runs after
    /// the one listed before it unless it says `after`.
    /// TOML: `steps = ["resize", "detect", "store"]`
    pub steps: Vec<StepDecl>,

    /// The time from a run's start within which it should finish; each
    /// step runs with what is left as its deadline, and a run still going
    /// then fails with `deadline_expired`. TOML: `deadline = "30s"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<HumanDuration>,

    /// The step whose output is the run's result. Default: the last step
    /// listed. TOML: `output = "store"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Name>,
}

/// A step as written: a function's name, or a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StepDecl {
    /// `"resize"`: the function of that name, a step of that name.
    Function(Name),
    /// `{ function = "resize", name = "small", after = [...] }`.
    Step(StepSpec),
}

/// A step written as a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The function the step invokes.
    pub function: Name,
    /// The step's name, unique in the workflow. Default: the function's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// The steps whose outputs it waits for. Default: the step listed
    /// before it (none for the first); `[]`: it starts from the run's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Name>>,
    /// The longest one attempt may take (at most the function's timeout,
    /// which stops the guest anyway). TOML: `timeout = "10s"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Attempts of the step, the first included, and the backoff between
    /// them. Default: the function's `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}

/// A string is a function's name; a table is a [`StepSpec`]. Written by
/// hand so that a bad table names its bad field (an untagged enum would
/// only say that no variant matched).
impl<'de> Deserialize<'de> for StepDecl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StepDecl;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a function's name or a table with `function`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StepDecl, E> {
                Name::new(s).map(StepDecl::Function).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<StepDecl, A::Error> {
                StepSpec::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(StepDecl::Step)
            }
        }
        d.deserialize_any(V)
    }
}

/// A workflow checked and resolved: every step with its name, function and
/// predecessors (by index), the result's step. What a node runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps in the order listed.
    pub steps: Vec<PlannedStep>,
    /// The index of the step whose output is the result.
    pub output: usize,
    /// The overall deadline.
    pub deadline: Option<Duration>,
}

/// One resolved step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    /// Its name.
    pub name: Name,
    /// The function it invokes.
    pub function: Name,
    /// The steps it waits for, by index.
    pub after: Vec<usize>,
    /// Its own timeout per attempt.
    pub timeout: Option<Duration>,
    /// Its own retry policy, if it has one.
    pub retry: Option<RetrySpec>,
}

impl StepDecl {
    fn function(&self) -> &Name {
        match self {
            StepDecl::Function(f) => f,
            StepDecl::Step(s) => &s.function,
        }
    }

    fn name(&self) -> &Name {
        match self {
            StepDecl::Function(f) => f,
            StepDecl::Step(s) => s.name.as_ref().unwrap_or(&s.function),
        }
    }
}

impl WorkflowSpec {
    /// A sequence of functions, each taking the output of the one before.
    pub fn sequence(functions: &[Name]) -> WorkflowSpec {
        WorkflowSpec {
            description: None,
            steps: functions.iter().cloned().map(StepDecl::Function).collect(),
            deadline: None,
            output: None,
        }
    }

    /// Checks every field and resolves the graph; the error names the field
    /// (its path below `[workflows.NAME]`): an empty or oversized list, a
    /// step named twice, an `after` naming no step or the step itself, a
    /// cycle (naming its steps in order), bad durations or retries.
    pub fn plan(&self) -> Result<Plan, FieldError> {
        if let Some(d) = &self.description
            && d.len() > 1024
        {
            return bad("description", "longer than 1024 bytes");
        }
        if self.steps.is_empty() {
            return bad("steps", "a workflow needs at least one step");
        }
        if self.steps.len() > MAX_STEPS {
            return bad(
                "steps",
                format!(
                    "{} steps: a workflow has at most {MAX_STEPS}",
                    self.steps.len()
                ),
            );
        }
        let deadline = match self.deadline {
            Some(HumanDuration(d)) => {
                check_range("deadline", d, bounds::MIN_TIMEOUT, MAX_RUN_DEADLINE)?;
                Some(d)
            }
            None => None,
        };
        let mut index: BTreeMap<&Name, usize> = BTreeMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            if let Some(first) = index.insert(s.name(), i) {
                let at = match s {
                    StepDecl::Step(t) if t.name.is_some() => format!("steps[{i}].name"),
                    _ => format!("steps[{i}]"),
                };
                return bad(
                    &at,
                    format!(
                        "step `{}` is already steps[{first}]: give one of them another `name`",
                        s.name()
                    ),
                );
            }
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let (after, timeout, retry) = match s {
                StepDecl::Function(_) => (None, None, None),
                StepDecl::Step(t) => (t.after.as_ref(), t.timeout, t.retry),
            };
            let after = match after {
                None => i.checked_sub(1).into_iter().collect(),
                Some(names) => {
                    let mut seen = Vec::with_capacity(names.len());
                    for (j, n) in names.iter().enumerate() {
                        let at = format!("steps[{i}].after[{j}]");
                        let Some(&k) = index.get(n) else {
                            return bad(&at, format!("no step is named `{n}`"));
                        };
                        if k == i {
                            return bad(&at, format!("step `{n}` cannot wait for itself"));
                        }
                        if seen.contains(&k) {
                            return bad(&at, format!("`{n}` is named twice"));
                        }
                        seen.push(k);
                    }
                    seen
                }
            };
            if let Some(HumanDuration(t)) = timeout {
                check_range(
                    &format!("steps[{i}].timeout"),
                    t,
                    bounds::MIN_TIMEOUT,
                    bounds::MAX_TIMEOUT,
                )?;
            }
            if let Some(r) = &retry {
                r.validate()
                    .map_err(|e| e.at(format!("steps[{i}].retry")))?;
            }
            steps.push(PlannedStep {
                name: s.name().clone(),
                function: s.function().clone(),
                after,
                timeout: timeout.map(|t| t.0),
                retry,
            });
        }
        if let Some(cycle) = find_cycle(&steps) {
            let names: Vec<&str> = cycle.iter().map(|&k| steps[k].name.as_str()).collect();
            return bad(
                "steps",
                format!(
                    "the steps wait for each other in a cycle: {} -> {}",
                    names.join(" -> "),
                    names[0]
                ),
            );
        }
        let output = match &self.output {
            None => steps.len() - 1,
            Some(n) => *index
                .get(n)
                .ok_or_else(|| FieldError::new(format!("no step is named `{n}`")).at("output"))?,
        };
        Ok(Plan {
            steps,
            output,
            deadline,
        })
    }
}

/// A cycle of `after` edges, as step indices in the order they wait (each
/// waits for the next), if there is one.
fn find_cycle(steps: &[PlannedStep]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; steps.len()];
    for start in 0..steps.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // Depth-first over `after`, with an explicit stack of (step, next
        // edge to follow): a 1,000-step chain must not overflow the stack.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (k, ref mut edge)) = path.last_mut() {
            if let Some(&next) = steps[k].after.get(*edge) {
                *edge += 1;
                match mark[next] {
                    Mark::New => {
                        mark[next] = Mark::OnPath;
                        path.push((next, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|&(s, _)| s == next).unwrap_or(0);
                        return Some(path[from..].iter().map(|&(s, _)| s).collect());
                    }
                    Mark::Done => {}
                }
            } else {
                mark[k] = Mark::Done;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(toml_steps: &str) -> Result<Plan, String> {
        let text = format!("steps = {toml_steps}\n");
        let spec: WorkflowSpec = toml::from_str(&text).map_err(|e| e.to_string())?;
        spec.plan().map_err(|e| e.to_string())
    }

    #[test]
    fn a_list_of_names_is_a_sequence() {
        let p = plan(r#"["resize", "detect", "store"]"#).unwrap_or_else(|e| panic!("{e}"));
        let after: Vec<Vec<usize>> = p.steps.iter().map(|s| s.after.clone()).collect();
        assert_eq!(after, vec![vec![], vec![0], vec![1]]);
        assert_eq!(p.output, 2);
    }

    #[test]
    fn tables_fan_out_and_in() {
        let p = plan(
            r#"["fetch",
               { name = "a", function = "score", after = ["fetch"] },
               { name = "b", function = "score", after = ["fetch"], timeout = "2s" },
               { function = "merge", after = ["a", "b"] }]"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.steps[3].after, vec![1, 2]);
        assert_eq!(p.steps[2].timeout, Some(Duration::from_secs(2)));
        assert_eq!(p.steps[1].function.as_str(), "score");
    }

    #[test]
    fn bad_graphs_name_the_field() {
        let cases = [
            ("[]", "steps: a workflow needs at least one step"),
            (r#"["a", "a"]"#, "steps[1]: step `a` is already steps[0]"),
            (
                r#"["a", { function = "b", after = ["c"] }]"#,
                "steps[1].after[0]: no step is named `c`",
            ),
            (
                r#"["a", { function = "b", after = ["b"] }]"#,
                "steps[1].after[0]: step `b` cannot wait for itself",
            ),
            (
                r#"[{ function = "a", after = ["c"] }, "b", "c"]"#,
                "steps: the steps wait for each other in a cycle: a -> c -> b -> a",
            ),
            (
                r#"["a", { function = "b", timeout = "2h" }]"#,
                "steps[1].timeout: 2h is not between",
            ),
            (
                r#"["a", { function = "b", retry = { attempts = 0, backoff = "1s", max_backoff = "1s" } }]"#,
                "steps[1].retry.attempts: 0 is not between 1 and 100",
            ),
            (r#"["A"]"#, "invalid name `A`"),
            (
                r#"[{ function = "a", colour = "red" }]"#,
                "unknown field `colour`",
            ),
            (r#"[3]"#, "a function's name or a table"),
        ];
        for (steps, want) in cases {
            let e = plan(steps)
                .err()
                .unwrap_or_else(|| panic!("{steps} passed"));
            assert!(e.contains(want), "{steps}: {e}");
        }
    }

    #[test]
    fn a_long_chain_has_no_cycle_and_no_deep_recursion() {
        let names: Vec<Name> = (0..MAX_STEPS)
            .map(|i| Name::new(&format!("s{i}")).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let p = WorkflowSpec::sequence(&names)
            .plan()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.steps.len(), MAX_STEPS);
        let mut too_many = names.clone();
        too_many.push(Name::new("extra").unwrap_or_else(|e| panic!("{e}")));
        let e = WorkflowSpec::sequence(&too_many).plan().unwrap_err();
        assert_eq!(e.field(), "steps");
    }

    #[test]
    fn output_and_deadline() {
        let spec: WorkflowSpec =
            toml::from_str("steps = [\"a\", \"b\"]\noutput = \"a\"\ndeadline = \"30s\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let p = spec.plan().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.output, p.deadline), (0, Some(Duration::from_secs(30))));
        let spec: WorkflowSpec =
            toml::from_str("steps = [\"a\"]\noutput = \"z\"\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            spec.plan().unwrap_err().to_string(),
            "output: no step is named `z`"
        );
    }
}
