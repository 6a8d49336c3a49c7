//! The control plane's client of Twilio's REST API — the only component that calls it.
//!
//! [`TwilioApi`] is the seam: [`HttpTwilioApi`] speaks to Twilio (or to the Twilio
//! simulator, via `SWITCHBOARD_TWILIO_API_URL`) with Basic auth and form bodies built by
//! `switchboard-twilio`; tests may put a fake of Twilio's endpoints behind it.

use std::time::Duration;

use async_trait::async_trait;
use switchboard_twilio::rest::{CallResource, CreateCall, ErrorResponse, UpdateCall};

use crate::config::{Secret, TwilioConfig};

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
}

/// Twilio's REST API over HTTPS.
#[derive(Debug, Clone)]
pub struct HttpTwilioApi {
    client: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth_token: Secret,
}

impl HttpTwilioApi {
    /// `None` when the account SID or auth token is not configured.
    pub fn from_config(config: &TwilioConfig) -> Option<Self> {
        let (Some(account_sid), Some(auth_token)) = (&config.account_sid, &config.auth_token)
        else {
            return None;
        };
        Some(Self {
            client: reqwest::Client::new(),
            base_url: config.api_url.clone(),
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
        })
    }
}

impl HttpTwilioApi {
    /// POSTs `form` to `path` with Basic auth; a success answer is returned, an error
    /// answer becomes [`TwilioError::Rejected`] with Twilio's code and message.
    async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
    ) -> Result<reqwest::Response, TwilioError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(form)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| TwilioError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: ErrorResponse = response.json().await.unwrap_or_default();
        Err(TwilioError::Rejected {
            status: status.as_u16(),
            code: body.code.unwrap_or_default(),
            message: body.message.unwrap_or_else(|| "no message".to_owned()),
        })
    }
}

#[async_trait]
impl TwilioApi for HttpTwilioApi {
    async fn update_call(&self, call_sid: &str, update: &UpdateCall) -> Result<(), TwilioError> {
        update
            .validate()
            .map_err(|e| TwilioError::Invalid(e.to_string()))?;
        let path = UpdateCall::path(&self.account_sid, call_sid);
        self.post(&path, &update.to_form()).await?;
        Ok(())
    }

    async fn create_call(&self, call: &CreateCall) -> Result<CallResource, TwilioError> {
        call.validate()
            .map_err(|e| TwilioError::Invalid(e.to_string()))?;
        let path = CreateCall::path(&self.account_sid);
        let response = self.post(&path, &call.to_form()).await?;
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
}
