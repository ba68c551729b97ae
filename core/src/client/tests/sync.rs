//! Message sync details: backlog, partial recovery, buffer overflow, edits,
//! presence and read receipts.

use insta::assert_snapshot;

use super::harness::{Harness, Peer, ch, join_ack, msg, user};
use crate::client::{ClientConfig, ClientEvent, EntryId, FakeServer, Outcome};
use crate::ids::{Epoch, MessageId, Seq};
use crate::wire::{Ack, Body, ClientFrame, HistoryAck, PresenceChange, ReadReceipt, ServerFrame};

#[test]
fn the_first_join_loads_the_initial_backlog_then_follows_live() {
    let config = ClientConfig {
        initial_backlog: 3,
        ..ClientConfig::default()
    };
    let mut h = Harness::with(config, Peer::Fake(FakeServer::new(user("alice"))));
    for i in 1..=10 {
        h.server()
            .post(&ch("general"), &user("bob"), Body::text(format!("old {i}")));
    }
    h.act("connect and subscribe", |c, now| {
        c.connect(now);
        c.subscribe(now, ch("general")).unwrap();
    });
    assert_eq!(h.delivered("general"), vec![8, 9, 10]);
    let live = h
        .server()
        .post(&ch("general"), &user("bob"), Body::text("live"))
        .unwrap();
    h.reply(live);
    assert_eq!(h.delivered("general"), vec![8, 9, 10, 11]);
    assert_snapshot!(h.trace());
}

/// The protocol lets live events come before the join's ack, and the ack's
/// head may be below them (the server read the log before they committed
/// but handled their commit first): they are held and delivered after the
/// ack's events, in order, once each. Found by the lab: seed 272, streams.
#[test]
fn live_events_before_the_join_ack_past_its_head_are_delivered_after_it() {
    let mut h = Harness::scripted();
    let req = h.connect_and_subscribe("general");
    h.note("#2 and #3 come live before the ack; the ack's read saw only #2");
    h.reply(ServerFrame::from(msg("general", 3, "bob", "b3", "three")));
    h.reply(ServerFrame::from(msg("general", 2, "bob", "b2", "two")));
    assert_eq!(
        h.delivered("general"),
        Vec::<u64>::new(),
        "nothing before the ack"
    );
    h.reply(join_ack(
        req,
        "general",
        1,
        2,
        vec![
            msg("general", 1, "bob", "b1", "one"),
            msg("general", 2, "bob", "b2", "two"),
        ],
        true,
    ));
    assert_eq!(h.delivered("general"), vec![1, 2, 3]);
    h.reply(ServerFrame::from(msg("general", 4, "bob", "b4", "four")));
    assert_eq!(h.delivered("general"), vec![1, 2, 3, 4]);
    assert_snapshot!(h.trace());
}

#[test]
fn a_partial_recovery_is_filled_from_history() {
    let mut h = Harness::scripted();
    let req = h.connect_and_subscribe("general");
    h.reply(join_ack(req, "general", 1, 1, vec![], false));
    let history = h.take_req();
    h.reply(ServerFrame::Ack {
        req: history,
        body: Ack::History(HistoryAck {
            channel_id: ch("general"),
            epoch: Epoch(1),
            events: vec![msg("general", 1, "bob", "b1", "one")],
            head_seq: Seq(1),
            more: false,
        }),
    });
    let join = h.reconnect();
    assert!(
        matches!(
            join,
            ClientFrame::Join {
                since: Some(Seq(1)),
                ..
            }
        ),
        "{join:?}"
    );
    h.note("too much was missed: the server sends only the latest events");
    h.reply(join_ack(
        join.req().unwrap(),
        "general",
        1,
        4,
        vec![msg("general", 4, "bob", "b4", "four")],
        false,
    ));
    let fill = h.take();
    assert!(
        matches!(
            fill,
            ClientFrame::History {
                after: Some(Seq(1)),
                ..
            }
        ),
        "{fill:?}"
    );
    h.reply(ServerFrame::Ack {
        req: fill.req().unwrap(),
        body: Ack::History(HistoryAck {
            channel_id: ch("general"),
            epoch: Epoch(1),
            events: vec![msg("general", 2, "bob", "b2", "two")],
            head_seq: Seq(4),
            more: true,
        }),
    });
    let next = h.take();
    assert!(
        matches!(
            next,
            ClientFrame::History {
                after: Some(Seq(2)),
                ..
            }
        ),
        "{next:?}"
    );
    h.reply(ServerFrame::Ack {
        req: next.req().unwrap(),
        body: Ack::History(HistoryAck {
            channel_id: ch("general"),
            epoch: Epoch(1),
            events: vec![
                msg("general", 3, "bob", "b3", "three"),
                msg("general", 4, "bob", "b4", "four"),
            ],
            head_seq: Seq(4),
            more: false,
        }),
    });
    assert_eq!(h.delivered("general"), vec![1, 2, 3, 4]);
    assert!(h.sent.is_empty());
    assert_snapshot!(h.trace());
}

