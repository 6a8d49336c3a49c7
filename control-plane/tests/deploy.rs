//! deploy/ must speak the names `config.rs` reads: a renamed variable fails here, not
//! in a cluster.

use switchboard_control_plane::config as c;

#[test]
fn every_variable_in_the_manifests_is_one_the_control_plane_reads() {
    let known = [
        c::ENV_GRPC_ADDR,
        c::ENV_STORE,
        c::ENV_LOG,
        c::ENV_LOG_FORMAT,
        c::ENV_API_TOKEN,
        c::ENV_TLS_CERT,
        c::ENV_TLS_KEY,
        c::ENV_TLS_CLIENT_CA,
        c::ENV_DEFAULT_AGENT_ID,
        c::ENV_TOOL_SIGNING_SECRET,
        c::ENV_TWILIO_ACCOUNT_SID,
        c::ENV_TWILIO_AUTH_TOKEN,
        c::ENV_TWILIO_API_KEY,
        c::ENV_TWILIO_API_SECRET,
        c::ENV_TWILIO_CA_FILE,
        c::ENV_TOOL_CA_FILE,
        c::ENV_TWILIO_API_URL,
        c::ENV_VOICE_WEBHOOK_URL,
        c::ENV_STATUS_WEBHOOK_URL,
        c::ENV_EVENT_RETENTION,
        c::ENV_METRICS_ADDR,
        c::ENV_ORPHAN_TIMEOUT,
    ];
    let manifest = include_str!("../../deploy/kubernetes/control-plane.yaml");
    let mut seen = 0;
    for line in manifest.lines() {
        let Some(rest) = line
            .trim_start()
            .trim_start_matches("- ")
            .trim_start_matches('{')
            .strip_prefix("name: ")
        else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|ch| ch.is_ascii_uppercase() || *ch == '_')
            .collect();
        if name.starts_with("SWITCHBOARD_") || name.starts_with("TWILIO_") {
            assert!(
                known.contains(&name.as_str()),
                "deploy/ sets {name}, which the control plane does not read"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "expected the manifest to configure the control plane, found {seen} variables"
    );
}
