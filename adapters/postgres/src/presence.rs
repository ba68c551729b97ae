//! The presence arbiter of the processes sharing one PostgreSQL: who is
//! present in which channel, decided by claims in short transactions.
//!
//! - `presence_claims (channel, user_id, node)`: the processes that hold a
//!   user's presence in a channel (its connections there, or its grace).
//!   A claim is *first* when no other process holds one, a release *last*
//!   when none is left; both take a transaction-scoped advisory lock on
//!   the (channel, user) pair, so two processes never both see "first" or
//!   both miss "last".
//! - `presence_leases (node, expires_at)`: each process's heartbeat, in
//!   the database's clock (so the processes' clocks never matter). A
//!   process whose lease expired is dead: the first live process to see it
//!   deletes the lease and adopts its claims in one transaction (the row
//!   lock on the lease makes that one process), holds them for one grace
//!   period and releases them like its own.

use std::time::Duration;

use lockstep_core::ids::{ChannelId, UserId};
use lockstep_core::server::{PresenceCommand, PresenceOutcome};
use lockstep_core::wire::PresenceChange;
use lockstep_tokio::server::PeerEvent;
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};
use tracing::{debug, info, warn};

/// Attempts at one claim or release before it is given up (logged; a
/// lost claim announces no join, a lost release leaves the claim until
/// this process's lease expires and another reaps it).
const ATTEMPTS: u32 = 5;

/// Most users one answer to "who is present in this channel" lists: a
/// bound on the answer's memory (a join's member list is cut to the
/// reply's byte budget anyway).
const MEMBERS_MAX: i64 = 100_000;

/// One process's side of the arbiter, on its own connection.
pub(crate) struct Arbiter {
    client: Client,
    node: i64,
    lease: Duration,
}

/// The advisory lock of a (channel, user) pair: claims and releases of the
/// pair take turns across processes.
const LOCK_PAIR: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 17))";

