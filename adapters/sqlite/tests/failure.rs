//! A command that fails half-way leaves nothing behind: the failure is
//! reported as `unavailable` for that command, and its other entries are
//! not stored. (The same inside a group commit is a unit test of the
//! writer, `a_failing_command_in_a_group_commit_takes_nothing_else_down`,
//! which holds the writer so the commands surely share one transaction.)
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
