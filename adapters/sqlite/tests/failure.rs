//! A command that fails half-way leaves nothing behind, whether it commits
//! alone or shares a group commit with others: the failure is reported as
//! `unavailable` for that command, and its other entries are not stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{append, db, seqs};
use lockstep_core::ids::Seq;
use lockstep_core::store::{AppendOutcome, StoreError, StoreReply};
use lockstep_sqlite::SqliteStore;
use lockstep_tokio::server::Store;

/// Stores `k1` in channel `c`, then damages its row behind the store's
/// back (a negative seq), so a later duplicate of `k1` fails to decode
/// after the entries before it in the same command were written.
async fn store_with_a_poisoned_message(path: &PathBuf) -> SqliteStore {
    let s = SqliteStore::open(path).unwrap();
    let first = s.execute(append("c", &["k1"])).await.unwrap();
    assert!(
        matches!(&first, StoreReply::Appended(o) if o.len() == 1),
        "{first:?}"
    );
    let side = rusqlite::Connection::open(path).unwrap();
    side.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let changed = side
        .execute(
            "UPDATE messages SET seq = -1 WHERE client_msg_id = 'k1'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    s
}

async fn assert_rolled_back(s: &SqliteStore) {
    assert_eq!(seqs(s, "c").await, vec![1], "k2 must not be stored");
    // k2 was never stored: appending it again is new, at seq 2.
    let again = s.execute(append("c", &["k2"])).await.unwrap();
    assert!(
        matches!(&again, StoreReply::Appended(o) if matches!(o.as_slice(), [AppendOutcome::Appended(e)] if e.seq() == Seq(2))),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_lone_command_that_fails_half_way_stores_none_of_its_entries() {
    let path = db("fail-lone.db");
    let s = store_with_a_poisoned_message(&path).await;
    let failed = s.execute(append("c", &["k2", "k1"])).await;
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert_rolled_back(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_in_a_group_commit_takes_nothing_else_down() {
    let path = db("fail-group.db");
    let s = store_with_a_poisoned_message(&path).await;
    // Queued together, so the writer is likely to commit them in one
    // transaction; whatever the batching, each outcome is its own.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let cmid = format!("o{i}");
            s.execute(append(&format!("other{i}"), &[&cmid])).await
        }));
    }
    let failing = {
        let s = s.clone();
        tokio::spawn(async move { s.execute(append("c", &["k2", "k1"])).await })
    };
    for t in tasks {
        let ok = t.await.unwrap().unwrap();
        assert!(
            matches!(&ok, StoreReply::Appended(o) if matches!(o.as_slice(), [AppendOutcome::Appended(_)])),
            "{ok:?}"
        );
    }
    let failed = failing.await.unwrap();
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    for i in 0..8 {
        assert_eq!(seqs(&s, &format!("other{i}")).await, vec![1]);
    }
    assert_rolled_back(&s).await;
}
