//! Several server machines on one store ([`Writers::Shared`]): each
//! delivers every channel's events to its own members in seq order, once,
//! whoever committed them; hints may be lost, store completions come in
//! any order, the buffer ahead of the cursor may be tiny.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::Instant;
use crate::ids::{ChannelId, ClientMsgId, Seq, UserId};
use crate::rng::Rng;
use crate::server::tests::harness::{ch, user};
use crate::server::{
    CommitHint, ConnId, PresenceCommand, PresenceOutcome, PresenceScope, Relay, Rooms, Server,
    ServerConfig, ServerOutput, SharedTail, Writers,
};
use crate::store::{MemStore, MemStoreConfig, StoreCommand, StoreOpId};
use crate::wire::{Ack, Body, ClientFrame, ReqId, ServerFrame};

/// What crosses between nodes.
enum Peer {
    Hint(CommitHint),
    Relay(Relay),
}

pub(super) struct Node {
    pub(super) server: Server,
    /// False once killed: it takes no input any more.
    alive: bool,
    rooms: Rooms,
    held: Vec<(StoreOpId, StoreCommand)>,
}

/// Nodes sharing one store, a lossy hint bus, and what each connection
/// received.
pub(super) struct World {
    pub(super) now: Instant,
    rng: Rng,
    store: MemStore,
    pub(super) nodes: Vec<Node>,
    /// The presence arbiter (the PostgreSQL rule in memory): which nodes
    /// hold a claim of each (channel, user).
    pub(super) claims: BTreeMap<(ChannelId, UserId), BTreeSet<usize>>,
    /// Hints and relays in flight: (to node, what).
    bus: VecDeque<(usize, Peer)>,
    /// Share of hints lost, in percent.
    loss: u64,
    /// Which node each connection is on.
    home: BTreeMap<ConnId, usize>,
    pub(super) inbox: BTreeMap<ConnId, Vec<ServerFrame>>,
    next_req: u64,
}

fn shared(ahead_bytes_max: usize) -> ServerConfig {
    shared_with(ahead_bytes_max, 8)
}

fn shared_with(ahead_bytes_max: usize, reads_max: usize) -> ServerConfig {
    ServerConfig {
        writers: Writers::Shared(SharedTail {
            gap_wait: Duration::from_millis(50),
            ahead_bytes_max,
            reads_max,
            presence: PresenceScope::PerProcess,
        }),
        messages_per_sec: 10_000,
        messages_burst: 10_000,
        ..ServerConfig::default()
    }
}

/// Several processes on one store whose presence is arbitrated.
pub(super) fn arbitrated() -> ServerConfig {
    let mut config = shared(1 << 20);
    if let Writers::Shared(tail) = &mut config.writers {
        tail.presence = PresenceScope::Arbitrated;
    }
    config
}

impl World {
    pub(super) fn new(nodes: usize, config: &ServerConfig, seed: u64, loss: u64) -> Self {
        World {
            now: Instant::from_millis(1_000),
            rng: Rng::new(seed),
            store: MemStore::new(MemStoreConfig::default()),
            nodes: (0..nodes)
                .map(|_| Node {
                    server: Server::new(config.clone()),
                    alive: true,
                    rooms: Rooms::new(),
                    held: Vec::new(),
                })
                .collect(),
            claims: BTreeMap::new(),
            bus: VecDeque::new(),
            loss,
            home: BTreeMap::new(),
            inbox: BTreeMap::new(),
            next_req: 1,
        }
    }

    pub(super) fn connect(&mut self, node: usize, conn: u64, name: &str) {
        let conn = ConnId(conn);
        self.home.insert(conn, node);
        let n = &mut self.nodes[node];
        n.rooms.open(conn, user(name));
        n.server.handle_connect(self.now, conn, user(name));
        self.drain(node);
    }

    pub(super) fn disconnect(&mut self, conn: u64) {
        let conn = ConnId(conn);
        let node = self.home[&conn];
        self.nodes[node].rooms.close(conn);
        self.nodes[node].server.handle_disconnect(self.now, conn);
        self.drain(node);
    }

    fn frame(&mut self, conn: u64, frame: ClientFrame) {
        let conn = ConnId(conn);
        let node = self.home[&conn];
        self.nodes[node].server.handle_frame(self.now, conn, frame);
        self.drain(node);
    }

