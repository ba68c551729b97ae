//! Property test: random frames, valid and bogus, from several connections,
//! with random disconnects, time steps and out-of-order store completions.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::Instant;
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::server::{ConnId, PrivateChannels, Server, ServerConfig, ServerOutput};
use crate::store::{FailMode, MemStore, MemStoreConfig, StoreCommand, StoreOpId};
use crate::wire::{Body, ClientFrame, DecodeError, ReqId};

#[derive(Debug, Clone)]
enum Step {
    Connect(u8, u8),
    Disconnect(u8),
    Frame(u8, ClientFrame),
    Bogus(u8, Option<u64>),
    Advance(u16),
    /// Run and complete the held store op at this index (modulo).
    Complete(u8),
    FailNext,
}

fn channel() -> impl Strategy<Value = ChannelId> {
    prop_oneof![
        4 => Just("general"),
        2 => Just("random"),
        1 => Just("private:u0"),
        1 => Just("private:u1"),
    ]
    .prop_map(|s| ChannelId::new(s).unwrap())
}

fn frame() -> impl Strategy<Value = ClientFrame> {
    let req = (0u64..20).prop_map(ReqId);
    let seq = (0u64..12).prop_map(Seq);
    let msg = (1u64..5, 1u64..6).prop_map(|(e, s)| MessageId::new(format!("m{e}.{s}")).unwrap());
    let cmid = (0u8..4).prop_map(|i| ClientMsgId::new(format!("c{i}")).unwrap());
    let body = prop_oneof![
        4 => Just(Body::text("hi")),
        2 => Just(Body::new(serde_json::json!({"k": [1, 2]}))),
        1 => Just(Body::text("x".repeat(70_000))),
    ];
    prop_oneof![
        3 => (
            req.clone(),
            channel(),
            proptest::option::of((1u64..3).prop_map(Epoch)),
            proptest::option::of(seq.clone())
        )
            .prop_map(|(req, channel_id, epoch, since)| ClientFrame::Join {
                req,
                channel_id,
                epoch,
                since
            }),
        1 => (req.clone(), channel())
            .prop_map(|(req, channel_id)| ClientFrame::Leave { req, channel_id }),
        4 => (req.clone(), channel(), cmid, body.clone()).prop_map(
            |(req, channel_id, client_msg_id, body)| ClientFrame::Send {
                req,
                channel_id,
                client_msg_id,
                body
            }
        ),
        1 => (req.clone(), channel(), msg.clone(), body).prop_map(
            |(req, channel_id, message_id, body)| ClientFrame::Update {
                req,
                channel_id,
                message_id,
                body
            }
        ),
        1 => (req.clone(), channel(), msg).prop_map(|(req, channel_id, message_id)| {
            ClientFrame::Delete {
                req,
                channel_id,
                message_id,
            }
        }),
        1 => (
            req.clone(),
            channel(),
            proptest::option::of(seq.clone()),
            proptest::option::of(0u64..700)
        )
            .prop_map(|(req, channel_id, after, limit)| ClientFrame::History {
                req,
                channel_id,
                after,
                limit
            }),
        1 => (req.clone(), channel(), seq).prop_map(|(req, channel_id, up_to)| ClientFrame::Read {
            req,
            channel_id,
            up_to
        }),
        1 => (proptest::option::of(req), channel(), any::<bool>()).prop_map(
            |(req, channel_id, active)| ClientFrame::Typing {
                req,
                channel_id,
                active
            }
        ),
        1 => any::<u64>().prop_map(|nonce| ClientFrame::Ping { nonce }),
        1 => Just(ClientFrame::Hello {
            version: 1,
            token: "t".into()
        }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    // Four connection slots (a Connect on a busy slot is a reconnect with a
    // fresh id); frames dominate so channels fill up and logs grow.
    prop_oneof![
        2 => (0u8..4, 0u8..3).prop_map(|(c, u)| Step::Connect(c, u)),
        1 => (0u8..4).prop_map(Step::Disconnect),
        10 => (0u8..4, frame()).prop_map(|(c, f)| Step::Frame(c, f)),
        1 => (0u8..4, proptest::option::of(0u64..20)).prop_map(|(c, r)| Step::Bogus(c, r)),
        2 => (0u16..4_000).prop_map(Step::Advance),
        6 => any::<u8>().prop_map(Step::Complete),
        1 => Just(Step::FailNext),
    ]
}

struct World {
    now: Instant,
    server: Server<PrivateChannels>,
    store: MemStore,
    held: Vec<(StoreOpId, StoreCommand)>,
    /// Connection generation: a reconnect gets a fresh id.
    next_conn: u64,
    conns: BTreeMap<u8, ConnId>,
    /// Every output, for the determinism property.
    log: Vec<String>,
}

impl World {
    fn new() -> Self {
        let config = ServerConfig {
            messages_per_sec: 1,
            messages_burst: 3,
            max_pending_per_conn: 6,
            ..ServerConfig::default()
        };
        World {
            now: Instant::from_millis(1_000),
            server: Server::with_policy(config, PrivateChannels),
            store: MemStore::new(MemStoreConfig {
                retain: 8,
                ..MemStoreConfig::default()
            }),
            held: Vec::new(),
            next_conn: 1,
            conns: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.server.poll_output() {
            self.log.push(format!("{out:?}"));
            if let ServerOutput::Store { op, cmd } = out {
                self.held.push((op, cmd));
            }
        }
    }

    /// Memberships of every open connection but `except`.
    fn others(&self, except: Option<ConnId>) -> Vec<(ConnId, Vec<ChannelId>)> {
        self.conns
            .values()
            .filter(|c| Some(**c) != except)
            .map(|c| (*c, self.server.channels_of(*c)))
            .collect()
    }

    fn apply(&mut self, step: Step) {
        let actor = match &step {
            Step::Frame(c, _) | Step::Bogus(c, _) => self.conns.get(c).copied(),
            _ => None,
        };
        let before = self.others(actor);
        match step {
            Step::Connect(slot, u) => {
                if let Some(old) = self.conns.remove(&slot) {
                    self.server.handle_disconnect(self.now, old);
                }
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                self.conns.insert(slot, conn);
                self.server
                    .handle_connect(self.now, conn, UserId::new(format!("u{u}")).unwrap());
            }
            Step::Disconnect(slot) => {
                if let Some(c) = self.conns.remove(&slot) {
                    self.server.handle_disconnect(self.now, c);
                }
            }
            Step::Frame(slot, f) => {
                let conn = self.conns.get(&slot).copied().unwrap_or(ConnId(999));
                let f = self.steer(f);
                self.server.handle_frame(self.now, conn, f);
            }
            Step::Bogus(slot, req) => {
                let conn = self.conns.get(&slot).copied().unwrap_or(ConnId(999));
                let e = DecodeError::invalid(req.map(ReqId), "x", "bad", None);
                self.server.handle_decode_error(self.now, conn, e);
            }
            Step::Advance(ms) => self.advance(u64::from(ms)),
            Step::Complete(i) => {
                if !self.held.is_empty() {
                    let (op, cmd) = self.held.remove(usize::from(i) % self.held.len());
                    let result = self.store.execute(cmd);
                    self.server.handle_store(self.now, op, result);
                }
            }
            Step::FailNext => self.store.set_fail_mode(FailMode::Next(1)),
        }
        self.drain();
        if actor.is_some() {
            // A frame of one connection never changes another's membership.
            assert_eq!(before, self.others(actor));
        }
    }

    /// Points most edits and deletes at a message that exists (ids `m4.*`
    /// stay bogus), so random traffic reaches the success paths too.
    fn steer(&self, mut f: ClientFrame) -> ClientFrame {
        if let ClientFrame::Update {
            channel_id,
            message_id,
            ..
        }
        | ClientFrame::Delete {
            channel_id,
            message_id,
            ..
        } = &mut f
        {
            let pick: usize = message_id
                .as_str()
                .rsplit('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let ids: Vec<MessageId> = self
                .store
                .events(channel_id)
                .filter_map(|e| match e {
                    crate::wire::LogEvent::Message(m) => Some(m.message_id.clone()),
                    _ => None,
                })
                .collect();
            if !message_id.as_str().starts_with("m4.") && !ids.is_empty() {
                *message_id = ids[pick % ids.len()].clone();
            }
        }
        f
    }

    fn advance(&mut self, ms: u64) {
        let target = Instant::from_millis(self.now.as_millis() + ms);
        for _ in 0..10_000 {
            match self.server.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.server.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = target;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_traffic_never_panics_and_leaves_nothing_behind(steps in proptest::collection::vec(step(), 1..200)) {
        let mut w = World::new();
        for s in steps {
            w.apply(s);
            // Every issued, unfinished op is accounted for by the machine.
            prop_assert!(w.server.pending_store_ops() >= w.held.len());
        }
        // Heal: the store works, every op completes, everyone leaves, time passes.
        w.store.set_fail_mode(FailMode::Never);
        for _ in 0..10_000 {
            if w.held.is_empty() { break; }
            let (op, cmd) = w.held.remove(0);
            let result = w.store.execute(cmd);
            w.server.handle_store(w.now, op, result);
            w.drain();
        }
        prop_assert!(w.held.is_empty());
        prop_assert_eq!(w.server.pending_store_ops(), 0);
        prop_assert_eq!(w.server.pending_replies(), 0);
        let slots: Vec<u8> = w.conns.keys().copied().collect();
        for slot in slots {
            w.apply(Step::Disconnect(slot));
        }
        w.advance(60_000);
        prop_assert_eq!(w.server.connections(), 0);
        prop_assert_eq!(w.server.armed_timers(), 0);
        prop_assert_eq!(w.server.typing_indicators(), 0);
        prop_assert_eq!(w.server.presence_channels(), 0);
        prop_assert_eq!(w.server.poll_timeout(), None);
        // Seqs in every log are contiguous and unique.
        for channel in w.store.channels().cloned().collect::<Vec<_>>() {
            let seqs: Vec<u64> = w.store.events(&channel).map(|e| e.seq().0).collect();
            prop_assert!(seqs.windows(2).all(|p| p[1] == p[0] + 1));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// One input sequence gives one output sequence, bit for bit.
    #[test]
    fn same_inputs_same_outputs(steps in proptest::collection::vec(step(), 1..80)) {
        let run = |steps: &[Step]| {
            let mut w = World::new();
            for s in steps {
                w.apply(s.clone());
            }
            w.log
        };
        prop_assert_eq!(run(&steps), run(&steps));
    }
}

/// The random traffic reaches the interesting paths (else the properties
/// above would prove little): every kind of ack and several nack codes.
#[test]
fn random_traffic_covers_every_request_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let steps = proptest::collection::vec(step(), 100..200)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut w = World::new();
        for s in steps {
            w.apply(s);
        }
        for line in &w.log {
            for kind in [
                "body: Join(",
                "body: Send(",
                "body: Update",
                "body: Delete",
                "body: History(",
                "body: Read",
                "body: Leave",
                "body: Typing",
            ] {
                if line.contains("Ack {") && line.contains(kind) {
                    seen.insert(kind.to_string());
                }
            }
            for code in [
                "Forbidden",
                "NotJoined",
                "NotFound",
                "TooLarge",
                "Invalid",
                "RateLimited",
                "Unavailable",
            ] {
                if line.contains("Nack {") && line.contains(code) {
                    seen.insert(code.to_string());
                }
            }
            for ev in [
                "MessageNew",
                "MessageUpdated",
                "MessageDeleted",
                "PresenceJoin",
                "PresenceLeave",
            ] {
                if line.contains(ev) {
                    seen.insert(ev.to_string());
                }
            }
        }
    }
    let seen: Vec<String> = seen.into_iter().collect();
    assert_eq!(seen.len(), 8 + 7 + 5, "covered only {seen:?}");
}
