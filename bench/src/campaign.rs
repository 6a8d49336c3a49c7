//! The campaign benchmark (`campaign-bench`). Its one mode so far, `import`, measures how
//! fast a campaign's targets are uploaded: a control plane is started in this process on
//! loopback (the embedded store in a temporary directory, or a fresh database on MongoDB),
//! an agent and a campaign are created over gRPC, and N targets are uploaded with
//! `AddCampaignTargets` in batches (at most 10,000, the API's limit) by C concurrent
//! uploaders. Every batch is timed from request to response; the run ends with a
//! `GetCampaign` whose progress total must equal N.
//!
//! The campaign is created with a start far in the future (`SCHEDULED`), so nothing
//! dials its targets while they are imported. A later `dispatch` mode will place the
//! imported calls through `twilio-sim`'s REST fake and check pacing and retries against
//! what the fake recorded.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin campaign-bench -- import
//! cargo run --release -p switchboard-bench --bin campaign-bench -- import --mongodb mongodb://127.0.0.1:PORT
//! ```
//!
//! # Figures
//!
//! Measured 2026-12-08 on the 2-core shared machine while other builds ran (load
//! average 2–4), release build, 100,000 targets (a key, a number, a name and one
//! variable each):
//!
//! ```text
//! store                      batch  clients  targets/s   batch p50 / p99 / max ms
//! embedded                  10,000        1     44,336   212 / 266 / 266
//! embedded                  10,000        2     49,787   356 / 468 / 468
//! embedded                  10,000        4     52,523   725 / 812 / 812
//! embedded                   1,000        1     34,864    28 /  48 /  48
//! embedded (20,000 targets)    100        1     21,374   3.9 / 13.6 / 20.6
//! MongoDB (SecantusDB)      10,000        1      1,225   7,305 / 10,618 / 10,618
//! ```
//!
//! Two earlier embedded runs of the default (10,000 by one client) gave 48,633 and
//! 53,981 targets/s. GetCampaign counted all 100,000 every time. On the embedded store
//! a target costs about 20 µs end to end (validation, conversion, one JSON encoding and
//! two inserts in the same write transaction, the response's id); a request's fixed
//! cost is a few ms (one commit), so batches of 1,000 or more are what an uploader
//! should send. Before the control plane set `TCP_NODELAY` on accepted connections,
//! every request also waited ~40 ms for the client's delayed ACK (Nagle's algorithm
//! holding the response's last frames): 100-target batches took 48 ms each (2,047
//! targets/s) and 1,000-target ones 60 ms (16,074 targets/s).
//!
//! The MongoDB figure measures the single-threaded Python test server CI uses (one
//! that had served earlier runs): rerun against a real MongoDB for throughput.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context as _};
use serde::Serialize;
use switchboard_control_plane::config::{Config, Secret, StoreConfig};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::events::percentile;

/// The most targets one `AddCampaignTargets` request may carry.
pub const MAX_BATCH: usize = 10_000;

/// Where the control plane keeps its data.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// The embedded store, in a temporary directory.
    Embedded,
    /// MongoDB at this URI; a fresh database is used on it.
    Mongo(String),
}

/// What one import run does.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    /// Targets uploaded in all.
    pub targets: usize,
    /// Targets per request (1 to [`MAX_BATCH`]).
    pub batch: usize,
    /// Concurrent uploaders, each sending one batch at a time.
    pub clients: usize,
}

/// One import run's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportFigures {
    /// `embedded` or `mongodb`.
    pub store: String,
    pub targets: usize,
    pub batch: usize,
    pub clients: usize,
    pub batches: usize,
    /// From the first request to the last response, s.
    pub seconds: f64,
    pub targets_per_s: f64,
    /// Request to response of one batch, ms.
    pub batch_p50_ms: f64,
    pub batch_p99_ms: f64,
    pub batch_max_ms: f64,
    /// What the responses counted.
    pub accepted: u64,
    pub duplicates: u64,
    pub invalid: u64,
    /// `GetCampaign`'s progress total afterwards; equals `targets` when all were stored.
    pub progress_total: u64,
}

