//! `switchboard demo`: the whole system on one machine with no database, account or
//! network. A control plane on the embedded store, one media sidecar, the OpenAI Realtime
//! simulator and the Twilio simulator run in this process on loopback; an agent is
//! created from an agent file through the control plane's gRPC API; a batch of simulated
//! calls is placed (every other caller talks over the assistant), then one call whose AI
//! is unavailable, so the agent's fallback shows; progress is printed once a second; and
//! [`run`] returns a [`Summary`] read back from the control plane.

pub mod agent;
pub mod services;
pub mod summary;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_sim::openai::Fault;
use switchboard_sim::twilio::{AudioSource, CallRecord, CallSpec, Caller, TalkScript};
use tonic::transport::Channel;

pub use agent::AgentFile;
use services::{Services, ACCOUNT_SID, TWILIO_AUTH_TOKEN};
pub use summary::{CallKind, CallSummary, Summary, TranscriptLine};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Calls in the batch (the fallback call comes on top).
    pub calls: usize,
    /// The embedded store's directory.
    pub data_dir: PathBuf,
    /// The agent to create.
    pub agent: AgentFile,
    /// Print a progress line every second.
    pub progress: bool,
}

/// How long a call may take before the demo gives up on it.
const CALL_PATIENCE: Duration = Duration::from_secs(60);
/// How long the control plane may take to record a call's end.
const RECORD_PATIENCE: Duration = Duration::from_secs(15);

/// The calls placed so far, for progress and for hanging up on Ctrl-C.
type Placed = Arc<Mutex<Vec<(CallKind, Caller)>>>;

/// Runs the demo until it is done or `shutdown` resolves; either way every service is
/// stopped before this returns. Interrupted, it returns an error.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<Summary> {
    let services = Services::start(&options.data_dir).await?;
    let placed = Placed::default();
    let outcome = tokio::select! {
        summary = demo(&options, &services, &placed) => summary,
        () = shutdown => Err(anyhow::anyhow!("interrupted")),
    };
    // Callers still on the line hang up (a no-op for finished calls).
    for (_, caller) in placed.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        let _ = caller.hang_up();
    }
    services.stop().await;
    outcome
}

async fn demo(options: &Options, services: &Services, placed: &Placed) -> anyhow::Result<Summary> {
    let started = Instant::now();
    // A little before now: the control plane's clock is ours, the margin is for rounding.
    let since = prost_types::Timestamp::from(SystemTime::now() - Duration::from_secs(1));
    let mut agents = AgentSettingsServiceClient::new(services.channel.clone());
    let sessions = CallSessionServiceClient::new(services.channel.clone());
    let agent = create_agent(&mut agents, &options.agent).await?;
    let number = options
        .agent
        .phone_numbers
        .first()
        .context("the agent file names no phone number")?
        .clone();
    if options.progress {
        println!(
            "switchboard demo: control plane on {}, agent {:?} ({}) answers {number}",
            services.control_plane_addr, agent.name, agent.id
        );
        println!(
            "placing {} calls (every other one talks over the assistant), then one whose AI is unavailable",
            options.calls
        );
    }

    let progress = async {
        if !options.progress {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            print_progress(started, placed, &sessions, &agent.id, since).await;
        }
    };
    let calls = async {
        let batch: Vec<Caller> = (0..options.calls)
            .map(|i| {
                let kind = if i % 2 == 1 {
                    CallKind::BargeIn
                } else {
                    CallKind::Plain
                };
                place(services, placed, kind, &number, i)
            })
            .collect();
        let mut records = Vec::new();
        for caller in batch {
            records.push(finished(&caller).await?);
        }
        // Alone, so the refused connection is this call's.
        services
            .openai
            .push_faults(vec![Fault::Refuse { status: 503 }], 1);
        let caller = place(
            services,
            placed,
            CallKind::AiUnavailable,
            &number,
            options.calls,
        );
        records.push(finished(&caller).await?);
        anyhow::Ok(records)
    };
    let records = tokio::select! {
        records = calls => records?,
        () = progress => unreachable!("progress never ends"),
    };
    if options.progress {
        print_progress(started, placed, &sessions, &agent.id, since).await;
    }

    let kinds: Vec<CallKind> = placed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(kind, _)| *kind)
        .collect();
    let stored = stored_sessions(&sessions, &records).await?;
    let data_dir = std::fs::canonicalize(&options.data_dir).unwrap_or(options.data_dir.clone());
    Ok(Summary::new(
        &kinds,
        &records,
        &stored,
        data_dir,
        started.elapsed(),
    ))
}

