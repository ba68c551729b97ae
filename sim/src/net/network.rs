//! The packet simulator: links, queues ordered by ready time, fault verbs.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use lockstep_core::{Instant, Rng};

use super::lane::{Conn, LaneItem, LaneState};
use super::{
    ClientIx, CloseReason, ConnId, Delivery, Dir, LossCause, NetConfig, NetConfigError, NetStats,
    PartitionKind, SendOutcome, StreamPartition, TransportKind, config::PERMILLE,
};

/// What waits in the heap.
#[derive(Debug)]
enum Flight<P> {
    /// Wake-up for the head of a stream lane.
    StreamHead,
    /// A datagram, numbered in its lane's send order.
    Datagram { payload: P, sent: u64 },
    /// The handshake of a datagram connection.
    DatagramOpened,
    /// A close notice travelling toward `dir`'s destination.
    Notice(CloseReason),
}

/// A due entry, as `land` takes it.
#[derive(Debug)]
struct Entry<P> {
    ready_ms: u64,
    conn: ConnId,
    dir: Dir,
    flight: Flight<P>,
}

/// What the heap orders: (ready time, insertion counter), and the slot of
/// the entry's [`Parked`] rest. Small, so sifting moves 24 bytes, not a
/// whole frame.
#[derive(Debug, PartialEq, Eq)]
struct Key {
    ready_ms: u64,
    ctr: u64,
    slot: usize,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    /// Reversed so the std max-heap yields the earliest entry first
    /// (`ctr` is unique: the slot never decides).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.ready_ms, other.ctr).cmp(&(self.ready_ms, self.ctr))
    }
}

/// An entry's rest while its key waits in the heap.
#[derive(Debug)]
struct Parked<P> {
    conn: ConnId,
    dir: Dir,
    flight: Flight<P>,
}

/// Per-client link state.
#[derive(Debug)]
struct Link<P> {
    kind: TransportKind,
    /// Directions cut by a partition, indexed by `Dir::ix`.
    cut: [bool; 2],
    /// Per direction: nothing arrives before this time (a hold), in ms.
    hold_until_ms: [u64; 2],
    /// The client's current connection, if open.
    conn: Option<Conn<P>>,
}

/// Why a network call was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The client index is not below the configured number of clients.
    #[error("unknown client {0}")]
    UnknownClient(ClientIx),
}

/// A sans-IO virtual network between one server and clients `0..n`.
///
/// Driving order, like a quinn-proto connection: after any call, drain
/// [`poll_ready`](Self::poll_ready) with the current time until it returns
/// `None`, then sleep the virtual clock until
/// [`next_ready_at`](Self::next_ready_at). Time passed in must not go
/// backwards. Every random choice is drawn from the [`Rng`] given to
/// [`new`](Self::new), in call order, so one seed gives one delivery sequence.
///
/// Cost per frame: one heap push and pop plus the payload; no other
/// allocation, no hashing, no strings.
#[derive(Debug)]
pub struct Network<P> {
    config: NetConfig,
    rng: Rng,
    links: Vec<Link<P>>,
    heap: BinaryHeap<Key>,
    /// Entries by slot (`None`: free); as many as were ever waiting at once.
    parked: Vec<Option<Parked<P>>>,
    /// Free slots of `parked`, reused before it grows.
    free: Vec<usize>,
    ctr: u64,
    serial: u64,
    in_flight: u64,
    stats: NetStats,
}

impl<P: Clone> Network<P> {
    /// Builds a network for `config.transports.len()` clients, all offline.
    pub fn new(config: NetConfig, rng: Rng) -> Result<Self, NetConfigError> {
        config.validate()?;
        let links = config
            .transports
            .iter()
            .map(|&kind| Link {
                kind,
                cut: [false; 2],
                hold_until_ms: [0; 2],
                conn: None,
            })
            .collect();
        Ok(Network {
            heap: BinaryHeap::with_capacity(1024),
            parked: Vec::with_capacity(1024),
            free: Vec::new(),
            config,
            rng,
            links,
            ctr: 0,
            serial: 0,
            in_flight: 0,
            stats: NetStats::default(),
        })
    }

