//! PostgreSQL restarted under load (`pg_ctl restart -m fast`): the sends in
//! flight and those made while it is down fail `unavailable`, the pool
//! reconnects on its own, and nothing acknowledged is lost; nothing that
//! failed was stored. Stopped for a while, the store reports itself not
//! alive (readiness) until it is back. (Alone in its test binary: a
//! restart cuts every connection to the server, other tests' too.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lockstep_core::ids::Seq;
use lockstep_core::store::{AppendOutcome, StoreError, StoreReply};
use lockstep_core::wire::LogEvent;
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::Store;

const SENDERS: usize = 4;

/// Sends one message at a time to `channel` until `stop`; what each got.
async fn sender(
    s: PgStore,
    channel: String,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> Vec<(String, Result<Seq, StoreError>)> {
    let mut sent = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let cmid = format!("m{i}");
        let outcome = match s.execute(common::append(&channel, &[&cmid])).await {
            Ok(StoreReply::Appended(o)) => match o.as_slice() {
                [AppendOutcome::Appended(e)] => Ok(e.seq()),
                other => panic!("{cmid}: {other:?}"),
            },
            Ok(other) => panic!("{cmid}: {other:?}"),
            Err(e) => Err(e),
        };
        if outcome.is_ok() {
            acks.fetch_add(1, Ordering::SeqCst);
        } else {
            // The server is away: do not spin.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent.push((cmid, outcome));
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_fails_what_is_in_flight_and_loses_nothing_acknowledged() {
    let (Some(url), Some(ctl)) = (common::url(), common::ctl()) else {
        return;
    };
    restart_under_load(&url, &ctl).await;
    down_and_back(&url, &ctl).await;
}

fn pg_ctl(ctl: &str, args: &[&str]) {
    let status = std::process::Command::new(ctl)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl {args:?}: {status}");
}

/// Stopped, the store is not alive and fails sends; started again, it is
/// alive and serves without being told.
async fn down_and_back(url: &str, ctl: &str) {
    let config = PgConfig {
        maintenance_interval: Duration::from_millis(50),
        ..PgConfig::default()
    };
    let s = common::fresh(url, config).await;
    assert!(s.execute(common::append("c", &["before"])).await.is_ok());
    let stop = ctl.to_owned();
    tokio::task::spawn_blocking(move || pg_ctl(&stop, &["stop", "-m", "fast"]))
        .await
        .unwrap();
    common::eventually("not alive while down", || !s.is_alive()).await;
    let down = s.execute(common::append("c", &["down"])).await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    let start = ctl.to_owned();
    tokio::task::spawn_blocking(move || pg_ctl(&start, &["start"]))
        .await
        .unwrap();
    common::eventually("alive again", || s.is_alive()).await;
    let up = s.execute(common::append("c", &["up"])).await;
    assert!(
        matches!(&up, Ok(StoreReply::Appended(o)) if o[0].appended().map(LogEvent::seq) == Some(Seq(2))),
        "{up:?}"
    );
}

async fn restart_under_load(url: &str, ctl: &str) {
    let config = PgConfig {
        maintenance_interval: Duration::from_millis(50),
        ..PgConfig::default()
    };
    let s = common::fresh(url, config).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..SENDERS)
        .map(|i| {
            tokio::spawn(sender(
                s.clone(),
                format!("c{i}"),
                stop.clone(),
                acks.clone(),
            ))
        })
        .collect();
    common::eventually("sends before the restart", || {
        acks.load(Ordering::SeqCst) >= 40
    })
    .await;
    let restart = ctl.to_owned();
    tokio::task::spawn_blocking(move || pg_ctl(&restart, &["restart", "-m", "fast"]))
        .await
        .unwrap();
    // The pool recovers: sends succeed again.
    let after = acks.load(Ordering::SeqCst);
    common::eventually("sends after the restart", || {
        acks.load(Ordering::SeqCst) >= after + 80
    })
    .await;
    common::eventually("the store is alive again", || s.is_alive()).await;
    stop.store(true, Ordering::SeqCst);
    let mut failed = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let channel = format!("c{i}");
        let sent = task.await.unwrap();
        let log: BTreeMap<Seq, String> = common::events(&s, &channel)
            .await
            .into_iter()
            .map(|e| match e {
                LogEvent::Message(m) => (m.seq, m.client_msg_id.to_string()),
                other => panic!("{other:?}"),
            })
            .collect();
        let seqs: Vec<u64> = log.keys().map(|s| s.0).collect();
        assert_eq!(
            seqs,
            (1..=log.len() as u64).collect::<Vec<_>>(),
            "{channel}: contiguous"
        );
        let mut acked = 0;
        for (cmid, outcome) in &sent {
            match outcome {
                Ok(seq) => {
                    acked += 1;
                    assert_eq!(log.get(seq), Some(cmid), "{channel}: acked {cmid} is kept");
                }
                Err(StoreError::Unavailable(_)) => {
                    failed += 1;
                    assert!(
                        !log.values().any(|c| c == cmid),
                        "{channel}: {cmid} failed, so it was not stored"
                    );
                    // Sending it again appends it.
                    let again = s.execute(common::append(&channel, &[cmid])).await;
                    assert!(
                        matches!(&again, Ok(StoreReply::Appended(o)) if o[0].appended().is_some()),
                        "{cmid}: {again:?}"
                    );
                }
                Err(other) => panic!("{cmid}: {other:?}"),
            }
        }
        assert_eq!(acked, log.len(), "{channel}: the log is what was acked");
    }
    eprintln!("failed during the restart: {failed}");
    assert!(failed > 0, "the restart failed the sends in flight");
}
