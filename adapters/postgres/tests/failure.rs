//! A command that cannot be executed (here: a stored row damaged behind
//! the store's back) fails `unavailable` and leaves nothing behind, and
//! when it shares a group commit with others, they commit without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lockstep_core::store::{AppendOutcome, StoreError, StoreReply};
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::Store;

fn appended_seqs(r: &Result<StoreReply, StoreError>) -> Vec<u64> {
    let Ok(StoreReply::Appended(o)) = r else {
        panic!("{r:?}")
    };
    o.iter()
        .filter_map(AppendOutcome::appended)
        .map(|e| e.seq().0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_command_fails_alone_and_stores_none_of_its_entries() {
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema();
    let config = PgConfig {
        schema: schema.clone(),
        writers: 1,
        ..PgConfig::default()
    };
    let s = PgStore::connect(&url, config).await.unwrap();
    for (c, k) in [("c", "k1"), ("d", "k1"), ("x", "k1")] {
        assert_eq!(
            appended_seqs(&s.execute(common::append(c, &[k])).await),
            [1]
        );
    }
    let side = common::side(&url).await;
    let damaged = side
        .execute(
            &format!("UPDATE {schema}.messages SET seq = -1 WHERE channel = 'c'"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(damaged, 1);

    // Alone: k2 would be stored before the damaged duplicate k1 is met.
    let lone = s.execute(common::append("c", &["k2", "k1"])).await;
    assert!(matches!(lone, Err(StoreError::Unavailable(_))), "{lone:?}");
    assert_eq!(common::seqs(&s, "c").await, [1], "k2 was not stored");

    // In one batch with a healthy command: hold the only writer on x's
    // head row while both queue behind it.
    side.batch_execute(&format!(
        "BEGIN; SELECT * FROM {schema}.channels WHERE channel = 'x' FOR UPDATE"
    ))
    .await
    .unwrap();
    let held = tokio::spawn({
        let s = s.clone();
        async move { s.execute(common::append("x", &["k2"])).await }
    });
    let observer = common::side(&url).await;
    common::blocked_by(&observer, common::pid(&side).await).await;
    // Both queue (each polled once: its command is sent to the queue)
    // while the only writer waits.
    let mut poisoned = std::pin::pin!(s.execute(common::append("c", &["k2", "k1"])));
    let mut healthy = std::pin::pin!(s.execute(common::append("d", &["k2"])));
    for queued in [poisoned.as_mut(), healthy.as_mut()] {
        tokio::select! {
            biased;
            done = queued => panic!("answered while the writer waits: {done:?}"),
            () = std::future::ready(()) => {}
        }
    }
    side.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(appended_seqs(&held.await.unwrap()), [2]);
    let poisoned = poisoned.await;
    assert!(
        matches!(poisoned, Err(StoreError::Unavailable(_))),
        "{poisoned:?}"
    );
    let healthy = healthy.await;
    assert_eq!(appended_seqs(&healthy), [2]);
    assert_eq!(common::seqs(&s, "c").await, [1]);
    assert_eq!(common::seqs(&s, "d").await, [1, 2]);
    // Once repaired, c goes on from where it was.
    side.execute(
        &format!("UPDATE {schema}.messages SET seq = 1 WHERE channel = 'c'"),
        &[],
    )
    .await
    .unwrap();
    let repaired = s.execute(common::append("c", &["k2", "k1"])).await;
    assert_eq!(appended_seqs(&repaired), [2]);
}
