//! The server machine fed frames from several connections, decode errors,
//! connects and disconnects, store completions in any order (executed
//! against a real [`MemStore`], sometimes failing, sometimes for closed
//! connections) and time.
//!
//! Invariants checked after every operation:
//! 1. a frame, a decode error or a disconnect of connection A never changes
//!    another connection's memberships (`channels_of`);
//! 2. the driver's room mirror (built from `RoomJoin`/`RoomLeave`) equals
//!    `channels_of` for every open connection, and `members(channel)`;
//! 3. no frame is sent to a connection that is not open (a `refused` to a
//!    connection turned away at the limit excepted);
//! 4. no request is answered twice;
//! 5. per channel, broadcast log events (`message:new`, `:updated`,
//!    `:deleted`) carry strictly increasing seqs until the store resets the
//!    channel: no event is broadcast twice (a deduplicated retry is not
//!    re-broadcast) and none out of order.
//!
//! And at the end, in order:
//! 6. completing every held store op drains `pending_store_ops()` to 0, and
//!    then every request of an open connection has exactly one answer;
//! 7. after every connection closes and time passes beyond the grace period
//!    and typing TTL: `armed_timers() == 0`, no presence, no typing;
//! 8. every channel log in the store has contiguous seqs and no duplicate
//!    (author, client message id) among its messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use arbitrary::Arbitrary;
use lockstep_core::Instant;
use lockstep_core::ids::{ChannelId, Seq};
use lockstep_core::server::{ConnId, Server, ServerConfig, ServerOutput};
use lockstep_core::store::{
    FailMode, MemStore, MemStoreConfig, StoreCommand, StoreError, StoreOpId, StoreReply,
};
use lockstep_core::wire::{
    ClientFrame, LogEvent, PROTOCOL_VERSION, ReqId, ServerFrame, decode_client,
};

use crate::DRAIN_MAX;
use crate::pools::{BodyKind, Chan, Cmid, Msg, SmallEpoch, SmallSeq, User};

/// Connection slots; a slot reopened gets a new connection id.
const SLOTS: u8 = 4;
/// Most steps the final drain may take.
const SETTLE_STEPS_MAX: usize = 100_000;

/// A whole fuzz case.
#[derive(Debug, Arbitrary)]
pub struct Input {
    /// Which limits to run with.
    pub config: ConfigKind,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// Limits: the defaults, or tiny ones that fuzzing hits.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum ConfigKind {
    /// `ServerConfig::default()` over a default `MemStore`.
    Default,
    /// Tiny limits (rates, byte and read budgets), and a store that
    /// retains four events per channel.
    Tight,
}

impl ConfigKind {
    fn config(self) -> (ServerConfig, MemStoreConfig) {
        match self {
            ConfigKind::Default => (ServerConfig::default(), MemStoreConfig::default()),
            ConfigKind::Tight => (
                ServerConfig {
                    max_body_bytes: 64,
                    max_connections: 3,
                    max_channels_per_conn: 2,
                    messages_per_sec: 2,
                    messages_burst: 3,
                    typing_per_sec: 1,
                    typing_burst: 2,
                    history_limit_default: 2,
                    history_limit_max: 3,
                    join_events_max: 3,
                    max_pending_per_conn: 3,
                    max_pending_total: 5,
                    // The byte and read budgets a hostile user meets: replies
                    // cut after a few hundred bytes, one read at a time per
                    // user, reads deferred once a user's reply bytes run out.
                    joins_per_sec: 1,
                    joins_burst: 2,
                    leaves_per_sec: 1,
                    leaves_burst: 2,
                    history_per_sec: 1,
                    history_burst: 2,
                    receipts_per_sec: 1,
                    receipts_burst: 2,
                    user_budget_factor: 1,
                    reads_in_flight_per_user: 1,
                    reads_in_flight_max: 2,
                    user_reply_bytes_per_sec: 256,
                    user_reply_bytes_burst: 512,
                    reply_bytes_max: 300,
                    ..ServerConfig::default()
                },
                MemStoreConfig {
                    retain: 4,
                    remember: 8,
                    ..MemStoreConfig::default()
                },
            ),
        }
    }
}

