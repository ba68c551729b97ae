//! The idle timeout: a half-open connection (the peer vanished without a
//! close) must not keep its user present forever. Found by the lab: after a
//! stalled stream partition, `presence` still listed users whose clients
//! were long gone (seeds 37, 74, 110 of the first stream explore).

use std::time::Duration;

use insta::assert_snapshot;

use super::harness::{Harness, ch, user};
use crate::server::{ConnId, ServerConfig};
use crate::store::MemStoreConfig;

#[test]
fn a_silent_connection_is_closed_and_its_user_leaves() {
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_secs(45)),
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.alice_and_bob_in("general");
    h.note("bob pings every 15 s; alice's transport went silent");
    for _ in 0..4 {
        h.advance(15_000);
        h.frame(2, crate::wire::ClientFrame::Ping { nonce: 1 });
    }
    assert_eq!(h.server.connections(), 1, "alice was closed, bob was not");
    assert!(h.server.channels_of(ConnId(1)).is_empty());
    h.advance(2_000);
    assert_eq!(h.server.present_users(&ch("general")), vec![user("bob")]);
    assert_snapshot!(h.trace());
}