    // ---- getters -------------------------------------------------------

    /// The configuration the network was built with.
    #[must_use]
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Counters since construction.
    #[must_use]
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Frames sent and neither delivered nor lost yet (held and stalled
    /// frames included; handshakes and close notices excluded).
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Number of clients.
    #[must_use]
    pub fn clients(&self) -> usize {
        self.links.len()
    }

    /// The client's open connection, if any.
    #[must_use]
    pub fn current(&self, client: ClientIx) -> Option<ConnId> {
        self.links.get(client.index())?.conn.as_ref().map(|c| c.id)
    }

    /// Whether `conn` is still open (a stalled connection is open).
    #[must_use]
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.current(conn.client()) == Some(conn)
    }

    /// The transport model of a client.
    #[must_use]
    pub fn transport(&self, client: ClientIx) -> Option<TransportKind> {
        self.links.get(client.index()).map(|l| l.kind)
    }

    /// Whether a partition currently cuts `dir` for `client`.
    #[must_use]
    pub fn is_cut(&self, client: ClientIx, dir: Dir) -> bool {
        self.links
            .get(client.index())
            .is_some_and(|l| l.cut[dir.ix()])
    }

    /// When the next delivery may be due: the world sleeps until then. It may
    /// be early (an entry of a connection that died since), which costs one
    /// empty [`poll_ready`](Self::poll_ready) and nothing else.
    #[must_use]
    pub fn next_ready_at(&self) -> Option<Instant> {
        self.heap.peek().map(|e| Instant::from_millis(e.ready_ms))
    }

    // ---- connections ---------------------------------------------------

    /// Opens a new connection for `client`, closing its previous one (the
    /// server is told with [`CloseReason::Replaced`]). The server learns of
    /// the new one by [`Delivery::Opened`], which on a stream comes before
    /// any of its frames and is held by partitions like them.
    pub fn open(&mut self, now: Instant, client: ClientIx) -> Result<ConnId, NetError> {
        let link = self
            .links
            .get(client.index())
            .ok_or(NetError::UnknownClient(client))?;
        if let Some(old) = link.conn.as_ref().map(|c| c.id) {
            self.close(now, old, CloseReason::Replaced);
        }
        self.serial += 1;
        let id = ConnId::new(client, self.serial);
        let now_ms = now.as_millis();
        let kind = self.links[client.index()].kind;
        let mut conn = Conn::new(id, kind);
        match kind {
            TransportKind::Stream => {
                let ready_ms = now_ms
                    .saturating_add(self.draw_delay_ms())
                    .max(self.hold_ms(client, Dir::ToServer));
                let lane = &mut conn.lanes[Dir::ToServer.ix()];
                lane.queue.push_back((ready_ms, LaneItem::Opened));
                lane.last_ready_ms = ready_ms;
                lane.armed = true;
                self.push(ready_ms, id, Dir::ToServer, Flight::StreamHead);
            }
            TransportKind::Datagram => {
                // The fastest path, so no datagram of this connection can
                // overtake its own handshake.
                let ready_ms = now_ms
                    .saturating_add(self.config.delay_ms_min)
                    .max(self.hold_ms(client, Dir::ToServer));
                self.push(ready_ms, id, Dir::ToServer, Flight::DatagramOpened);
            }
        }
        self.links[client.index()].conn = Some(conn);
        self.stats.connections_opened += 1;
        Ok(id)
    }

