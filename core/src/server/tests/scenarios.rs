//! Named scenarios, part one: chat, recovery, dedupe, access, limits.

use insta::assert_snapshot;

use super::harness::{Harness, StoreMode, ch, user};
use crate::ids::{Epoch, MessageId, Seq};
use crate::server::{PrivateChannels, ServerConfig};
use crate::store::MemStoreConfig;
use crate::wire::{Ack, Body, ErrorCode, JoinAck, SendAck, ServerFrame};

pub(super) fn send_ack(
    h: &Harness<impl crate::server::AccessPolicy>,
    conn: u64,
    req: crate::wire::ReqId,
) -> SendAck {
    match h.acked(conn, req) {
        Ack::Send(a) => a,
        other => panic!("not a send ack: {other:?}"),
    }
}

pub(super) fn join_ack(
    h: &Harness<impl crate::server::AccessPolicy>,
    conn: u64,
    req: crate::wire::ReqId,
) -> JoinAck {
    match h.acked(conn, req) {
        Ack::Join(a) => a,
        other => panic!("not a join ack: {other:?}"),
    }
}

#[test]
fn two_users_chat() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    let j1 = h.join(1, "general");
    let j2 = h.join(2, "general");
    assert_eq!(
        join_ack(&h, 2, j2).members,
        vec![user("alice"), user("bob")]
    );
    assert_eq!(join_ack(&h, 1, j1).members, vec![user("alice")]);
    let s1 = h.say(1, "general", "a-1", "hi bob");
    let s2 = h.say(2, "general", "b-1", "hi alice");
    assert_eq!(send_ack(&h, 1, s1).seq, Seq(1));
    assert_eq!(send_ack(&h, 2, s2).seq, Seq(2));
    // Both see both messages, each exactly once, the sender included.
    assert_eq!(h.event_seqs(1), vec![1, 2]);
    assert_eq!(h.event_seqs(2), vec![1, 2]);
    assert_eq!(h.server.pending_store_ops(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn late_joiner_gets_backlog() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    for i in 1..=5 {
        h.say(1, "general", &format!("a-{i}"), &format!("message {i}"));
    }
    h.connect(3, "carol");
    // Carol knows the epoch from an earlier visit and had read up to #2.
    let j = h.join_at(3, "general", Some(Epoch(1)), Some(2));
    let ack = join_ack(&h, 3, j);
    assert!(ack.recovered);
    assert_eq!(
        ack.events.iter().map(|e| e.seq().0).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    // History pages the rest.
    let hreq = h.history(3, "general", None, Some(2));
    let Ack::History(page) = h.acked(3, hreq) else {
        panic!()
    };
    assert_eq!(
        page.events.iter().map(|e| e.seq().0).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(page.more);
    assert_eq!((page.epoch, page.head_seq), (Epoch(1), Seq(5)));
    // Alice saw carol arrive; carol did not get her own presence:join.
    assert!(
        h.inbox(1)
            .iter()
            .any(|f| matches!(f, ServerFrame::PresenceJoin(p) if p.user_id == user("carol")))
    );
    assert!(
        !h.inbox(3)
            .iter()
            .any(|f| matches!(f, ServerFrame::PresenceJoin(_)))
    );
    assert_snapshot!(h.trace());
}

#[test]
fn reconnect_recovers_exactly_the_missed_events() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.join(1, "general");
    let j = h.join(2, "general");
    let first = join_ack(&h, 2, j);
    h.say(1, "general", "a-1", "one");
    let last_seen = *h.event_seqs(2).last().unwrap();
    h.disconnect(2);
    h.say(1, "general", "a-2", "two");
    h.say(1, "general", "a-3", "three");
    h.connect(3, "bob");
    let j = h.join_at(3, "general", Some(first.epoch), Some(last_seen));
    let ack = join_ack(&h, 3, j);
    assert!(ack.recovered);
    assert_eq!(
        ack.events.iter().map(|e| e.seq().0).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(ack.head_seq, Seq(3));
    // The quick reconnect did not flap bob's presence.
    assert!(
        !h.inbox(1)
            .iter()
            .any(|f| matches!(f, ServerFrame::PresenceLeave(_)))
    );
    assert_snapshot!(h.trace());
}

#[test]
fn retried_send_is_stored_and_broadcast_once() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    h.note("first attempt, then a retry while it is in flight");
    let first = h.say(1, "general", "a-1", "hello");
    let retry = h.say(1, "general", "a-1", "hello");
    assert_eq!(h.held(), 1, "the retry joined the first attempt");
    h.run_store();
    h.deliver(false);
    h.mode = StoreMode::Immediate;
    assert_eq!(send_ack(&h, 1, first), send_ack(&h, 1, retry));
    h.note("a retry after the ack, then one from a new connection");
    let again = h.say(1, "general", "a-1", "hello");
    assert_eq!(send_ack(&h, 1, again), send_ack(&h, 1, first));
    h.connect(3, "alice");
    h.join(3, "general");
    let other_conn = h.say(3, "general", "a-1", "hello");
    assert_eq!(send_ack(&h, 3, other_conn), send_ack(&h, 1, first));
    assert_eq!(h.store.events(&ch("general")).count(), 1);
    assert_eq!(h.event_seqs(2), vec![1], "bob saw one broadcast");
    for r in [first, retry, again] {
        assert_eq!(h.replies(1, r), 1, "exactly one answer per request");
    }
    assert_snapshot!(h.trace());
}

#[test]
fn same_client_msg_id_from_another_user_is_a_new_message() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    let a = h.say(1, "general", "same", "from alice");
    let b = h.say(2, "general", "same", "from bob");
    assert_eq!(send_ack(&h, 1, a).seq, Seq(1));
    assert_eq!(send_ack(&h, 2, b).seq, Seq(2));
    assert_ne!(send_ack(&h, 1, a).message_id, send_ack(&h, 2, b).message_id);
    assert_snapshot!(h.trace());
}

#[test]
fn unauthorized_join_is_forbidden() {
    let mut h = Harness::with(
        ServerConfig::default(),
        MemStoreConfig::default(),
        PrivateChannels,
    );
    h.connect(1, "alice");
    h.connect(2, "bob");
    let own = h.join(1, "private:alice");
    let other = h.join(2, "private:alice");
    let open = h.join(2, "general");
    assert!(join_ack(&h, 1, own).members == vec![user("alice")]);
    assert_eq!(h.nacked(2, other), ErrorCode::Forbidden);
    join_ack(&h, 2, open);
    assert!(h.server.members(&ch("private:alice")) == vec![crate::server::ConnId(1)]);
    // Bob's connection still works.
    let s = h.say(2, "general", "b-1", "fine");
    send_ack(&h, 2, s);
    assert_snapshot!(h.trace());
}

#[test]
fn oversized_message_is_too_large_and_consumes_no_seq() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    // A JSON string of n characters encodes to n + 2 bytes.
    let exact = Body::text("x".repeat(65_536 - 2));
    let over = Body::text("x".repeat(65_536 - 1));
    assert_eq!((exact.encoded_len(), over.encoded_len()), (65_536, 65_537));
    let ok = h.post(1, "general", "a-1", exact);
    let big = h.post(1, "general", "a-2", over);
    let next = h.say(1, "general", "a-3", "small");
    assert_eq!(send_ack(&h, 1, ok).seq, Seq(1));
    assert_eq!(h.nacked(1, big), ErrorCode::TooLarge);
    assert_eq!(send_ack(&h, 1, next).seq, Seq(2));
    assert_snapshot!(h.trace());
}

