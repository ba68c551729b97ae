//! Acked appends per second, SQLite and PostgreSQL in one sitting: each of
//! `channels` tasks keeps one append command in flight on its own channel
//! (as the server machine does: one per channel), each command carrying
//! `entries` messages of 200-byte bodies, for `seconds`. Reports entries
//! acked per second and the command latency (p50, p99).
//!
//! ```text
//! eval "$(PG_FSYNC=on scripts/postgres start /tmp/pg-bench)"
//! cargo run --release -p lockstep-postgres --example appends -- 64 1 5
//! ```
//!
//! Arguments: channels (default 1), entries per command (1), seconds (5).
//! PostgreSQL is `LOCKSTEP_TEST_POSTGRES_URL` (each run in a fresh
//! schema); SQLite is a fresh file in the temporary directory, at
//! `Durability::Full` (and `Normal`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lockstep_core::ids::{ChannelId, ClientMsgId, UserId};
use lockstep_core::store::{AppendEntry, StoreCommand, StoreReply};
use lockstep_core::wire::Body;
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_sqlite::{Durability, SqliteConfig, SqliteStore};
use lockstep_tokio::server::Store;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map_or(default, |a| a.parse().expect("a number"))
}

/// One channel's sender: appends back to back until `stop`; returns the
/// entries acked and each command's latency.
async fn channel<S: Store + Clone>(
    s: S,
    c: usize,
    entries: usize,
    stop: Arc<AtomicBool>,
) -> (u64, Vec<Duration>) {
    let channel = ChannelId::new(format!("c{c}")).unwrap();
    let author = UserId::new("alice").unwrap();
    let body = Body::text("x".repeat(198));
    let (mut acked, mut latencies, mut n) = (0, Vec::new(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        let cmd = StoreCommand::Append {
            channel: channel.clone(),
            entries: (0..entries)
                .map(|_| {
                    n += 1;
                    AppendEntry::Message {
                        author: author.clone(),
                        client_msg_id: ClientMsgId::new(format!("m{n}")).unwrap(),
                        body: body.clone(),
                        ts: 1,
                    }
                })
                .collect(),
            chain: lockstep_core::store::AppendChain::Start,
        };
        let at = Instant::now();
        let reply = s.execute(cmd).await.expect("append");
        latencies.push(at.elapsed());
        let StoreReply::Appended(o) = reply else {
            panic!("{reply:?}")
        };
        acked += o.iter().filter(|o| o.appended().is_some()).count() as u64;
    }
    (acked, latencies)
}

async fn measure<S: Store + Clone>(name: &str, s: S, channels: usize, entries: usize, secs: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..channels)
        .map(|c| tokio::spawn(channel(s.clone(), c, entries, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut latencies) = (0, Vec::new());
    for t in tasks {
        let (a, l) = t.await.unwrap();
        acked += a;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "| {name} | {channels} | {entries} | {:.0} | {:.2} | {:.2} |",
        acked as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}

#[tokio::main]
async fn main() {
    let channels = usize::try_from(arg(1, 1)).unwrap();
    let entries = usize::try_from(arg(2, 1)).unwrap();
    let secs = arg(3, 5);
    let dir = std::env::temp_dir().join(format!("lockstep-appends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| store | channels | entries/command | acked entries/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, durability) in [
        ("sqlite full", Durability::Full),
        ("sqlite normal", Durability::Normal),
    ] {
        let path = dir.join(format!("{name}.db").replace(' ', "-"));
        let s = SqliteStore::open_with(
            &path,
            SqliteConfig {
                durability,
                ..SqliteConfig::default()
            },
        )
        .unwrap();
        measure(name, s, channels, entries, secs).await;
    }
    match std::env::var("LOCKSTEP_TEST_POSTGRES_URL") {
        Ok(url) => {
            let schema = format!("bench_appends_{}", std::process::id());
            let config = PgConfig {
                schema,
                ..PgConfig::default()
            };
            let s = PgStore::connect(&url, config).await.unwrap();
            measure("postgres", s, channels, entries, secs).await;
        }
        Err(_) => eprintln!("LOCKSTEP_TEST_POSTGRES_URL is not set: postgres not measured"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
