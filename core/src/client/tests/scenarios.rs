//! One named scenario per behaviour, each checked by assertions and by a
//! reviewed snapshot of its trace.

use insta::assert_snapshot;

use super::harness::{Harness, Peer, ch, join_ack, msg, nack, user};
use crate::client::{
    ClientConfig, ClientEvent, ConnectionState, EntryId, FailReason, Heartbeat, Outcome,
    ProtocolError, SubscriptionState, TransportEvent,
};
use crate::ids::{Epoch, MessageId, Seq};
use crate::wire::{
    Ack, Body, ClientFrame, DecodeError, ErrorBody, ErrorCode, HistoryAck, ReqId, SendAck,
    ServerFrame, TypingNotice, decode_server,
};

/// Connected and subscribed to `general` (empty log, epoch 1), scripted.
fn joined() -> Harness {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let req = h.take_req();
    h.reply(join_ack(req, "general", 1, 0, vec![], false));
    h
}

fn send_ack(req: ReqId, seq: u64) -> ServerFrame {
    ServerFrame::Ack {
        req,
        body: Ack::Send(SendAck {
            message_id: MessageId::new(format!("m{seq}")).unwrap(),
            seq: Seq(seq),
            ts: 0,
        }),
    }
}

fn state_names(h: &Harness) -> Vec<&'static str> {
    h.events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::State(s) => Some(s.name()),
            _ => None,
        })
        .collect()
}

#[test]
fn two_concurrent_connects_open_one_transport() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.act("connect again while connecting", |c, now| c.connect(now));
    h.opened();
    h.act("connect again while shaking hands", |c, now| c.connect(now));
    h.take();
    h.reply(ServerFrame::Welcome {
        version: 1,
        user_id: user("alice"),
    });
    h.act("connect again while connected", |c, now| c.connect(now));
    assert_eq!(h.opens, vec![1]);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { generation: 1, .. }
    ));
    assert_snapshot!(h.trace());
}

#[test]
fn failed_connect_is_retried_not_cached() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.input(TransportEvent::Closed {
        generation: 1,
        reason: "connection refused".into(),
    });
    assert!(matches!(
        h.client.state(),
        ConnectionState::Reconnecting { attempt: 2, .. }
    ));
    h.advance(1_000);
    assert_eq!(h.opens, vec![1, 2], "the retry opens a fresh transport");
    h.handshake();
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { generation: 2, .. }
    ));
    assert_snapshot!(h.trace());
}

#[test]
fn connect_times_out_and_retries() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.opened();
    h.take();
    h.note("the server never answers the hello");
    h.advance(10_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Reconnecting { attempt: 2, .. }
    ));
    h.note("a late welcome on the abandoned transport is stale");
    h.input(TransportEvent::Frame {
        generation: 1,
        frame: ServerFrame::Welcome {
            version: 1,
            user_id: user("alice"),
        },
    });
    assert!(matches!(
        h.client.state(),
        ConnectionState::Reconnecting { .. }
    ));
    h.advance(1_000);
    assert_eq!(h.opens, vec![1, 2]);
    assert_snapshot!(h.trace());
}

#[test]
fn lost_join_reply_is_retried_and_ends_subscribed_once() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let first = h.take_req();
    h.note("the join reply is lost");
    h.advance(5_000);
    h.advance(1_000);
    let second = h.take_req();
    assert_ne!(first, second);
    h.reply(join_ack(second, "general", 1, 0, vec![], false));
    h.note("the first attempt's reply turns up late: ignored");
    h.reply(join_ack(first, "general", 1, 0, vec![], false));
    let subscribed = h
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Subscription {
                    state: SubscriptionState::Subscribed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(subscribed, 1);
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, ClientEvent::Protocol(_)))
    );
    assert_eq!(
        h.client.channel(&ch("general")).unwrap().subscription,
        SubscriptionState::Subscribed
    );
    assert_snapshot!(h.trace());
}

