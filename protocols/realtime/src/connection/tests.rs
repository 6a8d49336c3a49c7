use super::*;

fn params(provider: Provider, endpoint: &str) -> ConnectParams {
    ConnectParams {
        provider,
        endpoint: endpoint.into(),
        model: "gpt-realtime".into(),
        auth: Some(Auth::ApiKey(Secret::new("sk-test-123"))),
    }
}

fn azure(api_version: Option<&str>) -> Provider {
    Provider::Azure {
        api_version: api_version.map(str::to_owned),
    }
}

fn url(provider: Provider, endpoint: &str, model: &str) -> Result<String, ConnectionError> {
    ConnectParams {
        model: model.into(),
        ..params(provider, endpoint)
    }
    .url()
}

#[test]
fn openai_ga_and_beta() {
    let ga = params(Provider::OpenAi, OPENAI_URL);
    assert_eq!(
        ga.url().as_deref(),
        Ok("wss://api.openai.com/v1/realtime?model=gpt-realtime")
    );
    assert_eq!(
        ga.headers().get("authorization"),
        Some("Bearer sk-test-123")
    );
    assert_eq!(ga.headers().len(), 1);
    assert_eq!(ga.dialect(), Dialect::Ga);
    let beta = params(Provider::OpenAiBeta, OPENAI_URL);
    assert_eq!(beta.url(), ga.url());
    assert_eq!(beta.headers().get("OpenAI-Beta"), Some("realtime=v1"));
    assert_eq!(beta.dialect(), Dialect::Beta);
}

#[test]
fn http_and_bare_forms_of_the_openai_endpoint_become_the_same_url() {
    let expected = "wss://api.openai.com/v1/realtime?model=gpt-realtime";
    for endpoint in [
        "wss://api.openai.com/v1/realtime",
        "https://api.openai.com/v1/realtime",
        "https://api.openai.com/v1/realtime/",
        "HTTPS://api.openai.com",
        "wss://api.openai.com/",
        "  wss://api.openai.com  ",
    ] {
        assert_eq!(
            url(Provider::OpenAi, endpoint, "gpt-realtime").as_deref(),
            Ok(expected),
            "{endpoint}"
        );
    }
    assert_eq!(
        url(Provider::OpenAi, "http://127.0.0.1:8765", "m").as_deref(),
        Ok("ws://127.0.0.1:8765/v1/realtime?model=m")
    );
    assert_eq!(
        url(Provider::OpenAi, "ws://[::1]:8765/gateway/rt", "m").as_deref(),
        Ok("ws://[::1]:8765/gateway/rt?model=m")
    );
}

#[test]
fn azure_ga_and_preview() {
    let ga = params(azure(None), "https://contoso.openai.azure.com/");
    assert_eq!(
        ga.url().as_deref(),
        Ok("wss://contoso.openai.azure.com/openai/v1/realtime?model=gpt-realtime")
    );
    assert_eq!(ga.headers().get("api-key"), Some("sk-test-123"));
    assert_eq!(ga.headers().get("authorization"), None);
    assert_eq!(ga.dialect(), Dialect::Ga);

    let preview = params(
        azure(Some("2025-04-01-preview")),
        "https://contoso.openai.azure.com",
    );
    assert_eq!(
        preview.url().as_deref(),
        Ok("wss://contoso.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime")
    );
    assert_eq!(preview.dialect(), Dialect::Beta);
    assert_eq!(preview.headers().get("OpenAI-Beta"), None);

    let entra = ConnectParams {
        auth: Some(Auth::BearerToken(Secret::new("eyJ0"))),
        ..preview
    };
    assert_eq!(entra.headers().get("Authorization"), Some("Bearer eyJ0"));
    assert_eq!(entra.headers().get("api-key"), None);
}

#[test]
fn an_azure_url_with_its_own_api_version_is_the_preview_endpoint() {
    let endpoint = "wss://contoso.openai.azure.com/openai/realtime?api-version=2024-10-01-preview";
    let p = params(azure(None), endpoint);
    assert_eq!(p.dialect(), Dialect::Beta);
    assert_eq!(
        p.url().as_deref(),
        Ok("wss://contoso.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=gpt-realtime")
    );
    // The version in the URL is not given a second time.
    let both = params(azure(Some("2025-04-01-preview")), endpoint);
    assert_eq!(both.url(), p.url());
}

