//! The client machine fed app commands, transport events (current and stale
//! generations), well-formed frames over small id pools, raw bytes, and time.
//!
//! A [`FakeServer`] answers the frames the client really sent when the input
//! says so ([`Op::Serve`]), which gets the client connected and subscribed;
//! arbitrary frames ([`Op::Frame`]) then poke at every state.
//!
//! Invariants checked after every operation:
//! 1. at most one `Outcome` per outbox entry id;
//! 2. per channel, once anything was delivered, each next delivered seq or
//!    `Truncated.from` is exactly one past the last seq delivered or
//!    truncated: strictly increasing and never a silent gap (a `Reset` or
//!    the channel being forgotten starts over, since a fresh join skips to
//!    the recent backlog by design); a delivered event belongs to the
//!    channel it is reported for;
//! 3. while closed: `poll_timeout() == None`, `armed_timers() == 0`,
//!    `pending_requests() == 0`, and no transport is opened nor frame sent;
//! 4. after `handle_timeout(now)`, `poll_timeout()` is `None` or after `now`;
//! 5. every output queue drains within [`DRAIN_MAX`](crate::DRAIN_MAX);
//! 6. `Transmit::Open` generations strictly increase, and frames go only to
//!    the newest generation.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use arbitrary::Arbitrary;
use lockstep_core::Instant;
use lockstep_core::client::{
    Backoff, Client, ClientConfig, ClientEvent, ConnectionState, EntryId, FakeServer, Heartbeat,
    Transmit, TransportEvent,
};
use lockstep_core::ids::{ChannelId, ClientMsgId, Seq};
use lockstep_core::wire::{
    Ack, ClientFrame, ErrorBody, HistoryAck, JoinAck, LogEvent, MessageDeleted, MessageUpdated,
    NewMessage, PROTOCOL_VERSION, PresenceChange, ReadReceipt, ReqId, SendAck, ServerFrame,
    TypingNotice, decode_server,
};

use crate::DRAIN_MAX;
use crate::pools::{BodyKind, Chan, Cmid, Code, Msg, SmallEpoch, SmallSeq, User};

/// Client frames remembered for [`Op::Serve`]; older ones are dropped, as
/// a lossy network would.
const SENT_MAX: usize = 256;
/// Request ids remembered for fuzzed replies.
const REQS_MAX: usize = 64;

/// A whole fuzz case: a config choice and the operations.
#[derive(Debug, Arbitrary)]
pub struct Input {
    /// Which config to run with.
    pub config: ConfigKind,
    /// The seed of the client's RNG.
    pub seed: u64,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// A config: the default, or one with tiny limits that are easy to hit.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum ConfigKind {
    /// `ClientConfig::default()`.
    Default,
    /// Small window, outbox, buffer, failure budget; heartbeat on.
    Tight,
}

impl ConfigKind {
    fn config(self) -> ClientConfig {
        match self {
            ConfigKind::Default => ClientConfig::default(),
            ConfigKind::Tight => ClientConfig {
                max_connect_attempts: Some(3),
                suspend_after: Duration::from_secs(5),
                heartbeat: Some(Heartbeat {
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_secs(1),
                }),
                join_backoff: Backoff {
                    base: Duration::from_millis(100),
                    cap: Duration::from_secs(1),
                    factor: 2.0,
                    jitter: 1.0,
                },
                send_window: 2,
                outbox_max: 4,
                max_send_failures: 2,
                inbox_buffer_max: 3,
                history_page: 4,
                initial_backlog: 2,
                max_channels: 2,
                ..ClientConfig::default()
            },
        }
    }
}

/// Which transport an event claims to come from.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Gen {
    /// The newest transport the client opened.
    Current,
    /// The one before it (stale).
    Previous,
    /// A generation never handed out.
    Future,
}

/// A request id: one the client really used (most of the time) or any.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct ReqRef(u8);

