//! Twilio's shared words: call status, direction, AMD result, callback event names, HTTP
//! method and the like, used by [`webhooks`](crate::webhooks), [`twiml`](crate::twiml) and
//! [`rest`](crate::rest).
//!
//! Every open set of values (anything Twilio may extend) has a fallback variant holding the
//! unrecognised spelling, so a new value from Twilio is data, never a parse error. Each type
//! reads and writes its exact wire spelling (`as_str`, `Display`, `From<&str>`, serde as a
//! string). This module is not a parser of whole messages; see the modules named above.

use std::fmt;

/// Declares an enum of wire spellings with a fallback variant for values we do not know.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident or $fallback:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept exactly as spelled.
            $fallback(String),
        }

        impl $name {
            /// The exact wire spelling of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::$fallback(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(wire: &str) -> Self {
                match wire {
                    $( $wire => Self::$variant, )+
                    other => Self::$fallback(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(wire: String) -> Self {
                match wire.as_str() {
                    $( $wire => Self::$variant, )+
                    _ => Self::$fallback(wire),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;

            fn from_str(wire: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(wire))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(WireVisitor(std::marker::PhantomData::<$name>))
            }
        }
    };
}

/// Reads any of our string enums from a string, borrowed or not.
struct WireVisitor<T>(std::marker::PhantomData<T>);

impl<T: for<'a> From<&'a str> + From<String>> serde::de::Visitor<'_> for WireVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, wire: &str) -> Result<T, E> {
        Ok(T::from(wire))
    }

    fn visit_string<E: serde::de::Error>(self, wire: String) -> Result<T, E> {
        Ok(T::from(wire))
    }
}

string_enum! {
    /// A call's status: the Call resource's `status` and webhooks' `CallStatus`
    /// (docs/protocols.md §2.4). `initiated` appears only in callbacks.
    pub enum CallStatus or Unknown {
        /// `queued`: created, waiting to be dialled (e.g. behind the account's CPS limit).
        Queued = "queued",
        /// `initiated`: Twilio started dialling (callbacks only).
        Initiated = "initiated",
        /// `ringing`: the destination is ringing; also the first webhook of an inbound call.
        Ringing = "ringing",
        /// `in-progress`: answered.
        InProgress = "in-progress",
        /// `completed`: answered and ended normally.
        Completed = "completed",
        /// `busy`: the destination was busy.
        Busy = "busy",
        /// `failed`: could not be placed (bad number, carrier error).
        Failed = "failed",
        /// `no-answer`: rang out.
        NoAnswer = "no-answer",
        /// `canceled`: cancelled while queued or ringing.
        Canceled = "canceled",
    }
}

string_enum! {
    /// Which way a call goes: webhooks' `Direction`, the Call resource's `direction`.
    pub enum CallDirection or Other {
        /// `inbound`: someone called one of our numbers.
        Inbound = "inbound",
        /// `outbound-api`: created through `POST …/Calls.json`.
        OutboundApi = "outbound-api",
        /// `outbound-dial`: a child leg created by `<Dial>`.
        OutboundDial = "outbound-dial",
    }
}

string_enum! {
    /// Answering-machine detection result: `AnsweredBy` (docs/protocols.md §2.3).
    pub enum AnsweredBy or Other {
        /// `human`.
        Human = "human",
        /// `machine_start`: a machine, detected at the start of its greeting.
        MachineStart = "machine_start",
        /// `machine_end_beep`: a machine, greeting ended with a beep.
        MachineEndBeep = "machine_end_beep",
        /// `machine_end_silence`: a machine, greeting ended with silence.
        MachineEndSilence = "machine_end_silence",
        /// `machine_end_other`: a machine, greeting end detected otherwise.
        MachineEndOther = "machine_end_other",
        /// `fax`.
        Fax = "fax",
        /// `unknown`: Twilio could not tell (this is Twilio's own value).
        Unknown = "unknown",
    }
}

string_enum! {
    /// `StreamEvent` of a `<Stream statusCallback>` request (docs/protocols.md §2.1).
    pub enum StreamEvent or Unknown {
        /// `stream-started`.
        Started = "stream-started",
        /// `stream-stopped`.
        Stopped = "stream-stopped",
        /// `stream-error`; the reason is in `StreamError`.
        Error = "stream-error",
    }
}

string_enum! {
    /// `StatusCallbackEvent` of a conference status callback request (docs/protocols.md §2.1).
    pub enum ConferenceCallbackEvent or Unknown {
        /// `conference-start`.
        ConferenceStart = "conference-start",
        /// `conference-end`.
        ConferenceEnd = "conference-end",
        /// `participant-join`.
        ParticipantJoin = "participant-join",
        /// `participant-leave`.
        ParticipantLeave = "participant-leave",
        /// `participant-mute`.
        ParticipantMute = "participant-mute",
        /// `participant-unmute`.
        ParticipantUnmute = "participant-unmute",
        /// `participant-hold`.
        ParticipantHold = "participant-hold",
        /// `participant-unhold`.
        ParticipantUnhold = "participant-unhold",
        /// `participant-modify`.
        ParticipantModify = "participant-modify",
        /// `participant-speech-start`.
        ParticipantSpeechStart = "participant-speech-start",
        /// `participant-speech-stop`.
        ParticipantSpeechStop = "participant-speech-stop",
        /// `announcement-end`.
        AnnouncementEnd = "announcement-end",
        /// `announcement-fail`.
        AnnouncementFail = "announcement-fail",
    }
}

