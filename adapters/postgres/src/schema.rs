//! The schema, its versioned migrations, and the checks made at connect.
//!
//! Everything lives in one PostgreSQL schema of its own (`lockstep` by
//! default), so the store can share the application's database without
//! its tables meeting the application's. Connections set `search_path` to
//! it, so the SQL here names tables unqualified.

use deadpool_postgres::Client;
use lockstep_core::ids::Epoch;

use crate::ConnectError;

/// The newest schema version this code knows.
pub(crate) const VERSION: i64 = 2;

/// Versions in order: the SQL that takes a database from the version
/// before to this one. A migration runs once, in the one transaction that
/// also records its version, so a migration cut short leaves nothing.
const MIGRATIONS: &[(i64, &str)] = &[(1, V1), (2, V2)];

/// Version 1.
///
/// - `channels`: one row per channel that was written to. Its **head row**:
///   every append locks it first (`INSERT … ON CONFLICT DO UPDATE …
///   RETURNING`), so a channel has one writer at a time across any number
///   of connections and processes, seqs are contiguous, and a concurrent
///   retry waits and then finds the original. `messages` counts the rows
///   of `messages` (dedupe memory) for the channel. Updated on every
///   append, so its pages keep room for HOT updates (`fillfactor`).
/// - `events`: the log. A tombstone is an entry whose `body` went NULL;
///   `at` is the writer's clock at commit (Unix ms) for age retention.
///   `kind`: 0 message (with author, client message id and ts), 1 edit,
///   2 deletion. Client message ids are `bytea`: they may hold any
///   character, NUL included, which `text` cannot.
/// - `messages`: what the store remembers per message (dedupe key,
///   author, where its latest body is or which entry deleted it), beyond
///   the events' retention.
/// - `receipts`: read watermarks.
///
/// Text keys use the `C` collation: byte order, the same on every server,
/// and the cheapest comparison.
const V1: &str = r#"
CREATE TABLE channels (
    channel  text COLLATE "C" PRIMARY KEY,
    epoch    bigint NOT NULL,
    head     bigint NOT NULL CHECK (head >= 0),
    messages bigint NOT NULL CHECK (messages >= 0)
) WITH (fillfactor = 50);
CREATE TABLE events (
    channel       text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL,
    at            bigint NOT NULL,
    kind          smallint NOT NULL CHECK (kind IN (0, 1, 2)),
    message_id    text NOT NULL,
    author        text,
    client_msg_id bytea,
    ts            bigint,
    body          text,
    PRIMARY KEY (channel, seq)
);
CREATE TABLE messages (
    channel       text COLLATE "C" NOT NULL,
    message_id    text COLLATE "C" NOT NULL,
    author        text COLLATE "C" NOT NULL,
    client_msg_id bytea NOT NULL,
    seq           bigint NOT NULL,
    ts            bigint NOT NULL,
    body_seq      bigint,
    deleted_seq   bigint,
    PRIMARY KEY (channel, message_id),
    CHECK ((body_seq IS NULL) <> (deleted_seq IS NULL))
);
CREATE UNIQUE INDEX messages_dedupe ON messages (channel, author, client_msg_id);
CREATE UNIQUE INDEX messages_by_seq ON messages (channel, seq);
CREATE TABLE receipts (
    channel text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    up_to   bigint NOT NULL,
    PRIMARY KEY (channel, user_id)
);
"#;

/// Version 2: presence across processes (`crate::presence`).
///
/// - `presence_leases`: each process's lease, renewed by its heartbeat
///   (in the database's clock); an expired one is a dead process.
/// - `presence_claims`: which processes hold a user's presence in a
///   channel; indexed by node for the reap of a dead one.
const V2: &str = r#"
CREATE TABLE presence_leases (
    node       bigint PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE TABLE presence_claims (
    channel text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    node    bigint NOT NULL,
    PRIMARY KEY (channel, user_id, node)
);
CREATE INDEX presence_claims_node ON presence_claims (node);
"#;

/// The oldest server this store runs on: `pg_xact_status` and
/// `pg_current_xact_id` (how a commit whose reply was lost is settled)
/// came with 13.
const MIN_SERVER_VERSION: i32 = 130_000;

/// Whether `name` can be a schema name here: lower-case letters, digits
/// and `_`, not starting with a digit, at most 63 bytes (PostgreSQL's
/// identifier limit); such a name needs no quoting anywhere.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Checks the server, creates or migrates the schema in one transaction
/// (under an advisory lock, so processes starting together take turns),
/// and returns the epoch of every channel.
pub(crate) async fn prepare(client: &mut Client, schema: &str) -> Result<Epoch, ConnectError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, \
             current_setting('server_encoding')",
            &[],
        )
        .await?;
    let (version, encoding): (i32, String) = (row.get(0), row.get(1));
    if version < MIN_SERVER_VERSION {
        return Err(ConnectError::ServerTooOld(version));
    }
    if encoding != "UTF8" {
        return Err(ConnectError::Encoding(encoding));
    }
    let tx = client.transaction().await?;
    tx.query_one(
        "SELECT pg_advisory_xact_lock(hashtextextended('lockstep schema ' || $1::text, 0))",
        &[&schema],
    )
    .await?;
    // The name was checked by `valid_schema_name`: no quoting needed.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.meta (key text PRIMARY KEY, value bigint NOT NULL);"
    ))
    .await?;
    let found: Option<i64> = tx
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'version'"),
            &[],
        )
        .await?
        .map(|r| r.get(0));
    let found = found.unwrap_or(0);
    if found > VERSION {
        return Err(ConnectError::NewerSchema(found));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(&format!("SET LOCAL search_path = {schema}; {sql}"))
            .await?;
        tx.execute(
            &format!(
                "INSERT INTO {schema}.meta (key, value) VALUES ('version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            &[version],
        )
        .await?;
    }
    // Epochs start at the store's creation time in Unix milliseconds, so a
    // client's position in a dropped and recreated store can never be
    // mistaken for one in the new logs. Set once.
    tx.execute(
        &format!(
            "INSERT INTO {schema}.meta (key, value)
             VALUES ('fresh_epoch', (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
             ON CONFLICT (key) DO NOTHING"
        ),
        &[],
    )
    .await?;
    let fresh: i64 = tx
        .query_one(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'fresh_epoch'"),
            &[],
        )
        .await?
        .get(0);
    tx.commit().await?;
    u64::try_from(fresh)
        .map(Epoch)
        .map_err(|_| ConnectError::Schema(format!("negative fresh epoch {fresh}")))
}

#[cfg(test)]
mod tests {
    use super::valid_schema_name;

    #[test]
    fn schema_names_need_no_quoting() {
        for ok in ["lockstep", "_x", "chat_2", &"a".repeat(63)] {
            assert!(valid_schema_name(ok), "{ok}");
        }
        for bad in [
            "",
            "2x",
            "Lockstep",
            "a-b",
            "a b",
            "a;drop",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
