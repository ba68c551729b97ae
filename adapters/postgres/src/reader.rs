//! Reads (`Read`, `Head`) on connections of their own (the reader pool),
//! so history reads never wait for a commit and commits never wait for a
//! free connection behind them. Each is one statement, so it sees one
//! snapshot: head, retention and events agree. A read issued after an
//! append was acknowledged sees it (the commit came first).

use deadpool_postgres::Pool;
use lockstep_core::ids::{ChannelId, Epoch, Seq};
use lockstep_core::store::{
    Page, READ_LIMIT_MAX, ReadCommand, ReadFrom, StoreError, StoreReply, fitting,
};
use lockstep_core::wire::{Body, LogEvent, MessageDeleted, MessageUpdated, NewMessage};
use tokio_postgres::Row;
use tracing::error;

use crate::Health;
use crate::sql;
use crate::writer::{
    KIND_DELETED, KIND_MESSAGE, KIND_UPDATED, OpError, client_msg_id, message_id, to_i64, to_u64,
};

/// Serves one read on a connection of `pool`.
pub(crate) async fn read(
    pool: &Pool,
    health: &Health,
    fresh_epoch: Epoch,
    cmd: ReadCommand,
) -> Result<StoreReply, StoreError> {
    let conn = match pool.get().await {
        Ok(conn) => {
            health.reached();
            conn
        }
        Err(e) => {
            health.unreached();
            return Err(StoreError::Unavailable(format!(
                "postgres: no connection: {e}"
            )));
        }
    };
    let outcome = match cmd {
        ReadCommand::Head { channel } => head(&conn, fresh_epoch, &channel).await,
        ReadCommand::Read {
            channel,
            from,
            limit,
            max_bytes,
        } => page(&conn, fresh_epoch, &channel, from, limit, max_bytes)
            .await
            .map(StoreReply::Events),
    };
    outcome.map_err(|e| {
        error!(error = %e, "store read failed");
        StoreError::Unavailable(e.to_string())
    })
}

async fn head(
    conn: &deadpool_postgres::Object,
    fresh_epoch: Epoch,
    channel: &ChannelId,
) -> Result<StoreReply, OpError> {
    let stmt = conn.prepare_cached(sql::HEAD).await?;
    let row = conn.query_opt(&stmt, &[&channel.as_str()]).await?;
    let (epoch, head) = match row {
        Some(row) => (
            Epoch(to_u64(row.try_get(0)?)?),
            Seq(to_u64(row.try_get(1)?)?),
        ),
        // Never written: an empty log with the store's fresh epoch.
        None => (fresh_epoch, Seq::ZERO),
    };
    Ok(StoreReply::Head { epoch, head })
}

async fn page(
    conn: &deadpool_postgres::Object,
    fresh_epoch: Epoch,
    channel: &ChannelId,
    from: ReadFrom,
    limit: u64,
    max_bytes: usize,
) -> Result<Page, OpError> {
    let limit = to_i64(limit.min(READ_LIMIT_MAX))?;
    let budget = i64::try_from(max_bytes).unwrap_or(i64::MAX);
    let rows = match from {
        ReadFrom::After(after) => {
            let stmt = conn.prepare_cached(&sql::read_after()).await?;
            let after = i64::try_from(after.0).unwrap_or(i64::MAX);
            conn.query(&stmt, &[&channel.as_str(), &after, &limit, &budget])
                .await?
        }
        ReadFrom::Latest => {
            let stmt = conn.prepare_cached(&sql::read_latest()).await?;
            conn.query(&stmt, &[&channel.as_str(), &limit, &budget])
                .await?
        }
    };
    let Some(first) = rows.first() else {
        // Never written: an empty log with the store's fresh epoch.
        return Ok(Page::new(fresh_epoch, Vec::new(), Seq::ZERO, Seq(1)));
    };
    let epoch = Epoch(to_u64(first.try_get(0)?)?);
    let head = Seq(to_u64(first.try_get(1)?)?);
    let oldest_retained = match first.try_get::<_, Option<i64>>(2)? {
        Some(seq) => Seq(to_u64(seq)?),
        None => head.next(),
    };
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        // A channel with no event in the window still has its one row.
        if row.try_get::<_, Option<i64>>(3)?.is_none() {
            continue;
        }
        events.push(event(channel, row)?);
    }
    // The exact budget, by wire length (the query cut by body bytes only).
    let n = fitting(events.iter().map(LogEvent::wire_len), max_bytes);
    events.truncate(n);
    if from == ReadFrom::Latest {
        events.reverse();
    }
    Ok(Page::new(epoch, events, head, oldest_retained))
}

/// Decodes an event row (columns from the fourth on: seq, kind,
/// message_id, author, client_msg_id, ts, body).
fn event(channel: &ChannelId, row: &Row) -> Result<LogEvent, OpError> {
    let seq = Seq(to_u64(row.try_get(3)?)?);
    let kind: i16 = row.try_get(4)?;
    let message_id = message_id(row.try_get(5)?)?;
    let body = row
        .try_get::<_, Option<&str>>(9)?
        .map(Body::from_json)
        .transpose()
        .map_err(|e| OpError::Corrupt(e.to_string()))?;
    let channel_id = channel.clone();
    Ok(match kind {
        KIND_MESSAGE => {
            let (Some(author), Some(cmid), Some(ts)) = (
                row.try_get::<_, Option<&str>>(6)?,
                row.try_get::<_, Option<&[u8]>>(7)?,
                row.try_get::<_, Option<i64>>(8)?,
            ) else {
                return Err(OpError::Corrupt(format!(
                    "message {message_id} lacks its author, key or time"
                )));
            };
            LogEvent::Message(NewMessage {
                channel_id,
                seq,
                message_id,
                author_id: lockstep_core::ids::UserId::new(author)
                    .map_err(|e| OpError::Corrupt(e.to_string()))?,
                client_msg_id: client_msg_id(cmid)?,
                body,
                ts: to_u64(ts)?,
            })
        }
        KIND_UPDATED => LogEvent::Updated(MessageUpdated {
            channel_id,
            seq,
            message_id,
            body,
        }),
        KIND_DELETED => LogEvent::Deleted(MessageDeleted {
            channel_id,
            seq,
            message_id,
        }),
        other => return Err(OpError::Corrupt(format!("event kind {other}"))),
    })
}
