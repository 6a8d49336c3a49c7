//! The operator commands: `switchboard campaign …` and `switchboard dnc …` steer the
//! campaigns and the do-not-call list of a running control plane over its gRPC API.
//!
//! They reach it as the demo reaches an external one (`services::connect`: plaintext or
//! TLS with a private CA and an optional client certificate, the bearer token as
//! `authorization` metadata). Output is plain text, aligned, times in RFC 3339; errors
//! go to stderr with the control plane's status message, which names the offending
//! field. The exit code is 0 when all went well, 2 when some uploaded lines were refused
//! (the rest went in), 1 on any other error.

pub mod args;
pub mod campaign;
pub mod dnc;
pub mod output;
pub mod targets;
pub mod watch;

use std::path::PathBuf;

use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;

use crate::services::{self, ClientTls, Grpc};

/// The control plane's address when none is given.
pub const DEFAULT_CONTROL_PLANE: &str = "http://127.0.0.1:50051";

/// The help's heading of the connection options.
const HEADING: &str = "Control plane";

/// How to reach the control plane; accepted before or after the subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The control plane's gRPC URL: `http://` for plaintext, `https://` for TLS.
    #[arg(
        long = "control-plane",
        value_name = "URL",
        env = "SWITCHBOARD_CONTROL_PLANE",
        default_value = DEFAULT_CONTROL_PLANE,
        value_parser = http_url,
        global = true,
        help_heading = HEADING
    )]
    pub url: String,
    /// CA certificate (PEM) to trust for an https:// control plane, besides the public
    /// and the system's roots.
    #[arg(
        long = "control-plane-ca",
        value_name = "FILE",
        global = true,
        help_heading = HEADING
    )]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a control plane that requires one (mutual TLS).
    #[arg(
        long = "control-plane-cert",
        value_name = "FILE",
        requires = "client_key",
        global = true,
        help_heading = HEADING
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long = "control-plane-key",
        value_name = "FILE",
        requires = "client_cert",
        global = true,
        help_heading = HEADING
    )]
    pub client_key: Option<PathBuf>,
    /// Bearer token for the control plane's API.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SWITCHBOARD_API_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = HEADING
    )]
    pub token: Option<String>,
}

impl Connection {
    /// A `CampaignService` client on a new connection.
    pub async fn campaigns(&self) -> anyhow::Result<CampaignServiceClient<Grpc>> {
        let tls = ClientTls {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        let token = self.token.as_deref().filter(|t| !t.is_empty());
        let channel = services::connect(&self.url, &tls, token).await?;
        // Targets come 10,000 to a request; their results are as many.
        Ok(CampaignServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Largest gRPC message either way: an upload of 10,000 targets with their variables.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// An `http://` or `https://` URL with a host.
pub fn http_url(value: &str) -> Result<String, String> {
    let host = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match host {
        Some(host) if !host.is_empty() => Ok(value.to_owned()),
        _ => Err(
            "must be an http:// or https:// URL such as http://127.0.0.1:50051 or \
             https://control-plane.example.com:50051"
                .into(),
        ),
    }
}

/// How a command ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was done.
    Done,
    /// Some uploaded lines were refused; the others went in.
    SomeRefused,
}

impl Outcome {
    /// 0, or 2 for refused lines (1 is for errors).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::SomeRefused => 2,
        }
    }
}

/// A request the control plane refused or could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {code}: {message}{hint}")]
pub struct RpcError {
    /// What was asked, e.g. `pause campaign 01…`.
    pub what: String,
    /// The canonical name, e.g. `FAILED_PRECONDITION`.
    pub code: &'static str,
    pub message: String,
    hint: &'static str,
}

impl RpcError {
    /// `status` as the answer to `what`.
    pub fn new(what: impl Into<String>, status: &tonic::Status) -> Self {
        let hint = match status.code() {
            tonic::Code::Unauthenticated => {
                " (pass the control plane's token with --token or SWITCHBOARD_API_TOKEN)"
            }
            _ => "",
        };
        Self {
            what: what.into(),
            code: code_name(status.code()),
            message: explained(status),
            hint,
        }
    }
}

/// A closure for `map_err`: `status` as the answer to `what`.
pub fn rpc(what: impl Into<String>) -> impl FnOnce(tonic::Status) -> anyhow::Error {
    let what = what.into();
    move |status| RpcError::new(what, &status).into()
}

/// The status message; for a connection failure, with the reasons the status carries
/// only as its sources (refused, an unknown certificate issuer, …).
fn explained(status: &tonic::Status) -> String {
    let mut message = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The canonical gRPC name of `code`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpc_error_names_what_was_asked_the_code_and_the_message() {
        let status = tonic::Status::failed_precondition("cannot pause a canceled campaign");
        let error = RpcError::new("pause campaign c1", &status);
        assert_eq!(
            error.to_string(),
            "pause campaign c1: FAILED_PRECONDITION: cannot pause a canceled campaign"
        );
        let status = tonic::Status::unauthenticated("missing bearer token");
        assert!(RpcError::new("list campaigns", &status)
            .to_string()
            .ends_with("(pass the control plane's token with --token or SWITCHBOARD_API_TOKEN)"));
    }

    #[test]
    fn outcomes_have_their_exit_codes() {
        assert_eq!(Outcome::Done.exit_code(), 0);
        assert_eq!(Outcome::SomeRefused.exit_code(), 2);
    }
}