/// One step.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// `connect`.
    Connect,
    /// `close`.
    Close,
    /// `subscribe`.
    Subscribe(Chan),
    /// `unsubscribe`.
    Unsubscribe(Chan),
    /// `send`.
    Send(Chan, BodyKind),
    /// `update`.
    Update(Chan, Msg, BodyKind),
    /// `delete`.
    Delete(Chan, Msg),
    /// `mark_read`.
    MarkRead(Chan, SmallSeq),
    /// `set_typing`.
    SetTyping(Chan, bool),
    /// `export_outbox` then `restore_outbox`, into the same client or (a
    /// restart) into a new one after closing this one.
    ExportRestore {
        /// Whether the app restarts in between.
        restart: bool,
    },
    /// The transport reports it is open.
    Opened(Gen),
    /// The transport reports it closed.
    Closed(Gen),
    /// The fake server answers the `n`-th oldest unanswered client frame
    /// (well-formed replies and the broadcasts they cause).
    Serve(u8),
    /// The `n`-th oldest unanswered client frame is lost.
    Lose(u8),
    /// The fake server stores a message by someone else and broadcasts it.
    Post(Chan, User, BodyKind),
    /// The fake server wipes its logs (new epoch).
    ResetLogs,
    /// A fuzzed, well-formed frame.
    Frame(Gen, Frame),
    /// Raw bytes: decoded, then fed as a frame or as `Undecodable`.
    Raw(Gen, Vec<u8>),
    /// Time passes by this many milliseconds, then timers fire.
    Advance(u16),
    /// Time jumps to the next deadline, then timers fire.
    FireNext,
}

/// A fuzzed server frame over the pools.
#[derive(Debug, Arbitrary)]
pub enum Frame {
    /// `welcome` (right or wrong version).
    Welcome(bool, User),
    /// `refused`.
    Refused(Code),
    /// A join ack.
    AckJoin {
        /// Which request.
        req: ReqRef,
        /// About which channel.
        chan: Chan,
        /// The log's epoch.
        epoch: SmallEpoch,
        /// The head.
        head: SmallSeq,
        /// Members.
        members: Vec<User>,
        /// Missed events.
        events: Vec<Event>,
        /// Recovered flag.
        recovered: bool,
    },
    /// A leave ack.
    AckLeave(ReqRef),
    /// A send ack.
    AckSend(ReqRef, Msg, SmallSeq),
    /// An update ack.
    AckUpdate(ReqRef, SmallSeq),
    /// A delete ack.
    AckDelete(ReqRef, SmallSeq),
    /// A history page.
    AckHistory {
        /// Which request.
        req: ReqRef,
        /// About which channel.
        chan: Chan,
        /// The log's epoch.
        epoch: SmallEpoch,
        /// The events.
        events: Vec<Event>,
        /// The head.
        head: SmallSeq,
        /// More pages follow.
        more: bool,
    },
    /// A read ack.
    AckRead(ReqRef, SmallSeq),
    /// A typing ack.
    AckTyping(ReqRef),
    /// A refusal.
    Nack(ReqRef, Code),
    /// A live log event.
    Event(Event),
    /// `presence:join`.
    PresenceJoin(Chan, User),
    /// `presence:leave`.
    PresenceLeave(Chan, User),
    /// `typing`.
    Typing(Chan, User, bool),
    /// `message:read`.
    Read(Chan, User, SmallSeq),
    /// `pong`.
    Pong(u64),
}

/// A fuzzed log event.
#[derive(Debug, Arbitrary)]
pub struct Event {
    kind: u8,
    chan: Chan,
    seq: SmallSeq,
    msg: Msg,
    author: User,
    cmid: Cmid,
    body: BodyKind,
}

impl Event {
    fn build(&self, issued: &[ClientMsgId]) -> LogEvent {
        let channel_id = self.chan.id();
        let seq = self.seq.seq();
        let message_id = self.msg.id();
        match self.kind % 3 {
            0 => LogEvent::Message(NewMessage {
                channel_id,
                seq,
                message_id,
                author_id: self.author.id(),
                client_msg_id: self.cmid.id(issued),
                body: Some(self.body.body()),
                ts: seq.0,
            }),
            1 => LogEvent::Updated(MessageUpdated {
                channel_id,
                seq,
                message_id,
                body: Some(self.body.body()),
            }),
            _ => LogEvent::Deleted(MessageDeleted {
                channel_id,
                seq,
                message_id,
            }),
        }
    }
}