/// A connection slot.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Slot(u8);

/// One step.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// A connection opens in the slot (a new id if the slot is closed; the
    /// same id again, which the server must ignore, if it is open).
    Connect(Slot, User),
    /// The slot's connection closes.
    Disconnect(Slot),
    /// A well-formed frame from the slot's connection.
    Frame(Slot, Frame),
    /// Raw bytes from the slot's connection: decoded, then fed as a frame
    /// or as a decode error.
    Raw(Slot, Vec<u8>),
    /// One store op completes: the `n`-th oldest not yet answered, failing
    /// or not (when it runs now). The store runs ops in the order they were
    /// issued, as the store contract asks (a channel's appends in call
    /// order): the ones issued before it run first, their answers kept for
    /// later. Answers reach the server in any order.
    Complete(u8, bool),
    /// Every store op runs, then every answer is delivered, oldest first.
    CompleteAll,
    /// The store loses a channel's log (a new epoch).
    ResetChannel(Chan),
    /// Time passes, then timers fire.
    Advance(u16),
    /// Time jumps to the next deadline, then timers fire.
    FireNext,
}

/// A fuzzed client frame over the pools.
#[derive(Debug, Arbitrary)]
pub enum Frame {
    /// `hello` on an open session.
    Hello,
    /// `channel:join`.
    Join(u8, Chan, Option<SmallEpoch>, Option<SmallSeq>),
    /// `channel:leave`.
    Leave(u8, Chan),
    /// `message:send`.
    Send(u8, Chan, Cmid, BodyKind),
    /// `message:update`.
    Update(u8, Chan, Msg, BodyKind),
    /// `message:delete`.
    Delete(u8, Chan, Msg),
    /// `channel:history`.
    History(u8, Chan, Option<SmallSeq>, Option<u8>),
    /// `message:read`.
    Read(u8, Chan, SmallSeq),
    /// `typing`.
    Typing(Option<u8>, Chan, bool),
    /// `ping`.
    Ping(u64),
}

impl Frame {
    fn build(self) -> ClientFrame {
        let r = |n: u8| ReqId(u64::from(n % 16));
        match self {
            Frame::Hello => ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                token: "t".into(),
            },
            Frame::Join(q, c, e, s) => ClientFrame::Join {
                req: r(q),
                channel_id: c.id(),
                epoch: e.map(SmallEpoch::epoch),
                since: s.map(SmallSeq::seq),
            },
            Frame::Leave(q, c) => ClientFrame::Leave {
                req: r(q),
                channel_id: c.id(),
            },
            Frame::Send(q, c, m, b) => ClientFrame::Send {
                req: r(q),
                channel_id: c.id(),
                client_msg_id: m.id(&[]),
                body: b.body(),
            },
            Frame::Update(q, c, m, b) => ClientFrame::Update {
                req: r(q),
                channel_id: c.id(),
                message_id: m.id(),
                body: b.body(),
            },
            Frame::Delete(q, c, m) => ClientFrame::Delete {
                req: r(q),
                channel_id: c.id(),
                message_id: m.id(),
            },
            Frame::History(q, c, after, limit) => ClientFrame::History {
                req: r(q),
                channel_id: c.id(),
                after: after.map(SmallSeq::seq),
                limit: limit.map(|l| u64::from(l % 8)),
            },
            Frame::Read(q, c, s) => ClientFrame::Read {
                req: r(q),
                channel_id: c.id(),
                up_to: s.seq(),
            },
            Frame::Typing(q, c, active) => ClientFrame::Typing {
                req: q.map(r),
                channel_id: c.id(),
                active,
            },
            Frame::Ping(nonce) => ClientFrame::Ping { nonce },
        }
    }
}

