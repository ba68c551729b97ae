//! The store's SQL statements (prepared once per connection), and what
//! the writer and readers share about running them.
//!
//! Arrays in, one statement per kind of row: a batch of any size costs the
//! same number of statements, and they go out pipelined.

use tokio_postgres::error::SqlState;

/// Locks the head rows of the given channels in the order given (sorted),
/// creating the missing ones with the fresh epoch ($2), and returns each
/// as it stands after any writer before this one committed.
pub(crate) const LOCK_HEADS: &str = r#"
INSERT INTO channels AS c (channel, epoch, head, messages)
SELECT name, $2, 0, 0 FROM unnest($1::text[]) AS name ORDER BY name COLLATE "C"
ON CONFLICT (channel) DO UPDATE SET head = c.head
RETURNING channel, epoch, head, messages
"#;

/// The transaction's id (to settle a commit whose reply was lost) and
/// the backend serving it (to end it if it lingers).
pub(crate) const XACT: &str = "SELECT pg_current_xact_id()::text, pg_backend_pid()";

/// Dedupe keys already stored, by their position in the arrays.
pub(crate) const FIND_MESSAGES: &str = r#"
SELECT k.i, m.message_id, m.seq, m.ts
FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS k(channel, author, cmid, i)
JOIN messages m ON m.channel = k.channel AND m.author = k.author AND m.client_msg_id = k.cmid
"#;

/// Edit and delete targets remembered, by position.
pub(crate) const FIND_TARGETS: &str = r#"
SELECT k.i, m.author, m.body_seq, m.deleted_seq
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(channel, message_id, i)
JOIN messages m ON m.channel = k.channel AND m.message_id = k.message_id
"#;

/// Heads of receipt channels (read, not locked: a head only grows, and a
/// watermark a client asks for was read from a committed head).
pub(crate) const FIND_HEADS: &str =
    "SELECT channel, head FROM channels WHERE channel = ANY($1::text[])";

/// Watermarks in force, by position. Not locked: the upsert raises them
/// with `GREATEST`, so concurrent writers of one watermark keep the max.
pub(crate) const FIND_RECEIPTS: &str = r#"
SELECT k.i, r.up_to
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(channel, user_id, i)
JOIN receipts r ON r.channel = k.channel AND r.user_id = k.user_id
"#;

pub(crate) const INSERT_MESSAGES: &str = r#"
INSERT INTO messages (channel, message_id, author, client_msg_id, seq, ts, body_seq, deleted_seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::int8[], $6::int8[],
                     $7::int8[], $8::int8[])
"#;

pub(crate) const UPDATE_MESSAGES: &str = r#"
UPDATE messages m SET body_seq = t.body_seq, deleted_seq = t.deleted_seq
FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
     AS t(channel, message_id, body_seq, deleted_seq)
WHERE m.channel = t.channel AND m.message_id = t.message_id
"#;

pub(crate) const INSERT_EVENTS: &str = r#"
INSERT INTO events (channel, seq, at, kind, message_id, author, client_msg_id, ts, body)
SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int2[], $5::text[], $6::text[],
                     $7::bytea[], $8::int8[], $9::text[])
"#;

/// Tombstones: the entries whose bodies a later edit or the deletion
/// superseded (if still retained).
pub(crate) const DROP_BODIES: &str = r#"
UPDATE events e SET body = NULL
FROM unnest($1::text[], $2::int8[]) AS t(channel, seq)
WHERE e.channel = t.channel AND e.seq = t.seq AND e.body IS NOT NULL
"#;

pub(crate) const SET_HEADS: &str = r#"
UPDATE channels c SET head = t.head, messages = t.messages
FROM unnest($1::text[], $2::int8[], $3::int8[]) AS t(channel, head, messages)
WHERE c.channel = t.channel
"#;

/// The rows the lock created for channels of which nothing committed.
pub(crate) const DROP_UNWRITTEN: &str =
    "DELETE FROM channels WHERE channel = ANY($1::text[]) AND head = 0";

/// Count retention: the oldest events through each cut, at most $3 per
/// channel from the oldest (retained history stays contiguous).
pub(crate) const PRUNE_EVENTS: &str = r#"
DELETE FROM events e USING (
    SELECT t.channel, LEAST(t.cut, o.oldest + $3 - 1) AS last
    FROM unnest($1::text[], $2::int8[]) AS t(channel, cut)
    CROSS JOIN LATERAL (SELECT min(seq) AS oldest FROM events WHERE channel = t.channel) o
) d
WHERE e.channel = d.channel AND e.seq <= d.last
"#;

