//! A log-linear latency histogram in microseconds: exact below 128 µs,
//! then 64 buckets per power of two (under 1.6 % error), so memory stays
//! fixed (a few KiB) however many deliveries a run records.

/// Sub-buckets per power of two above the exact range.
const SUB: u64 = 64;
/// Values below this are counted exactly.
const EXACT: u64 = 2 * SUB;
/// Buckets cover values up to 2^40 µs (12 days); larger ones share the last.
const BUCKETS: usize = (EXACT + 34 * SUB) as usize;

/// Latency samples, mergeable across tasks.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    /// An empty histogram.
    pub(crate) fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    /// Records one sample of `micros`.
    pub(crate) fn record(&mut self, micros: u64) {
        let i = index(micros).min(BUCKETS - 1);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// Adds every sample of `other`.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Samples recorded.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// The largest sample, exact.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the lower edge of its bucket,
    /// capped at the exact maximum; 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // Rank of the sample, 1-based; `q` is clamped so it stays in range.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_edge(i).min(self.max);
            }
        }
        self.max
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let exp = 63 - u64::from(v.leading_zeros()); // >= 7
    let mantissa = (v >> (exp - 6)) & (SUB - 1);
    (EXACT + (exp - 7) * SUB + mantissa) as usize
}

fn lower_edge(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let exp = (i - EXACT) / SUB + 7;
    let mantissa = (i - EXACT) % SUB;
    (SUB + mantissa) << (exp - 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_two_percent() {
        for v in [0, 1, 127, 128, 129, 1_000, 65_432, 1_000_000, 123_456_789] {
            let edge = lower_edge(index(v));
            assert!(edge <= v, "{v}: edge {edge}");
            assert!(v - edge <= v / 64, "{v}: edge {edge}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::new();
        for v in 1..=10_000 {
            h.record(v);
        }
        let mut other = Histogram::new();
        other.record(50_000);
        h.merge(&other);
        assert_eq!(h.len(), 10_001);
        assert_eq!(h.max(), 50_000);
        let p50 = h.quantile(0.5);
        assert!((4_900..=5_001).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((9_750..=9_901).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 50_000);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }
}
