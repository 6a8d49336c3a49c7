//! What the demo shows at the end, read back from the control plane: each call's
//! direction and status, one full transcript as stored, the campaign and its targets,
//! the barge-ins, the items stored, and the sidecar's relay latency.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_sim::twilio::CallRecord;

use crate::cli::campaign::counts;
use crate::cli::output::{self, Table};
use crate::latency::LatencyEstimate;

/// What a simulated caller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Asks, hears the answer out, hangs up.
    Plain,
    /// Talks over the assistant's answer.
    BargeIn,
    /// The Realtime API refuses the call's session: the agent's fallback answers.
    AiUnavailable,
}

impl CallKind {
    fn label(self) -> &'static str {
        match self {
            CallKind::Plain => "plain",
            CallKind::BargeIn => "barge-in",
            CallKind::AiUnavailable => "ai unavailable",
        }
    }
}

/// Where the demo's calls were recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataLocation {
    /// The embedded store in this directory.
    Embedded(PathBuf),
    /// MongoDB, in this database (the URI is not shown: it may hold credentials).
    Mongo { database: String },
    /// An external control plane's own store.
    External { url: String },
}

impl fmt::Display for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataLocation::Embedded(dir) => write!(
                f,
                "{} (embedded store; `control-plane --store {}` serves it)",
                dir.display(),
                dir.display()
            ),
            DataLocation::Mongo { database } => write!(
                f,
                "MongoDB database `{database}` (`control-plane --store <the same URI>` serves it)"
            ),
            DataLocation::External { url } => write!(f, "kept by the control plane at {url}"),
        }
    }
}

/// One call as stored.
#[derive(Debug, Clone)]
pub struct CallSummary {
    pub kind: CallKind,
    /// As stored (`Unspecified` when no session was found).
    pub direction: pb::CallDirection,
    /// The Twilio call SID.
    pub call_sid: String,
    /// The control plane's session id; empty when no session was found.
    pub call_id: String,
    pub status: pb::CallStatus,
    pub end_reason: String,
    /// Conversation items stored.
    pub items: usize,
    /// `clear`s the caller received (Twilio's side of a barge-in).
    pub clears: usize,
    /// Assistant answers stored as interrupted (the record's side of a barge-in).
    pub interrupted: usize,
    /// How long the call lasted, as the caller saw it.
    pub duration: Duration,
}

/// One stored conversation item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub seq: u64,
    pub role: String,
    pub text: String,
    /// `interrupted at N ms` for an answer cut by a barge-in.
    pub note: String,
}

/// The demo's campaign as read back once it was over (or the demo stopped waiting).
#[derive(Debug, Clone)]
pub struct CampaignSummary {
    pub id: String,
    pub name: String,
    /// A `pb::CampaignState`.
    pub state: i32,
    /// Targets per state.
    pub progress: pb::CampaignProgress,
    /// Every target, in the order they were planned.
    pub targets: Vec<pb::CampaignTarget>,
    /// From its creation until it was read over.
    pub elapsed: Duration,
}

impl CampaignSummary {
    /// The target called at `phone`.
    pub fn target(&self, phone: &str) -> Option<&pb::CampaignTarget> {
        self.targets.iter().find(|t| t.phone == phone)
    }
}

impl fmt::Display for CampaignSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\n== campaign {:?} ({}): {} after {:.1} s ==",
            self.name,
            self.id,
            output::campaign_state(self.state),
            self.elapsed.as_secs_f64()
        )?;
        // The states some target is in; `done 0` and `failed 0` are worth saying too.
        let states: Vec<String> = counts(&self.progress)
            .iter()
            .filter(|(state, count)| *count > 0 || ["done", "failed"].contains(state))
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        writeln!(
            f,
            "targets: {} ({})",
            self.progress.total,
            states.join(", ")
        )?;
        let mut table = Table::new(["phone", "name", "state", "attempts", "last error"]);
        for t in &self.targets {
            table.row([
                t.phone.clone(),
                t.name.clone(),
                output::target_state(t.state),
                t.attempts.to_string(),
                output::call_error(t.last_error.as_ref()),
            ]);
        }
        write!(f, "{table}")
    }
}

