//! A tool call through the real services: the model (simulated) calls `lookup_order`, the
//! sidecar forwards the call on its control stream, the control plane POSTs it to the
//! tool's webhook — a small HTTP server in this test — and the answer goes back to the
//! model as a `function_call_output` followed by a new response, which the caller hears.
//! The record holds the call, its result and the answer after it, in order.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{
    FunctionCall, OpenAiSim, Reply, Script, SessionRecord, SimConfig, Turn,
};
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, TalkScript};
use switchboard_tests::{Harness, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

const TOOL: &str = "lookup_order";
const BEFORE_CALL: &str = "Let me check that for you.";
const AFTER_CALL: &str = "Your order 4471 has shipped and arrives tomorrow.";
const BEFORE_CALL_MS: u64 = 1_000;
const AFTER_CALL_MS: u64 = 1_500;

// --- helpers ---

/// The tool's webhook: records every JSON body it is sent and, after `delay`, answers
/// with the order's status.
#[derive(Clone)]
struct Webhook {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    async fn start(delay: Duration) -> Webhook {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(&format!("/tools/{TOOL}"), post(answer))
            .with_state((Arc::clone(&requests), delay));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Webhook {
            url: format!("http://{addr}/tools/{TOOL}"),
            requests,
        }
    }

    fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn answer(
    State((requests, delay)): State<(Arc<Mutex<Vec<Value>>>, Duration)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(body);
    tokio::time::sleep(delay).await;
    Json(webhook_reply())
}

fn webhook_reply() -> Value {
    json!({"status": "shipped", "eta": "tomorrow"})
}

fn agent(number: &str, webhook_url: &str, timeout: Duration) -> pb::AgentSettings {
    let schema = json!({
        "type": "object",
        "properties": {"order_number": {"type": "string"}},
        "required": ["order_number"],
    });
    pb::AgentSettings {
        name: "Orders".into(),
        phone_numbers: vec![number.into()],
        voice: "marin".into(),
        instructions: "You answer questions about Acme orders.".into(),
        tools: vec![pb::Tool {
            name: TOOL.into(),
            description: "Looks up an order by its number.".into(),
            parameters_json_schema: schema.to_string(),
            webhook_url: webhook_url.into(),
            timeout: Some(prost_types::Duration {
                seconds: i64::try_from(timeout.as_secs()).unwrap(),
                nanos: i32::try_from(timeout.subsec_nanos()).unwrap(),
            }),
        }],
        ..Default::default()
    }
}

/// The caller asks about an order; the model says it will check, calls the tool, and
/// answers with what it learnt.
fn script() -> Script {
    Script {
        turns: vec![Turn {
            caller: "Where is my order 4471?".into(),
            reply: Some(Reply {
                text: BEFORE_CALL.into(),
                audio_ms: Some(BEFORE_CALL_MS),
            }),
            function_call: Some(FunctionCall {
                name: TOOL.into(),
                arguments: json!({"order_number": "4471"}),
            }),
            after_call: Some(Reply {
                text: AFTER_CALL.into(),
                audio_ms: Some(AFTER_CALL_MS),
            }),
        }],
        ..Script::default()
    }
}

/// An OpenAI simulator, the services, and an agent on `number` whose tool is `webhook`,
/// with a deadline of `timeout`; returns the agent's id.
async fn start(number: &str, webhook: &Webhook, timeout: Duration) -> (OpenAiSim, Harness, String) {
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let harness = Harness::start(
        StoreKind::from_env(),
        &switchboard_tests::realtime_url(&openai),
        None,
    )
    .await;
    let created = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent(number, &webhook.url, timeout)),
        })
        .await
        .unwrap()
        .into_inner();
    (openai, harness, created.id)
}

/// Calls `number`, asks about the order at once and hangs up once the answer after the
/// tool call has had time to play (the call is ~3 s in when the model calls the tool).
async fn call(harness: &Harness, number: &str) {
    let talk =
        TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_millis(10_000));
    let mut spec =
        CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    spec.to = number.into();
    let record = Caller::start(spec).finished().await;
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}\n{}", harness.logs()));
    assert!(
        stream.warnings.is_empty(),
        "the sidecar sent what Twilio accepts: {:?}",
        stream.warnings
    );
    assert_eq!(
        stream.heard.total_bytes,
        (BEFORE_CALL_MS + AFTER_CALL_MS) * 8,
        "the caller heard the answer before the tool call and the one after it\n{}",
        harness.logs()
    );
}

/// The call's stored session once it is completed and its answer after the tool call is
/// stored.
async fn completed_session(harness: &Harness, agent_id: &str) -> pb::CallSession {
    let found = harness
        .agent_session_where(agent_id, Duration::from_secs(15), |session| {
            let answered = session.conversation.iter().any(|i| i.text == AFTER_CALL);
            session.status == pb::CallStatus::Completed as i32 && answered
        })
        .await;
    found.unwrap_or_else(|| {
        panic!(
            "the call was not completed with the answer after the tool call stored\n{}",
            harness.logs()
        )
    })
}