impl Arbiter {
    /// Connects; [`heartbeat`](Self::heartbeat) then takes the lease.
    pub(crate) async fn connect(
        pg: &tokio_postgres::Config,
        node: u64,
        lease: Duration,
    ) -> Result<Self, tokio_postgres::Error> {
        let (client, conn) = pg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                warn!(%error, "presence connection lost");
            }
        });
        // The node id's bits as PostgreSQL's bigint.
        let node = i64::from_ne_bytes(node.to_ne_bytes());
        Ok(Arbiter {
            client,
            node,
            lease,
        })
    }

    /// Extends this node's lease by one lease from now. True when there
    /// was none (the first beat, or another process reaped this one and
    /// adopted its claims): it is taken afresh.
    pub(crate) async fn heartbeat(&self) -> Result<bool, tokio_postgres::Error> {
        let secs = self.lease.as_secs_f64();
        let renewed = self
            .client
            .execute(
                "UPDATE presence_leases SET expires_at = now() + make_interval(secs => $2::float8)
                 WHERE node = $1",
                &[&self.node, &secs],
            )
            .await?;
        if renewed == 1 {
            debug!(node = self.node, "presence lease renewed");
            return Ok(false);
        }
        self.client
            .execute(
                "INSERT INTO presence_leases (node, expires_at)
                 VALUES ($1, now() + make_interval(secs => $2::float8))
                 ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at",
                &[&self.node, &secs],
            )
            .await?;
        Ok(true)
    }

    /// Claims `change`: true when no other process held it (announce the
    /// join).
    pub(crate) async fn claim(
        &mut self,
        change: &PresenceChange,
    ) -> Result<bool, tokio_postgres::Error> {
        let (inserted, others) = self
            .locked(
                change,
                "INSERT INTO presence_claims (channel, user_id, node) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        Ok(inserted == 1 && others == 0)
    }

    /// Releases `change`: true when no process holds it any more (announce
    /// the leave).
    pub(crate) async fn release(
        &mut self,
        change: &PresenceChange,
    ) -> Result<bool, tokio_postgres::Error> {
        let (deleted, left) = self
            .locked(
                change,
                "DELETE FROM presence_claims WHERE channel = $1 AND user_id = $2 AND node = $3",
            )
            .await?;
        Ok(deleted == 1 && left == 0)
    }

    /// In one transaction under the pair's advisory lock: `write` (with
    /// channel, user, node) this node's claim of `change`, then count the
    /// other nodes' claims. Returns the rows written and the count.
    async fn locked(
        &mut self,
        change: &PresenceChange,
        write: &str,
    ) -> Result<(u64, i64), tokio_postgres::Error> {
        let (channel, user) = (change.channel_id.as_str(), change.user_id.as_str());
        let tx = self.client.transaction().await?;
        tx.query_one(LOCK_PAIR, &[&channel, &user]).await?;
        let written = tx.execute(write, &[&channel, &user, &self.node]).await?;
        let counted: i64 = tx
            .query_one(
                "SELECT count(*) FROM presence_claims
                 WHERE channel = $1 AND user_id = $2 AND node <> $3",
                &[&channel, &user, &self.node],
            )
            .await?
            .get(0);
        tx.commit().await?;
        Ok((written, counted))
    }

    /// Every user holding a claim in `channel`, on any node (at most
    /// [`MEMBERS_MAX`]).
    pub(crate) async fn members(
        &self,
        channel: &ChannelId,
    ) -> Result<Vec<UserId>, tokio_postgres::Error> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT user_id FROM presence_claims WHERE channel = $1
                 ORDER BY user_id LIMIT $2",
                &[&channel.as_str(), &MEMBERS_MAX],
            )
            .await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            let user: &str = row.get(0);
            match UserId::new(user) {
                Ok(u) => users.push(u),
                Err(_) => warn!(user, "unusable presence claim skipped"),
            }
        }
        Ok(users)
    }

    /// The claims this node holds: at start, those of an earlier run with
    /// the same node id (its users may be gone; they are adopted).
    pub(crate) async fn held(&self) -> Result<Vec<PresenceChange>, tokio_postgres::Error> {
        let rows = self
            .client
            .query(
                "SELECT channel, user_id FROM presence_claims WHERE node = $1",
                &[&self.node],
            )
            .await?;
        Ok(changes(&rows))
    }

    /// Deletes the leases that expired and adopts their nodes' claims (the
    /// ones this node does not hold already), in one transaction: only one
    /// process reaps a dead one.
    pub(crate) async fn reap(&mut self) -> Result<Vec<PresenceChange>, tokio_postgres::Error> {
        let tx = self.client.transaction().await?;
        let dead: Vec<i64> = tx
            .query(
                "DELETE FROM presence_leases WHERE expires_at < now() AND node <> $1 RETURNING node",
                &[&self.node],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if dead.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rows = tx
            .query(
                "WITH moved AS (
                     DELETE FROM presence_claims WHERE node = ANY($1)
                     RETURNING channel, user_id
                 )
                 INSERT INTO presence_claims (channel, user_id, node)
                 SELECT DISTINCT channel, user_id, $2::bigint FROM moved
                 ON CONFLICT DO NOTHING
                 RETURNING channel, user_id",
                &[&dead, &self.node],
            )
            .await?;
        tx.commit().await?;
        info!(dead = ?dead, adopted = rows.len(), "reaped the presence of dead processes");
        Ok(changes(&rows))
    }
}

/// (channel, user) rows as presence changes; unusable ones are skipped.
fn changes(rows: &[tokio_postgres::Row]) -> Vec<PresenceChange> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (channel, user): (&str, &str) = (row.get(0), row.get(1));
        match (ChannelId::new(channel), UserId::new(user)) {
            (Ok(channel_id), Ok(user_id)) => out.push(PresenceChange {
                channel_id,
                user_id,
            }),
            _ => warn!(channel, user, "unusable presence claim skipped"),
        }
    }
    out
}

/// Hands adopted claims to the machine; false once the driver is gone.
async fn adopt(changes: Vec<PresenceChange>, events: &mpsc::Sender<PeerEvent>) -> bool {
    for change in changes {
        let event = PeerEvent::Presence(PresenceOutcome::Adopted(change));
        if events.send(event).await.is_err() {
            return false;
        }
    }
    true
}

