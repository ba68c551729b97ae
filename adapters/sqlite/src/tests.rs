//! Tests that need the store's insides: holding its threads, failing its
//! commits, killing its writer, and reading its database behind its back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{AppendEntry, AppendOutcome, ReadFrom, StoreCommand, StoreError};
use lockstep_core::wire::Body;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::*;
use crate::writer::Writer;

/// A test's instruction to the writer thread.
pub(crate) enum WriterTest {
    /// Block until the sender sends or is dropped.
    Hold(std::sync::mpsc::Receiver<()>),
    /// Run SQL on the writer's connection, outside any batch; answer the
    /// first column of the first row, if any.
    Query(String, oneshot::Sender<Result<Option<i64>, String>>),
    /// Make the next `COMMIT` fail this way.
    FailCommit(CommitFault),
    /// Panic.
    Crash,
}

/// How an injected `COMMIT` failure leaves the database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CommitFault {
    /// Nothing committed; the transaction is still open.
    Refused,
    /// The transaction committed, yet the error says otherwise (an fsync
    /// that failed after the commit record was written).
    StoredAnyway,
    /// The transaction was rolled back with the error (its end in doubt).
    LostAnyway,
}

impl WriterTest {
    pub(crate) fn run(self, w: &mut Writer) {
        match self {
            WriterTest::Hold(release) => {
                let _ = release.recv();
            }
            WriterTest::Query(sql, answer) => {
                let result = w
                    .conn
                    .query_row(&sql, [], |r| r.get::<_, i64>(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e.to_string()),
                    });
                let _ = answer.send(result);
            }
            WriterTest::FailCommit(fault) => w.commit_fault = Some(fault),
            WriterTest::Crash => panic!("test: the writer thread dies"),
        }
    }
}

impl CommitFault {
    pub(crate) fn apply(self, conn: &Connection) -> rusqlite::Result<()> {
        let fault = Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some("test: injected commit failure".into()),
        ));
        match self {
            CommitFault::Refused => fault,
            CommitFault::StoredAnyway => conn.execute_batch("COMMIT").and(fault),
            CommitFault::LostAnyway => conn.execute_batch("ROLLBACK").and(fault),
        }
    }
}

/// A test's instruction to a reader thread.
pub(crate) enum ReaderTest {
    /// Block until the sender sends or is dropped.
    Hold(std::sync::mpsc::Receiver<()>),
    /// Panic.
    Crash,
}

impl ReaderTest {
    pub(crate) fn run(self) {
        match self {
            ReaderTest::Hold(release) => {
                let _ = release.recv();
            }
            ReaderTest::Crash => panic!("test: a reader thread dies"),
        }
    }
}

// ---------------------------------------------------------------- helpers

fn db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-sqlite-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    path
}

fn open(name: &str, config: SqliteConfig) -> (SqliteStore, PathBuf) {
    let path = db(name);
    let store = SqliteStore::open_with(
        &path,
        SqliteConfig {
            durability: Durability::Normal,
            ..config
        },
    )
    .unwrap();
    (store, path)
}

fn ch(s: &str) -> ChannelId {
    ChannelId::new(s).unwrap()
}

fn message(cmid: &str, body: &Body) -> AppendEntry {
    AppendEntry::Message {
        author: UserId::new("alice").unwrap(),
        client_msg_id: ClientMsgId::new(cmid).unwrap(),
        body: body.clone(),
        ts: 1,
    }
}

fn append(channel: &str, cmids: &[&str]) -> StoreCommand {
    let entries = cmids.iter().map(|c| message(c, &Body::text(*c))).collect();
    StoreCommand::Append {
        channel: ch(channel),
        entries,
        chain: lockstep_core::store::AppendChain::Start,
    }
}

/// [`append`] issued behind appends of its channel still in flight.
fn append_behind(channel: &str, cmids: &[&str]) -> StoreCommand {
    match append(channel, cmids) {
        StoreCommand::Append {
            channel, entries, ..
        } => StoreCommand::Append {
            channel,
            entries,
            chain: lockstep_core::store::AppendChain::Behind,
        },
        other => other,
    }
}

fn read(channel: &str, after: u64) -> StoreCommand {
    StoreCommand::Read {
        channel: ch(channel),
        from: ReadFrom::After(Seq(after)),
        limit: 1_000,
        max_bytes: usize::MAX,
    }
}

