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
        Just("general"),
        Just("random"),
        Just("private:u0"),
        Just("private:u1")
    ]
    .prop_map(|s| ChannelId::new(s).unwrap())
}

fn frame() -> impl Strategy<Value = ClientFrame> {
    let req = (0u64..20).prop_map(ReqId);
    let seq = (0u64..12).prop_map(Seq);
    let msg = (1u64..3, 0u64..12).prop_map(|(e, s)| MessageId::new(format!("m{e}.{s}")).unwrap());
    let cmid = (0u8..4).prop_map(|i| ClientMsgId::new(format!("c{i}")).unwrap());
    let body = (0usize..3).prop_map(|n| match n {
        0 => Body::text("hi"),
        1 => Body::new(serde_json::json!({"k": [1, 2]})),
        _ => Body::text("x".repeat(70_000)),
    });
    prop_oneof![
        (
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
        (req.clone(), channel())
            .prop_map(|(req, channel_id)| ClientFrame::Leave { req, channel_id }),
        (req.clone(), channel(), cmid, body.clone()).prop_map(
            |(req, channel_id, client_msg_id, body)| ClientFrame::Send {
                req,
                channel_id,
                client_msg_id,
                body
            }
        ),
        (req.clone(), channel(), msg.clone(), body).prop_map(
            |(req, channel_id, message_id, body)| ClientFrame::Update {
                req,
                channel_id,
                message_id,
                body
            }
        ),
        (req.clone(), channel(), msg).prop_map(|(req, channel_id, message_id)| {
            ClientFrame::Delete {
                req,
                channel_id,
                message_id,
            }
        }),
        (
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
        (req.clone(), channel(), seq).prop_map(|(req, channel_id, up_to)| ClientFrame::Read {
            req,
            channel_id,
            up_to
        }),
        (proptest::option::of(req), channel(), any::<bool>()).prop_map(
            |(req, channel_id, active)| ClientFrame::Typing {
                req,
                channel_id,
                active
            }
        ),
        any::<u64>().prop_map(|nonce| ClientFrame::Ping { nonce }),
        Just(ClientFrame::Hello {
            version: 1,
            token: "t".into()
        }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0u8..5, 0u8..3).prop_map(|(c, u)| Step::Connect(c, u)),
        1 => (0u8..5).prop_map(Step::Disconnect),
        8 => (0u8..5, frame()).prop_map(|(c, f)| Step::Frame(c, f)),
        1 => (0u8..5, proptest::option::of(0u64..20)).prop_map(|(c, r)| Step::Bogus(c, r)),
        2 => (0u16..4_000).prop_map(Step::Advance),
        4 => any::<u8>().prop_map(Step::Complete),
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
            messages_burst: 5,
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
                self.server.handle_frame(self.now, conn, f);
            }
            Step::Bogus(slot, req) => {
                let conn = self.conns.get(&slot).copied().unwrap_or(ConnId(999));
                let e = DecodeError::Invalid {
                    req: req.map(ReqId),
                    kind: "x".into(),
                    message: "bad".into(),
                };
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
    fn random_traffic_never_panics_and_leaves_nothing_behind(steps in proptest::collection::vec(step(), 1..120)) {
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
