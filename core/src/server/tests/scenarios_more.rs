//! Named scenarios, part two: presence, edits, receipts, typing, store
//! faults and ordering, join semantics, history, limits.

use insta::assert_snapshot;

use super::harness::{Harness, StoreMode, ch, user};
use super::scenarios::{join_ack, send_ack};
use crate::Instant;
use crate::ids::{Epoch, MessageId, Seq};
use crate::server::{ConnId, Open, PrivateChannels, ServerConfig};
use crate::store::{FailMode, MemStoreConfig, ModifyRule};
use crate::wire::{
    Ack, Body, DecodeError, ErrorCode, ReqId, ServerFrame, TypingNotice, decode_client,
};

fn presence(h: &Harness, conn: u64) -> Vec<String> {
    h.inbox(conn)
        .iter()
        .filter_map(|f| match f {
            ServerFrame::PresenceJoin(p) => Some(format!("+{}", p.user_id)),
            ServerFrame::PresenceLeave(p) => Some(format!("-{}", p.user_id)),
            _ => None,
        })
        .collect()
}

#[test]
fn presence_join_leave_and_no_flap_on_quick_reconnect() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    h.connect(2, "bob");
    h.join(2, "general");
    h.note("bob opens a second tab: no second presence:join");
    h.connect(3, "bob");
    let again = h.join(3, "general");
    assert_eq!(
        join_ack(&h, 3, again).members,
        vec![user("alice"), user("bob")]
    );
    h.note("one tab closes: bob is still present");
    h.disconnect(2);
    h.advance(3_000);
    h.note("the last tab drops and comes back within the grace period");
    h.disconnect(3);
    h.advance(1_000);
    h.connect(4, "bob");
    h.join(4, "general");
    h.advance(3_000);
    assert_eq!(presence(&h, 1), vec!["+bob"]);
    h.note("bob leaves for good: presence:leave after the grace period");
    h.leave(4, "general");
    h.advance(1_999);
    assert_eq!(presence(&h, 1), vec!["+bob"]);
    h.advance(1);
    assert_eq!(presence(&h, 1), vec!["+bob", "-bob"]);
    assert_eq!(h.server.present_users(&ch("general")), vec![user("alice")]);
    assert_eq!(h.server.armed_timers(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn edit_and_delete_by_author_refused_for_others() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    let s = h.say(1, "general", "a-1", "typo");
    let id = send_ack(&h, 1, s).message_id;
    let unknown = MessageId::new("m9.9").unwrap();
    let r_unknown_upd = h.update(2, "general", &unknown, "x");
    let r_unknown_del = h.delete(1, "general", &unknown);
    let r_bob_upd = h.update(2, "general", &id, "hijack");
    let r_bob_del = h.delete(2, "general", &id);
    let r_upd = h.update(1, "general", &id, "fixed");
    let r_del = h.delete(1, "general", &id);
    let r_del_again = h.delete(1, "general", &id);
    let r_upd_deleted = h.update(1, "general", &id, "too late");
    assert_eq!(h.nacked(2, r_unknown_upd), ErrorCode::NotFound);
    assert_eq!(h.nacked(1, r_unknown_del), ErrorCode::NotFound);
    assert_eq!(h.nacked(2, r_bob_upd), ErrorCode::Forbidden);
    assert_eq!(h.nacked(2, r_bob_del), ErrorCode::Forbidden);
    assert_eq!(h.acked(1, r_upd), Ack::Update { seq: Seq(2) });
    assert_eq!(h.acked(1, r_del), Ack::Delete { seq: Seq(3) });
    assert_eq!(h.acked(1, r_del_again), Ack::Delete { seq: Seq(3) });
    assert_eq!(h.nacked(1, r_upd_deleted), ErrorCode::NotFound);
    // Refusals consumed no seq; the repeated delete broadcast nothing.
    assert_eq!(h.event_seqs(2), vec![1, 2, 3]);
    assert_snapshot!(h.trace());
}

#[test]
fn read_watermarks_never_go_back() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    for i in 1..=3 {
        h.say(1, "general", &format!("a-{i}"), "x");
    }
    let beyond = h.read(2, "general", 4);
    let up = h.read(2, "general", 3);
    let back = h.read(2, "general", 1);
    let zero = h.read(2, "general", 0);
    assert_eq!(h.nacked(2, beyond), ErrorCode::Invalid);
    assert_eq!(h.acked(2, up), Ack::Read { up_to: Seq(3) });
    assert_eq!(h.acked(2, back), Ack::Read { up_to: Seq(3) });
    assert_eq!(h.acked(2, zero), Ack::Read { up_to: Seq(3) });
    let receipts: Vec<_> = h
        .inbox(1)
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Read(r) => Some((r.user_id.clone(), r.up_to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        receipts,
        vec![(user("bob"), Seq(3))],
        "only the advance is broadcast"
    );
    assert_snapshot!(h.trace());
}

fn typing_seen(h: &Harness, conn: u64) -> Vec<(String, bool)> {
    h.inbox(conn)
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Typing(TypingNotice {
                user_id, active, ..
            }) => Some((user_id.to_string(), *active)),
            _ => None,
        })
        .collect()
}