    fn req(&mut self) -> ReqId {
        self.next_req += 1;
        ReqId(self.next_req)
    }

    pub(super) fn join(&mut self, conn: u64, channel: &str) -> ReqId {
        let req = self.req();
        self.frame(
            conn,
            ClientFrame::Join {
                req,
                channel_id: ch(channel),
                epoch: None,
                since: None,
            },
        );
        req
    }

    fn send(&mut self, conn: u64, channel: &str, cmid: &str) -> ReqId {
        let req = self.req();
        self.frame(
            conn,
            ClientFrame::Send {
                req,
                channel_id: ch(channel),
                client_msg_id: ClientMsgId::new(cmid).unwrap(),
                body: Body::text(cmid),
            },
        );
        req
    }

    /// Carries out a node's outputs; presence commands are answered by the
    /// arbiter in order, and the answers fed back until none is left.
    pub(super) fn drain(&mut self, node: usize) {
        loop {
            let mut answers = Vec::new();
            self.drain_outputs(node, &mut answers);
            if answers.is_empty() {
                return;
            }
            for outcome in answers {
                self.nodes[node].server.handle_presence(self.now, outcome);
            }
        }
    }

    /// The arbiter's rule: a claim is first when no node held one, a
    /// release last when none holds one after it.
    fn arbitrate(&mut self, node: usize, cmd: PresenceCommand) -> PresenceOutcome {
        match cmd {
            PresenceCommand::Claim(change) => {
                let holders = self
                    .claims
                    .entry((change.channel_id.clone(), change.user_id.clone()))
                    .or_default();
                let first = holders.is_empty();
                holders.insert(node);
                PresenceOutcome::Claimed { change, first }
            }
            PresenceCommand::Release(change) => {
                let key = (change.channel_id.clone(), change.user_id.clone());
                let holders = self.claims.entry(key.clone()).or_default();
                let released = holders.remove(&node);
                let last = released && holders.is_empty();
                if holders.is_empty() {
                    self.claims.remove(&key);
                }
                PresenceOutcome::Released { change, last }
            }
            PresenceCommand::Members { channel, token } => PresenceOutcome::Members {
                users: self
                    .claims
                    .keys()
                    .filter(|(c, _)| *c == channel)
                    .map(|(_, u)| u.clone())
                    .collect(),
                channel,
                token,
            },
        }
    }

    /// Kills `node`: it takes no input any more, its claims stay until
    /// reaped.
    pub(super) fn kill(&mut self, node: usize) {
        self.nodes[node].alive = false;
        self.nodes[node].held.clear();
        self.bus.retain(|(to, _)| *to != node);
    }

    /// `by` reaps the dead nodes' claims (their leases expired): it adopts
    /// those it does not hold itself.
    pub(super) fn reap(&mut self, by: usize) {
        let dead: BTreeSet<usize> = (0..self.nodes.len())
            .filter(|n| !self.nodes[*n].alive)
            .collect();
        self.adopt(&dead, by);
    }

    /// `victim` stalled past its lease but lives: `by` reaps it, then
    /// `victim`'s next heartbeat finds its lease lost.
    pub(super) fn steal(&mut self, victim: usize, by: usize) {
        self.adopt(&BTreeSet::from([victim]), by);
        self.nodes[victim]
            .server
            .handle_presence(self.now, PresenceOutcome::Lost);
        self.drain(victim);
    }

    /// `by` takes over the claims of `dead`.
    fn adopt(&mut self, dead: &BTreeSet<usize>, by: usize) {
        let mut adopted = Vec::new();
        for ((channel, user), holders) in &mut self.claims {
            if holders.iter().any(|h| dead.contains(h)) {
                holders.retain(|h| !dead.contains(h));
                if holders.insert(by) {
                    adopted.push(crate::wire::PresenceChange {
                        channel_id: channel.clone(),
                        user_id: user.clone(),
                    });
                }
            }
        }
        for change in adopted {
            self.nodes[by]
                .server
                .handle_presence(self.now, PresenceOutcome::Adopted(change));
        }
        self.drain(by);
    }

