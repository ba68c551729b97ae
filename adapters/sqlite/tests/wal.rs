//! The write-ahead log stays bounded under a write load while readers
//! keep reading, and an idle database ends with an empty one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::db;
use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{AppendEntry, ReadFrom, StoreCommand, StoreReply};
use lockstep_core::wire::Body;
use lockstep_sqlite::{Durability, SqliteConfig, SqliteStore};
use lockstep_tokio::server::Store;

const MIB: u64 = 1 << 20;

fn size(path: &std::path::Path, suffix: &str) -> u64 {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::fs::metadata(p).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_writes_with_readers_running() {
    let path = db("wal-bound.db");
    let s = SqliteStore::open_with(
        &path,
        SqliteConfig {
            durability: Durability::Normal,
            wal_limit: MIB,
            maintenance_interval: Duration::from_millis(20),
            ..SqliteConfig::default()
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4_u64 {
        let (s, stop) = (s.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let page = s
                    .execute(StoreCommand::Read {
                        channel: ChannelId::new(format!("w{}", r % 2)).unwrap(),
                        from: ReadFrom::Latest,
                        limit: 200,
                        max_bytes: usize::MAX,
                    })
                    .await
                    .unwrap();
                assert!(matches!(page, StoreReply::Events(_)));
                reads += 1;
            }
            reads
        }));
    }
    let body = Body::text("b".repeat(2_000));
    let mut wal_max = 0;
    for i in 0..250 {
        let entries = (0..16)
            .map(|j| AppendEntry::Message {
                author: UserId::new("alice").unwrap(),
                client_msg_id: ClientMsgId::new(format!("m{i}-{j}")).unwrap(),
                body: body.clone(),
                ts: 1,
            })
            .collect();
        let done = s
            .execute(StoreCommand::Append {
                channel: ChannelId::new(format!("w{}", i % 4)).unwrap(),
                entries,
                chain: lockstep_core::store::AppendChain::Start,
            })
            .await
            .unwrap();
        assert!(matches!(done, StoreReply::Appended(_)));
        wal_max = wal_max.max(size(&path, "-wal"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    let written = size(&path, "") + size(&path, "-wal");
    assert!(
        reads > 0 && written > 8 * MIB,
        "{reads} reads, {written} bytes"
    );
    // Past the limit a checkpoint resets the log after the commit that
    // crossed it: one commit's pages over the limit at most.
    assert!(
        wal_max <= 2 * MIB,
        "the wal reached {wal_max} bytes with a limit of {MIB}, {written} bytes written"
    );
    // Idle: the next tick truncates it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while size(&path, "-wal") > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle wal was never truncated"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let head = s
        .execute(StoreCommand::Head {
            channel: ChannelId::new("w0").unwrap(),
        })
        .await
        .unwrap();
    assert!(matches!(head, StoreReply::Head { head, .. } if head == Seq(1_008)));
}
