//! One store command as SQL, inside the caller's transaction (a savepoint
//! of the writer's group commit, or a reader's read transaction). Mirrors
//! `MemStore` rule for rule; the contract tests run both.

use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use lockstep_core::store::{
    AppendEntry, AppendOutcome, Existing, MessageState, Modify, ModifyRule, Page, READ_LIMIT_MAX,
    ReadFrom, StoreReply, decide_modify, decide_receipt,
};
use lockstep_core::wire::{Body, LogEvent, MessageDeleted, MessageUpdated, NewMessage, SendAck};
use rusqlite::{Connection, OptionalExtension, params};

/// Why a command failed inside the engine; becomes `unavailable`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored row does not decode (a corrupt or foreign database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

type OpResult<T> = Result<T, OpError>;

pub(crate) use lockstep_core::store::PRUNE_STEP;

/// What the store keeps (see [`SqliteConfig`](crate::SqliteConfig)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// Most events kept per channel.
    pub(crate) events: u64,
    /// Most messages remembered per channel (dedupe, edits, deletes).
    pub(crate) remember: u64,
}

/// What a write needs besides the command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// The epoch of every channel (the database has no resets).
    pub(crate) fresh_epoch: Epoch,
    pub(crate) retention: Retention,
    /// The writer's clock for this batch (Unix ms), stamped on each event
    /// for age retention.
    pub(crate) now_ms: u64,
}

/// A store command, sorted by what it needs: a read can be served by a
/// reader connection, a write only by the writer.
pub(crate) use lockstep_core::store::{ReadCommand, Routed as Command, WriteCommand};

/// Executes one command on `conn`, which is inside a transaction.
pub(crate) fn execute(conn: &Connection, ctx: &Ctx, cmd: Command) -> OpResult<StoreReply> {
    match cmd {
        Command::Read(read) => execute_read(conn, ctx.fresh_epoch, read),
        Command::Write(WriteCommand::Append {
            channel, entries, ..
        }) => {
            let mut log = Log::load(conn, ctx.fresh_epoch, &channel)?;
            let before = (log.head, log.messages);
            let outcomes = entries
                .into_iter()
                .map(|entry| log.append(conn, ctx.now_ms, entry))
                .collect::<OpResult<Vec<_>>>()?;
            // Nothing appended (all refused or duplicates): nothing written,
            // not even the channel's row.
            if (log.head, log.messages) != before {
                log.forget_beyond(conn, ctx.retention)?;
                log.save(conn)?;
            }
            Ok(StoreReply::Appended(outcomes))
        }
        Command::Write(WriteCommand::SetReceipt {
            channel,
            user,
            up_to,
        }) => Log::load(conn, ctx.fresh_epoch, &channel)?.set_receipt(conn, &user, up_to),
    }
}

/// Executes a read on `conn`, inside a read transaction (one snapshot).
pub(crate) fn execute_read(
    conn: &Connection,
    fresh_epoch: Epoch,
    cmd: ReadCommand,
) -> OpResult<StoreReply> {
    match cmd {
        ReadCommand::Read {
            channel,
            from,
            limit,
            max_bytes,
        } => Ok(StoreReply::Events(
            Log::load(conn, fresh_epoch, &channel)?.read(conn, from, limit, max_bytes)?,
        )),
        ReadCommand::Head { channel } => {
            let log = Log::load(conn, fresh_epoch, &channel)?;
            Ok(StoreReply::Head {
                epoch: log.epoch,
                head: log.head,
            })
        }
    }
}

/// Retention's statements run on every append command of a channel at its
/// limits, so each must be a search of an index, never a scan of the
/// channel's rows (a test holds their query plans to that).
#[cfg(test)]
pub(crate) const RETENTION_STATEMENTS: [&str; 4] = [
    OLDEST_EVENT,
    DELETE_EVENTS_THROUGH,
    NEWEST_TO_FORGET,
    FORGET_MESSAGES_THROUGH,
];