/// The seqs a store command appended, or why it failed.
fn seqs(outcome: &Result<StoreReply, StoreError>) -> Result<Vec<u64>, String> {
    match outcome {
        Ok(StoreReply::Appended(outcomes)) => Ok(outcomes
            .iter()
            .filter_map(AppendOutcome::appended)
            .map(|e| e.seq().0)
            .collect()),
        Ok(other) => Err(format!("not an append: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

async fn writer_job(s: &SqliteStore, test: WriterTest) {
    s.writer.send(writer::Job::Test(test)).unwrap();
}

/// Holds the writer until the returned sender is dropped (or sends).
async fn hold_writer(s: &SqliteStore) -> std::sync::mpsc::Sender<()> {
    let (release, hold) = std::sync::mpsc::channel();
    writer_job(s, WriterTest::Hold(hold)).await;
    release
}

async fn query(s: &SqliteStore, sql: &str) -> Option<i64> {
    let (tx, rx) = oneshot::channel();
    writer_job(s, WriterTest::Query(sql.into(), tx)).await;
    rx.await.unwrap().unwrap()
}

/// Queues `cmd` for the writer now, in order; the outcome comes later.
async fn queue(
    s: &SqliteStore,
    cmd: StoreCommand,
) -> oneshot::Receiver<Result<StoreReply, StoreError>> {
    let (reply, outcome) = oneshot::channel();
    s.writer
        .send(writer::Job::Command {
            cmd: Command::from(cmd),
            reply,
        })
        .unwrap();
    outcome
}

async fn outcome(
    rx: oneshot::Receiver<Result<StoreReply, StoreError>>,
) -> Result<StoreReply, StoreError> {
    rx.await.unwrap_or(Err(StoreError::ShuttingDown))
}

/// Queues `cmds` behind a held writer, in order, then releases it; the
/// outcomes, in order.
async fn behind_held_writer(
    s: &SqliteStore,
    cmds: impl IntoIterator<Item = StoreCommand>,
) -> Vec<Result<StoreReply, StoreError>> {
    let release = hold_writer(s).await;
    let mut pending = Vec::new();
    for cmd in cmds {
        pending.push(queue(s, cmd).await);
    }
    drop(release);
    let mut outcomes = Vec::new();
    for p in pending {
        outcomes.push(outcome(p).await);
    }
    outcomes
}

/// A connection of the test's own to the store's file.
fn side(path: &PathBuf) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ------------------------------------------------------ reads beside writes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_completes_while_every_reader_is_busy() {
    let (s, _path) = open("readers-busy.db", SqliteConfig::default());
    s.execute(append("g", &["before"])).await.unwrap();
    let readers = s.readers.clone().unwrap();
    let mut releases = Vec::new();
    for _ in 0..2 {
        let (release, hold) = std::sync::mpsc::channel();
        readers
            .send(reader::Job::Test(ReaderTest::Hold(hold)))
            .await
            .unwrap();
        releases.push(release);
    }
    // Queued behind the held readers.
    let reading = {
        let s = s.clone();
        tokio::spawn(async move { s.execute(read("g", 0)).await })
    };
    // The writer does not wait for them.
    let appended = s.execute(append("g", &["during"])).await;
    assert_eq!(seqs(&appended), Ok(vec![2]));
    let head = s.execute(StoreCommand::Head { channel: ch("g") });
    assert!(!reading.is_finished(), "the readers are held");
    drop(releases);
    let StoreReply::Events(page) = reading.await.unwrap().unwrap() else {
        panic!("not a page")
    };
    assert_eq!(page.head, Seq(2), "a read that ran after the ack sees it");
    assert_eq!(
        head.await.unwrap(),
        StoreReply::Head {
            epoch: page.epoch,
            head: Seq(2)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_issued_after_an_ack_sees_the_append() {
    let (s, _path) = open("read-your-writes.db", SqliteConfig::default());
    // Another task keeps the readers and the writer busy meanwhile.
    let noise = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                s.execute(append("noise", &[&format!("n{i}")]))
                    .await
                    .unwrap();
                s.execute(read("noise", 0)).await.unwrap();
            }
        })
    };
    for i in 1..=300_u64 {
        let cmid = format!("c{i}");
        assert_eq!(seqs(&s.execute(append("g", &[&cmid])).await), Ok(vec![i]));
        let StoreReply::Events(page) = s.execute(read("g", i - 1)).await.unwrap() else {
            panic!("not a page")
        };
        assert_eq!(
            (page.head, page.events.first().map(|e| e.seq().0)),
            (Seq(i), Some(i))
        );
        let head = s.execute(StoreCommand::Head { channel: ch("g") }).await;
        assert!(matches!(head, Ok(StoreReply::Head { head, .. }) if head == Seq(i)));
    }
    noise.await.unwrap();
}

// ----------------------------------------------------- faults and the truth

/// Checks each command's reported outcome against the database: an
/// appended message is there, with its seq and body; a failed one's dedupe
/// key is not.
fn assert_outcomes_match_the_disk(
    path: &PathBuf,
    sent: &[(String, Vec<String>)],
    outcomes: &[Result<StoreReply, StoreError>],
) -> (usize, usize) {
    let conn = side(path);
    let (mut stored, mut failed) = (0, 0);
    for ((channel, cmids), outcome) in sent.iter().zip(outcomes) {
        for (i, cmid) in cmids.iter().enumerate() {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT m.seq, e.event FROM messages m JOIN events e
                     ON e.channel = m.channel AND e.seq = m.seq
                     WHERE m.channel = ?1 AND m.client_msg_id = ?2",
                    [channel, cmid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .unwrap();
            match seqs(outcome) {
                Ok(seqs) => {
                    let (seq, event) = row.unwrap_or_else(|| {
                        panic!("{channel}/{cmid} was acknowledged but is not stored")
                    });
                    assert_eq!(seq as u64, seqs[i], "{channel}/{cmid}");
                    assert!(event.contains(cmid.as_str()), "{event}");
                    stored += 1;
                }
                Err(why) => {
                    assert!(
                        row.is_none(),
                        "{channel}/{cmid} was reported failed ({why}) but is stored"
                    );
                    failed += 1;
                }
            }
        }
    }
    // Heads agree with what is stored.
    let mut heads = conn
        .prepare("SELECT channel, head, (SELECT max(seq) FROM events e WHERE e.channel = c.channel) FROM channels c")
        .unwrap();
    for row in heads
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .unwrap()
    {
        let (channel, head, max) = row.unwrap();
        assert_eq!(Some(head), max, "{channel}'s head");
    }
    (stored, failed)
}

use rusqlite::OptionalExtension;

/// Queues `sent` behind a held writer so they share one group commit, then
/// releases it; the outcomes, in order.
async fn group_commit(
    s: &SqliteStore,
    sent: &[(String, Vec<String>)],
    body: &Body,
) -> Vec<Result<StoreReply, StoreError>> {
    let cmds = sent.iter().map(|(channel, cmids)| StoreCommand::Append {
        channel: ch(channel),
        entries: cmids.iter().map(|c| message(c, body)).collect(),
        chain: lockstep_core::store::AppendChain::Start,
    });
    behind_held_writer(s, cmds).await
}

fn commands(n: usize, entries: usize, tag: &str) -> Vec<(String, Vec<String>)> {
    (0..n)
        .map(|i| {
            (
                format!("{tag}{}", i % 5),
                (0..entries).map(|j| format!("{tag}-{i}-{j}")).collect(),
            )
        })
        .collect()
}

/// A store in `name` whose message `k1` in channel `c` was stored, then
/// damaged behind the store's back (a negative seq), so a later command
/// repeating it fails half-way.
async fn with_damaged_k1(name: &str) -> (SqliteStore, PathBuf) {
    let (s, path) = open(name, SqliteConfig::default());
    assert_eq!(seqs(&s.execute(append("c", &["k1"])).await), Ok(vec![1]));
    let changed = side(&path)
        .execute(
            "UPDATE messages SET seq = -1 WHERE client_msg_id = 'k1'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    (s, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_in_a_group_commit_takes_nothing_else_down() {
    // `k1` is stored, then damaged behind the store's back (a negative
    // seq), so a later command repeating it fails half-way, after writing
    // `k2`. Held behind the writer, the failing command and eight others
    // share one group commit (not only "likely": the writer drains them as
    // one batch), and the failure stays the failing command's own.
    let (s, path) = with_damaged_k1("fail-group.db").await;
    let mut sent: Vec<(String, Vec<String>)> = (0..8)
        .map(|i| (format!("other{i}"), vec![format!("o{i}")]))
        .collect();
    sent.insert(4, ("c".into(), vec!["k2".into(), "k1".into()]));
    let outcomes = group_commit(&s, &sent, &Body::text("x")).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 4 {
            assert!(
                matches!(outcome, Err(StoreError::Unavailable(_))),
                "{outcome:?}"
            );
        } else {
            assert_eq!(seqs(outcome), Ok(vec![1]), "command {i}");
        }
    }
    // `k2` was rolled back with its command: appending it again is new.
    assert_eq!(seqs(&s.execute(append("c", &["k2"])).await), Ok(vec![2]));
    let conn = side(&path);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM events WHERE channel = 'c'"),
        2
    );
    for i in 0..8 {
        let sql = format!("SELECT count(*) FROM events WHERE channel = 'other{i}'");
        assert_eq!(count(&conn, &sql), 1);
    }
}

/// The chain rule across transactions: one command a batch, the first
/// append's commit fails, and the appends of its channel issued behind it
/// fail too, in later transactions, while other channels go on; an append
/// that starts a new chain is stored after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_issued_behind_a_failed_commit_fail_in_later_transactions_too() {
    let config = SqliteConfig {
        batch_max: 1,
        ..SqliteConfig::default()
    };
    let (s, path) = open("chain-commit.db", config);
    assert_eq!(seqs(&s.execute(append("a", &["a0"])).await), Ok(vec![1]));
    writer_job(&s, WriterTest::FailCommit(CommitFault::Refused)).await;
    let cmds = [
        append("a", &["a1"]),
        append_behind("a", &["a2"]),
        append("b", &["b1"]),
        append_behind("a", &["a3"]),
    ];
    let outcomes: Vec<_> = behind_held_writer(&s, cmds)
        .await
        .iter()
        .map(seqs)
        .collect();
    assert!(outcomes[0].is_err(), "{outcomes:?}");
    assert!(
        outcomes[1]
            .as_ref()
            .is_err_and(|e| e.contains("an earlier append of this channel failed")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Ok(vec![1]), "another channel goes on");
    assert!(outcomes[3].is_err(), "{outcomes:?}");
    assert_eq!(seqs(&s.execute(append("a", &["a1"])).await), Ok(vec![2]));
    let conn = side(&path);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM events WHERE channel = 'a'"),
        2
    );
}

/// The chain rule inside one group commit: an append that fails in its
/// savepoint fails the append of its channel issued behind it in the same
/// transaction; the others commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_behind_a_failed_one_in_the_same_group_commit_fails_too() {
    let (s, path) = with_damaged_k1("chain-group.db").await;
    let cmds = [
        append("c", &["k2", "k1"]),
        append("d", &["d1"]),
        append_behind("c", &["k3"]),
    ];
    let outcomes: Vec<_> = behind_held_writer(&s, cmds)
        .await
        .iter()
        .map(seqs)
        .collect();
    assert!(outcomes[0].is_err(), "{outcomes:?}");
    assert_eq!(outcomes[1], Ok(vec![1]));
    assert!(
        outcomes[2].is_err(),
        "k3 may not commit before k2: {outcomes:?}"
    );
    let conn = side(&path);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM events WHERE channel = 'c'"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_midway_through_a_group_commit_loses_nothing_acknowledged() {
    let (s, path) = open(
        "full.db",
        SqliteConfig {
            readers: 0,
            ..SqliteConfig::default()
        },
    );
    s.execute(append("warm", &["w"])).await.unwrap();
    let pages = query(&s, "PRAGMA page_count").await.unwrap();
    // Room for a few of the commands below (3 KiB bodies, two a command).
    query(&s, &format!("PRAGMA max_page_count = {}", pages + 12)).await;
    let body = Body::text("x".repeat(3_000));
    let sent = commands(40, 2, "f");
    let outcomes = group_commit(&s, &sent, &body).await;
    let (stored, failed) = assert_outcomes_match_the_disk(&path, &sent, &outcomes);
    assert!(
        stored > 0 && failed > 0,
        "the disk filled midway: {stored} stored, {failed} failed: {:?}",
        outcomes
            .iter()
            .map(|o| o.as_ref().err())
            .collect::<Vec<_>>()
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(StoreError::Unavailable(_))))
    );
    // Room again: the store goes on where the disk left it.
    query(&s, "PRAGMA max_page_count = 1073741823").await;
    let again = s.execute(append("f0", &["after"])).await;
    let StoreReply::Events(page) = s.execute(read("f0", 0)).await.unwrap() else {
        panic!()
    };
    assert_eq!(seqs(&again), Ok(vec![page.head.0]));
    let seqs_f0: Vec<u64> = page.events.iter().map(|e| e.seq().0).collect();
    assert_eq!(seqs_f0, (1..=page.head.0).collect::<Vec<_>>(), "contiguous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_full_for_a_lone_command_stores_none_of_it() {
    let (s, path) = open("full-lone.db", SqliteConfig::default());
    s.execute(append("warm", &["w"])).await.unwrap();
    let pages = query(&s, "PRAGMA page_count").await.unwrap();
    query(&s, &format!("PRAGMA max_page_count = {}", pages + 2)).await;
    let body = Body::text("y".repeat(3_000));
    let sent: Vec<(String, Vec<String>)> =
        vec![("lone".into(), (0..20).map(|j| format!("l{j}")).collect())];
    let entries = sent[0].1.iter().map(|c| message(c, &body)).collect();
    let outcome = s
        .execute(StoreCommand::Append {
            channel: ch("lone"),
            entries,
            chain: lockstep_core::store::AppendChain::Start,
        })
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert_eq!(
        assert_outcomes_match_the_disk(&path, &sent, &[outcome]),
        (0, 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_sqlite_rolls_the_transaction_back_the_whole_batch_fails() {
    let (s, path) = open("rolled-back.db", SqliteConfig::default());
    // As SQLite does on its own after some I/O errors: the statement
    // fails and the whole transaction is gone.
    query(
        &s,
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON events WHEN NEW.channel = 'boom'
         BEGIN SELECT RAISE(ROLLBACK, 'test: transaction rolled back'); END",
    )
    .await;
    let sent: Vec<(String, Vec<String>)> = ["a", "b", "boom", "c", "d"]
        .iter()
        .map(|c| (c.to_string(), vec![format!("{c}1")]))
        .collect();
    let outcomes = group_commit(&s, &sent, &Body::text("x")).await;
    // The commands before the failure are stored again on their own; the
    // failing one and those after it fail.
    assert_eq!(seqs(&outcomes[0]), Ok(vec![1]));
    assert_eq!(seqs(&outcomes[1]), Ok(vec![1]));
    for (o, (c, _)) in outcomes.iter().zip(&sent).skip(2) {
        assert!(matches!(o, Err(StoreError::Unavailable(_))), "{c}: {o:?}");
    }
    assert_eq!(
        assert_outcomes_match_the_disk(&path, &sent, &outcomes),
        (2, 3)
    );
    // A lone command the same way.
    let lone = s.execute(append("boom", &["x"])).await;
    assert!(matches!(lone, Err(StoreError::Unavailable(_))), "{lone:?}");
    // Nothing was half-stored: the next appends go on from what is.
    assert_eq!(seqs(&s.execute(append("a", &["a2"])).await), Ok(vec![2]));
    assert_eq!(seqs(&s.execute(append("c", &["c1"])).await), Ok(vec![1]));
    let conn = side(&path);
    assert_eq!(count(&conn, "SELECT count(*) FROM channels"), 3);
}

async fn batch_with_commit_fault(
    name: &str,
    fault: CommitFault,
) -> (PathBuf, Vec<Result<StoreReply, StoreError>>, SqliteStore) {
    let (s, path) = open(name, SqliteConfig::default());
    s.execute(append("a", &["a0"])).await.unwrap();
    writer_job(&s, WriterTest::FailCommit(fault)).await;
    let cmds = vec![
        append("a", &["a1", "a2"]),
        // A duplicate of this same batch: true only if the batch is stored.
        append("b", &["b1"]),
        StoreCommand::SetReceipt {
            channel: ch("a"),
            user: UserId::new("bob").unwrap(),
            up_to: Seq(1),
        },
        append("a", &["a1"]),
    ];
    let outcomes = behind_held_writer(&s, cmds).await;
    (path, outcomes, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_with_its_transaction_open_stores_nothing() {
    let (path, outcomes, s) =
        batch_with_commit_fault("commit-refused.db", CommitFault::Refused).await;
    assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
    let conn = side(&path);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM receipts"), 0);
    assert_eq!(seqs(&s.execute(append("a", &["a1"])).await), Ok(vec![2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_doubt_that_was_stored_is_answered_stored() {
    let (path, outcomes, s) =
        batch_with_commit_fault("commit-stored.db", CommitFault::StoredAnyway).await;
    assert_eq!(seqs(&outcomes[0]), Ok(vec![2, 3]));
    assert_eq!(seqs(&outcomes[1]), Ok(vec![1]));
    assert_eq!(
        outcomes[2],
        Ok(StoreReply::Receipt {
            up_to: Seq(1),
            advanced: true
        })
    );
    assert_eq!(
        seqs(&outcomes[3]),
        Ok(vec![]),
        "a duplicate: {:?}",
        outcomes[3]
    );
    let conn = side(&path);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 4);
    assert_eq!(count(&conn, "SELECT up_to FROM receipts"), 1);
    assert_eq!(seqs(&s.execute(append("a", &["a3"])).await), Ok(vec![4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_doubt_that_was_lost_is_answered_failed() {
    let (path, outcomes, s) =
        batch_with_commit_fault("commit-lost.db", CommitFault::LostAnyway).await;
    // The duplicate wrote nothing, but its answer rested on a1 of this
    // batch, which is not stored: it fails too.
    assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
    let conn = side(&path);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 1);
    assert_eq!(seqs(&s.execute(append("a", &["a1"])).await), Ok(vec![2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_fails_writes_at_once_and_is_not_alive() {
    let (s, _path) = open("dead-writer.db", SqliteConfig::default());
    s.execute(append("g", &["1"])).await.unwrap();
    assert!(s.is_alive());
    let release = hold_writer(&s).await;
    writer_job(&s, WriterTest::Crash).await;
    let queued = queue(&s, append("g", &["2"])).await;
    drop(release);
    assert_eq!(outcome(queued).await, Err(StoreError::ShuttingDown));
    eventually("the store reports its writer dead", || !s.is_alive()).await;
    for cmd in [
        append("g", &["3"]),
        StoreCommand::SetReceipt {
            channel: ch("g"),
            user: UserId::new("bob").unwrap(),
            up_to: Seq(1),
        },
    ] {
        let answer = tokio::time::timeout(Duration::from_secs(10), s.execute(cmd)).await;
        assert_eq!(
            answer,
            Ok(Err(StoreError::ShuttingDown)),
            "at once, not hanging"
        );
    }
    // History stays readable.
    let StoreReply::Events(page) = s.execute(read("g", 0)).await.unwrap() else {
        panic!()
    };
    assert_eq!(page.head, Seq(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_reader_makes_the_store_not_alive() {
    let (s, _path) = open("dead-reader.db", SqliteConfig::default());
    assert!(s.is_alive());
    s.readers
        .as_ref()
        .unwrap()
        .send(reader::Job::Test(ReaderTest::Crash))
        .await
        .unwrap();
    eventually("the store reports a reader dead", || !s.is_alive()).await;
    // The other reader still serves.
    assert!(s.execute(read("g", 0)).await.is_ok());
}

// ------------------------------------------------------ retention, schema

#[tokio::test]
async fn reads_and_joins_of_unknown_channels_write_nothing() {
    let (s, path) = open("reads-write-nothing.db", SqliteConfig::default());
    let fresh = |r: StoreReply| match r {
        StoreReply::Head { epoch, head } => (epoch, head),
        other => panic!("{other:?}"),
    };
    let (epoch, _) = fresh(
        s.execute(StoreCommand::Head { channel: ch("x0") })
            .await
            .unwrap(),
    );
    for i in 0..500 {
        let channel = ch(&format!("x{i}"));
        s.execute(StoreCommand::Head {
            channel: channel.clone(),
        })
        .await
        .unwrap();
        s.execute(read(channel.as_str(), 0)).await.unwrap();
        s.execute(StoreCommand::SetReceipt {
            channel,
            user: UserId::new("u").unwrap(),
            up_to: Seq(0),
        })
        .await
        .unwrap();
    }
    let conn = side(&path);
    let rows = |t: &str| count(&conn, &format!("SELECT count(*) FROM {t}"));
    assert_eq!((rows("channels"), rows("receipts")), (0, 0));
    s.execute(append("x7", &["m"])).await.unwrap();
    assert_eq!(rows("channels"), 1);
    assert_eq!(
        fresh(
            s.execute(StoreCommand::Head { channel: ch("x7") })
                .await
                .unwrap()
        ),
        (epoch, Seq(1))
    );
    // The same epoch after a restart.
    drop(s);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(
        fresh(
            s.execute(StoreCommand::Head { channel: ch("y") })
                .await
                .unwrap()
        )
        .0,
        epoch
    );
}

#[tokio::test]
async fn dedupe_memory_keeps_the_newest_messages() {
    let (s, path) = open(
        "remember.db",
        SqliteConfig {
            remember: 3,
            retain: 2,
            ..SqliteConfig::default()
        },
    );
    for i in 0..6 {
        s.execute(append("g", &[&format!("c{i}")])).await.unwrap();
    }
    let conn = side(&path);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 3);
    assert_eq!(count(&conn, "SELECT messages FROM channels"), 3);
    assert_eq!(count(&conn, "SELECT count(*) FROM events"), 2);
    // c2 is forgotten: a retry is new; c3 is remembered: a duplicate.
    assert_eq!(seqs(&s.execute(append("g", &["c2"])).await), Ok(vec![7]));
    assert_eq!(seqs(&s.execute(append("g", &["c5"])).await), Ok(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_retention_drops_old_events_in_the_background() {
    let (s, path) = open(
        "age.db",
        SqliteConfig {
            retain_age: Some(Duration::from_secs(3_600)),
            maintenance_interval: Duration::from_millis(10),
            ..SqliteConfig::default()
        },
    );
    for i in 0..10 {
        s.execute(append("g", &[&format!("c{i}")])).await.unwrap();
        s.execute(append("h", &[&format!("c{i}")])).await.unwrap();
    }
    {
        // Pretend the first four of g are two hours old, and h's stamps
        // unknown (a migrated database): those stay.
        let conn = side(&path);
        conn.execute(
            "UPDATE events SET at = at - 7200000 WHERE channel = 'g' AND seq <= 4",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE events SET at = NULL WHERE channel = 'h' AND seq <= 4",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE events SET at = 0 WHERE channel = 'h' AND seq > 4",
            [],
        )
        .unwrap();
    }
    let oldest = |s: SqliteStore, c: &'static str| async move {
        let StoreReply::Events(p) = s.execute(read(c, 0)).await.unwrap() else {
            panic!()
        };
        (p.oldest_retained, p.events.first().map(|e| e.seq()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while oldest(s.clone(), "g").await != (Seq(5), Some(Seq(5))) {
        assert!(
            std::time::Instant::now() < deadline,
            "age retention never ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(oldest(s.clone(), "h").await, (Seq(1), Some(Seq(1))));
}

#[tokio::test]
async fn a_version_1_database_is_migrated_with_tombstones() {
    let path = db("v1.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(schema::SCHEMA_V1).unwrap();
        conn.execute_batch(
            r#"
            PRAGMA user_version = 1;
            INSERT INTO meta VALUES ('next_epoch', 103);
            INSERT INTO channels VALUES ('g', 100, 5), ('read-only', 101, 0), ('h', 102, 1);
            INSERT INTO events VALUES
              ('g', 1, '{"type":"message","channelId":"g","seq":1,"messageId":"m100.1","authorId":"alice","clientMsgId":"k1","body":"one","ts":7}'),
              ('g', 2, '{"type":"message","channelId":"g","seq":2,"messageId":"m100.2","authorId":"alice","clientMsgId":"k2","body":{"a":[1,2]},"ts":7}'),
              ('g', 3, '{"type":"updated","channelId":"g","seq":3,"messageId":"m100.1","body":"one, edited"}'),
              ('g', 4, '{"type":"updated","channelId":"g","seq":4,"messageId":"m100.1","body":"one, again"}'),
              ('g', 5, '{"type":"deleted","channelId":"g","seq":5,"messageId":"m100.2"}'),
              ('h', 1, '{"type":"message","channelId":"h","seq":1,"messageId":"m102.1","authorId":"bob","clientMsgId":"k1","body":"hi","ts":8}');
            INSERT INTO messages VALUES
              ('g', 'm100.1', 'alice', 'k1', 1, 7, NULL),
              ('g', 'm100.2', 'alice', 'k2', 2, 7, 5),
              ('h', 'm102.1', 'bob', 'k1', 1, 8, NULL);
            "#,
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let StoreReply::Events(g) = s.execute(read("g", 0)).await.unwrap() else {
        panic!()
    };
    let bodies: Vec<Option<String>> = g
        .events
        .iter()
        .map(|e| e.body().map(|b| b.json().to_owned()))
        .collect();
    assert_eq!(
        bodies,
        [None, None, None, Some("\"one, again\"".into()), None]
    );
    assert_eq!((g.epoch.0, g.head), (100, Seq(5)));
    // Stored texts stay the events' compact JSON.
    let conn = side(&path);
    let texts: Vec<String> = conn
        .prepare("SELECT event FROM events WHERE channel = 'g' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (text, event) in texts.iter().zip(&g.events) {
        assert_eq!(text, &serde_json::to_string(event).unwrap());
    }
    // The channel a read created is gone; new channels take the epoch the
    // counter had reached.
    assert_eq!(count(&conn, "SELECT count(*) FROM channels"), 2);
    let head = |c: &str| StoreCommand::Head { channel: ch(c) };
    assert_eq!(
        s.execute(head("read-only")).await.unwrap(),
        StoreReply::Head {
            epoch: lockstep_core::ids::Epoch(103),
            head: Seq(0)
        }
    );
    // Dedupe, edits and deletes go on.
    let edit = StoreCommand::Append {
        channel: ch("g"),
        entries: vec![
            AppendEntry::Update {
                target: lockstep_core::ids::MessageId::new("m100.1").unwrap(),
                actor: UserId::new("alice").unwrap(),
                rule: lockstep_core::store::ModifyRule::AuthorOnly,
                body: Body::text("three"),
            },
            message("k1", &Body::text("retry")),
        ],
        chain: lockstep_core::store::AppendChain::Start,
    };
    let outcomes = s.execute(edit).await;
    assert_eq!(seqs(&outcomes), Ok(vec![6]));
    let StoreReply::Events(g) = s.execute(read("g", 3)).await.unwrap() else {
        panic!()
    };
    let bodies: Vec<Option<&Body>> = g.events.iter().map(|e| e.body()).collect();
    assert_eq!(bodies, [None, None, Some(&Body::text("three"))]);
    assert_eq!(
        count(&conn, "SELECT messages FROM channels WHERE channel = 'g'"),
        2
    );
    assert_eq!(count(&conn, "PRAGMA user_version"), 2);
}

/// The query plan of `sql`, one detail line per step.
fn query_plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let params: Vec<&dyn rusqlite::ToSql> = (0..stmt.parameter_count()).map(|_| &1 as _).collect();
    stmt.query_map(params.as_slice(), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Found by the load bench: the dedupe memory's pruning, written as
/// `seq IN (SELECT .. LIMIT n)`, was planned as a walk over every row of the
/// channel (a search by channel alone), so a busy channel's commits slowed
/// twelvefold once it reached `remember`. A delete must find its rows by a
/// range of seqs; the reads take one row (`min`, `LIMIT 1`).
#[tokio::test]
async fn retention_finds_its_rows_by_seq_and_never_walks_a_channel() {
    let path = db("plans.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let walks = |sql: &str| {
        let plan = query_plan(&conn, sql);
        plan.iter().any(|d| d.starts_with("SCAN"))
            || sql.starts_with("DELETE") && !plan.first().is_some_and(|d| d.contains("seq<"))
    };
    for sql in ops::RETENTION_STATEMENTS {
        assert!(!walks(sql), "{sql}: {:?}", query_plan(&conn, sql));
    }
    let the_old_form = "DELETE FROM messages WHERE channel = ?1 AND seq IN
        (SELECT seq FROM messages WHERE channel = ?1 ORDER BY seq LIMIT ?2)";
    assert!(walks(the_old_form), "{:?}", query_plan(&conn, the_old_form));
}