#[test]
fn typing_is_relayed_expires_and_clears_on_disconnect() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.connect(3, "alice");
    for c in 1..=3 {
        h.join(c, "general");
    }
    h.note("alice types: bob sees it, alice's other tab does not");
    h.typing(1, "general", true);
    assert_eq!(typing_seen(&h, 2), vec![("alice".into(), true)]);
    assert!(typing_seen(&h, 3).is_empty());
    h.note("no refresh: it expires after the TTL");
    h.advance(4_999);
    assert_eq!(typing_seen(&h, 2).len(), 1);
    h.advance(1);
    assert_eq!(
        typing_seen(&h, 2),
        vec![("alice".into(), true), ("alice".into(), false)]
    );
    h.note("alice types again and disconnects: cleared at once");
    h.typing(1, "general", true);
    h.disconnect(1);
    assert_eq!(typing_seen(&h, 2).last(), Some(&("alice".into(), false)));
    h.note("typing needs a joined channel; with a req it is answered");
    let req = h.req();
    h.frame(
        2,
        crate::wire::ClientFrame::Typing {
            req: Some(req),
            channel_id: ch("other"),
            active: true,
        },
    );
    assert_eq!(h.nacked(2, req), ErrorCode::NotJoined);
    assert_eq!(
        (h.server.typing_indicators(), h.server.armed_timers()),
        (0, 0)
    );
    assert!(
        h.store.channels().all(|c| c != &ch("other")),
        "typing touched no store"
    );
    assert_snapshot!(h.trace());
}

#[test]
fn store_failure_answers_retryable_unavailable_and_broadcasts_nothing() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    h.store.set_fail_mode(FailMode::Next(1));
    let s = h.say(1, "general", "a-1", "lost?");
    let Some(ServerFrame::Nack { error, .. }) = h.reply(1, s) else {
        panic!()
    };
    assert_eq!(
        (error.code, error.retryable),
        (ErrorCode::Unavailable, true)
    );
    assert!(h.event_seqs(2).is_empty());
    h.note("the retry succeeds with seq 1: the failure consumed nothing");
    let again = h.say(1, "general", "a-1", "lost?");
    assert_eq!(send_ack(&h, 1, again).seq, Seq(1));
    h.note("a failed join is undone");
    h.connect(3, "carol");
    h.store.set_fail_mode(FailMode::Next(1));
    let j = h.join(3, "general");
    assert_eq!(h.nacked(3, j), ErrorCode::Unavailable);
    assert!(h.server.channels_of(ConnId(3)).is_empty());
    assert_snapshot!(h.trace());
}

