//! What only a durable store promises: a reopened file has everything,
//! dedupe included, and epochs do not change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{
    AppendEntry, AppendOutcome, Existing, ReadFrom, StoreCommand, StoreReply,
};
use lockstep_core::wire::Body;
use lockstep_sqlite::SqliteStore;
use lockstep_tokio::server::Store;

fn append(cmid: &str) -> StoreCommand {
    StoreCommand::Append {
        channel: ChannelId::new("g").unwrap(),
        entries: vec![AppendEntry::Message {
            author: UserId::new("alice").unwrap(),
            client_msg_id: ClientMsgId::new(cmid).unwrap(),
            body: Body::text(cmid),
            ts: 1,
        }],
    }
}

#[tokio::test]
async fn a_reopened_database_keeps_logs_dedupe_and_epochs() {
    let dir = std::env::temp_dir().join(format!("lockstep-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reopen.db");
    let _ = std::fs::remove_file(&path);
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
    let again = s.execute(append("c7")).await.unwrap();
    assert!(
        matches!(&again, StoreReply::Appended(o) if matches!(o.as_slice(), [AppendOutcome::Duplicate(Existing::Message(a))] if a.ts == 1)),
        "{again:?}"
    );
    let page = s
        .execute(StoreCommand::Read {
            channel: ChannelId::new("g").unwrap(),
            from: ReadFrom::After(Seq(0)),
            limit: 100,
        })
        .await
        .unwrap();
    let StoreReply::Events(page) = page else {
        panic!("{page:?}")
    };
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq().0).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn futures_join(s: &SqliteStore, n: usize) -> Vec<StoreReply> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.execute(append(&format!("c{i}"))).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