/// The harness: server, store, held completions and a driver's view.
struct World {
    server: Server,
    store: MemStore,
    now: Instant,
    slots: [Option<ConnId>; SLOTS as usize],
    next_conn: u64,
    open: BTreeSet<ConnId>,
    /// Turned away at the connection limit: may get one `refused`.
    refused: BTreeSet<ConnId>,
    /// Store ops issued and not yet run, in issue order.
    held: VecDeque<(StoreOpId, StoreCommand)>,
    /// Store ops run and not yet answered (issued before every held one).
    done: VecDeque<(StoreOpId, Result<StoreReply, StoreError>)>,
    rooms: BTreeMap<ConnId, BTreeSet<ChannelId>>,
    /// Per open connection and request id: (requests, answers).
    requests: BTreeMap<(ConnId, ReqId), (u32, u32)>,
    /// Per channel, the seq of the last broadcast log event.
    broadcast: BTreeMap<ChannelId, Seq>,
}

/// Runs one fuzz case; panics on any broken invariant.
pub fn run(input: Input) {
    let (config, store) = input.config.config();
    let mut w = World {
        server: Server::new(config),
        store: MemStore::new(store),
        now: Instant::from_millis(1_000),
        slots: [None; SLOTS as usize],
        next_conn: 1,
        open: BTreeSet::new(),
        refused: BTreeSet::new(),
        held: VecDeque::new(),
        done: VecDeque::new(),
        rooms: BTreeMap::new(),
        requests: BTreeMap::new(),
        broadcast: BTreeMap::new(),
    };
    for op in input.ops {
        w.step(op);
    }
    w.settle();
}

impl World {
    fn slot(&self, s: Slot) -> Option<ConnId> {
        self.slots[usize::from(s.0 % SLOTS)]
    }

    fn memberships_except(&self, conn: Option<ConnId>) -> Vec<(ConnId, Vec<ChannelId>)> {
        self.open
            .iter()
            .filter(|c| Some(**c) != conn)
            .map(|c| (*c, self.server.channels_of(*c)))
            .collect()
    }

    fn step(&mut self, op: Op) {
        let now = self.now;
        // Invariant 1: input from `actor` touches only `actor`.
        let actor = match &op {
            Op::Disconnect(s) | Op::Frame(s, _) | Op::Raw(s, _) => self.slot(*s),
            _ => None,
        };
        let before = actor.map(|a| self.memberships_except(Some(a)));
        match op {
            Op::Connect(s, u) => {
                let i = usize::from(s.0 % SLOTS);
                let conn = match self.slots[i] {
                    Some(open) => open,
                    None => {
                        let c = ConnId(self.next_conn);
                        self.next_conn += 1;
                        c
                    }
                };
                let was_open = self.open.contains(&conn);
                self.server.handle_connect(now, conn, u.id());
                if self.server.user_of(conn).is_some() {
                    self.slots[i] = Some(conn);
                    self.open.insert(conn);
                } else {
                    assert!(!was_open, "an open connection was dropped by a connect");
                    self.refused.insert(conn);
                }
            }
            Op::Disconnect(s) => {
                if let Some(conn) = self.slot(s) {
                    self.disconnect(conn);
                    self.slots[usize::from(s.0 % SLOTS)] = None;
                }
            }
            Op::Frame(s, f) => {
                if let Some(conn) = self.slot(s) {
                    let frame = f.build();
                    self.count_request(conn, frame.req());
                    self.server.handle_frame(now, conn, frame);
                }
            }
            Op::Raw(s, bytes) => {
                if let Some(conn) = self.slot(s) {
                    match decode_client(&bytes) {
                        Ok(frame) => {
                            self.count_request(conn, frame.req());
                            self.server.handle_frame(now, conn, frame);
                        }
                        Err(error) => {
                            self.count_request(conn, error.req());
                            self.server.handle_decode_error(now, conn, error);
                        }
                    }
                }
            }
            Op::Complete(n, fail) => {
                let owed = self.done.len() + self.held.len();
                if owed > 0 {
                    let i = usize::from(n) % owed;
                    if i < self.done.len() {
                        if let Some((op, result)) = self.done.remove(i) {
                            self.server.handle_store(self.now, op, result);
                        }
                    } else {
                        for _ in self.done.len()..i {
                            self.run_next(false);
                        }
                        self.run_next(fail);
                        if let Some((op, result)) = self.done.pop_back() {
                            self.server.handle_store(self.now, op, result);
                        }
                    }
                }
            }
            Op::CompleteAll => self.complete_all(),
            Op::ResetChannel(c) => {
                // Answers of ops that ran before the loss reach the server
                // first: their events belong to the lost log, and the
                // broadcast order is checked per log. Ops not yet run run
                // on the new one.
                while let Some((op, result)) = self.done.pop_front() {
                    self.server.handle_store(self.now, op, result);
                    self.drain();
                }
                self.store.reset_channel(&c.id());
                self.broadcast.remove(&c.id());
            }
            Op::Advance(ms) => {
                self.now = now.saturating_add(Duration::from_millis(u64::from(ms)));
                self.server.handle_timeout(self.now);
            }
            Op::FireNext => {
                if let Some(at) = self.server.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.server.handle_timeout(self.now);
            }
        }
        self.drain();
        if let (Some(a), Some(before)) = (actor, before) {
            assert_eq!(
                before,
                self.memberships_except(Some(a)),
                "input from {a} changed another connection's memberships"
            );
        }
        self.check_rooms();
    }

