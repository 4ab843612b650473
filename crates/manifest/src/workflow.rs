//! `[workflows.NAME]`: a durable composition of functions, as a graph of
//! steps, or as code (`function = "F"`: an orchestrator that takes durable
//! steps through `weft:fabric/durable`).
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
//!
//! [workflows.album]
//! steps = [
//!   "classify",
//!   { name = "photos", function = "resize", map = true, items = "/photos", concurrency = 8 },
//!   { name = "video", function = "transcode", after = ["classify"], when = { path = "/kind", equals = "video" } },
//! ]
//!
//! [workflows.order]
//! function = "checkout"                        # a workflow in code
//! deadline = "7d"
//! ```
//!
//! A step with `map = true` runs its function once per item of the list
//! in its input (or at `items`, a JSON pointer into it), at most
//! `concurrency` at once; its output is the JSON list of the items'
//! outputs, in order. A step with `when` runs only if its input passes the
//! test; otherwise it is *not taken*, and so is every step that waits only
//! for steps not taken (a choice between branches).
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

/// Most items one map step runs.
pub const MAX_MAP_ITEMS: usize = 10_000;

/// Most items of one map step running at once.
pub const MAX_MAP_CONCURRENCY: u32 = 1000;

/// Items of a map step running at once unless it says `concurrency`.
pub const DEFAULT_MAP_CONCURRENCY: u32 = 16;

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepDecl>,

    /// A workflow in code instead of `steps`: the function that
    /// orchestrates each run, taking durable steps through
    /// `weft:fabric/durable` (the SDK's `durable` module). Its answer is
    /// the run's result. TOML: `function = "checkout"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<Name>,

    /// The time from a run's start within which it should finish; each
    /// step runs with what is left as its deadline, and a run still going
    /// then fails with `deadline_expired`. TOML: `deadline = "30s"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<HumanDuration>,

    /// The step whose output is the run's result. Default: the last step
    /// listed. TOML: `output = "store"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Name>,

    /// Where a run's data may go, relative to the node it started at:
    /// `none` (default), `site` (only nodes of its site) or `tier` (only
    /// its tier). Every step (and an orchestrator's every call) is placed
    /// within it, beside its function's own `privacy`; a run is taken over
    /// only by a node within it; and a run starts only where the journal
    /// is kept within it. TOML: `privacy = "site"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<String>,
}

/// A step as written: a function's name, or a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StepDecl {
    /// `"resize"`: the function of that name, a step of that name.
    Function(Name),
    /// `{ function = "resize", name = "small", after = [...] }`.
    Step(Box<StepSpec>),
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
    /// Runs the function once per item of a JSON list in the step's input;
    /// the output is the list of the items' outputs, in order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub map: bool,
    /// Where the list is in the input, as a JSON pointer (RFC 6901).
    /// Default: the whole input. Only with `map`. TOML: `items = "/photos"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// Items running at once, 1 to 1000 (default 16). Only with `map`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The step runs only if its input passes this test; otherwise it is
    /// not taken. TOML: `when = { path = "/kind", equals = "video" }`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// A test of a step's input, read as JSON (text that is not JSON is a
/// string). Every test given must hold, and at least one is given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The value tested, as a JSON pointer (RFC 6901) into the input.
    /// Default: the whole input.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The value equals this (numbers by value: 1 equals 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// The value is missing or does not equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<serde_json::Value>,
    /// The value equals one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// The value is a number greater than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<serde_json::Number>,
    /// The value is a number less than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<serde_json::Number>,
    /// The value is there (`true`) or missing (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

impl Condition {
    /// Whether `input` passes every test.
    pub fn holds(&self, input: &serde_json::Value) -> bool {
        let v = input.pointer(&self.path);
        let number = v.and_then(serde_json::Value::as_f64);
        self.exists.is_none_or(|e| v.is_some() == e)
            && self
                .equals
                .as_ref()
                .is_none_or(|x| v.is_some_and(|v| same(v, x)))
            && self
                .not_equals
                .as_ref()
                .is_none_or(|x| !v.is_some_and(|v| same(v, x)))
            && self
                .one_of
                .as_ref()
                .is_none_or(|xs| v.is_some_and(|v| xs.iter().any(|x| same(v, x))))
            && self
                .above
                .as_ref()
                .is_none_or(|x| number.zip(x.as_f64()).is_some_and(|(n, x)| n > x))
            && self
                .below
                .as_ref()
                .is_none_or(|x| number.zip(x.as_f64()).is_some_and(|(n, x)| n < x))
    }

