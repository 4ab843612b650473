//! Typed composition: a workflow whose step may pass the next one what its
//! function does not take (by the `input` and `output` schemas functions
//! declare) is refused at deploy, naming both steps; a run's input that
//! does not fit a first step is refused at start.

use serde_json::{Value, json};
use weft_manifest::{FunctionSpec, Plan, at_pointer, conforms, fits};

/// What step `k` answers, by its function's `output` (a map step: the
/// list of them); `None` when it does not say.
fn answers(plan: &Plan, functions: &[&FunctionSpec], k: usize) -> Option<Value> {
    let out = functions[k].output.clone();
    match plan.steps[k].map {
        Some(_) => Some(json!({"type": "array", "items": out.unwrap_or(Value::Bool(true))})),
        None => out,
    }
}

/// Whether each step may be not taken: it has a test, or every step it
/// waits for may be not taken.
fn conditional(plan: &Plan) -> Vec<bool> {
    let mut c: Vec<bool> = plan.steps.iter().map(|s| s.when.is_some()).collect();
    loop {
        let mut grew = false;
        for (i, s) in plan.steps.iter().enumerate() {
            if !c[i] && !s.after.is_empty() && s.after.iter().all(|&p| c[p]) {
                c[i] = true;
                grew = true;
            }
        }
        if !grew {
            return c;
        }
    }
}

/// The first step (by index) that may be given what its function does
/// not take, and why, naming the steps.
pub(crate) fn mismatch(plan: &Plan, functions: &[&FunctionSpec]) -> Option<(usize, String)> {
    let maybe = conditional(plan);
    for (k, step) in plan.steps.iter().enumerate() {
        let Some(takes) = &functions[k].input else {
            continue;
        };
        let (given, from) = match step.after.as_slice() {
            [] => continue,
            [p] => (
                answers(plan, functions, *p),
                format!("step `{}`", plan.steps[*p].name),
            ),
            many => {
                let mut props = serde_json::Map::new();
                let mut required = Vec::new();
                for &p in many {
                    let Some(out) = answers(plan, functions, p) else {
                        break;
                    };
                    let name = plan.steps[p].name.to_string();
                    if !maybe[p] {
                        required.push(Value::String(name.clone()));
                    }
                    props.insert(name, out);
                }
                if props.len() < many.len() {
                    continue;
                }
                let names: Vec<String> = many
                    .iter()
                    .map(|&p| format!("`{}`", plan.steps[p].name))
                    .collect();
                (
                    Some(json!({"type": "object", "properties": props, "required": required})),
                    format!("steps {} (an object of their outputs)", names.join(", ")),
                )
            }
        };
        let Some(given) = given else { continue };
        let verdict = match &step.map {
            None => fits(&given, takes),
            Some(m) => match at_pointer(&given, &m.items) {
                Some(list) => fits(list, &json!({"type": "array", "items": takes})),
                None => continue,
            },
        };
        if let Err(why) = verdict {
            let what = if step.map.is_some() {
                "an item of what"
            } else {
                "what"
            };
            return Some((
                k,
                format!(
                    "step `{}` (function `{}`) may not take {what} {from} answers: {why}",
                    step.name, step.function
                ),
            ));
        }
    }
    None
}

/// Why the run's `input` does not fit step `k` (a first step) of `plan`,
/// whose function is `f`; `None` when it fits or nothing is declared.
pub(crate) fn unfit_input(plan: &Plan, k: usize, f: &FunctionSpec, input: &[u8]) -> Option<String> {
    let step = &plan.steps[k];
    let takes = f.input.as_ref()?;
    if !step.after.is_empty() {
        return None;
    }
    let value = as_json(input).unwrap_or(Value::Null);
    let verdict = match &step.map {
        None => conforms(&value, takes),
        Some(m) => conforms(
            value.pointer(&m.items).unwrap_or(&Value::Null),
            &json!({"type": "array", "items": takes}),
        ),
    };
    verdict.err()
}

/// Why a step's `output` breaks what its function `f` declares it answers;
/// `None` when it conforms or nothing is declared.
pub(crate) fn unkept_output(f: &FunctionSpec, output: &[u8]) -> Option<String> {
    let answers = f.output.as_ref()?;
    match as_json(output) {
        None => Some(format!(
            "{} bytes that are neither JSON nor text",
            output.len()
        )),
        Some(v) => conforms(&v, answers).err(),
    }
}

/// Bytes a step passes on, as a JSON value: JSON as it is, other text as a
/// string; `None` for other bytes.
pub(crate) fn as_json(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok().or_else(|| {
        std::str::from_utf8(bytes)
            .ok()
            .map(|s| Value::String(s.to_string()))
    })
}