    fn disconnect(&mut self, conn: ConnId) {
        self.server.handle_disconnect(self.now, conn);
        self.open.remove(&conn);
        self.rooms.remove(&conn);
        self.requests.retain(|(c, _), _| *c != conn);
    }

    fn count_request(&mut self, conn: ConnId, req: Option<ReqId>) {
        if let Some(req) = req {
            self.requests.entry((conn, req)).or_default().0 += 1;
        }
    }

    /// Runs the oldest held store op (failing it if `fail`); its answer
    /// waits in `done`.
    fn run_next(&mut self, fail: bool) {
        let Some((op, cmd)) = self.held.pop_front() else {
            return;
        };
        if fail {
            self.store.set_fail_mode(FailMode::Next(1));
        }
        let result = self.store.execute(cmd);
        self.store.set_fail_mode(FailMode::Never);
        self.done.push_back((op, result));
    }

    /// Runs every held store op, then answers every one, oldest first,
    /// routing the outputs after each (which may issue more).
    fn complete_all(&mut self) {
        while !self.held.is_empty() || !self.done.is_empty() {
            while !self.held.is_empty() {
                self.run_next(false);
            }
            while let Some((op, result)) = self.done.pop_front() {
                self.server.handle_store(self.now, op, result);
                self.drain();
            }
        }
    }

    /// Routes every output (invariants 3 and 4).
    fn drain(&mut self) {
        let mut n = 0;
        while let Some(out) = self.server.poll_output() {
            n += 1;
            assert!(n < DRAIN_MAX, "output queue does not drain");
            match out {
                ServerOutput::Send { conn, frame } => {
                    if !self.open.contains(&conn) {
                        let refused = matches!(frame, ServerFrame::Refused { .. })
                            && self.refused.remove(&conn);
                        assert!(refused, "{frame:?} sent to {conn}, which is not open");
                    }
                    let req = match &frame {
                        ServerFrame::Ack { req, .. } | ServerFrame::Nack { req, .. } => Some(*req),
                        _ => None,
                    };
                    if let Some(req) = req {
                        let entry = self.requests.entry((conn, req)).or_default();
                        entry.1 += 1;
                        assert!(
                            entry.1 <= entry.0,
                            "{conn} {req:?}: {} answers to {} requests",
                            entry.1,
                            entry.0
                        );
                    }
                }
                ServerOutput::Broadcast { channel, frame, .. } => {
                    if let Some(event) = frame.into_log_event() {
                        assert_eq!(event.channel_id(), &channel, "broadcast to another room");
                        let seq = event.seq();
                        if let Some(last) = self.broadcast.insert(channel.clone(), seq) {
                            assert!(seq > last, "{channel}: broadcast {seq} after {last}");
                        }
                    }
                }
                ServerOutput::RoomJoin { conn, channel } => {
                    assert!(self.open.contains(&conn), "room join for closed {conn}");
                    assert!(
                        self.rooms.entry(conn).or_default().insert(channel.clone()),
                        "{conn} joined room {channel} twice"
                    );
                }
                ServerOutput::RoomLeave { conn, channel } => {
                    assert!(
                        self.rooms.entry(conn).or_default().remove(&channel),
                        "{conn} left room {channel} it was not in"
                    );
                }
                ServerOutput::Store { op, cmd } => self.held.push_back((op, cmd)),
                ServerOutput::Committed(_) | ServerOutput::Relay(_) | ServerOutput::Presence(_) => {}
                ServerOutput::Close { conn, .. } => {
                    // Idle timeouts are off in this harness; a close still
                    // drops the connection's rooms as a driver would.
                    self.rooms.remove(&conn);
                    self.open.remove(&conn);
                }
            }
        }
    }

