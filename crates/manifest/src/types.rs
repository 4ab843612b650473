//! Declared types of what a function takes and answers (`input` and
//! `output` of `[functions.NAME]`), as JSON schemas, for workflows' typed
//! composition: whether what one step answers always fits what the next
//! takes ([`fits`]), and whether a value fits a schema ([`conforms`]).
//!
//! The keywords compared are the structural ones: `type` (a name or a list;
//! an `integer` is a `number`), `properties`, `required`,
//! `additionalProperties` (`false` or a schema), `items`, `enum` and
//! `const`. Others (`description`, `format`, `minimum`, …) are accepted and
//! not compared: `fits` answers whether the shapes agree, not every bound.

use crate::error::{FieldError, bad};
use serde_json::{Map, Value};

/// The type names of JSON schema.
const TYPES: &[&str] = &[
    "null", "boolean", "integer", "number", "string", "array", "object",
];

/// Largest declared schema, as JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;

/// Checks the shape of a declared schema at field `at`: an object (or
/// `true`/`false`) whose structural keywords are well formed.
pub fn check_schema(at: &str, schema: &Value) -> Result<(), FieldError> {
    let size = serde_json::to_vec(schema).map_or(0, |v| v.len());
    if size > MAX_SCHEMA_BYTES {
        return bad(
            at,
            format!("{size} bytes: a schema is at most {MAX_SCHEMA_BYTES}"),
        );
    }
    check(at, schema, 0)
}

fn check(at: &str, schema: &Value, depth: usize) -> Result<(), FieldError> {
    if depth > 32 {
        return bad(at, "nested more than 32 deep");
    }
    let o = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return bad(at, "a schema is a table (a JSON object), `true` or `false`"),
    };
    if let Some(t) = o.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(ts) if !ts.is_empty() => ts.iter().collect(),
            Value::String(_) => vec![t],
            _ => return bad(&format!("{at}.type"), "a type's name, or a list of them"),
        };
        for n in names {
            if !n.as_str().is_some_and(|n| TYPES.contains(&n)) {
                return bad(
                    &format!("{at}.type"),
                    format!("`{n}` is not one of {}", TYPES.join(", ")),
                );
            }
        }
    }
    if let Some(p) = o.get("properties") {
        let Value::Object(props) = p else {
            return bad(&format!("{at}.properties"), "a table of schemas by name");
        };
        for (k, s) in props {
            check(&format!("{at}.properties.{k}"), s, depth + 1)?;
        }
    }
    if let Some(r) = o.get("required")
        && !r.as_array().is_some_and(|r| r.iter().all(Value::is_string))
    {
        return bad(&format!("{at}.required"), "a list of property names");
    }
    if let Some(e) = o.get("enum")
        && !e.is_array()
    {
        return bad(&format!("{at}.enum"), "a list of values");
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = o.get(key) {
            check(&format!("{at}.{key}"), s, depth + 1)?;
        }
    }
    Ok(())
}

/// The type names `schema` allows, if it says (from `type`, else from its
/// `const` or `enum`); `None`: any type.
fn types(schema: &Map<String, Value>) -> Option<Vec<&'static str>> {
    fn of(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    let named = |n: &Value| TYPES.iter().copied().find(|t| n.as_str() == Some(*t));
    match schema.get("type") {
        Some(Value::String(_)) => schema.get("type").and_then(named).map(|t| vec![t]),
        Some(Value::Array(ts)) => Some(ts.iter().filter_map(named).collect()),
        _ => {
            if let Some(c) = schema.get("const") {
                Some(vec![of(c)])
            } else {
                schema
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|vs| vs.iter().map(of).collect())
            }
        }
    }
}

fn allows_type(allowed: &[&str], t: &str) -> bool {
    allowed.contains(&t) || (t == "integer" && allowed.contains(&"number"))
}

/// The values a schema is limited to (`const` or `enum`), if it is.
fn values(schema: &Map<String, Value>) -> Option<Vec<&Value>> {
    match schema.get("const") {
        Some(c) => Some(vec![c]),
        None => schema
            .get("enum")
            .and_then(Value::as_array)
            .map(|v| v.iter().collect()),
    }
}

fn required(schema: &Map<String, Value>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "the value" } else { path }
}