    fn check(&self, at: &str) -> Result<(), FieldError> {
        check_pointer(&format!("{at}.path"), &self.path)?;
        if self.equals.is_none()
            && self.not_equals.is_none()
            && self.one_of.is_none()
            && self.above.is_none()
            && self.below.is_none()
            && self.exists.is_none()
        {
            return bad(
                at,
                "a test needs one of `equals`, `not_equals`, `one_of`, `above`, `below` or `exists`",
            );
        }
        Ok(())
    }
}

/// A JSON pointer: empty, or `/` and the tokens.
fn check_pointer(at: &str, p: &str) -> Result<(), FieldError> {
    if !p.is_empty() && !p.starts_with('/') {
        return bad(
            at,
            format!("`{p}` is not a JSON pointer: write it as `/{p}` (or `` for the whole input)"),
        );
    }
    Ok(())
}

/// How a map step runs over its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapPlan {
    /// Where the list is in the input (a JSON pointer; empty: the whole).
    pub items: String,
    /// Items running at once.
    pub concurrency: usize,
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
                    .map(|s| StepDecl::Step(Box::new(s)))
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
    /// A workflow in code: its one step is the orchestrator, which takes
    /// its own durable steps.
    pub code: bool,
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
    /// Run once per item, if it is a map step.
    pub map: Option<MapPlan>,
    /// The test its input must pass for it to run.
    pub when: Option<Condition>,
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

impl StepSpec {
    /// A table naming only its function.
    pub fn new(function: Name) -> StepSpec {
        StepSpec {
            function,
            name: None,
            after: None,
            timeout: None,
            retry: None,
            map: false,
            items: None,
            concurrency: None,
            when: None,
        }
    }

    /// Its map plan, checked (`steps[i]` is where it stands).
    fn map_plan(&self, i: usize) -> Result<Option<MapPlan>, FieldError> {
        if !self.map {
            for (set, field) in [
                (self.items.is_some(), "items"),
                (self.concurrency.is_some(), "concurrency"),
            ] {
                if set {
                    return bad(
                        &format!("steps[{i}].{field}"),
                        "only a map step (`map = true`) takes it",
                    );
                }
            }
            return Ok(None);
        }
        let items = self.items.clone().unwrap_or_default();
        check_pointer(&format!("steps[{i}].items"), &items)?;
        let concurrency = self.concurrency.unwrap_or(DEFAULT_MAP_CONCURRENCY);
        if !(1..=MAX_MAP_CONCURRENCY).contains(&concurrency) {
            return bad(
                &format!("steps[{i}].concurrency"),
                format!("{concurrency} is not between 1 and {MAX_MAP_CONCURRENCY}"),
            );
        }
        Ok(Some(MapPlan {
            items,
            concurrency: concurrency as usize,
        }))
    }
}

impl WorkflowSpec {
    /// A sequence of functions, each taking the output of the one before.
    pub fn sequence(functions: &[Name]) -> WorkflowSpec {
        WorkflowSpec {
            description: None,
            steps: functions.iter().cloned().map(StepDecl::Function).collect(),
            function: None,
            deadline: None,
            output: None,
            privacy: None,
        }
    }

    /// A workflow in code, orchestrated by `function`.
    pub fn code(function: Name) -> WorkflowSpec {
        WorkflowSpec {
            description: None,
            steps: Vec::new(),
            function: Some(function),
            deadline: None,
            output: None,
            privacy: None,
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
        if let Some(p) = &self.privacy {
            crate::placement::validate_privacy(p).map_err(|e| e.at("privacy"))?;
        }
        if let Some(f) = &self.function {
            if !self.steps.is_empty() {
                return bad(
                    "function",
                    "a workflow has `steps` or a `function` that orchestrates it, not both",
                );
            }
            if self.output.is_some() {
                return bad(
                    "output",
                    "a workflow in code answers its orchestrator's result: it has no `output` step",
                );
            }
            let deadline = self.checked_deadline()?;
            return Ok(Plan {
                steps: vec![PlannedStep {
                    name: f.clone(),
                    function: f.clone(),
                    after: Vec::new(),
                    timeout: None,
                    retry: None,
                    map: None,
                    when: None,
                }],
                output: 0,
                deadline,
                code: true,
            });
        }
        if self.steps.is_empty() {
            return bad(
                "steps",
                "a workflow needs at least one step (or a `function` that orchestrates it)",
            );
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
        let deadline = self.checked_deadline()?;
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
            let (map, when) = match s {
                StepDecl::Function(_) => (None, None),
                StepDecl::Step(t) => (t.map_plan(i)?, t.when.clone()),
            };
            if let Some(c) = &when {
                c.check(&format!("steps[{i}].when"))?;
            }
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
                map,
                when,
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
            code: false,
        })
    }

