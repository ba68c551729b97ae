//! Every request kind has a budget per connection and per user, and store
//! reads are served in fair turns: one user's flood delays only that user.

use super::harness::{Harness, StoreMode};
use crate::server::{Open, ServerConfig};
use crate::store::MemStoreConfig;
use crate::wire::{Ack, Body, ClientFrame, ReqId};

fn harness(config: ServerConfig) -> Harness {
    Harness::with(config, MemStoreConfig::default(), Open)
}

/// The codes of `reqs`' answers on `conn` (`ok` for an ack).
fn outcomes(h: &Harness, conn: u64, reqs: &[ReqId]) -> Vec<String> {
    reqs.iter()
        .map(|r| match h.reply(conn, *r) {
            Some(crate::wire::ServerFrame::Ack { .. }) => "ok".to_owned(),
            Some(crate::wire::ServerFrame::Nack { error, .. }) => error.code.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn every_request_kind_is_limited_per_connection() {
    let config = ServerConfig {
        joins_per_sec: 1,
        joins_burst: 2,
        leaves_per_sec: 1,
        leaves_burst: 2,
        history_per_sec: 1,
        history_burst: 2,
        receipts_per_sec: 1,
        receipts_burst: 2,
        typing_per_sec: 1,
        typing_burst: 2,
        ..ServerConfig::default()
    };
    let mut h = harness(config);
    h.connect(1, "alice");
    let joins: Vec<ReqId> = ["a", "b", "c"].iter().map(|c| h.join(1, c)).collect();
    assert_eq!(outcomes(&h, 1, &joins), ["ok", "ok", "rate_limited"]);
    let pages: Vec<ReqId> = (0..3).map(|_| h.history(1, "a", None, None)).collect();
    assert_eq!(outcomes(&h, 1, &pages), ["ok", "ok", "rate_limited"]);
    let receipts: Vec<ReqId> = (0..3).map(|_| h.read(1, "a", 0)).collect();
    assert_eq!(outcomes(&h, 1, &receipts), ["ok", "ok", "rate_limited"]);
    let typing: Vec<ReqId> = (0..3)
        .map(|_| {
            let req = h.req();
            h.frame(
                1,
                ClientFrame::Typing {
                    req: Some(req),
                    channel_id: super::harness::ch("a"),
                    active: true,
                },
            );
            req
        })
        .collect();
    assert_eq!(outcomes(&h, 1, &typing), ["ok", "ok", "rate_limited"]);
    let leaves: Vec<ReqId> = ["a", "b", "c"].iter().map(|c| h.leave(1, c)).collect();
    assert_eq!(outcomes(&h, 1, &leaves), ["ok", "ok", "rate_limited"]);
    // A second later every budget has a token again.
    h.advance(1_000);
    let again = [
        h.join(1, "c"),
        h.history(1, "c", None, None),
        h.leave(1, "c"),
    ];
    assert_eq!(outcomes(&h, 1, &again), ["ok", "ok", "ok"]);
}

#[test]
fn more_connections_do_not_multiply_a_user_s_budget() {
    let config = ServerConfig {
        messages_per_sec: 1,
        messages_burst: 3,
        user_budget_factor: 2,
        ..ServerConfig::default()
    };
    let mut h = harness(config);
    for conn in 1..=4 {
        h.connect(conn, "alice");
        h.join(conn, "general");
    }
    h.connect(9, "bob");
    h.join(9, "general");
    // Alice's user budget is 2 x 3 = 6 messages, however many connections.
    let mut sent = Vec::new();
    for conn in 1..=4 {
        for i in 0..3 {
            let r = h.say(conn, "general", &format!("c{conn}-{i}"), "x");
            sent.push(outcomes(&h, conn, &[r]).remove(0));
        }
    }
    assert_eq!(sent.iter().filter(|o| *o == "ok").count(), 6, "{sent:?}");
    assert!(sent.iter().all(|o| o == "ok" || o == "rate_limited"));
    // Bob's budget is his own.
    let r = h.say(9, "general", "b-1", "y");
    assert_eq!(outcomes(&h, 9, &[r]), ["ok"]);
}

#[test]
fn one_user_s_read_flood_does_not_delay_another_user_s_join() {
    let config = ServerConfig {
        reads_in_flight_per_user: 2,
        reads_in_flight_max: 4,
        ..ServerConfig::default()
    };
    let mut h = harness(config);
    h.connect(1, "flood");
    h.join(1, "general");
    h.mode = StoreMode::Held;
    let flood: Vec<ReqId> = (0..20)
        .map(|_| h.history(1, "general", None, None))
        .collect();
    assert_eq!(
        h.held(),
        2,
        "two of the flooder's reads at the store, the rest wait"
    );
    h.connect(2, "calm");
    let join = h.join(2, "general");
    assert_eq!(
        h.held(),
        3,
        "the calm user's join goes to the store at once"
    );
    h.run_store();
    h.deliver(false);
    assert!(matches!(h.acked(2, join), Ack::Join(_)));
    // The flood is served in turn, every request answered, none refused.
    for _ in 0..100 {
        if h.held() == 0 {
            break;
        }
        h.run_store();
        h.deliver(false);
    }
    assert_eq!(outcomes(&h, 1, &flood), vec!["ok"; 20]);
    assert_eq!(h.server.pending_store_ops(), 0);
}

#[test]
fn a_user_over_its_reply_bytes_waits_then_is_served() {
    // 4 KiB a second, an 8 KiB burst; pages of about 2 KiB each.
    let config = ServerConfig {
        user_reply_bytes_per_sec: 4 * 1_024,
        user_reply_bytes_burst: 8 * 1_024,
        reply_bytes_max: 2_500,
        ..ServerConfig::default()
    };
    let mut h = harness(config);
    h.connect(1, "alice");
    h.join(1, "general");
    let heavy = Body::from_json(&format!("[{}0]", "0,".repeat(1_000))).unwrap();
    for i in 0..5 {
        h.post(1, "general", &format!("a-{i}"), heavy.clone());
    }
    let pages: Vec<ReqId> = (0..8)
        .map(|_| h.history(1, "general", None, None))
        .collect();
    let answered = |h: &Harness| pages.iter().filter(|r| h.reply(1, **r).is_some()).count();
    let first = answered(&h);
    assert!(
        (4..8).contains(&first),
        "the burst serves some at once: {first}"
    );
    assert!(
        h.server.pending_store_ops() > 0,
        "the rest wait, not refused"
    );
    // Paying back the debt takes time; the waiting reads are then served.
    h.advance(5_000);
    assert_eq!(answered(&h), 8);
    assert_eq!(outcomes(&h, 1, &pages), vec!["ok"; 8]);
    // Another user was never held back by alice's debt.
    h.connect(2, "bob");
    let r = h.join(2, "general");
    assert!(matches!(h.acked(2, r), Ack::Join(_)));
}

#[test]
fn waiting_reads_of_a_closed_connection_are_dropped() {
    let config = ServerConfig {
        reads_in_flight_per_user: 1,
        ..ServerConfig::default()
    };
    let mut h = harness(config);
    h.connect(1, "alice");
    h.join(1, "general");
    h.mode = StoreMode::Held;
    for _ in 0..5 {
        h.history(1, "general", None, None);
    }
    assert_eq!(h.server.pending_store_ops(), 5);
    h.disconnect(1);
    assert_eq!(
        h.server.pending_store_ops(),
        1,
        "only the read at the store"
    );
    h.run_store();
    h.deliver(false);
    assert_eq!(h.server.pending_store_ops(), 0);
    assert_eq!(h.server.pending_replies(), 0);
    h.advance(5_000);
    assert_eq!(h.server.armed_timers(), 0, "the presence grace ended");
}