/// A channel's oldest retained event.
const OLDEST_EVENT: &str = "SELECT min(seq) FROM events WHERE channel = ?1";

/// Count retention: a channel's events up to a seq.
const DELETE_EVENTS_THROUGH: &str = "DELETE FROM events WHERE channel = ?1 AND seq <= ?2";

/// Dedupe memory: the seq of the ?2-th oldest remembered message (from 0).
const NEWEST_TO_FORGET: &str =
    "SELECT seq FROM messages WHERE channel = ?1 ORDER BY seq LIMIT 1 OFFSET ?2";

/// Dedupe memory: a channel's remembered messages up to a seq.
const FORGET_MESSAGES_THROUGH: &str = "DELETE FROM messages WHERE channel = ?1 AND seq <= ?2";

/// A channel's row: its identity, head and how many messages it remembers.
/// A channel nobody wrote to has no row: it reads as an empty log with the
/// database's fresh epoch, and gets its row with its first append.
struct Log {
    channel: ChannelId,
    epoch: Epoch,
    head: Seq,
    /// Rows of `messages` for this channel (dedupe memory).
    messages: u64,
}

impl Log {
    /// Loads the channel; one that was never written is empty, with the
    /// fresh epoch. Writes nothing.
    fn load(conn: &Connection, fresh_epoch: Epoch, channel: &ChannelId) -> OpResult<Log> {
        let row: Option<(i64, i64, i64)> = conn
            .prepare_cached("SELECT epoch, head, messages FROM channels WHERE channel = ?1")?
            .query_row([channel.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let (epoch, head, messages) = match row {
            Some((epoch, head, messages)) => {
                (Epoch(to_u64(epoch)?), to_u64(head)?, to_u64(messages)?)
            }
            None => (fresh_epoch, 0, 0),
        };
        Ok(Log {
            channel: channel.clone(),
            epoch,
            head: Seq(head),
            messages,
        })
    }

    /// Appends one entry and moves the head past it when committed.
    fn append(
        &mut self,
        conn: &Connection,
        at: u64,
        entry: AppendEntry,
    ) -> OpResult<AppendOutcome> {
        let outcome = match entry {
            AppendEntry::Message {
                author,
                client_msg_id,
                body,
                ts,
            } => self.append_message(conn, at, author, client_msg_id, body, ts),
            AppendEntry::Update {
                target,
                actor,
                rule,
                body,
            } => self.append_update(conn, at, target, &actor, rule, body),
            AppendEntry::Delete {
                target,
                actor,
                rule,
            } => self.append_delete(conn, at, target, &actor, rule),
        }?;
        if let AppendOutcome::Appended(event) = &outcome {
            self.head = event.seq();
        }
        Ok(outcome)
    }

    fn append_message(
        &mut self,
        conn: &Connection,
        at: u64,
        author: UserId,
        client_msg_id: ClientMsgId,
        body: Body,
        ts: u64,
    ) -> OpResult<AppendOutcome> {
        let seq = self.head.next();
        let id = MessageId::minted(self.epoch, seq);
        // Insert first, look up only on a conflict: a new message (the
        // common case) costs one index probe, not two.
        let inserted = conn
            .prepare_cached(
                "INSERT INTO messages (channel, message_id, author, client_msg_id, seq, ts, body_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)
                 ON CONFLICT (channel, author, client_msg_id) DO NOTHING",
            )?
            .execute(params![
                self.channel.as_str(),
                id.as_str(),
                author.as_str(),
                client_msg_id.as_str(),
                to_i64(seq.0)?,
                to_i64(ts)?
            ])?;
        if inserted == 0 {
            let (id, seq, ts): (String, i64, i64) = conn
                .prepare_cached(
                    "SELECT message_id, seq, ts FROM messages
                     WHERE channel = ?1 AND author = ?2 AND client_msg_id = ?3",
                )?
                .query_row(
                    params![
                        self.channel.as_str(),
                        author.as_str(),
                        client_msg_id.as_str()
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            return Ok(AppendOutcome::Duplicate(Existing::Message(SendAck {
                message_id: message_id(id)?,
                seq: Seq(to_u64(seq)?),
                ts: to_u64(ts)?,
            })));
        }
        self.messages += 1;
        self.commit(
            conn,
            at,
            LogEvent::Message(NewMessage {
                channel_id: self.channel.clone(),
                seq,
                message_id: id,
                author_id: author,
                client_msg_id,
                body: Some(body),
                ts,
            }),
        )
    }

    /// The target's author and state, if the message is remembered.
    fn target(
        &self,
        conn: &Connection,
        target: &MessageId,
    ) -> OpResult<Option<(String, MessageState)>> {
        let row: Option<(String, Option<i64>, Option<i64>)> = conn
            .prepare_cached(
                "SELECT author, deleted_seq, body_seq FROM messages
                 WHERE channel = ?1 AND message_id = ?2",
            )?
            .query_row(params![self.channel.as_str(), target.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((author, deleted, body)) = row else {
            return Ok(None);
        };
        let state = match (deleted, body) {
            (Some(seq), _) => MessageState::Deleted {
                seq: Seq(to_u64(seq)?),
            },
            (None, Some(seq)) => MessageState::Live {
                body: Seq(to_u64(seq)?),
            },
            (None, None) => return Err(OpError::Corrupt(format!("message {target} has no body"))),
        };
        Ok(Some((author, state)))
    }

    /// Applies the edit/delete rule to the remembered target: `Ok` with
    /// the entry whose body the change supersedes, or the outcome.
    fn decide(
        &self,
        conn: &Connection,
        target: &MessageId,
        actor: &UserId,
        rule: ModifyRule,
        change: Modify,
    ) -> OpResult<Result<Seq, AppendOutcome>> {
        let known = self.target(conn, target)?;
        Ok(decide_modify(
            known
                .as_ref()
                .map(|(author, state)| (author.as_str(), *state)),
            actor,
            rule,
            change,
        ))
    }

    fn append_update(
        &self,
        conn: &Connection,
        at: u64,
        target: MessageId,
        actor: &UserId,
        rule: ModifyRule,
        body: Body,
    ) -> OpResult<AppendOutcome> {
        let superseded = match self.decide(conn, &target, actor, rule, Modify::Update)? {
            Ok(superseded) => superseded,
            Err(outcome) => return Ok(outcome),
        };
        let seq = self.head.next();
        self.drop_body(conn, superseded)?;
        conn.prepare_cached(
            "UPDATE messages SET body_seq = ?3 WHERE channel = ?1 AND message_id = ?2",
        )?
        .execute(params![
            self.channel.as_str(),
            target.as_str(),
            to_i64(seq.0)?
        ])?;
        self.commit(
            conn,
            at,
            LogEvent::Updated(MessageUpdated {
                channel_id: self.channel.clone(),
                seq,
                message_id: target,
                body: Some(body),
            }),
        )
    }

    fn append_delete(
        &self,
        conn: &Connection,
        at: u64,
        target: MessageId,
        actor: &UserId,
        rule: ModifyRule,
    ) -> OpResult<AppendOutcome> {
        let superseded = match self.decide(conn, &target, actor, rule, Modify::Delete)? {
            Ok(superseded) => superseded,
            Err(outcome) => return Ok(outcome),
        };
        let seq = self.head.next();
        self.drop_body(conn, superseded)?;
        conn.prepare_cached(
            "UPDATE messages SET deleted_seq = ?3, body_seq = NULL
             WHERE channel = ?1 AND message_id = ?2",
        )?
        .execute(params![
            self.channel.as_str(),
            target.as_str(),
            to_i64(seq.0)?
        ])?;
        self.commit(
            conn,
            at,
            LogEvent::Deleted(MessageDeleted {
                channel_id: self.channel.clone(),
                seq,
                message_id: target,
            }),
        )
    }

    /// Makes the entry at `seq` a tombstone, if it is still retained: a
    /// later edit or the deletion superseded the body it holds.
    fn drop_body(&self, conn: &Connection, seq: Seq) -> OpResult<()> {
        let seq = to_i64(seq.0)?;
        let json: Option<String> = conn
            .prepare_cached("SELECT event FROM events WHERE channel = ?1 AND seq = ?2")?
            .query_row(params![self.channel.as_str(), seq], |r| r.get(0))
            .optional()?;
        let Some(json) = json else {
            return Ok(());
        };
        let mut event: LogEvent =
            serde_json::from_str(&json).map_err(|e| OpError::Corrupt(e.to_string()))?;
        event.drop_body();
        let json = serde_json::to_string(&event).map_err(|e| OpError::Corrupt(e.to_string()))?;
        conn.prepare_cached("UPDATE events SET event = ?3 WHERE channel = ?1 AND seq = ?2")?
            .execute(params![self.channel.as_str(), seq, json])?;
        Ok(())
    }

    /// Records `event` at `head + 1`, stamped `at` (the writer's clock);
    /// the caller moves the head (once per command, with [`Log::save`]).
    fn commit(&self, conn: &Connection, at: u64, event: LogEvent) -> OpResult<AppendOutcome> {
        let seq = to_i64(event.seq().0)?;
        let json = serde_json::to_string(&event).map_err(|e| OpError::Corrupt(e.to_string()))?;
        conn.prepare_cached(
            "INSERT INTO events (channel, seq, at, event) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![self.channel.as_str(), seq, to_i64(at)?, json])?;
        Ok(AppendOutcome::Appended(event))
    }

    /// Drops what falls out of retention after an append, a bounded step
    /// at a time: the oldest events beyond the newest `retention.events`,
    /// and the oldest messages' rows beyond the newest `retention.remember`.
    fn forget_beyond(&mut self, conn: &Connection, retention: Retention) -> OpResult<()> {
        if let Some(cut) = self.head.0.checked_sub(retention.events) {
            delete_events_through(conn, &self.channel, cut, PRUNE_STEP)?;
        }
        let excess = self.messages.saturating_sub(retention.remember);
        if excess > 0 {
            // The rows go as one range of the (channel, seq) index, up to
            // the seq of the newest one to forget. The bundled SQLite ran
            // the earlier `seq IN (SELECT .. LIMIT n)` form as a walk over
            // the channel's rows: once a busy channel reached its
            // `remember`, each append command cost a scan of 100,000 rows
            // and its commits fell from 25 K to 2 K messages a second
            // (found by the load bench, 10 subscribers / 2 publishers).
            let last: Option<i64> = conn
                .prepare_cached(NEWEST_TO_FORGET)?
                .query_row(
                    params![self.channel.as_str(), to_i64(excess.min(PRUNE_STEP) - 1)?],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(last) = last {
                let forgotten = conn
                    .prepare_cached(FORGET_MESSAGES_THROUGH)?
                    .execute(params![self.channel.as_str(), last])?;
                self.messages = self.messages.saturating_sub(forgotten as u64);
            }
        }
        Ok(())
    }

    /// Stores the head and message count reached by one command's appends
    /// (creating the channel's row on its first append): one row write
    /// per command instead of one per event.
    fn save(&self, conn: &Connection) -> OpResult<()> {
        conn.prepare_cached(
            "INSERT INTO channels (channel, epoch, head, messages) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel) DO UPDATE SET head = excluded.head, messages = excluded.messages",
        )?
        .execute(params![
            self.channel.as_str(),
            to_i64(self.epoch.0)?,
            to_i64(self.head.0)?,
            to_i64(self.messages)?
        ])?;
        Ok(())
    }

    fn read(
        &self,
        conn: &Connection,
        from: ReadFrom,
        limit: u64,
        max_bytes: usize,
    ) -> OpResult<Page> {
        let limit = limit.min(READ_LIMIT_MAX);
        // Retained history starts at the oldest row (rows go oldest first).
        let oldest: Option<i64> = conn
            .prepare_cached(OLDEST_EVENT)?
            .query_row([self.channel.as_str()], |r| r.get(0))?;
        let oldest_retained = match oldest {
            Some(seq) => Seq(to_u64(seq)?),
            None => self.head.next(),
        };
        // The stored text is the event's compact JSON, so its length is its
        // wire length: rows past the byte budget are measured, never parsed.
        let (sql, bound) = match from {
            ReadFrom::After(after) => (
                "SELECT event FROM events WHERE channel = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                after.0,
            ),
            ReadFrom::Latest => (
                "SELECT event FROM events WHERE channel = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT ?3",
                self.head.0,
            ),
        };
        let mut events = Vec::new();
        let mut total = 0usize;
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params![
            self.channel.as_str(),
            to_i64(bound)?,
            to_i64(limit)?
        ])?;
        while let Some(row) = rows.next()? {
            let json = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            total = total.saturating_add(json.len());
            if !events.is_empty() && total > max_bytes {
                break;
            }
            let event: LogEvent =
                serde_json::from_str(json).map_err(|e| OpError::Corrupt(e.to_string()))?;
            events.push(event);
        }
        if from == ReadFrom::Latest {
            events.reverse();
        }
        Ok(Page::new(self.epoch, events, self.head, oldest_retained))
    }

    fn set_receipt(&self, conn: &Connection, user: &UserId, up_to: Seq) -> OpResult<StoreReply> {
        let current: Option<i64> = if up_to > self.head {
            None
        } else {
            conn.prepare_cached("SELECT up_to FROM receipts WHERE channel = ?1 AND user = ?2")?
                .query_row(params![self.channel.as_str(), user.as_str()], |r| r.get(0))
                .optional()?
        };
        let current = Seq(current.map(to_u64).transpose()?.unwrap_or(0));
        let reply = decide_receipt(self.head, current, up_to);
        // Nothing to write unless it advances (so a channel nobody wrote
        // to, whose head is 0, gets nothing).
        if let StoreReply::Receipt { advanced: true, .. } = reply {
            conn.prepare_cached(
                "INSERT INTO receipts (channel, user, up_to) VALUES (?1, ?2, ?3)
                 ON CONFLICT (channel, user) DO UPDATE SET up_to = excluded.up_to",
            )?
            .execute(params![
                self.channel.as_str(),
                user.as_str(),
                to_i64(up_to.0)?
            ])?;
        }
        Ok(reply)
    }
}

/// Deletes the oldest events of `channel` up to seq `through`, at most
/// `step` of them (retained history stays contiguous: it only loses its
/// oldest rows). Returns how many went.
pub(crate) fn delete_events_through(
    conn: &Connection,
    channel: &ChannelId,
    through: u64,
    step: u64,
) -> OpResult<usize> {
    let oldest: Option<i64> = conn
        .prepare_cached(OLDEST_EVENT)?
        .query_row([channel.as_str()], |r| r.get(0))?;
    let Some(oldest) = oldest else {
        return Ok(0);
    };
    let last = through.min(to_u64(oldest)?.saturating_add(step - 1));
    Ok(conn
        .prepare_cached(DELETE_EVENTS_THROUGH)?
        .execute(params![channel.as_str(), to_i64(last)?])?)
}

fn message_id(s: String) -> OpResult<MessageId> {
    MessageId::new(s).map_err(|e| OpError::Corrupt(e.to_string()))
}

pub(crate) fn to_u64(v: i64) -> OpResult<u64> {
    u64::try_from(v).map_err(|_| OpError::Corrupt(format!("negative number {v}")))
}

pub(crate) fn to_i64(v: u64) -> OpResult<i64> {
    i64::try_from(v).map_err(|_| OpError::Corrupt(format!("number {v} beyond sqlite's range")))
}
