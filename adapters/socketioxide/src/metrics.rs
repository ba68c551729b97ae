//! What the front reports through the `metrics` facade (a no-op until the
//! application installs a recorder, e.g. Prometheus in `lockstep-server`).
//! Names and labels are part of the operator's contract: keep them stable.

use std::time::{SystemTime, UNIX_EPOCH};

use lockstep_core::ids::UserId;
use lockstep_core::server::ConnId;
use lockstep_core::wire::{Ack, ErrorCode, ServerFrame};
use metrics::{Counter, Histogram};
use tracing::{debug, info};

use crate::link::Pending;

/// Handshakes by outcome: `accepted`, or the label of the refusal
/// (`unauthorized`, `too_many_connections`, `too_many_connections_per_address`,
/// `too_many_handshakes`, `too_many_handshakes_per_address`).
pub const HANDSHAKES: &str = "lockstep_handshakes_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "lockstep_connections_open";
/// Connections closed, by reason (`client`, `server`, `slow_consumer`, `flood`,
/// `expired`, `other`).
pub const CONNECTIONS_CLOSED: &str = "lockstep_connections_closed_total";
/// Request replies by request kind (`join`, `send`, ..., `unknown` for an
/// event that is not a request) and outcome (`ok` or an error code).
pub const REPLIES: &str = "lockstep_replies_total";
/// Seconds from a request's arrival at the front to its reply written, by
/// request kind: for `send`, receive → commit → ack.
pub const REPLY_LATENCY: &str = "lockstep_reply_latency_seconds";
/// Successful joins by outcome: `recovered` (a re-join that resumed its
/// position exactly: a reconnection) or `latest` (a first join, or a
/// position that could not be resumed); and by `from`: `position` (the
/// join named the position to resume from: a re-join) or `start`.
pub const JOINS: &str = "lockstep_joins_total";
/// Events emitted to sockets, by event name (deliveries).
pub const DELIVERIES: &str = "lockstep_deliveries_total";
/// Seconds from a message's commit (its `ts`) to its emit to one socket,
/// sampled: one `message:new` in [`LATENCY_SAMPLE_EVERY`] per connection
/// (its `_count` is not a delivery count; [`DELIVERIES`] is).
pub const DELIVERY_LATENCY: &str = "lockstep_delivery_latency_seconds";
/// `client:metrics` reports by outcome: `accepted`, or why one was refused
/// (`invalid`, `too_large`, `rate_limited`).
pub const CLIENT_REPORTS: &str = "lockstep_client_reports_total";
/// Connection attempts browser clients started (reported).
pub const CLIENT_CONNECT_ATTEMPTS: &str = "lockstep_client_connect_attempts_total";
/// Attempts that reached `connected` (reported).
pub const CLIENT_CONNECTS: &str = "lockstep_client_connects_total";
/// Reconnections after a lost connection, by outcome: `resumed` (every
/// channel resumed from its position) or `fresh` (some channel had a gap or
/// a reset) (reported).
pub const CLIENT_RECONNECTS: &str = "lockstep_client_reconnects_total";
/// Live connections lost (reported).
pub const CLIENT_DISCONNECTS: &str = "lockstep_client_disconnects_total";
/// Channel re-joins by outcome: `recovered`, `truncated`, `reset` (reported).
pub const CLIENT_RECOVERIES: &str = "lockstep_client_recoveries_total";
/// Joins by outcome: `ok`, `failed` (reported).
pub const CLIENT_SUBSCRIPTIONS: &str = "lockstep_client_subscriptions_total";
/// Sends by outcome: `sent`, `failed` (reported).
pub const CLIENT_SENDS: &str = "lockstep_client_sends_total";
/// Client failures by code: a server error code, a client reason
/// (`exhausted`, `timeout`, `unsubscribed`, `subscription_failed`, `panic`,
/// `protocol`), or `other` (reported).
pub const CLIENT_ERRORS: &str = "lockstep_client_errors_total";
/// Seconds from `send()` to its ack, as clients measured them (reported in
/// fixed buckets; each sample counts at its bucket's bound in `_sum`).
pub const CLIENT_ACK_LATENCY: &str = "lockstep_client_ack_latency_seconds";
/// Seconds from a message's commit (its `ts`, the server's clock) to a
/// client's store, where the UI renders it (reported like the ack latency;
/// clock skew between server and browser shows in it).
pub const CLIENT_DELIVERY_LATENCY: &str = "lockstep_client_delivery_latency_seconds";

/// One delivery in this many per connection has its latency recorded.
/// Every sample is a write to a histogram shared by all threads, which
/// cost more than the emit itself when every delivery was recorded.
pub const LATENCY_SAMPLE_EVERY: u32 = 16;

