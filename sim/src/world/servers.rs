//! Several server processes on one store (docs/DESIGN.md §5), as the lab
//! runs them: each a server machine with `Writers::Shared` and arbitrated
//! presence, a hint bus between them that loses, duplicates, reorders and
//! delays what it carries, a listener per process that can disconnect, a
//! periodic jittered resync, and a presence arbiter modelled on the
//! PostgreSQL one (`adapters/postgres/src/presence.rs`): claims, leases
//! on the virtual clock, and reaping of a dead process's claims.
//!
//! With one process none of this exists: the world keeps its single
//! machine writing alone, bit for bit as before.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use lockstep_core::ids::{ChannelId, UserId};
use lockstep_core::server::{
    CommitHint, PresenceCommand, PresenceOutcome, PrivateChannels, Relay, Rooms, Server,
};
use lockstep_core::wire::PresenceChange;
use lockstep_core::{Instant, Rng};

use crate::net::ConnId;
use crate::queue::EventQueue;

/// Most processes a lab world runs.
pub const SERVERS_MAX: usize = 8;

/// One server process: its machine (none while crashed), its connections
/// and its rooms.
#[derive(Debug)]
pub(crate) struct Node {
    /// The machine, `None` while the process is down.
    pub(crate) server: Option<Server<PrivateChannels>>,
    /// Bumped at each crash: store completions of an earlier run of the
    /// process are not handed back.
    pub(crate) incarnation: u64,
    /// When the machine's next timer fires.
    pub(crate) deadline: Option<Instant>,
    /// The process's end of each open network connection, by serial (the
    /// machine's connection id).
    pub(crate) links: BTreeMap<u64, ConnId>,
    /// Who is open as whom and in which rooms: production's room code.
    pub(crate) rooms: Rooms,
}

impl Node {
    pub(crate) fn new(server: Server<PrivateChannels>) -> Self {
        Node {
            server: Some(server),
            incarnation: 0,
            deadline: None,
            links: BTreeMap::new(),
            rooms: Rooms::new(),
        }
    }
}

/// How the hint bus between processes misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusFaults {
    /// Percent of notes (hints, relays) lost on the way to each process.
    pub drop_pct: u64,
    /// Percent of notes delivered twice.
    pub dup_pct: u64,
    /// Shortest delay of a note, in virtual ms.
    pub delay_ms_min: u64,
    /// Longest delay (delays are drawn in between, so notes reorder).
    pub delay_ms_max: u64,
}

impl BusFaults {
    /// A bus that loses nothing and delivers in 1 ms.
    pub const CALM: BusFaults = BusFaults {
        drop_pct: 0,
        dup_pct: 0,
        delay_ms_min: 1,
        delay_ms_max: 1,
    };

    /// Faults drawn from `rng`: a calm bus one time in four, else up to a
    /// third of notes lost, a fifth duplicated, 300 ms of delay.
    fn draw(rng: &mut Rng) -> Self {
        if rng.below(4) == 0 {
            return BusFaults::CALM;
        }
        let delay_ms_min = 1 + rng.below(20);
        BusFaults {
            drop_pct: rng.below(34),
            dup_pct: rng.below(21),
            delay_ms_min,
            delay_ms_max: delay_ms_min + rng.below(300),
        }
    }
}

/// How the lab runs several processes; ignored with one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiConfig {
    /// The bus's faults; `None`: drawn from the seed.
    pub bus: Option<BusFaults>,
    /// How often, on average, each process resyncs (each wait drawn within
    /// ±25 %, as `lockstep_postgres::HintConfig::resync_every`); `None`
    /// switches the safety net off, periodic and on a listener's
    /// reconnect alike (bite tests only).
    pub resync_every: Option<Duration>,
    /// The presence lease (a process silent this long is reaped).
    pub lease: Duration,
}

impl Default for MultiConfig {
    /// Production's defaults: resync every 5 s, a 10 s lease.
    fn default() -> Self {
        MultiConfig {
            bus: None,
            resync_every: Some(Duration::from_secs(5)),
            lease: Duration::from_secs(10),
        }
    }
}

