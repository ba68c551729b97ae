//! The hint link between processes sharing a store: one process's hints
//! reach the others (merged, never its own), and a listener that lost its
//! connection asks for a resync when it listens again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use lockstep_core::ids::{ChannelId, Seq, UserId};
use lockstep_core::server::{CommitHint, Relay};
use lockstep_core::wire::TypingNotice;
use lockstep_postgres::{HintConfig, PgConfig, hint_link};
use lockstep_tokio::server::{PeerEvent, PeerNote, Peers};

/// The next event `pick` takes, waiting at most 30 s.
async fn next<T>(peers: &mut Peers, mut pick: impl FnMut(PeerEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, peers.events.recv())
            .await
            .expect("nothing within 30 s")
            .expect("link closed");
        if let Some(t) = pick(event) {
            return t;
        }
    }
}

/// The next hint.
async fn next_hint(peers: &mut Peers) -> CommitHint {
    next(peers, |e| match e {
        PeerEvent::Hint(h) => Some(h),
        _ => None,
    })
    .await
}

/// The next resync request.
async fn next_resync(peers: &mut Peers) {
    next(peers, |e| (e == PeerEvent::Resync).then_some(())).await;
}

fn note(channel: &str, first: u64, last: u64) -> PeerNote {
    PeerNote::Committed(hint(channel, first, last))
}

fn hint(channel: &str, first: u64, last: u64) -> CommitHint {
    CommitHint {
        channel: ChannelId::new(channel).unwrap(),
        first: Seq(first),
        last: Seq(last),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_reach_the_other_processes_and_not_their_sender() {
    let Some(url) = common::url() else { return };
    let store = PgConfig {
        schema: common::fresh_schema(),
        ..PgConfig::default()
    };
    let config = |node| HintConfig {
        node,
        resync_every: Duration::from_secs(3_600),
        presence_lease: None,
        ..HintConfig::default()
    };
    let mut a = hint_link(&url, &store, config(1)).unwrap();
    let mut b = hint_link(&url, &store, config(2)).unwrap();
    // Both listen once they have asked for their first resync.
    next_resync(&mut a).await;
    next_resync(&mut b).await;
    a.notes.send(note("room", 1, 3)).await.unwrap();
    a.notes.send(note("room", 4, 4)).await.unwrap();
    a.notes.send(note("other", 1, 1)).await.unwrap();
    // Merged or not, b learns that room reached 4 and other 1.
    let mut room = 0;
    let mut other = 0;
    while room < 4 || other < 1 {
        let h = next_hint(&mut b).await;
        match h.channel.as_str() {
            "room" => room = room.max(h.last.0),
            "other" => other = other.max(h.last.0),
            _ => panic!("unexpected {h:?}"),
        }
    }
    b.notes.send(note("room", 5, 5)).await.unwrap();
    assert_eq!(
        next_hint(&mut a).await,
        hint("room", 5, 5),
        "a only hears b"
    );
    // Typing crosses too.
    let typing = Relay::Typing(TypingNotice {
        channel_id: ChannelId::new("room").unwrap(),
        user_id: UserId::new("alice").unwrap(),
        active: true,
    });
    a.notes.send(PeerNote::Relay(typing.clone())).await.unwrap();
    let got = next(&mut b, |e| match e {
        PeerEvent::Relay(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(got, typing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_lost_its_connection_resyncs_when_it_is_back() {
    let Some(url) = common::url() else { return };
    let store = PgConfig {
        schema: common::fresh_schema(),
        ..PgConfig::default()
    };
    let config = HintConfig {
        node: 1,
        resync_every: Duration::from_secs(3_600),
        reconnect_wait: Duration::from_millis(50),
        presence_lease: None,
        ..HintConfig::default()
    };
    let mut a = hint_link(&url, &store, config).unwrap();
    next_resync(&mut a).await;
    // Cut every session listening on this store's channel.
    let side = common::side(&url).await;
    let channel = format!("{}_hints", store.schema);
    let killed: i64 = side
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE pid IN (SELECT pid FROM pg_stat_activity WHERE query LIKE $1)",
            &[&format!("LISTEN \"{channel}\"%")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    next_resync(&mut a).await;
}