    fn drain_outputs(&mut self, node: usize, answers: &mut Vec<PresenceOutcome>) {
        while let Some(out) = self.nodes[node].server.poll_output() {
            match out {
                ServerOutput::Send { conn, frame } => {
                    self.inbox.entry(conn).or_default().push(frame);
                }
                ServerOutput::Broadcast {
                    channel,
                    frame,
                    except,
                } => {
                    let to: Vec<ConnId> = self.nodes[node]
                        .rooms
                        .recipients(&channel, &except)
                        .collect();
                    for c in to {
                        self.inbox.entry(c).or_default().push(frame.clone());
                    }
                }
                ServerOutput::Committed(hint) => {
                    for other in (0..self.nodes.len()).filter(|o| *o != node) {
                        self.bus.push_back((other, Peer::Hint(hint.clone())));
                    }
                }
                ServerOutput::Relay(relay) => {
                    for other in (0..self.nodes.len()).filter(|o| *o != node) {
                        self.bus.push_back((other, Peer::Relay(relay.clone())));
                    }
                }
                ServerOutput::Store { op, cmd } => self.nodes[node].held.push((op, cmd)),
                ServerOutput::Presence(cmd) => answers.push(self.arbitrate(node, cmd)),
                other @ (ServerOutput::RoomJoin { .. }
                | ServerOutput::RoomLeave { .. }
                | ServerOutput::Close { .. }) => self.nodes[node].rooms.apply(&other),
            }
        }
    }

    /// One random step: a store op of a random node (any of its held ops:
    /// completions come in any order), a hint (maybe lost), or time passes.
    /// False when nothing is left to do.
    fn step(&mut self) -> bool {
        let busy: Vec<usize> = (0..self.nodes.len())
            .filter(|n| !self.nodes[*n].held.is_empty())
            .collect();
        let choice = self.rng.below(3);
        if choice < 2 && !busy.is_empty() {
            let node = busy[usize::try_from(self.rng.below(busy.len() as u64)).unwrap()];
            let i = usize::try_from(self.rng.below(self.nodes[node].held.len() as u64)).unwrap();
            let (op, cmd) = self.nodes[node].held.swap_remove(i);
            let result = self.store.execute(cmd);
            self.nodes[node].server.handle_store(self.now, op, result);
            self.drain(node);
            return true;
        }
        if let Some((node, peer)) = self.bus.pop_front() {
            if self.rng.below(100) >= self.loss {
                let server = &mut self.nodes[node].server;
                match peer {
                    Peer::Hint(hint) => server.handle_hint(self.now, hint),
                    Peer::Relay(relay) => server.handle_relay(self.now, relay),
                }
                self.drain(node);
            }
            return true;
        }
        if !busy.is_empty() {
            return true;
        }
        // Time passes to the next timer.
        let next = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .filter_map(|n| n.server.poll_timeout())
            .min();
        let Some(at) = next else {
            return false;
        };
        self.now = self.now.max(at);
        for node in 0..self.nodes.len() {
            if !self.nodes[node].alive {
                continue;
            }
            self.nodes[node].server.handle_timeout(self.now);
            self.drain(node);
        }
        true
    }

    /// Runs until quiet (bounded).
    pub(super) fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the world did not settle");
    }

    /// The safety net on every node, then quiet again.
    pub(super) fn resync(&mut self) {
        for node in 0..self.nodes.len() {
            self.nodes[node].server.handle_resync(self.now);
            self.drain(node);
        }
        self.settle();
    }

    /// The join head `conn` was told, and the seqs of the events of that
    /// channel it was sent, in order.
    fn received(&self, conn: u64, req: ReqId) -> (Seq, Vec<u64>) {
        let frames = self.inbox.get(&ConnId(conn)).cloned().unwrap_or_default();
        let at = frames
            .iter()
            .position(|f| matches!(f, ServerFrame::Ack { req: r, body: Ack::Join(_) } if *r == req))
            .unwrap_or_else(|| panic!("c{conn} was not answered its join"));
        let ServerFrame::Ack {
            body: Ack::Join(ack),
            ..
        } = &frames[at]
        else {
            unreachable!()
        };
        let all: Vec<u64> = frames
            .iter()
            .filter_map(|f| f.clone().into_log_event())
            .filter(|e| *e.channel_id() == ack.channel_id)
            .map(|e| e.seq().0)
            .collect();
        (ack.head_seq, all)
    }

    fn head(&self, channel: &ChannelId) -> u64 {
        self.store.head(channel).map_or(0, |(_, s)| s.0)
    }
}

