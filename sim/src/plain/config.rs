//! A plain client's settings: what the guidance in `docs/PROTOCOL.md` ("A
//! plain Socket.IO client") asks of a browser app, with socket.io-client's
//! own defaults where it has one.

use std::time::Duration;

/// See the module docs; [`PlainConfig::stream`] and
/// [`PlainConfig::datagram`] are the lab's two presets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainConfig {
    /// Requests of the outbox in flight at once, all channels together.
    pub window: usize,
    /// Messages of one channel sent and not acknowledged (in flight or
    /// waiting for their resend) at most; the rest wait unsent. Below the
    /// server's 256 refused sends remembered per channel.
    pub unacked_max: usize,
    /// `socket.timeout(...)` of a send, edit, delete, history or leave.
    pub request_timeout: Duration,
    /// `socket.timeout(...)` of a join.
    pub join_timeout: Duration,
    /// First pause before a refused (or timed out) message is resent; it
    /// doubles per failure.
    pub resend_backoff_ms: u64,
    /// Longest pause before a resend: well under the server's 30 s
    /// `order_gate_ttl`, so a message still held is never taken as given up.
    pub resend_backoff_max_ms: u64,
    /// socket.io-client's `reconnectionDelay` (doubling, ±50%).
    pub reconnect_delay_ms: u64,
    /// socket.io-client's `reconnectionDelayMax`.
    pub reconnect_delay_max_ms: u64,
    /// socket.io-client's `timeout`: a handshake not done by then is
    /// abandoned and retried.
    pub connect_timeout: Duration,
    /// Engine.IO's heartbeat as the lab's transports carry it: a probe this
    /// often…
    pub ping_interval: Duration,
    /// …and the connection is presumed dead when nothing arrives this long
    /// after one.
    pub ping_timeout: Duration,
    /// Every joined channel is joined again from its position this often:
    /// only on transports that lose frames (datagrams in the lab), where a
    /// lost broadcast or presence change would otherwise stay lost.
    pub resync_interval: Option<Duration>,
    /// How long another user's typing indicator shows without a refresh.
    pub typing_ttl: Duration,
    /// `limit` of each `channel:history` page.
    pub history_page: u64,
    /// Early events held per channel while a gap is filled; on overflow
    /// they are dropped and paged in again.
    pub buffer_max: usize,
}

impl PlainConfig {
    /// A socket.io-client app over a reliable stream (Socket.IO itself).
    #[must_use]
    pub fn stream() -> Self {
        PlainConfig {
            window: 16,
            unacked_max: 64,
            request_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(5),
            resend_backoff_ms: 300,
            resend_backoff_max_ms: 5_000,
            reconnect_delay_ms: 1_000,
            reconnect_delay_max_ms: 5_000,
            connect_timeout: Duration::from_secs(20),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(10),
            resync_interval: None,
            typing_ttl: Duration::from_secs(5),
            history_page: 500,
            buffer_max: 1_024,
        }
    }

    /// The same app on the lab's datagram transport, which loses, repeats
    /// and reorders frames: one message of a channel unacknowledged at a
    /// time (the server learns a sender's order from the order sends first
    /// arrive in, which a lost or overtaken frame would scramble), one
    /// request in flight, short timeouts standing in for retransmission, a
    /// periodic re-join.
    #[must_use]
    pub fn datagram() -> Self {
        PlainConfig {
            window: 1,
            unacked_max: 1,
            request_timeout: Duration::from_secs(2),
            join_timeout: Duration::from_secs(2),
            resync_interval: Some(Duration::from_secs(5)),
            ..PlainConfig::stream()
        }
    }
}