/// The end of the demo.
#[derive(Debug, Clone)]
pub struct Summary {
    pub calls: Vec<CallSummary>,
    /// The call whose transcript is shown, and the transcript.
    pub transcript_of: Option<String>,
    pub transcript: Vec<TranscriptLine>,
    /// Barge-ins handled: answers stored as interrupted.
    pub barge_ins: usize,
    /// Conversation items stored by this run's calls.
    pub items_stored: usize,
    /// Where they are kept.
    pub data: DataLocation,
    /// The campaign run alongside the calls (none against an external control plane).
    pub campaign: Option<CampaignSummary>,
    /// The sidecar's relay latency, or why it could not be read.
    pub relay_latency: Result<LatencyEstimate, String>,
    /// Things the reader should know (e.g. outbound calls skipped).
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

/// Whether nothing can change `status` any more.
pub fn is_final(status: pb::CallStatus) -> bool {
    use pb::CallStatus::*;
    matches!(
        status,
        Completed | Failed | Busy | NoAnswer | Canceled | HandedOff
    )
}

fn status_name(status: pb::CallStatus) -> &'static str {
    use pb::CallStatus::*;
    match status {
        Unspecified => "unknown",
        Queued => "queued",
        Ringing => "ringing",
        InProgress => "in-progress",
        Completed => "completed",
        Failed => "failed",
        Busy => "busy",
        NoAnswer => "no-answer",
        Canceled => "canceled",
        HandedOff => "handed-off",
    }
}

fn direction_name(direction: pb::CallDirection) -> &'static str {
    match direction {
        pb::CallDirection::Unspecified => "?",
        pb::CallDirection::Inbound => "inbound",
        pb::CallDirection::Outbound => "outbound",
    }
}

fn role_name(role: pb::ConversationRole) -> &'static str {
    use pb::ConversationRole::*;
    match role {
        Unspecified => "?",
        User => "caller",
        Assistant => "assistant",
        System => "system",
        Tool => "tool",
    }
}

