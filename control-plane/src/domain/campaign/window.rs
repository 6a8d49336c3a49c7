//! When a campaign's calling window is open for one callee.
//!
//! A window is minutes of the callee's local day (`[start_minute, end_minute)`) on some
//! ISO weekdays, in an IANA zone: the target's own `time_zone` when it has one, else the
//! window's. [`CallWindow::next_open`] answers "may this callee be called now, and if
//! not, from when": the dispatcher defers a target to that instant instead of looking
//! at it again every round.
//!
//! Local times that do not exist (the hour skipped when clocks go forward) resolve to
//! the first instant after the gap; times that exist twice (the hour repeated when they
//! go back) to the earlier one.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use super::CallWindow;
use crate::domain::Timestamp;

/// Days looked ahead for an opening: a week covers every weekday set.
const DAYS_AHEAD: i64 = 8;

impl CallWindow {
    /// The zone a callee's window is read in: `target_zone` when set and known, else
    /// the window's own (UTC if that is unknown, which validation prevents).
    pub fn zone_for(&self, target_zone: &str) -> Tz {
        [target_zone, self.time_zone.as_str()]
            .into_iter()
            .filter(|z| !z.is_empty())
            .find_map(|z| z.parse::<Tz>().ok())
            .unwrap_or(Tz::UTC)
    }

    /// `None` when the window is open for a callee in `target_zone` at `now`; else the
    /// next instant it opens.
    pub fn next_open(&self, target_zone: &str, now: Timestamp) -> Option<Timestamp> {
        let zone = self.zone_for(target_zone);
        let local = now.with_timezone(&zone).naive_local();
        if self.is_open_at(local) {
            return None;
        }
        let today = local.date();
        (0..DAYS_AHEAD)
            .filter_map(|ahead| today.checked_add_signed(Duration::days(ahead)))
            .filter(|day| self.allows_day(*day))
            .filter_map(|day| self.opening(zone, day))
            .find(|opens| *opens > now)
    }

    fn allows_day(&self, day: NaiveDate) -> bool {
        let weekday = day.weekday().number_from_monday();
        self.weekdays.is_empty() || self.weekdays.contains(&weekday)
    }

    fn is_open_at(&self, local: NaiveDateTime) -> bool {
        let minute = local.time().signed_duration_since(chrono::NaiveTime::MIN);
        let minute = u32::try_from(minute.num_minutes()).unwrap_or(0);
        self.allows_day(local.date()) && (self.start_minute..self.end_minute).contains(&minute)
    }

    /// The instant the window opens on local `day` in `zone`.
    fn opening(&self, zone: Tz, day: NaiveDate) -> Option<Timestamp> {
        let local = day.and_hms_opt(0, 0, 0)? + Duration::minutes(i64::from(self.start_minute));
        let resolved = match zone.from_local_datetime(&local) {
            LocalResult::Single(t) => t,
            LocalResult::Ambiguous(earlier, _) => earlier,
            // In a gap: the first valid instant after it (gaps are at most a few hours).
            LocalResult::None => (1..=240).find_map(|m| {
                zone.from_local_datetime(&(local + Duration::minutes(m)))
                    .earliest()
            })?,
        };
        Some(resolved.with_timezone(&chrono::Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn window(zone: &str, start: u32, end: u32, weekdays: Vec<u32>) -> CallWindow {
        CallWindow {
            time_zone: zone.into(),
            start_minute: start,
            end_minute: end,
            weekdays,
        }
    }

    fn utc(s: &str) -> Timestamp {
        s.parse::<chrono::DateTime<Utc>>().unwrap()
    }

    #[test]
    fn inside_the_window_it_is_open() {
        // 09:00–18:00 Tokyo; 01:00 UTC is 10:00 in Tokyo (a Tuesday).
        let w = window("Asia/Tokyo", 9 * 60, 18 * 60, vec![]);
        assert_eq!(w.next_open("", utc("2026-12-08T01:00:00Z")), None);
    }

    #[test]
    fn before_the_window_it_opens_the_same_day_and_after_it_the_next() {
        let w = window("Asia/Tokyo", 9 * 60, 18 * 60, vec![]);
        // 06:00 Tokyo → 09:00 Tokyo = 00:00 UTC.
        assert_eq!(
            w.next_open("", utc("2026-12-07T21:00:00Z")),
            Some(utc("2026-12-08T00:00:00Z"))
        );
        // 18:00 Tokyo exactly is closed (the end is exclusive) → 09:00 the next day.
        assert_eq!(
            w.next_open("", utc("2026-12-08T09:00:00Z")),
            Some(utc("2026-12-09T00:00:00Z"))
        );
    }

    #[test]
    fn the_targets_zone_wins_over_the_windows() {
        let w = window("Asia/Tokyo", 9 * 60, 18 * 60, vec![]);
        let now = utc("2026-12-08T01:00:00Z"); // 10:00 Tokyo, 20:00 New York (Monday)
        assert_eq!(w.next_open("", now), None);
        assert_eq!(
            w.next_open("America/New_York", now),
            Some(utc("2026-12-08T14:00:00Z")),
            "09:00 in New York on Tuesday"
        );
        assert_eq!(w.zone_for("Not/AZone"), Tz::Asia__Tokyo);
    }

    #[test]
    fn weekdays_skip_to_the_next_allowed_day() {
        // Weekdays only; Saturday 2026-12-12 10:00 UTC → Monday 09:00 UTC.
        let w = window("UTC", 9 * 60, 17 * 60, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            w.next_open("", utc("2026-12-12T10:00:00Z")),
            Some(utc("2026-12-14T09:00:00Z"))
        );
        assert_eq!(w.next_open("", utc("2026-12-14T16:59:59Z")), None);
    }

    #[test]
    fn an_opening_inside_a_clock_change_gap_moves_past_it() {
        // New York skips 02:00–03:00 on 2027-03-14; a window opening at 02:30 opens at
        // 03:00 local (07:00 UTC) that day.
        let w = window("America/New_York", 150, 600, vec![]);
        assert_eq!(
            w.next_open("", utc("2027-03-14T05:00:00Z")),
            Some(utc("2027-03-14T07:00:00Z"))
        );
    }
}