#[test]
fn an_overflowing_buffer_is_dropped_and_refetched() {
    let config = ClientConfig {
        inbox_buffer_max: 2,
        ..ClientConfig::default()
    };
    let mut h = Harness::with(config, Peer::Scripted);
    let req = h.connect_and_subscribe("general");
    h.reply(join_ack(req, "general", 1, 0, vec![], false));
    for seq in 2..=4 {
        h.reply(ServerFrame::from(msg(
            "general",
            seq,
            "bob",
            &format!("b{seq}"),
            "early",
        )));
    }
    assert_eq!(
        h.client.channel(&ch("general")).unwrap().buffered,
        0,
        "dropped on overflow"
    );
    let history = h.take_req();
    h.reply(ServerFrame::Ack {
        req: history,
        body: Ack::History(HistoryAck {
            channel_id: ch("general"),
            epoch: Epoch(1),
            events: (1..=4)
                .map(|s| msg("general", s, "bob", &format!("b{s}"), "paged"))
                .collect(),
            head_seq: Seq(4),
            more: false,
        }),
    });
    assert_eq!(h.delivered("general"), vec![1, 2, 3, 4]);
    assert_snapshot!(h.trace());
}

#[test]
fn edits_and_deletes_are_ordered_log_events_with_one_outcome_each() {
    let mut h = Harness::fake();
    h.act("connect and subscribe", |c, now| {
        c.connect(now);
        c.subscribe(now, ch("general")).unwrap();
    });
    h.act("send", |c, now| {
        c.send(now, ch("general"), Body::text("helo")).unwrap()
    });
    let edit = h.act("fix the typo", |c, now| {
        c.update(
            now,
            ch("general"),
            MessageId::new("m1").unwrap(),
            Body::text("hello"),
        )
        .unwrap()
    });
    let delete = h.act("delete it", |c, now| {
        c.delete(now, ch("general"), MessageId::new("m1").unwrap())
            .unwrap()
    });
    assert_eq!(h.delivered("general"), vec![1, 2, 3]);
    let ops: Vec<(EntryId, Outcome)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Outcome {
                id: id @ EntryId::Op(_),
                outcome,
                ..
            } => Some((id.clone(), outcome.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            (EntryId::Op(edit), Outcome::Applied { seq: Seq(2) }),
            (EntryId::Op(delete), Outcome::Applied { seq: Seq(3) }),
        ]
    );
    assert_snapshot!(h.trace());
}

#[test]
fn presence_diffs_and_read_receipts_update_the_view() {
    let mut h = Harness::scripted();
    let req = h.connect_and_subscribe("general");
    h.reply(join_ack(req, "general", 1, 5, vec![], false));
    h.take();
    let presence = |u: &str| PresenceChange {
        channel_id: ch("general"),
        user_id: user(u),
    };
    h.reply(ServerFrame::PresenceJoin(presence("carol")));
    h.reply(ServerFrame::PresenceLeave(presence("bob")));
    assert_eq!(
        h.client.channel(&ch("general")).unwrap().members,
        vec![user("alice"), user("carol")]
    );
    let receipt = |up_to| {
        ServerFrame::Read(ReadReceipt {
            channel_id: ch("general"),
            user_id: user("carol"),
            up_to: Seq(up_to),
        })
    };
    h.reply(receipt(4));
    h.reply(receipt(2));
    h.reply(receipt(5));
    let reads: Vec<u64> = h
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Read { up_to, .. } => Some(up_to.0),
            _ => None,
        })
        .collect();
    assert_eq!(reads, vec![4, 5], "a lower watermark is ignored");
    h.act("mark read up to 3, then 2", |c, now| {
        c.mark_read(now, ch("general"), Seq(3));
        c.mark_read(now, ch("general"), Seq(2));
    });
    assert!(matches!(h.take(), ClientFrame::Read { up_to: Seq(3), .. }));
    assert!(h.sent.is_empty());
    assert_snapshot!(h.trace());
}

