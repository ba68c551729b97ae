//! `client:metrics`: a browser client's own counters, reported over its
//! connection so the server's `/metrics` carries the side of the PRD's
//! metrics only a client sees (connect attempts, reconnections and how
//! they recovered, ack latency, commit-to-render latency).
//!
//! Untrusted input: a report is read only when small
//! ([`REPORT_BYTES_MAX`]), at most as often as [`ReportLimits`] allows per
//! connection, and only when every field is in range; anything else is
//! refused as a whole (counted in `lockstep_client_reports_total` by why)
//! and changes nothing. What a report says is what a client claims: the
//! limits bound how much one connection can move the aggregates.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lockstep_core::wire::ErrorCode;
use serde::Deserialize;

/// The event's name.
pub const REPORT_EVENT: &str = "client:metrics";
/// The only report version understood.
pub const REPORT_VERSION: u32 = 1;
/// Largest report read, bytes of JSON.
pub const REPORT_BYTES_MAX: usize = 4_096;
/// Largest value of one counter in one report (a client reports every few
/// seconds: a larger count is not a real client's).
pub const COUNT_MAX: u64 = 10_000;
/// Upper bounds in seconds of the latency buckets a report counts in (a
/// last bucket, above the largest bound, follows). Part of the protocol:
/// the client counts in exactly these.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of a latency list: one per bound, plus the overflow.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS.len() + 1;
/// The value recorded for a sample of the overflow bucket (above every
/// bound; a histogram's `_sum` counts each sample at its bucket's bound).
const OVERFLOW_SECONDS: f64 = 60.0;
/// Failure labels a report may use; any other is counted as `other`.
const CLIENT_FAILURES: [&str; 6] = [
    "exhausted",
    "timeout",
    "unsubscribed",
    "subscription_failed",
    "panic",
    "protocol",
];
/// Distinct error labels in one report, at most.
const ERROR_LABELS_MAX: usize = 16;

/// How often one connection may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// One report per this long, sustained.
    pub every: Duration,
    /// Reports allowed at once above the sustained pace.
    pub burst: u32,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            every: Duration::from_secs(5),
            burst: 2,
        }
    }
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Larger than [`REPORT_BYTES_MAX`] (not read).
    #[error("report of {0} bytes is over the {REPORT_BYTES_MAX}-byte limit")]
    TooLarge(usize),
    /// Sent faster than [`ReportLimits`] allows.
    #[error("reports are limited to one per {0:?} per connection")]
    RateLimited(Duration),
    /// Not a report: wrong shape, unknown version, a value out of range.
    #[error("invalid report: {0}")]
    Invalid(String),
}

impl ReportError {
    /// The label of `lockstep_client_reports_total` and the reply's code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            ReportError::TooLarge(_) => ErrorCode::TooLarge,
            ReportError::RateLimited(_) => ErrorCode::RateLimited,
            ReportError::Invalid(_) => ErrorCode::Invalid,
        }
    }
}

/// Counts of connection outcomes in one report.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Report {
    /// Must be [`REPORT_VERSION`].
    pub v: u32,
    /// Connection attempts started.
    pub connect_attempts: u64,
    /// Attempts that reached `connected`.
    pub connects: u64,
    /// Connections after a lost one that resumed every channel from its
    /// position (nothing missed).
    pub resumed: u64,
    /// Connections after a lost one where some channel could not resume
    /// (a gap reported as truncated, or a reset).
    pub fresh: u64,
    /// Live connections lost.
    pub disconnects: u64,
    /// Channel re-joins that resumed exactly.
    pub recovered: u64,
    /// Channel re-joins that found a gap (`truncated`).
    pub truncated: u64,
    /// Channel re-joins that found a new epoch (`reset`).
    pub reset: u64,
    /// Joins that succeeded.
    pub joins_ok: u64,
    /// Joins refused for good.
    pub joins_failed: u64,
    /// Sends stored.
    pub sends_ok: u64,
    /// Sends given up.
    pub sends_failed: u64,
    /// Failures by code (a server error code, or one of the client's own
    /// reasons such as `exhausted`).
    pub errors: BTreeMap<String, u64>,
    /// `send()` to its ack, counted per [`LATENCY_BOUNDS`] bucket.
    pub ack_latency: Vec<u64>,
    /// A message's commit (its `ts`) to the client's store, per bucket.
    pub delivery_latency: Vec<u64>,
}

