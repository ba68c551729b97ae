//! The periodic task: one bounded step of age retention, which also tells
//! whether the server can be reached (readiness), while the store exists.

use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::Pool;
use lockstep_core::store::PRUNE_STEP;
use tracing::{debug, warn};

use crate::Health;
use crate::sql;
use crate::writer::{OpError, to_i64};

/// Channels one age-retention step looks at.
const SWEEP_CHANNELS: i64 = 256;

/// Runs every `every` until the store is dropped (`alive` goes).
pub(crate) async fn run(
    pool: Pool,
    health: Arc<Health>,
    alive: Weak<()>,
    retain_age_ms: Option<u64>,
    every: Duration,
) {
    let every = every.max(Duration::from_millis(1));
    let mut sweep_after = String::new();
    loop {
        tokio::time::sleep(every).await;
        if alive.upgrade().is_none() {
            break;
        }
        let step = match retain_age_ms {
            Some(age) => sweep(&pool, &sweep_after, age).await.map(Some),
            None => ping(&pool).await.map(|()| None),
        };
        match step {
            Ok(swept) => {
                health.reached();
                if let Some((last, dropped)) = swept {
                    if dropped > 0 {
                        debug!(dropped, "age retention dropped old events");
                    }
                    // After the last channel, start over.
                    sweep_after = last.unwrap_or_default();
                }
            }
            Err(Failed::Unreachable(e)) => {
                health.unreached();
                warn!(error = %e, "postgres unreachable");
            }
            Err(Failed::Op(e)) => warn!(error = %e, "age retention step failed; retried next tick"),
        }
    }
    debug!("postgres maintenance stopped");
}

enum Failed {
    Unreachable(String),
    Op(OpError),
}

impl From<tokio_postgres::Error> for Failed {
    fn from(e: tokio_postgres::Error) -> Self {
        if sql::unreachable(&e) {
            Failed::Unreachable(e.to_string())
        } else {
            Failed::Op(OpError::Sql(e))
        }
    }
}

async fn ping(pool: &Pool) -> Result<(), Failed> {
    let conn = pool
        .get()
        .await
        .map_err(|e| Failed::Unreachable(e.to_string()))?;
    conn.batch_execute("SELECT 1").await?;
    Ok(())
}

/// One step of age retention in a transaction of its own (one statement):
/// the last channel looked at and the events dropped.
async fn sweep(pool: &Pool, after: &str, age_ms: u64) -> Result<(Option<String>, i64), Failed> {
    let conn = pool
        .get()
        .await
        .map_err(|e| Failed::Unreachable(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let cutoff = to_i64(now.saturating_sub(age_ms)).map_err(Failed::Op)?;
    let step = to_i64(PRUNE_STEP).map_err(Failed::Op)?;
    let stmt = conn.prepare_cached(sql::SWEEP_AGE).await?;
    let row = conn
        .query_one(&stmt, &[&after, &SWEEP_CHANNELS, &cutoff, &step])
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}
