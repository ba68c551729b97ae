//! Random commands, transport events, honest and bogus frames, and time
//! steps; invariants checked after every step.
//!
//! MUST 1: nothing panics (whatever arrives).
//! MUST 2: every send gets at most one outcome.
//! MUST 3: per channel, delivered seqs strictly increase (within one log
//!         epoch and one subscription).
//! MUST 4: after `close`, no timer is armed and no request is pending.
//! MUST 5: without bogus frames, once the network heals every send has its
//!         outcome and every wanted channel is subscribed.
//! MUST 6: every connection state follows the one before it in the state
//!         chart (`ConnectionState::may_follow`), whatever arrives.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::harness::{Harness, ch, msg, user};
use crate::client::{ClientEvent, ConnectionState, SubscriptionState};
use crate::ids::{Epoch, MessageId, Seq};
use crate::wire::{
    Ack, Body, ErrorBody, ErrorCode, HistoryAck, JoinAck, PresenceChange, ReadReceipt, ReqId,
    SendAck, ServerFrame, TypingNotice,
};

const CHANNELS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Connect,
    Close,
    Subscribe(usize),
    Unsubscribe(usize),
    Send(usize),
    MarkRead(usize, u64),
    Typing(usize, bool),
    NetDown,
    NetUp,
    DropTransport,
    Advance(u64),
    OtherPosts(usize),
    Bogus(u8, u64, u64, usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Connect),
        1 => Just(Op::Close),
        3 => (0..3usize).prop_map(Op::Subscribe),
        1 => (0..3usize).prop_map(Op::Unsubscribe),
        4 => (0..3usize).prop_map(Op::Send),
        1 => (0..3usize, 0..10u64).prop_map(|(c, s)| Op::MarkRead(c, s)),
        1 => (0..3usize, any::<bool>()).prop_map(|(c, a)| Op::Typing(c, a)),
        1 => Just(Op::NetDown),
        2 => Just(Op::NetUp),
        1 => Just(Op::DropTransport),
        4 => (0..20_000u64).prop_map(Op::Advance),
        3 => (0..3usize).prop_map(Op::OtherPosts),
        3 => (any::<u8>(), 0..12u64, 0..8u64, 0..4usize, any::<bool>())
            .prop_map(|(k, r, s, c, f)| Op::Bogus(k, r, s, c, f)),
    ]
}

fn bogus(kind: u8, req: u64, seq: u64, chan: usize, flag: bool) -> ServerFrame {
    let name = ["a", "b", "c", "zz"][chan % 4];
    let req = ReqId(req);
    match kind % 10 {
        0 => ServerFrame::Ack {
            req,
            body: Ack::Leave,
        },
        1 => ServerFrame::Ack {
            req,
            body: Ack::Send(SendAck {
                message_id: MessageId::new(format!("x{seq}")).unwrap(),
                seq: Seq(seq),
                ts: 0,
            }),
        },
        2 => ServerFrame::Ack {
            req,
            body: Ack::Join(JoinAck {
                channel_id: ch(name),
                epoch: Epoch(1 + u64::from(flag)),
                head_seq: Seq(seq),
                members: vec![],
                events: vec![msg(name, seq, "bob", "bogus", "j")],
                recovered: flag,
            }),
        },
        3 => ServerFrame::Ack {
            req,
            body: Ack::History(HistoryAck {
                channel_id: ch(name),
                epoch: Epoch(1),
                events: vec![msg(name, seq, "bob", "bogus", "h")],
                head_seq: Seq(seq),
                more: flag,
            }),
        },
        4 => ServerFrame::Nack {
            req,
            error: ErrorBody::new(ErrorCode::ALL[seq as usize % 8], "bogus"),
        },
        5 => ServerFrame::from(msg(
            name,
            seq,
            if flag { "alice" } else { "bob" },
            "bogus",
            "n",
        )),
        6 if flag => ServerFrame::PresenceJoin(PresenceChange {
            channel_id: ch(name),
            user_id: user("eve"),
        }),
        6 => ServerFrame::PresenceLeave(PresenceChange {
            channel_id: ch(name),
            user_id: user("eve"),
        }),
        7 => ServerFrame::Typing(TypingNotice {
            channel_id: ch(name),
            user_id: user("eve"),
            active: flag,
        }),
        8 => ServerFrame::Welcome {
            version: 1,
            user_id: user("mallory"),
        },
        _ => ServerFrame::Read(ReadReceipt {
            channel_id: ch(name),
            user_id: user("eve"),
            up_to: Seq(seq),
        }),
    }
}

/// Checks the invariants over the events emitted since `from`.
struct Checker {
    seen: usize,
    state: ConnectionState,
    outcomes: BTreeMap<String, usize>,
    last: BTreeMap<String, u64>,
}

