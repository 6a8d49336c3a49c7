//! `X-Twilio-Signature` against the vectors computed with twilio-python 9.13.0:
//! `fixtures/twilio-signature-test-vectors.json`.

use serde_json::Value;
use switchboard_twilio::signature::{
    body_sha256_hex, string_to_sign, RequestValidator, SignatureError,
};

const VECTORS: &str = include_str!("fixtures/twilio-signature-test-vectors.json");

struct Vector {
    name: String,
    url: String,
    params: Vec<(String, String)>,
    body: Option<String>,
    string_to_sign: Option<String>,
    signature: String,
    raw: Value,
}

fn fixture() -> (RequestValidator, Vec<Vector>) {
    let file: Value = serde_json::from_str(VECTORS).expect("vectors are json");
    let token = file["_about"]["auth_token"].as_str().expect("token");
    let vectors = file["vectors"]
        .as_array()
        .expect("array")
        .iter()
        .map(|raw| {
            let mut params = Vec::new();
            let no_params = serde_json::Map::new();
            let given = raw.get("params").and_then(Value::as_object);
            for (name, value) in given.unwrap_or(&no_params) {
                match value {
                    Value::String(value) => params.push((name.clone(), value.clone())),
                    Value::Array(values) => {
                        for value in values {
                            params.push((name.clone(), value.as_str().expect("str").to_owned()));
                        }
                    }
                    other => panic!("unexpected param {other}"),
                }
            }
            Vector {
                name: raw["name"].as_str().expect("name").to_owned(),
                url: raw["url"].as_str().expect("url").to_owned(),
                params,
                body: raw["body"].as_str().map(str::to_owned),
                string_to_sign: raw["string_to_sign"].as_str().map(str::to_owned),
                signature: raw["expected_signature"].as_str().expect("sig").to_owned(),
                raw: raw.clone(),
            }
        })
        .collect();
    (RequestValidator::new(token), vectors)
}