#[test]
fn out_of_order_store_completions_keep_per_sender_order() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    h.join(1, "random");
    h.mode = StoreMode::Held;
    let mut alice = Vec::new();
    for i in 0..4 {
        alice.push(h.say(1, "general", &format!("a-{i}"), "x"));
        h.say(2, "general", &format!("b-{i}"), "y");
        h.say(1, "random", &format!("r-{i}"), "z");
        h.history(2, "general", None, None);
    }
    // Run the store and hand completions back newest first, until quiet.
    for _ in 0..100 {
        if h.held() == 0 {
            break;
        }
        h.run_store();
        h.deliver(true);
    }
    let seqs: Vec<u64> = alice.iter().map(|r| send_ack(&h, 1, *r).seq.0).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "alice's seqs follow her send order: {seqs:?}"
    );
    assert_eq!(h.store.head(&ch("general")).map(|x| x.1), Some(Seq(8)));
    assert_eq!(h.server.pending_store_ops(), 0);
    assert_eq!(h.server.pending_replies(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn store_completion_for_a_closed_connection() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    h.say(1, "general", "a-1", "sent just before closing");
    h.history(1, "general", None, None);
    h.read(1, "general", 0);
    let before = h.inbox(1).len();
    h.disconnect(1);
    h.run_store();
    h.deliver(false);
    // The committed message still reaches the room; nothing goes to c1.
    assert_eq!(h.event_seqs(2), vec![1]);
    assert_eq!(
        h.inbox(1).len(),
        before,
        "nothing is sent to a closed connection"
    );
    assert_eq!(h.server.pending_store_ops(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn join_semantics_table() {
    let mut h = Harness::with(ServerConfig::default(), MemStoreConfig::default(), Open);
    h.connect(1, "alice");
    h.join(1, "general");
    for i in 1..=1_500 {
        h.say(1, "general", &format!("a-{i}"), "x");
        if i % 40 == 0 {
            h.advance(2_000); // stay under the rate limit
        }
    }
    h.connect(2, "bob");
    let e = Epoch(1);
    let row = |h: &mut Harness, epoch: Option<Epoch>, since: Option<u64>| {
        let j = h.join_at(2, "general", epoch, since);
        let a = join_ack(h, 2, j);
        let first = a.events.first().map(|e| e.seq().0);
        let last = a.events.last().map(|e| e.seq().0);
        format!(
            "epoch={epoch:?} since={since:?} -> head={} events={} first={first:?} last={last:?} recovered={}",
            a.head_seq.0,
            a.events.len(),
            a.recovered
        )
    };
    let table = [
        row(&mut h, None, None),
        row(&mut h, Some(e), None),
        row(&mut h, Some(e), Some(1_500)),
        row(&mut h, Some(e), Some(1_499)),
        row(&mut h, Some(e), Some(500)),
        row(&mut h, Some(e), Some(499)),
        row(&mut h, Some(e), Some(0)),
        row(&mut h, Some(Epoch(7)), Some(1_499)),
        row(&mut h, None, Some(1_499)),
        row(&mut h, Some(e), Some(2_000)),
    ];
    // Idempotent re-joins: one presence:join for bob in all of that.
    assert_eq!(
        h.inbox(1)
            .iter()
            .filter(|f| matches!(f, ServerFrame::PresenceJoin(_)))
            .count(),
        1
    );
    assert_snapshot!(table.join("\n"));
}

#[test]
fn join_with_truncated_history_is_not_recovered() {
    let store = MemStoreConfig {
        retain: 3,
        ..MemStoreConfig::default()
    };
    let mut h = Harness::with(ServerConfig::default(), store, Open);
    h.connect(1, "alice");
    h.join(1, "general");
    for i in 1..=6 {
        h.say(1, "general", &format!("a-{i}"), "x");
    }
    h.connect(2, "bob");
    let old = h.join_at(2, "general", Some(Epoch(1)), Some(1));
    let a = join_ack(&h, 2, old);
    assert!(
        !a.recovered,
        "seqs 2 and 3 were dropped: never a silent gap"
    );
    assert_eq!(
        a.events.iter().map(|e| e.seq().0).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    let fine = h.join_at(2, "general", Some(Epoch(1)), Some(3));
    assert!(join_ack(&h, 2, fine).recovered);
    let page = h.history(2, "general", Some(0), None);
    let Ack::History(p) = h.acked(2, page) else {
        panic!()
    };
    assert_eq!(
        p.events.first().map(|e| e.seq()),
        Some(Seq(4)),
        "the page starts later"
    );
}

#[test]
fn history_paging_and_limits() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    for i in 1..=7 {
        h.say(1, "general", &format!("a-{i}"), "x");
    }
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let r = h.history(1, "general", Some(after), Some(3));
        let Ack::History(p) = h.acked(1, r) else {
            panic!()
        };
        pages.push(p.events.iter().map(|e| e.seq().0).collect::<Vec<_>>());
        after = p.events.last().map_or(after, |e| e.seq().0);
        if !p.more {
            break;
        }
    }
    assert_eq!(pages, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
    let zero = h.history(1, "general", None, Some(0));
    assert_eq!(h.nacked(1, zero), ErrorCode::Invalid);
    h.clear_inboxes();
    let big = h.history(1, "general", None, Some(10_000));
    let default = h.history(1, "general", None, None);
    let Ack::History(p) = h.acked(1, big) else {
        panic!()
    };
    assert_eq!(p.events.len(), 7);
    let Ack::History(p) = h.acked(1, default) else {
        panic!()
    };
    assert_eq!((p.epoch, p.head_seq, p.more), (Epoch(1), Seq(7), false));
    assert_snapshot!(h.trace());
}

#[test]
fn replies_are_cut_to_their_byte_budget_and_say_so() {
    // Bodies built to be heavy: ten of about 2 KiB, under a 5 KiB budget.
    let config = ServerConfig {
        reply_bytes_max: 5 * 1_024,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), Open);
    h.connect(1, "alice");
    h.join(1, "general");
    let heavy = Body::from_json(&format!("[{}0]", "0,".repeat(1_023))).unwrap();
    for i in 1..=10 {
        h.post(1, "general", &format!("a-{i}"), heavy.clone());
    }
    let seqs =
        |events: &[crate::wire::LogEvent]| events.iter().map(|e| e.seq().0).collect::<Vec<_>>();
    // History pages by bytes and says `more` until the end.
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let r = h.history(1, "general", Some(after), Some(100));
        let Ack::History(p) = h.acked(1, r) else {
            panic!()
        };
        let weight: usize = p.events.iter().map(crate::wire::LogEvent::wire_len).sum();
        assert!(weight <= 5 * 1_024, "a page of {weight} bytes");
        pages.push(seqs(&p.events));
        after = p.events.last().map_or(after, |e| e.seq().0);
        if !p.more {
            break;
        }
    }
    assert_eq!(pages.concat(), (1..=10).collect::<Vec<_>>());
    assert!(pages.len() >= 4, "{pages:?}");
    // A recovery heavier than the budget is not `recovered`: the newest
    // that fit, and the client pages the rest with history.
    h.connect(2, "bob");
    let r = h.join_at(2, "general", Some(Epoch(1)), Some(0));
    let a = join_ack(&h, 2, r);
    assert!(!a.recovered);
    assert_eq!(seqs(&a.events), vec![9, 10]);
    // One that fits is exact.
    let r = h.join_at(2, "general", Some(Epoch(1)), Some(9));
    let a = join_ack(&h, 2, r);
    assert!(a.recovered);
    assert_eq!(seqs(&a.events), vec![10]);
}

#[test]
fn history_limit_is_cut_to_the_maximum() {
    let config = ServerConfig {
        history_limit_max: 2,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), Open);
    h.connect(1, "alice");
    h.join(1, "general");
    for i in 1..=3 {
        h.say(1, "general", &format!("a-{i}"), "x");
    }
    let r = h.history(1, "general", None, Some(500));
    let Ack::History(p) = h.acked(1, r) else {
        panic!()
    };
    assert_eq!((p.events.len(), p.more), (2, true));
}

#[test]
fn limits_fail_one_request_and_keep_the_connection() {
    let config = ServerConfig {
        max_channels_per_conn: 2,
        max_connections: 2,
        max_pending_per_conn: 2,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), Open);
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.connect(3, "carol");
    assert!(
        matches!(h.inbox(3), [ServerFrame::Refused { error }] if error.code == ErrorCode::Unavailable)
    );
    h.join(1, "a");
    h.join(1, "b");
    let third = h.join(1, "c");
    assert_eq!(h.nacked(1, third), ErrorCode::RateLimited);
    let rejoin = h.join(1, "a");
    join_ack(&h, 1, rejoin);
    h.mode = StoreMode::Held;
    let p1 = h.history(1, "a", None, None);
    let p2 = h.history(1, "a", None, None);
    let p3 = h.history(1, "a", None, None);
    assert_eq!(h.nacked(1, p3), ErrorCode::Unavailable);
    h.run_store();
    h.deliver(false);
    h.acked(1, p1);
    h.acked(1, p2);
    h.note("a decode error with a req is refused; without one it is only logged");
    let err = DecodeError::invalid(Some(ReqId(99)), "message:send", "bad", None);
    h.server.handle_decode_error(h.now(), ConnId(1), err);
    h.server
        .handle_decode_error(h.now(), ConnId(1), DecodeError::Malformed("junk".into()));
    h.drive();
    assert_eq!(h.nacked(1, ReqId(99)), ErrorCode::Invalid);
    assert_snapshot!(h.trace());
}