#[test]
fn a_url_that_names_its_model_or_deployment_keeps_it() {
    assert_eq!(
        url(
            Provider::OpenAi,
            "wss://api.openai.com/v1/realtime?model=gpt-realtime-mini",
            "gpt-realtime"
        )
        .as_deref(),
        Ok("wss://api.openai.com/v1/realtime?model=gpt-realtime-mini")
    );
    assert_eq!(
        url(
            azure(None),
            "https://r.openai.azure.com/openai/realtime?api-version=v&deployment=dep",
            ""
        )
        .as_deref(),
        Ok("wss://r.openai.azure.com/openai/realtime?api-version=v&deployment=dep")
    );
    // Other parameters (a gateway's) are kept and the model is added after them.
    assert_eq!(
        url(
            Provider::OpenAi,
            "https://gw.example.com/rt?tenant=a%20b&x",
            "m"
        )
        .as_deref(),
        Ok("wss://gw.example.com/rt?tenant=a%20b&x&model=m")
    );
    // `models=` is another parameter, not `model=`.
    assert_eq!(
        url(Provider::OpenAi, "wss://h/v1/realtime?models=x", "m").as_deref(),
        Ok("wss://h/v1/realtime?models=x&model=m")
    );
}

#[test]
fn added_values_are_percent_encoded() {
    assert_eq!(
        url(
            azure(None),
            "https://r.openai.azure.com",
            "my realtime/é&x=1"
        )
        .as_deref(),
        Ok("wss://r.openai.azure.com/openai/v1/realtime?model=my%20realtime%2F%C3%A9%26x%3D1")
    );
    assert_eq!(
        url(
            azure(Some("2025 preview")),
            "https://r.openai.azure.com",
            "d"
        )
        .as_deref(),
        Ok("wss://r.openai.azure.com/openai/realtime?api-version=2025%20preview&deployment=d")
    );
}

#[test]
fn a_missing_model_is_an_error_naming_it() {
    assert_eq!(
        url(Provider::OpenAi, OPENAI_URL, " "),
        Err(ConnectionError::Missing("model"))
    );
    assert_eq!(
        url(azure(None), "https://r.openai.azure.com", ""),
        Err(ConnectionError::Missing("deployment"))
    );
}

#[test]
fn bad_endpoints_are_refused_with_the_reason() {
    for (endpoint, reason) in [
        ("127.0.0.1:4010", "must start with"),
        ("ftp://api.openai.com", "must start with"),
        ("wss://", "names no host"),
        ("https:///v1/realtime", "names no host"),
        ("wss://user:sk-secret@api.openai.com", "credentials"),
        ("wss://api.openai.com/v1/realtime#x", "fragment"),
        ("wss://api.openai.com/v1 realtime", "whitespace"),
        ("", "must start with"),
    ] {
        let p = params(Provider::OpenAi, endpoint);
        let err = p.check_endpoint().expect_err(endpoint);
        assert!(err.to_string().contains(reason), "{endpoint}: {err}");
        assert!(!err.to_string().contains("sk-secret"), "{err}");
        assert_eq!(p.url(), Err(err));
    }
}

#[test]
fn host_port_and_tls_follow_the_scheme() {
    let hp = |endpoint: &str| params(Provider::OpenAi, endpoint).host_port();
    assert_eq!(hp(OPENAI_URL), Ok(("api.openai.com".into(), 443, true)));
    assert_eq!(
        hp("http://127.0.0.1:8765/v1"),
        Ok(("127.0.0.1".into(), 8765, false))
    );
    assert_eq!(hp("wss://[::1]:9443"), Ok(("::1".into(), 9443, true)));
    assert_eq!(hp("ws://[::1]"), Ok(("::1".into(), 80, false)));
    assert!(hp("wss://h:port").is_err());
}

#[test]
fn secrets_stay_out_of_debug() {
    for provider in [Provider::OpenAi, Provider::OpenAiBeta, azure(None)] {
        let p = params(provider, OPENAI_URL);
        let shown = format!("{p:?} {:?}", p.headers());
        assert!(!shown.contains("sk-test-123"), "{shown}");
        assert!(shown.contains("****"), "{shown}");
    }
}

#[test]
fn no_credentials_no_auth_header() {
    let p = ConnectParams {
        auth: None,
        ..params(Provider::OpenAi, "ws://127.0.0.1:1")
    };
    assert!(p.headers().is_empty());
}