/// The harness around one client.
struct World {
    config: ClientConfig,
    seed: u64,
    client: Client,
    server: FakeServer,
    now: Instant,
    /// Newest generation opened, and the one before.
    generation: u64,
    previous: u64,
    /// Client frames not yet answered, oldest first, with their generation.
    sent: VecDeque<(u64, ClientFrame)>,
    reqs: VecDeque<ReqId>,
    issued: Vec<ClientMsgId>,
    /// Entries that had their outcome.
    outcomes: BTreeSet<EntryId>,
    /// Per channel, the highest seq delivered or skipped.
    floor: BTreeMap<ChannelId, Seq>,
}

/// Runs one fuzz case; panics on any broken invariant.
pub fn run(input: Input) {
    let config = input.config.config();
    let mut w = World {
        client: Client::new(config.clone(), "token".into(), input.seed),
        config,
        seed: input.seed,
        server: FakeServer::new(
            lockstep_core::ids::UserId::new("me").unwrap_or_else(|_| unreachable!()),
        ),
        now: Instant::from_millis(1_000),
        generation: 0,
        previous: 0,
        sent: VecDeque::new(),
        reqs: VecDeque::new(),
        issued: Vec::new(),
        outcomes: BTreeSet::new(),
        floor: BTreeMap::new(),
    };
    for op in input.ops {
        w.step(op);
    }
}

impl World {
    fn gen_of(&self, g: Gen) -> u64 {
        match g {
            Gen::Current => self.generation,
            Gen::Previous => self.previous,
            Gen::Future => self.generation + 1,
        }
    }

    fn req(&self, r: ReqRef) -> ReqId {
        if !self.reqs.is_empty() && r.0 < 224 {
            return self.reqs[usize::from(r.0) % self.reqs.len()];
        }
        ReqId(u64::from(r.0 % 32))
    }

    fn feed(&mut self, event: TransportEvent) {
        self.client.handle_transport(self.now, event);
    }

    fn step(&mut self, op: Op) {
        let now = self.now;
        let mut timed_out = false;
        match op {
            Op::Connect => self.client.connect(now),
            Op::Close => self.client.close(now),
            Op::Subscribe(c) => {
                let _ = self.client.subscribe(now, c.id());
            }
            Op::Unsubscribe(c) => self.client.unsubscribe(now, c.id()),
            Op::Send(c, b) => {
                if let Ok(id) = self.client.send(now, c.id(), b.body()) {
                    self.issued.push(id);
                }
            }
            Op::Update(c, m, b) => {
                let _ = self.client.update(now, c.id(), m.id(), b.body());
            }
            Op::Delete(c, m) => {
                let _ = self.client.delete(now, c.id(), m.id());
            }
            Op::MarkRead(c, s) => self.client.mark_read(now, c.id(), s.seq()),
            Op::SetTyping(c, a) => self.client.set_typing(now, c.id(), a),
            Op::ExportRestore { restart } => self.export_restore(restart),
            Op::Opened(g) => {
                let generation = self.gen_of(g);
                self.feed(TransportEvent::Opened { generation });
            }
            Op::Closed(g) => {
                let generation = self.gen_of(g);
                let reason = "fuzz".into();
                self.feed(TransportEvent::Closed { generation, reason });
            }
            Op::Serve(n) => self.serve(n),
            Op::Lose(n) => {
                let i = usize::from(n) % self.sent.len().max(1);
                let _ = self.sent.remove(i);
            }
            Op::Post(c, u, b) => {
                if let Some(frame) = self.server.post(&c.id(), &u.id(), b.body()) {
                    let generation = self.generation;
                    self.feed(TransportEvent::Frame { generation, frame });
                }
            }
            Op::ResetLogs => self.server.reset_logs(),
            Op::Frame(g, f) => {
                let generation = self.gen_of(g);
                let frame = self.build(f);
                self.feed(TransportEvent::Frame { generation, frame });
            }
            Op::Raw(g, bytes) => {
                let generation = self.gen_of(g);
                let event = match decode_server(&bytes) {
                    Ok(frame) => TransportEvent::Frame { generation, frame },
                    Err(error) => TransportEvent::Undecodable { generation, error },
                };
                self.feed(event);
            }
            Op::Advance(ms) => {
                self.now = now.saturating_add(Duration::from_millis(u64::from(ms)));
                self.client.handle_timeout(self.now);
                timed_out = true;
            }
            Op::FireNext => {
                if let Some(at) = self.client.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.client.handle_timeout(self.now);
                timed_out = true;
            }
        }
        self.drain();
        self.check(timed_out);
    }