#[test]
fn a_join_racing_a_send_never_leaves_a_gap() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    h.connect(2, "bob");
    h.mode = StoreMode::Held;
    h.note("bob's join reads the head while alice's message commits");
    let j = h.join(2, "general");
    h.say(1, "general", "a-1", "racing");
    // The store runs the append after the head read, but hands it back first.
    h.run_store();
    h.deliver(true);
    let ack = join_ack(&h, 2, j);
    assert_eq!(ack.head_seq, Seq(0));
    assert_eq!(
        h.event_seqs(2),
        vec![1],
        "the broadcast reached the joining connection"
    );
    assert_snapshot!(h.trace());
}

#[test]
fn early_timeouts_are_harmless_and_idle_servers_arm_nothing() {
    let mut h = Harness::new();
    assert_eq!(h.server.poll_timeout(), None);
    h.connect(1, "alice");
    h.join(1, "general");
    h.typing(1, "general", true);
    let due = h.server.poll_timeout().unwrap();
    assert!(h.now() < due);
    h.server.handle_timeout(h.now());
    assert!(h.server.poll_output().is_none());
    assert_eq!(h.server.poll_timeout(), Some(due));
    // A refresh moves the deadline instead of adding a timer.
    h.advance(1_000);
    h.typing(1, "general", true);
    assert_eq!(h.server.armed_timers(), 1);
    assert_eq!(
        h.server.poll_timeout(),
        Some(Instant::from_millis(due.as_millis() + 1_000))
    );
    h.typing(1, "general", false);
    assert_eq!(h.server.armed_timers(), 0);
}