impl Report {
    /// Reads and checks one report (JSON text of at most
    /// [`REPORT_BYTES_MAX`] bytes).
    ///
    /// # Errors
    ///
    /// [`ReportError::TooLarge`] or [`ReportError::Invalid`]; nothing of a
    /// refused report is counted.
    pub fn parse(text: &str) -> Result<Report, ReportError> {
        if text.len() > REPORT_BYTES_MAX {
            return Err(ReportError::TooLarge(text.len()));
        }
        let report: Report =
            serde_json::from_str(text).map_err(|e| ReportError::Invalid(e.to_string()))?;
        report.check()?;
        Ok(report)
    }

    fn check(&self) -> Result<(), ReportError> {
        let invalid = |m: String| Err(ReportError::Invalid(m));
        if self.v != REPORT_VERSION {
            return invalid(format!("version {} (expected {REPORT_VERSION})", self.v));
        }
        let counts = [
            ("connectAttempts", self.connect_attempts),
            ("connects", self.connects),
            ("resumed", self.resumed),
            ("fresh", self.fresh),
            ("disconnects", self.disconnects),
            ("recovered", self.recovered),
            ("truncated", self.truncated),
            ("reset", self.reset),
            ("joinsOk", self.joins_ok),
            ("joinsFailed", self.joins_failed),
            ("sendsOk", self.sends_ok),
            ("sendsFailed", self.sends_failed),
        ];
        for (name, n) in counts {
            if n > COUNT_MAX {
                return invalid(format!("{name} is {n} (at most {COUNT_MAX})"));
            }
        }
        if self.errors.len() > ERROR_LABELS_MAX {
            return invalid(format!(
                "{} error labels (at most {ERROR_LABELS_MAX})",
                self.errors.len()
            ));
        }
        if let Some((label, n)) = self.errors.iter().find(|(_, n)| **n > COUNT_MAX) {
            return invalid(format!("errors.{label} is {n} (at most {COUNT_MAX})"));
        }
        for (name, list) in [
            ("ackLatency", &self.ack_latency),
            ("deliveryLatency", &self.delivery_latency),
        ] {
            if !list.is_empty() && list.len() != LATENCY_BUCKETS {
                return invalid(format!(
                    "{name} has {} buckets (expected {LATENCY_BUCKETS})",
                    list.len()
                ));
            }
            let total: u64 = list.iter().sum();
            if total > COUNT_MAX {
                return invalid(format!(
                    "{name} counts {total} samples (at most {COUNT_MAX})"
                ));
            }
        }
        Ok(())
    }

