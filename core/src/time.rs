//! Virtual time: the only notion of "now" the machines know.
//!
//! Machines never read a clock. Drivers pass an [`Instant`] into every
//! `handle_*` call; the simulator passes its virtual clock, the tokio driver
//! passes milliseconds since it started. Input time must be monotonic per
//! machine; a call with an earlier time is treated as "no time has passed".

use std::fmt;
use std::time::Duration;

/// A point on a machine's monotonic timeline, in whole milliseconds since an
/// arbitrary origin chosen by the driver.
///
/// Milliseconds are fine-grained enough for every protocol timer (the shortest
/// default is hundreds of milliseconds) and keep traces readable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the timeline; simulations start here.
    pub const ZERO: Instant = Instant(0);

    /// Builds an instant `ms` milliseconds after the origin.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the origin, for traces and wire timestamps.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating instead of overflowing so a huge configured
    /// timeout means "never" rather than a panic.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    #[must_use]
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_arithmetic_never_panics() {
        let t = Instant::from_millis(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(10)).as_millis(),
            u64::MAX
        );
        assert_eq!(Instant::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(format!("{}", Instant::from_millis(1_234)), "1.234s");
    }
}
