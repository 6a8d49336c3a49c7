//! REST shapes against Twilio's OpenAPI description: `fixtures/twilio-api-v2010-calls.json`.
//! Every form field we send must be a field of the operation's request schema, of its type;
//! every response example must deserialize; every response field we name must exist.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use switchboard_twilio::rest::{
    CallInstructions, CallResource, CallUpdateStatus, ConferenceResource, CreateCall,
    CreateParticipant, ErrorResponse, ParticipantList, ParticipantResource, UpdateCall,
    UpdateConference, UpdateParticipant,
};
use switchboard_twilio::vocabulary::{
    AnsweredBy, Beep, CallDirection, CallProgressEvent, CallStatus, ConferenceEvent,
    ConferenceStatus, HttpMethod, MachineDetection, ParticipantStatus,
};

const SPEC: &str = include_str!("fixtures/twilio-api-v2010-calls.json");

const CALLS: &str = "/2010-04-01/Accounts/{AccountSid}/Calls.json";
const CALL: &str = "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json";
const PARTICIPANTS: &str =
    "/2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants.json";
const PARTICIPANT: &str =
    "/2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants/{CallSid}.json";
const CONFERENCE: &str = "/2010-04-01/Accounts/{AccountSid}/Conferences/{Sid}.json";

struct Spec(Value);