    /// Adds the report to the server's aggregate counters.
    pub fn record(&self) {
        use crate::metrics as m;
        let counter = |name: &'static str, n: u64| {
            if n > 0 {
                ::metrics::counter!(name).increment(n);
            }
        };
        counter(m::CLIENT_CONNECT_ATTEMPTS, self.connect_attempts);
        counter(m::CLIENT_CONNECTS, self.connects);
        counter(m::CLIENT_DISCONNECTS, self.disconnects);
        let labelled = |name: &'static str, label: &'static str, value: &'static str, n: u64| {
            if n > 0 {
                ::metrics::counter!(name, label => value).increment(n);
            }
        };
        labelled(m::CLIENT_RECONNECTS, "outcome", "resumed", self.resumed);
        labelled(m::CLIENT_RECONNECTS, "outcome", "fresh", self.fresh);
        labelled(m::CLIENT_RECOVERIES, "outcome", "recovered", self.recovered);
        labelled(m::CLIENT_RECOVERIES, "outcome", "truncated", self.truncated);
        labelled(m::CLIENT_RECOVERIES, "outcome", "reset", self.reset);
        labelled(m::CLIENT_SUBSCRIPTIONS, "outcome", "ok", self.joins_ok);
        labelled(
            m::CLIENT_SUBSCRIPTIONS,
            "outcome",
            "failed",
            self.joins_failed,
        );
        labelled(m::CLIENT_SENDS, "outcome", "sent", self.sends_ok);
        labelled(m::CLIENT_SENDS, "outcome", "failed", self.sends_failed);
        for (label, n) in &self.errors {
            labelled(m::CLIENT_ERRORS, "code", error_label(label), *n);
        }
        for (name, list) in [
            (m::CLIENT_ACK_LATENCY, &self.ack_latency),
            (m::CLIENT_DELIVERY_LATENCY, &self.delivery_latency),
        ] {
            let histogram = ::metrics::histogram!(name);
            for (i, n) in list.iter().enumerate() {
                let at = LATENCY_BOUNDS.get(i).copied().unwrap_or(OVERFLOW_SECONDS);
                if *n > 0 {
                    // Checked: at most COUNT_MAX samples per list.
                    histogram.record_many(at, usize::try_from(*n).unwrap_or(0));
                }
            }
        }
    }
}

/// The bounded label an error count is recorded under.
fn error_label(label: &str) -> &'static str {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(CLIENT_FAILURES)
        .find(|known| *known == label)
        .unwrap_or("other")
}

/// One connection's report allowance: a token bucket.
#[derive(Debug)]
pub(crate) struct ReportGate {
    limits: ReportLimits,
    tokens: f64,
    at: Option<Instant>,
}

impl ReportGate {
    pub(crate) fn new(limits: ReportLimits) -> Self {
        ReportGate {
            limits,
            tokens: f64::from(limits.burst.max(1)),
            at: None,
        }
    }

    /// Takes one report's token at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), ReportError> {
        let burst = f64::from(self.limits.burst.max(1));
        if let Some(at) = self.at {
            let every = self.limits.every.as_secs_f64();
            let earned = if every > 0.0 {
                now.saturating_duration_since(at).as_secs_f64() / every
            } else {
                burst
            };
            self.tokens = (self.tokens + earned).min(burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(ReportError::RateLimited(self.limits.every))
        }
    }
}

