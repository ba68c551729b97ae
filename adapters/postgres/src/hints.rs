//! Hints between the processes sharing one store: PostgreSQL `LISTEN` /
//! `NOTIFY` on a channel of the store's schema. Typing and read receipts
//! ride along as relays.
//!
//! A hint says "events `first..=last` of this channel were committed"; the
//! receiver reads the events from the store. Hints are wake-ups, never the
//! data path, so `NOTIFY` only has to be fast, not reliable: it is sent
//! after the append committed, outside its transaction, and what queued
//! while one `NOTIFY` was on its way leaves in the next, merged per channel.
//! A hint lost (a listener reconnecting, a full queue) costs latency: the
//! listener asks the machine to resync whenever it (re)starts listening,
//! and periodically with jitter.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::poll_fn;
use lockstep_core::ids::{ChannelId, Seq};
use lockstep_core::server::{CommitHint, PresenceScope, Relay, SharedTail};
use lockstep_core::wire::{PresenceChange, ReadReceipt, TypingNotice};
use lockstep_tokio::server::{PeerEvent, PeerNote, Peers};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tracing::{debug, info, warn};

use crate::{ConnectError, PgConfig, session_settings};

/// PostgreSQL refuses a `NOTIFY` payload of 8,000 bytes or more: one
/// notification carries at most this much, the rest goes in the next.
const PAYLOAD_MAX: usize = 7_000;

/// Settings of the hint link.
#[derive(Debug, Clone)]
pub struct HintConfig {
    /// This process's id: its own hints, which PostgreSQL delivers back to
    /// it, are skipped. Default: random.
    pub node: u64,
    /// Hints queued for `NOTIFY`; past it the driver drops them. Default
    /// 4,096.
    pub queue: usize,
    /// How often, on average, the machine is asked to read every tailed
    /// channel past its cursor, in case a hint was lost (each wait drawn
    /// within ±25 %). Default 5 s.
    pub resync_every: Duration,
    /// The first wait before connecting again; doubled up to 16 times
    /// that. Default 250 ms.
    pub reconnect_wait: Duration,
    /// How the machine delivers from the shared store.
    pub tail: SharedTail,
    /// Presence across processes: each process heartbeats a lease this
    /// long and claims its users' presence in PostgreSQL, so a user is
    /// announced once whichever processes its sockets are on; a process
    /// silent for a lease is reaped by another, and its users leave after
    /// the grace. `None`: each process announces its own connections.
    /// Default 10 s.
    pub presence_lease: Option<Duration>,
}

impl Default for HintConfig {
    fn default() -> Self {
        HintConfig {
            node: random_node(),
            queue: 4_096,
            resync_every: Duration::from_secs(5),
            reconnect_wait: Duration::from_millis(250),
            tail: SharedTail::default(),
            presence_lease: Some(Duration::from_secs(10)),
        }
    }
}

/// A random process id (no two processes of a deployment should share one).
#[must_use]
pub fn random_node() -> u64 {
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}

/// One `NOTIFY` payload: who sent it, (channel, first, last) ranges, and
/// typing and read receipts to relay.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    node: u64,
    #[serde(default)]
    hints: Vec<(ChannelId, u64, u64)>,
    #[serde(default)]
    relays: Vec<WireRelay>,
}

/// A [`Relay`] in a payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum WireRelay {
    #[serde(rename = "typing")]
    Typing(TypingNotice),
    #[serde(rename = "read")]
    Read(ReadReceipt),
    #[serde(rename = "join")]
    PresenceJoin(PresenceChange),
    #[serde(rename = "leave")]
    PresenceLeave(PresenceChange),
}

impl From<Relay> for WireRelay {
    fn from(r: Relay) -> Self {
        match r {
            Relay::Typing(t) => WireRelay::Typing(t),
            Relay::Read(r) => WireRelay::Read(r),
            Relay::PresenceJoin(p) => WireRelay::PresenceJoin(p),
            Relay::PresenceLeave(p) => WireRelay::PresenceLeave(p),
        }
    }
}

impl From<WireRelay> for Relay {
    fn from(r: WireRelay) -> Self {
        match r {
            WireRelay::Typing(t) => Relay::Typing(t),
            WireRelay::Read(r) => Relay::Read(r),
            WireRelay::PresenceJoin(p) => Relay::PresenceJoin(p),
            WireRelay::PresenceLeave(p) => Relay::PresenceLeave(p),
        }
    }
}

/// Relays gathered into one batch at most; more wait for the next.
const RELAYS_PER_BATCH: usize = 256;

/// What queued while the previous `NOTIFY` was on its way.
#[derive(Debug, Default)]
struct Batch {
    hints: BTreeMap<ChannelId, (Seq, Seq)>,
    relays: Vec<Relay>,
}