    /// Answers one remembered client frame through the fake server.
    fn serve(&mut self, n: u8) {
        if self.sent.is_empty() {
            return;
        }
        let i = usize::from(n) % self.sent.len();
        let Some((generation, frame)) = self.sent.remove(i) else {
            return;
        };
        for reply in self.server.handle(frame) {
            self.feed(TransportEvent::Frame {
                generation,
                frame: reply,
            });
        }
    }

    fn export_restore(&mut self, restart: bool) {
        if restart {
            // Close first, then export: `close` may still resolve entries
            // (those of channels being left), and a snapshot taken before
            // it would bring them back for a second outcome.
            self.client.close(self.now);
            self.drain();
            let snapshot = self.client.export_outbox();
            self.seed = self.seed.wrapping_add(1);
            self.client = Client::new(self.config.clone(), "token".into(), self.seed);
            // A new client: new transports, fresh positions, and op ids
            // (client-local handles) that may be handed out again.
            self.sent.clear();
            self.reqs.clear();
            self.floor.clear();
            self.outcomes.retain(|id| matches!(id, EntryId::Message(_)));
            self.generation = 0;
            self.previous = 0;
            let _ = self.client.restore_outbox(self.now, snapshot);
        } else {
            let snapshot = self.client.export_outbox();
            let _ = self.client.restore_outbox(self.now, snapshot);
        }
    }

    fn build(&self, f: Frame) -> ServerFrame {
        let ev = |e: &Event| e.build(&self.issued);
        let ack = |req: ReqRef, body| ServerFrame::Ack {
            req: self.req(req),
            body,
        };
        match f {
            Frame::Welcome(right, u) => ServerFrame::Welcome {
                version: if right { PROTOCOL_VERSION } else { 99 },
                user_id: u.id(),
            },
            Frame::Refused(c) => ServerFrame::Refused {
                error: ErrorBody::new(c.code(), "fuzz"),
            },
            Frame::AckJoin {
                req,
                chan,
                epoch,
                head,
                members,
                events,
                recovered,
            } => ack(
                req,
                Ack::Join(JoinAck {
                    channel_id: chan.id(),
                    epoch: epoch.epoch(),
                    head_seq: head.seq(),
                    members: members.iter().map(|u| u.id()).collect(),
                    events: events.iter().map(ev).collect(),
                    recovered,
                }),
            ),
            Frame::AckLeave(r) => ack(r, Ack::Leave),
            Frame::AckSend(r, m, s) => ack(
                r,
                Ack::Send(SendAck {
                    message_id: m.id(),
                    seq: s.seq(),
                    ts: 0,
                }),
            ),
            Frame::AckUpdate(r, s) => ack(r, Ack::Update { seq: s.seq() }),
            Frame::AckDelete(r, s) => ack(r, Ack::Delete { seq: s.seq() }),
            Frame::AckHistory {
                req,
                chan,
                epoch,
                events,
                head,
                more,
            } => ack(
                req,
                Ack::History(HistoryAck {
                    channel_id: chan.id(),
                    epoch: epoch.epoch(),
                    events: events.iter().map(ev).collect(),
                    head_seq: head.seq(),
                    more,
                }),
            ),
            Frame::AckRead(r, s) => ack(r, Ack::Read { up_to: s.seq() }),
            Frame::AckTyping(r) => ack(r, Ack::Typing),
            Frame::Nack(r, c) => ServerFrame::Nack {
                req: self.req(r),
                error: ErrorBody::new(c.code(), "fuzz"),
            },
            Frame::Event(e) => ServerFrame::from(ev(&e)),
            Frame::PresenceJoin(c, u) => ServerFrame::PresenceJoin(PresenceChange {
                channel_id: c.id(),
                user_id: u.id(),
            }),
            Frame::PresenceLeave(c, u) => ServerFrame::PresenceLeave(PresenceChange {
                channel_id: c.id(),
                user_id: u.id(),
            }),
            Frame::Typing(c, u, active) => ServerFrame::Typing(TypingNotice {
                channel_id: c.id(),
                user_id: u.id(),
                active,
            }),
            Frame::Read(c, u, s) => ServerFrame::Read(ReadReceipt {
                channel_id: c.id(),
                user_id: u.id(),
                up_to: s.seq(),
            }),
            Frame::Pong(nonce) => ServerFrame::Pong { nonce },
        }
    }

