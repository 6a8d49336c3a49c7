//! Shared helpers of the integration tests: fixture loading, JSON
//! normalisation and schema validators. Included with `#[path]`.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use switchboard_realtime::Dialect;

/// Text of `tests/fixtures/{name}`.
pub(crate) fn text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `tests/fixtures/{name}` as JSON.
pub(crate) fn json(name: &str) -> Value {
    serde_json::from_str(&text(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

/// The examples of one section of `openai-realtime-examples.json`, as
/// `(name, event)` pairs.
pub(crate) fn examples(section: &str) -> Vec<(String, Value)> {
    let all = json("openai-realtime-examples.json");
    all[section]
        .as_object()
        .unwrap_or_else(|| panic!("section {section}"))
        .iter()
        .map(|(name, event)| (name.clone(), event.clone()))
        .collect()
}

/// `(section, dialect)` of the client and server example sections.
pub(crate) const CLIENT_SECTIONS: [(&str, Dialect); 2] =
    [("ga_client", Dialect::Ga), ("beta_client", Dialect::Beta)];
/// See [`CLIENT_SECTIONS`].
pub(crate) const SERVER_SECTIONS: [(&str, Dialect); 2] =
    [("ga_server", Dialect::Ga), ("beta_server", Dialect::Beta)];

/// Removes `null` members recursively. Every nullable field of the schemas
/// defaults to `null`, so `null` and absent mean the same; the codecs omit
/// them.
pub(crate) fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// The four event schemas, compiled.
pub(crate) struct Schemas {
    ga_client: jsonschema::Validator,
    ga_server: jsonschema::Validator,
    beta_client: jsonschema::Validator,
    beta_server: jsonschema::Validator,
}

impl Schemas {
    pub(crate) fn load() -> Self {
        let compile = |name: &str| {
            jsonschema::validator_for(&json(name)).unwrap_or_else(|e| panic!("compile {name}: {e}"))
        };
        Self {
            ga_client: compile("openai-realtime-client-events.schema.json"),
            ga_server: compile("openai-realtime-server-events.schema.json"),
            beta_client: compile("openai-realtime-beta-client-events.schema.json"),
            beta_server: compile("openai-realtime-beta-server-events.schema.json"),
        }
    }

    pub(crate) fn client(&self, dialect: Dialect) -> &jsonschema::Validator {
        match dialect {
            Dialect::Ga => &self.ga_client,
            Dialect::Beta => &self.beta_client,
        }
    }

    pub(crate) fn server(&self, dialect: Dialect) -> &jsonschema::Validator {
        match dialect {
            Dialect::Ga => &self.ga_server,
            Dialect::Beta => &self.beta_server,
        }
    }
}

/// Panics with every schema error if `text` does not validate.
pub(crate) fn assert_valid(validator: &jsonschema::Validator, text: &str, context: &str) {
    let instance: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{context}: not json ({e}): {text}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{context}: {text}\n{}",
        errors.join("\n")
    );
}