#[test]
fn send_before_join_is_not_joined() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    let s = h.say(1, "general", "a-1", "too early");
    assert_eq!(h.nacked(1, s), ErrorCode::NotJoined);
    let hist = h.history(1, "general", None, None);
    assert_eq!(h.nacked(1, hist), ErrorCode::NotJoined);
    let rd = h.read(1, "general", 0);
    assert_eq!(h.nacked(1, rd), ErrorCode::NotJoined);
    let id = MessageId::new("m1.1").unwrap();
    let upd = h.update(1, "general", &id, "x");
    assert_eq!(h.nacked(1, upd), ErrorCode::NotJoined);
    let lv = h.leave(1, "general");
    assert_eq!(
        h.acked(1, lv),
        Ack::Leave,
        "leave is ok even when not joined"
    );
    h.join(1, "general");
    let s = h.say(1, "general", "a-1", "now");
    assert_eq!(
        send_ack(&h, 1, s).seq,
        Seq(1),
        "the refused send consumed nothing"
    );
    assert_snapshot!(h.trace());
}

#[test]
fn flood_hits_the_rate_limit_and_the_connection_keeps_working() {
    let config = ServerConfig {
        messages_per_sec: 2,
        messages_burst: 3,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.connect(1, "alice");
    h.join(1, "general");
    let reqs: Vec<_> = (0..5)
        .map(|i| h.say(1, "general", &format!("a-{i}"), "spam"))
        .collect();
    let codes: Vec<Option<ErrorCode>> = reqs
        .iter()
        .map(|r| match h.reply(1, *r) {
            Some(ServerFrame::Nack { error, .. }) => Some(error.code),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            None,
            None,
            None,
            Some(ErrorCode::RateLimited),
            Some(ErrorCode::RateLimited)
        ]
    );
    // Other requests still work at once; sends work again after a pause.
    let p = h.frame_ping(1);
    assert!(h.inbox(1).contains(&ServerFrame::Pong { nonce: p }));
    h.advance(500);
    let later = h.say(1, "general", "a-3", "retry");
    assert_eq!(send_ack(&h, 1, later).seq, Seq(4));
    assert_snapshot!(h.trace());
}

impl<P: crate::server::AccessPolicy> Harness<P> {
    fn frame_ping(&mut self, conn: u64) -> u64 {
        self.frame(conn, crate::wire::ClientFrame::Ping { nonce: 42 });
        42
    }
}