    /// Closes `conn` abortively (like a reset): frames in flight either way
    /// are lost, and each end that did not initiate the close (see
    /// [`CloseReason::notifies`]) gets a [`Delivery::Closed`] after a one-way
    /// delay, unless a partition cuts the notice. Returns false if `conn` was
    /// not open.
    pub fn close(&mut self, now: Instant, conn: ConnId, reason: CloseReason) -> bool {
        let Some(link) = self.links.get_mut(conn.client().index()) else {
            return false;
        };
        if link.conn.as_ref().map(|c| c.id) != Some(conn) {
            return false;
        }
        let Some(dead) = link.conn.take() else {
            return false;
        };
        let lost: u64 = dead.lanes.iter().map(|l| u64::from(l.frames)).sum();
        self.in_flight -= lost;
        self.stats.lost_on_close += lost;
        self.stats.frames_lost += lost;
        match reason {
            CloseReason::Dropped | CloseReason::Overflow(_) => self.stats.connections_dropped += 1,
            _ => self.stats.connections_closed += 1,
        }
        for dir in [Dir::ToServer, Dir::ToClient] {
            // The server never heard of a connection whose handshake died.
            let known = dir == Dir::ToClient || dead.announced;
            if reason.notifies(dir) && known {
                let ready_ms = now
                    .as_millis()
                    .saturating_add(self.draw_delay_ms())
                    .max(self.hold_ms(conn.client(), dir));
                self.push(ready_ms, conn, dir, Flight::Notice(reason));
            }
        }
        true
    }

    // ---- frames ------------------------------------------------------------

    /// Hands `payload` to the network on `conn` in direction `dir`.
    pub fn send(&mut self, now: Instant, conn: ConnId, dir: Dir, payload: P) -> SendOutcome {
        let Some(link) = self.links.get_mut(conn.client().index()) else {
            return SendOutcome::NotOpen;
        };
        let Some(c) = link.conn.as_mut().filter(|c| c.id == conn) else {
            return SendOutcome::NotOpen;
        };
        self.stats.frames_sent += 1;
        match c.kind {
            TransportKind::Stream => self.send_stream(now, conn, dir, payload),
            TransportKind::Datagram => self.send_datagram(now, conn, dir, payload),
        }
    }

    fn send_stream(&mut self, now: Instant, conn: ConnId, dir: Dir, payload: P) -> SendOutcome {
        let cap = self.config.stream_buffer_frames_max;
        let delay_ms = self.draw_delay_ms();
        let hold_ms = self.hold_ms(conn.client(), dir);
        let Some(lane) = self.lane_mut(conn, dir) else {
            return SendOutcome::NotOpen;
        };
        if lane.frames >= cap {
            // Never lose a stream frame silently: cut the connection instead.
            self.stats.lost_buffer_full += 1;
            self.stats.frames_lost += 1;
            self.close(now, conn, CloseReason::Overflow(dir));
            return SendOutcome::Overflow;
        }
        let ready_ms = now
            .as_millis()
            .saturating_add(delay_ms)
            .max(lane.last_ready_ms)
            .max(hold_ms);
        lane.last_ready_ms = ready_ms;
        lane.queue.push_back((ready_ms, LaneItem::Frame(payload)));
        lane.frames += 1;
        let arm = lane.state == LaneState::Flowing && !lane.armed;
        lane.armed |= arm;
        self.in_flight += 1;
        if arm {
            self.push(ready_ms, conn, dir, Flight::StreamHead);
        }
        SendOutcome::Queued
    }

    fn send_datagram(&mut self, now: Instant, conn: ConnId, dir: Dir, payload: P) -> SendOutcome {
        let cut = self.is_cut(conn.client(), dir);
        let cap = self.config.datagram_buffer_frames_max;
        let full = self.lane_mut(conn, dir).is_none_or(|l| l.frames >= cap);
        let cause = if cut {
            Some(LossCause::Partition)
        } else if full {
            Some(LossCause::BufferFull)
        } else if self.draw(self.config.loss_permille) {
            Some(LossCause::Random)
        } else {
            None
        };
        if let Some(cause) = cause {
            self.count_loss(cause);
            return SendOutcome::Lost(cause);
        }
        let copy = if self.draw(self.config.dup_permille) && !self.lane_full(conn, dir, 1) {
            Some(payload.clone())
        } else {
            None
        };
        self.push_datagram(now, conn, dir, payload);
        match copy {
            Some(copy) => {
                self.stats.frames_duplicated += 1;
                self.push_datagram(now, conn, dir, copy);
                SendOutcome::Duplicated
            }
            None => SendOutcome::Queued,
        }
    }

