//! `switchboard campaign …`: create a campaign from a CSV file of targets, add targets,
//! watch it, read it, list campaigns and targets, pause, resume, cancel, change its
//! pacing.
//!
//! `create` checks the file's header before anything is stored, creates the campaign
//! without targets, then uploads the targets in requests of at most 10,000
//! (`AddCampaignTargets`, idempotent by target key). Every line refused — by the file
//! (see `targets.rs`) or by the control plane (an answer per target, mapped back to its
//! line) — is reported on stderr with its line number; the others go in.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
use switchboard_proto::v1::target_result::Result as TargetResult;

use super::args::{self, Var, Weekdays, Window};
use super::output::{self, Table};
use super::targets::{LineError, TargetFile, TargetLine};
use super::{rpc, watch, Connection, Outcome};
use crate::services::Grpc;

/// Most targets in one request (the control plane's limit).
pub const MAX_TARGETS_PER_REQUEST: usize = 10_000;
/// Page size of the list reads.
const PAGE_SIZE: u32 = 1000;

type Client = CampaignServiceClient<Grpc>;

/// `switchboard campaign`.
#[derive(Debug, clap::Args)]
pub struct CampaignArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: CampaignCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CampaignCommand {
    /// Creates a campaign and uploads its targets from a CSV file.
    Create(Box<CreateArgs>),
    /// Uploads more targets from a CSV file (targets whose key the campaign holds
    /// already are counted as duplicates, not stored twice).
    AddTargets {
        /// The campaign's id.
        id: String,
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
    /// Shows the campaign's progress until it is completed or canceled, then a summary.
    Watch {
        /// The campaign's id.
        id: String,
        /// How often to read the campaign.
        #[arg(long, default_value = "500ms", value_parser = args::duration)]
        interval: Duration,
    },
    /// Shows a campaign's settings and progress.
    Get {
        /// The campaign's id.
        id: String,
    },
    /// Lists campaigns, newest first.
    List {
        /// Only campaigns in this state.
        #[arg(long, value_enum)]
        state: Option<CampaignStateArg>,
    },
    /// Lists a campaign's targets.
    Targets {
        /// The campaign's id.
        id: String,
        /// Only targets in this state.
        #[arg(long, value_enum)]
        state: Option<TargetStateArg>,
    },
    /// Stops placing new calls (calls on the line go on).
    Pause {
        /// The campaign's id.
        id: String,
    },
    /// Places calls again after a pause.
    Resume {
        /// The campaign's id.
        id: String,
    },
    /// Ends the campaign for good: its targets not yet called never are.
    Cancel {
        /// The campaign's id.
        id: String,
    },
    /// Changes the pacing; unnamed pacing fields keep their value.
    #[command(group = clap::ArgGroup::new("pacing").required(true).multiple(true))]
    Update {
        /// The campaign's id.
        id: String,
        /// New calls per second.
        #[arg(long, value_name = "N", group = "pacing")]
        cps: Option<f64>,
        /// Calls of the campaign live at once.
        #[arg(long, value_name = "N", group = "pacing")]
        max_concurrent: Option<u32>,
    },
}

/// `switchboard campaign create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The agent that talks to the callees (its id).
    #[arg(long, value_name = "ID")]
    pub agent: String,
    /// Caller id (E.164) the calls are placed from; repeat it for a pool.
    #[arg(long = "from", value_name = "NUMBER", required = true)]
    pub from: Vec<String>,
    /// New calls per second [default: 1].
    #[arg(long, value_name = "N")]
    pub cps: Option<f64>,
    /// Calls live at once [default: 10].
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u32>,
    /// The targets: a header row, then one target per line (see the README).
    #[arg(long, value_name = "FILE")]
    pub csv: PathBuf,
    /// The campaign's name [default: the file's name without its extension].
    #[arg(long)]
    pub name: Option<String>,
    /// Attempts per target, the first included [default: 1].
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Final call statuses that are tried again.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STATUS,…")]
    pub retry_on: Vec<RetryOn>,
    /// Wait before another attempt.
    #[arg(long, value_name = "DURATION", value_parser = args::duration)]
    pub backoff: Option<Duration>,
    /// When calls may be placed, in the callee's local time, e.g. 09:00-18:00.
    #[arg(long, value_name = "HH:MM-HH:MM", value_parser = args::window, requires = "time_zone")]
    pub window: Option<Window>,
    /// IANA zone of the window, e.g. Asia/Tokyo (a target's own `time_zone` wins).
    #[arg(long, value_name = "ZONE", requires = "window")]
    pub time_zone: Option<String>,
    /// ISO weekdays of the window (1 = Monday), e.g. 1-5 [default: every day].
    #[arg(long, value_name = "DAYS", value_parser = args::weekdays, requires = "window")]
    pub weekdays: Option<Weekdays>,
    /// No call before this time (RFC 3339); the campaign is scheduled until then.
    #[arg(long, value_name = "TIME", value_parser = args::time)]
    pub start_at: Option<prost_types::Timestamp>,
    /// A variable for every target (a target's own column wins); repeatable.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = args::var)]
    pub vars: Vec<Var>,
    /// Then watch the campaign as `campaign watch` does.
    #[arg(long)]
    pub watch: bool,
}

