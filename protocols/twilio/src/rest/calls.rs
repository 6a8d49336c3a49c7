//! Creating and updating calls: `POST …/Calls.json` and `POST …/Calls/{Sid}.json`.

use super::form::{account_path, segment, FormReader, FormWriter};
use super::{RestError, TWIML_MAX_CHARS};
use crate::vocabulary::{CallProgressEvent, HttpMethod, MachineDetection};

/// What an outbound call runs once answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallInstructions {
    /// `Url` (+ `Method`): Twilio fetches TwiML from here, like a voice webhook.
    Url {
        /// `Url`.
        url: String,
        /// `Method` (Twilio's default POST).
        method: Option<HttpMethod>,
    },
    /// `Twiml`: the document itself, at most [`TWIML_MAX_CHARS`] characters.
    Twiml(String),
    /// `ApplicationSid`: a TwiML App (`AP…`).
    ApplicationSid(String),
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` → `201` +
/// [`CallResource`](super::CallResource). Build with [`CreateCall::new`] and struct update
/// syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    /// `To`: E.164, SIP URI or client identity.
    pub to: String,
    /// `From`: a Twilio number or verified caller ID.
    pub from: String,
    /// `Url`/`Twiml`/`ApplicationSid`.
    pub instructions: CallInstructions,
    /// `StatusCallback`: receives the call-progress events.
    pub status_callback: Option<String>,
    /// `StatusCallbackMethod`.
    pub status_callback_method: Option<HttpMethod>,
    /// `StatusCallbackEvent`, one key per event (Twilio's default: `completed` only).
    pub status_callback_events: Vec<CallProgressEvent>,
    /// `FallbackUrl`: TwiML source if `Url` fails.
    pub fallback_url: Option<String>,
    /// `FallbackMethod`.
    pub fallback_method: Option<HttpMethod>,
    /// `Timeout`: seconds to ring (default 60, max 600).
    pub timeout_secs: Option<u32>,
    /// `TimeLimit`: longest the call may last, in seconds.
    pub time_limit_secs: Option<u32>,
    /// `CallerId`: for SIP/client destinations.
    pub caller_id: Option<String>,
    /// `SendDigits`: DTMF to play once answered (disables AMD).
    pub send_digits: Option<String>,
    /// `Record`.
    pub record: Option<bool>,
    /// `MachineDetection`.
    pub machine_detection: Option<MachineDetection>,
    /// `MachineDetectionTimeout`, seconds (default 30).
    pub machine_detection_timeout_secs: Option<u32>,
    /// `MachineDetectionSpeechThreshold`, ms (1000–6000, default 2400).
    pub machine_detection_speech_threshold_ms: Option<u32>,
    /// `MachineDetectionSpeechEndThreshold`, ms (500–5000).
    pub machine_detection_speech_end_threshold_ms: Option<u32>,
    /// `MachineDetectionSilenceTimeout`, ms (2000–10000, default 5000).
    pub machine_detection_silence_timeout_ms: Option<u32>,
    /// `AsyncAmd`: run detection in the background.
    pub async_amd: Option<bool>,
    /// `AsyncAmdStatusCallback`: receives `AnsweredBy`.
    pub async_amd_status_callback: Option<String>,
    /// `AsyncAmdStatusCallbackMethod`.
    pub async_amd_status_callback_method: Option<HttpMethod>,
    /// `CallToken`: from an inbound call's webhook, to forward its caller ID.
    pub call_token: Option<String>,
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json` → `200` +
/// [`CallResource`](super::CallResource): redirect a live call to new TwiML, or end it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateCall {
    /// `Url`: fetch new TwiML from here (ends a running `<Connect><Stream>`).
    pub url: Option<String>,
    /// `Method` for `Url`.
    pub method: Option<HttpMethod>,
    /// `Twiml`: run this document now. Ignored by Twilio if `Url` is also set.
    pub twiml: Option<String>,
    /// `Status`: `completed` hangs up a live call, `canceled` a queued or ringing one.
    pub status: Option<CallUpdateStatus>,
    /// `StatusCallback`.
    pub status_callback: Option<String>,
    /// `StatusCallbackMethod`.
    pub status_callback_method: Option<HttpMethod>,
    /// `FallbackUrl`.
    pub fallback_url: Option<String>,
    /// `FallbackMethod`.
    pub fallback_method: Option<HttpMethod>,
    /// `TimeLimit`, seconds.
    pub time_limit_secs: Option<u32>,
}

/// `Status` of [`UpdateCall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallUpdateStatus {
    /// `completed`: hang up an in-progress call.
    Completed,
    /// `canceled`: cancel a queued or ringing call.
    Canceled,
}

