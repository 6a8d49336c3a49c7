//! `campaign watch`: reads the campaign every interval and shows its progress until it
//! is completed or canceled, then a summary: the count of each target state, and the
//! failed and skipped targets with their last error.
//!
//! On a terminal the progress is one line per target state with a text bar, redrawn in
//! place. Anywhere else (a pipe, a file, CI logs) a line is printed only when the state
//! or a count changes, with no control codes.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;

use super::campaign::{counts, finished, list_targets, target_table};
use super::output::{self, Table};
use super::rpc;
use crate::services::Grpc;

/// How often `create --watch` reads the campaign.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
/// How long the control plane may stay unreachable (a restart) before watching stops.
const PATIENCE: Duration = Duration::from_secs(60);
/// Characters of a progress bar.
const BAR_WIDTH: usize = 30;

/// Watches campaign `id` until it is over, then prints the summary.
pub async fn watch(
    client: &mut CampaignServiceClient<Grpc>,
    id: &str,
    interval: Duration,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut screen = Screen::new(stdout.is_terminal());
    let mut unreachable_since: Option<Instant> = None;
    let campaign = loop {
        let read = client
            .get_campaign(pb::GetCampaignRequest { id: id.to_owned() })
            .await;
        match read {
            Ok(campaign) => {
                unreachable_since = None;
                let campaign = campaign.into_inner();
                screen.show(&campaign, Utc::now(), &mut stdout.lock())?;
                if is_over(&campaign) {
                    break campaign;
                }
            }
            Err(status) if is_transient(&status) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > PATIENCE {
                    return Err(rpc(format!("get campaign {id}"))(status));
                }
            }
            Err(status) => return Err(rpc(format!("get campaign {id}"))(status)),
        }
        tokio::time::sleep(interval).await;
    };
    let mut troubled = list_targets(client, id, Some(pb::TargetState::Failed)).await?;
    troubled.extend(list_targets(client, id, Some(pb::TargetState::Skipped)).await?);
    print!("{}", summary(&campaign, &troubled));
    Ok(())
}

/// Completed or canceled: nothing will change any more.
fn is_over(campaign: &pb::Campaign) -> bool {
    let over = [pb::CampaignState::Completed, pb::CampaignState::Canceled];
    over.iter().any(|s| *s as i32 == campaign.state)
}

/// Worth asking again: the control plane restarting, a request timing out.
fn is_transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    )
}

/// What was shown last, to redraw it or to print only changes.
#[derive(Debug)]
struct Screen {
    terminal: bool,
    /// Lines drawn last (terminal).
    drawn: usize,
    /// State and counts printed last (not a terminal).
    last: Option<(i32, pb::CampaignProgress)>,
}

impl Screen {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            drawn: 0,
            last: None,
        }
    }

    fn show(
        &mut self,
        campaign: &pb::Campaign,
        now: DateTime<Utc>,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        if self.terminal {
            let lines = frame(campaign);
            if self.drawn > 0 {
                // Back to the first line drawn; each line is cleared as it is redrawn.
                write!(out, "\x1b[{}F", self.drawn)?;
            }
            for line in &lines {
                writeln!(out, "\x1b[2K{line}")?;
            }
            self.drawn = lines.len();
        } else {
            let seen = (campaign.state, campaign.progress.unwrap_or_default());
            if self.last != Some(seen) {
                writeln!(out, "{}", change_line(campaign, now))?;
                self.last = Some(seen);
            }
        }
        out.flush()
    }
}

/// The terminal's frame: a heading, then one bar per target state.
fn frame(campaign: &pb::Campaign) -> Vec<String> {
    let progress = campaign.progress.unwrap_or_default();
    let mut lines = vec![format!(
        "campaign {} ({:?}): {}, {} of {} targets finished",
        campaign.id,
        campaign.name,
        output::campaign_state(campaign.state),
        finished(&progress),
        progress.total
    )];
    let count_width = progress.total.to_string().len();
    for (state, count) in counts(&progress) {
        lines.push(format!(
            "  {state:<12}{count:>count_width$} {} {:>3}%",
            bar(count, progress.total),
            percent(count, progress.total)
        ));
    }
    lines
}

/// `[#########---------------------]`, `count` of `total`.
fn bar(count: u64, total: u64) -> String {
    let filled = count
        .saturating_mul(BAR_WIDTH as u64)
        .checked_div(total)
        .map_or(0, |filled| usize::try_from(filled).unwrap_or(BAR_WIDTH))
        .min(BAR_WIDTH);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
}

/// `count` of `total` in whole percent (0 of nothing).
fn percent(count: u64, total: u64) -> u64 {
    count.saturating_mul(100).checked_div(total).unwrap_or(0)
}

