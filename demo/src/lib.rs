//! `switchboard demo`: the whole system on one machine with no database, account or
//! network. A control plane (embedded store by default, MongoDB with `--mongodb`, or an
//! already running one with `--control-plane`), one media sidecar, the OpenAI Realtime
//! simulator and the Twilio simulator run in this process on loopback; an agent is
//! created from an agent file through the control plane's gRPC API; a batch of simulated
//! calls is placed — every third one outbound, dialled by the control plane through
//! Twilio's REST API (the simulator's) and answered by a simulated callee, the rest
//! dialled in; every other caller talks over the assistant — and, alongside, a small
//! campaign of the agent is dialled by the control plane's dispatcher (`campaign.rs`);
//! once both are over, one call whose AI is unavailable, so the agent's fallback shows;
//! progress is printed once a second; and [`run`] returns a [`Summary`] read back from
//! the control plane, with the sidecar's relay latency estimated from its `/metrics`
//! (`latency.rs`).
//!
//! The same binary steers the campaigns and the do-not-call list of a running control
//! plane (`switchboard campaign …`, `switchboard dnc …`; see [`cli`]).

pub mod agent;
pub mod campaign;
pub mod cli;
pub mod latency;
pub mod services;
pub mod summary;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
use switchboard_sim::openai::Fault;
use switchboard_sim::twilio::{
    AudioSource, CallRecord, CallSpec, OutcomeScript, Outcomes, TalkScript,
};

pub use agent::AgentFile;
pub use services::{ClientTls, ControlPlane};
use services::{Grpc, Services, Setup, ACCOUNT_SID, TWILIO_AUTH_TOKEN};
pub use summary::{CallKind, CallSummary, CampaignSummary, DataLocation, Summary, TranscriptLine};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Calls in the batch (the fallback call comes on top).
    pub calls: usize,
    /// The control plane to use: in process (embedded store or MongoDB) or external.
    pub control_plane: ControlPlane,
    /// Bearer token for the control plane's API.
    pub token: Option<String>,
    /// TLS files for an external `https://` control plane.
    pub tls: ClientTls,
    /// The agent to create.
    pub agent: AgentFile,
    /// Print a progress line every second.
    pub progress: bool,
}

/// How long a call may take before the demo gives up on it.
const CALL_PATIENCE: Duration = Duration::from_secs(60);
/// How long the control plane may take to record a call's end.
const RECORD_PATIENCE: Duration = Duration::from_secs(15);
/// The caller whose AI is unavailable hangs up after this, should nobody end the call
/// (an external control plane cannot redirect the demo's simulated calls).
const FALLBACK_HANG_UP: Duration = Duration::from_secs(8);

/// One call of the batch, as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CallPlan {
    index: usize,
    kind: CallKind,
    /// Placed by the control plane through Twilio (the callee answers), else dialled in.
    outbound: bool,
}

/// A call placed so far, for progress and for hanging up on Ctrl-C.
#[derive(Debug, Clone)]
struct PlacedCall {
    kind: CallKind,
    call_sid: String,
}

type Placed = Arc<Mutex<Vec<PlacedCall>>>;

/// The demo's campaign once created: its progress is shown, it is awaited, and it is
/// canceled when the demo is interrupted.
type Running = Arc<Mutex<Option<campaign::Started>>>;

impl CallPlan {
    /// Every other call talks over the assistant; with a control plane that places calls
    /// through this demo's fake Twilio, every third call (the 2nd, 5th, …) is outbound.
    fn batch(calls: usize, outbound_possible: bool) -> Vec<CallPlan> {
        (0..calls)
            .map(|index| CallPlan {
                index,
                kind: if index % 2 == 1 {
                    CallKind::BargeIn
                } else {
                    CallKind::Plain
                },
                outbound: outbound_possible && index % 3 == 1,
            })
            .collect()
    }

    /// The number the caller dials from, or the callee's number of an outbound call.
    fn other_party(&self) -> String {
        let base = if self.outbound { 3000 } else { 2000 };
        format!("+1415555{:04}", base + self.index)
    }
}

