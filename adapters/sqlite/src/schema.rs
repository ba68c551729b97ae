//! The database schema, its migrations and the connection settings.

use lockstep_core::ids::Epoch;
use rusqlite::Connection;

use crate::OpenError;
use crate::ops::to_u64;

/// The schema version this code writes (`PRAGMA user_version`).
const VERSION: i64 = 2;

/// Version 1, as it was written: a new database is created at version 1
/// and migrated, so there is one definition of each table (this, and what
/// the migrations change), and a version-1 database whose creation was cut
/// short is finished the same way.
///
/// Tables: what is set once per database (`fresh_epoch`), one row per
/// channel that was written to (epoch, head, remembered messages), the log
/// itself, what the store remembers per message (dedupe key, author,
/// deletion, which entry holds its latest body), and read watermarks.
pub(crate) const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channels (
    channel TEXT PRIMARY KEY,
    epoch   INTEGER NOT NULL,
    head    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    channel TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    event   TEXT NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    channel       TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    author        TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    ts            INTEGER NOT NULL,
    deleted_seq   INTEGER,
    PRIMARY KEY (channel, message_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedupe
    ON messages (channel, author, client_msg_id);
CREATE TABLE IF NOT EXISTS receipts (
    channel TEXT NOT NULL,
    user    TEXT NOT NULL,
    up_to   INTEGER NOT NULL,
    PRIMARY KEY (channel, user)
) WITHOUT ROWID;
";

/// Version 1 to 2: events get their time stamp, the writer's clock at
/// commit for age retention (before the text, so a sweep reads it without
/// the body; unknown for old rows, which age retention leaves to count
/// retention), messages their latest-body entry and channels their message
/// count; bodies that edits and deletes
/// superseded become tombstones; channels that reads created (head 0) go,
/// and their epoch counter becomes the one fresh epoch of every channel
/// written from now on (above every epoch handed out before).
const MIGRATE_V1_TO_V2: &str = "
ALTER TABLE channels ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN body_seq INTEGER;
CREATE INDEX messages_by_seq ON messages (channel, seq);
CREATE TABLE events_v2 (
    channel TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    at      INTEGER,
    event   TEXT NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;
INSERT INTO events_v2 (channel, seq, at, event) SELECT channel, seq, NULL, event FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE TEMP TABLE latest_edit (
    channel    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (channel, message_id)
) WITHOUT ROWID;
INSERT INTO latest_edit
    SELECT channel, json_extract(event, '$.messageId'), max(seq) FROM events
    WHERE json_extract(event, '$.type') = 'updated' GROUP BY 1, 2;
UPDATE messages SET body_seq = coalesce(
    (SELECT l.seq FROM latest_edit l
     WHERE l.channel = messages.channel AND l.message_id = messages.message_id),
    seq)
WHERE deleted_seq IS NULL;
DROP TABLE latest_edit;
UPDATE events SET event = json_remove(event, '$.body')
WHERE json_extract(event, '$.type') IN ('message', 'updated')
  AND NOT EXISTS (
    SELECT 1 FROM messages m
    WHERE m.channel = events.channel
      AND m.message_id = json_extract(events.event, '$.messageId')
      AND m.body_seq = events.seq);
UPDATE channels SET messages =
    (SELECT count(*) FROM messages m WHERE m.channel = channels.channel);
DELETE FROM channels WHERE head = 0;
INSERT INTO meta (key, value) SELECT 'fresh_epoch', value FROM meta WHERE key = 'next_epoch';
DELETE FROM meta WHERE key = 'next_epoch';
";

/// How hard each commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: a commit survives a power loss. The default:
    /// an acknowledged message is never lost.
    #[default]
    Full,
    /// `synchronous = NORMAL`: a commit survives a process crash, but the
    /// last ones may be lost on a power loss. Faster.
    Normal,
}

/// How long a connection waits for a lock before it reports busy: the
/// writer holds the only write lock, so this covers another process (a
/// backup, an operator's shell) and the short locks of a checkpoint.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Applies the writer's connection settings (WAL, durability, WAL size
/// limit) and creates or migrates the schema; returns the epoch of every
/// channel.
pub(crate) fn prepare_writer(
    conn: &mut Connection,
    durability: Durability,
    wal_limit: u64,
) -> Result<Epoch, OpenError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // After a checkpoint resets the WAL, its file is cut back to this.
    conn.pragma_update(
        None,
        "journal_size_limit",
        i64::try_from(wal_limit).unwrap_or(i64::MAX),
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    migrate(conn)?;
    let fresh: i64 = conn.query_row(
        "SELECT value FROM meta WHERE key = 'fresh_epoch'",
        [],
        |r| r.get(0),
    )?;
    Ok(Epoch(
        to_u64(fresh).map_err(|e| OpenError::Schema(e.to_string()))?,
    ))
}

/// Settings of a reader connection: it may not write, and waits out the
/// short locks of a checkpoint.
pub(crate) fn prepare_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "query_only", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)
}

/// Brings the schema to [`VERSION`] in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), OpenError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        // New, version 1, or version 1 with its creation cut short (its
        // tables are made with IF NOT EXISTS and its version set last).
        0 | 1 => {
            tx.execute_batch(SCHEMA_V1)?;
            tx.execute_batch(MIGRATE_V1_TO_V2)?;
        }
        VERSION => return Ok(tx.commit()?),
        found => return Err(OpenError::NewerSchema(found)),
    }
    // Epochs start at the database's creation time in Unix milliseconds,
    // above every epoch handed out before, so a client's position in a
    // deleted and recreated (or migrated) database can never be mistaken
    // for one in the new logs. Set once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| i64::try_from(d.as_millis()).unwrap_or(1));
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value)
         VALUES ('fresh_epoch', max(?1, (SELECT coalesce(max(epoch), 0) + 1 FROM channels)))",
        [now],
    )?;
    tx.pragma_update(None, "user_version", VERSION)?;
    Ok(tx.commit()?)
}