/// Something the cluster hands one process's machine.
#[derive(Debug)]
pub(crate) enum Due {
    /// `Server::handle_hint`.
    Hint(usize, CommitHint),
    /// `Server::handle_relay`.
    Relay(usize, Relay),
    /// `Server::handle_resync`.
    Resync(usize),
    /// `Server::handle_presence`.
    Presence(usize, PresenceOutcome),
}

/// What travels on the bus, or a listener's reconnect.
#[derive(Debug)]
enum Note {
    Hint(CommitHint),
    Relay(Relay),
    ListenerUp,
}

#[derive(Debug)]
struct Mail {
    to: usize,
    run: u64,
    note: Note,
}

/// A presence command at the arbiter.
#[derive(Debug)]
struct Call {
    /// The arbiter id of the process that asked.
    id: u64,
    cmd: PresenceCommand,
    /// When it reaches the arbiter (after the commands before it).
    start: Instant,
    /// When it is done, unless its process is cut off from the arbiter.
    at: Instant,
}

/// One process as the cluster sees it.
#[derive(Debug, Default)]
struct Proc {
    up: bool,
    /// Bumped at each start: notes and answers for an earlier run are lost.
    run: u64,
    /// The arbiter's id of this run (a fresh one each start, as
    /// production's random node id).
    id: u64,
    /// The listener is down until this time (then it reconnects and asks
    /// for a resync).
    deaf_until: Option<Instant>,
    resync_at: Option<Instant>,
    beat_at: Option<Instant>,
    /// When the arbiter is done with this process's last command: the
    /// next one starts after it (commands are carried out in order).
    arbiter_free: Instant,
    /// This process's commands, in order: the first is carried out when
    /// due, the others wait their turn.
    queue: VecDeque<Call>,
    /// Its arbiter connection is cut (the store was down, or a stall)
    /// until then: it reconnects then, beats first, then carries out its
    /// commands, in order.
    blocked_until: Instant,
}

impl Proc {
    /// When its first command is carried out, if it has one.
    fn next_call_at(&self) -> Option<Instant> {
        let after = Instant::from_millis(self.blocked_until.as_millis() + 1);
        self.queue.front().map(|c| c.at.max(after))
    }
}

/// How long a process's arbiter connection waits before it reconnects
/// after a failure (`HintConfig::reconnect_wait`'s default).
const RECONNECT_WAIT_MS: u64 = 250;

/// The presence arbiter's tables: claims and leases, as in PostgreSQL.
#[derive(Debug, Default)]
pub(crate) struct Arbiter {
    claims: BTreeSet<(ChannelId, UserId, u64)>,
    leases: BTreeMap<u64, Instant>,
}

impl Arbiter {
    fn others(&self, change: &PresenceChange, id: u64) -> usize {
        let lo = (change.channel_id.clone(), change.user_id.clone(), 0);
        let hi = (change.channel_id.clone(), change.user_id.clone(), u64::MAX);
        self.claims
            .range(lo..=hi)
            .filter(|(_, _, n)| *n != id)
            .count()
    }

    fn carry_out(&mut self, id: u64, cmd: PresenceCommand) -> PresenceOutcome {
        match cmd {
            PresenceCommand::Claim(change) => {
                let key = (change.channel_id.clone(), change.user_id.clone(), id);
                let inserted = self.claims.insert(key);
                let first = inserted && self.others(&change, id) == 0;
                PresenceOutcome::Claimed { change, first }
            }
            PresenceCommand::Release(change) => {
                let key = (change.channel_id.clone(), change.user_id.clone(), id);
                let deleted = self.claims.remove(&key);
                let last = deleted && self.others(&change, id) == 0;
                PresenceOutcome::Released { change, last }
            }
            PresenceCommand::Members { channel, token } => {
                let users: BTreeSet<UserId> = self
                    .claims
                    .iter()
                    .filter(|(c, _, _)| *c == channel)
                    .map(|(_, u, _)| u.clone())
                    .collect();
                PresenceOutcome::Members {
                    channel,
                    token,
                    users: users.into_iter().collect(),
                }
            }
        }
    }

    /// Extends `id`'s lease; true when there was none (taken afresh).
    fn beat(&mut self, id: u64, until: Instant) -> bool {
        self.leases.insert(id, until).is_none()
    }