impl Summary {
    /// Joins the callers' records with the stored sessions (same order); the latency,
    /// notes and elapsed time are added by the caller.
    pub fn new(
        kinds: &[CallKind],
        records: &[CallRecord],
        stored: &[Option<pb::CallSession>],
        data: DataLocation,
    ) -> Summary {
        let calls: Vec<CallSummary> = kinds
            .iter()
            .zip(records)
            .zip(stored)
            .map(|((kind, record), session)| CallSummary {
                kind: *kind,
                direction: session
                    .as_ref()
                    .map_or(pb::CallDirection::Unspecified, |s| s.direction()),
                call_sid: record.call_sid.clone(),
                call_id: session.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
                status: session
                    .as_ref()
                    .map_or(pb::CallStatus::Unspecified, |s| s.status()),
                end_reason: session
                    .as_ref()
                    .map(|s| s.end_reason.clone())
                    .unwrap_or_default(),
                items: session.as_ref().map_or(0, |s| s.conversation.len()),
                clears: record.streams.iter().map(|s| s.clears.len()).sum(),
                interrupted: session.as_ref().map_or(0, |s| {
                    transcript(s)
                        .iter()
                        .filter(|line| !line.note.is_empty())
                        .count()
                }),
                duration: record.duration,
            })
            .collect();
        // The most telling transcript: a barge-in call's, else the longest.
        let shown = kinds
            .iter()
            .zip(stored)
            .filter_map(|(kind, s)| Some((*kind, s.as_ref()?)))
            .max_by_key(|(kind, s)| (*kind == CallKind::BargeIn, s.conversation.len()))
            .map(|(_, s)| s);
        let transcript = shown.map(transcript).unwrap_or_default();
        Summary {
            items_stored: calls.iter().map(|c| c.items).sum(),
            barge_ins: calls.iter().map(|c| c.interrupted).sum(),
            calls,
            transcript_of: shown.map(|s| s.id.clone()),
            transcript,
            data,
            campaign: None,
            relay_latency: Err("not measured".to_owned()),
            notes: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Calls that reached a final status.
    pub fn finished_calls(&self) -> usize {
        self.calls.iter().filter(|c| is_final(c.status)).count()
    }
}

fn transcript(session: &pb::CallSession) -> Vec<TranscriptLine> {
    session
        .conversation
        .iter()
        .map(|item| {
            let payload: Option<serde_json::Value> = serde_json::from_str(&item.payload_json).ok();
            let note = payload
                .filter(|p| p["interrupted"] == true)
                .map(|p| format!("interrupted at {} ms", p["audio_end_ms"]))
                .unwrap_or_default();
            TranscriptLine {
                seq: item.seq,
                role: role_name(item.role()).to_owned(),
                text: item.text.clone(),
                note,
            }
        })
        .collect()
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n== calls ({:.1} s) ==", self.elapsed.as_secs_f64())?;
        writeln!(
            f,
            "{:<38} {:<9} {:<14} {:<11} {:<16} {:>5} {:>7}",
            "call id", "direction", "kind", "status", "end reason", "items", "length"
        )?;
        for call in &self.calls {
            let id = if call.call_id.is_empty() {
                format!("(no session for {})", call.call_sid)
            } else {
                call.call_id.clone()
            };
            // The simulator does not time a call that ends in a `<Dial>`.
            let length = if call.duration < Duration::from_millis(50) {
                "-".to_owned()
            } else {
                format!("{:.1}s", call.duration.as_secs_f64())
            };
            writeln!(
                f,
                "{id:<38} {:<9} {:<14} {:<11} {:<16} {:>5} {length:>7}",
                direction_name(call.direction),
                call.kind.label(),
                status_name(call.status),
                call.end_reason,
                call.items,
            )?;
        }
        if let Some(id) = &self.transcript_of {
            writeln!(f, "\n== transcript of {id}, as stored ==")?;
            for line in &self.transcript {
                let note = if line.note.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", line.note)
                };
                writeln!(f, "{:>3} {:>9}: {}{note}", line.seq, line.role, line.text)?;
            }
        }
        if let Some(campaign) = &self.campaign {
            write!(f, "{campaign}")?;
        }
        let clears: usize = self.calls.iter().map(|c| c.clears).sum();
        writeln!(f, "\n== totals ==")?;
        writeln!(
            f,
            "calls finished:      {} of {}",
            self.finished_calls(),
            self.calls.len()
        )?;
        writeln!(
            f,
            "barge-ins handled:   {} (answers stored as interrupted; clears sent to callers: {clears})",
            self.barge_ins
        )?;
        writeln!(f, "items stored:        {}", self.items_stored)?;
        match &self.relay_latency {
            Ok(latency) => writeln!(f, "relay latency:       {latency}")?,
            Err(why) => writeln!(f, "relay latency:       unavailable ({why})")?,
        }
        for note in &self.notes {
            writeln!(f, "note:                {note}")?;
        }
        write!(f, "data:                {}", self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(phone: &str, name: &str, state: pb::TargetState, error: &str) -> pb::CampaignTarget {
        pb::CampaignTarget {
            phone: phone.into(),
            name: name.into(),
            state: state as i32,
            attempts: if error.is_empty() { 1 } else { 2 },
            last_error: (!error.is_empty()).then(|| pb::CallError {
                code: error.into(),
                message: String::new(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_campaign_section_counts_the_states_in_use_and_lists_every_target() {
        let campaign = CampaignSummary {
            id: "c1".into(),
            name: "Renewals".into(),
            state: pb::CampaignState::Running as i32,
            progress: pb::CampaignProgress {
                total: 3,
                done: 1,
                retry_wait: 1,
                in_call: 1,
                ..Default::default()
            },
            targets: vec![
                target("+14155554001", "Ada", pb::TargetState::Done, ""),
                target(
                    "+14155554002",
                    "Bo",
                    pb::TargetState::RetryWait,
                    "call.busy",
                ),
                target("+14155554003", "Cy", pb::TargetState::InCall, ""),
            ],
            elapsed: Duration::from_millis(4_300),
        };
        let text = campaign.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "== campaign \"Renewals\" (c1): running after 4.3 s =="
        );
        // Failed is always shown, states nobody is in are not.
        assert_eq!(
            lines[2],
            "targets: 3 (in-call 1, retry-wait 1, done 1, failed 0)"
        );
        assert_eq!(
            lines[3],
            "phone         name  state       attempts  last error"
        );
        assert_eq!(
            lines[5],
            "+14155554002  Bo    retry-wait  2         call.busy"
        );
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(
            campaign.target("+14155554003").map(|t| t.name.as_str()),
            Some("Cy")
        );
    }
}