    fn checked_deadline(&self) -> Result<Option<Duration>, FieldError> {
        match self.deadline {
            Some(HumanDuration(d)) => {
                check_range("deadline", d, bounds::MIN_TIMEOUT, MAX_RUN_DEADLINE)?;
                Ok(Some(d))
            }
            None => Ok(None),
        }
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
    fn a_workflow_in_code_is_one_step_its_orchestrator() {
        let spec: WorkflowSpec =
            toml::from_str("function = \"checkout\"\ndeadline = \"1h\"\n").unwrap();
        let p = spec.plan().unwrap_or_else(|e| panic!("{e}"));
        assert!(p.code);
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].function.as_str(), "checkout");
        assert_eq!(p.deadline, Some(Duration::from_secs(3600)));
        for (text, field) in [
            ("function = \"f\"\nsteps = [\"a\"]\n", "function"),
            ("function = \"f\"\noutput = \"a\"\n", "output"),
            ("function = \"f\"\ndeadline = \"0s\"\n", "deadline"),
            ("description = \"nothing\"\n", "steps"),
        ] {
            let spec: WorkflowSpec = toml::from_str(text).unwrap();
            let e = spec.plan().unwrap_err();
            assert_eq!(e.field(), field, "{text}: {e}");
        }
        assert!(toml::from_str::<WorkflowSpec>("function = \"Not A Name\"\n").is_err());
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
            (
                r#"[{ function = "a", items = "/x" }]"#,
                "steps[0].items: only a map step (`map = true`) takes it",
            ),
            (
                r#"[{ function = "a", map = true, items = "x" }]"#,
                "steps[0].items: `x` is not a JSON pointer: write it as `/x`",
            ),
            (
                r#"[{ function = "a", map = true, concurrency = 0 }]"#,
                "steps[0].concurrency: 0 is not between 1 and 1000",
            ),
            (
                r#"["a", { function = "b", when = { path = "/k" } }]"#,
                "steps[1].when: a test needs one of",
            ),
            (
                r#"["a", { function = "b", when = { path = "k", exists = true } }]"#,
                "steps[1].when.path: `k` is not a JSON pointer",
            ),
            (
                r#"["a", { function = "b", when = { path = "/k", like = 3 } }]"#,
                "unknown field `like`",
            ),
        ];
        for (steps, want) in cases {
            let e = plan(steps)
                .err()
                .unwrap_or_else(|| panic!("{steps} passed"));
            assert!(e.contains(want), "{steps}: {e}");
        }
    }

    #[test]
    fn map_and_when_are_planned() {
        let p = plan(
            r#"["classify",
               { name = "photos", function = "resize", map = true, items = "/photos", concurrency = 4 },
               { function = "transcode", after = ["classify"], when = { path = "/kind", equals = "video" } }]"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.steps[1].map,
            Some(MapPlan {
                items: "/photos".into(),
                concurrency: 4
            })
        );
        assert!(p.steps[0].map.is_none() && p.steps[0].when.is_none());
        let when = p.steps[2].when.clone().unwrap_or_default();
        assert!(when.holds(&serde_json::json!({"kind": "video"})));
        assert!(!when.holds(&serde_json::json!({"kind": "photo"})));
        let p = plan(r#"[{ function = "a", map = true }]"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.steps[0]
                .map
                .as_ref()
                .map(|m| (m.items.as_str(), m.concurrency)),
            Some(("", DEFAULT_MAP_CONCURRENCY as usize))
        );
    }

    #[test]
    fn conditions_test_the_value_at_their_path() {
        use serde_json::json;
        let input = json!({"n": 3, "kind": "video", "tags": ["a"], "nested": {"ok": true}});
        let c = |toml_text: &str| -> Condition {
            toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
        };
        let cases = [
            ("path = \"/n\"\nequals = 3", true),
            ("path = \"/n\"\nequals = 3.0", true),
            ("path = \"/n\"\nequals = \"3\"", false),
            ("path = \"/n\"\nabove = 2\nbelow = 4", true),
            ("path = \"/n\"\nabove = 3", false),
            ("path = \"/kind\"\nbelow = 4", false),
            ("path = \"/kind\"\none_of = [\"photo\", \"video\"]", true),
            ("path = \"/kind\"\nnot_equals = \"video\"", false),
            ("path = \"/missing\"\nnot_equals = \"video\"", true),
            ("path = \"/missing\"\nexists = false", true),
            ("path = \"/missing\"\nequals = 1", false),
            ("path = \"/nested/ok\"\nequals = true", true),
            ("path = \"/tags/0\"\nequals = \"a\"", true),
            ("exists = true", true),
        ];
        for (text, want) in cases {
            assert_eq!(c(text).holds(&input), want, "{text}");
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
