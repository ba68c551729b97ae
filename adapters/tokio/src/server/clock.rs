//! The server's clock, injectable so tests and simulations control time.

use lockstep_core::Instant;

/// The server machine's notion of now: Unix milliseconds (they become
/// message `ts`). Must not go backwards.
pub trait Clock: Send + Sync + 'static {
    /// Now, in Unix milliseconds.
    fn now(&self) -> Instant;
}

/// The default clock: the Unix time read once at start plus tokio's
/// monotonic elapsed time, so it never goes backwards and, under turmoil or
/// a paused runtime, advances virtually.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts the clock now. Must run inside a tokio runtime.
    #[must_use]
    pub fn new() -> Self {
        let origin_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        TokioClock::starting_at(origin_ms)
    }

    /// A clock that reads `origin_ms` now (deterministic tests).
    #[must_use]
    pub fn starting_at(origin_ms: u64) -> Self {
        TokioClock {
            origin_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(self.origin_ms.saturating_add(elapsed))
    }
}