#[test]
fn subscribe_then_unsubscribe_before_the_reply_converges_to_unsubscribed() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    h.act("unsubscribe general", |c, now| {
        c.unsubscribe(now, ch("general"))
    });
    let join = h.take_req();
    h.reply(join_ack(join, "general", 1, 0, vec![], false));
    let leave = h.take();
    assert!(matches!(leave, ClientFrame::Leave { .. }), "{leave:?}");
    h.reply(ServerFrame::Ack {
        req: leave.req().unwrap(),
        body: Ack::Leave,
    });
    assert!(
        h.client.channel(&ch("general")).is_none(),
        "forgotten once left"
    );
    assert_eq!(h.client.pending_requests(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn unsubscribe_then_subscribe_before_the_reply_converges_to_subscribed() {
    let mut h = joined();
    h.act("unsubscribe general", |c, now| {
        c.unsubscribe(now, ch("general"))
    });
    h.act("subscribe general again", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let leave = h.take_req();
    h.reply(ServerFrame::Ack {
        req: leave,
        body: Ack::Leave,
    });
    let join = h.take_req();
    h.reply(join_ack(join, "general", 1, 0, vec![], false));
    assert_eq!(
        h.client.channel(&ch("general")).unwrap().subscription,
        SubscriptionState::Subscribed
    );
    assert_snapshot!(h.trace());
}

#[test]
fn two_sends_in_the_same_millisecond_get_distinct_ids() {
    let mut h = joined();
    let a = h.act("send a", |c, now| {
        c.send(now, ch("general"), Body::text("a")).unwrap()
    });
    let b = h.act("send b", |c, now| {
        c.send(now, ch("general"), Body::text("b")).unwrap()
    });
    assert_ne!(a, b);
    let mut other = Harness::scripted();
    other.client = crate::client::Client::new(ClientConfig::default(), "t".into(), 8);
    other.act("subscribe", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let c = other.act("send on another device", |c, now| {
        c.send(now, ch("general"), Body::text("a")).unwrap()
    });
    assert_ne!(a, c, "another instance draws another prefix");
    assert_snapshot!(h.trace());
}

#[test]
fn ack_then_broadcast_of_own_message_gives_one_entry() {
    let mut h = joined();
    let id = h.act("send hi", |c, now| {
        c.send(now, ch("general"), Body::text("hi")).unwrap()
    });
    let req = h.take_req();
    h.reply(send_ack(req, 1));
    h.reply(ServerFrame::from(msg(
        "general",
        1,
        "alice",
        id.as_str(),
        "hi",
    )));
    assert_eq!(h.outcomes().len(), 1);
    assert_eq!(h.delivered("general"), vec![1]);
    assert_eq!(h.client.outbox().count(), 0);
    assert_snapshot!(h.trace());
}

/// Found by the lab (seed 212, streams): the broadcast resolved the entry,
/// its ack then found nothing to do, and the freed window slot was never
/// used, so the next message waited forever.
#[test]
fn own_broadcast_before_the_ack_frees_the_window_slot() {
    let config = ClientConfig {
        send_window: 1,
        ..ClientConfig::default()
    };
    let mut h = Harness::with(config, super::harness::Peer::Scripted);
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let req = h.take_req();
    h.reply(join_ack(req, "general", 1, 0, vec![], false));
    let first = h.act("send one and two (window of one)", |c, now| {
        let first = c.send(now, ch("general"), Body::text("one")).unwrap();
        c.send(now, ch("general"), Body::text("two")).unwrap();
        first
    });
    let req = h.take_req();
    h.reply(ServerFrame::from(msg(
        "general",
        1,
        "alice",
        first.as_str(),
        "one",
    )));
    assert!(
        matches!(h.take(), ClientFrame::Send { .. }),
        "the second message goes out as soon as the first is known stored"
    );
    h.reply(send_ack(req, 1));
    assert_snapshot!(h.trace());
}

/// Found by the lab (seed 106, a 22-frame stream buffer): a burst bigger
/// than the transport could buffer killed the connection, and the resend of
/// the same burst after every reconnect killed it again, forever.
#[test]
fn a_transport_lost_with_sends_in_flight_halves_the_window() {
    let config = ClientConfig {
        send_window: 4,
        ..ClientConfig::default()
    };
    let mut h = Harness::with(config, Peer::Scripted);
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let req = h.take_req();
    h.reply(join_ack(req, "general", 1, 0, vec![], false));
    h.act("send six", |c, now| {
        for i in 0..6 {
            c.send(now, ch("general"), Body::text(format!("m{i}")))
                .unwrap();
        }
    });
    let sent = std::iter::from_fn(|| h.sent.pop_front()).count();
    assert_eq!(sent, 4, "a full window goes out");
    let join = h.reconnect().req().unwrap();
    h.reply(join_ack(join, "general", 1, 0, vec![], true));
    let resent: Vec<ReqId> = std::iter::from_fn(|| h.sent.pop_front())
        .filter_map(|f| {
            matches!(f, ClientFrame::Send { .. })
                .then(|| f.req())
                .flatten()
        })
        .collect();
    assert_eq!(resent.len(), 2, "half the window after the loss");
    h.reply(send_ack(resent[0], 1));
    let more = std::iter::from_fn(|| h.sent.pop_front()).count();
    assert_eq!(more, 2, "an ack frees a slot and grows the window by one");
    assert_snapshot!(h.trace());
}

#[test]
fn broadcast_then_ack_of_own_message_gives_one_entry() {
    let mut h = joined();
    let id = h.act("send hi", |c, now| {
        c.send(now, ch("general"), Body::text("hi")).unwrap()
    });
    let req = h.take_req();
    h.reply(ServerFrame::from(msg(
        "general",
        1,
        "alice",
        id.as_str(),
        "hi",
    )));
    h.reply(send_ack(req, 1));
    assert_eq!(h.outcomes().len(), 1);
    assert_eq!(h.delivered("general"), vec![1]);
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, ClientEvent::Protocol(_)))
    );
    assert_snapshot!(h.trace());
}

#[test]
fn messages_sent_offline_go_out_in_order_after_reconnect() {
    let mut h = Harness::fake();
    h.act("connect", |c, now| c.connect(now));
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    h.note("the network goes away");
    h.net_up = false;
    h.drop_transport();
    for text in ["one", "two", "three"] {
        h.act(&format!("send {text}"), |c, now| {
            c.send(now, ch("general"), Body::text(text)).unwrap()
        });
    }
    h.advance(3_000);
    h.note("the network is back");
    h.net_up = true;
    h.advance(5_000);
    let bodies: Vec<String> = h
        .server()
        .log(&ch("general"))
        .iter()
        .map(|e| match e {
            crate::wire::LogEvent::Message(m) => m.body.as_ref().and_then(Body::as_text).unwrap(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(bodies, ["one", "two", "three"]);
    assert_eq!(h.outcomes().len(), 3);
    assert_eq!(h.delivered("general"), vec![1, 2, 3]);
    assert_snapshot!(h.trace());
}

#[test]
fn events_broadcast_during_a_disconnect_are_recovered_without_gap_or_duplicate() {
    let mut h = Harness::fake();
    h.act("connect", |c, now| c.connect(now));
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let live = h
        .server()
        .post(&ch("general"), &user("bob"), Body::text("before"))
        .unwrap();
    h.reply(live);
    h.note("the transport drops; bob keeps talking");
    h.drop_transport();
    for text in ["during 1", "during 2"] {
        assert!(
            h.server()
                .post(&ch("general"), &user("bob"), Body::text(text))
                .is_none()
        );
    }
    h.advance(2_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { .. }
    ));
    assert_eq!(h.delivered("general"), vec![1, 2, 3]);
    assert_snapshot!(h.trace());
}

#[test]
fn recovery_works_when_the_channel_had_no_events_before() {
    let mut h = Harness::fake();
    h.act("connect", |c, now| c.connect(now));
    h.act("subscribe empty channel", |c, now| {
        c.subscribe(now, ch("quiet")).unwrap()
    });
    assert_eq!(
        h.client.channel(&ch("quiet")).unwrap().epoch,
        Some(Epoch(1))
    );
    h.drop_transport();
    assert!(
        h.server()
            .post(&ch("quiet"), &user("bob"), Body::text("first ever"))
            .is_none()
    );
    h.advance(2_000);
    assert_eq!(h.delivered("quiet"), vec![1]);
    assert_snapshot!(h.trace());
}

#[test]
fn out_of_order_arrivals_are_buffered_and_delivered_in_order() {
    let mut h = joined();
    h.reply(ServerFrame::from(msg("general", 2, "bob", "b2", "second")));
    assert_eq!(h.client.channel(&ch("general")).unwrap().buffered, 1);
    h.reply(ServerFrame::from(msg("general", 1, "bob", "b1", "first")));
    h.reply(ServerFrame::from(msg(
        "general",
        2,
        "bob",
        "b2",
        "second (duplicate)",
    )));
    assert_eq!(h.delivered("general"), vec![1, 2]);
    assert_snapshot!(h.trace());
}

#[test]
fn a_gap_triggers_a_history_request() {
    let mut h = joined();
    h.reply(ServerFrame::from(msg("general", 3, "bob", "b3", "third")));
    let history = h.take();
    assert!(
        matches!(
            history,
            ClientFrame::History {
                after: Some(Seq(0)),
                ..
            }
        ),
        "{history:?}"
    );
    h.reply(ServerFrame::Ack {
        req: history.req().unwrap(),
        body: Ack::History(HistoryAck {
            channel_id: ch("general"),
            epoch: Epoch(1),
            events: vec![
                msg("general", 1, "bob", "b1", "first"),
                msg("general", 2, "bob", "b2", "second"),
            ],
            head_seq: Seq(3),
            more: false,
        }),
    });
    assert_eq!(h.delivered("general"), vec![1, 2, 3]);
    assert!(h.sent.is_empty());
    assert_snapshot!(h.trace());
}

#[test]
fn events_the_server_no_longer_has_are_reported_as_truncated() {
    let mut h = joined();
    h.reply(ServerFrame::from(msg("general", 5, "bob", "b5", "fifth")));
    let req = h.take_req();
    h.reply(ServerFrame::Ack {
        req,
        body: Ack::History(HistoryAck {
            channel_id: ch("general"),
            epoch: Epoch(1),
            events: vec![
                msg("general", 3, "bob", "b3", "third"),
                msg("general", 4, "bob", "b4", "fourth"),
            ],
            head_seq: Seq(5),
            more: false,
        }),
    });
    assert_eq!(h.delivered("general"), vec![3, 4, 5]);
    assert!(h.events.iter().any(|e| matches!(
        e,
        ClientEvent::Truncated {
            from: Seq(1),
            to: Seq(2),
            ..
        }
    )));
    assert_snapshot!(h.trace());
}

#[test]
fn a_stale_join_reply_is_ignored() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.act("subscribe general", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    let first = h.take_req();
    h.advance(6_000);
    let second = h.take_req();
    h.note("the stale attempt's reply claims another epoch: ignored");
    h.reply(join_ack(first, "general", 9, 4, vec![], false));
    assert_eq!(
        h.client.channel(&ch("general")).unwrap().subscription,
        SubscriptionState::Subscribing { attempt: 2 }
    );
    h.reply(join_ack(second, "general", 1, 0, vec![], false));
    assert_eq!(
        h.client.channel(&ch("general")).unwrap().epoch,
        Some(Epoch(1))
    );
    assert_snapshot!(h.trace());
}

#[test]
fn an_epoch_change_is_reported() {
    let mut h = joined();
    h.reply(ServerFrame::from(msg("general", 1, "bob", "b1", "old log")));
    let join = h.reconnect();
    assert!(
        matches!(
            join,
            ClientFrame::Join {
                epoch: Some(Epoch(1)),
                since: Some(Seq(1)),
                ..
            }
        ),
        "{join:?}"
    );
    h.note("the store was wiped: a new epoch with one event");
    h.reply(join_ack(
        join.req().unwrap(),
        "general",
        2,
        1,
        vec![msg("general", 1, "bob", "n1", "new log")],
        false,
    ));
    assert!(h.events.iter().any(|e| matches!(
        e,
        ClientEvent::Reset {
            epoch: Epoch(2),
            ..
        }
    )));
    assert_eq!(h.delivered("general"), vec![1, 1]);
    assert_snapshot!(h.trace());
}

#[test]
fn remote_typing_expires_after_its_ttl() {
    let mut h = joined();
    let typing = |active| {
        ServerFrame::Typing(TypingNotice {
            channel_id: ch("general"),
            user_id: user("bob"),
            active,
        })
    };
    h.reply(typing(true));
    h.advance(3_000);
    h.reply(typing(true));
    h.advance(4_999);
    assert_eq!(
        h.client.channel(&ch("general")).unwrap().typing,
        vec![user("bob")]
    );
    h.advance(1);
    assert!(h.client.channel(&ch("general")).unwrap().typing.is_empty());
    h.act("our own typing, twice in a row (one frame)", |c, now| {
        c.set_typing(now, ch("general"), true);
        c.set_typing(now, ch("general"), true);
    });
    h.advance(5_000);
    assert_snapshot!(h.trace());
}

#[test]
fn disconnect_and_close_leave_no_timer_armed() {
    let mut h = joined();
    h.act("send and type", |c, now| {
        c.send(now, ch("general"), Body::text("x")).unwrap();
        c.set_typing(now, ch("general"), true);
    });
    h.reply(ServerFrame::Typing(TypingNotice {
        channel_id: ch("general"),
        user_id: user("bob"),
        active: true,
    }));
    h.drop_transport();
    assert_eq!(h.client.pending_requests(), 0);
    assert_eq!(h.client.armed_timers(), 1, "only the reconnect timer");
    h.act("close", |c, now| c.close(now));
    assert_eq!(h.client.poll_timeout(), None);
    assert_eq!(h.client.armed_timers(), 0);
    assert_eq!(h.client.pending_requests(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn a_refused_handshake_ends_in_failed() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.opened();
    h.take();
    h.reply(ServerFrame::Refused {
        error: ErrorBody::new(ErrorCode::Unauthorized, "bad token"),
    });
    assert!(matches!(
        h.client.state(),
        ConnectionState::Failed {
            reason: FailReason::Refused {
                code: ErrorCode::Unauthorized,
                ..
            }
        }
    ));
    assert_eq!(h.client.poll_timeout(), None);
    assert_snapshot!(h.trace());
}

#[test]
fn heartbeat_detects_a_half_open_transport() {
    let config = ClientConfig {
        heartbeat: Some(Heartbeat::default()),
        ..ClientConfig::default()
    };
    let mut h = Harness::with(config, Peer::Scripted);
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.advance(15_000);
    let ping = h.take();
    assert!(matches!(ping, ClientFrame::Ping { nonce: 1 }));
    h.reply(ServerFrame::Pong { nonce: 1 });
    h.note("the transport goes silent without closing");
    h.advance(15_000);
    h.take();
    h.advance(10_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Reconnecting { .. }
    ));
    assert_eq!(state_names(&h), ["connecting", "connected", "reconnecting"]);
    assert_snapshot!(h.trace());
}

#[test]
fn a_restored_entry_for_a_channel_not_wanted_fails_at_once() {
    let mut h = Harness::scripted();
    h.act("subscribe general and send", |c, now| {
        c.subscribe(now, ch("general")).unwrap();
        c.send(now, ch("general"), Body::text("one")).unwrap();
    });
    let snapshot = h.client.export_outbox();
    h.note("the app restarts and no longer wants general (found by the lab: seed 90)");
    let mut h = Harness::scripted();
    h.act("restore without subscribing", |c, now| {
        c.restore_outbox(now, snapshot).unwrap();
    });
    assert_eq!(h.client.outbox().count(), 0, "nothing may wait forever");
    assert!(h.events.iter().any(|e| matches!(
        e,
        ClientEvent::Outcome {
            outcome: Outcome::Failed(crate::client::SendFailure::Unsubscribed),
            ..
        }
    )));
    assert_snapshot!(h.trace());
}

#[test]
fn an_exported_outbox_is_resent_after_restore() {
    let mut h = Harness::scripted();
    h.act("subscribe general (offline)", |c, now| {
        c.subscribe(now, ch("general")).unwrap()
    });
    h.act("send two messages", |c, now| {
        c.send(now, ch("general"), Body::text("one")).unwrap();
        c.send(now, ch("general"), Body::text("two")).unwrap();
    });
    let snapshot = h.client.export_outbox();
    let json = serde_json::to_string(&snapshot).unwrap();
    h.note("the app restarts");
    let mut h = Harness::fake();
    let snapshot = serde_json::from_str(&json).unwrap();
    h.act("subscribe, restore, connect", |c, now| {
        c.subscribe(now, ch("general")).unwrap();
        c.restore_outbox(now, snapshot).unwrap();
        c.connect(now);
    });
    assert_eq!(h.server().log(&ch("general")).len(), 2);
    let ids: Vec<EntryId> = h
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Outcome {
                id,
                outcome: Outcome::Sent { .. },
                ..
            } => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_snapshot!(format!("{json}\n{}", h.trace()));
}

#[test]
fn garbage_and_unexpected_frames_give_typed_errors_and_the_machine_keeps_working() {
    let mut h = joined();
    let error = decode_server(b"{\"type\":\"warp\"}").unwrap_err();
    h.input(TransportEvent::Undecodable {
        generation: 1,
        error: error.clone(),
    });
    h.reply(ServerFrame::Ack {
        req: ReqId(999),
        body: Ack::Leave,
    });
    h.reply(ServerFrame::Welcome {
        version: 1,
        user_id: user("mallory"),
    });
    h.reply(ServerFrame::from(msg("nowhere", 1, "bob", "x", "?")));
    let stray = h.take();
    assert!(
        matches!(&stray, ClientFrame::Leave { channel_id, .. } if channel_id.as_str() == "nowhere"),
        "events of a channel we do not want get a leave: {stray:?}"
    );
    h.reply(ServerFrame::Ack {
        req: stray.req().unwrap(),
        body: Ack::Leave,
    });
    h.act("send hi", |c, now| {
        c.send(now, ch("general"), Body::text("hi")).unwrap()
    });
    let req = h.take_req();
    h.reply(ServerFrame::Ack {
        req,
        body: Ack::Leave,
    });
    let errors: Vec<&ProtocolError> = h
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Protocol(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(matches!(
        errors[0],
        ProtocolError::Undecodable(DecodeError::Malformed(_) | DecodeError::Invalid { .. })
    ));
    assert!(matches!(
        errors[1],
        ProtocolError::UnknownRequest(ReqId(999))
    ));
    assert!(matches!(
        errors[2],
        ProtocolError::UnexpectedFrame {
            frame: "welcome",
            ..
        }
    ));
    assert!(matches!(errors[3], ProtocolError::UnknownChannel(_)));
    assert!(matches!(
        errors[4],
        ProtocolError::WrongAckKind {
            expected: "send",
            got: "leave",
            ..
        }
    ));
    h.note("the send is retried and still succeeds");
    let retry = h.take_req();
    h.reply(send_ack(retry, 1));
    assert!(matches!(h.outcomes()[..], [(_, Outcome::Sent { .. })]));
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { .. }
    ));
    assert_snapshot!(h.trace());
}

#[test]
fn a_forbidden_join_fails_the_channel_and_its_sends() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.handshake();
    h.act("subscribe and send", |c, now| {
        c.subscribe(now, ch("private")).unwrap();
        c.send(now, ch("private"), Body::text("secret")).unwrap();
    });
    let req = h.take_req();
    h.reply(nack(req, ErrorCode::Forbidden));
    assert_eq!(
        h.client.channel(&ch("private")).unwrap().subscription,
        SubscriptionState::Failed {
            code: ErrorCode::Forbidden
        }
    );
    assert!(matches!(h.outcomes()[..], [(_, Outcome::Failed(_))]));
    assert_eq!(h.client.armed_timers(), 0);
    assert_snapshot!(h.trace());
}
