//! The append latency of one client while others flood the store with
//! history reads (issue 11: reads must not queue behind commits).
//!
//! ```text
//! cargo run --release -p lockstep-sqlite --example read_flood -- [appends] [flooders] [reader threads]
//! ```
//!
//! Fills channel `big` with 5,000 messages of about 200 bytes, then
//! measures `appends` sequential appends to channel `quiet` (default 400)
//! twice: idle, and while `flooders` tasks (default 16) each keep one
//! `Read { limit: 500, max_bytes: 1 MiB }` of `big` in flight. The store
//! has `reader threads` reader connections (default 2, the store's
//! default; 0 makes the writer serve reads between commits, as before
//! issue 11). Prints the median, p99 and max append latency of each run,
//! and how many reads the flood completed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{AppendEntry, ReadFrom, StoreCommand, StoreReply};
use lockstep_core::wire::Body;
use lockstep_sqlite::{SqliteConfig, SqliteStore};
use lockstep_tokio::server::Store;

fn append(channel: &str, cmid: &str, body: &Body) -> StoreCommand {
    StoreCommand::Append {
        channel: ChannelId::new(channel).unwrap(),
        entries: vec![AppendEntry::Message {
            author: UserId::new("alice").unwrap(),
            client_msg_id: ClientMsgId::new(cmid).unwrap(),
            body: body.clone(),
            ts: 1,
        }],
        chain: lockstep_core::store::AppendChain::Start,
    }
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

async fn measure(store: &SqliteStore, run: &str, n: usize) -> Vec<Duration> {
    let body = Body::text("q".repeat(200));
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let r = store
            .execute(append("quiet", &format!("{run}-{i}"), &body))
            .await
            .unwrap();
        assert!(matches!(r, StoreReply::Appended(_)));
        lat.push(t.elapsed());
    }
    lat
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let appends: usize = args.next().map_or(400, |a| a.parse().unwrap());
    let readers: usize = args.next().map_or(16, |a| a.parse().unwrap());
    let reader_threads: usize = args.next().map_or(2, |a| a.parse().unwrap());
    let dir = std::env::temp_dir().join(format!("lockstep-read-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flood.db");
    let store = SqliteStore::open_with(
        &path,
        SqliteConfig {
            readers: reader_threads,
            ..SqliteConfig::default()
        },
    )
    .unwrap();
    let body = Body::text("x".repeat(200));
    for chunk in 0..50 {
        let entries = (0..100)
            .map(|i| AppendEntry::Message {
                author: UserId::new("bob").unwrap(),
                client_msg_id: ClientMsgId::new(format!("fill-{chunk}-{i}")).unwrap(),
                body: body.clone(),
                ts: 1,
            })
            .collect();
        store
            .execute(StoreCommand::Append {
                channel: ChannelId::new("big").unwrap(),
                entries,
                chain: lockstep_core::store::AppendChain::Start,
            })
            .await
            .unwrap();
    }
    let idle = measure(&store, "idle", appends).await;

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for r in 0..readers {
        let (store, stop, reads) = (store.clone(), stop.clone(), reads.clone());
        flood.push(tokio::spawn(async move {
            let mut after = (r as u64 * 613) % 4_500;
            while !stop.load(Ordering::Relaxed) {
                let page = store
                    .execute(StoreCommand::Read {
                        channel: ChannelId::new("big").unwrap(),
                        from: ReadFrom::After(Seq(after)),
                        limit: 500,
                        max_bytes: 1 << 20,
                    })
                    .await
                    .unwrap();
                assert!(matches!(page, StoreReply::Events(p) if !p.events.is_empty()));
                reads.fetch_add(1, Ordering::Relaxed);
                after = (after + 997) % 4_500;
            }
        }));
    }
    // Let the flood fill the queue before measuring.
    while reads.load(Ordering::Relaxed) < readers as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    let reads_before = reads.load(Ordering::Relaxed);
    let flooded = measure(&store, "flood", appends).await;
    let flood_secs = started.elapsed().as_secs_f64();
    let flood_reads = reads.load(Ordering::Relaxed) - reads_before;
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    let show = |name: &str, lat: Vec<Duration>| {
        let (p50, p99, max) = percentiles(lat);
        println!("{name:>7}: append p50 {p50:.2?}  p99 {p99:.2?}  max {max:.2?}");
    };
    show("idle", idle);
    show("flooded", flooded);
    println!(
        "flood: {readers} flooders, {reader_threads} reader threads, {flood_reads} reads of 500 events in {flood_secs:.2} s ({:.0} reads/s)",
        flood_reads as f64 / flood_secs
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
