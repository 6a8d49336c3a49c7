//! The demo's campaign: four targets of the demo agent, dialled by the control plane's
//! campaign dispatcher through the demo's fake Twilio while the call batch runs. Two
//! callees answer and talk to the assistant briefly (through the sidecar and the
//! Realtime simulator, like the batch's outbound calls), one is busy and one does not
//! answer; both are tried once more after a second, so they end `failed` after two
//! attempts with `call.busy` and `call.no_answer`.
//!
//! The campaign is created with its targets in one request, so it cannot complete
//! before they are stored, and read back until it is completed (at most
//! [`PATIENCE`]): [`finish`] returns what the summary shows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
use switchboard_sim::twilio::{AudioSource, Outcome, OutcomeScript, Outcomes, TalkScript};

use crate::services::Grpc;
use crate::summary::CampaignSummary;

/// The campaign's name.
pub const NAME: &str = "Demo plan renewals";
/// New calls per second (the demo's control plane allows more: `services::MAX_CPS`).
pub const CALLS_PER_SECOND: f64 = 2.0;
/// Attempts per target: a busy or unanswered callee is tried once more…
pub const MAX_ATTEMPTS: u32 = 2;
/// …this long after.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// How long the campaign may take before the demo shows it as it stands.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often the campaign is read while it runs.
const POLL: Duration = Duration::from_millis(200);
/// An answering callee asks its question, then hangs up this long into the call.
const TALK: Duration = Duration::from_secs(4);

/// What a target's phone does when the campaign calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Answers, asks a question, hangs up a few seconds in.
    Talks,
    Busy,
    NoAnswer,
}

/// One target of the demo's campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoTarget {
    pub phone: &'static str,
    pub name: &'static str,
    /// The target's `plan` variable (the campaign's is `basic`).
    pub plan: &'static str,
    pub answer: Answer,
}

/// The targets, in the order they are dialled.
pub const TARGETS: [DemoTarget; 4] = [
    DemoTarget {
        phone: "+14155554001",
        name: "Ada",
        plan: "gold",
        answer: Answer::Talks,
    },
    DemoTarget {
        phone: "+14155554002",
        name: "Bo",
        plan: "silver",
        answer: Answer::Busy,
    },
    DemoTarget {
        phone: "+14155554003",
        name: "Cy",
        plan: "gold",
        answer: Answer::NoAnswer,
    },
    DemoTarget {
        phone: "+14155554004",
        name: "Di",
        plan: "bronze",
        answer: Answer::Talks,
    },
];

/// `outcomes` with how each target's phone answers.
pub fn with_outcomes(outcomes: Outcomes) -> Outcomes {
    TARGETS.iter().fold(outcomes, |outcomes, target| {
        let outcome = match target.answer {
            Answer::Talks => {
                Outcome::Answer(TalkScript::saying(AudioSource::hello_en()).hang_up_after(TALK))
            }
            Answer::Busy => Outcome::Busy,
            Answer::NoAnswer => Outcome::NoAnswer,
        };
        outcomes.number(target.phone, OutcomeScript::after_ring(outcome))
    })
}

/// A running campaign of the demo.
#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    at: Instant,
}

/// Creates the campaign, with its targets, for agent `agent_id` calling from `from`.
pub async fn start(
    client: &mut CampaignServiceClient<Grpc>,
    agent_id: &str,
    from: &str,
) -> anyhow::Result<Started> {
    let at = Instant::now();
    let campaign = pb::Campaign {
        name: NAME.into(),
        agent_id: agent_id.into(),
        from_numbers: vec![from.into()],
        pacing: Some(pb::Pacing {
            calls_per_second: CALLS_PER_SECOND,
            max_concurrent_calls: TARGETS.len() as u32,
        }),
        retry: Some(pb::RetryPolicy {
            max_attempts: MAX_ATTEMPTS,
            retry_on: vec![pb::CallStatus::Busy as i32, pb::CallStatus::NoAnswer as i32],
            backoff: Some(crate::cli::args::to_proto(BACKOFF)),
        }),
        variables: HashMap::from([("plan".to_owned(), "basic".to_owned())]),
        ..Default::default()
    };
    let targets = TARGETS
        .iter()
        .map(|t| pb::CampaignTarget {
            phone: t.phone.into(),
            name: t.name.into(),
            variables: HashMap::from([("plan".to_owned(), t.plan.to_owned())]),
            ..Default::default()
        })
        .collect();
    let created = client
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(campaign),
            targets,
        })
        .await
        .context("create the demo's campaign")?
        .into_inner();
    Ok(Started { id: created.id, at })
}

/// Waits for the campaign to be over (at most [`PATIENCE`]), then reads it and its
/// targets as they are.
pub async fn finish(
    client: &mut CampaignServiceClient<Grpc>,
    started: &Started,
) -> anyhow::Result<CampaignSummary> {
    let deadline = Instant::now() + PATIENCE;
    let campaign = loop {
        let campaign = client
            .get_campaign(pb::GetCampaignRequest {
                id: started.id.clone(),
            })
            .await
            .with_context(|| format!("get campaign {}", started.id))?
            .into_inner();
        let over = [pb::CampaignState::Completed, pb::CampaignState::Canceled]
            .iter()
            .any(|s| *s as i32 == campaign.state);
        if over || Instant::now() > deadline {
            break campaign;
        }
        tokio::time::sleep(POLL).await;
    };
    let elapsed = started.at.elapsed();
    let targets = crate::cli::campaign::list_targets(client, &started.id, None).await?;
    // In the order they were planned (the control plane lists them by id).
    let mut ordered = Vec::with_capacity(targets.len());
    for planned in TARGETS {
        ordered.extend(targets.iter().filter(|t| t.phone == planned.phone).cloned());
    }
    Ok(CampaignSummary {
        id: campaign.id,
        name: campaign.name,
        state: campaign.state,
        progress: campaign.progress.unwrap_or_default(),
        targets: ordered,
        elapsed,
    })
}

/// Ends the campaign (best effort): an interrupted demo leaves nothing to dial.
pub async fn cancel(client: &mut CampaignServiceClient<Grpc>, started: &Started) {
    let _ = client
        .cancel_campaign(pb::CancelCampaignRequest {
            id: started.id.clone(),
        })
        .await;
}
