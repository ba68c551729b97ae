//! A frame-level harness for the server machine: explicit clock, a
//! [`MemStore`], connections as ids, a bounded drive, per-connection inboxes
//! and a readable trace for snapshots.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::Instant;
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::server::{AccessPolicy, ConnId, Open, Rooms, Server, ServerConfig, ServerOutput};
use crate::store::{
    AppendChain, AppendEntry, AppendOutcome, Existing, MemStore, MemStoreConfig, ReadFrom,
    StoreCommand, StoreError, StoreOpId, StoreReply,
};
use crate::wire::{
    Ack, Body, ClientFrame, ErrorCode, ReqId, ServerFrame, encode_client, encode_server,
};

/// How store commands are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreMode {
    /// Executed and completed as soon as they are issued.
    Immediate,
    /// Held until the test runs and delivers them (to delay or reorder).
    Held,
}

/// Most steps one drive may take; a test can never hang.
const DRIVE_STEPS_MAX: usize = 100_000;

pub(crate) struct Harness<P: AccessPolicy = Open> {
    now: Instant,
    pub(crate) server: Server<P>,
    pub(crate) store: MemStore,
    pub(crate) mode: StoreMode,
    rooms: Rooms,
    inbox: BTreeMap<ConnId, Vec<ServerFrame>>,
    /// Issued, not executed.
    held: VecDeque<(StoreOpId, StoreCommand)>,
    /// Executed, not yet handed back.
    done: VecDeque<(StoreOpId, Result<StoreReply, StoreError>)>,
    next_req: u64,
    trace: Vec<String>,
    /// Frames longer than this are cut in the trace.
    trace_width: usize,
}

pub(crate) fn ch(s: &str) -> ChannelId {
    ChannelId::new(s).unwrap()
}
pub(crate) fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

impl Harness<Open> {
    pub(crate) fn new() -> Self {
        Harness::with(ServerConfig::default(), MemStoreConfig::default(), Open)
    }
}

