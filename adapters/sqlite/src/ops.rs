//! One store command as SQL, inside the caller's transaction (a savepoint
//! of the writer's group commit). Mirrors `MemStore` rule for rule; the
//! contract tests run both.

use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use lockstep_core::store::{
    AppendEntry, AppendOutcome, Existing, ModifyRule, Page, READ_LIMIT_MAX, ReadFrom, Refusal,
    StoreCommand, StoreReply,
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

/// Executes one command on `conn`, which is inside a transaction.
pub(crate) fn execute(
    conn: &Connection,
    next_epoch: &mut u64,
    cmd: StoreCommand,
) -> OpResult<StoreReply> {
    match cmd {
        StoreCommand::Append { channel, entries } => {
            let mut log = Log::touch(conn, next_epoch, &channel)?;
            let head = log.head;
            let outcomes = entries
                .into_iter()
                .map(|entry| log.append(conn, entry))
                .collect::<OpResult<Vec<_>>>()?;
            if log.head != head {
                log.save_head(conn)?;
            }
            Ok(StoreReply::Appended(outcomes))
        }
        StoreCommand::Read {
            channel,
            from,
            limit,
            max_bytes,
        } => Ok(StoreReply::Events(
            Log::touch(conn, next_epoch, &channel)?.read(conn, from, limit, max_bytes)?,
        )),
        StoreCommand::Head { channel } => {
            let log = Log::touch(conn, next_epoch, &channel)?;
            Ok(StoreReply::Head {
                epoch: log.epoch,
                head: log.head,
            })
        }
        StoreCommand::SetReceipt {
            channel,
            user,
            up_to,
        } => Log::touch(conn, next_epoch, &channel)?.set_receipt(conn, &user, up_to),
    }
}

/// A channel's row: its identity and head.
struct Log {
    channel: ChannelId,
    epoch: Epoch,
    head: Seq,
}

impl Log {
    /// Loads the channel, creating it (with the next epoch) on first touch
    /// so its epoch is fixed from the first read on.
    fn touch(conn: &Connection, next_epoch: &mut u64, channel: &ChannelId) -> OpResult<Log> {
        let row: Option<(i64, i64)> = conn
            .prepare_cached("SELECT epoch, head FROM channels WHERE channel = ?1")?
            .query_row([channel.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((epoch, head)) = row {
            return Ok(Log {
                channel: channel.clone(),
                epoch: Epoch(to_u64(epoch)?),
                head: Seq(to_u64(head)?),
            });
        }
        let epoch = *next_epoch;
        conn.prepare_cached("INSERT INTO channels (channel, epoch, head) VALUES (?1, ?2, 0)")?
            .execute(params![channel.as_str(), to_i64(epoch)?])?;
        conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'next_epoch'")?
            .execute([to_i64(epoch.saturating_add(1))?])?;
        *next_epoch = epoch.saturating_add(1);
        Ok(Log {
            channel: channel.clone(),
            epoch: Epoch(epoch),
            head: Seq::ZERO,
        })
    }

    /// Appends one entry and moves the head past it when committed.
    fn append(&mut self, conn: &Connection, entry: AppendEntry) -> OpResult<AppendOutcome> {
        let outcome = match entry {
            AppendEntry::Message {
                author,
                client_msg_id,
                body,
                ts,
            } => self.append_message(conn, author, client_msg_id, body, ts),
            AppendEntry::Update {
                target,
                actor,
                rule,
                body,
            } => self.append_update(conn, target, &actor, rule, body),
            AppendEntry::Delete {
                target,
                actor,
                rule,
            } => self.append_delete(conn, target, &actor, rule),
        }?;
        if let AppendOutcome::Appended(event) = &outcome {
            self.head = event.seq();
        }
        Ok(outcome)
    }

    fn append_message(
        &self,
        conn: &Connection,
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
                "INSERT INTO messages (channel, message_id, author, client_msg_id, seq, ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
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
        self.commit(
            conn,
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

    /// The target's author and deletion seq, if the message exists.
    fn target(
        &self,
        conn: &Connection,
        target: &MessageId,
    ) -> OpResult<Option<(String, Option<i64>)>> {
        Ok(conn
            .prepare_cached(
                "SELECT author, deleted_seq FROM messages WHERE channel = ?1 AND message_id = ?2",
            )?
            .query_row(params![self.channel.as_str(), target.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    fn append_update(
        &self,
        conn: &Connection,
        target: MessageId,
        actor: &UserId,
        rule: ModifyRule,
        body: Body,
    ) -> OpResult<AppendOutcome> {
        // Existence (and not deleted) is checked before authorship.
        let Some((author, None)) = self.target(conn, &target)? else {
            return Ok(AppendOutcome::Refused(Refusal::NotFound));
        };
        if !allowed(rule, &author, actor) {
            return Ok(AppendOutcome::Refused(Refusal::Forbidden));
        }
        self.commit(
            conn,
            LogEvent::Updated(MessageUpdated {
                channel_id: self.channel.clone(),
                seq: self.head.next(),
                message_id: target,
                body: Some(body),
            }),
        )
    }

    fn append_delete(
        &self,
        conn: &Connection,
        target: MessageId,
        actor: &UserId,
        rule: ModifyRule,
    ) -> OpResult<AppendOutcome> {
        let Some((author, deleted)) = self.target(conn, &target)? else {
            return Ok(AppendOutcome::Refused(Refusal::NotFound));
        };
        if !allowed(rule, &author, actor) {
            return Ok(AppendOutcome::Refused(Refusal::Forbidden));
        }
        if let Some(seq) = deleted {
            return Ok(AppendOutcome::Duplicate(Existing::Deletion {
                seq: Seq(to_u64(seq)?),
            }));
        }
        let seq = self.head.next();
        conn.prepare_cached(
            "UPDATE messages SET deleted_seq = ?3 WHERE channel = ?1 AND message_id = ?2",
        )?
        .execute(params![
            self.channel.as_str(),
            target.as_str(),
            to_i64(seq.0)?
        ])?;
        self.commit(
            conn,
            LogEvent::Deleted(MessageDeleted {
                channel_id: self.channel.clone(),
                seq,
                message_id: target,
            }),
        )
    }

    /// Records `event` at `head + 1`; the caller moves the head (once per
    /// command, with [`Log::save_head`]).
    fn commit(&self, conn: &Connection, event: LogEvent) -> OpResult<AppendOutcome> {
        let seq = to_i64(event.seq().0)?;
        let json = serde_json::to_string(&event).map_err(|e| OpError::Corrupt(e.to_string()))?;
        conn.prepare_cached("INSERT INTO events (channel, seq, event) VALUES (?1, ?2, ?3)")?
            .execute(params![self.channel.as_str(), seq, json])?;
        Ok(AppendOutcome::Appended(event))
    }

    /// Stores the head reached by the appends of one command: one row
    /// update per batch instead of one per event.
    fn save_head(&self, conn: &Connection) -> OpResult<()> {
        conn.prepare_cached("UPDATE channels SET head = ?2 WHERE channel = ?1")?
            .execute(params![self.channel.as_str(), to_i64(self.head.0)?])?;
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
        // Everything is retained: history starts at seq 1. The stored text
        // is the event's compact JSON, so its length is its wire length:
        // rows past the byte budget are measured, never parsed.
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
        let last = events.last().map_or(Seq::ZERO, LogEvent::seq);
        Ok(Page {
            epoch: self.epoch,
            more: !events.is_empty() && last < self.head,
            events,
            head: self.head,
            oldest_retained: Seq(1),
        })
    }

    fn set_receipt(&self, conn: &Connection, user: &UserId, up_to: Seq) -> OpResult<StoreReply> {
        if up_to > self.head {
            return Ok(StoreReply::Refused(Refusal::BeyondHead { head: self.head }));
        }
        let current: Option<i64> = conn
            .prepare_cached("SELECT up_to FROM receipts WHERE channel = ?1 AND user = ?2")?
            .query_row(params![self.channel.as_str(), user.as_str()], |r| r.get(0))
            .optional()?;
        let current = Seq(current.map(to_u64).transpose()?.unwrap_or(0));
        if up_to <= current {
            return Ok(StoreReply::Receipt {
                up_to: current,
                advanced: false,
            });
        }
        conn.prepare_cached(
            "INSERT INTO receipts (channel, user, up_to) VALUES (?1, ?2, ?3)
             ON CONFLICT (channel, user) DO UPDATE SET up_to = excluded.up_to",
        )?
        .execute(params![
            self.channel.as_str(),
            user.as_str(),
            to_i64(up_to.0)?
        ])?;
        Ok(StoreReply::Receipt {
            up_to,
            advanced: true,
        })
    }
}

fn allowed(rule: ModifyRule, author: &str, actor: &UserId) -> bool {
    match rule {
        ModifyRule::AuthorOnly => author == actor.as_str(),
        ModifyRule::Anyone => true,
    }
}

fn message_id(s: String) -> OpResult<MessageId> {
    MessageId::new(s).map_err(|e| OpError::Corrupt(e.to_string()))
}

fn to_u64(v: i64) -> OpResult<u64> {
    u64::try_from(v).map_err(|_| OpError::Corrupt(format!("negative number {v}")))
}

fn to_i64(v: u64) -> OpResult<i64> {
    i64::try_from(v).map_err(|_| OpError::Corrupt(format!("number {v} beyond sqlite's range")))
}
