//! The database schema and connection settings.

use rusqlite::Connection;

/// Tables: one row per channel (epoch, head), the log itself, what the
/// store remembers per message (dedupe key, author, deletion), and read
/// watermarks. `user_version` marks the schema.
const SCHEMA: &str = "
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
PRAGMA user_version = 1;
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

/// Applies the connection settings (WAL, durability, busy timeout) and
/// creates the schema; returns the next epoch to hand out.
pub(crate) fn prepare(conn: &Connection, durability: Durability) -> rusqlite::Result<u64> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    // Epochs start at the database's creation time in Unix milliseconds,
    // so a client's position in a deleted and recreated database can never
    // be mistaken for one in the new logs. Stored once, then counted up.
    let origin = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(1));
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_epoch', ?1)",
        [origin as i64],
    )?;
    let next: i64 = conn.query_row("SELECT value FROM meta WHERE key = 'next_epoch'", [], |r| {
        r.get(0)
    })?;
    Ok(u64::try_from(next).unwrap_or(1))
}