/// Runs the demo until it is done or `shutdown` resolves; either way every service is
/// stopped before this returns. Interrupted, it returns an error.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<Summary> {
    let outbound_possible = !matches!(options.control_plane, ControlPlane::External(_));
    let plan = CallPlan::batch(options.calls, outbound_possible);
    let outcomes = plan.iter().filter(|call| call.outbound).fold(
        campaign::with_outcomes(Outcomes::default()),
        |outcomes, call| {
            outcomes.number(call.other_party(), OutcomeScript::answer(talk(call.kind)))
        },
    );
    let setup = Setup {
        control_plane: options.control_plane.clone(),
        token: options.token.clone(),
        tls: options.tls.clone(),
        outcomes,
    };
    let services = Services::start(&setup).await?;
    let placed = Placed::default();
    let running = Running::default();
    let outcome = tokio::select! {
        summary = demo(&options, &plan, &services, &placed, &running) => summary,
        () = shutdown => Err(anyhow::anyhow!("interrupted")),
    };
    // A campaign interrupted (or not over in time) is canceled: nothing is left to dial
    // in the store. A completed one refuses, which changes nothing.
    let created = running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(started) = created {
        let mut campaigns = CampaignServiceClient::new(services.channel.clone());
        campaign::cancel(&mut campaigns, &started).await;
    }
    // Callers still on the line hang up (a no-op for finished calls).
    for call in placed.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        if let Some(caller) = services.twilio.caller(&call.call_sid) {
            let _ = caller.hang_up();
        }
    }
    services.stop().await;
    outcome
}