#[test]
fn unsubscribing_fails_queued_sends_but_lets_in_flight_ones_finish() {
    let config = ClientConfig {
        send_window: 1,
        ..ClientConfig::default()
    };
    let mut h = Harness::with(config, Peer::Scripted);
    let req = h.connect_and_subscribe("general");
    h.reply(join_ack(req, "general", 1, 0, vec![], false));
    h.act("send two (window of one)", |c, now| {
        c.send(now, ch("general"), Body::text("in flight")).unwrap();
        c.send(now, ch("general"), Body::text("queued")).unwrap();
    });
    let send = h.take_req();
    h.act("unsubscribe", |c, now| c.unsubscribe(now, ch("general")));
    let leave = h.take_req();
    h.reply(ServerFrame::Ack {
        req: send,
        body: Ack::Send(crate::wire::SendAck {
            message_id: MessageId::new("m1").unwrap(),
            seq: Seq(1),
            ts: 0,
        }),
    });
    h.reply(ServerFrame::Ack {
        req: leave,
        body: Ack::Leave,
    });
    let outcomes: Vec<Outcome> = h.outcomes().into_iter().map(|(_, o)| o).collect();
    assert!(
        matches!(outcomes[..], [Outcome::Failed(_), Outcome::Sent { .. }]),
        "{outcomes:?}"
    );
    assert_eq!(h.client.outbox().count(), 0);
    assert_eq!(h.client.armed_timers(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn a_reply_carrying_another_channel_s_event_delivers_only_its_own() {
    // Found by fuzzing (the `client` target, regressions/client/
    // join-ack-event-of-another-channel): a join reply's events were
    // delivered to the requested channel without checking theirs.
    let mut h = Harness::scripted();
    let req = h.connect_and_subscribe("general");
    let events = vec![
        msg("general", 1, "bob", "b1", "mine"),
        msg("secret", 2, "eve", "e1", "slipped in"),
    ];
    h.reply(join_ack(req, "general", 1, 2, events, false));
    assert_eq!(h.delivered("general"), vec![1]);
    assert_eq!(h.delivered("secret"), Vec::<u64>::new());
    let bad: Vec<_> = h
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                crate::client::ClientEvent::Protocol(crate::client::ProtocolError::BadEvent { channel, .. })
                    if *channel == ch("general")
            )
        })
        .collect();
    assert_eq!(bad.len(), 1, "the foreign event is reported once");
}

#[test]
fn a_channel_subscribed_from_a_known_position_gets_exactly_what_followed() {
    let mut h = Harness::fake();
    for i in 1..=10 {
        h.server()
            .post(&ch("general"), &user("bob"), Body::text(format!("m{i}")));
    }
    h.act("connect and subscribe from e1 #7", |c, now| {
        c.connect(now);
        c.subscribe_from(now, ch("general"), Epoch(1), Seq(7))
            .unwrap();
    });
    // Not the fresh backlog (1..=10): only what followed #7.
    assert_eq!(h.delivered("general"), vec![8, 9, 10]);
    h.act("subscribe from an older position: ignored", |c, now| {
        c.subscribe_from(now, ch("general"), Epoch(1), Seq(2))
            .unwrap();
    });
    let live = h
        .server()
        .post(&ch("general"), &user("bob"), Body::text("live"))
        .unwrap();
    h.reply(live);
    assert_eq!(h.delivered("general"), vec![8, 9, 10, 11]);
}

#[test]
fn a_position_from_another_epoch_is_reset_not_trusted() {
    let mut h = Harness::fake();
    for i in 1..=3 {
        h.server()
            .post(&ch("general"), &user("bob"), Body::text(format!("m{i}")));
    }
    h.act("connect and subscribe from e9 #2", |c, now| {
        c.connect(now);
        c.subscribe_from(now, ch("general"), Epoch(9), Seq(2))
            .unwrap();
    });
    assert!(h.events.iter().any(|e| matches!(
        e,
        ClientEvent::Reset { epoch, .. } if *epoch == Epoch(1)
    )));
    assert_eq!(h.delivered("general"), vec![1, 2, 3]);
}

#[test]
fn a_new_token_goes_out_with_the_next_hello() {
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.opened();
    assert!(matches!(h.take(), ClientFrame::Hello { token, .. } if token == "dev:alice"));
    h.drop_transport();
    h.act("refresh the token", |c, _| c.set_token("fresh".into()));
    h.advance(2_000);
    h.opened();
    assert!(matches!(h.take(), ClientFrame::Hello { token, .. } if token == "fresh"));
}