/// Handles one `client:metrics` event: refuses it or records it, and
/// counts either way. Returns the refusal for the reply, if any.
pub(crate) fn handle(
    gate: &mut ReportGate,
    payload: Option<&str>,
    now: Instant,
) -> Result<(), ReportError> {
    let result = match payload {
        Some(text) if text.len() > REPORT_BYTES_MAX => Err(ReportError::TooLarge(text.len())),
        _ => gate
            .take(now)
            .and_then(|()| Report::parse(payload.unwrap_or("null")).map(|report| report.record())),
    };
    let outcome = match &result {
        Ok(()) => "accepted",
        Err(e) => e.code().as_str(),
    };
    ::metrics::counter!(crate::metrics::CLIENT_REPORTS, "outcome" => outcome).increment(1);
    result
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    fn full() -> String {
        let buckets = |n: u64| {
            let mut v = vec![0; LATENCY_BUCKETS];
            v[2] = n;
            v[LATENCY_BUCKETS - 1] = 1;
            v
        };
        serde_json::json!({
            "v": 1, "connectAttempts": 3, "connects": 2, "resumed": 1, "fresh": 0,
            "disconnects": 1, "recovered": 2, "truncated": 0, "reset": 0,
            "joinsOk": 2, "joinsFailed": 1, "sendsOk": 5, "sendsFailed": 1,
            "errors": { "forbidden": 1, "exhausted": 1, "made-up": 4 },
            "ackLatency": buckets(5), "deliveryLatency": buckets(7),
            "futureField": true,
        })
        .to_string()
    }

    #[test]
    fn a_report_is_read_with_unknown_fields_ignored() {
        let r = Report::parse(&full()).unwrap();
        assert_eq!((r.connect_attempts, r.connects, r.resumed), (3, 2, 1));
        assert_eq!(r.errors.len(), 3);
        assert_eq!(r.ack_latency[2], 5);
    }

    #[test]
    fn bad_reports_are_refused_whole() {
        let cases = [
            ("null", "invalid"),
            ("[]", "invalid"),
            (r#"{"v":2}"#, "version 2"),
            (r#"{"v":1,"connects":-1}"#, "invalid"),
            (r#"{"v":1,"connects":10001}"#, "at most 10000"),
            (r#"{"v":1,"connects":"3"}"#, "invalid"),
            (r#"{"v":1,"ackLatency":[1,2]}"#, "buckets"),
            (r#"{"v":1,"errors":{"x":10001}}"#, "errors.x"),
            (r#"{"v":1,"errors":[1]}"#, "invalid"),
        ];
        for (text, expected) in cases {
            let e = Report::parse(text).unwrap_err();
            assert!(e.to_string().contains(expected), "{text}: {e}");
            assert_eq!(e.code(), ErrorCode::Invalid, "{text}");
        }
        let many: serde_json::Map<_, _> = (0..17).map(|i| (format!("e{i}"), 1.into())).collect();
        let text = serde_json::json!({"v": 1, "errors": many}).to_string();
        assert!(
            Report::parse(&text)
                .unwrap_err()
                .to_string()
                .contains("labels")
        );
        let big = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(REPORT_BYTES_MAX));
        assert_eq!(Report::parse(&big).unwrap_err().code(), ErrorCode::TooLarge);
        let samples =
            serde_json::json!({"v": 1, "ackLatency": [10_000, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]});
        assert!(Report::parse(&samples.to_string()).is_err());
    }

    #[test]
    fn the_gate_allows_a_burst_then_one_per_interval() {
        let mut gate = ReportGate::new(ReportLimits {
            every: Duration::from_secs(5),
            burst: 2,
        });
        let t0 = Instant::now();
        assert!(gate.take(t0).is_ok());
        assert!(gate.take(t0).is_ok());
        assert!(matches!(gate.take(t0), Err(ReportError::RateLimited(_))));
        assert!(gate.take(t0 + Duration::from_secs(4)).is_err());
        assert!(gate.take(t0 + Duration::from_secs(6)).is_ok());
        assert!(gate.take(t0 + Duration::from_secs(6)).is_err());
    }

    #[test]
    fn an_accepted_report_moves_the_aggregates_and_a_refused_one_only_its_refusal_count() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let mut gate = ReportGate::new(ReportLimits {
                every: Duration::from_secs(60),
                burst: 1,
            });
            let now = Instant::now();
            handle(&mut gate, Some(&full()), now).unwrap();
            // Rate limited: nothing of it counts.
            assert!(handle(&mut gate, Some(&full()), now).is_err());
        });
        let mut seen = std::collections::BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
            let value = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(v) => v.len() as u64,
                DebugValue::Gauge(_) => continue,
            };
            seen.insert(name, value);
        }
        let get = |k: &str| seen.get(k).copied();
        assert_eq!(get("lockstep_client_connect_attempts_total{}"), Some(3));
        assert_eq!(
            get("lockstep_client_reconnects_total{outcome=resumed}"),
            Some(1)
        );
        assert_eq!(get("lockstep_client_reconnects_total{outcome=fresh}"), None);
        assert_eq!(get("lockstep_client_errors_total{code=forbidden}"), Some(1));
        assert_eq!(get("lockstep_client_errors_total{code=other}"), Some(4));
        assert_eq!(get("lockstep_client_ack_latency_seconds{}"), Some(6));
        assert_eq!(get("lockstep_client_delivery_latency_seconds{}"), Some(8));
        assert_eq!(
            get("lockstep_client_reports_total{outcome=accepted}"),
            Some(1)
        );
        assert_eq!(
            get("lockstep_client_reports_total{outcome=rate_limited}"),
            Some(1)
        );
    }
}
