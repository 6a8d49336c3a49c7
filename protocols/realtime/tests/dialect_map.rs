//! The name maps of `src/dialect.rs` are all of
//! `openai-realtime-beta-to-ga.json`: every entry of the file is in a table,
//! and a new section of the file fails this test until it is handled.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::BTreeSet;

use serde_json::Value;
use switchboard_realtime::dialect::{
    self, AUDIO_FORMATS, CLIENT_EVENT_RENAMES, CONTENT_TYPE_RENAMES, GA_ONLY_SERVER_EVENTS,
    GA_ONLY_SESSION_FIELDS, RESPONSE_FIELD_RENAMES, SERVER_EVENT_RENAMES,
    SERVER_EVENT_REPLACEMENTS, SESSION_FIELD_RENAMES,
};
use switchboard_realtime::{Auth, ConnectParams, Dialect, Provider, Secret};

fn map() -> Value {
    fixtures::json("openai-realtime-beta-to-ga.json")
}

fn object<'v>(value: &'v Value, key: &str) -> &'v serde_json::Map<String, Value> {
    value[key]
        .as_object()
        .unwrap_or_else(|| panic!("{key} is not an object"))
}

/// The first word of a description like `"x.y  (note)"`.
fn first_word(value: &Value) -> &str {
    value
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
}

#[test]
fn every_section_is_handled() {
    let handled: BTreeSet<&str> = [
        "_about",
        "connection",
        "server_event_types",
        "server_event_types_ga_only",
        "client_event_types",
        "session_fields",
        "audio_formats",
        "response_fields (response.create.response and the Response object)",
        "item_content_types",
        "items",
        "event_field_differences",
    ]
    .into();
    let map = map();
    let sections: BTreeSet<&str> = map
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(sections, handled);
}

#[test]
fn server_event_types() {
    let map = map();
    let entries = object(&map, "server_event_types");
    assert_eq!(
        entries.len(),
        SERVER_EVENT_RENAMES.len() + SERVER_EVENT_REPLACEMENTS.len()
    );
    for (beta, ga) in entries {
        let ours = SERVER_EVENT_RENAMES
            .iter()
            .chain(SERVER_EVENT_REPLACEMENTS.iter())
            .find(|(b, _)| b == beta)
            .unwrap_or_else(|| panic!("{beta} missing from the maps"));
        assert_eq!(ours.1, first_word(ga), "{beta}");
    }
    for (beta, ga) in SERVER_EVENT_RENAMES {
        assert_eq!(dialect::ga_server_event_type(beta), ga);
    }
    let ga_only: BTreeSet<&str> = map["server_event_types_ga_only"]
        .as_array()
        .expect("array")
        .iter()
        .map(first_word)
        .collect();
    assert_eq!(ga_only, GA_ONLY_SERVER_EVENTS.into_iter().collect());
}

#[test]
fn client_event_types() {
    let map = map();
    let entries = object(&map, "client_event_types");
    assert_eq!(entries.len(), CLIENT_EVENT_RENAMES.len());
    for (beta, ga) in entries {
        assert!(
            CLIENT_EVENT_RENAMES.contains(&(beta.as_str(), first_word(ga))),
            "{beta}"
        );
    }
}

fn check_fields(entries: &serde_json::Map<String, Value>, ours: &[(&str, Option<&str>)]) {
    let renames: Vec<_> = entries
        .iter()
        .filter(|(k, _)| !k.starts_with('('))
        .collect();
    assert_eq!(renames.len(), ours.len());
    for (beta, ga) in renames {
        let (_, our_ga) = ours
            .iter()
            .find(|(b, _)| b == beta)
            .unwrap_or_else(|| panic!("field {beta} missing"));
        match our_ga {
            Some(path) => assert_eq!(*path, first_word(ga), "{beta}"),
            None => assert!(first_word(ga).starts_with("(removed"), "{beta}"),
        }
    }
}

#[test]
fn session_and_response_fields() {
    let map = map();
    let session = object(&map, "session_fields");
    check_fields(session, &SESSION_FIELD_RENAMES);
    let required = session["(new, required)"].as_str().expect("string");
    assert!(required.starts_with("type: \"realtime\""));
    let optional = session["(new, optional)"]
        .as_str()
        .and_then(|s| s.strip_prefix("GA additions: "))
        .expect("GA additions");
    let mut new_fields: BTreeSet<&str> = optional.split(", ").collect();
    new_fields.insert("type");
    assert_eq!(new_fields, GA_ONLY_SESSION_FIELDS.into_iter().collect());
    check_fields(
        object(
            &map,
            "response_fields (response.create.response and the Response object)",
        ),
        &RESPONSE_FIELD_RENAMES,
    );
}

#[test]
fn audio_formats_and_content_types() {
    let map = map();
    let formats = object(&map, "audio_formats");
    assert_eq!(formats.len(), AUDIO_FORMATS.len());
    for (beta, ga_type, rate) in AUDIO_FORMATS {
        let ga = &formats[beta];
        assert_eq!(ga["type"], ga_type, "{beta}");
        assert_eq!(ga["rate"].as_u64(), rate.map(u64::from), "{beta}");
    }
    let content = object(&map, "item_content_types");
    for (beta, ga) in CONTENT_TYPE_RENAMES {
        assert_eq!(content[&format!("assistant content '{beta}'")], ga);
    }
    assert!(content["user content 'input_text' / 'input_audio'"]
        .as_str()
        .is_some_and(|s| s == "unchanged"));
}

#[test]
fn connection_headers() {
    let map = map();
    for (dialect, provider) in [("ga", Provider::OpenAi), ("beta", Provider::OpenAiBeta)] {
        let expected = &map["connection"][dialect];
        let params = ConnectParams {
            provider,
            endpoint: switchboard_realtime::connection::OPENAI_URL.into(),
            model: "<model>".into(),
            auth: Some(Auth::ApiKey(Secret::new("<OPENAI_API_KEY>"))),
        };
        let url = params.url().expect("url").replace("%3Cmodel%3E", "<model>");
        assert_eq!(url, expected["url"]);
        let headers = params.headers();
        let expected_headers = expected["headers"].as_object().expect("headers");
        assert_eq!(headers.len(), expected_headers.len(), "{dialect}");
        for (name, value) in expected_headers {
            assert_eq!(headers.get(name), value.as_str(), "{dialect} {name}");
        }
        assert_eq!(params.dialect().as_str(), dialect);
    }
    assert_eq!(Dialect::default(), Dialect::Ga);
}