// === impl CallInstructions ===

impl CallInstructions {
    fn write(&self, form: &mut FormWriter) {
        match self {
            Self::Url { url, method } => {
                form.put("Url", url);
                form.method("Method", *method);
            }
            Self::Twiml(twiml) => form.put("Twiml", twiml),
            Self::ApplicationSid(sid) => form.put("ApplicationSid", sid),
        }
    }

    /// Twilio's precedence: `Url` wins over `Twiml` (the spec: "Twiml is ignored"), then
    /// `ApplicationSid`.
    fn read(form: &FormReader<'_>) -> Result<Self, RestError> {
        if let Some(url) = form.string("Url") {
            return Ok(Self::Url {
                url,
                method: form.method("Method")?,
            });
        }
        if let Some(twiml) = form.string("Twiml") {
            return Ok(Self::Twiml(twiml));
        }
        form.string("ApplicationSid")
            .map(Self::ApplicationSid)
            .ok_or(RestError::Instructions)
    }
}

// === impl CreateCall ===

impl CreateCall {
    /// A call from `from` to `to` running `instructions`, everything else left to Twilio.
    pub fn new(
        to: impl Into<String>,
        from: impl Into<String>,
        instructions: CallInstructions,
    ) -> Self {
        Self {
            to: to.into(),
            from: from.into(),
            instructions,
            status_callback: None,
            status_callback_method: None,
            status_callback_events: Vec::new(),
            fallback_url: None,
            fallback_method: None,
            timeout_secs: None,
            time_limit_secs: None,
            caller_id: None,
            send_digits: None,
            record: None,
            machine_detection: None,
            machine_detection_timeout_secs: None,
            machine_detection_speech_threshold_ms: None,
            machine_detection_speech_end_threshold_ms: None,
            machine_detection_silence_timeout_ms: None,
            async_amd: None,
            async_amd_status_callback: None,
            async_amd_status_callback_method: None,
            call_token: None,
        }
    }

    /// `/2010-04-01/Accounts/{AccountSid}/Calls.json`.
    pub fn path(account_sid: &str) -> String {
        format!("{}/Calls.json", account_path(account_sid))
    }

    /// Checks what Twilio would refuse: a `Twiml` over [`TWIML_MAX_CHARS`].
    pub fn validate(&self) -> Result<(), RestError> {
        match &self.instructions {
            CallInstructions::Twiml(twiml) => check_twiml(twiml),
            _ => Ok(()),
        }
    }

    /// The form body, repeated keys for lists, unset fields omitted.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut form = FormWriter(Vec::new());
        form.put("To", &self.to);
        form.put("From", &self.from);
        self.instructions.write(&mut form);
        form.opt("StatusCallback", self.status_callback.as_deref());
        form.method("StatusCallbackMethod", self.status_callback_method);
        form.repeated(
            "StatusCallbackEvent",
            &self.status_callback_events,
            CallProgressEvent::as_str,
        );
        form.opt("FallbackUrl", self.fallback_url.as_deref());
        form.method("FallbackMethod", self.fallback_method);
        form.num("Timeout", self.timeout_secs);
        form.num("TimeLimit", self.time_limit_secs);
        form.opt("CallerId", self.caller_id.as_deref());
        form.opt("SendDigits", self.send_digits.as_deref());
        form.bool("Record", self.record);
        form.opt(
            "MachineDetection",
            self.machine_detection
                .as_ref()
                .map(MachineDetection::as_str),
        );
        form.num(
            "MachineDetectionTimeout",
            self.machine_detection_timeout_secs,
        );
        form.num(
            "MachineDetectionSpeechThreshold",
            self.machine_detection_speech_threshold_ms,
        );
        form.num(
            "MachineDetectionSpeechEndThreshold",
            self.machine_detection_speech_end_threshold_ms,
        );
        form.num(
            "MachineDetectionSilenceTimeout",
            self.machine_detection_silence_timeout_ms,
        );
        // The spec types AsyncAmd as a string holding "true"/"false".
        form.bool("AsyncAmd", self.async_amd);
        form.opt(
            "AsyncAmdStatusCallback",
            self.async_amd_status_callback.as_deref(),
        );
        form.method(
            "AsyncAmdStatusCallbackMethod",
            self.async_amd_status_callback_method,
        );
        form.opt("CallToken", self.call_token.as_deref());
        form.0
    }

    /// Reads a form written by [`CreateCall::to_form`] (the simulator's side). Unknown fields
    /// are ignored.
    pub fn from_form(params: &[(String, String)]) -> Result<Self, RestError> {
        let form = FormReader(params);
        Ok(Self {
            to: form.required("To")?,
            from: form.required("From")?,
            instructions: CallInstructions::read(&form)?,
            status_callback: form.string("StatusCallback"),
            status_callback_method: form.method("StatusCallbackMethod")?,
            status_callback_events: form.repeated("StatusCallbackEvent"),
            fallback_url: form.string("FallbackUrl"),
            fallback_method: form.method("FallbackMethod")?,
            timeout_secs: form.num("Timeout")?,
            time_limit_secs: form.num("TimeLimit")?,
            caller_id: form.string("CallerId"),
            send_digits: form.string("SendDigits"),
            record: form.bool("Record")?,
            machine_detection: form.string("MachineDetection").map(MachineDetection::from),
            machine_detection_timeout_secs: form.num("MachineDetectionTimeout")?,
            machine_detection_speech_threshold_ms: form.num("MachineDetectionSpeechThreshold")?,
            machine_detection_speech_end_threshold_ms: form
                .num("MachineDetectionSpeechEndThreshold")?,
            machine_detection_silence_timeout_ms: form.num("MachineDetectionSilenceTimeout")?,
            async_amd: form.bool("AsyncAmd")?,
            async_amd_status_callback: form.string("AsyncAmdStatusCallback"),
            async_amd_status_callback_method: form.method("AsyncAmdStatusCallbackMethod")?,
            call_token: form.string("CallToken"),
        })
    }
}