/// Registers, at zero, one series of every metric the front reports, so a
/// fresh server's `/metrics` already names them all (dashboards and alert
/// rules find their series before the first event of each kind).
pub fn register() {
    let zero = |c: Counter| c.increment(0);
    zero(metrics::counter!(HANDSHAKES, "outcome" => "accepted"));
    metrics::gauge!(CONNECTIONS_OPEN).increment(0.0);
    zero(metrics::counter!(CONNECTIONS_CLOSED, "reason" => "client"));
    for kind in ["join", "send"] {
        zero(metrics::counter!(REPLIES, "kind" => kind, "outcome" => "ok"));
        let _ = metrics::histogram!(REPLY_LATENCY, "kind" => kind);
    }
    for outcome in ["recovered", "latest"] {
        zero(metrics::counter!(JOINS, "outcome" => outcome, "from" => "position"));
    }
    zero(metrics::counter!(DELIVERIES, "event" => "message:new"));
    let _ = metrics::histogram!(DELIVERY_LATENCY);
    zero(metrics::counter!(CLIENT_REPORTS, "outcome" => "accepted"));
    zero(metrics::counter!(CLIENT_CONNECT_ATTEMPTS));
    zero(metrics::counter!(CLIENT_CONNECTS));
    zero(metrics::counter!(CLIENT_DISCONNECTS));
    for outcome in ["resumed", "fresh"] {
        zero(metrics::counter!(CLIENT_RECONNECTS, "outcome" => outcome));
    }
    zero(metrics::counter!(CLIENT_RECOVERIES, "outcome" => "recovered"));
    zero(metrics::counter!(CLIENT_SUBSCRIPTIONS, "outcome" => "ok"));
    zero(metrics::counter!(CLIENT_SENDS, "outcome" => "sent"));
    zero(metrics::counter!(CLIENT_ERRORS, "code" => "other"));
    let _ = metrics::histogram!(CLIENT_ACK_LATENCY);
    let _ = metrics::histogram!(CLIENT_DELIVERY_LATENCY);
}

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
    /// `ok` replies and reply latency by request kind, resolved on first
    /// use (at most one entry per kind of [`Ack`]).
    replies_ok: Vec<(&'static str, Counter, Histogram)>,
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
            // Counted by `replied`, with what the request was.
            ServerFrame::Ack { .. } | ServerFrame::Nack { .. } => {}
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

    /// Records one reply written (or, for a request sent without an ack
    /// callback, dropped): by request kind and outcome, its latency, and
    /// the subscription changes and refusals in the logs. `pending` is what
    /// the front kept of the request (`None` only for a reply to no
    /// request of this socket).
    pub(crate) fn replied(
        &mut self,
        frame: &ServerFrame,
        pending: Option<&Pending>,
        conn: ConnId,
        user: &UserId,
    ) {
        let channel = pending.and_then(|p| p.channel.as_ref());
        let channel = channel.map_or("", |c| c.as_str());
        match frame {
            ServerFrame::Ack { body, .. } => {
                let kind = body.kind();
                let (ok, latency) = self.reply_handles(kind);
                ok.increment(1);
                if let Some(p) = pending {
                    latency.record(p.at.elapsed().as_secs_f64());
                }
                match body {
                    Ack::Join(join) => {
                        let outcome = if join.recovered {
                            "recovered"
                        } else {
                            "latest"
                        };
                        let from = if pending.is_some_and(|p| p.resume) {
                            "position"
                        } else {
                            "start"
                        };
                        metrics::counter!(JOINS, "outcome" => outcome, "from" => from).increment(1);
                        debug!(%conn, %user, channel, recovered = join.recovered, from, "subscribed");
                    }
                    Ack::Leave => debug!(%conn, %user, channel, "unsubscribed"),
                    _ => {}
                }
            }
            ServerFrame::Nack { error, .. } => {
                let kind = pending.map_or("unknown", |p| p.kind);
                let code = error.code.as_str();
                metrics::counter!(REPLIES, "kind" => kind, "outcome" => code).increment(1);
                if let Some(p) = pending {
                    metrics::histogram!(REPLY_LATENCY, "kind" => kind)
                        .record(p.at.elapsed().as_secs_f64());
                }
                // Not `message`: tracing's own field of that name is the event's text.
                let detail = error.message.as_str();
                match (kind, error.code) {
                    // Transient and possibly frequent: not worth an info line each.
                    (_, ErrorCode::RateLimited) | (_, ErrorCode::Unavailable) => {
                        debug!(%conn, %user, kind, channel, code, detail, "request refused");
                    }
                    ("join", _) => {
                        info!(%conn, %user, channel, code, detail, "subscription refused");
                    }
                    _ => debug!(%conn, %user, kind, code, detail, "request refused"),
                }
            }
            _ => self.written(frame),
        }
    }

    /// The `ok` counter and the latency histogram of request kind `kind`,
    /// resolved on first use.
    fn reply_handles(&mut self, kind: &'static str) -> (&Counter, &Histogram) {
        let at = match self.replies_ok.iter().position(|(k, _, _)| *k == kind) {
            Some(at) => at,
            None => {
                let counter = metrics::counter!(REPLIES, "kind" => kind, "outcome" => "ok");
                let latency = metrics::histogram!(REPLY_LATENCY, "kind" => kind);
                self.replies_ok.push((kind, counter, latency));
                self.replies_ok.len() - 1
            }
        };
        let (_, ok, latency) = &self.replies_ok[at];
        (ok, latency)
    }
}

/// Whether a connection's close `reason` means frames queued for it were
/// not delivered (cut off, or a write that failed).
pub(crate) fn delivery_failed(reason: &str) -> bool {
    reason.starts_with("cut off: too slow")
        || reason.starts_with("cut off: its outgoing buffer")
        || reason.starts_with("write failed")
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