impl Checker {
    fn check(&mut self, h: &Harness) {
        for e in &h.events[self.seen..] {
            match e {
                ClientEvent::Outcome { id, .. } => {
                    let n = self.outcomes.entry(format!("{id:?}")).or_default();
                    *n += 1;
                    assert_eq!(*n, 1, "MUST 2: two outcomes for {id:?}\n{}", h.trace());
                }
                ClientEvent::Log { channel, event } => {
                    let last = self.last.entry(channel.to_string()).or_default();
                    assert!(
                        event.seq().0 > *last,
                        "MUST 3: {channel} delivered {} after {last}\n{}",
                        event.seq(),
                        h.trace()
                    );
                    *last = event.seq().0;
                }
                ClientEvent::Reset { channel, .. } => {
                    self.last.remove(channel.as_str());
                }
                ClientEvent::State(to) => {
                    assert!(
                        to.may_follow(&self.state),
                        "MUST 6: {} -> {} is not in the chart\n{}",
                        self.state.name(),
                        to.name(),
                        h.trace()
                    );
                    self.state = to.clone();
                }
                _ => {}
            }
        }
        self.seen = h.events.len();
        for c in CHANNELS {
            if h.client.channel(&ch(c)).is_none() {
                self.last.remove(c);
            }
        }
    }
}

/// Plays one op on the harness; true when it was an accepted send.
fn apply(h: &mut Harness, op: Op) -> bool {
    match op {
        Op::Connect => h.act("connect", |c, now| c.connect(now)),
        Op::Close => {
            h.act("close", |c, now| c.close(now));
            assert_eq!(h.client.poll_timeout(), None, "MUST 4");
            assert_eq!(h.client.pending_requests(), 0, "MUST 4");
        }
        Op::Subscribe(i) => {
            let _ = h.act("subscribe", |c, now| c.subscribe(now, ch(CHANNELS[i])));
        }
        Op::Unsubscribe(i) => h.act("unsubscribe", |c, now| c.unsubscribe(now, ch(CHANNELS[i]))),
        Op::Send(i) => {
            return h
                .act("send", |c, now| {
                    c.send(now, ch(CHANNELS[i]), Body::text("x"))
                })
                .is_ok();
        }
        Op::MarkRead(i, s) => h.act("read", |c, now| c.mark_read(now, ch(CHANNELS[i]), Seq(s))),
        Op::Typing(i, a) => h.act("typing", |c, now| c.set_typing(now, ch(CHANNELS[i]), a)),
        Op::NetDown => h.net_up = false,
        Op::NetUp => h.net_up = true,
        Op::DropTransport => h.drop_transport(),
        Op::Advance(ms) => h.advance(ms),
        Op::OtherPosts(i) => {
            if let Some(f) = h
                .server()
                .post(&ch(CHANNELS[i]), &user("bob"), Body::text("hey"))
            {
                if h.net_up {
                    h.reply(f);
                }
            }
        }
        Op::Bogus(k, r, s, c, f) => h.reply(bogus(k, r, s, c, f)),
    }
    false
}

fn run(ops: Vec<Op>) {
    let mut h = Harness::fake();
    let mut checker = Checker {
        seen: 0,
        state: ConnectionState::Idle,
        outcomes: BTreeMap::new(),
        last: BTreeMap::new(),
    };
    let mut sends = 0usize;
    let honest = !ops.iter().any(|o| matches!(o, Op::Bogus(..) | Op::Close));
    for op in ops {
        if apply(&mut h, op) {
            sends += 1;
        }
        checker.check(&h);
    }
    if honest {
        // Heal: network up, the app wants to be online, time passes.
        h.net_up = true;
        h.act("connect", |c, now| c.connect(now));
        h.advance(200_000);
        checker.check(&h);
        assert_eq!(
            checker.outcomes.len(),
            sends,
            "MUST 5: every send resolved\n{}",
            h.trace()
        );
        for c in CHANNELS {
            if let Some(v) = h.client.channel(&ch(c)) {
                assert!(
                    !v.desired || v.subscription == SubscriptionState::Subscribed,
                    "MUST 5: {c} {v:?}\n{}",
                    h.trace()
                );
            }
        }
    }
    h.act("close", |c, now| c.close(now));
    assert_eq!(h.client.poll_timeout(), None, "MUST 4");
    assert_eq!(h.client.armed_timers(), 0, "MUST 4");
    assert_eq!(h.client.pending_requests(), 0, "MUST 4");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_keep_the_invariants(ops in proptest::collection::vec(op(), 0..60)) {
        run(ops);
    }

    #[test]
    fn honest_worlds_converge_after_healing(
        ops in proptest::collection::vec(op().prop_filter("honest", |o| !matches!(o, Op::Bogus(..) | Op::Close)), 0..60)
    ) {
        run(ops);
    }
}

/// The same inputs give the same trace, bit for bit.
#[test]
fn one_seed_one_trace() {
    let ops = vec![
        Op::Connect,
        Op::Subscribe(0),
        Op::Send(0),
        Op::DropTransport,
        Op::Advance(5_000),
        Op::OtherPosts(0),
        Op::MarkRead(0, 1),
        Op::Typing(0, true),
        Op::Bogus(3, 1, 2, 0, true),
    ];
    let trace = |ops: Vec<Op>| {
        let mut h = Harness::fake();
        for op in ops {
            apply(&mut h, op);
        }
        h.trace()
    };
    assert_eq!(trace(ops.clone()), trace(ops));
}
