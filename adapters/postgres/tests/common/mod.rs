//! What the PostgreSQL store's tests share: the server to test against,
//! a fresh schema per store, commands and reading a log back.
//!
//! The server is `LOCKSTEP_TEST_POSTGRES_URL` (`scripts/postgres start`
//! starts a throwaway one and prints it; `scripts/test` does so for CI).
//! Without it a test fails when `CI` or `LOCKSTEP_REQUIRE_POSTGRES` is
//! set (CI must run them), and otherwise returns early after printing a
//! loud notice (a developer without PostgreSQL can still run the rest).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{AppendEntry, ReadFrom, StoreCommand, StoreReply};
use lockstep_core::wire::{Body, LogEvent};
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::Store;

/// The test server's URL, or `None` (after a loud notice) when there is
/// none and none is required.
pub fn url() -> Option<String> {
    required_env("LOCKSTEP_TEST_POSTGRES_URL")
}

/// The test server's `pg_ctl` (`scripts/postgres` writes one that runs as
/// the cluster's owner), or `None` as for [`url`].
pub fn ctl() -> Option<String> {
    required_env("LOCKSTEP_TEST_POSTGRES_CTL")
}

fn required_env(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name)
        && !value.is_empty()
    {
        return Some(value);
    }
    let required = ["CI", "LOCKSTEP_REQUIRE_POSTGRES"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    assert!(
        !required,
        "{name} is not set, and CI (or LOCKSTEP_REQUIRE_POSTGRES) requires the PostgreSQL \
         tests: start a server with `eval \"$(scripts/postgres start DIR)\"`"
    );
    // Straight to stderr, past the test harness's capture: loud even
    // when the test passes.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "\n!!!!! SKIPPED: a PostgreSQL test did not run: {name} is not set \
             (eval \"$(scripts/postgres start /tmp/pg)\" starts a server) !!!!!\n"
        )
        .as_bytes(),
    );
    None
}

/// A schema name no other store of any test process uses.
pub fn fresh_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "lockstep_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on a schema of its own.
pub async fn fresh(url: &str, config: PgConfig) -> PgStore {
    let config = PgConfig {
        schema: fresh_schema(),
        ..config
    };
    PgStore::connect(url, config).await.unwrap()
}

/// A plain connection (for what the tests do behind the store's back).
pub async fn side(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// One append command: a message by alice per client message id.
pub fn append(channel: &str, cmids: &[&str]) -> StoreCommand {
    StoreCommand::Append {
        channel: ChannelId::new(channel).unwrap(),
        entries: cmids
            .iter()
            .map(|cmid| AppendEntry::Message {
                author: UserId::new("alice").unwrap(),
                client_msg_id: ClientMsgId::new(*cmid).unwrap(),
                body: Body::text(*cmid),
                ts: 1,
            })
            .collect(),
    }
}

/// The retained events of `channel`, from the start (every page).
pub async fn events(s: &PgStore, channel: &str) -> Vec<LogEvent> {
    let mut all = Vec::new();
    let mut after = Seq(0);
    loop {
        let page = s
            .execute(StoreCommand::Read {
                channel: ChannelId::new(channel).unwrap(),
                from: ReadFrom::After(after),
                limit: 1_000,
                max_bytes: usize::MAX,
            })
            .await
            .unwrap();
        let StoreReply::Events(page) = page else {
            panic!("{page:?}")
        };
        let Some(last) = page.events.last() else {
            return all;
        };
        after = last.seq();
        all.extend(page.events);
    }
}

/// The seqs of `channel`'s log, from the start.
pub async fn seqs(s: &PgStore, channel: &str) -> Vec<u64> {
    events(s, channel).await.iter().map(|e| e.seq().0).collect()
}

/// Waits (bounded) until `ok` holds.
pub async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until a backend is blocked by `blocker` and returns
/// its pid. `observer` must be outside any transaction: inside one,
/// PostgreSQL keeps showing the activity it saw first.
pub async fn blocked_by(observer: &tokio_postgres::Client, blocker: i32) -> i32 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let rows = observer
            .query(
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                &[&blocker],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            return row.get(0);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing blocked on {blocker}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The backend pid of a connection.
pub async fn pid(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}
