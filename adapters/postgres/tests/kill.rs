//! A writer's connection killed mid-transaction (`pg_terminate_backend`):
//! while it waits for a channel's head row, and after its `COMMIT` went
//! out behind a statement that waits. The send fails `unavailable`,
//! nothing of it is stored, nothing acknowledged before is lost, and the
//! store goes on with a new connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lockstep_core::ids::Seq;
use lockstep_core::store::{AppendOutcome, Existing, StoreError, StoreReply};
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::Store;

/// Ends the backend `blocker` blocks, once there is one.
async fn kill_the_blocked(observer: &tokio_postgres::Client, blocker: i32) {
    let pid = common::blocked_by(observer, blocker).await;
    let ended: bool = observer
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(ended);
}

async fn appended_at(s: &PgStore, cmid: &str) -> Seq {
    let r = s.execute(common::append("c", &[cmid])).await;
    match r {
        Ok(StoreReply::Appended(o)) => match o.as_slice() {
            [AppendOutcome::Appended(e)] => e.seq(),
            other => panic!("{cmid}: {other:?}"),
        },
        other => panic!("{cmid}: {other:?}"),
    }
}

/// Sends k2 into the lock `side` holds, kills the backend it waits on:
/// the send fails `unavailable`, and once `side` rolls back, only k1 is
/// stored.
async fn k2_fails_when_killed(
    s: &PgStore,
    side: &tokio_postgres::Client,
    observer: &tokio_postgres::Client,
    side_pid: i32,
) {
    let send = tokio::spawn({
        let s = s.clone();
        async move { s.execute(common::append("c", &["k2"])).await }
    });
    kill_the_blocked(observer, side_pid).await;
    let failed = send.await.unwrap();
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    side.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(common::seqs(s, "c").await, [1], "k2 was not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_transaction_loses_nothing_acknowledged() {
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema();
    let config = PgConfig {
        schema: schema.clone(),
        ..PgConfig::default()
    };
    let s = PgStore::connect(&url, config).await.unwrap();
    assert_eq!(appended_at(&s, "k1").await, Seq(1));

    let side = common::side(&url).await;
    let observer = common::side(&url).await;
    let side_pid = common::pid(&side).await;

    // 1. Killed while it waits for the head row (before any COMMIT).
    side.batch_execute(&format!(
        "BEGIN; SELECT * FROM {schema}.channels WHERE channel = 'c' FOR UPDATE"
    ))
    .await
    .unwrap();
    k2_fails_when_killed(&s, &side, &observer, side_pid).await;

    // 2. Killed after its COMMIT went out, behind an insert that waits
    // for another transaction's row at the same seq: the outcome is in
    // doubt, and the store asks the server before answering.
    side.batch_execute(&format!(
        "BEGIN; INSERT INTO {schema}.events (channel, seq, at, kind, message_id) \
         VALUES ('c', 2, 0, 2, 'x')"
    ))
    .await
    .unwrap();
    k2_fails_when_killed(&s, &side, &observer, side_pid).await;

    // The store goes on: k2 is new (nothing of it was kept), k1 is a
    // duplicate of the original.
    assert_eq!(appended_at(&s, "k2").await, Seq(2));
    let again = s.execute(common::append("c", &["k1"])).await;
    assert!(
        matches!(&again, Ok(StoreReply::Appended(o)) if matches!(&o[0], AppendOutcome::Duplicate(Existing::Message(a)) if a.seq == Seq(1))),
        "{again:?}"
    );
    assert_eq!(common::seqs(&s, "c").await, [1, 2]);
    assert!(s.is_alive());
}