    /// Deletes the leases expired before `now` (but `id`'s) and moves
    /// their claims to `id`; returns the claims `id` did not hold.
    fn reap(&mut self, id: u64, now: Instant) -> Vec<PresenceChange> {
        let dead: BTreeSet<u64> = self
            .leases
            .iter()
            .filter(|(n, until)| **n != id && **until < now)
            .map(|(n, _)| *n)
            .collect();
        if dead.is_empty() {
            return Vec::new();
        }
        self.leases.retain(|n, _| !dead.contains(n));
        let moved: Vec<(ChannelId, UserId, u64)> = self
            .claims
            .iter()
            .filter(|(_, _, n)| dead.contains(n))
            .cloned()
            .collect();
        let mut adopted = Vec::new();
        for (channel_id, user_id, n) in moved {
            self.claims
                .remove(&(channel_id.clone(), user_id.clone(), n));
            if self
                .claims
                .insert((channel_id.clone(), user_id.clone(), id))
            {
                adopted.push(PresenceChange {
                    channel_id,
                    user_id,
                });
            }
        }
        adopted
    }

    /// The users some process holds a claim for in `channel`, sorted.
    pub(crate) fn claimed(&self, channel: &ChannelId) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .claims
            .iter()
            .filter(|(c, _, _)| c == channel)
            .map(|(_, u, _)| u.clone())
            .collect();
        users.dedup();
        users
    }
}

/// The processes' shared machinery: bus, listeners, resync timers, arbiter.
#[derive(Debug)]
pub(crate) struct Cluster {
    rng: Rng,
    faults: BusFaults,
    resync_every: Option<Duration>,
    lease: Duration,
    bus: EventQueue<Mail>,
    /// Commands of dead processes that had reached the arbiter: they
    /// commit all the same.
    orphans: EventQueue<Call>,
    procs: Vec<Proc>,
    ready: VecDeque<Due>,
    pub(crate) arbiter: Arbiter,
    next_id: u64,
}

impl Cluster {
    /// `servers` processes, all started at time zero.
    pub(crate) fn new(servers: usize, config: &MultiConfig, mut rng: Rng) -> Self {
        let faults = config.bus.unwrap_or_else(|| BusFaults::draw(&mut rng));
        let mut cluster = Cluster {
            rng,
            faults,
            resync_every: config.resync_every,
            lease: config.lease,
            bus: EventQueue::new(),
            orphans: EventQueue::new(),
            procs: (0..servers).map(|_| Proc::default()).collect(),
            ready: VecDeque::new(),
            arbiter: Arbiter::default(),
            next_id: 1,
        };
        for node in 0..servers {
            cluster.start(node, Instant::ZERO);
        }
        cluster
    }

    /// The bus's faults this run.
    pub(crate) fn faults(&self) -> BusFaults {
        self.faults
    }

    /// A wait of `every` give or take a quarter.
    fn jittered(&mut self, now: Instant, every: Duration) -> Instant {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        let spread = ms / 2;
        let wait = ms - ms / 4 + self.rng.below(spread + 1);
        Instant::from_millis(now.as_millis().saturating_add(wait.max(1)))
    }