fn vector(name: &str) -> Vector {
    fixture()
        .1
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn validator() -> RequestValidator {
    fixture().0
}

fn form_body(params: &[(String, String)]) -> String {
    serde_urlencoded::to_string(params).expect("encode form")
}

#[test]
fn every_vector_computes_the_expected_signature() {
    let (validator, vectors) = fixture();
    assert_eq!(vectors.len(), 7);
    for v in &vectors {
        if let Some(expected) = &v.string_to_sign {
            assert_eq!(&string_to_sign(&v.url, &v.params), expected, "{}", v.name);
        }
        assert_eq!(
            validator.compute(&v.url, &v.params),
            v.signature,
            "{}",
            v.name
        );
    }
}

#[test]
fn every_vector_validates() {
    let (validator, vectors) = fixture();
    for v in &vectors {
        let result = match (&v.body, v.raw["method"].as_str()) {
            (Some(body), _) => {
                assert_eq!(
                    body_sha256_hex(body.as_bytes()),
                    v.raw["body_sha256_hex"].as_str().expect("hash"),
                    "{}",
                    v.name
                );
                validator.validate_json(&v.url, body.as_bytes(), &v.signature)
            }
            (None, Some("GET")) => validator.validate_url(&v.url, &v.signature),
            (None, _) => {
                let body = form_body(&v.params);
                assert_eq!(
                    validator.validate_form_body(&v.url, body.as_bytes(), &v.signature),
                    Ok(()),
                    "{} from the raw body",
                    v.name
                );
                validator.validate(&v.url, &v.params, &v.signature)
            }
        };
        assert_eq!(result, Ok(()), "{}", v.name);
    }
}

#[test]
fn a_signature_over_the_port_form_validates_against_the_portless_url() {
    let v = vector("port-variant");
    assert_eq!(v.raw["sdk_validate_against_portless_url"], true);
    let validator = validator();
    let portless = v.url.replace(":443", "");
    assert_eq!(portless, vector("voice-webhook-form-post").url);
    assert_eq!(
        validator.validate(&portless, &v.params, &v.signature),
        Ok(())
    );
    assert_eq!(validator.validate(&v.url, &v.params, &v.signature), Ok(()));
    // And the other way round: the portless signature on a request seen with the port.
    let plain = vector("voice-webhook-form-post");
    assert_eq!(
        validator.validate(&v.url, &plain.params, &plain.signature),
        Ok(())
    );
}

#[test]
fn the_websocket_upgrade_is_signed_over_the_wss_url() {
    let v = vector("media-stream-websocket-upgrade");
    let validator = validator();
    assert_eq!(validator.validate_url(&v.url, &v.signature), Ok(()));
    let as_seen_by_the_server = v.url.replacen("wss://", "https://", 1);
    assert_eq!(
        validator.validate_url(&as_seen_by_the_server, &v.signature),
        Err(SignatureError::Mismatch)
    );
    let with_port = v.url.replacen(".com/", ".com:443/", 1);
    assert_eq!(validator.validate_url(&with_port, &v.signature), Ok(()));
}

#[test]
fn repeated_values_sort_and_duplicates_count_once() {
    let v = vector("repeated-param");
    let validator = validator();
    let mut reversed = v.params.clone();
    reversed.reverse();
    assert_eq!(validator.validate(&v.url, &reversed, &v.signature), Ok(()));
    let mut doubled = v.params.clone();
    doubled.push(("Tag".to_owned(), "a".to_owned()));
    assert_eq!(validator.compute(&v.url, &doubled), v.signature);
}

#[test]
fn tampered_form_requests_fail() {
    let validator = validator();
    let v = vector("voice-webhook-form-post");
    let check = |url: &str, params: &[(String, String)], signature: &str| {
        validator.validate(url, params, signature)
    };
    assert_eq!(check(&v.url, &v.params, &v.signature), Ok(()));

    let mut changed = v.params.clone();
    changed[0].1.push('0');
    assert_eq!(
        check(&v.url, &changed, &v.signature),
        Err(SignatureError::Mismatch)
    );

    let mut extra = v.params.clone();
    extra.push(("Injected".to_owned(), "1".to_owned()));
    assert_eq!(
        check(&v.url, &extra, &v.signature),
        Err(SignatureError::Mismatch)
    );

    let mut missing = v.params.clone();
    missing.pop();
    assert_eq!(
        check(&v.url, &missing, &v.signature),
        Err(SignatureError::Mismatch)
    );

    let other_path = v.url.replace("/voice", "/voice2");
    assert_eq!(
        check(&other_path, &v.params, &v.signature),
        Err(SignatureError::Mismatch)
    );

    let http = v.url.replacen("https", "http", 1);
    assert_eq!(
        check(&http, &v.params, &v.signature),
        Err(SignatureError::Mismatch)
    );

    let mut flipped = v.signature.clone().into_bytes();
    flipped[3] ^= 1;
    let flipped = String::from_utf8(flipped).expect("ascii");
    assert_eq!(
        check(&v.url, &v.params, &flipped),
        Err(SignatureError::Mismatch)
    );

    for signature in [
        "",
        "R27/gWgiUgfeWH0K3mg5jA5/cf0",
        " R27/gWgiUgfeWH0K3mg5jA5/cf0=",
    ] {
        assert_eq!(
            check(&v.url, &v.params, signature),
            Err(SignatureError::Mismatch)
        );
    }

    let stranger = RequestValidator::new("00000000000000000000000000000000");
    assert_eq!(
        stranger.validate(&v.url, &v.params, &v.signature),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_query_string_is_signed_as_configured_not_reordered() {
    let v = vector("status-callback-form-post-with-query");
    let validator = validator();
    let reordered = v.url.replace(
        "callId=65a9f001c2b3d4e5f6a7b8c9&attempt=2",
        "attempt=2&callId=65a9f001c2b3d4e5f6a7b8c9",
    );
    assert_ne!(reordered, v.url);
    assert_eq!(
        validator.validate(&reordered, &v.params, &v.signature),
        Err(SignatureError::Mismatch)
    );
    let get = vector("get-request");
    let decoded = get.url.replace("%2B", "+");
    assert_eq!(
        validator.validate_url(&decoded, &get.signature),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn tampered_json_requests_fail() {
    let v = vector("json-body");
    let validator = validator();
    let body = v.body.clone().expect("body");
    assert_eq!(
        validator.validate_json(&v.url, body.as_bytes(), &v.signature),
        Ok(())
    );

    let tampered = body.replace("stream-started", "stream-stopped");
    assert_eq!(
        validator.validate_json(&v.url, tampered.as_bytes(), &v.signature),
        Err(SignatureError::BodyHashMismatch)
    );

    // Re-pointing bodySHA256 at the tampered body breaks the URL's signature instead.
    let repointed = format!(
        "https://cp.example.com/api/twilio/events?bodySHA256={}",
        body_sha256_hex(tampered.as_bytes())
    );
    assert_eq!(
        validator.validate_json(&repointed, tampered.as_bytes(), &v.signature),
        Err(SignatureError::Mismatch)
    );

    let no_hash = "https://cp.example.com/api/twilio/events";
    assert_eq!(
        validator.validate_json(no_hash, body.as_bytes(), &v.signature),
        Err(SignatureError::MissingBodyHash)
    );
    assert_eq!(
        validator.validate_json(
            &format!("{no_hash}?bodySHA256="),
            body.as_bytes(),
            &v.signature
        ),
        Err(SignatureError::MissingBodyHash)
    );
}
