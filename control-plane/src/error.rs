//! Errors at the gRPC boundary: one map from what went wrong to a `tonic::Code`, so
//! handlers never hand-pick codes.

use tonic::{Code, Status};

use crate::domain::InvalidField;
use crate::events::WatchError;
use crate::store::StoreError;
use crate::twilio_api::TwilioError;

/// The codes our services answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    /// Optimistic concurrency lost: re-read and retry.
    Aborted,
    /// The request is valid but the resource's state refuses it (a final call).
    FailedPrecondition,
    /// A position that no longer exists (events too old to resume from).
    OutOfRange,
    Unavailable,
    Internal,
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Code {
        match code {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::Aborted => Code::Aborted,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::OutOfRange => Code::OutOfRange,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

/// The code for a store error.
pub fn store_error_code(e: &StoreError) -> ErrorCode {
    match e {
        StoreError::NotFound { .. } => ErrorCode::NotFound,
        StoreError::AlreadyExists(_) => ErrorCode::AlreadyExists,
        StoreError::VersionConflict { .. } => ErrorCode::Aborted,
        StoreError::Transition { .. } => ErrorCode::FailedPrecondition,
        StoreError::Append { .. } => ErrorCode::FailedPrecondition,
        StoreError::CampaignTransition { .. } | StoreError::CampaignFinal { .. } => {
            ErrorCode::FailedPrecondition
        }
        StoreError::BadPageToken(_) => ErrorCode::InvalidArgument,
        StoreError::Unavailable(_) => ErrorCode::Unavailable,
        StoreError::Internal(_) => ErrorCode::Internal,
    }
}

/// A store error as a gRPC status.
pub fn store_status(e: StoreError) -> Status {
    let code = store_error_code(&e);
    if code == ErrorCode::Internal {
        tracing::error!(error = %e, "store failure");
    }
    let message = match &e {
        StoreError::BadPageToken(_) => format!("page_token: {e}"),
        _ => e.to_string(),
    };
    Status::new(code.into(), message)
}

/// The code for a Twilio REST call that failed: a refusal is about the request or the
/// account (retrying the same request fails the same way); an outage, a 5xx or a 429 may
/// pass later.
pub fn twilio_error_code(e: &TwilioError) -> ErrorCode {
    match e {
        TwilioError::Rejected { status, .. } if *status == 429 || *status >= 500 => {
            ErrorCode::Unavailable
        }
        TwilioError::Rejected { .. } => ErrorCode::FailedPrecondition,
        TwilioError::Unreachable(_) | TwilioError::Unexpected(_) => ErrorCode::Unavailable,
        TwilioError::Invalid(_) => ErrorCode::InvalidArgument,
    }
}

/// A failed Twilio REST call as a gRPC status: `{context}: {error}` (the error names
/// Twilio's HTTP status, code and message).
pub fn twilio_status(context: &str, e: &TwilioError) -> Status {
    Status::new(twilio_error_code(e).into(), format!("{context}: {e}"))
}

/// The code for a watch that cannot start.
pub fn watch_error_code(e: &WatchError) -> ErrorCode {
    match e {
        WatchError::Malformed(_) => ErrorCode::InvalidArgument,
        WatchError::Gone(_) => ErrorCode::OutOfRange,
        WatchError::Unavailable(_) => ErrorCode::Unavailable,
    }
}

/// A watch that cannot start as a gRPC status; the message names `after_event_id` when
/// the id is the problem.
pub fn watch_status(e: &WatchError) -> Status {
    Status::new(watch_error_code(e).into(), e.to_string())
}

/// A rejected field as `INVALID_ARGUMENT` whose message starts with the field path.
pub fn invalid(e: InvalidField) -> Status {
    Status::new(ErrorCode::InvalidArgument.into(), e.to_string())
}

/// `INVALID_ARGUMENT` for a required field left empty.
pub fn required(field: &str) -> Status {
    invalid(InvalidField::new(field, "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallStatus, TransitionError};

    #[test]
    fn store_errors_map_to_the_documented_codes() {
        let transition = StoreError::Transition {
            call_id: "c1".into(),
            source: TransitionError {
                from: CallStatus::Completed,
                to: CallStatus::Failed,
            },
        };
        let status = store_status(transition);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("completed") && status.message().contains("failed"));
        let conflict = StoreError::VersionConflict {
            kind: "agent settings",
            id: "a".into(),
            expected: 1,
            actual: 2,
        };
        assert_eq!(store_status(conflict).code(), Code::Aborted);
        let refused = TwilioError::Rejected {
            status: 400,
            code: 21211,
            message: "Invalid 'To' Phone Number".into(),
        };
        let status = twilio_status("call c1", &refused);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().starts_with("call c1: ") && status.message().contains("21211"),
            "{}",
            status.message()
        );
        let busy = TwilioError::Rejected {
            status: 429,
            code: 20429,
            message: "Too Many Requests".into(),
        };
        assert_eq!(twilio_status("x", &busy).code(), Code::Unavailable);
        assert_eq!(
            store_status(StoreError::BadPageToken("x".into())).message(),
            "page_token: invalid page token \"x\""
        );
    }

    #[test]
    fn watch_errors_map_to_the_documented_codes_and_name_the_field() {
        let malformed = crate::events::EventId::decode("?").unwrap_err();
        let status = watch_status(&WatchError::Malformed(malformed));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with("after_event_id: "),
            "{}",
            status.message()
        );
        let status = watch_status(&WatchError::Gone("the events since are gone".into()));
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(
            status.message().starts_with("after_event_id: "),
            "{}",
            status.message()
        );
        let status = watch_status(&WatchError::Unavailable("database down".into()));
        assert_eq!(status.code(), Code::Unavailable);
    }
}
