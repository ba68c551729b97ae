//! The one loop around the server machine and its store. Fronts feed it
//! connection events through the [`Frontdoor`](super::Frontdoor); it is
//! the only owner of the machine.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lockstep_core::Instant;
use lockstep_core::server::{AccessPolicy, ConnId, PresenceCommand, Rooms, Server, ServerOutput};
use lockstep_core::store::{StoreError, StoreOpId, StoreReply};
use lockstep_core::wire::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::clock::Clock;
use super::front::{Input, OutFrame};
use super::peers::{PeerEvent, PeerNote, Peers};
use super::store::Store;

/// Inputs handled before the outputs are carried out: enough to gather a
/// burst of pipelined sends into one commit, few enough that replies are
/// not held back noticeably.
const INPUT_BURST_MAX: usize = 64;

type StoreFuture =
    Pin<Box<dyn Future<Output = (StoreOpId, Result<StoreReply, StoreError>)> + Send>>;

/// A connection this far behind (bytes queued) is checked against its
/// user's and the server's budgets too.
const LAGGARD_BYTES: usize = 1 << 20;
/// How long a sum of every connection's queue is reused before it is
/// summed again.
const TOTAL_REFRESH: Duration = Duration::from_millis(50);

/// Byte budgets of the outgoing queues (see `ServerDriverConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueBudgets {
    pub(crate) conn: usize,
    pub(crate) user: usize,
    pub(crate) total: usize,
}

/// One open connection's queue, as the driver sees it (its user and rooms
/// are in the driver's [`Rooms`]).
#[derive(Debug)]
struct Conn {
    outgoing: mpsc::Sender<Arc<OutFrame>>,
    /// Bytes queued and not yet taken by the connection's writer.
    queued: Arc<AtomicUsize>,
    kill: CancellationToken,
}

/// The machine, its store and every connection's queue.
pub(crate) struct Driver<P: AccessPolicy, S, K> {
    pub(crate) server: Server<P>,
    pub(crate) store: Arc<S>,
    pub(crate) clock: K,
    pub(crate) inputs: mpsc::Receiver<Input>,
    pub(crate) closed: mpsc::UnboundedReceiver<ConnId>,
    pub(crate) shutdown: CancellationToken,
    conns: BTreeMap<ConnId, Conn>,
    /// Who is open as whom and in which rooms (each user's connections
    /// too, for its byte budget).
    rooms: Rooms,
    budgets: QueueBudgets,
    /// The bytes queued for every connection, as last summed, and when.
    total_queued: (usize, Option<tokio::time::Instant>),
    store_ops: FuturesUnordered<StoreFuture>,
    /// The link to the processes sharing the store, if any.
    peers: Option<Peers>,
    /// Hints dropped because the link's queue was full (logged now and
    /// then).
    hints_dropped: u64,
    /// Presence commands waiting for room in the arbiter's queue, in
    /// order (a burst of claims when a dead process's clients arrive at
    /// once); at most [`PRESENCE_BACKLOG_MAX`].
    presence_backlog: VecDeque<PresenceCommand>,
}

/// Presence commands held while the arbiter's queue is full (each about a
/// hundred bytes: a few MiB at most). Past it a command is dropped and
/// logged: a claim dropped announces no join, a release dropped leaves the
/// claim until this process's lease is reaped.
const PRESENCE_BACKLOG_MAX: usize = 65_536;