/// Every member was sent each event after its join head exactly once, in
/// order, up to the store's head; and nothing twice overall.
fn assert_delivered(w: &World, joins: &[(u64, ReqId)], channel: &str) {
    let head = w.head(&ch(channel));
    for (conn, req) in joins {
        let (from, all) = w.received(*conn, *req);
        assert!(
            all.windows(2).all(|p| p[0] < p[1]),
            "c{conn} got events out of order or twice: {all:?}"
        );
        let after: Vec<u64> = all.iter().copied().filter(|s| *s > from.0).collect();
        let want: Vec<u64> = (from.0 + 1..=head).collect();
        assert_eq!(after, want, "c{conn} (joined at {from})");
    }
}

#[test]
fn a_message_committed_on_one_node_reaches_members_on_the_other() {
    let mut w = World::new(2, &shared(1 << 20), 1, 0);
    w.connect(0, 1, "alice");
    w.connect(1, 2, "bob");
    let joins = [(1, w.join(1, "room")), (2, w.join(2, "room"))];
    w.settle();
    // Only node 0 commits: node 1 learns of it by the hint alone.
    for i in 0..3 {
        w.send(1, "room", &format!("a{i}"));
    }
    w.settle();
    assert_delivered(&w, &joins, "room");
    for i in 3..5 {
        w.send(1, "room", &format!("a{i}"));
        w.send(2, "room", &format!("b{i}"));
    }
    w.settle();
    assert_eq!(w.head(&ch("room")), 7);
    assert_delivered(&w, &joins, "room");
    for node in &w.nodes {
        assert_eq!(node.server.cursor(&ch("room")).map(|c| c.1), Some(Seq(7)));
        assert_eq!(node.server.pending_store_ops(), 0);
    }
}

/// A send committed on one process whose ack was lost (its connection
/// dropped), retried on the other: the original ack, no second message,
/// no second broadcast.
#[test]
fn a_retry_landing_on_the_other_process_gets_the_original_ack() {
    let mut w = World::new(2, &shared(1 << 20), 5, 0);
    w.connect(0, 1, "alice");
    w.connect(1, 2, "bob");
    w.connect(1, 3, "alice");
    let joins = [(2, w.join(2, "room")), (3, w.join(3, "room"))];
    w.join(1, "room");
    w.settle();
    w.send(1, "room", "x");
    assert_eq!(w.nodes[0].held.len(), 1, "the append is at the store");
    w.disconnect(1);
    w.settle();
    assert_eq!(w.head(&ch("room")), 1, "committed; its ack went nowhere");
    let retry = w.send(3, "room", "x");
    w.settle();
    let ack = w
        .inbox
        .get(&ConnId(3))
        .into_iter()
        .flatten()
        .find_map(|f| match f {
            ServerFrame::Ack {
                req,
                body: Ack::Send(a),
            } if *req == retry => Some(a.seq),
            _ => None,
        });
    assert_eq!(ack, Some(Seq(1)), "the original ack");
    assert_eq!(w.head(&ch("room")), 1, "stored once");
    assert_delivered(&w, &joins, "room");
}

/// Runs the store op of `node` at `index` now and returns its outcome,
/// to hand back later.
fn execute(w: &mut World, node: usize, index: usize) -> (StoreOpId, StoreResult) {
    let (op, cmd) = w.nodes[node].held.remove(index);
    (op, w.store.execute(cmd))
}

type StoreResult = Result<crate::store::StoreReply, crate::store::StoreError>;