    fn push_datagram(&mut self, now: Instant, conn: ConnId, dir: Dir, payload: P) {
        let mut delay_ms = self.draw_delay_ms();
        if self.draw(self.config.reorder_permille) {
            delay_ms = delay_ms.saturating_add(self.rng.below(self.config.reorder_ms_max + 1));
        }
        let hold_ms = self.hold_ms(conn.client(), dir);
        let Some(lane) = self.lane_mut(conn, dir) else {
            return;
        };
        let sent = lane.sent;
        lane.sent += 1;
        lane.frames += 1;
        self.in_flight += 1;
        let ready_ms = now.as_millis().saturating_add(delay_ms).max(hold_ms);
        self.push(ready_ms, conn, dir, Flight::Datagram { payload, sent });
    }

    /// The next delivery due at or before `now`, if any. Call until `None`.
    pub fn poll_ready(&mut self, now: Instant) -> Option<Delivery<P>> {
        let now_ms = now.as_millis();
        while self.heap.peek().is_some_and(|e| e.ready_ms <= now_ms) {
            let key = self.heap.pop()?;
            let parked = self.parked.get_mut(key.slot).and_then(Option::take)?;
            self.free.push(key.slot);
            let entry = Entry {
                ready_ms: key.ready_ms,
                conn: parked.conn,
                dir: parked.dir,
                flight: parked.flight,
            };
            if let Some(delivery) = self.land(now, entry) {
                return Some(delivery);
            }
        }
        None
    }

    /// Decides the fate of one due heap entry.
    fn land(&mut self, now: Instant, entry: Entry<P>) -> Option<Delivery<P>> {
        let Entry {
            ready_ms,
            conn,
            dir,
            flight,
            ..
        } = entry;
        let hold_ms = self.hold_ms(conn.client(), dir);
        if ready_ms < hold_ms {
            // Held after it was sent: it waits for the release.
            self.delay_for_hold(conn, dir, flight, hold_ms);
            return None;
        }
        let cut = self.is_cut(conn.client(), dir);
        match flight {
            Flight::Notice(reason) => {
                if cut {
                    // The reset cannot cross: that end must notice by itself.
                    self.stats.notices_lost += 1;
                    return None;
                }
                Some(Delivery::Closed { conn, dir, reason })
            }
            Flight::StreamHead => self.land_stream(now, conn, dir, cut),
            Flight::DatagramOpened => {
                let c = self.conn_mut(conn)?;
                if cut {
                    // A lost handshake: the client's connect timeout fires.
                    return None;
                }
                c.announced = true;
                Some(Delivery::Opened { conn })
            }
            Flight::Datagram { payload, sent } => {
                let c = self.conn_mut(conn)?;
                let arrives = !cut && (dir == Dir::ToClient || c.announced);
                let lane = &mut c.lanes[dir.ix()];
                lane.frames -= 1;
                let reordered = arrives && lane.delivered_max.is_some_and(|m| sent < m);
                if arrives {
                    lane.delivered_max = Some(lane.delivered_max.map_or(sent, |m| m.max(sent)));
                }
                self.in_flight -= 1;
                if !arrives {
                    // Cut on the way, or sent before a handshake that was cut.
                    self.count_loss(LossCause::Partition);
                    return None;
                }
                self.stats.frames_reordered += u64::from(reordered);
                self.stats.frames_delivered += 1;
                Some(Delivery::Frame { conn, dir, payload })
            }
        }
    }

