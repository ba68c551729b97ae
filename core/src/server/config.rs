//! Every limit of the server machine, in one place.

use std::time::Duration;

use crate::server::Writers;

use crate::wire::{
    HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX, JOIN_EVENTS_MAX, MAX_BODY_BYTES, REPLY_BYTES_MAX,
};

/// The server machine's limits and timers. Breaking a limit fails that one
/// request with a typed error code; the connection stays usable.
///
/// The defaults are what `docs/PROTOCOL.md` promises; the reason for each
/// value is beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest message body in bytes of compact JSON (inclusive), else
    /// `too_large`. Default 65,536: the protocol's promise, large enough for
    /// rich messages, small enough that one send cannot hog a room.
    pub max_body_bytes: usize,
    /// Open connections at once; one more is answered `refused`
    /// (`unavailable`). Default 10,000: a single process's comfortable share.
    pub max_connections: usize,
    /// Channels one connection may have joined, else `rate_limited` (a count
    /// limit that frees up when the client leaves a channel, hence
    /// retryable). Default 256: far above any real UI, bounds per-connection
    /// state.
    pub max_channels_per_conn: usize,
    /// Sustained messages (send, update, delete) per second per connection,
    /// else `rate_limited`. Default 20: a fast typist sends about 2.
    pub messages_per_sec: u32,
    /// Burst of messages above the sustained rate. Default 50: an outbox
    /// flushing after a reconnect must not be refused.
    pub messages_burst: u32,
    /// Sustained typing frames per second per connection; more are dropped
    /// (or `rate_limited` when a reply was asked). Default 5.
    pub typing_per_sec: u32,
    /// Burst of typing frames. Default 10.
    pub typing_burst: u32,
    /// Sustained joins per second per connection, else `rate_limited`
    /// (retryable: clients back off and join again). Default 20.
    pub joins_per_sec: u32,
    /// Burst of joins. Default 300: a reconnecting client re-joins every
    /// channel it had (at most `max_channels_per_conn`) at once.
    pub joins_burst: u32,
    /// Sustained leaves per second per connection, else `rate_limited`.
    /// Default 20.
    pub leaves_per_sec: u32,
    /// Burst of leaves. Default 300 (an app closing every channel).
    pub leaves_burst: u32,
    /// Sustained history pages per second per connection, else
    /// `rate_limited`. Default 10: a client scrolling back pages a few a
    /// second.
    pub history_per_sec: u32,
    /// Burst of history pages. Default 30 (gap fills after a reconnect).
    pub history_burst: u32,
    /// Sustained read receipts per second per connection, else
    /// `rate_limited`: each is a store write. Default 10.
    pub receipts_per_sec: u32,
    /// Burst of read receipts. Default 30.
    pub receipts_burst: u32,
    /// What all of one user's connections may do together, as a multiple of
    /// one connection's rates and bursts (every kind above), so opening
    /// more connections does not multiply a user's budget. Default 4: a few
    /// busy tabs or devices at full speed.
    pub user_budget_factor: u32,
    /// Store reads (join and history) of one user at the store at once;
    /// more wait their turn. Default 2.
    pub reads_in_flight_per_user: usize,
    /// Store reads at the store at once, all users together; waiting reads
    /// are served round-robin by user, so no user's flood delays another's
    /// join by more than a turn. Default 16.
    pub reads_in_flight_max: usize,
    /// Bytes of join replies and history pages one user may read per
    /// second (sustained); a user over it waits (its reads are served
    /// later, never refused), so one user's scrolling cannot take the store
    /// and the CPU from everyone else. Default 4 MiB/s.
    pub user_reply_bytes_per_sec: usize,
    /// Burst of reply bytes per user. Default 16 MiB: a reconnect that
    /// recovers dozens of busy channels at once.
    pub user_reply_bytes_burst: usize,
    /// History page size when the request names none. Default 100.
    pub history_limit_default: u64,
    /// Largest history page; larger requests are cut to it. Default 500:
    /// bounds one reply at about 32 MiB of worst-case bodies.
    pub history_limit_max: u64,
    /// Most events a join reply carries. Default 1,000 (the protocol's); a
    /// store returns at most [`READ_LIMIT_MAX`](crate::store::READ_LIMIT_MAX)
    /// per read, so larger values act as 1,000.
    pub join_events_max: u64,
    /// Most bytes of events one join reply or history page carries
    /// ([`LogEvent::wire_len`](crate::wire::LogEvent::wire_len)); a page cut
    /// short says so as the contract allows (`recovered: false` for a join,
    /// `more: true` for history), and the client pages the rest. Default
    /// 1 MiB: about 16 maximal bodies, hundreds of chat-sized ones, while a
    /// reply of 1,000 worst-case bodies would weigh 64 MiB.
    pub reply_bytes_max: usize,
    /// Requests of one connection waiting for the store, else `unavailable`.
    /// Default 256: a full send window (32) many times over.
    pub max_pending_per_conn: usize,
    /// Store operations issued or queued by the whole server, else
    /// `unavailable`. Default 65,536: backpressure before memory runs out.
    pub max_pending_total: usize,
    /// Most appends of one channel committed by one store command. Appends
    /// that queue behind a channel's command in flight go together in the
    /// next, so a busy channel pays one commit (one `fsync` for a durable
    /// store) per batch instead of per message. Default 64: amortizes a
    /// flush over a whole burst of pipelined sends, while one command stays
    /// bounded (64 maximal bodies are 4 MiB).
    pub max_append_batch: usize,
    /// Append commands of one channel at the store at once. With more than
    /// one, a busy channel's next batch starts while the previous one
    /// commits, instead of waiting a whole commit (one `fsync`), once as
    /// many appends wait as the previous command carried; the store keeps
    /// them in order and fails the ones behind a failure (see
    /// `lockstep_core::store::AppendChain`). Default 2: the commit in
    /// progress and the one gathering behind it; 1 turns pipelining off.
    pub appends_in_flight: usize,
    /// Delay before `presence:leave` after a user's last connection leaves,
    /// so a quick reconnect does not flap. Default 2 s (the protocol allows
    /// at most 5 s).
    pub presence_grace: Duration,
    /// How long a connection's send order gate stays closed (see
    /// `docs/PROTOCOL.md`, "per-sender order"): after a send fails with a
    /// retryable error, later sends of that connection to that channel are
    /// refused until the failed one is retried. Default 30 s: far longer
    /// than any client's resend delay, short enough that a client that gave
    /// the message up is not blocked for long.
    pub order_gate_ttl: Duration,
    /// How long a connection may stay silent before the server closes it
    /// ([`ServerOutput::Close`](crate::server::ServerOutput::Close)); `None`
    /// leaves liveness to the transport. Default `None`: Socket.IO's own
    /// ping/pong already detects dead peers. Set it (e.g. 3 heartbeat
    /// intervals, 45 s for the client's default 15 s) on transports without
    /// one, so a half-open connection does not keep a user present forever.
    pub idle_timeout: Option<Duration>,
    /// How long a typing indicator lives without a refresh. Default 5 s.
    pub typing_ttl: Duration,
    /// Whether other processes append to the same store. Default
    /// [`Writers::Alone`]: one process, its commits broadcast as they
    /// complete.
    pub writers: Writers,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: MAX_BODY_BYTES,
            max_connections: 10_000,
            max_channels_per_conn: 256,
            messages_per_sec: 20,
            messages_burst: 50,
            typing_per_sec: 5,
            typing_burst: 10,
            joins_per_sec: 20,
            joins_burst: 300,
            leaves_per_sec: 20,
            leaves_burst: 300,
            history_per_sec: 10,
            history_burst: 30,
            receipts_per_sec: 10,
            receipts_burst: 30,
            user_budget_factor: 4,
            reads_in_flight_per_user: 2,
            reads_in_flight_max: 16,
            user_reply_bytes_per_sec: 4 << 20,
            user_reply_bytes_burst: 16 << 20,
            history_limit_default: HISTORY_LIMIT_DEFAULT,
            history_limit_max: HISTORY_LIMIT_MAX,
            join_events_max: JOIN_EVENTS_MAX as u64,
            reply_bytes_max: REPLY_BYTES_MAX,
            max_pending_per_conn: 256,
            max_pending_total: 65_536,
            max_append_batch: 64,
            appends_in_flight: 2,
            presence_grace: Duration::from_secs(2),
            order_gate_ttl: Duration::from_secs(30),
            idle_timeout: None,
            typing_ttl: Duration::from_secs(5),
            writers: Writers::Alone,
        }
    }
}

impl ServerConfig {
    /// How a channel's appends are cut into commands and pipelined.
    pub(crate) fn pipeline(&self) -> crate::server::ops::Pipeline {
        crate::server::ops::Pipeline {
            batch: self.max_append_batch,
            depth: self.appends_in_flight,
        }
    }
}
