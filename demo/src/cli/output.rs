//! Plain, aligned text for the operator commands: tables, names of states and
//! statuses, times in RFC 3339, durations.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use switchboard_proto::v1 as pb;

/// Columns padded to their widest cell, two spaces apart; the last one unpadded.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `header`.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        let mut table = Table::default();
        table.row(header);
        table
    }

    /// A table without a header, e.g. of names and values.
    pub fn headless() -> Self {
        Table::default()
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c] - cell.chars().count();
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad + 2));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// RFC 3339 in UTC to the second (to the millisecond when it has any), or `-`.
pub fn time(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = timestamp else {
        return "-".into();
    };
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    match DateTime::<Utc>::from_timestamp(t.seconds, nanos) {
        Some(time) if nanos == 0 => time.to_rfc3339_opts(SecondsFormat::Secs, true),
        Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => "-".into(),
    }
}

/// `90s` as `1m30s`, `600s` as `10m`, `500ms`; `-` when unset.
pub fn duration(d: Option<&prost_types::Duration>) -> String {
    let Some(d) = d else {
        return "-".into();
    };
    let millis = d.seconds.saturating_mul(1000) + i64::from(d.nanos / 1_000_000);
    if millis == 0 {
        return "0s".into();
    }
    if millis % 1000 != 0 {
        return format!("{millis}ms");
    }
    let (h, m, s) = (millis / 3_600_000, millis / 60_000 % 60, millis / 1000 % 60);
    let mut text = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n != 0 {
            text.push_str(&format!("{n}{unit}"));
        }
    }
    text
}

/// `running`, `paused`, … (`unknown(9)` for a state this build does not know).
pub fn campaign_state(state: i32) -> String {
    match pb::CampaignState::try_from(state) {
        Ok(state) => enum_name(state.as_str_name(), "CAMPAIGN_STATE_"),
        Err(_) => format!("unknown({state})"),
    }
}

/// `pending`, `in-call`, `retry-wait`, …
pub fn target_state(state: i32) -> String {
    match pb::TargetState::try_from(state) {
        Ok(state) => enum_name(state.as_str_name(), "TARGET_STATE_"),
        Err(_) => format!("unknown({state})"),
    }
}

/// `busy`, `no-answer`, `in-progress`, …
pub fn call_status(status: i32) -> String {
    match pb::CallStatus::try_from(status) {
        Ok(status) => enum_name(status.as_str_name(), "CALL_STATUS_"),
        Err(_) => format!("unknown({status})"),
    }
}

/// `CAMPAIGN_STATE_RUNNING` as `running`, `TARGET_STATE_IN_CALL` as `in-call`.
fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_lowercase()
        .replace('_', "-")
}

/// A call error as `code: message`, or `-`.
pub fn call_error(error: Option<&pb::CallError>) -> String {
    match error {
        Some(e) if !e.message.is_empty() => format!("{}: {}", e.code, e.message),
        Some(e) if !e.code.is_empty() => e.code.clone(),
        _ => "-".into(),
    }
}

/// Variables as `k=v` in key order, `;`-separated, or `-`.
pub fn variables(variables: &std::collections::HashMap<String, String>) -> String {
    if variables.is_empty() {
        return "-".into();
    }
    let mut pairs: Vec<(&String, &String)> = variables.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Minutes after midnight as `HH:MM`.
pub fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_on_the_widest_cell() {
        let mut table = Table::new(["id", "state", "name"]);
        table.row(["c-1", "running", "Renewals"]);
        table.row(["c-22", "canceled", ""]);
        assert_eq!(
            table.to_string(),
            "id    state     name\n\
             c-1   running   Renewals\n\
             c-22  canceled\n"
        );
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        let t = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        };
        assert_eq!(time(Some(&t)), "2027-01-15T08:00:00Z");
        let t = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 250_000_000,
        };
        assert_eq!(time(Some(&t)), "2027-01-15T08:00:00.250Z");
        assert_eq!(time(None), "-");
    }

    #[test]
    fn durations_and_names_read_as_typed() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(duration(Some(&d(600, 0))), "10m");
        assert_eq!(duration(Some(&d(90, 0))), "1m30s");
        assert_eq!(duration(Some(&d(0, 500_000_000))), "500ms");
        assert_eq!(duration(Some(&d(3600, 0))), "1h");
        assert_eq!(campaign_state(pb::CampaignState::Running as i32), "running");
        assert_eq!(
            target_state(pb::TargetState::RetryWait as i32),
            "retry-wait"
        );
        assert_eq!(call_status(pb::CallStatus::NoAnswer as i32), "no-answer");
        assert_eq!(clock(9 * 60 + 5), "09:05");
    }
}