    fn land_stream(
        &mut self,
        now: Instant,
        conn: ConnId,
        dir: Dir,
        cut: bool,
    ) -> Option<Delivery<P>> {
        let mode = self.config.stream_partition;
        let lane = self.lane_mut(conn, dir)?;
        lane.armed = false;
        if cut {
            lane.state = match mode {
                StreamPartition::Resume => LaneState::Parked,
                StreamPartition::Stall => LaneState::Stalled,
            };
            if mode == StreamPartition::Stall {
                self.stats.stalls += 1;
            }
            return None;
        }
        if lane.state != LaneState::Flowing {
            return None;
        }
        let (ready_ms, item) = lane.queue.pop_front()?;
        debug_assert!(ready_ms <= now.as_millis());
        let next = lane.queue.front().map(|(ms, _)| *ms);
        lane.armed = next.is_some();
        if let LaneItem::Frame(_) = item {
            lane.frames -= 1;
        }
        if let Some(next_ms) = next {
            self.push(next_ms, conn, dir, Flight::StreamHead);
        }
        match item {
            LaneItem::Opened => {
                if let Some(c) = self.conn_mut(conn) {
                    c.announced = true;
                }
                Some(Delivery::Opened { conn })
            }
            LaneItem::Frame(payload) => {
                self.in_flight -= 1;
                self.stats.frames_delivered += 1;
                Some(Delivery::Frame { conn, dir, payload })
            }
        }
    }

    // ---- faults ------------------------------------------------------------

    /// Cuts the client's current connection as the network would (a reset, a
    /// NAT timeout): in-flight frames are lost and both ends are told.
    /// Provokes reconnect with backoff, re-join with recovery, outbox resend.
    pub fn drop_connection(&mut self, now: Instant, client: ClientIx) -> bool {
        match self.current(client) {
            Some(conn) => self.close(now, conn, CloseReason::Dropped),
            None => false,
        }
    }

    /// Cuts the directions `kind` names between each client and the server,
    /// on top of any cut already there. Streams resume on the repair or stall
    /// (per config),
    /// datagrams and close notices are dropped. Provokes timeouts, half-open
    /// detection by heartbeat, acks lost after a commit (to-client only) and
    /// requests that never arrive (to-server only).
    pub fn partition(&mut self, clients: &[ClientIx], kind: PartitionKind) {
        for client in clients {
            if let Some(link) = self.links.get_mut(client.index()) {
                for dir in [Dir::ToServer, Dir::ToClient] {
                    link.cut[dir.ix()] |= kind.blocks(dir);
                }
            }
        }
    }

    /// Repairs every cut of the named clients. Stopped stream frames resume, in
    /// order, one fresh one-way delay from now (a retransmission); stalled
    /// directions stay stalled. Provokes the burst of late frames after an
    /// outage: stale replies, duplicate resends, recovery racing live events.
    pub fn repair(&mut self, now: Instant, clients: &[ClientIx]) {
        for &client in clients {
            self.repair_one(now, client);
        }
    }

    /// Repairs every cut of every client (the start of the liveness phase).
    pub fn repair_all(&mut self, now: Instant) {
        for i in 0..self.links.len() {
            self.repair_one(now, ClientIx(i as u32));
        }
    }

    /// Holds both directions of the client's link for `duration_ms`, then
    /// releases them (turmoil's hold and release): nothing is lost,
    /// everything (frames, handshakes, close notices) waits until the
    /// release, then streams resume in order and datagrams arrive. Provokes
    /// timeouts racing slow but successful replies: spurious retries that
    /// dedupe must absorb, and stale replies to superseded attempts.
    pub fn hold(&mut self, now: Instant, client: ClientIx, duration_ms: u64) {
        if let Some(link) = self.links.get_mut(client.index()) {
            let until_ms = now.as_millis().saturating_add(duration_ms);
            for slot in &mut link.hold_until_ms {
                *slot = (*slot).max(until_ms);
            }
            self.stats.holds += 1;
        }
    }

