//! Liveness and readiness. Live: the process answers HTTP. Ready: it can
//! serve requests: the driver task runs, the store is alive (the SQLite
//! writer thread has not died) and the store is not failing persistently.
//! A load balancer stops sending clients to a server that is not ready; an
//! orchestrator restarts one that is not live.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lockstep_tokio::server::Frontdoor;
use serde_json::json;

/// Consecutive failed store commands after which the store counts as
/// failing: one failure is a blip (a busy disk, one bad batch); eight in a
/// row with nothing succeeding in between is an outage.
pub const FAILURE_STREAK: u32 = 8;

/// The window over which the failure rate is judged.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10);

/// Failures within [`FAILURE_WINDOW`] that, when they are also at least
/// half of its commands, make the store count as failing even if some
/// commands still succeed (a flapping disk).
pub const WINDOW_FAILURES_MIN: u64 = 20;

/// Seconds per bucket of the failure window.
const BUCKETS: usize = 10;

/// The outcomes of recent store commands, fed by
/// [`Metered`](crate::metered::Metered).
#[derive(Debug)]
pub struct StoreHealth {
    state: Mutex<Outcomes>,
}

#[derive(Debug)]
struct Outcomes {
    started: Instant,
    streak: u32,
    /// Per second (`second % BUCKETS`): which second, commands, failures.
    buckets: [(u64, u64, u64); BUCKETS],
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            state: Mutex::new(Outcomes {
                started: Instant::now(),
                streak: 0,
                buckets: [(u64::MAX, 0, 0); BUCKETS],
            }),
        }
    }
}

impl StoreHealth {
    /// Records one command's outcome.
    pub fn record(&self, ok: bool) {
        self.record_at(Instant::now(), ok);
    }

    fn record_at(&self, now: Instant, ok: bool) {
        let mut state = self.state();
        state.streak = if ok {
            0
        } else {
            state.streak.saturating_add(1)
        };
        let second = now.saturating_duration_since(state.started).as_secs();
        let bucket = &mut state.buckets[(second % BUCKETS as u64) as usize];
        if bucket.0 != second {
            *bucket = (second, 0, 0);
        }
        bucket.1 += 1;
        bucket.2 += u64::from(!ok);
    }

    /// Why the store counts as failing, if it does.
    #[must_use]
    pub fn failing(&self) -> Option<String> {
        self.failing_at(Instant::now())
    }

    fn failing_at(&self, now: Instant) -> Option<String> {
        let state = self.state();
        if state.streak >= FAILURE_STREAK {
            return Some(format!(
                "store failing: the last {} commands failed",
                state.streak
            ));
        }
        let second = now.saturating_duration_since(state.started).as_secs();
        let (commands, failures) = state
            .buckets
            .iter()
            .filter(|(at, _, _)| *at <= second && second - *at < BUCKETS as u64)
            .fold((0, 0), |(c, f), (_, bc, bf)| (c + bc, f + bf));
        (failures >= WINDOW_FAILURES_MIN && failures * 2 >= commands).then(|| {
            format!(
                "store failing: {failures} of {commands} commands failed in the last {} s",
                FAILURE_WINDOW.as_secs()
            )
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        // Every update leaves consistent counters: a poisoned lock is fine.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How the server authenticates, as `/health` and `/metrics` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--dev`: anyone can be anyone.
    Dev,
    /// JWT.
    Production,
}

impl Mode {
    /// The name `/health` reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Production => "production",
        }
    }
}

/// Answers the health probes.
#[derive(Clone)]
pub struct Probe {
    driver: Frontdoor,
    store_alive: Arc<dyn Fn() -> bool + Send + Sync>,
    store: Arc<StoreHealth>,
    mode: Mode,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// A probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Why the server is not ready; empty when it is.
    pub reasons: Vec<String>,
}

impl Readiness {
    /// Whether the server can serve.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.reasons.is_empty()
    }
}

impl Probe {
    /// A probe of the driver behind `driver` and of a store.
    pub fn new(
        driver: Frontdoor,
        store_alive: impl Fn() -> bool + Send + Sync + 'static,
        store: Arc<StoreHealth>,
        mode: Mode,
    ) -> Self {
        Probe {
            driver,
            store_alive: Arc::new(store_alive),
            store,
            mode,
        }
    }

    /// The authentication mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Checks readiness now.
    #[must_use]
    pub fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        if !self.driver.is_running() {
            reasons.push("server driver stopped".to_owned());
        }
        if !(self.store_alive)() {
            reasons.push("store stopped (its writer is gone)".to_owned());
        }
        reasons.extend(self.store.failing());
        Readiness { reasons }
    }

    /// The JSON body of `/health/live`.
    #[must_use]
    pub fn live_body(&self) -> String {
        json!({ "status": "ok", "mode": self.mode.as_str() }).to_string()
    }

    /// The JSON body of `/health/ready` (and `/health`) for `readiness`.
    #[must_use]
    pub fn ready_body(&self, readiness: &Readiness) -> String {
        let status = if readiness.is_ready() {
            "ok"
        } else {
            "unavailable"
        };
        json!({
            "status": status,
            "mode": self.mode.as_str(),
            "reasons": readiness.reasons,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_of_failures_fails_and_one_success_clears_it() {
        let health = StoreHealth::default();
        for _ in 0..FAILURE_STREAK - 1 {
            health.record(false);
        }
        assert_eq!(health.failing(), None);
        health.record(false);
        assert!(
            health
                .failing()
                .unwrap()
                .contains("the last 8 commands failed")
        );
        health.record(true);
        assert_eq!(health.failing(), None);
    }

    #[test]
    fn a_high_failure_rate_in_the_window_fails_until_it_ages_out() {
        let health = StoreHealth::default();
        let t0 = health.state().started;
        // 30 failures and 20 successes, interleaved: never a streak.
        for i in 0..50 {
            health.record_at(t0 + Duration::from_millis(i * 100), i % 5 < 2);
        }
        for i in 0..30 {
            health.record_at(t0 + Duration::from_millis(i * 100), false);
            health.record_at(t0 + Duration::from_millis(i * 100), true);
        }
        let at = t0 + Duration::from_secs(8);
        let reason = health.failing_at(at).unwrap();
        assert!(reason.contains("60 of 110 commands failed"), "{reason}");
        // Ten seconds later the failures have aged out.
        assert_eq!(health.failing_at(t0 + Duration::from_secs(25)), None);
        // Mostly successes: not failing, though failures are many.
        let busy = StoreHealth::default();
        let t0 = busy.state().started;
        for i in 0..100 {
            busy.record_at(t0 + Duration::from_millis(i * 10), i % 3 != 0);
        }
        assert_eq!(busy.failing_at(t0 + Duration::from_secs(2)), None);
    }
}