// === impl UpdateCall ===

impl UpdateCall {
    /// Replace whatever the call is running with this TwiML.
    pub fn redirect_twiml(twiml: impl Into<String>) -> Self {
        Self {
            twiml: Some(twiml.into()),
            ..Self::default()
        }
    }

    /// Replace whatever the call is running with TwiML fetched from `url`.
    pub fn redirect_url(url: impl Into<String>, method: HttpMethod) -> Self {
        Self {
            url: Some(url.into()),
            method: Some(method),
            ..Self::default()
        }
    }

    /// Hang up a live call (`Status=completed`).
    pub fn hang_up() -> Self {
        Self {
            status: Some(CallUpdateStatus::Completed),
            ..Self::default()
        }
    }

    /// `/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`.
    pub fn path(account_sid: &str, call_sid: &str) -> String {
        format!(
            "{}/Calls/{}.json",
            account_path(account_sid),
            segment(call_sid)
        )
    }

    /// Checks what Twilio would refuse: a `Twiml` over [`TWIML_MAX_CHARS`].
    pub fn validate(&self) -> Result<(), RestError> {
        self.twiml.as_deref().map_or(Ok(()), check_twiml)
    }

    /// The form body, unset fields omitted.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut form = FormWriter(Vec::new());
        form.opt("Url", self.url.as_deref());
        form.method("Method", self.method);
        form.opt("Twiml", self.twiml.as_deref());
        form.opt("Status", self.status.map(CallUpdateStatus::as_str));
        form.opt("StatusCallback", self.status_callback.as_deref());
        form.method("StatusCallbackMethod", self.status_callback_method);
        form.opt("FallbackUrl", self.fallback_url.as_deref());
        form.method("FallbackMethod", self.fallback_method);
        form.num("TimeLimit", self.time_limit_secs);
        form.0
    }

    /// Reads a form written by [`UpdateCall::to_form`].
    pub fn from_form(params: &[(String, String)]) -> Result<Self, RestError> {
        let form = FormReader(params);
        let status = match form.string("Status").as_deref() {
            None => None,
            Some("completed") => Some(CallUpdateStatus::Completed),
            Some("canceled") => Some(CallUpdateStatus::Canceled),
            Some(_) => return Err(RestError::InvalidField("Status")),
        };
        Ok(Self {
            url: form.string("Url"),
            method: form.method("Method")?,
            twiml: form.string("Twiml"),
            status,
            status_callback: form.string("StatusCallback"),
            status_callback_method: form.method("StatusCallbackMethod")?,
            fallback_url: form.string("FallbackUrl"),
            fallback_method: form.method("FallbackMethod")?,
            time_limit_secs: form.num("TimeLimit")?,
        })
    }
}

// === impl CallUpdateStatus ===

impl CallUpdateStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Canceled => "canceled",
        }
    }
}

fn check_twiml(twiml: &str) -> Result<(), RestError> {
    let chars = twiml.chars().count();
    if chars > TWIML_MAX_CHARS {
        return Err(RestError::TwimlTooLong { chars });
    }
    Ok(())
}