impl Batch {
    fn add(&mut self, note: PeerNote) {
        match note {
            PeerNote::Committed(hint) => {
                let range = self
                    .hints
                    .entry(hint.channel)
                    .or_insert((hint.first, hint.last));
                range.0 = range.0.min(hint.first);
                range.1 = range.1.max(hint.last);
            }
            PeerNote::Relay(relay) => self.relays.push(relay),
        }
    }

    fn full(&self) -> bool {
        self.relays.len() >= RELAYS_PER_BATCH
    }
}

/// Starts the hint link of the store at `url` (the same URL and
/// [`PgConfig::schema`] as the [`PgStore`](crate::PgStore)): a task that
/// sends this process's hints with `NOTIFY` and one that `LISTEN`s on a
/// dedicated connection. Hand the result to
/// `lockstep_tokio::server::spawn_shared_server`. The tasks reconnect on
/// their own and stop once the driver is gone. Needs a tokio runtime.
///
/// # Errors
///
/// [`ConnectError`] when the URL or the schema name is unusable.
pub fn hint_link(url: &str, store: &PgConfig, config: HintConfig) -> Result<Peers, ConnectError> {
    if !crate::schema::valid_schema_name(&store.schema) {
        return Err(ConnectError::SchemaName(store.schema.clone()));
    }
    let mut pg = tokio_postgres::Config::from_str(url).map_err(ConnectError::Url)?;
    session_settings(&mut pg, store);
    let channel = notify_channel(&store.schema);
    let (hints_tx, hints_rx) = mpsc::channel(config.queue.max(1));
    let (events_tx, events_rx) = mpsc::channel(config.queue.max(1));
    tokio::spawn(publish(
        pg.clone(),
        channel.clone(),
        config.clone(),
        hints_rx,
    ));
    let mut tail = config.tail.clone();
    let presence = config.presence_lease.map(|lease| {
        tail.presence = PresenceScope::Arbitrated;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(crate::presence::run(
            pg.clone(),
            config.node,
            lease,
            config.reconnect_wait,
            rx,
            events_tx.clone(),
        ));
        tx
    });
    tokio::spawn(listen(pg, channel, config.clone(), events_tx));
    Ok(Peers {
        tail,
        notes: hints_tx,
        events: events_rx,
        presence,
    })
}

/// The `LISTEN` channel of a schema: `<schema>_hints`, within PostgreSQL's
/// 63-byte identifiers.
fn notify_channel(schema: &str) -> String {
    let mut base = schema.to_owned();
    base.truncate(57);
    format!("{base}_hints")
}

/// Waits before connecting again: `base` doubled per failure, at most 16×.
pub(crate) async fn backoff(base: Duration, failures: &mut u32) {
    let wait = base.saturating_mul(1 << (*failures).min(4));
    *failures = failures.saturating_add(1);
    tokio::time::sleep(wait).await;
}

/// `every`, give or take a quarter, so processes do not resync in step.
fn jittered(every: Duration) -> Duration {
    let r = RandomState::new().hash_one(std::time::SystemTime::now()) % 1_000;
    let factor = 0.75 + 0.5 * (r as f64 / 1_000.0);
    every.mul_f64(factor)
}

/// Sends this process's hints, merging what queued while the previous
/// `NOTIFY` was on its way.
async fn publish(
    pg: tokio_postgres::Config,
    channel: String,
    config: HintConfig,
    mut notes: mpsc::Receiver<PeerNote>,
) {
    let mut failures = 0;
    loop {
        let client = match pg.connect(NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        debug!(%error, "hint publisher connection ended");
                    }
                });
                failures = 0;
                client
            }
            Err(error) => {
                warn!(%error, "hint publisher cannot connect; retrying");
                backoff(config.reconnect_wait, &mut failures).await;
                continue;
            }
        };
        loop {
            let Some(first) = notes.recv().await else {
                return;
            };
            let mut batch = Batch::default();
            batch.add(first);
            while !batch.full() {
                match notes.try_recv() {
                    Ok(more) => batch.add(more),
                    Err(_) => break,
                }
            }
            let mut failed = false;
            for payload in payloads(config.node, batch) {
                if let Err(error) = client
                    .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                    .await
                {
                    // These hints are lost: the others' resync covers them.
                    warn!(%error, "NOTIFY failed; reconnecting");
                    failed = true;
                    break;
                }
            }
            if failed {
                break;
            }
        }
        backoff(config.reconnect_wait, &mut failures).await;
    }
}

