//! Parsers of the operator commands' option values: durations, calling windows,
//! weekdays, times and variables, each refusing a bad value with an example of a good
//! one.

use std::time::Duration;

/// `500ms`, `30s`, `2m`, `1h`.
pub fn duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let bad = || format!("{value:?} is not a duration like 500ms, 30s, 2m or 1h");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |factor: u64| number.checked_mul(factor).ok_or_else(bad);
    Ok(match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(seconds(60)?),
        "h" => Duration::from_secs(seconds(3600)?),
        _ => return Err(bad()),
    })
}

/// A calling window: minutes after local midnight, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_minute: u32,
    pub end_minute: u32,
}

/// `09:00-18:00` (the end may be `24:00`).
pub fn window(value: &str) -> Result<Window, String> {
    let bad = |why: &str| format!("{value:?} {why}; a window is written like 09:00-18:00");
    let (start, end) = value.split_once('-').ok_or_else(|| bad("has no '-'"))?;
    let minute = |text: &str| -> Result<u32, String> {
        let (h, m) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| bad("needs HH:MM"))?;
        let h: u32 = h.parse().map_err(|_| bad("needs HH:MM"))?;
        let m: u32 = m.parse().map_err(|_| bad("needs HH:MM"))?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad("is not a time of day"));
        }
        Ok(h * 60 + m)
    };
    let window = Window {
        start_minute: minute(start)?,
        end_minute: minute(end)?,
    };
    if window.end_minute <= window.start_minute {
        return Err(bad("ends before it starts"));
    }
    Ok(window)
}

/// ISO weekdays (1 = Monday … 7 = Sunday), in order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weekdays(pub Vec<u32>);

/// `1-5`, `1,3,5`, `1-3,6`.
pub fn weekdays(value: &str) -> Result<Weekdays, String> {
    let bad = || {
        format!(
            "{value:?} is not a list of ISO weekdays (1 = Monday … 7 = Sunday) like 1-5 or 1,3,5"
        )
    };
    let day = |text: &str| -> Result<u32, String> {
        match text.trim().parse::<u32>() {
            Ok(d) if (1..=7).contains(&d) => Ok(d),
            _ => Err(bad()),
        }
    };
    let mut days = Vec::new();
    for part in value.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                if to < from {
                    return Err(bad());
                }
                days.extend(from..=to);
            }
            None => days.push(day(part)?),
        }
    }
    days.sort_unstable();
    days.dedup();
    Ok(Weekdays(days))
}

/// An RFC 3339 time, e.g. `2026-12-24T09:00:00+09:00`.
pub fn time(value: &str) -> Result<prost_types::Timestamp, String> {
    let time = chrono::DateTime::parse_from_rfc3339(value.trim()).map_err(|e| {
        format!("{value:?} is not an RFC 3339 time like 2026-12-24T09:00:00+09:00 ({e})")
    })?;
    Ok(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

/// A variable: `key=value` (the value may be empty and may hold `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub key: String,
    pub value: String,
}

pub fn var(value: &str) -> Result<Var, String> {
    match value.split_once('=') {
        Some((key, v)) if !key.trim().is_empty() => Ok(Var {
            key: key.trim().to_owned(),
            value: v.to_owned(),
        }),
        _ => Err(format!("{value:?} is not key=value")),
    }
}

/// A duration as protobuf's.
pub fn to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(duration("60").unwrap_err().contains("like 500ms"));
        assert!(duration("1.5s").is_err());
    }

    #[test]
    fn windows_are_clock_times_in_order() {
        assert_eq!(
            window("09:00-18:00"),
            Ok(Window {
                start_minute: 540,
                end_minute: 1080
            })
        );
        assert_eq!(window("0:00-24:00").unwrap().end_minute, 1440);
        assert!(window("18:00-09:00")
            .unwrap_err()
            .contains("ends before it starts"));
        assert!(window("9-18").is_err());
        assert!(window("09:00-24:30").is_err());
        assert!(window("09:60-18:00").is_err());
    }

    #[test]
    fn weekdays_are_ranges_and_lists() {
        assert_eq!(weekdays("1-5"), Ok(Weekdays(vec![1, 2, 3, 4, 5])));
        assert_eq!(weekdays("6,1-2,1"), Ok(Weekdays(vec![1, 2, 6])));
        assert!(weekdays("0-5").is_err());
        assert!(weekdays("5-1").is_err());
        assert!(weekdays("mon").is_err());
    }

    #[test]
    fn times_are_rfc3339_and_vars_key_value() {
        let t = time("2026-12-24T09:00:00+09:00").unwrap();
        assert_eq!(t.seconds, 1_798_070_400);
        assert!(time("2026-12-24 09:00").is_err());
        assert_eq!(
            var("greeting=hi=there"),
            Ok(Var {
                key: "greeting".into(),
                value: "hi=there".into()
            })
        );
        assert!(var("=x").is_err());
        assert!(var("plain").is_err());
    }
}
