//! `switchboard dnc …`: the account-wide do-not-call list, which no campaign dials.
//! Numbers are E.164; the control plane drops the usual separators (spaces, `-`, `.`,
//! parentheses) before it stores or looks one up.

use switchboard_proto::v1 as pb;

use super::output::{self, Table};
use super::{rpc, Connection, Outcome};

/// Page size of `dnc list`.
const PAGE_SIZE: u32 = 1000;

/// `switchboard dnc`.
#[derive(Debug, clap::Args)]
pub struct DncArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: DncCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DncCommand {
    /// Puts numbers on the list (numbers listed already keep their entry).
    Add {
        #[arg(required = true, value_name = "NUMBER")]
        numbers: Vec<String>,
        /// Why they must not be called.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Takes numbers off the list.
    Remove {
        #[arg(required = true, value_name = "NUMBER")]
        numbers: Vec<String>,
    },
    /// Lists every entry, in number order.
    List,
    /// Tells whether each number is on the list.
    Check {
        #[arg(required = true, value_name = "NUMBER")]
        numbers: Vec<String>,
    },
}

/// Runs `switchboard dnc …`.
pub async fn run(args: DncArgs) -> anyhow::Result<Outcome> {
    let mut client = args.connection.campaigns().await?;
    match args.command {
        DncCommand::Add { numbers, reason } => {
            let added = client
                .add_do_not_call(pb::AddDoNotCallRequest {
                    phones: numbers.clone(),
                    reason: reason.unwrap_or_default(),
                })
                .await
                .map_err(rpc("add to the do-not-call list"))?
                .into_inner()
                .added;
            println!(
                "added {added} of {} numbers to the do-not-call list",
                numbers.len()
            );
        }
        DncCommand::Remove { numbers } => {
            let removed = client
                .remove_do_not_call(pb::RemoveDoNotCallRequest {
                    phones: numbers.clone(),
                })
                .await
                .map_err(rpc("remove from the do-not-call list"))?
                .into_inner()
                .removed;
            println!(
                "removed {removed} of {} numbers from the do-not-call list",
                numbers.len()
            );
        }
        DncCommand::List => {
            let mut table = Table::new(["PHONE", "ADDED", "REASON"]);
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_do_not_call(pb::ListDoNotCallRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                    })
                    .await
                    .map_err(rpc("list the do-not-call list"))?
                    .into_inner();
                for entry in &page.entries {
                    table.row(entry_row(entry));
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print!("{table}");
        }
        DncCommand::Check { numbers } => {
            let listed = client
                .check_do_not_call(pb::CheckDoNotCallRequest {
                    phones: numbers.clone(),
                })
                .await
                .map_err(rpc("check the do-not-call list"))?
                .into_inner()
                .listed;
            print!("{}", check_table(&numbers, &listed));
        }
    }
    Ok(Outcome::Done)
}

fn entry_row(entry: &pb::DoNotCallEntry) -> [String; 3] {
    [
        entry.phone.clone(),
        output::time(entry.created_at.as_ref()),
        if entry.reason.is_empty() {
            "-".into()
        } else {
            entry.reason.clone()
        },
    ]
}

/// One row per number asked about: listed (when, why) or not.
fn check_table(numbers: &[String], listed: &[pb::DoNotCallEntry]) -> String {
    let mut table = Table::new(["PHONE", "LISTED", "ADDED", "REASON"]);
    for number in numbers {
        let compact = compact(number);
        match listed.iter().find(|e| e.phone == compact) {
            Some(entry) => {
                let [phone, added, reason] = entry_row(entry);
                table.row([phone, "yes".into(), added, reason]);
            }
            None => table.row([compact, "no".into(), "-".into(), "-".into()]),
        }
    }
    table.to_string()
}

/// The number as the control plane stores it: without spaces, `-`, `.` or parentheses.
fn compact(number: &str) -> String {
    number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_answers_for_each_number_as_written_or_separated() {
        let listed = [pb::DoNotCallEntry {
            phone: "+14155550100".into(),
            reason: "asked".into(),
            created_at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
        }];
        let text = check_table(
            &["+1 (415) 555-0100".into(), "+14155550101".into()],
            &listed,
        );
        assert_eq!(
            text,
            "PHONE         LISTED  ADDED                 REASON\n\
             +14155550100  yes     1970-01-01T00:00:00Z  asked\n\
             +14155550101  no      -                     -\n"
        );
    }
}