/// The statuses a retry policy may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetryOn {
    Busy,
    NoAnswer,
    Failed,
}

impl From<RetryOn> for pb::CallStatus {
    fn from(status: RetryOn) -> Self {
        match status {
            RetryOn::Busy => pb::CallStatus::Busy,
            RetryOn::NoAnswer => pb::CallStatus::NoAnswer,
            RetryOn::Failed => pb::CallStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CampaignStateArg {
    Running,
    Paused,
    Scheduled,
    Completed,
    Canceled,
}

impl From<CampaignStateArg> for pb::CampaignState {
    fn from(state: CampaignStateArg) -> Self {
        match state {
            CampaignStateArg::Running => pb::CampaignState::Running,
            CampaignStateArg::Paused => pb::CampaignState::Paused,
            CampaignStateArg::Scheduled => pb::CampaignState::Scheduled,
            CampaignStateArg::Completed => pb::CampaignState::Completed,
            CampaignStateArg::Canceled => pb::CampaignState::Canceled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetStateArg {
    Pending,
    Dialing,
    InCall,
    RetryWait,
    Done,
    Failed,
    Canceled,
    Skipped,
}

impl From<TargetStateArg> for pb::TargetState {
    fn from(state: TargetStateArg) -> Self {
        match state {
            TargetStateArg::Pending => pb::TargetState::Pending,
            TargetStateArg::Dialing => pb::TargetState::Dialing,
            TargetStateArg::InCall => pb::TargetState::InCall,
            TargetStateArg::RetryWait => pb::TargetState::RetryWait,
            TargetStateArg::Done => pb::TargetState::Done,
            TargetStateArg::Failed => pb::TargetState::Failed,
            TargetStateArg::Canceled => pb::TargetState::Canceled,
            TargetStateArg::Skipped => pb::TargetState::Skipped,
        }
    }
}

/// Runs `switchboard campaign …`.
pub async fn run(args: CampaignArgs) -> anyhow::Result<Outcome> {
    let connection = &args.connection;
    match args.command {
        CampaignCommand::Create(create_args) => create(connection, *create_args).await,
        CampaignCommand::AddTargets { id, csv } => {
            let file = open(&csv)?;
            let mut client = connection.campaigns().await?;
            let tally = upload(&mut client, &id, file).await?;
            print!("{}", tally.summary(&id));
            tally.hint(&id, &csv);
            Ok(tally.outcome())
        }
        CampaignCommand::Watch { id, interval } => {
            let mut client = connection.campaigns().await?;
            watch::watch(&mut client, &id, interval).await?;
            Ok(Outcome::Done)
        }
        CampaignCommand::Get { id } => {
            let mut client = connection.campaigns().await?;
            let campaign = get(&mut client, &id).await?;
            print!("{}", details(&campaign));
            Ok(Outcome::Done)
        }
        CampaignCommand::List { state } => {
            let mut client = connection.campaigns().await?;
            let campaigns = list(&mut client, state.map(Into::into)).await?;
            print!("{}", campaign_table(&campaigns));
            Ok(Outcome::Done)
        }
        CampaignCommand::Targets { id, state } => {
            let mut client = connection.campaigns().await?;
            let targets = list_targets(&mut client, &id, state.map(Into::into)).await?;
            print!("{}", target_table(&targets));
            Ok(Outcome::Done)
        }
        CampaignCommand::Pause { id } => change_state(connection, &id, Action::Pause).await,
        CampaignCommand::Resume { id } => change_state(connection, &id, Action::Resume).await,
        CampaignCommand::Cancel { id } => change_state(connection, &id, Action::Cancel).await,
        CampaignCommand::Update {
            id,
            cps,
            max_concurrent,
        } => update(connection, &id, cps, max_concurrent).await,
    }
}

/// Refuses pacing the control plane would read as "the default" (0) or refuse.
fn check_pacing(cps: Option<f64>, max_concurrent: Option<u32>) -> anyhow::Result<()> {
    if let Some(cps) = cps.filter(|cps| !cps.is_finite() || *cps <= 0.0) {
        anyhow::bail!("--cps: pacing.calls_per_second: {cps} is not above 0");
    }
    if max_concurrent == Some(0) {
        anyhow::bail!("--max-concurrent: pacing.max_concurrent_calls: must be at least 1");
    }
    Ok(())
}

/// The targets file, its header read.
fn open(path: &Path) -> anyhow::Result<TargetFile<std::io::BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    TargetFile::new(std::io::BufReader::new(file)).with_context(|| path.display().to_string())
}

async fn create(connection: &Connection, args: CreateArgs) -> anyhow::Result<Outcome> {
    check_pacing(args.cps, args.max_concurrent)?;
    // A file that cannot be read is refused before anything is stored.
    let file = open(&args.csv)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.csv
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let campaign = campaign_of(&args, name);
    let mut client = connection.campaigns().await?;
    let created = client
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(campaign),
            targets: Vec::new(),
        })
        .await
        .map_err(rpc("create the campaign"))?
        .into_inner();
    println!(
        "created campaign {} ({:?}, {})",
        created.id,
        created.name,
        output::campaign_state(created.state)
    );
    let tally = upload(&mut client, &created.id, file).await?;
    print!("{}", tally.summary(&created.id));
    tally.hint(&created.id, &args.csv);
    if args.watch {
        watch::watch(&mut client, &created.id, watch::DEFAULT_INTERVAL).await?;
    }
    Ok(tally.outcome())
}

/// The campaign `create` asks for.
fn campaign_of(args: &CreateArgs, name: String) -> pb::Campaign {
    let pacing = pb::Pacing {
        calls_per_second: args.cps.unwrap_or(0.0),
        max_concurrent_calls: args.max_concurrent.unwrap_or(0),
    };
    let window = args.window.map(|w| pb::CallWindow {
        time_zone: args.time_zone.clone().unwrap_or_default(),
        start_minute: w.start_minute,
        end_minute: w.end_minute,
        weekdays: args.weekdays.clone().map(|d| d.0).unwrap_or_default(),
    });
    let retry_named =
        args.max_attempts.is_some() || !args.retry_on.is_empty() || args.backoff.is_some();
    let retry = retry_named.then(|| pb::RetryPolicy {
        max_attempts: args.max_attempts.unwrap_or(0),
        retry_on: args
            .retry_on
            .iter()
            .map(|s| pb::CallStatus::from(*s) as i32)
            .collect(),
        backoff: args.backoff.map(args::to_proto),
    });
    pb::Campaign {
        name,
        agent_id: args.agent.clone(),
        from_numbers: args.from.clone(),
        pacing: Some(pacing),
        window,
        retry,
        variables: args
            .vars
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect(),
        start_at: args.start_at,
        ..Default::default()
    }
}

/// What became of an upload's lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub accepted: u64,
    pub duplicates: u64,
    /// Refused by the file or by the control plane.
    pub invalid: u64,
}

impl Tally {
    fn outcome(&self) -> Outcome {
        if self.invalid == 0 {
            Outcome::Done
        } else {
            Outcome::SomeRefused
        }
    }

    /// After refused lines, on stderr: how to send them again once fixed.
    fn hint(&self, campaign_id: &str, csv: &Path) {
        if self.invalid > 0 {
            eprintln!(
                "{} lines refused; the campaign holds the others. Fix those lines and upload \
                 the file again (lines already in count as duplicates): switchboard campaign \
                 add-targets {campaign_id} --csv {}",
                self.invalid,
                csv.display()
            );
        }
    }

    fn summary(&self, campaign_id: &str) -> String {
        let mut table = Table::headless();
        table.row(["campaign", campaign_id]);
        table.row(["accepted".to_owned(), self.accepted.to_string()]);
        table.row(["duplicates".to_owned(), self.duplicates.to_string()]);
        table.row(["invalid".to_owned(), self.invalid.to_string()]);
        table.to_string()
    }
}

/// Uploads the file's targets in requests of [`MAX_TARGETS_PER_REQUEST`], printing each
/// refused line on stderr, in line order within a request.
pub async fn upload<R: Read>(
    client: &mut Client,
    campaign_id: &str,
    mut file: TargetFile<R>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    loop {
        let mut batch: Vec<TargetLine> = Vec::new();
        let mut refused: Vec<LineError> = Vec::new();
        for line in file.by_ref() {
            match line {
                Ok(target) => {
                    batch.push(target);
                    if batch.len() == MAX_TARGETS_PER_REQUEST {
                        break;
                    }
                }
                Err(e) => refused.push(e),
            }
        }
        if batch.is_empty() && refused.is_empty() {
            return Ok(tally);
        }
        if !batch.is_empty() {
            let sent = send(client, campaign_id, batch).await.with_context(|| {
                format!(
                    "campaign {campaign_id}: the upload stopped after {} accepted and {} \
                     duplicate targets",
                    tally.accepted, tally.duplicates
                )
            })?;
            tally.accepted += sent.accepted;
            tally.duplicates += sent.duplicates;
            refused.extend(sent.refused);
        }
        refused.sort_by_key(|e| e.line);
        for e in &refused {
            eprintln!("{e}");
        }
        tally.invalid += refused.len() as u64;
    }
}

/// One request's answer, mapped back to lines.
#[derive(Debug, Default)]
struct Sent {
    accepted: u64,
    duplicates: u64,
    refused: Vec<LineError>,
}

async fn send(
    client: &mut Client,
    campaign_id: &str,
    batch: Vec<TargetLine>,
) -> anyhow::Result<Sent> {
    let (lines, targets): (Vec<u64>, Vec<pb::CampaignTarget>) =
        batch.into_iter().map(|t| (t.line, t.target)).unzip();
    let first = lines.first().copied().unwrap_or_default();
    let last = lines.last().copied().unwrap_or_default();
    let response = client
        .add_campaign_targets(pb::AddCampaignTargetsRequest {
            campaign_id: campaign_id.to_owned(),
            targets,
        })
        .await
        .map_err(rpc(format!(
            "add the targets of lines {first} to {last} to campaign {campaign_id}"
        )))?
        .into_inner();
    anyhow::ensure!(
        response.results.len() == lines.len(),
        "the control plane answered {} results for {} targets",
        response.results.len(),
        lines.len()
    );
    let mut sent = Sent::default();
    for (line, result) in lines.into_iter().zip(response.results) {
        match result.result {
            Some(TargetResult::AcceptedId(_)) => sent.accepted += 1,
            Some(TargetResult::DuplicateOfId(_)) => sent.duplicates += 1,
            Some(TargetResult::Invalid(invalid)) => sent.refused.push(LineError {
                line,
                reason: format!("{}: {}", invalid.field, invalid.reason),
            }),
            None => sent.refused.push(LineError {
                line,
                reason: "the control plane gave no result for it".into(),
            }),
        }
    }
    Ok(sent)
}

/// The campaign with its progress.
pub async fn get(client: &mut Client, id: &str) -> anyhow::Result<pb::Campaign> {
    Ok(client
        .get_campaign(pb::GetCampaignRequest { id: id.to_owned() })
        .await
        .map_err(rpc(format!("get campaign {id}")))?
        .into_inner())
}

async fn list(
    client: &mut Client,
    state: Option<pb::CampaignState>,
) -> anyhow::Result<Vec<pb::Campaign>> {
    let mut campaigns = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_campaigns(pb::ListCampaignsRequest {
                state: state.map_or(0, |s| s as i32),
                page_size: PAGE_SIZE,
                page_token,
            })
            .await
            .map_err(rpc("list campaigns"))?
            .into_inner();
        campaigns.extend(page.campaigns);
        if page.next_page_token.is_empty() {
            return Ok(campaigns);
        }
        page_token = page.next_page_token;
    }
}

/// Every target of the campaign (in `state`, if given), page by page.
pub async fn list_targets(
    client: &mut Client,
    id: &str,
    state: Option<pb::TargetState>,
) -> anyhow::Result<Vec<pb::CampaignTarget>> {
    let mut targets = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_campaign_targets(pb::ListCampaignTargetsRequest {
                campaign_id: id.to_owned(),
                state: state.map_or(0, |s| s as i32),
                page_size: PAGE_SIZE,
                page_token,
            })
            .await
            .map_err(rpc(format!("list the targets of campaign {id}")))?
            .into_inner();
        targets.extend(page.targets);
        if page.next_page_token.is_empty() {
            return Ok(targets);
        }
        page_token = page.next_page_token;
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Pause,
    Resume,
    Cancel,
}

async fn change_state(
    connection: &Connection,
    id: &str,
    action: Action,
) -> anyhow::Result<Outcome> {
    let mut client = connection.campaigns().await?;
    let id = id.to_owned();
    let campaign = match action {
        Action::Pause => client
            .pause_campaign(pb::PauseCampaignRequest { id: id.clone() })
            .await
            .map_err(rpc(format!("pause campaign {id}")))?,
        Action::Resume => client
            .resume_campaign(pb::ResumeCampaignRequest { id: id.clone() })
            .await
            .map_err(rpc(format!("resume campaign {id}")))?,
        Action::Cancel => client
            .cancel_campaign(pb::CancelCampaignRequest { id: id.clone() })
            .await
            .map_err(rpc(format!("cancel campaign {id}")))?,
    }
    .into_inner();
    println!(
        "campaign {}: {}",
        campaign.id,
        output::campaign_state(campaign.state)
    );
    Ok(Outcome::Done)
}

/// Reads the campaign, so pacing fields not named keep their value, and writes the
/// pacing back at the version read.
async fn update(
    connection: &Connection,
    id: &str,
    cps: Option<f64>,
    max_concurrent: Option<u32>,
) -> anyhow::Result<Outcome> {
    check_pacing(cps, max_concurrent)?;
    let mut client = connection.campaigns().await?;
    let current = get(&mut client, id).await?;
    let old = current.pacing.unwrap_or_default();
    let pacing = pb::Pacing {
        calls_per_second: cps.unwrap_or(old.calls_per_second),
        max_concurrent_calls: max_concurrent.unwrap_or(old.max_concurrent_calls),
    };
    let updated = client
        .update_campaign(pb::UpdateCampaignRequest {
            campaign: Some(pb::Campaign {
                id: id.to_owned(),
                pacing: Some(pacing),
                version: current.version,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["pacing".into()],
            }),
        })
        .await
        .map_err(rpc(format!("update campaign {id}")))?
        .into_inner();
    println!(
        "campaign {}: {} (version {})",
        updated.id,
        pacing_text(updated.pacing.as_ref()),
        updated.version
    );
    Ok(Outcome::Done)
}

fn pacing_text(pacing: Option<&pb::Pacing>) -> String {
    match pacing {
        Some(p) => format!(
            "{} calls/s, at most {} at once",
            p.calls_per_second, p.max_concurrent_calls
        ),
        None => "-".into(),
    }
}

/// `get`'s text: settings, then progress.
pub fn details(c: &pb::Campaign) -> String {
    let mut table = Table::headless();
    let mut row = |name: &str, value: String| table.row([name.to_owned(), value]);
    row("id", c.id.clone());
    row("name", c.name.clone());
    row("state", output::campaign_state(c.state));
    row("agent", c.agent_id.clone());
    row("from", c.from_numbers.join(", "));
    row("pacing", pacing_text(c.pacing.as_ref()));
    row("window", window_text(c.window.as_ref()));
    row("retry", retry_text(c.retry.as_ref()));
    row("start at", output::time(c.start_at.as_ref()));
    row("variables", output::variables(&c.variables));
    row("version", c.version.to_string());
    row("created", output::time(c.created_at.as_ref()));
    row("updated", output::time(c.updated_at.as_ref()));
    let progress = c.progress.unwrap_or_default();
    row(
        "progress",
        format!(
            "{} of {} targets finished",
            finished(&progress),
            progress.total
        ),
    );
    for (state, count) in counts(&progress) {
        row(&format!("  {state}"), count.to_string());
    }
    table.to_string()
}

fn window_text(window: Option<&pb::CallWindow>) -> String {
    let Some(w) = window else {
        return "any time".into();
    };
    let days = if w.weekdays.is_empty() {
        "every day".to_owned()
    } else {
        let days: Vec<String> = w.weekdays.iter().map(u32::to_string).collect();
        format!("weekdays {}", days.join(","))
    };
    format!(
        "{}-{} {}, {days}",
        output::clock(w.start_minute),
        output::clock(w.end_minute),
        w.time_zone
    )
}

fn retry_text(retry: Option<&pb::RetryPolicy>) -> String {
    let Some(r) = retry else {
        return "-".into();
    };
    let on: Vec<String> = r.retry_on.iter().map(|s| output::call_status(*s)).collect();
    let on = if on.is_empty() {
        "nothing".to_owned()
    } else {
        on.join(", ")
    };
    format!(
        "{} attempts, again on {on} after {}",
        r.max_attempts,
        output::duration(r.backoff.as_ref())
    )
}

/// Targets in a final state.
pub fn finished(p: &pb::CampaignProgress) -> u64 {
    p.done + p.failed + p.canceled + p.skipped
}

/// Each target state's count, in the order a target goes through them.
pub fn counts(p: &pb::CampaignProgress) -> [(&'static str, u64); 8] {
    [
        ("pending", p.pending),
        ("dialing", p.dialing),
        ("in-call", p.in_call),
        ("retry-wait", p.retry_wait),
        ("done", p.done),
        ("failed", p.failed),
        ("canceled", p.canceled),
        ("skipped", p.skipped),
    ]
}

fn campaign_table(campaigns: &[pb::Campaign]) -> String {
    let mut table = Table::new(["ID", "STATE", "NAME", "AGENT", "FROM", "CREATED"]);
    for c in campaigns {
        table.row([
            c.id.clone(),
            output::campaign_state(c.state),
            c.name.clone(),
            c.agent_id.clone(),
            c.from_numbers.join(","),
            output::time(c.created_at.as_ref()),
        ]);
    }
    table.to_string()
}

/// The targets as a table, with their last error.
pub fn target_table(targets: &[pb::CampaignTarget]) -> String {
    let mut table = Table::new([
        "KEY",
        "PHONE",
        "NAME",
        "STATE",
        "ATTEMPTS",
        "LAST ERROR",
        "VARIABLES",
    ]);
    for t in targets {
        table.row([
            t.target_key.clone(),
            t.phone.clone(),
            or_dash(&t.name),
            output::target_state(t.state),
            t.attempts.to_string(),
            output::call_error(t.last_error.as_ref()),
            output::variables(&t.variables),
        ]);
    }
    table.to_string()
}

/// `text`, or `-` when empty, so a table's columns stay readable.
fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_owned()
    }
}