async fn demo(
    options: &Options,
    plan: &[CallPlan],
    services: &Services,
    placed: &Placed,
    running: &Running,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    // A little before now: the control plane's clock is ours, the margin is for rounding.
    let since = prost_types::Timestamp::from(SystemTime::now() - Duration::from_secs(1));
    let mut agents = AgentSettingsServiceClient::new(services.channel.clone());
    let sessions = CallSessionServiceClient::new(services.channel.clone());
    let campaigns = CampaignServiceClient::new(services.channel.clone());
    let replace_any = matches!(options.control_plane, ControlPlane::Embedded(_));
    let agent = create_agent(&mut agents, &options.agent, replace_any).await?;
    let number = options
        .agent
        .phone_numbers
        .first()
        .context("the agent file names no phone number")?
        .clone();
    let outbound = plan.iter().filter(|call| call.outbound).count();
    let mut notes = Vec::new();
    if let ControlPlane::External(url) = &options.control_plane {
        notes.push(format!(
            "outbound calls skipped: the control plane at {url} places calls through its own \
             Twilio account, not this demo's simulator, so every call dials in"
        ));
        notes.push(format!(
            "campaign skipped: the control plane at {url} would dial its targets through its \
             own Twilio account, not this demo's simulator"
        ));
    }
    if options.progress {
        println!(
            "switchboard demo: control plane on {}, agent {:?} ({}) answers {number}",
            services.control_plane_addr, agent.name, agent.id
        );
        println!(
            "placing {} calls ({outbound} of them outbound, dialled by the control plane through \
             Twilio; every other one talks over the assistant), then one whose AI is unavailable",
            plan.len()
        );
        if services.places_calls {
            println!(
                "alongside, campaign {:?}: {} targets dialled by the control plane at {} calls/s \
                 (two answer, one is busy, one does not answer; those two are tried again after \
                 {} s)",
                campaign::NAME,
                campaign::TARGETS.len(),
                campaign::CALLS_PER_SECOND,
                campaign::BACKOFF.as_secs()
            );
        }
        for note in &notes {
            println!("note: {note}");
        }
    }
    // Created with its targets before the calls are placed, so it runs alongside them.
    if services.places_calls {
        let created = campaign::start(&mut campaigns.clone(), &agent.id, &number).await?;
        *running.lock().unwrap_or_else(PoisonError::into_inner) = Some(created);
    }

    let progress = async {
        if !options.progress {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            print_progress(
                started, services, placed, &sessions, &agent.id, since, running,
            )
            .await;
        }
    };
    let calls = async {
        // Every call is on the line before the first is waited for.
        let mut pending = Vec::new();
        for call in plan {
            let sid = if call.outbound {
                let mut client = sessions.clone();
                place_outbound(&mut client, &agent.id, &number, call).await?
            } else {
                place_inbound(services, &number, call)
            };
            placed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(PlacedCall {
                    kind: call.kind,
                    call_sid: sid.clone(),
                });
            pending.push(sid);
        }
        let batch = async {
            let mut records = Vec::new();
            for sid in &pending {
                records.push(finished(services, sid).await?);
            }
            anyhow::Ok(records)
        };
        let created = running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let campaign = async {
            match created {
                Some(created) => campaign::finish(&mut campaigns.clone(), &created)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (mut records, campaign) = tokio::try_join!(batch, campaign)?;
        // Alone (the campaign's calls are over too), so the refused connection is this
        // call's.
        services
            .openai
            .push_faults(vec![Fault::Refuse { status: 503 }], 1);
        let fallback = CallPlan {
            index: plan.len(),
            kind: CallKind::AiUnavailable,
            outbound: false,
        };
        let sid = place_inbound(services, &number, &fallback);
        placed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(PlacedCall {
                kind: fallback.kind,
                call_sid: sid.clone(),
            });
        records.push(finished(services, &sid).await?);
        anyhow::Ok((records, campaign))
    };
    let (records, campaign) = tokio::select! {
        done = calls => done?,
        () = progress => unreachable!("progress never ends"),
    };
    if options.progress {
        print_progress(
            started, services, placed, &sessions, &agent.id, since, running,
        )
        .await;
    }

    let kinds: Vec<CallKind> = placed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|call| call.kind)
        .collect();
    let stored = stored_sessions(&sessions, &agent.id, &records).await?;
    let mut summary = Summary::new(&kinds, &records, &stored, services.data.clone());
    summary.campaign = campaign;
    summary.relay_latency = latency::scrape(&services.metrics_url)
        .await
        .map_err(|e| format!("{e:#}"));
    summary.notes = notes;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Creates the agent, replacing an agent that owns one of its numbers (a previous run's):
/// any such agent when `replace_any` (the demo's own data directory), else only one of the
/// same name, so a shared store's real agents are never deleted.
async fn create_agent(
    agents: &mut AgentSettingsServiceClient<Grpc>,
    file: &AgentFile,
    replace_any: bool,
) -> anyhow::Result<pb::AgentSettings> {
    let mut page_token = String::new();
    loop {
        let page = agents
            .list_agent_settings(pb::ListAgentSettingsRequest {
                page_size: 1000,
                page_token,
            })
            .await
            .map_err(|status| {
                if status.code() == tonic::Code::Unauthenticated {
                    anyhow::anyhow!(
                        "the control plane refused the demo ({}): pass its token with \
                         --control-plane-token or SWITCHBOARD_API_TOKEN",
                        status.message()
                    )
                } else {
                    anyhow::Error::new(status).context("list agents")
                }
            })?
            .into_inner();
        for existing in page.agent_settings {
            let owns = existing
                .phone_numbers
                .iter()
                .any(|n| file.phone_numbers.contains(n));
            if owns && !replace_any && existing.name != file.name {
                anyhow::bail!(
                    "agent {:?} ({}) already answers one of {:?}; the demo replaces only its own \
                     agent ({:?}) outside its data directory",
                    existing.name,
                    existing.id,
                    file.phone_numbers,
                    file.name
                );
            }
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

/// What a simulated caller (or callee) does.
fn talk(kind: CallKind) -> TalkScript {
    match kind {
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
    }
}

/// Dials the agent's `number` through the fake Twilio, so the control plane can redirect
/// the call like a real one. Returns the call SID.
fn place_inbound(services: &Services, number: &str, call: &CallPlan) -> String {
    let mut script = talk(call.kind);
    if call.kind == CallKind::AiUnavailable && !services.places_calls {
        // An external control plane redirects through its own Twilio account, not this
        // demo's simulator: nothing would end the call.
        script = script.hang_up_after(FALLBACK_HANG_UP);
    }
    let mut spec =
        CallSpec::inbound(&services.voice_url, ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(script);
    spec.to = number.to_owned();
    spec.from = call.other_party();
    spec.keep_audio = false;
    services
        .twilio
        .place_inbound_call(spec)
        .call_sid()
        .to_owned()
}

/// Asks the control plane to call the callee from the agent's `number`: it creates the
/// session and places the call through Twilio's REST API (here the fake, which rings the
/// callee and, once answered, fetches the sidecar's voice webhook). Returns the call SID.
async fn place_outbound(
    sessions: &mut CallSessionServiceClient<Grpc>,
    agent_id: &str,
    number: &str,
    call: &CallPlan,
) -> anyhow::Result<String> {
    let session = sessions
        .create_call_session(pb::CreateCallSessionRequest {
            agent_id: agent_id.to_owned(),
            direction: pb::CallDirection::Outbound.into(),
            from_number: number.to_owned(),
            to_number: call.other_party(),
            place_call: true,
            ..Default::default()
        })
        .await
        .with_context(|| format!("place an outbound call to {}", call.other_party()))?
        .into_inner();
    Ok(session.twilio_call_sid)
}

/// The record of call `call_sid` once it has ended. An outbound call has a simulated
/// callee only once answered, so it is awaited first.
async fn finished(services: &Services, call_sid: &str) -> anyhow::Result<CallRecord> {
    let ended = async {
        loop {
            if let Some(caller) = services.twilio.caller(call_sid) {
                return Ok(caller.finished().await);
            }
            let status = services.twilio.call(call_sid).and_then(|c| c.status);
            if let Some(status) = status.filter(|s| s.is_terminal()) {
                anyhow::bail!("call {call_sid} ended {} unanswered", status.as_str());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(CALL_PATIENCE, ended)
        .await
        .with_context(|| format!("call {call_sid} did not end"))?
}

/// The stored session of each record (by call SID), once each has reached a final status,
/// or as it is after [`RECORD_PATIENCE`].
async fn stored_sessions(
    sessions: &CallSessionServiceClient<Grpc>,
    agent_id: &str,
    records: &[CallRecord],
) -> anyhow::Result<Vec<Option<pb::CallSession>>> {
    let deadline = Instant::now() + RECORD_PATIENCE;
    loop {
        let mut client = sessions.clone();
        let listed = client
            .list_call_sessions(pb::ListCallSessionsRequest {
                agent_id: agent_id.to_owned(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .context("list call sessions")?
            .into_inner()
            .call_sessions;
        let mut found = Vec::new();
        for record in records {
            let id = listed
                .iter()
                .find(|s| s.twilio_call_sid == record.call_sid)
                .map(|s| s.id.clone());
            let session = match id {
                Some(id) => Some(
                    client
                        .get_call_session(pb::GetCallSessionRequest { id })
                        .await
                        .context("get call session")?
                        .into_inner(),
                ),
                None => None,
            };
            found.push(session);
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

/// One line: calls on the line, the stored sessions of this run by status (the
/// campaign's apart), and how far the campaign is.
async fn print_progress(
    started: Instant,
    services: &Services,
    placed: &Placed,
    sessions: &CallSessionServiceClient<Grpc>,
    agent_id: &str,
    since: prost_types::Timestamp,
    running: &Running,
) {
    let active = placed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|call| {
            let status = services.twilio.call(&call.call_sid).and_then(|c| c.status);
            !status.is_some_and(|s| s.is_terminal())
        })
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
        let calls = listed.into_inner().call_sessions;
        for session in calls.iter().filter(|s| s.campaign_id.is_empty()) {
            match session.status() {
                pb::CallStatus::Completed => completed += 1,
                pb::CallStatus::HandedOff => handed_off += 1,
                status if summary::is_final(status) => failed += 1,
                _ => {}
            }
        }
    }
    let created = running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut campaign = String::new();
    if let Some(created) = created {
        let read = CampaignServiceClient::new(services.channel.clone())
            .get_campaign(pb::GetCampaignRequest { id: created.id })
            .await;
        if let Ok(read) = read {
            let read = read.into_inner();
            let progress = read.progress.unwrap_or_default();
            campaign = format!(
                "; campaign {}, {} of {} targets finished",
                cli::output::campaign_state(read.state),
                cli::campaign::finished(&progress),
                progress.total
            );
        }
    }
    println!(
        "[{:>3}s] active {active}, completed {completed}, handed off {handed_off}, failed \
         {failed}{campaign}",
        started.elapsed().as_secs()
    );
}