/// The line printed when something changed (not a terminal).
fn change_line(campaign: &pb::Campaign, now: DateTime<Utc>) -> String {
    let progress = campaign.progress.unwrap_or_default();
    let counts: Vec<String> = counts(&progress)
        .iter()
        .map(|(state, count)| format!("{state} {count}"))
        .collect();
    format!(
        "{} {}: {} of {} finished; {}",
        now.to_rfc3339_opts(SecondsFormat::Secs, true),
        output::campaign_state(campaign.state),
        finished(&progress),
        progress.total,
        counts.join(", ")
    )
}

/// The summary once the campaign is over: counts, then the failed and skipped targets.
fn summary(campaign: &pb::Campaign, troubled: &[pb::CampaignTarget]) -> String {
    let progress = campaign.progress.unwrap_or_default();
    let mut text = format!(
        "\ncampaign {} ({:?}) {}: {} of {} targets done\n",
        campaign.id,
        campaign.name,
        output::campaign_state(campaign.state),
        progress.done,
        progress.total
    );
    let mut table = Table::new(["STATE", "TARGETS"]);
    for (state, count) in counts(&progress) {
        table.row([state.to_owned(), count.to_string()]);
    }
    table.row(["total".to_owned(), progress.total.to_string()]);
    text.push_str(&table.to_string());
    if troubled.is_empty() {
        text.push_str("\nno target failed or was skipped\n");
    } else {
        text.push_str("\nfailed and skipped targets:\n");
        text.push_str(&target_table(troubled));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(state: pb::CampaignState, pending: u64, done: u64) -> pb::Campaign {
        pb::Campaign {
            id: "c1".into(),
            name: "Renewals".into(),
            state: state as i32,
            progress: Some(pb::CampaignProgress {
                total: pending + done,
                pending,
                done,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn bars_fill_in_proportion() {
        assert_eq!(bar(0, 10), format!("[{}]", "-".repeat(30)));
        assert_eq!(
            bar(5, 10),
            format!("[{}{}]", "#".repeat(15), "-".repeat(15))
        );
        assert_eq!(bar(10, 10), format!("[{}]", "#".repeat(30)));
        assert_eq!(bar(0, 0), format!("[{}]", "-".repeat(30)));
    }

    #[test]
    fn a_terminal_gets_one_bar_per_state_redrawn_in_place() {
        let mut screen = Screen::new(true);
        let mut out = Vec::new();
        screen
            .show(&campaign(pb::CampaignState::Running, 3, 1), at(0), &mut out)
            .unwrap();
        screen
            .show(&campaign(pb::CampaignState::Running, 2, 2), at(1), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        // Nine lines each time; the second time the cursor goes back up nine lines.
        assert_eq!(text.matches("\x1b[2K").count(), 18);
        assert_eq!(text.matches("\x1b[9F").count(), 1);
        assert!(text.contains("running, 2 of 4 targets finished"), "{text}");
        assert!(text.contains(&format!(
            "  done        2 [{}{}]  50%",
            "#".repeat(15),
            "-".repeat(15)
        )));
    }

    #[test]
    fn elsewhere_a_plain_line_is_printed_only_when_something_changes() {
        let mut screen = Screen::new(false);
        let mut out = Vec::new();
        let running = campaign(pb::CampaignState::Running, 3, 1);
        screen.show(&running, at(0), &mut out).unwrap();
        screen.show(&running, at(1), &mut out).unwrap();
        screen
            .show(&campaign(pb::CampaignState::Paused, 3, 1), at(2), &mut out)
            .unwrap();
        screen
            .show(&campaign(pb::CampaignState::Paused, 2, 2), at(3), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b'), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            "1970-01-01T00:00:00Z running: 1 of 4 finished; pending 3, dialing 0, in-call 0, \
             retry-wait 0, done 1, failed 0, canceled 0, skipped 0"
        );
        assert!(lines[1].starts_with("1970-01-01T00:00:02Z paused: 1 of 4"));
        assert!(lines[2].starts_with("1970-01-01T00:00:03Z paused: 2 of 4"));
    }

    #[test]
    fn the_summary_counts_every_state_and_lists_the_troubled_targets() {
        let over = campaign(pb::CampaignState::Completed, 0, 2);
        let text = summary(&over, &[]);
        assert!(text.contains("campaign c1 (\"Renewals\") completed: 2 of 2 targets done"));
        assert!(text.contains("done        2"), "{text}");
        assert!(text.contains("no target failed or was skipped"));
        let failed = pb::CampaignTarget {
            target_key: "k1".into(),
            phone: "+14155550100".into(),
            state: pb::TargetState::Failed as i32,
            attempts: 3,
            last_error: Some(pb::CallError {
                code: "call.busy".into(),
                message: "the line was busy".into(),
            }),
            ..Default::default()
        };
        let text = summary(&over, &[failed]);
        assert!(text.contains("failed and skipped targets:"));
        assert!(text.contains("call.busy: the line was busy"), "{text}");
    }
}