string_enum! {
    /// A conference event to subscribe to: `<Conference statusCallbackEvent>` (space-separated)
    /// and REST `ConferenceStatusCallbackEvent` (repeated key).
    pub enum ConferenceEvent or Other {
        /// `start`.
        Start = "start",
        /// `end`.
        End = "end",
        /// `join`.
        Join = "join",
        /// `leave`.
        Leave = "leave",
        /// `mute`.
        Mute = "mute",
        /// `hold`.
        Hold = "hold",
        /// `modify`.
        Modify = "modify",
        /// `speaker`.
        Speaker = "speaker",
        /// `announcement`.
        Announcement = "announcement",
    }
}

string_enum! {
    /// A call-progress event to subscribe to: REST `StatusCallbackEvent` (repeated key) and
    /// `<Number statusCallbackEvent>` (space-separated). Default on Twilio's side: `completed`.
    pub enum CallProgressEvent or Other {
        /// `initiated`.
        Initiated = "initiated",
        /// `ringing`.
        Ringing = "ringing",
        /// `answered` (the callback then carries `CallStatus=in-progress`).
        Answered = "answered",
        /// `completed` (the callback carries the final status).
        Completed = "completed",
    }
}

string_enum! {
    /// A conference participant's `status` in the REST Participant resource.
    pub enum ParticipantStatus or Unknown {
        /// `queued`.
        Queued = "queued",
        /// `connecting`.
        Connecting = "connecting",
        /// `ringing`.
        Ringing = "ringing",
        /// `connected`.
        Connected = "connected",
        /// `complete`.
        Complete = "complete",
        /// `failed`.
        Failed = "failed",
    }
}

string_enum! {
    /// A conference's `status` in the REST Conference resource.
    pub enum ConferenceStatus or Unknown {
        /// `init`: created, fewer than two participants so far.
        Init = "init",
        /// `in-progress`.
        InProgress = "in-progress",
        /// `completed`.
        Completed = "completed",
    }
}

string_enum! {
    /// When a conference beeps: `<Conference beep>` and REST participant `Beep`.
    pub enum Beep or Other {
        /// `true`: on enter and exit (Twilio's default).
        True = "true",
        /// `false`: never.
        False = "false",
        /// `onEnter`.
        OnEnter = "onEnter",
        /// `onExit`.
        OnExit = "onExit",
    }
}

string_enum! {
    /// Synchronous answering-machine detection mode: REST `MachineDetection`.
    pub enum MachineDetection or Other {
        /// `Enable`: answer as soon as human or machine is known.
        Enable = "Enable",
        /// `DetectMessageEnd`: for machines, wait for the end of the greeting.
        DetectMessageEnd = "DetectMessageEnd",
    }
}

/// The HTTP method Twilio uses for a callback or a TwiML fetch (`Method`, `…Method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    /// `GET`.
    Get,
    /// `POST` (Twilio's default everywhere we use it).
    #[default]
    Post,
}

// === impl CallStatus ===

impl CallStatus {
    /// True for the statuses a call never leaves: completed, busy, failed, no-answer, canceled.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Busy | Self::Failed | Self::NoAnswer | Self::Canceled
        )
    }
}

// === impl HttpMethod ===

impl HttpMethod {
    /// The wire spelling: `GET` or `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_spellings_round_trip_and_unknown_ones_are_kept() {
        for wire in [
            "queued",
            "initiated",
            "ringing",
            "in-progress",
            "completed",
            "busy",
            "failed",
            "no-answer",
            "canceled",
        ] {
            let status = CallStatus::from(wire);
            assert!(!matches!(status, CallStatus::Unknown(_)), "{wire}");
            assert_eq!(status.as_str(), wire);
        }
        assert_eq!(
            CallStatus::from("paused"),
            CallStatus::Unknown("paused".to_owned())
        );
        assert_eq!(CallStatus::from("paused").to_string(), "paused");
    }

    #[test]
    fn terminal_statuses_are_the_last_five() {
        assert!(!CallStatus::Queued.is_terminal());
        assert!(!CallStatus::Initiated.is_terminal());
        assert!(!CallStatus::Ringing.is_terminal());
        assert!(!CallStatus::InProgress.is_terminal());
        assert!(CallStatus::Completed.is_terminal());
        assert!(CallStatus::Busy.is_terminal());
        assert!(CallStatus::Failed.is_terminal());
        assert!(CallStatus::NoAnswer.is_terminal());
        assert!(CallStatus::Canceled.is_terminal());
    }

    #[test]
    fn enums_are_json_strings() {
        let json = serde_json::to_string(&AnsweredBy::MachineEndBeep).expect("serialize");
        assert_eq!(json, "\"machine_end_beep\"");
        let back: AnsweredBy = serde_json::from_str("\"unknown\"").expect("deserialize");
        assert_eq!(back, AnsweredBy::Unknown);
        let other: AnsweredBy = serde_json::from_str("\"robot\"").expect("deserialize");
        assert_eq!(other, AnsweredBy::Other("robot".to_owned()));
    }
}
