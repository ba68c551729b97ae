//! The server state machine: connections, channels, presence, typing and the
//! message path, with the store behind plain-data commands.
//!
//! See [`Server`] for the driving contract.

mod arbiter;
mod completions;
mod config;
mod conn;
mod gate;
mod limits;
mod ops;
mod outputs;
mod peers;
mod policy;
mod presence;
mod rate;
mod reads;
mod requests;
mod rooms;
mod tail;
mod timers;
mod typing;

use std::collections::{BTreeMap, VecDeque};

use tracing::{debug, warn};

use crate::Instant;
use crate::ids::{ChannelId, UserId};
use crate::store::{StoreCommand, StoreError, StoreOpId, StoreReply};
use crate::wire::{
    Ack, ClientFrame, DecodeError, ErrorBody, ErrorCode, PROTOCOL_VERSION, ServerFrame,
    TypingNotice,
};

pub use arbiter::{PresenceCommand, PresenceOutcome, PresenceScope};
pub use config::ServerConfig;
pub use outputs::{ConnId, Except, ServerOutput};
pub use policy::{AccessPolicy, Open, PrivateChannels};
pub use rooms::Rooms;
pub use tail::{CommitHint, Relay, SharedTail, Writers};

use conn::{Conn, JoinAttempt, Membership};
use limits::{Budgets, Kind, UserLimits};
use ops::{AppendQueues, PendingOp, SendKey, Waiter};
use presence::{Joined, Left, Presence};
use reads::{Next, QueuedRead, Reads};
use tail::Tails;
use timers::{TimerKey, Timers};
use typing::Typing;

/// The sans-IO server: every connection's requests in, frames, broadcasts,
/// room changes and store commands out.
///
/// # Driving it
///
/// Feed one input at a time through a `handle_*` method:
/// [`handle_connect`](Self::handle_connect) (an identity the driver's
/// authenticator already verified), [`handle_frame`](Self::handle_frame),
/// [`handle_decode_error`](Self::handle_decode_error),
/// [`handle_disconnect`](Self::handle_disconnect),
/// [`handle_store`](Self::handle_store) (the outcome of a
/// [`ServerOutput::Store`]) and [`handle_timeout`](Self::handle_timeout).
/// After **every** input, drain [`poll_output`](Self::poll_output) until it
/// returns `None`, carrying out each output in order; then re-arm the single
/// timer from [`poll_timeout`](Self::poll_timeout). A `handle_timeout` that
/// comes early is a harmless no-op.
///
/// # Time
///
/// `now` is wall-clock-derived milliseconds supplied by the driver (the Unix
/// epoch as origin in production; virtual time in the simulator). It must not
/// go backwards; an earlier value is treated as "no time passed". A message's
/// `ts` is `now.as_millis()` when its append is handed to the store, so `ts`
/// never decreases along a channel's seqs.
///
/// # Guarantees
///
/// - Identity comes only from `handle_connect`; no payload can name a user.
/// - A send is acknowledged and broadcast only after the store committed it;
///   a retry with the same (channel, author, client message id) gets the
///   original ack and no second broadcast, even while the first is in flight.
/// - Appends to one channel go to the store one at a time, in the order they
///   were accepted, so a sender's messages get seqs in the order it sent them.
/// - Every request gets exactly one answer while its connection is open;
///   closing a connection drops its memberships, typing state, timers and
///   pending replies, while store effects already requested still stand.
#[derive(Debug)]
pub struct Server<P: AccessPolicy = Open> {
    config: ServerConfig,
    policy: P,
    now: Instant,
    conns: BTreeMap<ConnId, Conn>,
    presence: Presence,
    typing: Typing,
    timers: Timers,
    ops: BTreeMap<StoreOpId, PendingOp>,
    appends: AppendQueues,
    /// Sends accepted and not yet answered, by dedupe key: a retry joins the
    /// waiters instead of appending again.
    /// Each waiter carries its arrival number on its connection, which
    /// orders it against the connection's send-order gate.
    sends: BTreeMap<SendKey, Vec<(Waiter, u64)>>,
    /// Every user with an open connection: its share of the budgets.
    users: BTreeMap<UserId, UserLimits>,
    /// Store reads waiting for their turn or at the store.
    reads: Reads,
    /// Channels with local members, by cursor (shared stores only).
    tails: Tails,
    next_op: u64,
    next_attempt: u64,
    outputs: VecDeque<ServerOutput>,
    /// Deliberate bugs switched on (test-only; see [`crate::sabotage`]).
    #[cfg(feature = "sabotage")]
    sabotage: crate::sabotage::Sabotage,
}