/// The batch as payloads of at most [`PAYLOAD_MAX`] bytes each.
fn payloads(node: u64, batch: Batch) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = Payload {
        node,
        hints: Vec::new(),
        relays: Vec::new(),
    };
    let mut size = 0;
    let mut flush_if = |current: &mut Payload, size: &mut usize, cost: usize| {
        if *size + cost > PAYLOAD_MAX && !(current.hints.is_empty() && current.relays.is_empty()) {
            out.extend(serde_json::to_string(&*current).ok());
            current.hints.clear();
            current.relays.clear();
            *size = 0;
        }
        *size += cost;
    };
    for (channel, (first, last)) in batch.hints {
        // A hint's share of the payload: its channel and two numbers.
        let cost = channel.as_str().len() + 48;
        flush_if(&mut current, &mut size, cost);
        current.hints.push((channel, first.0, last.0));
    }
    for relay in batch.relays {
        let relay = WireRelay::from(relay);
        let cost = serde_json::to_string(&relay).map_or(PAYLOAD_MAX, |s| s.len() + 1);
        if cost >= PAYLOAD_MAX {
            // Ids are short; never happens, and losing a relay is harmless.
            continue;
        }
        flush_if(&mut current, &mut size, cost);
        current.relays.push(relay);
    }
    if !(current.hints.is_empty() && current.relays.is_empty()) {
        out.extend(serde_json::to_string(&current).ok());
    }
    out
}

/// Listens on a dedicated connection and hands the others' hints to the
/// driver; asks for a resync each time listening (re)starts and
/// periodically. Returns once the driver is gone.
async fn listen(
    pg: tokio_postgres::Config,
    channel: String,
    config: HintConfig,
    events: mpsc::Sender<PeerEvent>,
) {
    let mut failures = 0;
    loop {
        match pg.connect(NoTls).await {
            Ok((client, mut conn)) => {
                let forward = {
                    let events = events.clone();
                    let node = config.node;
                    tokio::spawn(async move {
                        while let Some(message) = poll_fn(|cx| conn.poll_message(cx)).await {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    if !deliver(node, n.payload(), &events).await {
                                        return;
                                    }
                                }
                                Ok(_) => {}
                                Err(error) => {
                                    warn!(%error, "hint listener connection lost");
                                    return;
                                }
                            }
                        }
                    })
                };
                if let Err(error) = client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
                    warn!(%error, "LISTEN failed; reconnecting");
                    forward.abort();
                    backoff(config.reconnect_wait, &mut failures).await;
                    continue;
                }
                info!(%channel, "listening for other processes' commits");
                failures = 0;
                let mut forward = forward;
                loop {
                    // Whatever was committed before listening started (or
                    // while a hint was lost) is read now.
                    if events.send(PeerEvent::Resync).await.is_err() {
                        forward.abort();
                        return;
                    }
                    tokio::select! {
                        _ = &mut forward => break,
                        () = tokio::time::sleep(jittered(config.resync_every)) => {}
                    }
                }
                if events.is_closed() {
                    return;
                }
            }
            Err(error) => warn!(%error, "hint listener cannot connect; retrying"),
        }
        backoff(config.reconnect_wait, &mut failures).await;
    }
}

/// Hands one notification's hints to the driver; false once the driver is
/// gone. Its own hints and payloads that do not parse are skipped.
async fn deliver(node: u64, payload: &str, events: &mpsc::Sender<PeerEvent>) -> bool {
    let payload: Payload = match serde_json::from_str(payload) {
        Ok(p) => p,
        Err(error) => {
            warn!(%error, "unreadable hint payload skipped");
            return !events.is_closed();
        }
    };
    if payload.node == node {
        return true;
    }
    for (channel, first, last) in payload.hints {
        let hint = CommitHint {
            channel,
            first: Seq(first),
            last: Seq(last),
        };
        if events.send(PeerEvent::Hint(hint)).await.is_err() {
            return false;
        }
    }
    for relay in payload.relays {
        if events
            .send(PeerEvent::Relay(Relay::from(relay)))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_notify_limit_and_round_trip() {
        let mut batch = Batch::default();
        for i in 0..500u64 {
            let channel = ChannelId::new(format!("channel-with-a-longish-name-{i}")).unwrap();
            batch.add(PeerNote::Committed(CommitHint {
                channel: channel.clone(),
                first: Seq(i),
                last: Seq(i + 3),
            }));
            batch.add(PeerNote::Relay(Relay::Read(ReadReceipt {
                channel_id: channel,
                user_id: lockstep_core::ids::UserId::new("alice").unwrap(),
                up_to: Seq(i),
            })));
        }
        let out = payloads(7, batch);
        assert!(out.len() > 1);
        let (mut hints, mut relays) = (0, 0);
        for p in &out {
            assert!(p.len() < 8_000, "{} bytes", p.len());
            let back: Payload = serde_json::from_str(p).unwrap();
            assert_eq!(back.node, 7);
            hints += back.hints.len();
            relays += back.relays.len();
        }
        assert_eq!((hints, relays), (500, 500));
    }

    #[test]
    fn the_channel_name_fits_an_identifier() {
        assert_eq!(notify_channel("lockstep"), "lockstep_hints");
        assert!(notify_channel(&"s".repeat(63)).len() <= 63);
    }
}