/// Two joins on one process race with another process's commits: the one
/// whose read came second sets the cursor past what the first read saw.
/// The first is read again, so its answer reaches the cursor and it misses
/// nothing.
#[test]
fn a_join_read_before_the_cursor_jumped_is_read_again() {
    let mut w = World::new(2, &shared(1 << 20), 6, 100);
    w.connect(0, 1, "alice");
    w.connect(1, 2, "bob");
    w.connect(1, 3, "carol");
    w.join(1, "room");
    w.settle();
    let bob = w.join(2, "room");
    let carol = w.join(3, "room");
    assert_eq!(w.nodes[1].held.len(), 2, "both join reads at the store");
    let bob_read = execute(&mut w, 1, 0);
    for i in 0..3 {
        w.send(1, "room", &format!("a{i}"));
        // Node 0's store work only; the hints to node 1 are lost.
        while !w.nodes[0].held.is_empty() {
            let (op, result) = execute(&mut w, 0, 0);
            w.nodes[0].server.handle_store(w.now, op, result);
            w.drain(0);
        }
    }
    let carol_read = execute(&mut w, 1, 0);
    for (op, result) in [carol_read, bob_read] {
        w.nodes[1].server.handle_store(w.now, op, result);
        w.drain(1);
    }
    w.settle();
    let (bob_head, _) = w.received(2, bob);
    assert_eq!(bob_head, Seq(3), "bob's join was read again");
    // Later commits reach both, the hints lost or not.
    w.loss = 0;
    w.send(1, "room", "a3");
    w.settle();
    assert_delivered(&w, &[(2, bob), (3, carol)], "room");
}

/// A resync of many channels reads at most `reads_max` at once; the rest
/// wait their turn and every channel is read.
#[test]
fn gap_reads_take_turns() {
    let mut w = World::new(2, &shared_with(1 << 20, 2), 7, 100);
    w.connect(0, 1, "alice");
    w.connect(1, 2, "bob");
    let rooms: Vec<String> = (0..10).map(|i| format!("room{i}")).collect();
    let mut joins = Vec::new();
    for room in &rooms {
        w.join(1, room);
        joins.push(w.join(2, room));
    }
    w.settle();
    for room in &rooms {
        w.send(1, room, "hello");
    }
    w.settle();
    w.nodes[1].server.handle_resync(w.now);
    w.drain(1);
    assert_eq!(w.nodes[1].held.len(), 2, "two reads at the store");
    assert_eq!(w.nodes[1].server.pending_store_ops(), 10, "eight wait");
    w.settle();
    for (room, join) in rooms.iter().zip(joins) {
        assert_delivered(&w, &[(2, join)], room);
        assert_eq!(w.head(&ch(room)), 1);
    }
    assert_eq!(w.nodes[1].server.pending_store_ops(), 0);
}

/// Typing and read receipts of members on one process reach the members
/// on the other (typing not back to the typist's own connections).
#[test]
fn typing_and_receipts_cross_processes() {
    let mut w = World::new(2, &shared(1 << 20), 8, 0);
    w.connect(0, 1, "alice");
    w.connect(1, 2, "bob");
    w.connect(1, 3, "alice");
    w.join(1, "room");
    w.join(2, "room");
    w.join(3, "room");
    w.settle();
    w.send(2, "room", "hi");
    w.settle();
    w.frame(
        1,
        ClientFrame::Typing {
            req: None,
            channel_id: ch("room"),
            active: true,
        },
    );
    let read = w.req();
    w.frame(
        1,
        ClientFrame::Read {
            req: read,
            channel_id: ch("room"),
            up_to: Seq(1),
        },
    );
    w.settle();
    let typing = |w: &World, conn| {
        w.inbox[&ConnId(conn)]
            .iter()
            .filter(|f| matches!(f, ServerFrame::Typing(t) if t.user_id == user("alice")))
            .count()
    };
    let receipts = |w: &World, conn| {
        w.inbox[&ConnId(conn)]
            .iter()
            .filter(|f| matches!(f, ServerFrame::Read(r) if r.up_to == Seq(1)))
            .count()
    };
    assert_eq!(
        typing(&w, 2),
        2,
        "bob: alice typing, then her indicator expired"
    );
    assert_eq!(typing(&w, 3), 0, "not to alice's own connections");
    assert_eq!(receipts(&w, 2), 1);
    assert_eq!(receipts(&w, 3), 1);
    assert_eq!(receipts(&w, 1), 1);
}

