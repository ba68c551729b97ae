//! What the front reports through the `metrics` facade (a no-op until the
//! application installs a recorder, e.g. Prometheus in `lockstep-server`).
//! Names and labels are part of the operator's contract: keep them stable.

use std::time::{SystemTime, UNIX_EPOCH};

use lockstep_core::wire::{Ack, ServerFrame};

/// Handshakes by outcome (`accepted`, `unauthorized`).
pub const HANDSHAKES: &str = "lockstep_handshakes_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "lockstep_connections_open";
/// Connections closed, by reason (`client`, `server`, `slow_consumer`, `flood`, `other`).
pub const CONNECTIONS_CLOSED: &str = "lockstep_connections_closed_total";
/// Request replies by request kind and outcome (`ok` or an error code).
pub const REPLIES: &str = "lockstep_replies_total";
/// Successful joins by outcome: `recovered` (a re-join that resumed its
/// position exactly: a reconnection) or `latest` (a first join, or a
/// position that could not be resumed).
pub const JOINS: &str = "lockstep_joins_total";
/// Events emitted to sockets, by event name (deliveries).
pub const DELIVERIES: &str = "lockstep_deliveries_total";
/// Seconds from a message's commit (its `ts`) to its emit to one socket.
pub const DELIVERY_LATENCY: &str = "lockstep_delivery_latency_seconds";

/// Records one frame written to a socket.
pub(crate) fn written(frame: &ServerFrame) {
    match frame {
        ServerFrame::Ack { body, .. } => {
            let kind = body.kind();
            metrics::counter!(REPLIES, "kind" => kind, "outcome" => "ok").increment(1);
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
            metrics::counter!(DELIVERIES, "event" => "message:new").increment(1);
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            // Millisecond precision; `ts` is the server clock at commit.
            let latency = now_ms.saturating_sub(m.ts) as f64 / 1_000.0;
            metrics::histogram!(DELIVERY_LATENCY).record(latency);
        }
        ServerFrame::MessageUpdated(_) => {
            metrics::counter!(DELIVERIES, "event" => "message:updated").increment(1);
        }
        ServerFrame::MessageDeleted(_) => {
            metrics::counter!(DELIVERIES, "event" => "message:deleted").increment(1);
        }
        ServerFrame::PresenceJoin(_) | ServerFrame::PresenceLeave(_) => {
            metrics::counter!(DELIVERIES, "event" => "presence").increment(1);
        }
        ServerFrame::Typing(_) => {
            metrics::counter!(DELIVERIES, "event" => "typing").increment(1);
        }
        ServerFrame::Read(_) => {
            metrics::counter!(DELIVERIES, "event" => "message:read").increment(1);
        }
        ServerFrame::Welcome { .. } | ServerFrame::Refused { .. } | ServerFrame::Pong { .. } => {}
    }
}

/// The label of a close reason.
pub(crate) fn closed(reason: &str) {
    let label = if reason.starts_with("cut off: request flood") {
        "flood"
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
