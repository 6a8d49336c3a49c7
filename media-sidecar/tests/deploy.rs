//! deploy/ must speak the names `config.rs` reads: a renamed variable fails here, not
//! in a cluster. And it must give a draining sidecar the time its drain takes.

use switchboard_media_sidecar::config as c;

#[test]
fn every_variable_in_the_manifests_is_one_the_sidecar_reads() {
    let known = [
        c::ENV_HTTP_ADDR,
        c::ENV_ADMIN_ADDR,
        c::ENV_CONTROL_PLANE_URL,
        c::ENV_CONTROL_PLANE_DISCOVERY,
        c::ENV_CONTROL_PLANE_CA_FILE,
        c::ENV_CONTROL_PLANE_CLIENT_CERT,
        c::ENV_CONTROL_PLANE_CLIENT_KEY,
        c::ENV_PUBLIC_URL,
        c::ENV_TWILIO_AUTH_TOKEN,
        c::ENV_OPENAI_API_KEY,
        c::ENV_OPENAI_URL,
        c::ENV_OPENAI_CA_FILE,
        c::ENV_AZURE_OPENAI_ENDPOINT,
        c::ENV_AZURE_OPENAI_API_KEY,
        c::ENV_AZURE_OPENAI_API_VERSION,
        c::ENV_AZURE_OPENAI_DEPLOYMENT,
        c::ENV_TLS_CERT,
        c::ENV_TLS_KEY,
        c::ENV_OPENAI_MODEL,
        c::ENV_STREAM_TOKEN_SECRET,
        c::ENV_STREAM_TOKEN_TTL,
        c::ENV_MAX_CALLS,
        c::ENV_DRAIN_GRACE,
        c::ENV_API_TOKEN,
        c::ENV_SIDECAR_ID,
        c::ENV_FALLBACK_MESSAGE,
        c::ENV_FALLBACK_NUMBER,
        c::ENV_LOG,
        c::ENV_LOG_FORMAT,
    ];
    let manifest = include_str!("../../deploy/kubernetes/media-sidecar.yaml");
    let mut seen = 0;
    for line in manifest.lines() {
        let trimmed = line
            .trim_start()
            .trim_start_matches("- ")
            .trim_start_matches('{');
        let Some(rest) = trimmed.strip_prefix("name: ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|ch| ch.is_ascii_uppercase() || *ch == '_')
            .collect();
        if name.starts_with("SWITCHBOARD_")
            || name.starts_with("TWILIO_")
            || name.starts_with("OPENAI_")
            || name.starts_with("AZURE_OPENAI_")
        {
            assert!(
                known.contains(&name.as_str()),
                "deploy/ sets {name}, which the sidecar does not read"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 10,
        "expected the manifest to configure the sidecar, found {seen} variables"
    );
    assert!(
        manifest.contains(switchboard_media_sidecar::metrics::ACTIVE_CALLS),
        "the autoscaler scales on the active-calls gauge"
    );
}

#[test]
fn the_manifest_lets_the_drain_and_the_cut_calls_finish_before_the_kill() {
    use switchboard_media_sidecar::http::{CLOSE_TIMEOUT, CUT_GRACE};

    let manifest = include_str!("../../deploy/kubernetes/media-sidecar.yaml");
    let value_after = |key: &str| -> String {
        let line = manifest
            .lines()
            .find(|line| line.contains(key))
            .unwrap_or_else(|| panic!("the manifest sets {key}"));
        let (_, rest) = line.split_once(key).expect("found above");
        rest.chars()
            .skip_while(|ch| !ch.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
    };
    let drain_grace: u64 = value_after(&format!("name: {},", c::ENV_DRAIN_GRACE))
        .parse()
        .expect("the drain grace in seconds");
    let termination: u64 = value_after("terminationGracePeriodSeconds:")
        .parse()
        .expect("the termination grace in seconds");
    assert!(
        manifest.contains(&format!("value: \"{drain_grace}s\"")),
        "the drain grace is written in seconds"
    );
    let needed = drain_grace + CUT_GRACE.as_secs() + CLOSE_TIMEOUT.as_secs();
    assert!(
        termination >= needed,
        "terminationGracePeriodSeconds ({termination}) must cover the drain grace, the cut \
         grace and the close ({needed} s)"
    );
}