/// A control plane serving on loopback in this process.
struct Server {
    channel: Channel,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    // Held for the embedded store's files; removed on drop.
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(store: &StoreChoice) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let mut config = Config::for_test(dir.path().to_path_buf());
        if let StoreChoice::Mongo(uri) = store {
            config.store = StoreConfig::Mongo {
                uri: Secret::new(uri.clone()),
                database: fresh_database_name(),
            };
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            switchboard_control_plane::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .context("the control plane failed")
        });
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await
            .with_context(|| format!("connect to the control plane on {addr}"))?;
        Ok(Self {
            channel,
            stop,
            task,
            _dir: dir,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        drop(self.channel);
        let _ = self.stop.send(());
        self.task.await.context("the control plane's task")?
    }
}

/// `campaign_bench_<pid>_<ms>`: a database no earlier run used.
fn fresh_database_name() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("campaign_bench_{}_{ms}", std::process::id())
}

/// Starts a control plane, imports the plan's targets into a new campaign, stops it.
pub async fn import(store: &StoreChoice, plan: &ImportPlan) -> anyhow::Result<ImportFigures> {
    ensure!(plan.targets > 0, "--targets must be at least 1");
    ensure!(
        (1..=MAX_BATCH).contains(&plan.batch),
        "--batch must be 1 to {MAX_BATCH}"
    );
    ensure!(plan.clients > 0, "--clients must be at least 1");
    let server = Server::start(store).await?;
    let result = run_import(&server.channel, store, plan).await;
    let stopped = server.stop().await;
    let figures = result?;
    stopped?;
    Ok(figures)
}

async fn run_import(
    channel: &Channel,
    store: &StoreChoice,
    plan: &ImportPlan,
) -> anyhow::Result<ImportFigures> {
    let campaign_id = create_campaign(channel).await?;
    let batches = plan.targets.div_ceil(plan.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let uploaders: Vec<JoinHandle<anyhow::Result<Uploaded>>> = (0..plan.clients)
        .map(|_| {
            tokio::spawn(upload(
                CampaignServiceClient::new(channel.clone()),
                campaign_id.clone(),
                plan.clone(),
                next.clone(),
            ))
        })
        .collect();
    let mut uploaded = Uploaded::default();
    for uploader in uploaders {
        let part = uploader.await.context("an uploader")??;
        uploaded.latencies_ms.extend(part.latencies_ms);
        uploaded.accepted += part.accepted;
        uploaded.duplicates += part.duplicates;
        uploaded.invalid += part.invalid;
    }
    let seconds = started.elapsed().as_secs_f64();
    let progress_total = CampaignServiceClient::new(channel.clone())
        .get_campaign(pb::GetCampaignRequest {
            id: campaign_id.clone(),
        })
        .await
        .context("GetCampaign")?
        .into_inner()
        .progress
        .map_or(0, |p| p.total);
    let mut latencies = uploaded.latencies_ms;
    latencies.sort_by(f64::total_cmp);
    Ok(ImportFigures {
        store: match store {
            StoreChoice::Embedded => "embedded",
            StoreChoice::Mongo(_) => "mongodb",
        }
        .to_owned(),
        targets: plan.targets,
        batch: plan.batch,
        clients: plan.clients,
        batches,
        seconds,
        targets_per_s: plan.targets as f64 / seconds.max(f64::EPSILON),
        batch_p50_ms: percentile(&latencies, 50.0),
        batch_p99_ms: percentile(&latencies, 99.0),
        batch_max_ms: latencies.last().copied().unwrap_or(0.0),
        accepted: uploaded.accepted,
        duplicates: uploaded.duplicates,
        invalid: uploaded.invalid,
        progress_total,
    })
}

/// An agent, then a campaign for it that waits for a start a year away.
async fn create_campaign(channel: &Channel) -> anyhow::Result<String> {
    let agent = AgentSettingsServiceClient::new(channel.clone())
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(pb::AgentSettings {
                name: "Campaign benchmark".into(),
                instructions: "You call {{name}} about plan {{plan}}.".into(),
                phone_numbers: vec!["+815000000001".into()],
                ..Default::default()
            }),
        })
        .await
        .context("create the agent")?
        .into_inner();
    let start_at = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    let campaign = CampaignServiceClient::new(channel.clone())
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(pb::Campaign {
                name: "Import benchmark".into(),
                agent_id: agent.id,
                from_numbers: vec!["+815000000001".into()],
                pacing: Some(pb::Pacing {
                    calls_per_second: 1.0,
                    max_concurrent_calls: 10,
                }),
                start_at: Some(start_at.into()),
                ..Default::default()
            }),
            targets: Vec::new(),
        })
        .await
        .context("create the campaign")?
        .into_inner();
    Ok(campaign.id)
}

