use super::*;
use crate::openai::faults::Trigger;

fn request(uri: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = Request::builder().uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("valid request")
}

fn key() -> Secret {
    Secret::new("sk-sim")
}

#[test]
fn openai_ga_and_beta_are_told_apart_by_the_header() {
    let auth = ("Authorization", "Bearer sk-sim");
    let ga = check(
        &request("/v1/realtime?model=gpt-realtime", &[auth]),
        Some(&key()),
        &[],
    )
    .expect("accepted");
    assert_eq!(ga.dialect, Dialect::Ga);
    assert_eq!(ga.model, "gpt-realtime");
    let beta = check(
        &request(
            "/v1/realtime?model=gpt-4o-realtime-preview",
            &[auth, ("OpenAI-Beta", "realtime=v1")],
        ),
        Some(&key()),
        &[],
    )
    .expect("accepted");
    assert_eq!(beta.dialect, Dialect::Beta);
}

#[test]
fn azure_paths_choose_dialect_and_model_parameter() {
    let auth = ("api-key", "sk-sim");
    let ga = check(
        &request("/openai/v1/realtime?model=my%20deployment", &[auth]),
        Some(&key()),
        &[],
    )
    .expect("accepted");
    assert_eq!(
        (ga.dialect, ga.model.as_str()),
        (Dialect::Ga, "my deployment")
    );
    let preview = check(
        &request(
            "/openai/realtime?api-version=2025-04-01-preview&deployment=rt",
            &[auth],
        ),
        Some(&key()),
        &[],
    )
    .expect("accepted");
    assert_eq!(
        (preview.dialect, preview.model.as_str()),
        (Dialect::Beta, "rt")
    );
    let no_version = check(
        &request("/openai/realtime?deployment=rt", &[auth]),
        Some(&key()),
        &[],
    );
    assert_eq!(no_version.map_err(|r| r.status), Err(400));
}

#[test]
fn wrong_or_missing_keys_get_401_and_missing_model_400() {
    let status = |uri: &str, headers: &[(&str, &str)]| {
        check(&request(uri, headers), Some(&key()), &[]).map_err(|r| (r.status, r.code))
    };
    assert_eq!(
        status("/v1/realtime?model=m", &[]).err(),
        Some((401, "missing_api_key"))
    );
    assert_eq!(
        status("/v1/realtime?model=m", &[("Authorization", "Bearer nope")]).err(),
        Some((401, "invalid_api_key"))
    );
    assert_eq!(
        status("/v1/realtime", &[("Authorization", "Bearer sk-sim")]).err(),
        Some((400, "missing_required_parameter"))
    );
    assert_eq!(
        status("/v2/other?model=m", &[("Authorization", "Bearer sk-sim")]).err(),
        Some((404, "not_found"))
    );
    assert!(check(&request("/v1/realtime?model=m", &[]), None, &[]).is_ok());
}

#[test]
fn faults_come_from_the_path_prefix_and_the_query() {
    let info = check(
        &request(
            "/faults/drop@5ev,rate-limit/v1/realtime?model=m&sim_fault=stall%40100ms",
            &[],
        ),
        None,
        &[Fault::Expire(Trigger::AfterMs(9))],
    )
    .expect("accepted");
    assert_eq!(
        info.faults,
        vec![
            Fault::Expire(Trigger::AfterMs(9)),
            Fault::Drop(Trigger::AfterEvents(5)),
            Fault::RateLimit(Trigger::Immediately),
            Fault::Stall(Trigger::AfterMs(100)),
        ]
    );
    assert_eq!(info.path, "/faults/drop@5ev,rate-limit/v1/realtime");
    let refused = check(
        &request("/v1/realtime?model=m&sim_fault=refuse=429", &[]),
        None,
        &[],
    );
    assert_eq!(refused.map_err(|r| r.status), Err(429));
    for bad in ["boom", "reset"] {
        let uri = format!("/v1/realtime?model=m&sim_fault={bad}");
        let refused = check(&request(&uri, &[]), None, &[]);
        assert_eq!(refused.map_err(|r| r.status), Err(400), "{bad}");
    }
}

#[test]
fn refusals_carry_an_openai_error_body() {
    let refusal = Refusal::new(503, "server_error", "service_unavailable", "busy");
    let response = refusal.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value =
        serde_json::from_str(response.body().as_deref().unwrap_or_default()).expect("json body");
    assert_eq!(body["error"]["code"], "service_unavailable");
}

#[test]
fn percent_decoding_handles_escapes_and_garbage() {
    assert_eq!(percent_decode("a%20b+c"), "a b c");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
    assert_eq!(percent_decode("%E3%81%82"), "あ");
}
