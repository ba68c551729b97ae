//! What only a durable store promises: a reopened file has everything,
//! dedupe included, and epochs do not change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{append, db, seqs};
use lockstep_core::ids::ChannelId;
use lockstep_core::store::{AppendOutcome, Existing, StoreCommand, StoreReply};
use lockstep_sqlite::SqliteStore;
use lockstep_tokio::server::Store;

#[tokio::test]
async fn a_reopened_database_keeps_logs_dedupe_and_epochs() {
    let path = db("reopen.db");
    let head = StoreCommand::Head {
        channel: ChannelId::new("g").unwrap(),
    };
    let before = {
        let s = SqliteStore::open(&path).unwrap();
        // Many appends in flight at once: they share group commits.
        let all = futures_join(&s, 50).await;
        assert!(all.iter().all(|r| matches!(r, StoreReply::Appended(_))));
        s.execute(head.clone()).await.unwrap()
    };
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.execute(head).await.unwrap(), before);
    let again = s.execute(append("g", &["c7"])).await.unwrap();
    assert!(
        matches!(&again, StoreReply::Appended(o) if matches!(o.as_slice(), [AppendOutcome::Duplicate(Existing::Message(a))] if a.ts == 1)),
        "{again:?}"
    );
    assert_eq!(seqs(&s, "g").await, (1..=50).collect::<Vec<_>>());
    drop(s);
    let _ = std::fs::remove_file(&path);
}

async fn futures_join(s: &SqliteStore, n: usize) -> Vec<StoreReply> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.execute(append("g", &[&format!("c{i}")])).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