    /// Puts a held entry back at the time of the release.
    fn delay_for_hold(&mut self, conn: ConnId, dir: Dir, flight: Flight<P>, hold_ms: u64) {
        match flight {
            Flight::StreamHead => {
                let Some(lane) = self.lane_mut(conn, dir) else {
                    return;
                };
                lane.armed = false;
                if lane.state != LaneState::Flowing {
                    return;
                }
                for (ready_ms, _) in &mut lane.queue {
                    *ready_ms = (*ready_ms).max(hold_ms);
                }
                lane.last_ready_ms = lane.last_ready_ms.max(hold_ms);
                let head = lane.queue.front().map(|(ms, _)| *ms);
                lane.armed = head.is_some();
                if let Some(head_ms) = head {
                    self.push(head_ms, conn, dir, Flight::StreamHead);
                }
            }
            Flight::Datagram { .. } | Flight::DatagramOpened | Flight::Notice(_) => {
                self.push(hold_ms, conn, dir, flight);
            }
        }
    }

    fn repair_one(&mut self, now: Instant, client: ClientIx) {
        let Some(link) = self.links.get_mut(client.index()) else {
            return;
        };
        link.cut = [false; 2];
        let Some(id) = link.conn.as_ref().map(|c| c.id) else {
            return;
        };
        for dir in [Dir::ToServer, Dir::ToClient] {
            if self
                .lane_mut(id, dir)
                .is_none_or(|l| l.state != LaneState::Parked)
            {
                continue;
            }
            // The retransmission: one fresh one-way delay from the repair.
            let floor_ms = now.as_millis().saturating_add(self.draw_delay_ms());
            let Some(lane) = self.lane_mut(id, dir) else {
                continue;
            };
            lane.state = LaneState::Flowing;
            for (ready_ms, _) in &mut lane.queue {
                *ready_ms = (*ready_ms).max(floor_ms);
            }
            lane.last_ready_ms = lane.last_ready_ms.max(floor_ms);
            let held = u64::from(lane.frames);
            let head = lane.queue.front().map(|(ms, _)| *ms);
            lane.armed = head.is_some();
            self.stats.frames_held += held;
            if let Some(head_ms) = head {
                self.push(head_ms, id, dir, Flight::StreamHead);
            }
        }
    }

    // ---- helpers -----------------------------------------------------------

    /// Until when `dir` is held for `client` (0: never held).
    fn hold_ms(&self, client: ClientIx, dir: Dir) -> u64 {
        self.links
            .get(client.index())
            .map_or(0, |l| l.hold_until_ms[dir.ix()])
    }

    fn push(&mut self, ready_ms: u64, conn: ConnId, dir: Dir, flight: Flight<P>) {
        let ctr = self.ctr;
        self.ctr += 1;
        let parked = Some(Parked { conn, dir, flight });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.parked[slot] = parked;
                slot
            }
            None => {
                self.parked.push(parked);
                self.parked.len() - 1
            }
        };
        self.heap.push(Key {
            ready_ms,
            ctr,
            slot,
        });
    }

    fn conn_mut(&mut self, conn: ConnId) -> Option<&mut Conn<P>> {
        self.links
            .get_mut(conn.client().index())?
            .conn
            .as_mut()
            .filter(|c| c.id == conn)
    }

    fn lane_mut(&mut self, conn: ConnId, dir: Dir) -> Option<&mut super::lane::Lane<P>> {
        self.conn_mut(conn).map(|c| &mut c.lanes[dir.ix()])
    }

    fn lane_full(&mut self, conn: ConnId, dir: Dir, extra: u32) -> bool {
        let cap = self.config.datagram_buffer_frames_max;
        self.lane_mut(conn, dir)
            .is_none_or(|l| l.frames.saturating_add(extra) >= cap)
    }

    fn count_loss(&mut self, cause: LossCause) {
        self.stats.frames_lost += 1;
        match cause {
            LossCause::Random => self.stats.lost_random += 1,
            LossCause::Partition => self.stats.lost_partition += 1,
            LossCause::BufferFull => self.stats.lost_buffer_full += 1,
        }
    }

    fn draw_delay_ms(&mut self) -> u64 {
        let spread = self.config.delay_ms_max - self.config.delay_ms_min;
        self.config.delay_ms_min + self.rng.below(spread.saturating_add(1))
    }

    fn draw(&mut self, permille: u32) -> bool {
        permille > 0 && self.rng.below(u64::from(PERMILLE)) < u64::from(permille)
    }
}
