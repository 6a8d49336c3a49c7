//! TwiML the control plane redirects live calls to, and the redirect itself.
//!
//! The fallback when the AI is unavailable (the agent's message, then a transfer to its
//! handoff target or a hang-up), and a transfer to humans on request (`HandoffService`,
//! or the model's `transfer_to_human` tool through the call stream).

use switchboard_twilio::twiml::{Conference, Dial, Number, Response, Say};

use crate::domain::{AgentSettings, CallStatus, FallbackAction, HandoffTarget};

/// Said when an agent has no fallback message of its own.
pub const DEFAULT_APOLOGY: &str =
    "We are sorry, but we cannot take your call right now. Please try again later.";

/// Where a redirected call goes, and the status its session ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub twiml: String,
    pub status: CallStatus,
    /// Set when the call is transferred.
    pub target: Option<HandoffTarget>,
}

/// Said before a transfer when the request names no line of its own.
pub const DEFAULT_TRANSFER_LINE: &str = "Please hold while I connect you to a person.";

/// A transfer to `target`, else to the agent's handoff target; `None` when neither
/// exists.
pub fn transfer(
    agent: Option<&AgentSettings>,
    target: Option<HandoffTarget>,
    say: &str,
) -> Option<Redirect> {
    let target = target.or_else(|| agent.and_then(|a| a.handoff_target.clone()))?;
    let line = if say.trim().is_empty() {
        DEFAULT_TRANSFER_LINE
    } else {
        say
    };
    let dial = match &target {
        HandoffTarget::Conference(name) => Dial::conference(Conference::new(name.clone())),
        HandoffTarget::PhoneNumber(number) => Dial::number(Number::new(number.clone())),
    };
    let twiml = Response::new()
        .say(Say::new(line))
        .dial(dial.clone())
        .to_xml()
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "transfer line unusable; using the built-in one");
            Response::new()
                .say(Say::new(DEFAULT_TRANSFER_LINE))
                .dial(dial)
                .to_xml()
                .unwrap_or_default()
        });
    Some(Redirect {
        twiml,
        status: CallStatus::HandedOff,
        target: Some(target),
    })
}

/// The fallback of `agent` (or the built-in apology and a hang-up without one).
pub fn fallback(agent: Option<&AgentSettings>) -> Redirect {
    let message = agent
        .map(|a| a.fallback.message.as_str())
        .filter(|m| !m.trim().is_empty())
        .unwrap_or(DEFAULT_APOLOGY);
    let transfer_to = agent
        .filter(|a| a.fallback.action == FallbackAction::Transfer)
        .and_then(|a| a.handoff_target.clone());
    let mut response = Response::new().say(Say::new(message));
    let status = match &transfer_to {
        Some(HandoffTarget::Conference(name)) => {
            response = response.dial(Dial::conference(Conference::new(name.clone())));
            CallStatus::HandedOff
        }
        Some(HandoffTarget::PhoneNumber(number)) => {
            response = response.dial(Dial::number(Number::new(number.clone())));
            CallStatus::HandedOff
        }
        None => {
            response = response.hangup();
            CallStatus::Failed
        }
    };
    let twiml = response.to_xml().unwrap_or_else(|e| {
        // Only a message with characters XML cannot carry gets here.
        tracing::warn!(error = %e, "fallback message unusable; using the built-in apology");
        Response::new()
            .say(Say::new(DEFAULT_APOLOGY))
            .hangup()
            .to_xml()
            .unwrap_or_default()
    });
    Redirect {
        twiml,
        status,
        target: transfer_to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Fallback;

    #[test]
    fn a_transfer_goes_to_the_named_target_or_the_agents() {
        let mut agent = crate::store::conformance::agent("Transfer", &[]);
        agent.handoff_target = Some(HandoffTarget::PhoneNumber("+815012345678".into()));
        let own = transfer(Some(&agent), None, "").unwrap();
        assert!(
            own.twiml.contains(DEFAULT_TRANSFER_LINE)
                && own.twiml.contains("<Number>+815012345678</Number>"),
            "{}",
            own.twiml
        );
        let named = transfer(
            Some(&agent),
            Some(HandoffTarget::Conference("vip".into())),
            "One moment.",
        )
        .unwrap();
        assert!(
            named.twiml.contains("<Say>One moment.</Say>")
                && named.twiml.contains("<Conference>vip</Conference>"),
            "{}",
            named.twiml
        );
        assert_eq!(named.status, CallStatus::HandedOff);
        agent.handoff_target = None;
        assert_eq!(transfer(Some(&agent), None, ""), None);
    }

    #[test]
    fn the_fallback_says_the_message_then_transfers_or_hangs_up() {
        let mut agent = crate::store::conformance::agent("Fallback", &[]);
        agent.fallback = Fallback {
            message: "ただいま混み合っております。".into(),
            action: FallbackAction::Transfer,
        };
        agent.handoff_target = Some(HandoffTarget::Conference("support".into()));
        let transfer = fallback(Some(&agent));
        assert_eq!(transfer.status, CallStatus::HandedOff);
        assert!(
            transfer
                .twiml
                .contains("<Say>ただいま混み合っております。</Say>"),
            "{}",
            transfer.twiml
        );
        assert!(
            transfer.twiml.contains("<Conference>support</Conference>"),
            "{}",
            transfer.twiml
        );

        agent.fallback.action = FallbackAction::HangUp;
        let hang_up = fallback(Some(&agent));
        assert_eq!(hang_up.status, CallStatus::Failed);
        assert!(hang_up.twiml.contains("<Hangup />"), "{}", hang_up.twiml);

        let nobody = fallback(None);
        assert!(nobody.twiml.contains(DEFAULT_APOLOGY));
        assert_eq!(nobody.target, None);
    }
}