    /// Invariant 2.
    fn check_rooms(&self) {
        for conn in &self.open {
            let mirror: Vec<_> = self
                .rooms
                .get(conn)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default();
            assert_eq!(mirror, self.server.channels_of(*conn), "rooms of {conn}");
        }
        for c in 0..3 {
            let channel = Chan::from_index(c).id();
            let mirror: Vec<ConnId> = self
                .rooms
                .iter()
                .filter(|(_, r)| r.contains(&channel))
                .map(|(c, _)| *c)
                .collect();
            assert_eq!(
                mirror,
                self.server.members(&channel),
                "members of {channel}"
            );
        }
    }

    /// Invariants 6, 7 and 8.
    fn settle(&mut self) {
        for _ in 0..SETTLE_STEPS_MAX {
            if !self.held.is_empty() || !self.done.is_empty() {
                self.run_next(false);
                if let Some((op, result)) = self.done.pop_front() {
                    self.server.handle_store(self.now, op, result);
                }
            } else if self.server.pending_replies() > 0 {
                // Reads deferred by the fair scheduler resume on a timer.
                let Some(at) = self.server.poll_timeout() else {
                    break;
                };
                self.now = self.now.max(at);
                self.server.handle_timeout(self.now);
            } else {
                break;
            }
            self.drain();
        }
        assert!(
            self.held.is_empty() && self.done.is_empty(),
            "store ops keep coming"
        );
        assert_eq!(self.server.pending_store_ops(), 0, "store ops pending");
        assert_eq!(self.server.pending_replies(), 0, "replies owed");
        for ((conn, req), (asked, answered)) in &self.requests {
            assert_eq!(asked, answered, "{conn} {req:?}: answers");
        }
        let open: Vec<ConnId> = self.open.iter().copied().collect();
        for conn in open {
            self.disconnect(conn);
            self.drain();
        }
        let config = self.server.config();
        let later = config.presence_grace.max(config.typing_ttl) + Duration::from_secs(1);
        self.now = self.now.saturating_add(later);
        self.server.handle_timeout(self.now);
        self.drain();
        assert!(self.held.is_empty(), "store ops after the last disconnect");
        assert_eq!(self.server.connections(), 0);
        assert_eq!(self.server.armed_timers(), 0, "timers left");
        assert_eq!(self.server.presence_channels(), 0, "presence left");
        assert_eq!(self.server.typing_indicators(), 0, "typing left");
        self.check_store();
    }

    fn check_store(&self) {
        for channel in self.store.channels() {
            let mut prev = None;
            let mut keys = BTreeSet::new();
            for e in self.store.events(channel) {
                if let Some(p) = prev {
                    assert_eq!(e.seq().0, p + 1, "{channel}: seqs not contiguous");
                }
                prev = Some(e.seq().0);
                if let LogEvent::Message(m) = e {
                    assert!(
                        keys.insert((m.author_id.clone(), m.client_msg_id.clone())),
                        "{channel}: duplicate message {:?}/{:?}",
                        m.author_id,
                        m.client_msg_id
                    );
                }
            }
        }
    }
}