/// Creates the agent, replacing any agent that owns one of its numbers (a previous run's,
/// in the same data directory).
async fn create_agent(
    agents: &mut AgentSettingsServiceClient<Channel>,
    file: &AgentFile,
) -> anyhow::Result<pb::AgentSettings> {
    let mut page_token = String::new();
    loop {
        let page = agents
            .list_agent_settings(pb::ListAgentSettingsRequest {
                page_size: 1000,
                page_token,
            })
            .await
            .context("list agents")?
            .into_inner();
        for existing in page.agent_settings {
            let owns = existing
                .phone_numbers
                .iter()
                .any(|n| file.phone_numbers.contains(n));
            if owns {
                agents
                    .delete_agent_settings(pb::DeleteAgentSettingsRequest {
                        id: existing.id,
                        version: 0,
                    })
                    .await
                    .context("delete the previous run's agent")?;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let created = agents
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(file.to_proto()),
        })
        .await
        .context("create the agent")?
        .into_inner();
    Ok(created)
}

/// Places call number `index` to `number` through the fake Twilio, so the control plane
/// can redirect it like a real call.
fn place(
    services: &Services,
    placed: &Placed,
    kind: CallKind,
    number: &str,
    index: usize,
) -> Caller {
    let talk = match kind {
        // Asks, hears the long answer out, hangs up.
        CallKind::Plain => {
            TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_millis(10_000))
        }
        // Asks, talks over the long answer two seconds in, hears the short one, hangs up.
        CallKind::BargeIn => TalkScript::saying(AudioSource::hello_en())
            .say_at(Duration::from_millis(5_000), AudioSource::hello_en())
            .hang_up_after(Duration::from_millis(12_000)),
        // Stays on the line: the fallback ends the call (a `<Dial>` the simulator does not
        // follow, or a hang-up).
        CallKind::AiUnavailable => TalkScript::saying(AudioSource::hello_en()),
    };
    let mut spec =
        CallSpec::inbound(&services.voice_url, ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    spec.to = number.to_owned();
    spec.from = format!("+1415555{:04}", 2000 + index);
    spec.keep_audio = false;
    let caller = services.twilio.place_inbound_call(spec);
    placed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((kind, caller.clone()));
    caller
}

async fn finished(caller: &Caller) -> anyhow::Result<CallRecord> {
    tokio::time::timeout(CALL_PATIENCE, caller.finished())
        .await
        .with_context(|| format!("call {} did not end", caller.call_sid()))
}

/// The stored session of each record (by call SID), once each has reached a final status,
/// or as it is after [`RECORD_PATIENCE`].
async fn stored_sessions(
    sessions: &CallSessionServiceClient<Channel>,
    records: &[CallRecord],
) -> anyhow::Result<Vec<Option<pb::CallSession>>> {
    let deadline = Instant::now() + RECORD_PATIENCE;
    loop {
        let mut client = sessions.clone();
        let mut found = Vec::new();
        for record in records {
            found.push(session_of(&mut client, &record.call_sid).await?);
        }
        let done = found
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| summary::is_final(s.status())));
        if done || Instant::now() > deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The session (with its conversation) of the call `call_sid`.
async fn session_of(
    sessions: &mut CallSessionServiceClient<Channel>,
    call_sid: &str,
) -> anyhow::Result<Option<pb::CallSession>> {
    let list = sessions
        .list_call_sessions(pb::ListCallSessionsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .context("list call sessions")?
        .into_inner();
    let Some(id) = list
        .call_sessions
        .into_iter()
        .find(|s| s.twilio_call_sid == call_sid)
        .map(|s| s.id)
    else {
        return Ok(None);
    };
    let session = sessions
        .get_call_session(pb::GetCallSessionRequest { id })
        .await
        .context("get call session")?
        .into_inner();
    Ok(Some(session))
}

/// One line: calls on the line, and the stored sessions of this run by status.
async fn print_progress(
    started: Instant,
    placed: &Placed,
    sessions: &CallSessionServiceClient<Channel>,
    agent_id: &str,
    since: prost_types::Timestamp,
) {
    let active = placed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(_, caller)| !caller.is_finished())
        .count();
    let listed = sessions
        .clone()
        .list_call_sessions(pb::ListCallSessionsRequest {
            agent_id: agent_id.to_owned(),
            created_after: Some(since),
            page_size: 1000,
            ..Default::default()
        })
        .await;
    let (mut completed, mut handed_off, mut failed) = (0, 0, 0);
    if let Ok(listed) = listed {
        for session in listed.into_inner().call_sessions {
            match session.status() {
                pb::CallStatus::Completed => completed += 1,
                pb::CallStatus::HandedOff => handed_off += 1,
                status if summary::is_final(status) => failed += 1,
                _ => {}
            }
        }
    }
    println!(
        "[{:>3}s] active {active}, completed {completed}, handed off {handed_off}, failed {failed}",
        started.elapsed().as_secs()
    );
}