#[test]
fn other_limits_and_policies() {
    struct Moderated;
    impl crate::server::AccessPolicy for Moderated {
        fn may_join(&self, _: &crate::ids::UserId, _: &crate::ids::ChannelId) -> bool {
            true
        }
        fn may_post(&self, u: &crate::ids::UserId, _: &crate::ids::ChannelId) -> bool {
            u.as_str() != "lurker"
        }
        fn modify_rule(&self, u: &crate::ids::UserId, _: &crate::ids::ChannelId) -> ModifyRule {
            if u.as_str() == "mod" {
                ModifyRule::Anyone
            } else {
                ModifyRule::AuthorOnly
            }
        }
    }
    let config = ServerConfig {
        typing_per_sec: 1,
        typing_burst: 1,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), Moderated);
    h.connect(1, "alice");
    h.connect(2, "mod");
    h.connect(3, "lurker");
    for c in 1..=3 {
        h.join(c, "general");
    }
    let s = h.say(1, "general", "a-1", "hello");
    let id = send_ack(&h, 1, s).message_id;
    let lurk = h.say(3, "general", "l-1", "hi");
    assert_eq!(h.nacked(3, lurk), ErrorCode::Forbidden);
    let big = h.frame_update_big(1, &id);
    assert_eq!(h.nacked(1, big), ErrorCode::TooLarge);
    let moderated = h.update(2, "general", &id, "[removed]");
    assert_eq!(h.acked(2, moderated), Ack::Update { seq: Seq(2) });
    let r1 = h.req();
    h.frame(
        1,
        crate::wire::ClientFrame::Typing {
            req: Some(r1),
            channel_id: ch("general"),
            active: true,
        },
    );
    let r2 = h.req();
    h.frame(
        1,
        crate::wire::ClientFrame::Typing {
            req: Some(r2),
            channel_id: ch("general"),
            active: true,
        },
    );
    assert_eq!(h.acked(1, r1), Ack::Typing);
    assert_eq!(h.nacked(1, r2), ErrorCode::RateLimited);
}

