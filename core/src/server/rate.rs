//! A token bucket on the injected clock, in integer milli-tokens so it is
//! exact and deterministic.

use crate::Instant;

/// Allows `burst` events at once and `per_sec` sustained.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Milli-tokens available.
    milli: u64,
    /// Capacity in milli-tokens.
    cap: u64,
    /// Milli-tokens gained per millisecond (= tokens per second).
    per_ms: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(per_sec: u32, burst: u32, now: Instant) -> Self {
        let cap = u64::from(burst.max(1)) * 1000;
        TokenBucket {
            milli: cap,
            cap,
            per_ms: u64::from(per_sec),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.as_millis().saturating_sub(self.last.as_millis());
        self.last = self.last.max(now);
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(self.per_ms))
            .min(self.cap);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::from_millis(1000);
        let mut b = TokenBucket::new(10, 3, t0);
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(Instant::from_millis(1099)));
        assert!(b.try_take(Instant::from_millis(1100)));
        // Time going backwards gives nothing.
        assert!(!b.try_take(Instant::from_millis(500)));
        // A long pause refills only up to the burst.
        let later = Instant::from_millis(100_000);
        assert!((0..3).all(|_| b.try_take(later)));
        assert!(!b.try_take(later));
    }
}