/// Whether every value `out` allows also fits `input`, as far as their
/// structural keywords tell; the error says where (a JSON pointer) and how
/// they differ.
pub fn fits(out: &Value, input: &Value) -> Result<(), String> {
    fits_at("", out, input)
}

fn fits_at(path: &str, out: &Value, input: &Value) -> Result<(), String> {
    let input = match input {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{}: nothing fits `false`", shown(path))),
        Value::Object(o) => o,
        _ => return Ok(()),
    };
    let out = match out {
        Value::Object(o) => o,
        Value::Bool(false) => return Ok(()),
        _ => &Map::new(),
    };
    if let Some(allowed) = values(input) {
        match values(out) {
            Some(given) => {
                if let Some(v) = given.iter().find(|v| !allowed.contains(v)) {
                    return Err(format!(
                        "{}: {v} may be answered and is not among those taken",
                        shown(path)
                    ));
                }
            }
            None => {
                return Err(format!(
                    "{}: any value may be answered, and only {} are taken",
                    shown(path),
                    allowed
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    let tin = types(input);
    let tout = types(out);
    if let Some(tin) = &tin {
        match &tout {
            None => {
                return Err(format!(
                    "{}: any type may be answered, and {} is taken",
                    shown(path),
                    tin.join(" or ")
                ));
            }
            Some(tout) => {
                if let Some(t) = tout.iter().find(|t| !allows_type(tin, t)) {
                    return Err(format!(
                        "{}: {t} may be answered, and {} is taken",
                        shown(path),
                        tin.join(" or ")
                    ));
                }
            }
        }
    }
    let both = |t: &str| {
        tin.as_ref().is_none_or(|ts| ts.contains(&t))
            && tout.as_ref().is_some_and(|ts| ts.contains(&t))
    };
    if both("object") {
        let given = required(out);
        for r in required(input) {
            if !given.contains(&r) {
                return Err(format!(
                    "{path}/{r}: it is required, and not always answered"
                ));
            }
        }
        let out_props = out.get("properties").and_then(Value::as_object);
        let in_props = input.get("properties").and_then(Value::as_object);
        if let (Some(op), Some(ip)) = (out_props, in_props) {
            for (k, s_in) in ip {
                if let Some(s_out) = op.get(k) {
                    fits_at(&format!("{path}/{k}"), s_out, s_in)?;
                }
            }
        }
        if let Some(extra) = input.get("additionalProperties") {
            for (k, s_out) in out_props.into_iter().flatten() {
                if in_props.is_some_and(|ip| ip.contains_key(k)) {
                    continue;
                }
                fits_at(&format!("{path}/{k}"), s_out, extra)
                    .map_err(|e| format!("{e} (a property not among those taken)"))?;
            }
        }
    }
    if both("array")
        && let Some(items_in) = input.get("items")
    {
        let items_out = out.get("items").unwrap_or(&Value::Bool(true));
        fits_at(&format!("{path}/*"), items_out, items_in)?;
    }
    Ok(())
}

/// The schema at `pointer` (a JSON pointer into a value of `schema`), as
/// far as `schema` declares it: through `properties` by name and `items`
/// by index; `None` where it does not say.
pub fn at_pointer<'a>(schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut s = schema;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let o = s.as_object()?;
        s = match o.get("properties").and_then(|p| p.get(&token)) {
            Some(p) => p,
            None if token.parse::<usize>().is_ok() => o.get("items")?,
            None => return None,
        };
    }
    Some(s)
}

/// Whether `value` fits `schema`; the error says where and how not.
pub fn conforms(value: &Value, schema: &Value) -> Result<(), String> {
    conforms_at("", value, schema)
}

fn conforms_at(path: &str, value: &Value, schema: &Value) -> Result<(), String> {
    let schema = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{}: nothing fits `false`", shown(path))),
        Value::Object(o) => o,
        _ => return Ok(()),
    };
    if let Some(allowed) = values(schema)
        && !allowed.contains(&value)
    {
        return Err(format!("{}: {value} is not among those taken", shown(path)));
    }
    let Some(t) = types(&Map::from_iter([(String::from("const"), value.clone())])) else {
        return Ok(());
    };
    if let Some(tin) = types(schema)
        && !allows_type(&tin, t[0])
    {
        return Err(format!(
            "{}: a {} is given, and {} is taken",
            shown(path),
            t[0],
            tin.join(" or ")
        ));
    }
    match value {
        Value::Object(o) => {
            for r in required(schema) {
                if !o.contains_key(r) {
                    return Err(format!("{path}/{r}: it is required, and missing"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, v) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => conforms_at(&format!("{path}/{k}"), v, s)?,
                    None => {
                        if let Some(extra) = schema.get("additionalProperties") {
                            conforms_at(&format!("{path}/{k}"), v, extra)?;
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    conforms_at(&format!("{path}/{i}"), v, s)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_that_agree_fit() {
        let image = json!({"type": "object", "required": ["image"],
            "properties": {"image": {"type": "string"}, "size": {"type": "integer"}}});
        let takes = json!({"type": "object", "required": ["image"],
            "properties": {"image": {"type": "string"}, "size": {"type": "number"}}});
        assert_eq!(fits(&image, &takes), Ok(()));
        assert_eq!(fits(&image, &json!({})), Ok(()));
        assert_eq!(
            fits(&json!({"const": "a"}), &json!({"enum": ["a", "b"]})),
            Ok(())
        );
        assert_eq!(
            fits(
                &json!({"type": "array", "items": {"type": "integer"}}),
                &json!({"type": "array", "items": {"type": "number"}})
            ),
            Ok(())
        );
    }

    #[test]
    fn shapes_that_differ_say_where() {
        let cases = [
            (
                json!({"type": "string"}),
                json!({"type": "object"}),
                "the value: string may be answered, and object is taken",
            ),
            (
                json!({}),
                json!({"type": "object"}),
                "the value: any type may be answered, and object is taken",
            ),
            (
                json!({"type": "object", "properties": {"image": {"type": "string"}}}),
                json!({"type": "object", "required": ["image"]}),
                "/image: it is required, and not always answered",
            ),
            (
                json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "number"}}}),
                json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
                "/n: number may be answered, and integer is taken",
            ),
            (
                json!({"type": "array", "items": {"type": "string"}}),
                json!({"type": "array", "items": {"type": "integer"}}),
                "/*: string may be answered, and integer is taken",
            ),
            (
                json!({"enum": ["a", "c"]}),
                json!({"enum": ["a", "b"]}),
                "the value: \"c\" may be answered and is not among those taken",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string"}}}),
                json!({"type": "object", "additionalProperties": false}),
                "/x: nothing fits `false` (a property not among those taken)",
            ),
        ];
        for (out, input, want) in cases {
            assert_eq!(
                fits(&out, &input),
                Err(want.to_string()),
                "{out} into {input}"
            );
        }
    }

    #[test]
    fn values_conform_or_say_where_not() {
        let s = json!({"type": "object", "required": ["photos"], "properties": {
            "photos": {"type": "array", "items": {"type": "string"}}}});
        assert_eq!(conforms(&json!({"photos": ["a"]}), &s), Ok(()));
        assert_eq!(
            conforms(&json!({"photos": ["a", 3]}), &s),
            Err("/photos/1: a integer is given, and string is taken".into())
        );
        assert_eq!(
            conforms(&json!({}), &s),
            Err("/photos: it is required, and missing".into())
        );
        assert_eq!(conforms(&json!(2), &json!({"type": "number"})), Ok(()));
    }

    #[test]
    fn a_pointer_walks_properties_and_items() {
        let s = json!({"type": "object", "properties": {
            "photos": {"type": "array", "items": {"type": "string"}}}});
        assert_eq!(at_pointer(&s, "/photos"), Some(&s["properties"]["photos"]));
        assert_eq!(
            at_pointer(&s, "/photos/0"),
            Some(&json!({"type": "string"}))
        );
        assert_eq!(at_pointer(&s, ""), Some(&s));
        assert_eq!(at_pointer(&s, "/other"), None);
    }

    #[test]
    fn bad_schemas_name_the_field() {
        let cases = [
            (json!("string"), "input: a schema is a table"),
            (
                json!({"type": "text"}),
                "input.type: `\"text\"` is not one of",
            ),
            (
                json!({"properties": {"a": {"type": 3}}}),
                "input.properties.a.type: a type's name",
            ),
            (
                json!({"required": "a"}),
                "input.required: a list of property names",
            ),
            (json!({"items": 3}), "input.items: a schema is a table"),
        ];
        for (schema, want) in cases {
            let e = check_schema("input", &schema).unwrap_err().to_string();
            assert!(e.starts_with(want), "{schema}: {e}");
        }
    }
}