impl<P: crate::server::AccessPolicy> Harness<P> {
    fn frame_update_big(&mut self, conn: u64, id: &MessageId) -> ReqId {
        let req = self.req();
        let body = crate::wire::Body::text("x".repeat(70_000));
        self.frame(
            conn,
            crate::wire::ClientFrame::Update {
                req,
                channel_id: ch("general"),
                message_id: id.clone(),
                body,
            },
        );
        req
    }
}

#[test]
fn a_malformed_request_is_checked_for_its_channel_first() {
    // docs/PROTOCOL.md, "Checks and their order": payload → channelId → access policy (join) → joined → the
    // other fields. A request whose other fields do not decode is still
    // refused for its channel first.
    let mut h = Harness::with(
        ServerConfig::default(),
        MemStoreConfig::default(),
        PrivateChannels,
    );
    h.connect(1, "alice");
    h.join(1, "general");
    h.drive();
    let mut refuse = |json: &str| {
        let err = decode_client(json.as_bytes()).unwrap_err();
        let req = err.req().unwrap();
        h.server.handle_decode_error(h.now(), ConnId(1), err);
        h.drive();
        h.nacked(1, req)
    };
    let send = |req: u64, channel: &str| {
        format!(
            r#"{{"type":"message:send","req":{req},"channelId":"{channel}","clientMsgId":"","body":1}}"#
        )
    };
    assert_eq!(refuse(&send(50, "other")), ErrorCode::NotJoined);
    assert_eq!(refuse(&send(51, "general")), ErrorCode::Invalid);
    // A channel id that is not one is invalid, whatever else.
    assert_eq!(refuse(&send(52, "not a channel")), ErrorCode::Invalid);
    let join = |req: u64, channel: &str| {
        format!(r#"{{"type":"channel:join","req":{req},"channelId":"{channel}","since":"x"}}"#)
    };
    assert_eq!(refuse(&join(53, "private:bob")), ErrorCode::Forbidden);
    assert_eq!(refuse(&join(54, "private:alice")), ErrorCode::Invalid);
    let typing = r#"{"type":"typing","req":55,"channelId":"other","active":"yes"}"#;
    assert_eq!(refuse(typing), ErrorCode::NotJoined);
    let history = r#"{"type":"channel:history","req":56,"channelId":"other","limit":-1}"#;
    assert_eq!(refuse(history), ErrorCode::NotJoined);
    let history = r#"{"type":"channel:history","req":57,"channelId":"general","limit":-1}"#;
    assert_eq!(refuse(history), ErrorCode::Invalid);
    for other in [
        r#"{"type":"message:update","req":58,"channelId":"other","messageId":5,"body":1}"#,
        r#"{"type":"message:delete","req":59,"channelId":"other","messageId":5}"#,
        r#"{"type":"message:read","req":60,"channelId":"other","upTo":"x"}"#,
    ] {
        assert_eq!(refuse(other), ErrorCode::NotJoined, "{other}");
    }
}