/// What one uploader saw.
#[derive(Debug, Default)]
struct Uploaded {
    latencies_ms: Vec<f64>,
    accepted: u64,
    duplicates: u64,
    invalid: u64,
}

/// Takes batch numbers from `next` until none are left, uploading each.
async fn upload(
    mut client: CampaignServiceClient<Channel>,
    campaign_id: String,
    plan: ImportPlan,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<Uploaded> {
    let mut uploaded = Uploaded::default();
    loop {
        let first = next.fetch_add(1, Ordering::Relaxed) * plan.batch;
        if first >= plan.targets {
            return Ok(uploaded);
        }
        let last = (first + plan.batch).min(plan.targets);
        // Built before the clock starts: the uploader's own work is not the server's.
        let request = pb::AddCampaignTargetsRequest {
            campaign_id: campaign_id.clone(),
            targets: (first..last).map(target).collect(),
        };
        let sent = Instant::now();
        let response = client
            .add_campaign_targets(request)
            .await
            .with_context(|| format!("AddCampaignTargets of targets {first}..{last}"))?
            .into_inner();
        uploaded
            .latencies_ms
            .push(sent.elapsed().as_secs_f64() * 1000.0);
        uploaded.accepted += u64::from(response.accepted);
        uploaded.duplicates += u64::from(response.duplicates);
        uploaded.invalid += u64::from(response.invalid);
    }
}

/// Target `i` as a customer list would give it: a key, a Japanese mobile number, a
/// name and a variable.
fn target(i: usize) -> pb::CampaignTarget {
    pb::CampaignTarget {
        target_key: format!("customer-{i:08}"),
        phone: format!("+8190{:08}", i % 100_000_000),
        name: format!("Customer {i}"),
        variables: HashMap::from([("plan".to_owned(), "premium".to_owned())]),
        ..Default::default()
    }
}

/// Prints one run's figures as lines of `name: value`.
pub fn print_import(f: &ImportFigures) {
    let check = if f.progress_total == f.targets as u64 {
        "ok"
    } else {
        "MISMATCH"
    };
    println!("store:            {}", f.store);
    println!("targets:          {}", f.targets);
    println!(
        "batches:          {} of {} by {} client(s)",
        f.batches, f.batch, f.clients
    );
    println!("seconds:          {:.2}", f.seconds);
    println!("targets/s:        {:.0}", f.targets_per_s);
    println!(
        "batch ms:         p50 {:.1}  p99 {:.1}  max {:.1}",
        f.batch_p50_ms, f.batch_p99_ms, f.batch_max_ms
    );
    println!(
        "results:          {} accepted, {} duplicates, {} invalid",
        f.accepted, f.duplicates, f.invalid
    );
    println!(
        "progress total:   {} ({check}: expected {})",
        f.progress_total, f.targets
    );
}

/// Also writes the figures as JSON, when asked to.
pub fn write_json(path: Option<&PathBuf>, figures: &ImportFigures) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(figures)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_distinct_and_valid_e164() {
        let a = target(0);
        let b = target(99_999);
        assert_ne!(a.target_key, b.target_key);
        assert_ne!(a.phone, b.phone);
        assert_eq!(b.phone, "+819000099999");
        assert_eq!(a.phone.len(), 13);
    }
}