/// Dedupe memory: the oldest $2[i] messages of each channel.
pub(crate) const FORGET_MESSAGES: &str = r#"
DELETE FROM messages m USING (
    SELECT t.channel, f.seq
    FROM unnest($1::text[], $2::int8[]) AS t(channel, n)
    CROSS JOIN LATERAL (
        SELECT seq FROM messages WHERE channel = t.channel ORDER BY seq LIMIT t.n
    ) f
) d
WHERE m.channel = d.channel AND m.seq = d.seq
"#;

/// Raises watermarks (sorted keys: concurrent writers lock in one order).
pub(crate) const RAISE_RECEIPTS: &str = r#"
INSERT INTO receipts AS r (channel, user_id, up_to)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
ON CONFLICT (channel, user_id) DO UPDATE SET up_to = GREATEST(r.up_to, excluded.up_to)
"#;

/// Whether a transaction committed: 'committed', 'aborted' or
/// 'in progress'.
pub(crate) const XACT_STATUS: &str = "SELECT pg_xact_status($1::text::xid8)";

/// Ends the backend of a transaction whose outcome is being settled, so
/// it cannot commit later.
pub(crate) const END_BACKEND: &str = "SELECT pg_terminate_backend($1)";

/// A channel's epoch and head.
pub(crate) const HEAD: &str = "SELECT epoch, head FROM channels WHERE channel = $1";

/// The columns of an event, after the channel's epoch, head and oldest
/// retained seq (one statement: one snapshot).
const READ_COLUMNS: &str = "c.epoch, c.head, o.oldest, e.seq, e.kind, e.message_id, e.author, \
     e.client_msg_id, e.ts, e.body";

/// A page after $2, at most $3 events, cut by body bytes: an event is
/// returned while the bodies before it weigh at most $4. A body is part of
/// its event's wire length, so this returns every event the exact byte
/// budget (applied afterwards) keeps, and what is sent stays near the
/// budget however heavy the bodies are.
pub(crate) fn read_after() -> String {
    read_page("AND seq > $2 ORDER BY seq LIMIT $3", "seq", "$4")
}

/// The newest $2 events, newest first, cut by body bytes ($3) as
/// [`read_after`] does.
pub(crate) fn read_latest() -> String {
    read_page("ORDER BY seq DESC LIMIT $2", "seq DESC", "$3")
}

fn read_page(window: &str, order: &str, max_bytes: &str) -> String {
    format!(
        "SELECT {READ_COLUMNS}
         FROM channels c
         CROSS JOIN LATERAL (SELECT min(seq) AS oldest FROM events WHERE channel = c.channel) o
         LEFT JOIN LATERAL (
             SELECT * FROM (
                 SELECT p.*, coalesce(sum(octet_length(p.body)) OVER (
                     ORDER BY p.{order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
                 ), 0) AS before
                 FROM (SELECT * FROM events WHERE channel = c.channel {window}) p
             ) w WHERE w.before <= {max_bytes}
         ) e ON true
         WHERE c.channel = $1
         ORDER BY e.{order}"
    )
}

/// The age sweep, one step: locks up to $2 head rows after channel $1
/// (skipping those a writer holds: they are swept next time) and deletes,
/// per channel, the oldest events stamped before $3, at most $4 from the
/// oldest, stopping at the first younger one (retained history stays
/// contiguous). Returns the last channel looked at and the events deleted.
pub(crate) const SWEEP_AGE: &str = r#"
WITH locked AS (
    SELECT channel FROM channels WHERE channel > $1 ORDER BY channel LIMIT $2
    FOR UPDATE SKIP LOCKED
), cut AS (
    SELECT l.channel, o.last FROM locked l
    CROSS JOIN LATERAL (
        SELECT max(w.seq) AS last FROM (
            SELECT f.seq, bool_and(f.at < $3) OVER (ORDER BY f.seq) AS old
            FROM (SELECT seq, at FROM events WHERE channel = l.channel ORDER BY seq LIMIT $4) f
        ) w WHERE w.old
    ) o
    WHERE o.last IS NOT NULL
), gone AS (
    DELETE FROM events e USING cut WHERE e.channel = cut.channel AND e.seq <= cut.last
    RETURNING 1
)
SELECT (SELECT max(channel) FROM locked), (SELECT count(*) FROM gone)
"#;

/// Whether an error means the statement reached the server and was
/// answered (the server processes a connection's statements in order, so
/// anything after an answered failure in the same transaction cannot
/// commit): a server error, not a lost connection.
pub(crate) fn answered(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some()
}

/// Whether the server cannot be reached at all (no connection could be
/// made, or it refuses new ones while starting or stopping), as opposed to
/// one connection lost or one statement failing.
pub(crate) fn unreachable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::ADMIN_SHUTDOWN,
        None => true,
    }
}