/// A member's own send commits while its join still reads (the channel's
/// first join here, so the cursor is not known yet): the event waits, and
/// goes out once the join's read says where the log stands.
#[test]
fn a_commit_before_the_first_join_read_completes_is_delivered() {
    let mut w = World::new(1, &shared(1 << 20), 9, 0);
    w.connect(0, 1, "alice");
    let join = w.join(1, "room");
    w.send(1, "room", "x");
    assert_eq!(w.nodes[0].held.len(), 2, "the join read and the append");
    let read = execute(&mut w, 0, 0);
    let (op, result) = execute(&mut w, 0, 0);
    w.nodes[0].server.handle_store(w.now, op, result);
    w.drain(0);
    let (op, result) = read;
    w.nodes[0].server.handle_store(w.now, op, result);
    w.drain(0);
    w.settle();
    let (head, got) = w.received(1, join);
    assert_eq!((head, got), (Seq(0), vec![1]));
}

#[test]
fn lost_hints_cost_latency_not_events() {
    let mut w = World::new(2, &shared(1 << 20), 2, 100);
    w.connect(0, 1, "alice");
    w.connect(1, 2, "bob");
    let joins = [(1, w.join(1, "room")), (2, w.join(2, "room"))];
    w.settle();
    for i in 0..4 {
        w.send(1, "room", &format!("a{i}"));
    }
    w.settle();
    let (_, before) = w.received(2, joins[1].1);
    assert!(before.is_empty(), "every hint was lost: {before:?}");
    w.resync();
    assert_delivered(&w, &joins, "room");
}

#[test]
fn a_node_without_members_in_a_channel_does_not_tail_it() {
    let mut w = World::new(2, &shared(1 << 20), 3, 0);
    w.connect(0, 1, "alice");
    w.connect(1, 2, "bob");
    w.join(1, "room");
    w.settle();
    w.send(1, "room", "a");
    w.settle();
    assert_eq!(w.nodes[1].server.tailed_channels(), 0);
    assert_eq!(w.nodes[1].server.pending_store_ops(), 0);
    assert_eq!(w.nodes[0].server.tailed_channels(), 1);
    let leave = w.req();
    w.frame(
        1,
        ClientFrame::Leave {
            req: leave,
            channel_id: ch("room"),
        },
    );
    w.settle();
    assert_eq!(w.nodes[0].server.tailed_channels(), 0);
    assert_eq!(
        w.nodes[0].server.armed_timers(),
        0,
        "no gap timer left behind"
    );
}

#[test]
fn a_machine_that_writes_alone_keeps_no_cursor_and_sends_no_hint() {
    let mut w = World::new(1, &ServerConfig::default(), 4, 0);
    w.connect(0, 1, "alice");
    let joins = [(1, w.join(1, "room"))];
    w.settle();
    w.send(1, "room", "a");
    w.settle();
    assert!(w.bus.is_empty());
    assert_eq!(w.nodes[0].server.tailed_channels(), 0);
    assert_delivered(&w, &joins, "room");
}

/// Many seeds: three nodes, members on each, sends from each (in half of
/// the worlds while the joins still read), store completions in random
/// order, a third of the hints lost, a buffer that holds one event or
/// plenty; after a resync every member has everything after its join.
#[test]
fn random_worlds_deliver_in_order_exactly_once() {
    for seed in 0..200u64 {
        let ahead = if seed % 2 == 0 { 1 } else { 1 << 20 };
        let reads_max = usize::try_from(1 + seed % 3).unwrap();
        let mut w = World::new(3, &shared_with(ahead, reads_max), seed, 33);
        let mut joins = Vec::new();
        for conn in 1..=6u64 {
            let node = usize::try_from(conn % 3).unwrap();
            w.connect(node, conn, &format!("u{conn}"));
            let req = w.join(conn, "room");
            joins.push((conn, req));
        }
        // Half the worlds send while the joins are still reading.
        if seed % 4 < 2 {
            w.settle();
        }
        for i in 0..30u64 {
            let conn = 1 + w.rng.below(6);
            w.send(conn, "room", &format!("m{i}"));
            // A few steps between sends: commits overlap across nodes.
            for _ in 0..w.rng.below(4) {
                w.step();
            }
        }
        w.settle();
        w.resync();
        assert_eq!(w.head(&ch("room")), 30, "seed {seed}");
        assert_delivered(&w, &joins, "room");
        for node in &w.nodes {
            assert_eq!(node.server.pending_store_ops(), 0, "seed {seed}");
        }
    }
}
