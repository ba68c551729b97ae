//! What the front reports through the `metrics` facade (a no-op until the
//! application installs a recorder, e.g. Prometheus in `lockstep-server`).
//! Names and labels are part of the operator's contract: keep them stable.

use std::time::{SystemTime, UNIX_EPOCH};

use lockstep_core::wire::{Ack, ServerFrame};
use metrics::{Counter, Histogram};

/// Handshakes by outcome: `accepted`, or the label of the refusal
/// (`unauthorized`, `too_many_connections`, `too_many_connections_per_address`,
/// `too_many_handshakes`, `too_many_handshakes_per_address`).
pub const HANDSHAKES: &str = "lockstep_handshakes_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "lockstep_connections_open";
/// Connections closed, by reason (`client`, `server`, `slow_consumer`, `flood`,
/// `expired`, `other`).
pub const CONNECTIONS_CLOSED: &str = "lockstep_connections_closed_total";
/// Request replies by request kind and outcome (`ok` or an error code).
pub const REPLIES: &str = "lockstep_replies_total";
/// Successful joins by outcome: `recovered` (a re-join that resumed its
/// position exactly: a reconnection) or `latest` (a first join, or a
/// position that could not be resumed).
pub const JOINS: &str = "lockstep_joins_total";
/// Events emitted to sockets, by event name (deliveries).
pub const DELIVERIES: &str = "lockstep_deliveries_total";
/// Seconds from a message's commit (its `ts`) to its emit to one socket,
/// sampled: one `message:new` in [`LATENCY_SAMPLE_EVERY`] per connection
/// (its `_count` is not a delivery count; [`DELIVERIES`] is).
pub const DELIVERY_LATENCY: &str = "lockstep_delivery_latency_seconds";
/// One delivery in this many per connection has its latency recorded.
/// Every sample is a write to a histogram shared by all threads, which
/// cost more than the emit itself when every delivery was recorded.
pub const LATENCY_SAMPLE_EVERY: u32 = 16;

/// The handles of the per-frame metrics, resolved once per connection:
/// looking a labelled metric up in the recorder (hashing its key, taking
/// the registry's lock) costs more than the emit it counts, and a broadcast
/// to a large room counts one emit per member.
pub(crate) struct FrameMetrics {
    new: Counter,
    updated: Counter,
    deleted: Counter,
    presence: Counter,
    typing: Counter,
    read: Counter,
    latency: Histogram,
    /// `message:new` frames written since the last latency sample.
    unsampled: u32,
    /// `ok` replies by request kind, resolved on first use (at most one
    /// entry per kind of [`Ack`]).
    replies_ok: Vec<(&'static str, Counter)>,
}

impl FrameMetrics {
    /// Resolves the handles from the recorder installed now (a no-op
    /// recorder before the application installs one).
    pub(crate) fn new() -> Self {
        let delivery = |event: &'static str| metrics::counter!(DELIVERIES, "event" => event);
        FrameMetrics {
            new: delivery("message:new"),
            updated: delivery("message:updated"),
            deleted: delivery("message:deleted"),
            presence: delivery("presence"),
            typing: delivery("typing"),
            read: delivery("message:read"),
            latency: metrics::histogram!(DELIVERY_LATENCY),
            unsampled: 0,
            replies_ok: Vec::new(),
        }
    }

    /// Records one frame written to a socket.
    pub(crate) fn written(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Ack { body, .. } => {
                let kind = body.kind();
                self.reply_ok(kind).increment(1);
                if let Ack::Join(join) = body {
                    let outcome = if join.recovered {
                        "recovered"
                    } else {
                        "latest"
                    };
                    metrics::counter!(JOINS, "outcome" => outcome).increment(1);
                }
            }
            ServerFrame::Nack { error, .. } => {
                metrics::counter!(REPLIES, "kind" => "any", "outcome" => error.code.as_str())
                    .increment(1);
            }
            ServerFrame::MessageNew(m) => {
                self.new.increment(1);
                if self.unsampled > 0 {
                    self.unsampled -= 1;
                    return;
                }
                self.unsampled = LATENCY_SAMPLE_EVERY - 1;
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                // Millisecond precision; `ts` is the server clock at commit.
                let latency = now_ms.saturating_sub(m.ts) as f64 / 1_000.0;
                self.latency.record(latency);
            }
            ServerFrame::MessageUpdated(_) => self.updated.increment(1),
            ServerFrame::MessageDeleted(_) => self.deleted.increment(1),
            ServerFrame::PresenceJoin(_) | ServerFrame::PresenceLeave(_) => {
                self.presence.increment(1);
            }
            ServerFrame::Typing(_) => self.typing.increment(1),
            ServerFrame::Read(_) => self.read.increment(1),
            ServerFrame::Welcome { .. }
            | ServerFrame::Refused { .. }
            | ServerFrame::Pong { .. } => {}
        }
    }

    fn reply_ok(&mut self, kind: &'static str) -> &Counter {
        let at = match self.replies_ok.iter().position(|(k, _)| *k == kind) {
            Some(at) => at,
            None => {
                let counter = metrics::counter!(REPLIES, "kind" => kind, "outcome" => "ok");
                self.replies_ok.push((kind, counter));
                self.replies_ok.len() - 1
            }
        };
        &self.replies_ok[at].1
    }
}

/// The label of a close reason.
pub(crate) fn closed(reason: &str) {
    let label = if reason.starts_with("cut off: request flood") {
        "flood"
    } else if reason == lockstep_tokio::server::SESSION_EXPIRED {
        "expired"
    } else if reason.starts_with("closed by the client") {
        "client"
    } else if reason.starts_with("cut off") {
        "slow_consumer"
    } else if reason.starts_with("closed by the server") || reason.starts_with("server stopped") {
        "server"
    } else {
        "other"
    };
    metrics::counter!(CONNECTIONS_CLOSED, "reason" => label).increment(1);
    metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
}

#[cfg(test)]
mod tests {
    use lockstep_core::ids::{ChannelId, ClientMsgId, MessageId, Seq, UserId};
    use lockstep_core::wire::{Body, NewMessage};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    fn message_new(seq: u64) -> ServerFrame {
        let id = |s: &str| s.to_owned();
        ServerFrame::MessageNew(NewMessage {
            channel_id: ChannelId::new("c").unwrap(),
            seq: Seq(seq),
            message_id: MessageId::new(id("m")).unwrap(),
            author_id: UserId::new("al").unwrap(),
            client_msg_id: ClientMsgId::new(id("k")).unwrap(),
            body: Some(Body::text("hi")),
            ts: 0,
        })
    }

    #[test]
    fn every_delivery_is_counted_and_one_in_sixteen_timed() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let mut counted = FrameMetrics::new();
            for seq in 1..=40 {
                counted.written(&message_new(seq));
            }
        });
        let mut deliveries = None;
        let mut samples = None;
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let event = key.key().labels().find(|l| l.key() == "event");
            match (key.key().name(), value) {
                (DELIVERIES, DebugValue::Counter(n))
                    if event.is_some_and(|l| l.value() == "message:new") =>
                {
                    deliveries = Some(n);
                }
                (DELIVERY_LATENCY, DebugValue::Histogram(v)) => samples = Some(v.len()),
                _ => {}
            }
        }
        assert_eq!(deliveries, Some(40));
        // Deliveries 1, 17 and 33.
        assert_eq!(samples, Some(3));
    }
}