/// A refused request: the code and a lowercase message for the nack.
#[derive(Debug)]
struct Denied(ErrorCode, String);

impl Denied {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Denied(code, message.into())
    }
}

impl Server<Open> {
    /// A server with the permissive [`Open`] policy.
    #[must_use]
    pub fn new(config: ServerConfig) -> Self {
        Server::with_policy(config, Open)
    }
}

impl<P: AccessPolicy> Server<P> {
    /// A server with the given access policy.
    #[must_use]
    pub fn with_policy(config: ServerConfig, policy: P) -> Self {
        Server {
            config,
            policy,
            now: Instant::ZERO,
            conns: BTreeMap::new(),
            presence: Presence::default(),
            typing: Typing::default(),
            timers: Timers::default(),
            ops: BTreeMap::new(),
            appends: AppendQueues::default(),
            sends: BTreeMap::new(),
            users: BTreeMap::new(),
            reads: Reads::default(),
            tails: Tails::default(),
            next_op: 1,
            next_attempt: 1,
            outputs: VecDeque::new(),
            #[cfg(feature = "sabotage")]
            sabotage: crate::sabotage::Sabotage::default(),
        }
    }

    /// Switches deliberate bugs on in this server (unstable, test-only; see
    /// [`crate::sabotage`]): a setter, not a config field, so no config's
    /// shape depends on the feature.
    #[cfg(feature = "sabotage")]
    pub fn set_sabotage(&mut self, sabotage: crate::sabotage::Sabotage) {
        self.sabotage = sabotage;
    }

    // ---- input -------------------------------------------------------------

    /// A connection opened with an identity the driver's authenticator
    /// verified. Answers `welcome`, or `refused` (`unavailable`) when the
    /// connection limit is reached, after which the driver closes it.
    pub fn handle_connect(&mut self, now: Instant, conn: ConnId, user: UserId) {
        self.tick(now);
        if self.conns.contains_key(&conn) {
            warn!(%conn, "connect for a connection id already open: ignored");
            return;
        }
        if self.conns.len() >= self.config.max_connections {
            let error = ErrorBody::new(ErrorCode::Unavailable, "server is at its connection limit");
            self.send(conn, ServerFrame::Refused { error });
            return;
        }
        self.conns
            .insert(conn, Conn::new(user.clone(), &self.config, self.now));
        let (config, now) = (&self.config, self.now);
        self.users
            .entry(user.clone())
            .or_insert_with(|| UserLimits::new(config, now))
            .conns += 1;
        if let Some(idle) = self.config.idle_timeout {
            let at = self.now.saturating_add(idle);
            self.timers.arm(at, TimerKey::Idle(conn));
            if let Some(c) = self.conns.get_mut(&conn) {
                c.idle_at = Some(at);
            }
        }
        self.send(
            conn,
            ServerFrame::Welcome {
                version: PROTOCOL_VERSION,
                user_id: user,
            },
        );
    }

    /// A connection closed. Its memberships end (presence leaves after the
    /// grace period), its typing indicators are cleared, and replies still
    /// owed to it are dropped; its store operations still complete.
    pub fn handle_disconnect(&mut self, now: Instant, conn: ConnId) {
        self.tick(now);
        self.forget(conn);
    }

    /// Drops a connection: memberships (presence leaves after the grace
    /// period), typing, pending replies and its idle timer.
    fn forget(&mut self, conn: ConnId) {
        let Some(state) = self.conns.remove(&conn) else {
            debug!(%conn, "disconnect of an unknown connection: ignored");
            return;
        };
        if let Some(at) = state.idle_at {
            self.timers.cancel(at, TimerKey::Idle(conn));
        }
        self.reads.forget_conn(&state.user, conn);
        if let Some(limits) = self.users.get_mut(&state.user) {
            limits.conns = limits.conns.saturating_sub(1);
            if limits.conns == 0 {
                self.users.remove(&state.user);
            }
        }
        self.drop_queued_sends_of(conn);
        for channel in state.channels.keys() {
            self.leave_channel(conn, &state.user, channel, false);
        }
    }

