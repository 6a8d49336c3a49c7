//! The control plane's client of Twilio's REST API — the only component that calls it.
//!
//! [`TwilioApi`] is the seam: [`HttpTwilioApi`] speaks to Twilio (or to the Twilio
//! simulator, via `SWITCHBOARD_TWILIO_API_URL`) with Basic auth — the account SID and
//! auth token, or an API key SID and secret — and form bodies built by
//! `switchboard-twilio`; tests may put a fake of Twilio's endpoints behind it.
//!
//! Throttling (429, error 20429) and brief outages are ridden out with bounded retries;
//! `twilio_api/retry.rs` says which requests are repeated and why creating a call is
//! treated differently from updating one.

use std::time::Duration;

use async_trait::async_trait;
use switchboard_twilio::rest::{CallResource, CreateCall, ErrorResponse, UpdateCall};
use tokio::time::Instant;

use crate::config::{RestCredentials, Secret, TwilioConfig};
use crate::http_client::error_chain;

mod retry;
#[cfg(test)]
mod tests;

pub use retry::{Failure, Idempotency, RetryPolicy, TOO_MANY_REQUESTS};

/// Deadline of one REST request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A REST call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with an error (`code` is Twilio's error code when it sent one).
    #[error("twilio answered HTTP {status}: {message} (code {code})")]
    Rejected {
        status: u16,
        code: u32,
        message: String,
    },
    #[error("twilio unreachable: {0}")]
    Unreachable(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Twilio answered success with a body we cannot use.
    #[error("unexpected answer from twilio: {0}")]
    Unexpected(String),
}

/// What the control plane asks of Twilio.
#[async_trait]
pub trait TwilioApi: Send + Sync + std::fmt::Debug + 'static {
    /// `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`: redirect a live call
    /// to new TwiML, or end it.
    async fn update_call(&self, call_sid: &str, update: &UpdateCall) -> Result<(), TwilioError>;

    /// `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`: place a call. Returns the new
    /// Call resource, whose `sid` is always set.
    async fn create_call(&self, call: &CreateCall) -> Result<CallResource, TwilioError>;

    /// `GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`: the call as Twilio
    /// sees it now (its `status` above all). Asked once, without retries: the caller
    /// (the orphan sweeper) asks again on its next round.
    async fn fetch_call(&self, call_sid: &str) -> Result<CallResource, TwilioError>;
}

/// Twilio's REST API over HTTPS.
#[derive(Debug, Clone)]
pub struct HttpTwilioApi {
    client: reqwest::Client,
    base_url: String,
    account_sid: String,
    /// The Basic auth user: the API key SID, or the account SID.
    user: String,
    password: Secret,
    retry: RetryPolicy,
}

impl HttpTwilioApi {
    /// `None` when no complete credentials are configured (see
    /// [`TwilioConfig::rest_credentials`]). `client` should come from `http_client::build`.
    pub fn from_config(config: &TwilioConfig, client: reqwest::Client) -> Option<Self> {
        let RestCredentials {
            account_sid,
            user,
            password,
        } = config.rest_credentials()?;
        Some(Self {
            client,
            base_url: config.api_url.clone(),
            account_sid,
            user,
            password,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// POSTs `form` to `path`, repeating it as `retry.rs` allows for a request of
    /// `kind`. A success answer is returned; an error answer becomes
    /// [`TwilioError::Rejected`] with Twilio's code and message.
    async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
        kind: Idempotency,
    ) -> Result<reqwest::Response, TwilioError> {
        let started = Instant::now();
        let mut failed = 0;
        loop {
            let (error, failure) = match self.post_once(path, form).await {
                Ok(response) => return Ok(response),
                Err(failed_attempt) => failed_attempt,
            };
            failed += 1;
            let Some(delay) =
                self.retry
                    .next_delay(kind, failure, failed, started.elapsed(), fastrand::f64())
            else {
                return Err(error);
            };
            tracing::warn!(
                path,
                attempt = failed,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "twilio request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn post_once(
        &self,
        path: &str,
        form: &[(String, String)],
    ) -> Result<reqwest::Response, (TwilioError, Failure)> {
        let sent = self
            .client
            .post(format!("{}{path}", self.base_url))
            .basic_auth(&self.user, Some(self.password.expose()))
            .form(form)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let failure = if e.is_connect() {
                    Failure::NotSent
                } else {
                    Failure::NoAnswer
                };
                let error = TwilioError::Unreachable(error_chain(&e.without_url()));
                return Err((error, failure));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, chrono::Utc::now()));
        let body: ErrorResponse = response.json().await.unwrap_or_default();
        let code = body.code.unwrap_or_default();
        let failure = Failure::of_answer(status.as_u16(), code, retry_after);
        let error = TwilioError::Rejected {
            status: status.as_u16(),
            code,
            message: body.message.unwrap_or_else(|| "no message".to_owned()),
        };
        Err((error, failure))
    }
}

#[async_trait]
impl TwilioApi for HttpTwilioApi {
    async fn update_call(&self, call_sid: &str, update: &UpdateCall) -> Result<(), TwilioError> {
        update
            .validate()
            .map_err(|e| TwilioError::Invalid(e.to_string()))?;
        let path = UpdateCall::path(&self.account_sid, call_sid);
        self.post(&path, &update.to_form(), Idempotency::Idempotent)
            .await?;
        Ok(())
    }

    async fn create_call(&self, call: &CreateCall) -> Result<CallResource, TwilioError> {
        call.validate()
            .map_err(|e| TwilioError::Invalid(e.to_string()))?;
        let path = CreateCall::path(&self.account_sid);
        let response = self
            .post(&path, &call.to_form(), Idempotency::CreatesResource)
            .await?;
        let created: CallResource = response
            .json()
            .await
            .map_err(|e| TwilioError::Unexpected(e.without_url().to_string()))?;
        match &created.sid {
            Some(sid) if !sid.is_empty() => Ok(created),
            _ => Err(TwilioError::Unexpected(
                "the created call has no sid".to_owned(),
            )),
        }
    }

    async fn fetch_call(&self, call_sid: &str) -> Result<CallResource, TwilioError> {
        let path = UpdateCall::path(&self.account_sid, call_sid);
        let sent = self
            .client
            .get(format!("{}{path}", self.base_url))
            .basic_auth(&self.user, Some(self.password.expose()))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| TwilioError::Unreachable(error_chain(&e.without_url())))?;
        let status = sent.status();
        if !status.is_success() {
            let body: ErrorResponse = sent.json().await.unwrap_or_default();
            return Err(TwilioError::Rejected {
                status: status.as_u16(),
                code: body.code.unwrap_or_default(),
                message: body.message.unwrap_or_else(|| "no message".to_owned()),
            });
        }
        sent.json()
            .await
            .map_err(|e| TwilioError::Unexpected(e.without_url().to_string()))
    }
}