/// Carries out the machine's presence commands in order, one after the
/// other, and heartbeats and reaps every third of a lease; reconnects on
/// its own and stops once the driver is gone.
pub(crate) async fn run(
    pg: tokio_postgres::Config,
    node: u64,
    lease: Duration,
    reconnect_wait: Duration,
    mut commands: mpsc::Receiver<PresenceCommand>,
    events: mpsc::Sender<PeerEvent>,
) {
    let beat = (lease / 3).max(Duration::from_millis(10));
    let mut failures = 0;
    // A command whose transaction failed, with its attempts so far.
    let mut pending: Option<(PresenceCommand, u32)> = None;
    // Whether this process held a lease before: one taken afresh after
    // that means another process may have adopted its claims.
    let mut registered = false;
    loop {
        let connected = match Arbiter::connect(&pg, node, lease).await {
            Ok(a) => match a.heartbeat().await {
                // An earlier run with this node id may have left claims.
                Ok(fresh) if !registered => a.held().await.map(|held| (a, fresh, held)),
                Ok(fresh) => Ok((a, fresh, Vec::new())),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        let mut arbiter = match connected {
            Ok((a, fresh, held)) => {
                if !lost(registered && fresh, &events).await || !adopt(held, &events).await {
                    return;
                }
                a
            }
            Err(error) => {
                warn!(%error, "presence arbiter cannot connect; retrying");
                crate::hints::backoff(reconnect_wait, &mut failures).await;
                continue;
            }
        };
        registered = true;
        failures = 0;
        let mut ticker = tokio::time::interval(beat);
        loop {
            let (cmd, tried) = match pending.take() {
                Some(p) => p,
                None => tokio::select! {
                    cmd = commands.recv() => match cmd {
                        Some(cmd) => (cmd, 0),
                        None => return,
                    },
                    _ = ticker.tick() => {
                        let reaped = match arbiter.heartbeat().await {
                            Ok(fresh) => {
                                if !lost(fresh, &events).await {
                                    return;
                                }
                                arbiter.reap().await
                            }
                            Err(error) => Err(error),
                        };
                        match reaped {
                            Ok(adopted) => {
                                if !adopt(adopted, &events).await {
                                    return;
                                }
                                continue;
                            }
                            Err(error) => {
                                warn!(%error, "presence heartbeat failed; reconnecting");
                                break;
                            }
                        }
                    }
                },
            };
            let outcome =
                match &cmd {
                    PresenceCommand::Claim(change) => {
                        arbiter
                            .claim(change)
                            .await
                            .map(|first| PresenceOutcome::Claimed {
                                change: change.clone(),
                                first,
                            })
                    }
                    PresenceCommand::Release(change) => {
                        arbiter
                            .release(change)
                            .await
                            .map(|last| PresenceOutcome::Released {
                                change: change.clone(),
                                last,
                            })
                    }
                    PresenceCommand::Members { channel, token } => arbiter
                        .members(channel)
                        .await
                        .map(|users| PresenceOutcome::Members {
                            channel: channel.clone(),
                            token: *token,
                            users,
                        }),
                };
            match outcome {
                Ok(outcome) => {
                    if events.send(PeerEvent::Presence(outcome)).await.is_err() {
                        return;
                    }
                }
                Err(error) if tried + 1 < ATTEMPTS => {
                    warn!(%error, ?cmd, "presence command failed; reconnecting to retry it");
                    pending = Some((cmd, tried + 1));
                    break;
                }
                Err(error) => {
                    warn!(%error, ?cmd, "presence command given up");
                    let outcome = match cmd {
                        PresenceCommand::Claim(change) => PresenceOutcome::Claimed {
                            change,
                            first: false,
                        },
                        PresenceCommand::Release(change) => PresenceOutcome::Released {
                            change,
                            last: false,
                        },
                        // Unanswered: the next resync asks again.
                        PresenceCommand::Members { .. } => continue,
                    };
                    if events.send(PeerEvent::Presence(outcome)).await.is_err() {
                        return;
                    }
                }
            }
        }
        crate::hints::backoff(reconnect_wait, &mut failures).await;
    }
}

/// Tells the machine its lease was lost (when `lost`); false once the
/// driver is gone.
async fn lost(lost: bool, events: &mpsc::Sender<PeerEvent>) -> bool {
    if !lost {
        return true;
    }
    warn!("presence lease was lost (this process stalled past it): claiming every user again");
    events
        .send(PeerEvent::Presence(PresenceOutcome::Lost))
        .await
        .is_ok()
}