impl Spec {
    fn load() -> Self {
        Self(serde_json::from_str(SPEC).expect("spec is json"))
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .expect("local schema reference");
                &self.0["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let operation = &self.0["paths"][path][method];
        assert!(operation.is_object(), "no {method} {path} in the spec");
        operation
    }

    fn request_schema(&self, path: &str) -> &Value {
        let schema = &self.operation(path, "post")["requestBody"]["content"]
            ["application/x-www-form-urlencoded"]["schema"];
        self.resolve(schema)
    }

    /// The JSON schema and the examples of a response.
    fn response(&self, path: &str, method: &str, status: &str) -> (&Value, Vec<&Value>) {
        let content =
            &self.operation(path, method)["responses"][status]["content"]["application/json"];
        let examples = content["examples"]
            .as_object()
            .map(|examples| examples.values().map(|e| &e["value"]).collect())
            .unwrap_or_default();
        (self.resolve(&content["schema"]), examples)
    }
}

/// Checks a form against the operation's request schema and returns how often each key
/// appeared.
fn check_form(spec: &Spec, path: &str, form: &[(String, String)]) -> BTreeMap<String, usize> {
    let schema = spec.request_schema(path);
    let properties = schema["properties"].as_object().expect("properties");
    let mut counts = BTreeMap::new();
    for (name, value) in form {
        let property = properties
            .get(name)
            .unwrap_or_else(|| panic!("{path}: {name} is not a request field"));
        let property = spec.resolve(property);
        *counts.entry(name.clone()).or_insert(0) += 1;
        let declared = property["type"].as_str().unwrap_or("string");
        match declared {
            "array" => {}
            "integer" => assert!(
                value.parse::<i64>().is_ok(),
                "{name}={value} not an integer"
            ),
            "boolean" => assert!(
                ["true", "false"].contains(&value.as_str()),
                "{name}={value}"
            ),
            _ => {}
        }
        if let Some(allowed) = property["enum"].as_array() {
            assert!(
                allowed.contains(&Value::from(value.as_str())),
                "{name}={value} not in {allowed:?}"
            );
        }
    }
    for (name, count) in &counts {
        let declared = spec.resolve(&properties[name])["type"].clone();
        if *count > 1 {
            assert_eq!(declared, "array", "{path}: {name} repeated but not a list");
        }
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().expect("name");
        assert!(
            counts.contains_key(required),
            "{path}: required {required} missing"
        );
    }
    counts
}

/// Checks that every field `T` names is a property of the schema, and every example reads.
fn check_response<T: DeserializeOwned + Serialize + Default + PartialEq + std::fmt::Debug>(
    schema: &Value,
    examples: &[&Value],
) -> Vec<T> {
    let properties = schema["properties"].as_object().expect("properties");
    let ours = serde_json::to_value(T::default()).expect("serialize");
    for name in ours.as_object().expect("object").keys() {
        assert!(
            properties.contains_key(name),
            "{name} is not a response field"
        );
    }
    examples
        .iter()
        .map(|example| {
            let parsed: T = serde_json::from_value((*example).clone()).expect("example reads");
            assert_ne!(parsed, T::default(), "example read as empty");
            parsed
        })
        .collect()
}

fn full_create_call(instructions: CallInstructions) -> CreateCall {
    CreateCall {
        status_callback: Some("https://cp.example.com/api/twilio/status".into()),
        status_callback_method: Some(HttpMethod::Post),
        status_callback_events: vec![
            CallProgressEvent::Initiated,
            CallProgressEvent::Ringing,
            CallProgressEvent::Answered,
            CallProgressEvent::Completed,
        ],
        fallback_url: Some("https://cp.example.com/fallback".into()),
        fallback_method: Some(HttpMethod::Get),
        timeout_secs: Some(30),
        time_limit_secs: Some(3600),
        caller_id: Some("+14155550100".into()),
        send_digits: Some("ww1".into()),
        record: Some(false),
        machine_detection: Some(MachineDetection::DetectMessageEnd),
        machine_detection_timeout_secs: Some(30),
        machine_detection_speech_threshold_ms: Some(2400),
        machine_detection_speech_end_threshold_ms: Some(1200),
        machine_detection_silence_timeout_ms: Some(5000),
        async_amd: Some(true),
        async_amd_status_callback: Some("https://cp.example.com/amd".into()),
        async_amd_status_callback_method: Some(HttpMethod::Post),
        call_token: Some("%7B%7D".into()),
        ..CreateCall::new("+14155550123", "+14155550100", instructions)
    }
}

#[test]
fn create_call_sends_only_fields_of_the_spec() {
    let spec = Spec::load();
    for instructions in [
        CallInstructions::Url {
            url: "https://sidecar.example.com/api/twilio/voice".into(),
            method: Some(HttpMethod::Post),
        },
        CallInstructions::Twiml("<Response><Hangup/></Response>".into()),
        CallInstructions::ApplicationSid("AP0a1b2c3d4e5f60718293a4b5c6d7e8f9".into()),
    ] {
        let call = full_create_call(instructions);
        let form = call.to_form();
        let counts = check_form(&spec, CALLS, &form);
        assert_eq!(counts["StatusCallbackEvent"], 4);
        assert_eq!(CreateCall::from_form(&form), Ok(call));
    }
    assert_eq!(
        CreateCall::path("AC1"),
        CALLS.replace("{AccountSid}", "AC1")
    );
}

#[test]
fn update_call_sends_only_fields_of_the_spec() {
    let spec = Spec::load();
    let everything = UpdateCall {
        url: Some("https://cp.example.com/twiml".into()),
        method: Some(HttpMethod::Post),
        twiml: Some("<Response/>".into()),
        status: Some(CallUpdateStatus::Canceled),
        status_callback: Some("https://cp.example.com/status".into()),
        status_callback_method: Some(HttpMethod::Get),
        fallback_url: Some("https://cp.example.com/fallback".into()),
        fallback_method: Some(HttpMethod::Post),
        time_limit_secs: Some(60),
    };
    for update in [
        everything,
        UpdateCall::hang_up(),
        UpdateCall::redirect_twiml("<Response><Hangup /></Response>"),
        UpdateCall::redirect_url("https://cp.example.com/twiml", HttpMethod::Get),
    ] {
        let form = update.to_form();
        check_form(&spec, CALL, &form);
        assert_eq!(UpdateCall::from_form(&form), Ok(update));
    }
    assert_eq!(
        UpdateCall::path("AC1", "CA2"),
        CALL.replace("{AccountSid}", "AC1").replace("{Sid}", "CA2")
    );
}

#[test]
fn participant_requests_send_only_fields_of_the_spec() {
    let spec = Spec::load();
    let create = CreateParticipant {
        label: Some("agent".into()),
        start_conference_on_enter: Some(true),
        end_conference_on_exit: Some(false),
        beep: Some(Beep::OnEnter),
        muted: Some(false),
        early_media: Some(true),
        record: Some(false),
        timeout_secs: Some(20),
        time_limit_secs: Some(600),
        max_participants: Some(3),
        caller_id: Some("+14155550100".into()),
        wait_url: Some(String::new()),
        wait_method: Some(HttpMethod::Post),
        status_callback: Some("https://cp.example.com/participant".into()),
        status_callback_method: Some(HttpMethod::Post),
        status_callback_events: vec![CallProgressEvent::Ringing, CallProgressEvent::Answered],
        conference_status_callback: Some("https://cp.example.com/conference".into()),
        conference_status_callback_method: Some(HttpMethod::Post),
        conference_status_callback_events: vec![
            ConferenceEvent::Start,
            ConferenceEvent::End,
            ConferenceEvent::Join,
            ConferenceEvent::Leave,
        ],
        machine_detection: Some(MachineDetection::Enable),
        coaching: Some(false),
        call_sid_to_coach: Some("CA5f2e9c1b7a3d48e6b0c4f1a2d3e4b5c6".into()),
        ..CreateParticipant::new("+14155550100", "+14155550188")
    };
    let form = create.to_form();
    let counts = check_form(&spec, PARTICIPANTS, &form);
    assert_eq!(counts["ConferenceStatusCallbackEvent"], 4);
    assert_eq!(CreateParticipant::from_form(&form), Ok(create));

    let update = UpdateParticipant {
        muted: Some(true),
        hold: Some(true),
        hold_url: Some("https://cp.example.com/hold".into()),
        hold_method: Some(HttpMethod::Get),
        announce_url: Some("https://cp.example.com/announce".into()),
        announce_method: Some(HttpMethod::Post),
        wait_url: Some("https://cp.example.com/wait".into()),
        wait_method: Some(HttpMethod::Get),
        beep_on_exit: Some(false),
        end_conference_on_exit: Some(true),
        coaching: Some(true),
        call_sid_to_coach: Some("CA1".into()),
    };
    let form = update.to_form();
    check_form(&spec, PARTICIPANT, &form);
    assert_eq!(UpdateParticipant::from_form(&form), Ok(update));

    let path = PARTICIPANT
        .replace("{AccountSid}", "AC1")
        .replace("{ConferenceSid}", "CF2")
        .replace("{CallSid}", "CA3");
    assert_eq!(UpdateParticipant::path("AC1", "CF2", "CA3"), path);
    let list = PARTICIPANTS
        .replace("{AccountSid}", "AC1")
        .replace("{ConferenceSid}", "CF2");
    assert_eq!(CreateParticipant::path("AC1", "CF2"), list);
    assert_eq!(ParticipantList::path("AC1", "CF2"), list);
}

#[test]
fn update_conference_sends_only_fields_of_the_spec() {
    let spec = Spec::load();
    let update = UpdateConference {
        end: true,
        announce_url: Some("https://cp.example.com/announce".into()),
        announce_method: Some(HttpMethod::Post),
    };
    let form = update.to_form();
    check_form(&spec, CONFERENCE, &form);
    assert_eq!(UpdateConference::from_form(&form), Ok(update));
    assert_eq!(
        UpdateConference::path("AC1", "CF2"),
        CONFERENCE
            .replace("{AccountSid}", "AC1")
            .replace("{Sid}", "CF2")
    );
}

#[test]
fn call_responses_of_the_spec_deserialize() {
    let spec = Spec::load();
    let mut read = 0;
    for (path, method, status) in [
        (CALLS, "post", "201"),
        (CALL, "post", "200"),
        (CALL, "get", "200"),
    ] {
        let (schema, examples) = spec.response(path, method, status);
        for call in check_response::<CallResource>(schema, &examples) {
            assert!(call.sid.as_deref().is_some_and(|sid| sid.starts_with("CA")));
            assert!(!matches!(call.status, Some(CallStatus::Unknown(_)) | None));
            assert!(!matches!(call.direction, Some(CallDirection::Other(_))));
            read += 1;
        }
    }
    assert!(read >= 3, "only {read} examples");
    // The schema's enum is ours.
    let statuses = spec.0["components"]["schemas"]["call_enum_status"]["enum"]
        .as_array()
        .expect("enum");
    for status in statuses {
        let status = CallStatus::from(status.as_str().expect("str"));
        assert!(!matches!(status, CallStatus::Unknown(_)), "{status}");
    }
    let answered = serde_json::json!({
        "sid": "CA1",
        "answered_by": "machine_start",
        "status": "in-progress",
        "future_field": [1],
    });
    let answered: CallResource = serde_json::from_value(answered).expect("lenient");
    assert_eq!(answered.answered_by, Some(AnsweredBy::MachineStart));
    assert_eq!(answered.status, Some(CallStatus::InProgress));
}

#[test]
fn participant_and_conference_responses_of_the_spec_deserialize() {
    let spec = Spec::load();
    let mut read = 0;
    for (path, method, status) in [
        (PARTICIPANTS, "post", "201"),
        (PARTICIPANT, "post", "200"),
        (PARTICIPANT, "get", "200"),
    ] {
        let (schema, examples) = spec.response(path, method, status);
        for participant in check_response::<ParticipantResource>(schema, &examples) {
            assert!(participant.call_sid.is_some());
            assert!(!matches!(
                participant.status,
                Some(ParticipantStatus::Unknown(_))
            ));
            read += 1;
        }
    }
    assert!(read >= 3, "only {read} participant examples");

    let (schema, examples) = spec.response(PARTICIPANTS, "get", "200");
    let pages = check_response::<ParticipantList>(schema, &examples);
    assert!(pages.iter().any(|page| page.participants.len() >= 2));
    let item = spec.resolve(&schema["properties"]["participants"]["items"]);
    check_response::<ParticipantResource>(item, &[]);

    let mut read = 0;
    for (method, status) in [("post", "200"), ("get", "200")] {
        let (schema, examples) = spec.response(CONFERENCE, method, status);
        for conference in check_response::<ConferenceResource>(schema, &examples) {
            assert!(conference
                .sid
                .as_deref()
                .is_some_and(|sid| sid.starts_with("CF")));
            assert!(!matches!(
                conference.status,
                Some(ConferenceStatus::Unknown(_))
            ));
            read += 1;
        }
    }
    assert!(read >= 2, "only {read} conference examples");
}

#[test]
fn error_bodies_deserialize() {
    let body = r#"{
        "code": 21211,
        "message": "The 'To' number +1555 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400
    }"#;
    let error: ErrorResponse = serde_json::from_str(body).expect("reads");
    assert_eq!(error.code, Some(21211));
    assert_eq!(error.status, Some(400));
    assert!(error.more_info.is_some_and(|url| url.ends_with("21211")));
    let sparse: ErrorResponse =
        serde_json::from_str(r#"{"message": null, "status": 429, "detail": "x"}"#)
            .expect("lenient");
    assert_eq!(sparse.status, Some(429));
    assert_eq!(sparse.code, None);
}