impl<P: AccessPolicy> Harness<P> {
    pub(crate) fn with(config: ServerConfig, store: MemStoreConfig, policy: P) -> Self {
        Harness {
            now: Instant::from_millis(1_000),
            server: Server::with_policy(config, policy),
            store: MemStore::new(store),
            mode: StoreMode::Immediate,
            rooms: Rooms::new(),
            inbox: BTreeMap::new(),
            held: VecDeque::new(),
            done: VecDeque::new(),
            next_req: 1,
            trace: Vec::new(),
            trace_width: 200,
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn trace(&self) -> String {
        self.trace.join("\n")
    }

    /// Adds a free-form line (a test's narration) to the trace.
    pub(crate) fn note(&mut self, text: &str) {
        self.trace.push(format!("-- {text}"));
    }

    fn log(&mut self, line: String) {
        self.trace
            .push(format!("[{:>8}] {line}", self.now.to_string()));
    }

    fn cut(&self, s: String) -> String {
        if s.len() <= self.trace_width {
            return s;
        }
        let mut end = self.trace_width;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…({} bytes)", &s[..end], s.len())
    }

    // ---- inputs ---------------------------------------------------------------

    pub(crate) fn connect(&mut self, conn: u64, name: &str) {
        let conn = ConnId(conn);
        self.log(format!("{conn} connect as {name}"));
        self.rooms.open(conn, user(name));
        self.server.handle_connect(self.now, conn, user(name));
        self.drive();
    }

    pub(crate) fn disconnect(&mut self, conn: u64) {
        let conn = ConnId(conn);
        self.log(format!("{conn} disconnect"));
        self.rooms.close(conn);
        self.server.handle_disconnect(self.now, conn);
        self.drive();
    }

    pub(crate) fn frame(&mut self, conn: u64, frame: ClientFrame) {
        self.hand(conn, frame);
        self.drive();
    }

    /// Hands a frame to the machine without draining its outputs.
    fn hand(&mut self, conn: u64, frame: ClientFrame) {
        let conn = ConnId(conn);
        let text = self.cut(String::from_utf8_lossy(&encode_client(&frame)).into_owned());
        self.log(format!("{conn} -> {text}"));
        self.server.handle_frame(self.now, conn, frame);
    }

    /// Sends that arrive in one burst: all handed to the machine before its
    /// outputs are drained, as a driver does with inputs already waiting.
    pub(crate) fn say_burst(&mut self, conn: u64, channel: &str, cmids: &[&str]) -> Vec<ReqId> {
        let mut reqs = Vec::new();
        for cmid in cmids {
            let req = self.req();
            let frame = ClientFrame::Send {
                req,
                channel_id: ch(channel),
                client_msg_id: ClientMsgId::new(*cmid).unwrap(),
                body: Body::text(*cmid),
            };
            self.hand(conn, frame);
            reqs.push(req);
        }
        self.drive();
        reqs
    }

    pub(crate) fn req(&mut self) -> ReqId {
        let r = ReqId(self.next_req);
        self.next_req += 1;
        r
    }

    /// The most common opening: alice on connection 1 and bob on 2, both
    /// joined to `channel` (in that order, so traces read the same).
    pub(crate) fn alice_and_bob_in(&mut self, channel: &str) {
        self.connect(1, "alice");
        self.connect(2, "bob");
        self.join(1, channel);
        self.join(2, channel);
    }

    pub(crate) fn join(&mut self, conn: u64, channel: &str) -> ReqId {
        self.join_at(conn, channel, None, None)
    }

    pub(crate) fn join_at(
        &mut self,
        conn: u64,
        channel: &str,
        epoch: Option<Epoch>,
        since: Option<u64>,
    ) -> ReqId {
        let req = self.req();
        let frame = ClientFrame::Join {
            req,
            channel_id: ch(channel),
            epoch,
            since: since.map(Seq),
        };
        self.frame(conn, frame);
        req
    }

    pub(crate) fn leave(&mut self, conn: u64, channel: &str) -> ReqId {
        let req = self.req();
        self.frame(
            conn,
            ClientFrame::Leave {
                req,
                channel_id: ch(channel),
            },
        );
        req
    }

    pub(crate) fn say(&mut self, conn: u64, channel: &str, cmid: &str, text: &str) -> ReqId {
        self.post(conn, channel, cmid, Body::text(text))
    }

    pub(crate) fn post(&mut self, conn: u64, channel: &str, cmid: &str, body: Body) -> ReqId {
        let req = self.req();
        let frame = ClientFrame::Send {
            req,
            channel_id: ch(channel),
            client_msg_id: ClientMsgId::new(cmid).unwrap(),
            body,
        };
        self.frame(conn, frame);
        req
    }

    pub(crate) fn update(&mut self, conn: u64, channel: &str, id: &MessageId, text: &str) -> ReqId {
        let req = self.req();
        let frame = ClientFrame::Update {
            req,
            channel_id: ch(channel),
            message_id: id.clone(),
            body: Body::text(text),
        };
        self.frame(conn, frame);
        req
    }

    pub(crate) fn delete(&mut self, conn: u64, channel: &str, id: &MessageId) -> ReqId {
        let req = self.req();
        self.frame(
            conn,
            ClientFrame::Delete {
                req,
                channel_id: ch(channel),
                message_id: id.clone(),
            },
        );
        req
    }

    pub(crate) fn history(
        &mut self,
        conn: u64,
        channel: &str,
        after: Option<u64>,
        limit: Option<u64>,
    ) -> ReqId {
        let req = self.req();
        let frame = ClientFrame::History {
            req,
            channel_id: ch(channel),
            after: after.map(Seq),
            limit,
        };
        self.frame(conn, frame);
        req
    }

    pub(crate) fn read(&mut self, conn: u64, channel: &str, up_to: u64) -> ReqId {
        let req = self.req();
        self.frame(
            conn,
            ClientFrame::Read {
                req,
                channel_id: ch(channel),
                up_to: Seq(up_to),
            },
        );
        req
    }

    pub(crate) fn typing(&mut self, conn: u64, channel: &str, active: bool) {
        self.frame(
            conn,
            ClientFrame::Typing {
                req: None,
                channel_id: ch(channel),
                active,
            },
        );
    }

    /// Moves the clock, firing every timer due on the way at its deadline.
    pub(crate) fn advance(&mut self, ms: u64) {
        let target = Instant::from_millis(self.now.as_millis() + ms);
        for _ in 0..DRIVE_STEPS_MAX {
            match self.server.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.server.handle_timeout(self.now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = target;
        self.log(format!("time is now {target}"));
    }

    // ---- the store ------------------------------------------------------------

    /// Executes every held command in issue order; results wait for delivery.
    pub(crate) fn run_store(&mut self) {
        while let Some((op, cmd)) = self.held.pop_front() {
            let result = self.store.execute(cmd);
            self.done.push_back((op, result));
        }
    }

    /// Hands back executed results, newest first when `reverse`.
    pub(crate) fn deliver(&mut self, reverse: bool) {
        for _ in 0..DRIVE_STEPS_MAX {
            let next = if reverse {
                self.done.pop_back()
            } else {
                self.done.pop_front()
            };
            let Some((op, result)) = next else { break };
            self.complete(op, result);
        }
    }

    /// Number of commands issued and not yet executed.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    fn complete(&mut self, op: StoreOpId, result: Result<StoreReply, StoreError>) {
        self.log(format!("store {op} done: {}", describe_reply(&result)));
        self.server.handle_store(self.now, op, result);
        self.drain();
    }

    /// Drains outputs and, in immediate mode, runs the store, until quiet.
    pub(crate) fn drive(&mut self) {
        for _ in 0..DRIVE_STEPS_MAX {
            self.drain();
            if self.mode == StoreMode::Held {
                return;
            }
            let Some((op, cmd)) = self.held.pop_front() else {
                return;
            };
            let result = self.store.execute(cmd);
            self.complete(op, result);
        }
        panic!("drive did not settle in {DRIVE_STEPS_MAX} steps");
    }

    fn drain(&mut self) {
        while let Some(out) = self.server.poll_output() {
            self.route(out);
        }
        // The driver's rooms and the machine's members agree.
        for channel in self.rooms.channels() {
            let members: BTreeSet<ConnId> = self.server.members(channel).into_iter().collect();
            let mirrored: BTreeSet<ConnId> = self.rooms.members(channel).collect();
            assert_eq!(members, mirrored, "room {channel} diverged");
        }
    }

    fn route(&mut self, out: ServerOutput) {
        match out {
            ServerOutput::Send { conn, frame } => {
                let text = self.frame_text(&frame);
                self.log(format!("{conn} <- {text}"));
                self.inbox.entry(conn).or_default().push(frame);
            }
            ServerOutput::Broadcast {
                channel,
                frame,
                except,
            } => {
                let to: Vec<ConnId> = self.rooms.recipients(&channel, &except).collect();
                let names: Vec<String> = to.iter().map(ToString::to_string).collect();
                let text = self.frame_text(&frame);
                self.log(format!("{channel} => [{}]: {text}", names.join(",")));
                for c in to {
                    self.inbox.entry(c).or_default().push(frame.clone());
                }
            }
            ServerOutput::RoomJoin { conn, channel } => {
                self.log(format!("{conn} +room {channel}"));
                self.rooms.join(conn, &channel);
            }
            ServerOutput::RoomLeave { conn, channel } => {
                self.log(format!("{conn} -room {channel}"));
                self.rooms.leave(conn, &channel);
            }
            ServerOutput::Store { op, cmd } => {
                self.log(format!("store {op} <- {}", describe_command(&cmd)));
                self.held.push_back((op, cmd));
            }
            ServerOutput::Close { conn, reason } => {
                self.log(format!("{conn} closed by the server: {reason}"));
                self.rooms.close(conn);
            }
            ServerOutput::Relay(relay) => self.log(format!("relay {relay:?}")),
            ServerOutput::Presence(cmd) => self.log(format!("presence {cmd:?}")),
            ServerOutput::Committed(hint) => {
                self.log(format!(
                    "committed {} {}..={}",
                    hint.channel, hint.first, hint.last
                ));
            }
        }
    }

    fn frame_text(&self, frame: &ServerFrame) -> String {
        self.cut(String::from_utf8_lossy(&encode_server(frame)).into_owned())
    }

    // ---- reading results ------------------------------------------------------

    pub(crate) fn inbox(&self, conn: u64) -> &[ServerFrame] {
        self.inbox
            .get(&ConnId(conn))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub(crate) fn clear_inboxes(&mut self) {
        self.inbox.clear();
    }

    /// The answer to `req` on `conn`, if one came.
    pub(crate) fn reply(&self, conn: u64, req: ReqId) -> Option<&ServerFrame> {
        self.inbox(conn).iter().find(|f| match f {
            ServerFrame::Ack { req: r, .. } | ServerFrame::Nack { req: r, .. } => *r == req,
            _ => false,
        })
    }

    /// How many answers `req` got on `conn` (must be at most one).
    pub(crate) fn replies(&self, conn: u64, req: ReqId) -> usize {
        self.inbox(conn)
            .iter()
            .filter(|f| matches!(f, ServerFrame::Ack { req: r, .. } | ServerFrame::Nack { req: r, .. } if *r == req))
            .count()
    }

    pub(crate) fn acked(&self, conn: u64, req: ReqId) -> Ack {
        match self.reply(conn, req) {
            Some(ServerFrame::Ack { body, .. }) => body.clone(),
            other => panic!("c{conn} {req:?}: expected an ack, got {other:?}"),
        }
    }

    pub(crate) fn nacked(&self, conn: u64, req: ReqId) -> ErrorCode {
        match self.reply(conn, req) {
            Some(ServerFrame::Nack { error, .. }) => error.code,
            other => panic!("c{conn} {req:?}: expected a nack, got {other:?}"),
        }
    }

    /// The seqs of `message:*` events `conn` received, in arrival order.
    pub(crate) fn event_seqs(&self, conn: u64) -> Vec<u64> {
        self.inbox(conn)
            .iter()
            .filter_map(|f| f.clone().into_log_event())
            .map(|e| e.seq().0)
            .collect()
    }
}

fn describe_command(cmd: &StoreCommand) -> String {
    match cmd {
        StoreCommand::Append {
            channel,
            entries,
            chain,
        } => {
            let entries: Vec<String> = entries.iter().map(describe_entry).collect();
            let behind = match chain {
                AppendChain::Start => "",
                AppendChain::Behind => " (behind)",
            };
            format!("append {channel}{behind} {}", entries.join("; "))
        }
        StoreCommand::Read {
            channel,
            from: ReadFrom::After(s),
            limit,
            ..
        } => {
            format!("read {channel} after {s} limit {limit}")
        }
        StoreCommand::Read {
            channel,
            from: ReadFrom::Latest,
            limit,
            ..
        } => {
            format!("read {channel} latest {limit}")
        }
        StoreCommand::Head { channel } => format!("head {channel}"),
        StoreCommand::SetReceipt {
            channel,
            user,
            up_to,
        } => {
            format!("receipt {channel} {user} up to {up_to}")
        }
    }
}

fn describe_entry(entry: &AppendEntry) -> String {
    match entry {
        AppendEntry::Message {
            author,
            client_msg_id,
            ts,
            ..
        } => format!("message {author}/{client_msg_id} ts={ts}"),
        AppendEntry::Update {
            target,
            actor,
            rule,
            ..
        } => format!("update {target} by {actor} ({rule:?})"),
        AppendEntry::Delete {
            target,
            actor,
            rule,
        } => format!("delete {target} by {actor} ({rule:?})"),
    }
}

fn describe_outcome(outcome: &AppendOutcome) -> String {
    match outcome {
        AppendOutcome::Appended(e) => format!("appended {} {}", e.seq(), e.message_id()),
        AppendOutcome::Duplicate(Existing::Message(a)) => {
            format!("duplicate of {} {}", a.seq, a.message_id)
        }
        AppendOutcome::Duplicate(Existing::Deletion { seq }) => {
            format!("already deleted at {seq}")
        }
        AppendOutcome::Refused(r) => format!("refused {r:?}"),
    }
}

fn describe_reply(result: &Result<StoreReply, StoreError>) -> String {
    match result {
        Err(e) => format!("error ({e})"),
        Ok(StoreReply::Appended(outcomes)) => {
            let outcomes: Vec<String> = outcomes.iter().map(describe_outcome).collect();
            outcomes.join("; ")
        }
        Ok(StoreReply::Refused(r)) => format!("refused {r:?}"),
        Ok(StoreReply::Events(p)) => {
            let range = match (p.events.first(), p.events.last()) {
                (Some(a), Some(b)) => format!("{}..{}", a.seq(), b.seq()),
                _ => "none".into(),
            };
            format!(
                "{} events {range} of {} head {} more={} oldest={}",
                p.events.len(),
                p.epoch,
                p.head,
                p.more,
                p.oldest_retained
            )
        }
        Ok(StoreReply::Head { epoch, head }) => format!("head {epoch} {head}"),
        Ok(StoreReply::Receipt { up_to, advanced }) => {
            format!("receipt {up_to} advanced={advanced}")
        }
    }
}
