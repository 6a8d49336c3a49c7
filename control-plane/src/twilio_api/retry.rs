//! When a failed Twilio REST request is tried again, and after how long.
//!
//! Pure: [`HttpTwilioApi`](super::HttpTwilioApi) classifies each failed attempt as a
//! [`Failure`] and asks the [`RetryPolicy`] for the next delay, then sleeps.
//!
//! What may be repeated depends on whether Twilio might already have acted:
//! - 429 and Twilio error 20429 ("too many requests") mean Twilio refused the request
//!   without acting on it: any request is repeated;
//! - a connection that was never made sent nothing: any request is repeated;
//! - a 5xx answer, or no answer at all (a timeout, a reset) after the request went out,
//!   may follow a request Twilio carried out. Redirecting or hanging up a call twice
//!   has the effect of doing it once, so updates are repeated; creating a call twice
//!   places two calls, so creation is not (see [`Idempotency`]).

use std::time::Duration;

/// Twilio's error code for "too many requests" (sent with HTTP 429).
pub const TOO_MANY_REQUESTS: u32 = 20429;

/// How often and how long a request is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles with each further one.
    pub base_delay: Duration,
    /// The longest backoff (a `Retry-After` from Twilio may ask for longer).
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt began;
    /// a `Retry-After` that would end past it ends the retries at once.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts over at most 20 s: enough to ride out a burst over the account's
    /// concurrency limit or a brief Twilio incident, short enough for an RPC caller.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            budget: Duration::from_secs(20),
        }
    }
}

/// Whether repeating a request that Twilio may have carried out is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Redirecting or ending a live call: a second time changes nothing more.
    Idempotent,
    /// Creating a call: a second time places a second call. Repeated only when Twilio
    /// certainly did not act (429, nothing sent). A 5xx or a lost answer is reported;
    /// if Twilio did place that call, its webhook finds a failed session and the
    /// callee hears an apology rather than an agent nobody records.
    CreatesResource,
}

/// Why an attempt failed, as far as repeating it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 429 or error 20429: Twilio refused without acting.
    RateLimited { retry_after: Option<Duration> },
    /// The connection was never made: nothing was sent.
    NotSent,
    /// 5xx: Twilio may have acted.
    ServerError { retry_after: Option<Duration> },
    /// Sent, but no answer came back: Twilio may have acted.
    NoAnswer,
    /// Any other refusal (4xx): the same request gets the same answer.
    Final,
}

impl Failure {
    /// The failure of an HTTP answer with `status` and Twilio's error `code` (0: none).
    pub fn of_answer(status: u16, code: u32, retry_after: Option<Duration>) -> Failure {
        if status == 429 || code == TOO_MANY_REQUESTS {
            Failure::RateLimited { retry_after }
        } else if status >= 500 {
            Failure::ServerError { retry_after }
        } else {
            Failure::Final
        }
    }

    /// Whether a request of `kind` that failed so may be sent again.
    pub fn may_repeat(self, kind: Idempotency) -> bool {
        match self {
            Failure::RateLimited { .. } | Failure::NotSent => true,
            Failure::ServerError { .. } | Failure::NoAnswer => kind == Idempotency::Idempotent,
            Failure::Final => false,
        }
    }

    fn retry_after(self) -> Option<Duration> {
        match self {
            Failure::RateLimited { retry_after } | Failure::ServerError { retry_after } => {
                retry_after
            }
            _ => None,
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt, after `failed` attempts of a request of `kind`
    /// (the last failing as `failure`), `elapsed` after the first began; `None` to stop.
    /// `jitter` is a random number in `[0, 1)`.
    pub fn next_delay(
        &self,
        kind: Idempotency,
        failure: Failure,
        failed: u32,
        elapsed: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        if !failure.may_repeat(kind) || failed >= self.max_attempts {
            return None;
        }
        // Twilio's own word wins over our guess.
        let delay = failure
            .retry_after()
            .unwrap_or_else(|| self.backoff(failed, jitter));
        (elapsed.saturating_add(delay) <= self.budget).then_some(delay)
    }

    /// Exponential backoff with "equal jitter": half the step is fixed, half random,
    /// so replicas throttled at the same moment spread out yet none retries at once.
    fn backoff(&self, failed: u32, jitter: f64) -> Duration {
        let doublings = failed.saturating_sub(1).min(30);
        let step = self
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// `Retry-After`: delay seconds, or an HTTP date (judged against `now`). Unreadable
/// values are ignored (the backoff applies).
pub(super) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: 100 * MS,
            max_delay: 600 * MS,
            budget: 10_000 * MS,
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_with_half_of_it_random() {
        let p = policy();
        let busy = Failure::RateLimited { retry_after: None };
        let delay = |failed, jitter| {
            p.next_delay(
                Idempotency::Idempotent,
                busy,
                failed,
                Duration::ZERO,
                jitter,
            )
            .unwrap()
        };
        assert_eq!(delay(1, 0.0), 50 * MS);
        let most = delay(1, 0.999_999);
        assert!(most > 99 * MS && most < 100 * MS, "{most:?}");
        assert_eq!(delay(2, 0.0), 100 * MS);
        assert_eq!(delay(3, 0.5), 300 * MS);
        assert_eq!(delay(4, 1.0), 600 * MS, "capped at max_delay");
        assert_eq!(
            p.next_delay(Idempotency::Idempotent, busy, 5, Duration::ZERO, 0.0),
            None,
            "five attempts in all"
        );
    }

    #[test]
    fn retry_after_wins_unless_it_ends_past_the_budget() {
        let p = policy();
        let asked = |secs| Failure::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        };
        let kind = Idempotency::CreatesResource;
        assert_eq!(
            p.next_delay(kind, asked(3), 1, Duration::ZERO, 0.0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(p.next_delay(kind, asked(3), 1, 8000 * MS, 0.0), None);
        assert_eq!(p.next_delay(kind, asked(60), 1, Duration::ZERO, 0.0), None);
    }

    #[test]
    fn only_requests_twilio_did_not_act_on_are_repeated_when_they_create_calls() {
        let create = Idempotency::CreatesResource;
        let update = Idempotency::Idempotent;
        let server = Failure::of_answer(503, 0, None);
        assert!(Failure::of_answer(429, 20429, None).may_repeat(create));
        assert!(Failure::of_answer(503, TOO_MANY_REQUESTS, None).may_repeat(create));
        assert!(Failure::NotSent.may_repeat(create));
        assert!(!server.may_repeat(create) && server.may_repeat(update));
        assert!(!Failure::NoAnswer.may_repeat(create) && Failure::NoAnswer.may_repeat(update));
        let refused = Failure::of_answer(400, 21211, None);
        assert!(!refused.may_repeat(create) && !refused.may_repeat(update));
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
