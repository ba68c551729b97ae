//! Client-side counters: what the app's connection looked like (attempts,
//! reconnections, subscriptions, acks and how long they took), as a plain
//! snapshot for dashboards and health checks.
//!
//! Everything is counted where the driver drains the machine's events, under
//! the lock the handles already share: no extra task, and memory stays
//! bounded (fixed histogram buckets; send times only for entries still in
//! the bounded outbox).

use std::collections::BTreeMap;
use std::time::Duration;

use lockstep_core::client::{ClientEvent, ConnectionState, EntryId, Outcome, SubscriptionState};
use lockstep_core::ids::ClientMsgId;

/// Upper bounds (inclusive, in milliseconds) of the ack-latency histogram
/// buckets; one more bucket counts everything slower. Fixed, so the
/// histogram never grows and snapshots from different clients add up.
pub const ACK_LATENCY_BUCKETS_MS: [u64; 8] = [1, 5, 10, 50, 100, 500, 1_000, 5_000];

/// How many buckets [`AckLatency::buckets`] holds: one per bound plus the
/// overflow bucket.
pub const ACK_LATENCY_BUCKET_COUNT: usize = ACK_LATENCY_BUCKETS_MS.len() + 1;

/// A snapshot of the client's counters since [`spawn_client`]; counters only
/// grow, so two snapshots subtract into a rate.
///
/// [`spawn_client`]: crate::client::spawn_client
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Transitions into `Connecting`: every transport the client tried, so
    /// `connect_attempts - connects` shows how often the server was not
    /// reachable or the handshake failed.
    pub connect_attempts: u64,
    /// Transitions into `Connected`: handshakes that succeeded.
    pub connects: u64,
    /// `Connected` transitions after an earlier one: how often the link was
    /// lost and recovered, the number users feel as flakiness.
    pub reconnections: u64,
    /// Subscription transitions into `Subscribed`, re-joins after a
    /// reconnect included.
    pub subscriptions_joined: u64,
    /// Subscription transitions into `Failed`: joins the server refused for
    /// good (e.g. forbidden), a sign of a permissions problem.
    pub subscriptions_failed: u64,
    /// Messages the server stored (`Outcome::Sent`).
    pub sends_acked: u64,
    /// Messages given up for good (`Outcome::Failed` of a message).
    pub sends_failed: u64,
    /// Edits and deletes the server applied (`Outcome::Applied`).
    pub ops_applied: u64,
    /// Edits and deletes given up for good (`Outcome::Failed` of an op).
    pub ops_failed: u64,
    /// Time from `send()` to its `Outcome::Sent`, retries and offline time
    /// included: what the user waits before the message shows as sent.
    pub ack_latency: AckLatency,
}

/// The distribution of ack latencies, in bounded memory.
///
/// Messages restored with `restore_outbox` were sent by an earlier run, so
/// they count in [`ClientStats::sends_acked`] but add no latency sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckLatency {
    /// How many latencies were recorded.
    pub count: u64,
    /// Their sum, for the mean (saturating, never wraps).
    pub sum: Duration,
    /// The slowest one: the tail a histogram bucket would blur.
    pub max: Duration,
    /// `buckets[i]` counts latencies at most [`ACK_LATENCY_BUCKETS_MS`]`[i]`
    /// and above the previous bound; the last bucket counts the slower ones.
    pub buckets: [u64; ACK_LATENCY_BUCKET_COUNT],
}

impl AckLatency {
    /// The mean latency; `None` before the first ack.
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        (count > 0).then(|| self.sum / count)
    }

    fn record(&mut self, latency: Duration) {
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(latency);
        self.max = self.max.max(latency);
        let ms = latency.as_millis();
        let bucket = ACK_LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| ms <= u128::from(*bound))
            .unwrap_or(ACK_LATENCY_BUCKETS_MS.len());
        if let Some(slot) = self.buckets.get_mut(bucket) {
            *slot = slot.saturating_add(1);
        }
    }
}

/// Counts what the driver forwards; lives next to the machine in the
/// shared state.
#[derive(Debug, Default)]
pub(crate) struct StatsRecorder {
    stats: ClientStats,
    /// Whether any connection succeeded yet, to tell reconnections apart.
    ever_connected: bool,
    /// When each unresolved message was sent. Bounded by the outbox limit:
    /// an entry leaves at its one outcome, and all leave when the driver
    /// stops.
    sent_at: BTreeMap<ClientMsgId, tokio::time::Instant>,
}

impl StatsRecorder {
    /// Notes that `id` was queued at `at`.
    pub(crate) fn sent(&mut self, id: ClientMsgId, at: tokio::time::Instant) {
        self.sent_at.insert(id, at);
    }

    /// Counts one event the driver is about to forward, seen at `now`.
    pub(crate) fn observe(&mut self, event: &ClientEvent, now: tokio::time::Instant) {
        let s = &mut self.stats;
        match event {
            ClientEvent::State(ConnectionState::Connecting { .. }) => {
                s.connect_attempts = s.connect_attempts.saturating_add(1);
            }
            ClientEvent::State(ConnectionState::Connected { .. }) => {
                s.connects = s.connects.saturating_add(1);
                if self.ever_connected {
                    s.reconnections = s.reconnections.saturating_add(1);
                }
                self.ever_connected = true;
            }
            ClientEvent::Subscription {
                state: SubscriptionState::Subscribed,
                ..
            } => s.subscriptions_joined = s.subscriptions_joined.saturating_add(1),
            ClientEvent::Subscription {
                state: SubscriptionState::Failed { .. },
                ..
            } => s.subscriptions_failed = s.subscriptions_failed.saturating_add(1),
            ClientEvent::Outcome { id, outcome, .. } => {
                let since = match id {
                    EntryId::Message(msg) => self.sent_at.remove(msg),
                    EntryId::Op(_) => None,
                };
                match (id, outcome) {
                    (EntryId::Message(_), Outcome::Sent { .. }) => {
                        s.sends_acked = s.sends_acked.saturating_add(1);
                        if let Some(since) = since {
                            s.ack_latency.record(now.saturating_duration_since(since));
                        }
                    }
                    (EntryId::Message(_), Outcome::Failed(_)) => {
                        s.sends_failed = s.sends_failed.saturating_add(1);
                    }
                    (EntryId::Op(_), Outcome::Failed(_)) => {
                        s.ops_failed = s.ops_failed.saturating_add(1);
                    }
                    (_, Outcome::Applied { .. }) => {
                        s.ops_applied = s.ops_applied.saturating_add(1);
                    }
                    // The machine gives ops no `Sent`; nothing to count.
                    (EntryId::Op(_), Outcome::Sent { .. }) => {}
                }
            }
            _ => {}
        }
    }

    /// Forgets the send times of entries that will get no outcome now.
    pub(crate) fn stopped(&mut self) {
        self.sent_at.clear();
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> ClientStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn latencies_land_in_their_bucket_and_the_overflow() {
        let mut latency = AckLatency::default();
        for ms in [0, 1, 2, 5, 6, 999, 1_000, 5_000, 5_001, 60_000] {
            latency.record(Duration::from_millis(ms));
        }
        assert_eq!(latency.buckets, [2, 2, 1, 0, 0, 0, 2, 1, 2]);
        assert_eq!(latency.count, 10);
        assert_eq!(latency.max, Duration::from_millis(60_000));
        assert_eq!(latency.sum, Duration::from_millis(72_014));
        assert_eq!(latency.mean(), Some(Duration::from_micros(7_201_400)));
    }

    #[test]
    fn no_ack_no_mean() {
        assert_eq!(AckLatency::default().mean(), None);
    }
}
