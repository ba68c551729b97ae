//! What the PostgreSQL store's tests share: the server to test against,
//! a fresh schema per store, commands and reading a log back.
//!
//! The server is `LOCKSTEP_TEST_POSTGRES_URL` ([`url`]: CI fails without
//! it; by hand a test returns early after a loud notice).
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{AppendEntry, ReadFrom, StoreCommand, StoreReply};
use lockstep_core::wire::{Body, LogEvent};
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::Store;

pub use lockstep_tests::{
    fresh_postgres_schema as fresh_schema, postgres_ctl as ctl, postgres_url as url,
};

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
        chain: lockstep_core::store::AppendChain::Start,
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
