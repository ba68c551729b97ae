//! Long outages: suspension and giving up.

use insta::assert_snapshot;

use super::harness::{Harness, Peer, ch};
use crate::client::{ClientConfig, ConnectionState, FailReason, FakeServer};

#[test]
fn a_long_outage_suspends_then_recovers_at_the_slower_pace() {
    let mut h = Harness::fake();
    h.act("connect and subscribe", |c, now| {
        c.connect(now);
        c.subscribe(now, ch("general")).unwrap();
    });
    h.note("the network is gone for three minutes");
    h.net_up = false;
    h.drop_transport();
    h.advance(150_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Suspended { .. }
    ));
    h.net_up = true;
    h.advance(60_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { .. }
    ));
    assert!(
        h.server().is_joined(&ch("general")),
        "re-joined after the outage"
    );
    assert_snapshot!(h.trace());
}

#[test]
fn limited_attempts_end_in_failed_and_connect_starts_over() {
    let config = ClientConfig {
        max_connect_attempts: Some(3),
        ..ClientConfig::default()
    };
    let mut h = Harness::with(
        config,
        Peer::Fake(FakeServer::new(super::harness::user("alice"))),
    );
    h.net_up = false;
    h.act("connect", |c, now| c.connect(now));
    h.advance(60_000);
    assert!(matches!(
        h.client.state(),
        ConnectionState::Failed {
            reason: FailReason::AttemptsExhausted { attempts: 3 }
        }
    ));
    assert_eq!(h.client.poll_timeout(), None);
    h.net_up = true;
    h.act("connect again: a failure is not cached", |c, now| {
        c.connect(now)
    });
    assert!(matches!(
        h.client.state(),
        ConnectionState::Connected { .. }
    ));
    assert_snapshot!(h.trace());
}