    /// Drains transmits and events, checking each (invariants 1, 2, 5, 6).
    fn drain(&mut self) {
        let closed = *self.client.state() == ConnectionState::Closed;
        let mut n = 0;
        while let Some(t) = self.client.poll_transmit() {
            n += 1;
            assert!(n < DRAIN_MAX, "transmit queue does not drain");
            match t {
                Transmit::Open { generation } => {
                    assert!(!closed, "open while closed");
                    assert!(
                        generation > self.generation,
                        "generation {generation} not above {}",
                        self.generation
                    );
                    self.previous = self.generation;
                    self.generation = generation;
                    self.server.new_connection();
                }
                Transmit::Frame { generation, frame } => {
                    assert!(!closed, "frame sent while closed: {frame:?}");
                    assert_eq!(generation, self.generation, "frame for an old transport");
                    if let Some(req) = frame.req() {
                        if self.reqs.len() == REQS_MAX {
                            self.reqs.pop_front();
                        }
                        self.reqs.push_back(req);
                    }
                    if self.sent.len() == SENT_MAX {
                        self.sent.pop_front();
                    }
                    self.sent.push_back((generation, frame));
                }
                Transmit::Close { .. } => {}
            }
        }
        let mut n = 0;
        while let Some(e) = self.client.poll_event() {
            n += 1;
            assert!(n < DRAIN_MAX, "event queue does not drain");
            self.on_event(e);
        }
        // A forgotten channel starts over from a fresh join.
        let known: BTreeSet<ChannelId> = self.client.channels().cloned().collect();
        self.floor.retain(|c, _| known.contains(c));
    }

    fn on_event(&mut self, e: ClientEvent) {
        match e {
            ClientEvent::Outcome { id, .. } => {
                assert!(
                    self.outcomes.insert(id.clone()),
                    "second outcome for {id:?}"
                );
            }
            ClientEvent::Log { channel, event } => {
                if !crate::allowed("foreign-events") {
                    assert_eq!(event.channel_id(), &channel, "event of another channel");
                }
                let seq = event.seq();
                if let Some(floor) = self.floor.get(&channel) {
                    assert_eq!(
                        seq,
                        floor.next(),
                        "{channel}: delivered {seq} after {floor}: a silent gap or a repeat"
                    );
                }
                self.floor.insert(channel, seq);
            }
            ClientEvent::Truncated { channel, from, to } => {
                assert!(from <= to, "{channel}: empty truncation {from}..{to}");
                if let Some(floor) = self.floor.get(&channel) {
                    assert_eq!(
                        from,
                        floor.next(),
                        "{channel}: truncated {from}..{to} after {floor}"
                    );
                }
                self.floor.insert(channel, to);
            }
            ClientEvent::Reset { channel, .. } => {
                self.floor.remove(&channel);
            }
            _ => {}
        }
    }

    /// Invariants 3 and 4.
    fn check(&self, timed_out: bool) {
        if *self.client.state() == ConnectionState::Closed {
            assert_eq!(self.client.poll_timeout(), None, "timer armed after close");
            assert_eq!(self.client.armed_timers(), 0, "timers leak after close");
            assert_eq!(
                self.client.pending_requests(),
                0,
                "requests leak after close"
            );
        }
        if let (true, Some(at)) = (timed_out, self.client.poll_timeout()) {
            assert!(
                at > self.now,
                "deadline {at} not after now {} once timers fired",
                self.now
            );
        }
    }
}
