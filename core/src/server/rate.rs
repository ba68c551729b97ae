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
        self.refill(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    /// Gives back a token taken by [`try_take`](Self::try_take) for a
    /// request that another budget refused after all.
    pub(crate) fn refund(&mut self) {
        self.milli = self.milli.saturating_add(1000).min(self.cap);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.as_millis().saturating_sub(self.last.as_millis());
        self.last = self.last.max(now);
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(self.per_ms))
            .min(self.cap);
    }
}

/// A budget of bytes per second that may run into debt: work whose cost is
/// known only once done (the size of a reply) is charged afterwards, and
/// more work waits until the debt is paid back.
#[derive(Debug, Clone)]
pub(crate) struct ByteBucket {
    /// Bytes available; negative while in debt.
    bytes: i64,
    cap: i64,
    per_ms: i64,
    last: Instant,
}

impl ByteBucket {
    /// A full bucket: `burst` bytes at once, `per_sec` sustained.
    pub(crate) fn new(per_sec: usize, burst: usize, now: Instant) -> Self {
        let cap = i64::try_from(burst.max(1)).unwrap_or(i64::MAX);
        ByteBucket {
            bytes: cap,
            cap,
            per_ms: i64::try_from(per_sec / 1000).unwrap_or(i64::MAX).max(1),
            last: now,
        }
    }

    /// Charges `bytes` of work done.
    pub(crate) fn charge(&mut self, now: Instant, bytes: usize) {
        self.refill(now);
        self.bytes = self
            .bytes
            .saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// When more work may start: `now` unless in debt, else the instant the
    /// debt is paid back.
    pub(crate) fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.bytes > 0 {
            return now;
        }
        let wait_ms = (1 - self.bytes).div_euclid(self.per_ms) + 1;
        now.saturating_add(std::time::Duration::from_millis(
            u64::try_from(wait_ms).unwrap_or(u64::MAX),
        ))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.as_millis().saturating_sub(self.last.as_millis());
        self.last = self.last.max(now);
        let gained = i64::try_from(elapsed)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.per_ms);
        self.bytes = self.bytes.saturating_add(gained).min(self.cap);
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
        b.refund();
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[test]
    fn bytes_run_into_debt_and_work_waits_until_it_is_paid() {
        let t0 = Instant::from_millis(0);
        let mut b = ByteBucket::new(1_000_000, 2_000_000, t0);
        assert_eq!(b.ready_at(t0), t0);
        b.charge(t0, 1_500_000);
        assert_eq!(b.ready_at(t0), t0, "still 500 kB left");
        b.charge(t0, 1_500_000);
        // 1 MB of debt at 1 MB/s: ready a second later, not before.
        let ready = b.ready_at(t0);
        assert!(ready > Instant::from_millis(1_000) && ready <= Instant::from_millis(1_002));
        assert_eq!(b.ready_at(ready), ready);
    }
}