    fn beat_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(10))
    }

    /// Process `node` starts: a fresh arbiter id, its lease taken, its
    /// listener up, its timers armed.
    pub(crate) fn start(&mut self, node: usize, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let until = now.saturating_add(self.lease);
        self.arbiter.beat(id, until);
        let resync_at = self.resync_every.map(|every| self.jittered(now, every));
        let beat_at = Some(now.saturating_add(self.beat_every()));
        let p = &mut self.procs[node];
        p.up = true;
        p.run += 1;
        p.id = id;
        p.deaf_until = None;
        p.resync_at = resync_at;
        p.beat_at = beat_at;
        p.arbiter_free = now;
        p.blocked_until = now;
        p.queue.clear();
    }

    /// Process `node` died: its lease is left to expire, its notes lost.
    pub(crate) fn stop(&mut self, node: usize, now: Instant) {
        let p = &mut self.procs[node];
        // The command at the arbiter commits; those behind it are lost.
        let reached = p
            .queue
            .pop_front()
            .filter(|c| c.start <= now && p.blocked_until <= now);
        p.queue.clear();
        if let Some(call) = reached {
            self.orphans.push(call.at, call);
        }
        let p = &mut self.procs[node];
        p.up = false;
        p.run += 1;
        p.resync_at = None;
        p.beat_at = None;
        p.deaf_until = None;
    }

    /// `node`'s listener disconnects until `until`: notes for it are lost
    /// until then, and its reconnect asks for a resync.
    pub(crate) fn deafen(&mut self, node: usize, now: Instant, until: Instant) {
        let Some(p) = self.procs.get_mut(node).filter(|p| p.up) else {
            return;
        };
        let until = p.deaf_until.map_or(until, |d| d.max(until));
        p.deaf_until = Some(until);
        let run = p.run;
        self.bus.push(
            until.max(now),
            Mail {
                to: node,
                run,
                note: Note::ListenerUp,
            },
        );
    }

    /// `node`'s connection to the arbiter stalls until `until`: its
    /// commands wait, in order, and its heartbeats are skipped, so a stall
    /// past the lease gets its claims reaped by another process, and its
    /// next beat finds its lease gone (`PresenceOutcome::Lost`).
    pub(crate) fn stall(&mut self, node: usize, until: Instant) {
        if let Some(p) = self.procs.get_mut(node).filter(|p| p.up) {
            p.blocked_until = p.blocked_until.max(until);
            // The reconnect beats first, then carries out what waited.
            p.beat_at = Some(p.blocked_until);
        }
    }

    /// Every listener reconnects now, every stalled arbiter connection
    /// too (the heal).
    pub(crate) fn hear_all(&mut self, now: Instant) {
        for p in self
            .procs
            .iter_mut()
            .filter(|p| p.up && p.blocked_until > now)
        {
            p.blocked_until = now;
            p.beat_at = Some(now);
        }
        for node in 0..self.procs.len() {
            if let Some(p) = self.procs.get_mut(node).filter(|p| p.deaf_until.is_some()) {
                p.deaf_until = Some(now);
                let run = p.run;
                self.bus.push(
                    now,
                    Mail {
                        to: node,
                        run,
                        note: Note::ListenerUp,
                    },
                );
            }
        }
    }

    /// Process `from` sends a hint: to every other process that is up.
    pub(crate) fn hint(&mut self, from: usize, now: Instant, hint: CommitHint) {
        self.publish(from, now, |_| Note::Hint(hint.clone()));
    }

    /// Process `from` sends a relay: to every other process that is up.
    pub(crate) fn relay(&mut self, from: usize, now: Instant, relay: Relay) {
        self.publish(from, now, |_| Note::Relay(relay.clone()));
    }

    fn publish(&mut self, from: usize, now: Instant, note: impl Fn(()) -> Note) {
        for to in 0..self.procs.len() {
            if to == from || !self.procs[to].up {
                continue;
            }
            if self.rng.below(100) < self.faults.drop_pct {
                continue;
            }
            let copies = 1 + u64::from(self.rng.below(100) < self.faults.dup_pct);
            for _ in 0..copies {
                let span = self.faults.delay_ms_max - self.faults.delay_ms_min;
                let delay = self.faults.delay_ms_min + self.rng.below(span + 1);
                let run = self.procs[to].run;
                self.bus.push(
                    Instant::from_millis(now.as_millis() + delay),
                    Mail {
                        to,
                        run,
                        note: note(()),
                    },
                );
            }
        }
    }

    /// Process `node`'s machine asks the arbiter; carried out after
    /// `latency_ms`, after its earlier commands.
    pub(crate) fn command(
        &mut self,
        node: usize,
        now: Instant,
        latency_ms: u64,
        cmd: PresenceCommand,
    ) {
        let p = &mut self.procs[node];
        let latency_ms = latency_ms.max(1);
        let at = Instant::from_millis(now.as_millis() + latency_ms).max(p.arbiter_free);
        p.arbiter_free = at;
        let start = Instant::from_millis(at.as_millis() - latency_ms);
        let id = p.id;
        p.queue.push_back(Call { id, cmd, start, at });
    }

    /// When the next thing happens.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        let timers = self
            .procs
            .iter()
            .flat_map(|p| [p.resync_at, p.beat_at])
            .flatten()
            .min();
        let ready = (!self.ready.is_empty()).then_some(Instant::ZERO);
        let calls = self.procs.iter().filter_map(Proc::next_call_at).min();
        [
            ready,
            self.bus.peek_time(),
            self.orphans.peek_time(),
            calls,
            timers,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Commands still at the arbiter.
    pub(crate) fn calls_in_flight(&self) -> usize {
        self.orphans.len() + self.procs.iter().map(|p| p.queue.len()).sum::<usize>()
    }

    /// The next thing due at `now` for a machine, if any. While the store
    /// is down (until `store_down_until`) the arbiter's transactions fail:
    /// a command is carried out once its process reconnected after the
    /// outage (production retries it first, before any later one), and a
    /// heartbeat is skipped (neither renewing nor reaping).
    pub(crate) fn pop_due(&mut self, now: Instant, store_down_until: Instant) -> Option<Due> {
        loop {
            if let Some(due) = self.ready.pop_front() {
                return Some(due);
            }
            if let Some((_, mail)) = self.bus.pop_due(now) {
                self.mail(now, mail);
                continue;
            }
            if let Some((_, call)) = self.orphans.pop_due(now) {
                if now >= store_down_until {
                    self.arbiter.carry_out(call.id, call.cmd);
                }
                continue;
            }
            let due = (0..self.procs.len()).find(|n| {
                let p = &self.procs[*n];
                p.up && p.next_call_at().is_some_and(|at| at <= now)
            });
            if let Some(node) = due {
                let p = &mut self.procs[node];
                if now < store_down_until {
                    // The transaction fails: the process reconnects after
                    // the outage, beats, and retries it before any later
                    // one.
                    p.blocked_until =
                        Instant::from_millis(store_down_until.as_millis() + RECONNECT_WAIT_MS);
                    p.beat_at = Some(p.blocked_until);
                    continue;
                }
                let Some(call) = p.queue.pop_front() else {
                    continue;
                };
                let outcome = self.arbiter.carry_out(call.id, call.cmd);
                self.ready.push_back(Due::Presence(node, outcome));
                continue;
            }
            let node = (0..self.procs.len()).find(|n| {
                let p = &self.procs[*n];
                [p.resync_at, p.beat_at]
                    .into_iter()
                    .flatten()
                    .any(|t| t <= now)
            })?;
            self.timers(node, now, now < store_down_until);
        }
    }

    fn mail(&mut self, now: Instant, mail: Mail) {
        let to = mail.to;
        let p = &mut self.procs[to];
        if !p.up || p.run != mail.run {
            return;
        }
        let due = match mail.note {
            Note::ListenerUp => {
                if p.deaf_until.is_none_or(|until| until > now) {
                    return;
                }
                p.deaf_until = None;
                if self.resync_every.is_none() {
                    return;
                }
                Due::Resync(to)
            }
            // What arrives while the listener is away is lost.
            _ if p.deaf_until.is_some() => return,
            Note::Hint(hint) => Due::Hint(to, hint),
            Note::Relay(relay) => Due::Relay(to, relay),
        };
        self.ready.push_back(due);
    }

    fn timers(&mut self, node: usize, now: Instant, store_down: bool) {
        if self.procs[node].resync_at.is_some_and(|t| t <= now) {
            let next = self.resync_every.map(|every| self.jittered(now, every));
            let p = &mut self.procs[node];
            p.resync_at = next;
            // The periodic resync runs while the listener listens.
            if p.deaf_until.is_none() {
                self.ready.push_back(Due::Resync(node));
            }
        }
        if self.procs[node].beat_at.is_some_and(|t| t <= now) {
            let every = self.beat_every();
            let p = &mut self.procs[node];
            p.beat_at = Some(now.saturating_add(every));
            if store_down || now < p.blocked_until {
                return;
            }
            let id = p.id;
            if self.arbiter.beat(id, now.saturating_add(self.lease)) {
                // Reaped while alive (the lab's processes never stall, so
                // this is for completeness): claim everyone again.
                self.ready
                    .push_back(Due::Presence(node, PresenceOutcome::Lost));
            }
            for change in self.arbiter.reap(id, now) {
                self.ready
                    .push_back(Due::Presence(node, PresenceOutcome::Adopted(change)));
            }
        }
    }
}