impl<P, S, K> Driver<P, S, K>
where
    P: AccessPolicy + Send + 'static,
    S: Store,
    K: Clock,
{
    pub(crate) fn new(
        server: Server<P>,
        store: Arc<S>,
        clock: K,
        inputs: mpsc::Receiver<Input>,
        closed: mpsc::UnboundedReceiver<ConnId>,
        shutdown: CancellationToken,
        budgets: QueueBudgets,
    ) -> Self {
        Driver {
            server,
            store,
            clock,
            inputs,
            closed,
            shutdown,
            conns: BTreeMap::new(),
            rooms: Rooms::new(),
            budgets,
            total_queued: (0, None),
            store_ops: FuturesUnordered::new(),
            peers: None,
            hints_dropped: 0,
            presence_backlog: VecDeque::new(),
        }
    }

    /// Links the driver to the processes sharing its store.
    pub(crate) fn with_peers(mut self, peers: Option<Peers>) -> Self {
        self.peers = peers;
        self
    }

    /// Runs until shutdown: then stops taking requests, finishes the store
    /// work in flight (answering it) and closes every connection.
    pub(crate) async fn run(mut self) {
        let mut stopping = false;
        loop {
            if stopping && self.store_ops.is_empty() {
                break;
            }
            let deadline = self.server.poll_timeout().map(|at| self.tokio_deadline(at));
            let arbiter = if self.presence_backlog.is_empty() {
                None
            } else {
                self.peers.as_ref().and_then(|p| p.presence.clone())
            };
            tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if !stopping => {
                    info!(pending = self.store_ops.len(), "server shutting down");
                    stopping = true;
                }
                Some((op, result)) = self.store_ops.next(), if !self.store_ops.is_empty() => {
                    let now = self.clock.now();
                    self.server.handle_store(now, op, result);
                }
                Some(input) = self.inputs.recv(), if !stopping => {
                    self.on_input(input);
                    // Take what else has already arrived before carrying out
                    // the outputs: sends to one channel that arrive in a
                    // burst then leave as one append command (one commit).
                    for _ in 1..INPUT_BURST_MAX {
                        match self.inputs.try_recv() {
                            Ok(input) => self.on_input(input),
                            Err(_) => break,
                        }
                    }
                }
                Some(conn) = self.closed.recv() => {
                    if self.forget(conn) {
                        let now = self.clock.now();
                        self.server.handle_disconnect(now, conn);
                    }
                }
                Some(event) = peer_event(self.peers.as_mut()), if !stopping => {
                    let now = self.clock.now();
                    match event {
                        PeerEvent::Hint(hint) => self.server.handle_hint(now, hint),
                        PeerEvent::Relay(relay) => self.server.handle_relay(now, relay),
                        PeerEvent::Resync => self.server.handle_resync(now),
                        PeerEvent::Presence(outcome) => self.server.handle_presence(now, outcome),
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.clock.now();
                    self.server.handle_timeout(now);
                }
                Some(permit) = room_at(arbiter) => {
                    if let Some(cmd) = self.presence_backlog.pop_front() {
                        permit.send(cmd);
                    }
                }
            }
            self.drain();
        }
        // Dropping the queues lets each writer flush and close.
        let open = self.conns.len();
        self.conns.clear();
        self.rooms.clear();
        info!(closed = open, "server driver stopped");
    }

    fn tokio_deadline(&self, at: Instant) -> tokio::time::Instant {
        let wait = at.saturating_since(self.clock.now());
        tokio::time::Instant::now() + wait
    }

    fn on_input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Open {
                conn,
                user,
                outgoing,
                queued,
                kill,
            } => {
                debug!(%conn, %user, "connection open");
                self.rooms.open(conn, user.clone());
                self.conns.insert(
                    conn,
                    Conn {
                        outgoing,
                        queued,
                        kill,
                    },
                );
                self.server.handle_connect(now, conn, user);
            }
            Input::Frame(conn, frame) => self.server.handle_frame(now, conn, frame),
            Input::Undecodable(conn, error) => {
                debug!(%conn, %error, "undecodable frame");
                self.server.handle_decode_error(now, conn, error);
            }
        }
    }

    /// Carries out every output; connections cut off on the way are
    /// disconnected from the machine, whose new outputs are carried out in
    /// turn.
    fn drain(&mut self) {
        loop {
            let mut cut = Vec::new();
            while let Some(output) = self.server.poll_output() {
                self.carry_out(output, &mut cut);
            }
            if cut.is_empty() {
                return;
            }
            let now = self.clock.now();
            for conn in cut {
                self.server.handle_disconnect(now, conn);
            }
        }
    }

    fn carry_out(&mut self, output: ServerOutput, cut: &mut Vec<ConnId>) {
        match output {
            ServerOutput::Send { conn, frame } => {
                let last = matches!(frame, ServerFrame::Refused { .. });
                self.deliver(conn, &OutFrame::new(frame), cut);
                if last {
                    // Dropping the queue closes the connection once the
                    // refusal is written.
                    self.forget(conn);
                }
            }
            ServerOutput::Broadcast {
                channel,
                frame,
                except,
            } => {
                let members: Vec<ConnId> = self.rooms.recipients(&channel, &except).collect();
                let frame = OutFrame::new(frame);
                for conn in members {
                    self.deliver(conn, &frame, cut);
                }
            }
            ServerOutput::RoomJoin { .. } | ServerOutput::RoomLeave { .. } => {
                self.rooms.apply(&output);
            }
            ServerOutput::Close { conn, reason } => {
                // The machine already forgot the connection (idle timeout).
                if let Some(c) = self.conns.get(&conn) {
                    let user = self.rooms.user_of(conn);
                    warn!(%conn, ?user, reason, "closing connection");
                    c.kill.cancel();
                }
                self.forget(conn);
            }
            ServerOutput::Committed(hint) => self.tell_peers(PeerNote::Committed(hint)),
            ServerOutput::Relay(relay) => self.tell_peers(PeerNote::Relay(relay)),
            ServerOutput::Presence(cmd) => self.tell_arbiter(cmd),
            ServerOutput::Store { op, cmd } => {
                let store = Arc::clone(&self.store);
                self.store_ops
                    .push(Box::pin(async move { (op, store.execute(cmd).await) }));
            }
        }
    }

    /// Hands a note to the peer link without waiting: a full queue drops
    /// it (a hint's loss costs the others latency, a relay's nothing).
    fn tell_peers(&mut self, note: PeerNote) {
        let Some(peers) = &self.peers else {
            return;
        };
        if peers.notes.try_send(note).is_err() {
            self.hints_dropped += 1;
            if self.hints_dropped.is_power_of_two() {
                warn!(
                    dropped = self.hints_dropped,
                    "peer queue full: hints dropped"
                );
            }
        }
    }

    /// Hands a presence command to the arbiter without waiting: behind
    /// the backlog, if any (order matters), else straight into its queue,
    /// else into the backlog; dropped (logged) only past the backlog's
    /// bound.
    fn tell_arbiter(&mut self, cmd: PresenceCommand) {
        let Some(arbiter) = self.peers.as_ref().and_then(|p| p.presence.as_ref()) else {
            warn!(?cmd, "presence is arbitrated but no arbiter is linked");
            return;
        };
        let cmd = if self.presence_backlog.is_empty() {
            match arbiter.try_send(cmd) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    warn!("presence arbiter gone: command dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Full(cmd)) => cmd,
            }
        } else {
            cmd
        };
        if self.presence_backlog.len() >= PRESENCE_BACKLOG_MAX {
            warn!(?cmd, "presence backlog full: command dropped");
            return;
        }
        self.presence_backlog.push_back(cmd);
    }

    /// Queues a frame for one connection. A full queue (in frames or in
    /// bytes, its own or its user's, or the server's) means the client
    /// cannot keep up: it is cut off with a logged reason (it recovers by
    /// re-joining from its position), never silently skipped.
    fn deliver(&mut self, conn: ConnId, frame: &Arc<OutFrame>, cut: &mut Vec<ConnId>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let queued = c.queued.load(Ordering::Relaxed);
        // A frame larger than the budget still goes to an empty queue: a
        // reply is cut to fit long before that, and nothing may be dropped.
        let over = if queued > 0 && queued.saturating_add(frame.weight) > self.budgets.conn {
            Some(format!(
                "outgoing queue over {} bytes: client too slow",
                self.budgets.conn
            ))
        } else if queued >= LAGGARD_BYTES {
            self.shared_budget_exceeded(conn)
        } else {
            None
        };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let user = self.rooms.user_of(conn);
        if let Some(reason) = over {
            warn!(%conn, ?user, queued, %reason, "disconnecting a slow client");
            c.kill.cancel();
            self.forget(conn);
            cut.push(conn);
            return;
        }
        c.queued.fetch_add(frame.weight, Ordering::Relaxed);
        match c.outgoing.try_send(Arc::clone(frame)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.queued.fetch_sub(frame.weight, Ordering::Relaxed);
                warn!(%conn, ?user, "outgoing queue full: client too slow, disconnecting it");
                c.kill.cancel();
                self.forget(conn);
                cut.push(conn);
            }
            // The writer is gone; the front's close is on its way.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                c.queued.fetch_sub(frame.weight, Ordering::Relaxed);
            }
        }
    }

    /// Why `conn`, far behind, must go: its user's connections together,
    /// or every connection together, hold more than their budget. `None`
    /// while both are within it.
    fn shared_budget_exceeded(&mut self, conn: ConnId) -> Option<String> {
        let of_user: usize = self
            .rooms
            .user_of(conn)
            .into_iter()
            .flat_map(|user| self.rooms.conns_of(user))
            .filter_map(|c| self.conns.get(&c))
            .map(|c| c.queued.load(Ordering::Relaxed))
            .sum();
        if of_user > self.budgets.user {
            return Some(format!(
                "this user's outgoing queues hold over {} bytes",
                self.budgets.user
            ));
        }
        let now = tokio::time::Instant::now();
        let (mut total, at) = self.total_queued;
        if at.is_none_or(|at| now.duration_since(at) > TOTAL_REFRESH) {
            total = self
                .conns
                .values()
                .map(|c| c.queued.load(Ordering::Relaxed))
                .sum();
            self.total_queued = (total, Some(now));
        }
        (total > self.budgets.total).then(|| {
            format!(
                "the server's outgoing queues hold over {} bytes",
                self.budgets.total
            )
        })
    }

    /// Drops a connection's queue and room memberships; false if it was
    /// already gone.
    fn forget(&mut self, conn: ConnId) -> bool {
        self.rooms.close(conn);
        self.conns.remove(&conn).is_some()
    }
}

/// The next event of the peer link; pending forever without one (or
/// once it closed).
async fn peer_event(peers: Option<&mut Peers>) -> Option<PeerEvent> {
    match peers {
        Some(p) => match p.events.recv().await {
            Some(event) => Some(event),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Room for one command in the arbiter's queue, when there is a backlog
/// to send (never ready otherwise).
async fn room_at(
    arbiter: Option<mpsc::Sender<PresenceCommand>>,
) -> Option<mpsc::OwnedPermit<PresenceCommand>> {
    match arbiter {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