    /// A frame arrived from `conn`. Each request gets exactly one `ack` or
    /// `nack` (typing only when it carries a `req`).
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: ClientFrame) {
        self.tick(now);
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            warn!(%conn, "frame from an unknown connection: ignored");
            return;
        };
        c.last_seen = now;
        self.dispatch(conn, frame);
    }

    /// Bytes from `conn` did not decode. When the error names a request, it
    /// is refused with `invalid` and the connection stays usable.
    pub fn handle_decode_error(&mut self, now: Instant, conn: ConnId, error: DecodeError) {
        self.tick(now);
        match error.req() {
            Some(req) if self.conns.contains_key(&conn) => {
                let denied = self
                    .channel_checks_first(conn, &error)
                    .unwrap_or_else(|| Denied::new(ErrorCode::Invalid, error.to_string()));
                self.nack(Waiter { conn, req }, denied);
            }
            _ => debug!(%conn, %error, "undecodable frame without a request id"),
        }
    }

    /// The outcome of the store operation `op`. Completions may come in any
    /// order; an unknown `op` is ignored.
    pub fn handle_store(
        &mut self,
        now: Instant,
        op: StoreOpId,
        result: Result<StoreReply, StoreError>,
    ) {
        self.tick(now);
        let Some(pending) = self.ops.remove(&op) else {
            warn!(%op, "completion of an unknown store operation: ignored");
            return;
        };
        if let Some(user) = self.reads.finished(op) {
            self.charge_read(&user, &result);
        }
        self.complete(op, pending, result);
    }

    /// Fires every timer due at `now`: presence leaves after their grace
    /// period, typing indicators after their TTL.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        while let Some((at, key)) = self.timers.pop_due(self.now) {
            match key {
                TimerKey::PresenceLeave(channel, user) => {
                    if !sabotaged!(self, ServerKeepsPresence)
                        && self.presence.expire(&channel, &user, at)
                    {
                        self.presence_gone(&channel, user);
                    }
                }
                TimerKey::TypingExpire(channel, user) => {
                    if self.typing.expire(&channel, &user, at) {
                        self.typing_stopped(&channel, user);
                    }
                }
                TimerKey::Idle(conn) => self.check_idle(conn),
                TimerKey::ReadsResume => self.reads.resume_at = None,
                TimerKey::TailGap(channel) => self.tail_timer(&channel, at),
            }
        }
    }

    /// The idle timer of `conn` fired: close it if it stayed silent,
    /// otherwise look again one timeout after it was last heard. One timer
    /// per connection, re-armed only when it fires, so frames cost nothing.
    fn check_idle(&mut self, conn: ConnId) {
        let (Some(idle), Some(c)) = (self.config.idle_timeout, self.conns.get_mut(&conn)) else {
            return;
        };
        let due = c.last_seen.saturating_add(idle);
        if due > self.now {
            c.idle_at = Some(due);
            self.timers.arm(due, TimerKey::Idle(conn));
            return;
        }
        debug!(%conn, "idle timeout: closing a silent connection");
        self.outputs.push_back(ServerOutput::Close {
            conn,
            reason: "idle timeout",
        });
        self.forget(conn);
    }

    // ---- output ------------------------------------------------------------

    /// The next instruction for the driver; drain until `None` after every
    /// input, or after a burst of inputs that were all waiting: appends
    /// accepted in between leave as one store command per channel (one
    /// commit for the burst).
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        if self.outputs.is_empty() {
            self.pump();
            self.pump_reads();
        }
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, if any timer
    /// is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---- getters (leak checks, oracles) -------------------------------------

    /// The limits in force.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Open connections.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The verified user of an open connection.
    #[must_use]
    pub fn user_of(&self, conn: ConnId) -> Option<&UserId> {
        self.conns.get(&conn).map(|c| &c.user)
    }

    /// The channels `conn` is a member of (joined or joining), in order.
    #[must_use]
    pub fn channels_of(&self, conn: ConnId) -> Vec<ChannelId> {
        self.conns
            .get(&conn)
            .map(|c| c.channels.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The connections that receive `channel`'s broadcasts, in order.
    #[must_use]
    pub fn members(&self, channel: &ChannelId) -> Vec<ConnId> {
        self.presence.conns(channel)
    }

    /// The users present in `channel` (sorted; those in their grace period
    /// included), as a join reply would list them.
    #[must_use]
    pub fn present_users(&self, channel: &ChannelId) -> Vec<UserId> {
        self.presence.users(channel)
    }

    /// Channels with any presence state; 0 once every connection closed and
    /// every grace period ended.
    #[must_use]
    pub fn presence_channels(&self) -> usize {
        self.presence.channel_count()
    }

    /// Store operations issued and not completed, plus appends queued behind
    /// them and reads waiting for their turn.
    #[must_use]
    pub fn pending_store_ops(&self) -> usize {
        self.ops.len() + self.appends.uncounted() + self.reads.waiting() + self.tails.queued_reads()
    }

    /// Replies owed to open connections.
    #[must_use]
    pub fn pending_replies(&self) -> usize {
        self.conns.values().map(|c| c.awaiting).sum()
    }

    /// Armed timers (presence grace periods and typing TTLs).
    #[must_use]
    pub fn armed_timers(&self) -> usize {
        self.timers.len()
    }

    /// Active typing indicators.
    #[must_use]
    pub fn typing_indicators(&self) -> usize {
        self.typing.len()
    }

    /// Channels tailed from a shared store (those with local members); 0
    /// when this machine writes alone.
    #[must_use]
    pub fn tailed_channels(&self) -> usize {
        self.tails.len()
    }

    /// Where delivery of a tailed `channel` stands: every event of the
    /// epoch up to the seq was sent to its room. `None` when the channel
    /// is not tailed or no join read has said where its log stands yet.
    #[must_use]
    pub fn cursor(&self, channel: &ChannelId) -> Option<(crate::ids::Epoch, crate::ids::Seq)> {
        self.tails.cursor(channel)
    }

    // ---- shared helpers -----------------------------------------------------

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn send(&mut self, conn: ConnId, frame: ServerFrame) {
        self.outputs.push_back(ServerOutput::Send { conn, frame });
    }

    fn broadcast(&mut self, channel: &ChannelId, frame: ServerFrame, except: Except) {
        self.outputs.push_back(ServerOutput::Broadcast {
            channel: channel.clone(),
            frame,
            except,
        });
    }

    fn ack(&mut self, w: Waiter, body: Ack) {
        self.send(w.conn, ServerFrame::Ack { req: w.req, body });
    }

    fn nack(&mut self, w: Waiter, denied: Denied) {
        let Denied(code, message) = denied;
        self.send(
            w.conn,
            ServerFrame::Nack {
                req: w.req,
                error: ErrorBody::new(code, message),
            },
        );
    }

    /// Marks a store-backed request answered; false when its connection is
    /// gone (then nothing is sent).
    fn settle(&mut self, w: Waiter) -> bool {
        match self.conns.get_mut(&w.conn) {
            Some(c) => {
                c.awaiting = c.awaiting.saturating_sub(1);
                true
            }
            None => false,
        }
    }

    /// Refuses new store work past the per-connection or global bound.
    fn check_capacity(&self, conn: ConnId, new_ops: usize) -> Result<(), Denied> {
        let awaiting = self.conns.get(&conn).map_or(0, |c| c.awaiting);
        if awaiting >= self.config.max_pending_per_conn {
            return Err(Denied::new(
                ErrorCode::Unavailable,
                "too many requests in flight on this connection",
            ));
        }
        if new_ops > 0 && self.pending_store_ops() + new_ops > self.config.max_pending_total {
            return Err(Denied::new(ErrorCode::Unavailable, "server is overloaded"));
        }
        Ok(())
    }

    /// A fresh join attempt id.
    fn new_attempt(&mut self) -> JoinAttempt {
        let attempt = JoinAttempt(self.next_attempt);
        self.next_attempt = self.next_attempt.saturating_add(1);
        attempt
    }

    /// Takes a token of `kind` from the connection's budget and its user's,
    /// else `rate_limited`.
    fn take_token(&mut self, conn: ConnId, kind: Kind) -> Result<(), Denied> {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let allowed = match self.users.get_mut(&c.user) {
            Some(user) => Budgets::take_both(&mut c.budgets, &mut user.budgets, kind, now),
            // Unreachable: every open connection's user is listed.
            None => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Denied::new(ErrorCode::RateLimited, kind.refusal()))
        }
    }

    /// Queues a store read of `conn`'s user and starts it at once if its
    /// turn allows (see `reads`).
    fn issue_read(&mut self, conn: ConnId, cmd: StoreCommand, pending: PendingOp) {
        let Some(user) = self.user_of(conn).cloned() else {
            return;
        };
        self.reads.push(user, QueuedRead { conn, cmd, pending });
        self.pump_reads();
    }

    /// Starts every waiting read whose turn has come; arms the resume timer
    /// when only a user's byte debt holds reads back.
    fn pump_reads(&mut self) {
        loop {
            let (per_user, total, now) = (
                self.config.reads_in_flight_per_user,
                self.config.reads_in_flight_max,
                self.now,
            );
            let users = &mut self.users;
            let next = self.reads.next(per_user, total, now, |user| {
                users
                    .get_mut(user)
                    .map_or(now, |u| u.reply_bytes.ready_at(now))
            });
            match next {
                Next::Start(user, read) => {
                    let op = self.issue(read.cmd, read.pending);
                    self.reads.started(op, user);
                }
                Next::WaitUntil(at) => {
                    if self.reads.resume_at.is_none_or(|armed| at < armed) {
                        if let Some(armed) = self.reads.resume_at.take() {
                            self.timers.cancel(armed, TimerKey::ReadsResume);
                        }
                        self.timers.arm(at, TimerKey::ReadsResume);
                        self.reads.resume_at = Some(at);
                    }
                    return;
                }
                Next::Idle => return,
            }
        }
    }

    /// Charges a finished read's reply to its user's byte budget.
    fn charge_read(&mut self, user: &UserId, result: &Result<StoreReply, StoreError>) {
        let bytes = match result {
            Ok(StoreReply::Events(page)) => page.events.iter().map(|e| e.wire_len()).sum(),
            _ => 0,
        };
        let now = self.now;
        if let Some(limits) = self.users.get_mut(user) {
            limits.reply_bytes.charge(now, bytes);
        }
    }

    /// Issues a store command and remembers what its completion must do.
    fn issue(&mut self, cmd: StoreCommand, pending: PendingOp) -> StoreOpId {
        let op = StoreOpId(self.next_op);
        self.next_op = self.next_op.saturating_add(1);
        self.ops.insert(op, pending);
        self.outputs.push_back(ServerOutput::Store { op, cmd });
        op
    }

    /// Ends `conn`'s membership of `channel` (already removed from the
    /// connection's own table): typing cleared, presence leave armed.
    fn leave_channel(
        &mut self,
        conn: ConnId,
        user: &UserId,
        channel: &ChannelId,
        room_leave: bool,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.gates.remove(channel);
        }
        if room_leave && !sabotaged!(self, ServerKeepsRoomOnLeave) {
            self.outputs.push_back(ServerOutput::RoomLeave {
                conn,
                channel: channel.clone(),
            });
        }
        if let Some(t) = self.typing.stop_by(channel, user, conn) {
            self.timers.cancel(
                t.deadline,
                TimerKey::TypingExpire(channel.clone(), user.clone()),
            );
            self.typing_stopped(channel, user.clone());
        }
        let deadline = self.now.saturating_add(self.config.presence_grace);
        match self.presence.leave(channel, user, conn, deadline) {
            Left::Leaving => {
                self.timers.arm(
                    deadline,
                    TimerKey::PresenceLeave(channel.clone(), user.clone()),
                );
            }
            Left::StillHere | Left::NotMember => {}
        }
        self.tail_maybe_close(channel);
    }

    /// Registers `conn` in `channel`'s room and presence.
    fn enter_channel(&mut self, conn: ConnId, user: &UserId, channel: &ChannelId) {
        self.outputs.push_back(ServerOutput::RoomJoin {
            conn,
            channel: channel.clone(),
        });
        self.tail_open(channel);
        if self.arbitrated() && !self.presence.has_conns(channel) {
            self.ask_members(channel);
        }
        match self.presence.join(channel, user, conn) {
            Joined::Appeared => self.presence_appeared(channel, user, Except::Conn(conn)),
            Joined::Returned { deadline } => {
                self.timers.cancel(
                    deadline,
                    TimerKey::PresenceLeave(channel.clone(), user.clone()),
                );
            }
            Joined::AlreadyHere => {}
        }
    }

    fn typing_stopped(&mut self, channel: &ChannelId, user: UserId) {
        let notice = TypingNotice {
            channel_id: channel.clone(),
            user_id: user,
            active: false,
        };
        self.share(Relay::Typing(notice));
    }

    fn membership(&self, conn: ConnId, channel: &ChannelId) -> Option<Membership> {
        self.conns
            .get(&conn)
            .and_then(|c| c.channels.get(channel).copied())
    }
}

#[cfg(test)]
mod tests;
