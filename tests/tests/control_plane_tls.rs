//! The sidecar reaches the control plane over TLS, so the bearer token never crosses a
//! network in clear: the real binaries, certificates from a private CA, a whole call
//! placed by the simulated Twilio caller.
//!
//! With server TLS the call completes and its transcript is stored; with mutual TLS the
//! sidecar's client certificate is what lets it in, and clients without one (or with one
//! from another CA) are refused; a sidecar that does not trust the control plane's CA
//! gives callers the fallback and says why in its log.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_sim::openai::{OpenAiSim, Reply, Script, SimConfig, Turn};
use switchboard_sim::tls::TestCa;
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, TalkScript, Verb};
use switchboard_tests::{
    eventually, ControlPlaneTls, Harness, HarnessOptions, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const NUMBER: &str = "+14155550170";
const QUESTION: &str = "Hello, is this Acme?";
const ANSWER: &str = "Yes, this is Acme. How can I help?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_completes_and_is_stored_over_tls_with_a_private_ca() {
    let ca = TestCa::new("Switchboard e2e CA");
    let (openai, harness) = start(ControlPlaneTls::server(&ca), Vec::new()).await;
    assert!(harness.control_plane_url.starts_with("https://localhost:"));
    let agent_id = create_agent(&harness).await;

    place_call_and_check_the_transcript(&harness, &openai, &agent_id).await;
    let cp_log = harness.control_plane.output();
    assert!(cp_log.contains("grpc served over tls"), "{cp_log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_the_sidecar_and_refuses_clients_without_a_certificate_of_the_ca() {
    let ca = TestCa::new("Switchboard e2e CA");
    let tls = ControlPlaneTls::mutual(&ca);
    let (openai, harness) = start(tls.clone(), Vec::new()).await;
    let agent_id = create_agent(&harness).await;

    place_call_and_check_the_transcript(&harness, &openai, &agent_id).await;

    // The CA alone is not enough: the control plane wants a client certificate.
    let without = ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(&tls.ca_pem));
    let refused = list_sessions(&harness.control_plane_url, without).await;
    assert_refused(refused, "no client certificate");

    // Nor is a certificate from another CA.
    let stranger = TestCa::new("Another CA").issue(&["intruder"]);
    let other = ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&stranger.cert_pem, &stranger.key_pem));
    let refused = list_sessions(&harness.control_plane_url, other).await;
    assert_refused(refused, "another CA's certificate");

    // The harness's client, with the CA's client certificate, is let in.
    let admitted = list_sessions(&harness.control_plane_url, tls.client_config()).await;
    assert_eq!(
        admitted.map_err(|s| s.to_string()),
        Ok(1),
        "the call's session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_without_a_client_certificate_cannot_open_calls_under_mutual_tls() {
    let ca = TestCa::new("Switchboard e2e CA");
    // Empty values count as unset: this sidecar trusts the CA but has no certificate.
    let no_identity = vec![
        ("SWITCHBOARD_CONTROL_PLANE_CLIENT_CERT", String::new()),
        ("SWITCHBOARD_CONTROL_PLANE_CLIENT_KEY", String::new()),
    ];
    let (openai, harness) = start(ControlPlaneTls::mutual(&ca), no_identity).await;
    create_agent(&harness).await;

    let record = Caller::start(call(&harness)).finished().await;
    assert_fallback(&harness, &openai, &record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_does_not_trust_the_ca_gives_the_fallback_and_logs_the_certificate_problem()
{
    let ca = TestCa::new("Switchboard e2e CA");
    let untrusting = vec![("SWITCHBOARD_CONTROL_PLANE_CA_FILE", String::new())];
    let (openai, harness) = start(ControlPlaneTls::server(&ca), untrusting).await;
    create_agent(&harness).await;

    let record = Caller::start(call(&harness)).finished().await;
    assert_fallback(&harness, &openai, &record);
    let logged = eventually(Duration::from_secs(5), || async {
        let log = harness.sidecar.output();
        log.lines()
            .any(|line| line.contains("open inbound call failed") && line.contains("UnknownIssuer"))
            .then_some(())
    })
    .await;
    assert!(
        logged.is_some(),
        "the sidecar names the certificate problem\n{}",
        harness.logs()
    );
    assert!(!harness.sidecar.output().contains("e2e-api-token"));
}

/// An OpenAI simulator answering the question, and the services with `tls`; `sidecar_env`
/// overrides the sidecar's TLS settings.
async fn start(
    tls: ControlPlaneTls,
    sidecar_env: Vec<(&'static str, String)>,
) -> (OpenAiSim, Harness) {
    let script = Script {
        turns: vec![Turn {
            caller: QUESTION.into(),
            reply: Some(Reply {
                text: ANSWER.into(),
                audio_ms: Some(1_500),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    };
    let openai = OpenAiSim::bind(
        "127.0.0.1:0",
        SimConfig {
            script: Arc::new(script),
            ..SimConfig::for_test()
        },
    )
    .await
    .expect("the openai simulator binds");
    let options = HarnessOptions {
        sidecar_env,
        ..HarnessOptions::default()
    }
    .control_plane_tls(tls);
    let url = format!("{}/v1/realtime", openai.base_url());
    let harness = Harness::start_with(StoreKind::from_env(), &url, options).await;
    (openai, harness)
}

async fn create_agent(harness: &Harness) -> String {
    let agent = pb::AgentSettings {
        name: "Reception".into(),
        phone_numbers: vec![NUMBER.into()],
        voice: "marin".into(),
        instructions: "You answer the phone for Acme.".into(),
        input_transcription: Some(pb::InputTranscription {
            model: "gpt-4o-transcribe".into(),
            language: "en".into(),
            prompt: String::new(),
        }),
        ..Default::default()
    };
    harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent),
        })
        .await
        .expect("the agent is created over tls")
        .into_inner()
        .id
}

fn call(harness: &Harness) -> CallSpec {
    let talk =
        TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_millis(6_000));
    let mut spec =
        CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    spec.to = NUMBER.into();
    spec
}

/// Places a call and waits for it to be stored, completed, with both turns in order.
async fn place_call_and_check_the_transcript(
    harness: &Harness,
    openai: &OpenAiSim,
    agent_id: &str,
) {
    let record = Caller::start(call(harness)).finished().await;
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}\n{}", harness.logs()));
    assert!(
        stream.received.media > 0,
        "the caller heard the assistant\n{}",
        harness.logs()
    );
    assert_eq!(openai.records().len(), 1, "one openai session");
    let stored = harness
        .agent_session_where(agent_id, Duration::from_secs(15), |s| {
            s.status == pb::CallStatus::Completed as i32 && s.conversation.len() >= 2
        })
        .await
        .unwrap_or_else(|| panic!("the call was not stored completed\n{}", harness.logs()));
    assert_eq!(stored.twilio_call_sid, record.call_sid);
    let position = |role: pb::ConversationRole, text: &str| {
        stored
            .conversation
            .iter()
            .position(|i| i.role == role as i32 && i.text == text)
    };
    let user = position(pb::ConversationRole::User, QUESTION);
    let assistant = position(pb::ConversationRole::Assistant, ANSWER);
    assert!(
        matches!((user, assistant), (Some(u), Some(a)) if u < a),
        "turns missing or out of order: {:?}",
        stored.conversation
    );
}

/// The caller heard the sidecar's own apology, no stream was opened and OpenAI was never
/// reached.
fn assert_fallback(
    harness: &Harness,
    openai: &OpenAiSim,
    record: &switchboard_sim::twilio::CallRecord,
) {
    let said: Vec<&str> = record
        .verbs
        .iter()
        .filter_map(|verb| match verb {
            Verb::Say { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        said,
        [switchboard_media_sidecar::config::DEFAULT_FALLBACK_MESSAGE],
        "{record:?}\n{}",
        harness.logs()
    );
    assert!(record.streams.is_empty() && openai.records().is_empty());
}

/// The connection was refused, so the RPC never reached a handler (which would have
/// answered with a status of its own, such as UNAUTHENTICATED, and no transport cause).
/// Under TLS 1.3 the client finishes its side of the handshake before the server checks
/// the certificate, so depending on timing the refusal shows as a connect error
/// (UNAVAILABLE), the server's `CertificateRequired` alert (UNKNOWN) or the connection
/// closing under the first request (CANCELLED): always with a transport error as cause.
fn assert_refused(result: Result<usize, tonic::Status>, client: &str) {
    let status = match result {
        Err(status) => status,
        Ok(n) => panic!("{client}: admitted, listed {n} sessions"),
    };
    let from_the_connection = std::error::Error::source(&status)
        .is_some_and(|source| source.is::<tonic::transport::Error>());
    assert!(
        from_the_connection || status.code() == tonic::Code::Unavailable,
        "{client}: {status:?}"
    );
}

/// `ListCallSessions` through a fresh channel with `tls` and the harness's token.
async fn list_sessions(url: &str, tls: ClientTlsConfig) -> Result<usize, tonic::Status> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("a valid url")
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)
        .expect("a usable client tls config")
        .connect_lazy();
    let mut client = CallSessionServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::ListCallSessionsRequest::default());
    request.metadata_mut().insert(
        "authorization",
        "Bearer e2e-api-token".parse().expect("ascii"),
    );
    request.set_timeout(Duration::from_secs(5));
    let reply = client.list_call_sessions(request).await?;
    Ok(reply.into_inner().call_sessions.len())
}