/// The one `function_call_output` the model got: `(call_id, output as JSON)`. Also checks
/// that a response was asked for after it, and that the model was answered once.
fn the_function_output(session: &SessionRecord) -> (String, Value) {
    assert_eq!(
        session.function_outputs.len(),
        1,
        "one function output: {:?}",
        session.function_outputs
    );
    let (call_id, output) = session.function_outputs[0].clone();
    let output: Value = serde_json::from_str(&output)
        .unwrap_or_else(|e| panic!("the output is JSON ({e}): {output:?}"));
    let events = &session.client_events;
    let output_sent = events
        .iter()
        .rposition(|e| e == "conversation.item.create")
        .unwrap_or_else(|| panic!("the output was sent as an item: {events:?}"));
    assert!(
        events[output_sent + 1..]
            .iter()
            .any(|e| e == "response.create"),
        "a response was asked for after the output: {events:?}"
    );
    assert_eq!(
        session.responses_created.len(),
        2,
        "the answer with the call, and the answer after it"
    );
    (call_id, output)
}

/// The stored FUNCTION_CALL, FUNCTION_CALL_OUTPUT and the answer after the call, in seq
/// order; returns the output item's payload.
fn stored_call_result_and_answer(stored: &pb::CallSession, call_id: &str) -> Value {
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let position = |kind: pb::ConversationItemKind, role: pb::ConversationRole| {
        stored
            .conversation
            .iter()
            .position(|i| i.kind == kind as i32 && i.role == role as i32)
            .unwrap_or_else(|| panic!("no {kind:?} item: {:?}", stored.conversation))
    };
    let call = position(
        pb::ConversationItemKind::FunctionCall,
        pb::ConversationRole::Assistant,
    );
    let output = position(
        pb::ConversationItemKind::FunctionCallOutput,
        pb::ConversationRole::Tool,
    );
    let answer = stored
        .conversation
        .iter()
        .position(|i| i.role == pb::ConversationRole::Assistant as i32 && i.text == AFTER_CALL)
        .unwrap_or_else(|| panic!("no answer after the call: {:?}", stored.conversation));
    assert!(
        call < output && output < answer,
        "call, result, answer in order: {:?}",
        stored.conversation
    );
    // What the model said before calling the tool is stored too, heard in full. (An
    // assistant transcript is stored once its audio has played, so the call, which the
    // model made while that audio was still queued at Twilio, may come before it.)
    let before = stored
        .conversation
        .iter()
        .find(|i| i.role == pb::ConversationRole::Assistant as i32 && i.text == BEFORE_CALL)
        .unwrap_or_else(|| panic!("no answer before the call: {:?}", stored.conversation));
    assert!(before.payload_json.is_empty(), "{before:?}");

    let call = &stored.conversation[call];
    assert_eq!(call.text, TOOL);
    let payload: Value = serde_json::from_str(&call.payload_json).unwrap();
    assert_eq!(
        payload,
        json!({"call_id": call_id, "name": TOOL, "arguments": {"order_number": "4471"}})
    );
    let output = &stored.conversation[output];
    let payload: Value = serde_json::from_str(&output.payload_json).unwrap();
    assert_eq!(payload["call_id"], call_id, "{payload}");
    payload
}

// --- tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_answered_by_its_webhook_and_the_model_speaks_the_result() {
    let number = "+14155550141";
    let webhook = Webhook::start(Duration::ZERO).await;
    let (openai, harness, agent_id) = start(number, &webhook, Duration::from_secs(5)).await;

    call(&harness, number).await;
    let stored = completed_session(&harness, &agent_id).await;

    // The webhook got the call: which call, which tool call, and the model's arguments.
    let requests = webhook.requests();
    assert_eq!(requests.len(), 1, "one webhook request: {requests:?}");
    let request = &requests[0];
    let tool_call_id = request["tool_call_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("a tool_call_id: {request}"))
        .to_owned();
    assert_eq!(
        *request,
        json!({
            "call_id": stored.id,
            "tool_call_id": tool_call_id,
            "name": TOOL,
            "arguments": {"order_number": "4471"},
        })
    );

    // The model got the webhook's reply, for that tool call, and answered after it.
    let session = openai.records().last().expect("an openai session");
    let (call_id, output) = the_function_output(&session);
    assert_eq!(call_id, tool_call_id);
    assert_eq!(output, webhook_reply());

    // The record: the call, its result, then the answer, in order.
    let payload = stored_call_result_and_answer(&stored, &call_id);
    assert_eq!(
        payload,
        json!({"call_id": call_id, "output": webhook_reply()})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_whose_webhook_misses_its_deadline_gives_the_model_an_error_and_the_call_goes_on() {
    let number = "+14155550142";
    let webhook = Webhook::start(Duration::from_secs(3)).await;
    let (openai, harness, agent_id) = start(number, &webhook, Duration::from_millis(500)).await;

    call(&harness, number).await;
    let stored = completed_session(&harness, &agent_id).await;

    // The webhook was called, and too slow.
    let requests = webhook.requests();
    assert_eq!(requests.len(), 1, "one webhook request: {requests:?}");
    assert_eq!(requests[0]["arguments"], json!({"order_number": "4471"}));

    // The model was told the tool failed, and went on.
    let session = openai.records().last().expect("an openai session");
    let (call_id, output) = the_function_output(&session);
    assert_eq!(requests[0]["tool_call_id"], call_id);
    let error = output["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the output is an error: {output}"));
    assert!(error.contains(TOOL), "the error names the tool: {error}");
    assert!(
        output.get("status").is_none(),
        "no late webhook reply: {output}"
    );

    // The record says why.
    let payload = stored_call_result_and_answer(&stored, &call_id);
    assert_eq!(payload["output"], output, "{payload}");
    assert_eq!(payload["error"]["code"], "tool.timeout", "{payload}");
}
