//! The connection state chart: `ConnectionState::may_follow` is what the
//! machine does (every edge is taken, nothing else ever is) and what
//! `docs/PROTOCOL.md` draws.

use std::collections::BTreeSet;

use super::harness::{Harness, Peer, user};
use crate::Instant;
use crate::client::{
    ClientConfig, ClientEvent, ConnectionState, FailReason, FakeServer, ProtocolError,
};
use crate::wire::{ErrorBody, ErrorCode, ServerFrame};

/// The protocol page, whose "Connection states" chart must be this one.
const PROTOCOL_MD: &str = include_str!("../../../../docs/PROTOCOL.md");

/// One state of each kind, to ask `may_follow` about every pair.
fn one_of_each() -> Vec<ConnectionState> {
    let t = Instant::from_millis(1);
    vec![
        ConnectionState::Idle,
        ConnectionState::Connecting {
            attempt: 1,
            generation: 1,
        },
        ConnectionState::Connected {
            generation: 1,
            user_id: user("alice"),
        },
        ConnectionState::Reconnecting {
            attempt: 2,
            retry_at: t,
        },
        ConnectionState::Suspended { retry_at: t },
        ConnectionState::Closed,
        ConnectionState::Failed {
            reason: FailReason::AttemptsExhausted { attempts: 1 },
        },
    ]
}

type Edges = BTreeSet<(&'static str, &'static str)>;

/// Every edge `may_follow` allows, by state names.
fn chart() -> Edges {
    let states = one_of_each();
    let mut edges = Edges::new();
    for from in &states {
        for to in &states {
            if to.may_follow(from) {
                edges.insert((from.name(), to.name()));
            }
        }
    }
    edges
}

/// The edges of the mermaid chart under `### Connection states`.
fn documented() -> BTreeSet<(String, String)> {
    let section = PROTOCOL_MD
        .split("### Connection states")
        .nth(1)
        .expect("PROTOCOL.md has a Connection states section");
    let block = section
        .split("```mermaid")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the section has a mermaid chart");
    block
        .lines()
        .filter_map(|line| {
            let (from, rest) = line.split_once("-->")?;
            let to = rest.split(':').next()?;
            let (from, to) = (from.trim(), to.trim());
            (from != "[*]" && to != "[*]").then(|| (from.to_lowercase(), to.to_lowercase()))
        })
        .collect()
}

#[test]
fn the_protocol_page_draws_exactly_the_machine_s_chart() {
    let ours: BTreeSet<(String, String)> = chart()
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    let doc = documented();
    let missing: Vec<_> = ours.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&ours).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/PROTOCOL.md's chart differs from ConnectionState::may_follow: \
         missing {missing:?}, not in the machine {extra:?}"
    );
}

/// The transitions a harness saw, checked against the chart on the way.
fn walk(h: &Harness, from: &mut ConnectionState, taken: &mut Edges) {
    for e in &h.events {
        if let ClientEvent::State(to) = e {
            assert!(
                to.may_follow(from),
                "{} -> {} is not in the chart\n{}",
                from.name(),
                to.name(),
                h.trace()
            );
            taken.insert((from.name(), to.name()));
            *from = to.clone();
        }
    }
}

fn limited(attempts: u32) -> Harness {
    let config = ClientConfig {
        max_connect_attempts: Some(attempts),
        ..ClientConfig::default()
    };
    Harness::with(config, Peer::Fake(FakeServer::new(user("alice"))))
}

#[test]
fn the_machine_takes_every_edge_of_the_chart_and_no_other() {
    let mut taken = Edges::new();

    // idle -> closed.
    let mut h = Harness::fake();
    h.act("close", |c, now| c.close(now));
    walk(&h, &mut ConnectionState::Idle, &mut taken);

    // The long life: idle -> connecting -> reconnecting -> connecting ->
    // suspended -> connecting -> connected -> reconnecting -> connecting
    // -> connected -> closed.
    let mut h = Harness::fake();
    h.net_up = false;
    h.act("connect, offline", |c, now| c.connect(now));
    h.advance(150_000);
    h.net_up = true;
    h.advance(60_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { .. }
    ));
    h.drop_transport();
    h.advance(60_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { .. }
    ));
    h.act("close", |c, now| c.close(now));
    walk(&h, &mut ConnectionState::Idle, &mut taken);

    // Closed from every offline state, and connect() cutting a wait short.
    for (offline_ms, up_again) in [(1_000, false), (150_000, false), (1_000, true)] {
        let mut h = Harness::fake();
        h.net_up = false;
        h.act("connect, offline", |c, now| c.connect(now));
        h.advance(offline_ms);
        if up_again {
            h.act("connect now", |c, now| c.connect(now));
        }
        h.act("close", |c, now| c.close(now));
        walk(&h, &mut ConnectionState::Idle, &mut taken);
    }

    // connecting -> closed: the handshake never answers.
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.opened();
    h.act("close", |c, now| c.close(now));
    walk(&h, &mut ConnectionState::Idle, &mut taken);

    // connecting -> failed (attempts exhausted) -> connecting -> connected;
    // failed -> closed.
    let mut h = limited(2);
    h.net_up = false;
    h.act("connect, offline", |c, now| c.connect(now));
    h.advance(60_000);
    assert!(matches!(h.client.state(), ConnectionState::Failed { .. }));
    h.net_up = true;
    h.act("connect again", |c, now| c.connect(now));
    walk(&h, &mut ConnectionState::Idle, &mut taken);
    let mut h = limited(1);
    h.net_up = false;
    h.act("connect, offline", |c, now| c.connect(now));
    h.act("close", |c, now| c.close(now));
    walk(&h, &mut ConnectionState::Idle, &mut taken);

    // connecting -> failed: the token is refused for good.
    let mut h = Harness::scripted();
    h.act("connect", |c, now| c.connect(now));
    h.opened();
    h.reply(ServerFrame::Refused {
        error: ErrorBody::new(ErrorCode::Unauthorized, "unauthorized"),
    });
    assert!(matches!(h.client.state(), ConnectionState::Failed { .. }));
    walk(&h, &mut ConnectionState::Idle, &mut taken);

    // A lost connection is retried at least once, whatever the config
    // says: connected -> reconnecting even with one attempt allowed and
    // suspension at once.
    let config = ClientConfig {
        max_connect_attempts: Some(1),
        suspend_after: std::time::Duration::ZERO,
        ..ClientConfig::default()
    };
    let mut h = Harness::with(config, Peer::Fake(FakeServer::new(user("alice"))));
    h.act("connect", |c, now| c.connect(now));
    h.drop_transport();
    assert!(matches!(
        h.client.state(),
        ConnectionState::Reconnecting { .. }
    ));
    walk(&h, &mut ConnectionState::Idle, &mut taken);
    assert!(
        !h.events.iter().any(|e| matches!(
            e,
            ClientEvent::Protocol(ProtocolError::UnexpectedFrame { .. })
        )),
        "{}",
        h.trace()
    );

    let chart = chart();
    let never: Vec<_> = chart.difference(&taken).collect();
    assert!(
        never.is_empty(),
        "edges of the chart never taken: {never:?}"
    );
}
