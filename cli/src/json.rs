//! JSON for people and scripts: command-line arguments in, results out.

use base64::Engine;
use rwc_client::{Error, Value, to_value};
use rwc_protocol::Ref;
use serde_json::{Map, Number, Value as Json};

/// Parses a command-line argument as JSON; a bare word that is not JSON is a string.
pub fn parse_arg(arg: &str) -> Result<Value, Error> {
    match serde_json::from_str::<Json>(arg) {
        Ok(j) => from_json(&j),
        Err(_) => Ok(Value::String(arg.to_owned())),
    }
}

/// JSON → value. An object `{"$bytes": "<base64>"}` is a byte buffer.
pub fn from_json(j: &Json) -> Result<Value, Error> {
    if let Json::Object(o) = j
        && o.len() == 1
        && let Some(Json::String(b64)) = o.get("$bytes")
    {
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(|b| Value::Bytes(b.into()))
            .map_err(|e| Error::bad_argument(format!("bad base64 in $bytes: {e}")));
    }
    to_value(j)
}

/// Value → JSON. Bytes become `{"$bytes": "<base64>"}`, maps with non-string keys a list of
/// `[key, value]` pairs, netrefs `{"$ref": "…"}`, non-finite floats strings.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Unit => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(n) => Json::Number((*n).into()),
        Value::U64(n) => Json::Number((*n).into()),
        Value::F64(f) => {
            Number::from_f64(*f).map_or_else(|| Json::String(f.to_string()), Json::Number)
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => {
            let mut o = Map::new();
            o.insert(
                "$bytes".into(),
                Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            );
            Json::Object(o)
        }
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Map(m) if m.iter().all(|(k, _)| matches!(k, Value::String(_))) => Json::Object(
            m.iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), to_json(v))))
                .collect(),
        ),
        Value::Map(m) => Json::Array(
            m.iter()
                .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                .collect(),
        ),
        Value::Ref(r) => {
            let mut o = Map::new();
            let what = match r {
                Ref::Object(n) => format!("{n:?}"),
                other => format!("{other:?}"),
            };
            o.insert("$ref".into(), Json::String(what));
            Json::Object(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_results() {
        assert_eq!(parse_arg("5").unwrap(), Value::U64(5));
        assert_eq!(parse_arg("-5").unwrap(), Value::I64(-5));
        assert_eq!(parse_arg("2.5").unwrap(), Value::F64(2.5));
        assert_eq!(parse_arg("hello").unwrap(), Value::from("hello"));
        assert_eq!(parse_arg("\"5\"").unwrap(), Value::from("5"));
        assert_eq!(
            parse_arg(r#"{"$bytes":"AAEC"}"#).unwrap(),
            Value::Bytes(vec![0, 1, 2].into())
        );
        let v = parse_arg(r#"{"a":[1,true,null]}"#).unwrap();
        assert_eq!(to_json(&v), serde_json::json!({"a": [1, true, null]}));
        assert_eq!(
            to_json(&Value::Bytes(vec![0, 1, 2].into())),
            serde_json::json!({"$bytes": "AAEC"})
        );
        assert_eq!(
            to_json(&Value::Map(vec![(Value::I64(1), Value::Unit)])),
            serde_json::json!([[1, null]])
        );
    }
}
