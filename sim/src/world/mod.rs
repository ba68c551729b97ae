//! The world: clients, one server process (or several, see [`MultiConfig`])
//! and a store on a virtual network and a virtual clock, every step watched
//! by the oracle.
//!
//! The world is the driver of every machine, the way the tokio adapters are
//! in production: it carries out each machine's outputs (open a transport,
//! send a frame, run a store command) and feeds back what happens. It adds
//! nothing of its own to the protocol; everything it knows of the truth
//! comes from the store.
//!
//! It serves two masters: scripted tests (named scenarios that `apply` ops
//! and `run_until` a time, then assert and snapshot the trace) and the
//! explorer (seeded scenarios run by [`crate::run`]).

mod client_host;
mod converge;
mod hooks;
mod servers;
mod store_host;
mod wire;

use std::collections::BTreeMap;
use std::rc::Rc;

use lockstep_core::client::{
    Client, ClientConfig, ClientEvent, EntryId, Outcome, Transmit, TransportEvent,
};
use lockstep_core::ids::UserId;
use lockstep_core::server::{
    ConnId as ServerConn, PresenceScope, PrivateChannels, Server, ServerConfig, ServerOutput,
    SharedTail, Writers,
};
use lockstep_core::store::{AppendOutcome, MemStore, MemStoreConfig, StoreError, StoreReply};
use lockstep_core::wire::{Ack, Body, ClientFrame, ErrorBody, ErrorCode, ServerFrame};
use lockstep_core::{Instant, Rng};

use crate::net::{
    ClientIx, CloseReason, ConnId, Delivery, Dir, Network, SendOutcome, TransportKind,
};
use crate::op::Op;
use crate::oracle::{ClientView, Oracle};
use crate::plain::{PlainClient, PlainConfig};
use crate::swarm::{ClientKind, SwarmParams};
use crate::trace::{self, Trace};

use client_host::{ClientHost, Machine, Recipe};
pub use converge::Pending;
pub use hooks::{Hook, Hooks};
pub use servers::{BusFaults, MultiConfig, SERVERS_MAX};
use servers::{Cluster, Due, Node};
use store_host::{InFlight, StoreHost};

/// What travels on the virtual network. Server frames are shared: one
/// broadcast is one allocation however many members receive it.
#[derive(Clone, Debug)]
pub enum Packet {
    /// Client to server.
    Up(ClientFrame),
    /// Server to client.
    Down(Rc<ServerFrame>),
}

/// How to build a world.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Clients, users, channels, transports and the network's fault knobs.
    pub params: SwarmParams,
    /// Every client machine's configuration.
    pub client: ClientConfig,
    /// Every plain app's configuration (on a stream; datagram clients get
    /// [`PlainConfig::datagram`]'s window, timeouts and resync).
    pub plain: PlainConfig,
    /// The server machine's configuration.
    pub server: ServerConfig,
    /// The store's retention and dedupe memory.
    pub store: MemStoreConfig,
    /// Round-trip every frame through its JSON encoding, so what the lab
    /// proves is what travels (slower; CI runs some seeds this way).
    pub wire: bool,
    /// Keep readable trace lines (replay, snapshots); the hash is always kept.
    pub trace_lines: bool,
    /// Adjustments to every machine the world builds (tests switch the
    /// core's deliberate bugs on with them). Default: none.
    pub hooks: Hooks,
    /// Server processes on the one store (1 to [`SERVERS_MAX`]). Default 1:
    /// one machine writing alone. More run `Writers::Shared` with
    /// arbitrated presence, a hint bus and an arbiter (see [`MultiConfig`]).
    pub servers: usize,
    /// How several processes talk; ignored with one.
    pub multi: MultiConfig,
}

impl WorldConfig {
    /// The lab's defaults for these parameters: heartbeats on (the lab has
    /// half-open streams and lossy datagrams), everything else as shipped.
    #[must_use]
    pub fn new(params: SwarmParams) -> Self {
        let mut client = ClientConfig::default();
        client.heartbeat = Some(lockstep_core::client::Heartbeat::default());
        // Streams in the lab can stall half-open (turmoil's behaviour): the
        // server needs its own liveness check, as a framed-TCP driver would.
        let server = ServerConfig {
            idle_timeout: Some(std::time::Duration::from_secs(45)),
            ..ServerConfig::default()
        };
        WorldConfig {
            params,
            client,
            plain: PlainConfig::stream(),
            server,
            store: MemStoreConfig::default(),
            wire: false,
            trace_lines: false,
            hooks: Hooks::default(),
            servers: 1,
            multi: MultiConfig::default(),
        }
    }
}

/// Counters for the explorer's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldStats {
    /// Events processed: deliveries, store completions, timer firings, ops.
    pub events: u64,
    /// Fault ops applied.
    pub faults: u64,
    /// Client machine rebuilds (app restarts).
    pub app_restarts: u64,
    /// Protocol errors clients reported (stale or odd frames they rejected).
    pub protocol_errors: u64,
}

/// A whole system on a virtual clock; see the module docs.
#[derive(Debug)]
pub struct World {
    now: Instant,
    params: SwarmParams,
    net: Network<Packet>,
    clients: Vec<ClientHost>,
    /// Each client machine's next deadline, cached after every drain; kept
    /// apart from the hosts so the scan for the next event reads one line.
    client_deadlines: Vec<Option<Instant>>,
    /// The clients of each user (indices), the users in name order: who is
    /// present is read off it in order, without sorting names.
    by_user: Vec<Vec<usize>>,
    /// The server processes (one unless [`WorldConfig::servers`] says more).
    nodes: Vec<Node>,
    server_config: ServerConfig,
    /// Adjusts every machine the world builds, restarts included.
    hooks: Hooks,
    /// Which process each network connection (by serial) was routed to.
    route: BTreeMap<u64, (ConnId, usize)>,
    /// Connections each client opened: the next goes to the next process.
    opens: Vec<u64>,
    /// Bus, listeners, resync and arbiter, when several processes run.
    cluster: Option<Cluster>,
    store: StoreHost,
    oracle: Oracle,
    trace: Trace,
    stats: WorldStats,
    wire: bool,
    /// The client the last convergence check found unsettled: the next
    /// check asks it first (see [`World::converged`]).
    unsettled: std::cell::Cell<Option<ClientIx>>,
}

/// Why a world could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// The network configuration is invalid.
    #[error("network: {0}")]
    Net(#[from] crate::net::NetConfigError),
    /// No server process, or more than [`SERVERS_MAX`].
    #[error("servers: {0} is not within 1..={SERVERS_MAX}")]
    Servers(usize),
}

impl World {
    /// Builds a world at time zero: every client idle, the server up.
    pub fn new(mut config: WorldConfig) -> Result<Self, WorldError> {
        if !(1..=SERVERS_MAX).contains(&config.servers) {
            return Err(WorldError::Servers(config.servers));
        }
        if config.servers > 1 && config.server.writers == Writers::Alone {
            config.server.writers = Writers::Shared(SharedTail {
                presence: PresenceScope::Arbitrated,
                ..SharedTail::default()
            });
        }
        let mut rng = Rng::new(config.params.seed);
        let net = Network::new(config.params.net_config(), rng.fork())?;
        let clients: Vec<ClientHost> = (0..config.params.clients)
            .map(|i| {
                let ix = ClientIx(i);
                let datagram =
                    config.params.transports.get(ix.index()) == Some(&TransportKind::Datagram);
                let mut client = config.client.clone();
                let mut plain = config.plain.clone();
                if datagram {
                    // Datagrams reorder: one send in flight keeps the
                    // sender's order (see `ClientConfig::send_window`). They
                    // also lose frames: a periodic refresh brings back a lost
                    // tail of the log or a lost presence change.
                    // A lost datagram is retransmitted after a short timeout,
                    // as a datagram protocol's own retransmission would.
                    client.send_window = 1;
                    client.resync_interval = Some(std::time::Duration::from_secs(5));
                    client.request_timeout = std::time::Duration::from_secs(2);
                    client.join_timeout = std::time::Duration::from_secs(2);
                    let lossy = PlainConfig::datagram();
                    plain.window = lossy.window;
                    plain.unacked_max = lossy.unacked_max;
                    plain.resync_interval = lossy.resync_interval;
                    plain.request_timeout = lossy.request_timeout;
                    plain.join_timeout = lossy.join_timeout;
                }
                let recipe = match config.params.kind_of(ix) {
                    ClientKind::Machine => Recipe::Lockstep(Box::new(client), config.hooks.clone()),
                    ClientKind::Plain => Recipe::Plain(plain),
                };
                ClientHost::new(ix, config.params.user_of(ix), recipe, rng.fork())
            })
            .collect();
        let mut trace = Trace::new(config.trace_lines);
        trace.mix(&[config.params.seed]);
        let store_rng = rng.fork();
        let cluster =
            (config.servers > 1).then(|| Cluster::new(config.servers, &config.multi, rng.fork()));
        let nodes = (0..config.servers)
            .map(|_| Node::new(config.hooks.server(&config.server)))
            .collect();
        let opens = vec![0; config.params.clients as usize];
        let client_deadlines = vec![None; config.params.clients as usize];
        let mut by_user: BTreeMap<&UserId, Vec<usize>> = BTreeMap::new();
        for (i, host) in clients.iter().enumerate() {
            by_user.entry(&host.user).or_default().push(i);
        }
        let by_user = by_user.into_values().collect();
        Ok(World {
            now: Instant::ZERO,
            params: config.params,
            net,
            clients,
            client_deadlines,
            by_user,
            nodes,
            server_config: config.server,
            hooks: config.hooks.clone(),
            route: BTreeMap::new(),
            opens,
            cluster,
            store: StoreHost::new(config.hooks.store(config.store), store_rng),
            oracle: Oracle::default(),
            trace,
            stats: WorldStats::default(),
            wire: config.wire,
            unsettled: std::cell::Cell::new(None),
        })
    }

    // ---- getters -----------------------------------------------------------

    /// Virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The parameters the world was built from.
    #[must_use]
    pub fn params(&self) -> &SwarmParams {
        &self.params
    }

    /// A client's machine; `None` for a plain app.
    #[must_use]
    pub fn client(&self, ix: ClientIx) -> Option<&Client> {
        self.clients[ix.index()].machine.lockstep()
    }

    /// What client `ix` shows of `channel`, whichever kind it is.
    #[must_use]
    pub fn view(
        &self,
        ix: ClientIx,
        channel: &lockstep_core::ids::ChannelId,
    ) -> Option<lockstep_core::client::ChannelView> {
        ClientView::channel(&self.clients[ix.index()].machine, channel)
    }

    /// Whether client `ix` is connected, whichever kind it is.
    #[must_use]
    pub fn is_connected(&self, ix: ClientIx) -> bool {
        self.clients[ix.index()].machine.is_connected()
    }

    /// A plain app; `None` for a client machine.
    #[must_use]
    pub fn plain(&self, ix: ClientIx) -> Option<&PlainClient> {
        self.clients[ix.index()].machine.plain()
    }

    /// The user a client belongs to.
    #[must_use]
    pub fn user(&self, ix: ClientIx) -> &UserId {
        &self.clients[ix.index()].user
    }

    /// The store (the ground truth).
    #[must_use]
    pub fn store(&self) -> &MemStore {
        &self.store.store
    }

    /// The (first) server machine, unless crashed.
    #[must_use]
    pub fn server(&self) -> Option<&Server<PrivateChannels>> {
        self.nodes[0].server.as_ref()
    }

    /// Server process `node`'s machine, unless crashed (or no such process).
    #[must_use]
    pub fn server_at(&self, node: usize) -> Option<&Server<PrivateChannels>> {
        self.nodes.get(node).and_then(|n| n.server.as_ref())
    }

    /// How many server processes the world runs.
    #[must_use]
    pub fn servers(&self) -> usize {
        self.nodes.len()
    }

    /// The process client `ix`'s current connection goes to, if it has one.
    #[must_use]
    pub fn node_of(&self, ix: ClientIx) -> Option<usize> {
        let (_, conn) = self.clients.get(ix.index())?.transport?;
        self.route.get(&conn.serial()).map(|(_, n)| *n)
    }

    /// The hint bus's faults this run, when several processes run.
    #[must_use]
    pub fn bus_faults(&self) -> Option<BusFaults> {
        self.cluster.as_ref().map(Cluster::faults)
    }

    /// The oracle and its findings.
    #[must_use]
    pub fn oracle(&self) -> &Oracle {
        &self.oracle
    }

    /// The trace.
    #[must_use]
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The network's counters.
    #[must_use]
    pub fn net_stats(&self) -> &crate::net::NetStats {
        self.net.stats()
    }

    /// The world's counters.
    #[must_use]
    pub fn stats(&self) -> WorldStats {
        self.stats
    }

    // ---- time --------------------------------------------------------------

    /// When the next thing happens (a delivery, a completion, a timer).
    #[must_use]
    pub fn next_event_at(&self) -> Option<Instant> {
        // Asked before every step: plain loops, no iterator chain over
        // options (which was 3 % of a world's instructions).
        let mut next = earliest(self.net.next_ready_at(), self.store.next_at());
        for d in &self.client_deadlines {
            next = earliest(next, *d);
        }
        for n in &self.nodes {
            next = earliest(next, n.deadline);
        }
        if let Some(cluster) = &self.cluster {
            next = earliest(next, cluster.next_at());
        }
        next
    }

    /// Runs every event due up to and including `t`, then sets the clock to
    /// `t`. Bounded: at most `events_max` events, then it stops early and
    /// returns false (a livelock is reported by the caller).
    pub fn run_until(&mut self, t: Instant, events_max: u64) -> bool {
        let budget_end = self.stats.events.saturating_add(events_max);
        while let Some(at) = self.next_event_at() {
            if at > t {
                break;
            }
            if self.stats.events >= budget_end {
                return false;
            }
            self.now = self.now.max(at);
            self.process_due();
        }
        self.now = self.now.max(t);
        true
    }

    fn process_due(&mut self) {
        let now = self.now;
        while let Some(d) = self.net.poll_ready(now) {
            self.stats.events += 1;
            self.deliver(d);
        }
        while let Some((inflight, result)) = self.store.complete_due(now) {
            self.stats.events += 1;
            self.store_done(inflight, result);
        }
        for node in 0..self.nodes.len() {
            if self.nodes[node].deadline.is_some_and(|d| d <= now) {
                if let Some(server) = &mut self.nodes[node].server {
                    self.stats.events += 1;
                    server.handle_timeout(now);
                    self.drain_server(node);
                }
            }
        }
        let store_down_until = self.store.fail_until;
        while let Some(due) = self
            .cluster
            .as_mut()
            .and_then(|c| c.pop_due(now, store_down_until))
        {
            self.stats.events += 1;
            self.peer_event(due);
        }
        for i in 0..self.clients.len() {
            if self.client_deadlines[i].is_some_and(|d| d <= now) {
                self.stats.events += 1;
                self.clients[i].machine.handle_timeout(now);
                self.drain_client(i);
            }
        }
    }

    // ---- ops ---------------------------------------------------------------

    /// Applies one scenario op now. Ops that make no sense in the current
    /// state are no-ops (see [`Op`]).
    pub fn apply(&mut self, op: &Op) {
        let now = self.now;
        self.stats.events += 1;
        if op.is_fault() {
            self.stats.faults += 1;
        }
        self.trace.line(now, || format!("op {op}"));
        self.trace.mix_display(op);
        match op {
            Op::Connect { client } => {
                let host = &mut self.clients[client.index()];
                host.app.online = true;
                let closed = host
                    .machine
                    .lockstep()
                    .is_some_and(|c| *c.state() == lockstep_core::client::ConnectionState::Closed);
                if closed {
                    // The client machine is done for good once closed: the
                    // app starts a new one.
                    self.restart_app(client.index());
                } else {
                    host.machine.connect(now);
                }
            }
            Op::Disconnect { client } => {
                let i = client.index();
                self.clients[i].app.online = false;
                self.clients[i].machine.close(now);
                self.drain_client(i);
                if let Some(machine) = self.clients[i].machine.lockstep() {
                    self.oracle.on_client_closed(now, *client, machine);
                }
            }
            Op::Subscribe { client, channel } => {
                let host = &mut self.clients[client.index()];
                if host.machine.subscribe(now, channel.clone()) {
                    host.app.desired.insert(channel.clone());
                }
            }
            Op::Unsubscribe { client, channel } => {
                let host = &mut self.clients[client.index()];
                host.app.desired.remove(channel);
                host.machine.unsubscribe(now, channel.clone());
                self.oracle.on_unsubscribed(*client, &host.machine, channel);
            }
            Op::Send {
                client,
                channel,
                body_len,
            } => {
                let len = (*body_len as usize).saturating_sub(2);
                let body = Body::text(filler(len));
                if let Some(id) =
                    self.clients[client.index()]
                        .machine
                        .send(now, channel.clone(), body)
                {
                    self.oracle.on_send(*client, id, channel.clone());
                }
            }
            Op::Edit {
                client,
                channel,
                pick,
            }
            | Op::Delete {
                client,
                channel,
                pick,
            } => {
                let host = &mut self.clients[client.index()];
                let mine: Vec<_> = host.app.own.iter().filter(|(c, _)| c == channel).collect();
                if !mine.is_empty() {
                    let target = mine[*pick as usize % mine.len()].1.clone();
                    if matches!(op, Op::Edit { .. }) {
                        host.machine
                            .update(now, channel.clone(), target, Body::text("edited"));
                    } else {
                        host.machine.delete(now, channel.clone(), target);
                    }
                }
            }
            Op::Read { client, channel } => {
                let host = &mut self.clients[client.index()];
                if let Some(view) = ClientView::channel(&host.machine, channel) {
                    host.machine.mark_read(now, channel.clone(), view.last_seq);
                }
            }
            Op::Typing {
                client,
                channel,
                active,
            } => {
                self.clients[client.index()]
                    .machine
                    .set_typing(now, channel.clone(), *active);
            }
            Op::DropConnection { client } => {
                self.net.drop_connection(now, *client);
            }
            Op::Partition { clients, kind } => self.net.partition(clients, *kind),
            Op::Repair => self.net.repair_all(now),
            Op::Hold {
                client,
                duration_ms,
            } => self.net.hold(now, *client, *duration_ms),
            Op::Crash => {
                for node in 0..self.nodes.len() {
                    self.crash_server(node);
                }
            }
            Op::Bounce => {
                for node in 0..self.nodes.len() {
                    self.crash_server(node);
                    self.restart_server(node);
                }
            }
            Op::ProcessCrash { server } => self.crash_server(usize::from(*server)),
            Op::ProcessRestart { server } => self.restart_server(usize::from(*server)),
            Op::ListenerDrop {
                server,
                duration_ms,
            } => {
                let until = now.saturating_add(std::time::Duration::from_millis(*duration_ms));
                if let Some(cluster) = &mut self.cluster {
                    cluster.deafen(usize::from(*server), now, until);
                }
            }
            Op::ArbiterStall {
                server,
                duration_ms,
            } => {
                let until = now.saturating_add(std::time::Duration::from_millis(*duration_ms));
                if let Some(cluster) = &mut self.cluster {
                    cluster.stall(usize::from(*server), until);
                }
            }
            Op::StoreFail { duration_ms } => {
                self.store.fail_until =
                    now.saturating_add(std::time::Duration::from_millis(*duration_ms));
            }
            Op::StoreLatency { ms } => self.store.latency_ms = *ms,
            Op::AppRestart { client } => self.restart_app(client.index()),
        }
        if let Some(c) = op.client() {
            self.drain_client(c.index());
        }
    }

    /// Heals every fault for the liveness phase: partitions repaired, the
    /// server up, the store healthy and quick.
    pub fn heal_everything(&mut self) {
        let now = self.now;
        self.trace.line(now, || "heal everything".into());
        self.net.repair_all(now);
        for node in 0..self.nodes.len() {
            self.restart_server(node);
        }
        if let Some(cluster) = &mut self.cluster {
            cluster.hear_all(now);
        }
        self.store.fail_until = now;
        self.store.latency_ms = self.store.latency_ms.min(20);
    }

    /// Process `node` dies: its memory is lost, its connections close
    /// (its clients reconnect, to another process when there is one), its
    /// claims stay with the arbiter until another process reaps them.
    fn crash_server(&mut self, node: usize) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.server.take().is_none() {
            return;
        }
        n.incarnation += 1;
        n.deadline = None;
        n.rooms.clear();
        n.links.clear();
        let Some(cluster) = &mut self.cluster else {
            for i in 0..self.clients.len() {
                self.net.drop_connection(now, ClientIx(i as u32));
            }
            return;
        };
        cluster.stop(node, now);
        let conns: Vec<ConnId> = self
            .route
            .values()
            .filter(|(_, n)| *n == node)
            .map(|(c, _)| *c)
            .collect();
        for conn in conns {
            self.net.close(now, conn, CloseReason::Dropped);
        }
    }

    /// Process `node` starts again (a running one is left alone).
    fn restart_server(&mut self, node: usize) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.server.is_none() {
            n.server = Some(self.hooks.server(&self.server_config));
            if let Some(cluster) = &mut self.cluster {
                cluster.start(node, now);
            }
        }
    }

    /// The process a client's new connection goes to: the next one up,
    /// turn by turn (a load balancer in front of the processes); with one
    /// process, always it.
    fn pick_node(&mut self, i: usize) -> usize {
        let k = self.nodes.len();
        if k == 1 {
            return 0;
        }
        let turn = self.opens[i];
        self.opens[i] += 1;
        let start = (i as u64 + turn) as usize % k;
        (0..k)
            .map(|step| (start + step) % k)
            .find(|n| self.nodes[*n].server.is_some())
            .unwrap_or(start)
    }

    fn restart_app(&mut self, i: usize) {
        let now = self.now;
        self.stats.app_restarts += 1;
        if let Some((_, conn)) = self.clients[i].rebuild(now) {
            self.net.close(now, conn, CloseReason::ClientClosed);
        }
        self.oracle.on_client_restart(ClientIx(i as u32));
        self.drain_client(i);
    }

    // ---- clients -----------------------------------------------------------

    fn drain_client(&mut self, i: usize) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.clients[i].machine.poll_transmit() {
                progressed = true;
                self.on_transmit(i, t);
            }
            while let Some(e) = self.clients[i].machine.poll_event() {
                progressed = true;
                self.on_client_event(i, e);
            }
            if !progressed {
                break;
            }
        }
        self.client_deadlines[i] = self.clients[i].machine.poll_timeout();
    }

    fn on_transmit(&mut self, i: usize, t: Transmit) {
        let now = self.now;
        let ix = ClientIx(i as u32);
        match t {
            Transmit::Open { generation } => {
                let Ok(conn) = self.net.open(now, ix) else {
                    return;
                };
                let node = self.pick_node(i);
                self.route.insert(conn.serial(), (conn, node));
                self.trace.mix(&[40, u64::from(ix.0), conn.serial()]);
                self.trace.line(now, || {
                    format!("{ix} opens {conn} (generation {generation})")
                });
                self.clients[i].transport = Some((generation, conn));
                self.clients[i]
                    .machine
                    .handle_transport(now, TransportEvent::Opened { generation });
            }
            Transmit::Frame { generation, frame } => {
                let Some((g, conn)) = self.clients[i].transport else {
                    return;
                };
                if g != generation {
                    return;
                }
                let frame = if self.wire {
                    let channel = frame.channel_id().cloned();
                    let codec = match self.clients[i].machine {
                        Machine::Lockstep(_) => wire::client_json,
                        Machine::Plain(_) => wire::client_socketio,
                    };
                    wire::roundtrip(&mut self.oracle, now, channel.as_ref(), frame, codec)
                } else {
                    frame
                };
                match &frame {
                    ClientFrame::Join { channel_id, .. } => {
                        self.oracle.on_join_sent(conn.serial(), channel_id);
                    }
                    ClientFrame::Leave { req, channel_id }
                        if self.params.transports[i] == TransportKind::Stream =>
                    {
                        self.oracle.on_leave_sent(conn.serial(), *req, channel_id);
                    }
                    _ => {}
                }
                let d = trace::client_frame_digest(&frame);
                self.trace.mix(&[41, u64::from(ix.0), d[0], d[1], d[2]]);
                self.trace.line(now, || {
                    format!("{ix} -> {}", trace::fmt_client_frame(&frame))
                });
                if self.net.send(now, conn, Dir::ToServer, Packet::Up(frame))
                    == SendOutcome::NotOpen
                {
                    self.clients[i].transport = None;
                    self.clients[i].machine.handle_transport(
                        now,
                        TransportEvent::Closed {
                            generation,
                            reason: "connection is closed".into(),
                        },
                    );
                }
            }
            Transmit::Close { generation, reason } => {
                if let Some((g, conn)) = self.clients[i].transport {
                    if g == generation {
                        self.trace
                            .line(now, || format!("{ix} closes {conn}: {reason}"));
                        self.net.close(now, conn, CloseReason::ClientClosed);
                        self.clients[i].transport = None;
                    }
                }
            }
        }
    }

    fn on_client_event(&mut self, i: usize, e: ClientEvent) {
        let now = self.now;
        let ix = ClientIx(i as u32);
        let host = &mut self.clients[i];
        self.oracle
            .on_client_event(now, ix, &host.machine, &self.store.store, &e);
        match &e {
            ClientEvent::Outcome {
                channel,
                id: EntryId::Message(_),
                outcome: Outcome::Sent { message_id, .. },
            } => host.app.own.push((channel.clone(), message_id.clone())),
            ClientEvent::Protocol(_) => self.stats.protocol_errors += 1,
            _ => {}
        }
        self.trace.mix(&[42, u64::from(ix.0), event_digest(&e)]);
        self.trace
            .line(now, || format!("{ix} app: {}", fmt_client_event(&e)));
    }

    // ---- server ------------------------------------------------------------

    fn drain_server(&mut self, node: usize) {
        let now = self.now;
        let Node {
            server: Some(server),
            links,
            rooms,
            incarnation,
            deadline,
        } = &mut self.nodes[node]
        else {
            return;
        };
        while let Some(out) = server.poll_output() {
            match out {
                ServerOutput::Send { conn, frame } => {
                    if let Some(link) = links.get(&conn.0) {
                        let frame = if self.wire {
                            wire::roundtrip(&mut self.oracle, now, None, frame, wire::server_both)
                        } else {
                            frame
                        };
                        let _ =
                            self.net
                                .send(now, *link, Dir::ToClient, Packet::Down(Rc::new(frame)));
                    }
                }
                ServerOutput::Broadcast {
                    channel,
                    frame,
                    except,
                } => {
                    let frame = Rc::new(if self.wire {
                        wire::roundtrip(&mut self.oracle, now, None, frame, wire::server_both)
                    } else {
                        frame
                    });
                    for member in rooms.recipients(&channel, &except) {
                        if let Some(link) = links.get(&member.0) {
                            let _ = self.net.send(
                                now,
                                *link,
                                Dir::ToClient,
                                Packet::Down(frame.clone()),
                            );
                        }
                    }
                }
                ServerOutput::RoomJoin { .. } | ServerOutput::RoomLeave { .. } => {
                    rooms.apply(&out);
                }
                // Only a process that shares its store tells the others
                // (the bus and the arbiter exist only then).
                ServerOutput::Committed(hint) => {
                    if let Some(cluster) = &mut self.cluster {
                        self.trace.mix(&[45, node as u64, hint.last.0]);
                        cluster.hint(node, now, hint);
                    }
                }
                ServerOutput::Relay(relay) => {
                    if let Some(cluster) = &mut self.cluster {
                        cluster.relay(node, now, relay);
                    }
                }
                ServerOutput::Presence(cmd) => {
                    if let Some(cluster) = &mut self.cluster {
                        self.trace
                            .line(now, || format!("s{node} asks the arbiter: {cmd:?}"));
                        cluster.command(node, now, self.store.latency_ms, cmd);
                    }
                }
                ServerOutput::Store { op, cmd } => {
                    self.store.submit(now, node, *incarnation, op, cmd);
                }
                ServerOutput::Close { conn, reason } => {
                    if let Some(link) = links.remove(&conn.0) {
                        self.trace
                            .line(now, || format!("server closes {link}: {reason}"));
                        self.net.close(now, link, CloseReason::ServerClosed);
                    }
                    rooms.close(conn);
                }
            }
        }
        *deadline = server.poll_timeout();
    }

    /// Hands a machine what the cluster has for it.
    fn peer_event(&mut self, due: Due) {
        let now = self.now;
        let (node, what) = match &due {
            Due::Hint(n, h) => (*n, format!("hint {} {}..={}", h.channel, h.first, h.last)),
            Due::Relay(n, r) => (*n, format!("relay {r:?}")),
            Due::Resync(n) => (*n, "resync".to_string()),
            Due::Presence(n, o) => (*n, format!("arbiter: {o:?}")),
        };
        self.trace.line(now, || format!("s{node} {what}"));
        let Some(server) = self.nodes[node].server.as_mut() else {
            return;
        };
        match due {
            Due::Hint(_, hint) => {
                self.trace.mix(&[46, node as u64, hint.last.0]);
                server.handle_hint(now, hint);
            }
            Due::Relay(_, relay) => {
                self.trace.mix(&[47, node as u64]);
                server.handle_relay(now, relay);
            }
            Due::Resync(_) => {
                self.trace.mix(&[48, node as u64]);
                server.handle_resync(now);
            }
            Due::Presence(_, outcome) => {
                self.trace.mix(&[49, node as u64]);
                server.handle_presence(now, outcome);
            }
        }
        self.drain_server(node);
    }

    fn store_done(&mut self, inflight: InFlight, result: Result<StoreReply, StoreError>) {
        let now = self.now;
        if let Ok(StoreReply::Appended(outcomes)) = &result {
            for outcome in outcomes {
                if let AppendOutcome::Appended(ev) = outcome {
                    self.oracle.on_append(now, ev);
                    self.trace.mix(&[43, ev.seq().0]);
                    self.trace.line(now, || {
                        format!("store commits {}", trace::fmt_log_event(ev))
                    });
                }
            }
        }
        let node = inflight.node;
        if inflight.incarnation != self.nodes[node].incarnation {
            return;
        }
        if let Some(server) = &mut self.nodes[node].server {
            server.handle_store(now, inflight.op, result);
            self.drain_server(node);
        }
    }

    // ---- the network -------------------------------------------------------

    fn deliver(&mut self, d: Delivery<Packet>) {
        let now = self.now;
        match d {
            Delivery::Opened { conn } => {
                let node = self.node_at(conn);
                if self.nodes[node].server.is_none() {
                    // Connection refused: nobody listens.
                    self.net.close(now, conn, CloseReason::ServerClosed);
                    return;
                }
                self.nodes[node].links.insert(conn.serial(), conn);
            }
            Delivery::Frame {
                conn,
                dir: Dir::ToServer,
                payload: Packet::Up(frame),
            } => self.server_receives(conn, frame),
            Delivery::Frame {
                conn,
                dir: Dir::ToClient,
                payload: Packet::Down(frame),
            } => self.client_receives(conn, frame),
            Delivery::Frame { .. } => {}
            Delivery::Closed {
                conn,
                dir: Dir::ToServer,
                ..
            } => {
                let node = self.node_at(conn);
                self.route.remove(&conn.serial());
                let n = &mut self.nodes[node];
                if n.links.remove(&conn.serial()).is_none() {
                    return;
                }
                if n.rooms.close(ServerConn(conn.serial())).is_some() {
                    if let Some(server) = &mut n.server {
                        server.handle_disconnect(now, ServerConn(conn.serial()));
                        self.drain_server(node);
                    }
                }
            }
            Delivery::Closed {
                conn,
                dir: Dir::ToClient,
                reason,
            } => {
                let i = conn.client().index();
                let Some((generation, current)) = self.clients[i].transport else {
                    return;
                };
                if current != conn {
                    return;
                }
                self.trace.line(now, || {
                    format!("{} transport {conn} closed: {reason}", conn.client())
                });
                self.clients[i].transport = None;
                self.clients[i].machine.handle_transport(
                    now,
                    TransportEvent::Closed {
                        generation,
                        reason: reason.to_string(),
                    },
                );
                self.drain_client(i);
            }
        }
    }

    /// The process a connection was routed to.
    fn node_at(&self, conn: ConnId) -> usize {
        self.route.get(&conn.serial()).map_or(0, |(_, n)| *n)
    }

    fn server_receives(&mut self, conn: ConnId, frame: ClientFrame) {
        let now = self.now;
        let node = self.node_at(conn);
        let n = &mut self.nodes[node];
        let Some(server) = &mut n.server else {
            return;
        };
        if !n.links.contains_key(&conn.serial()) {
            return;
        }
        let sconn = ServerConn(conn.serial());
        if n.rooms.is_open(sconn) {
            server.handle_frame(now, sconn, frame);
        } else if let ClientFrame::Hello { token, .. } = &frame {
            // The lab's authenticator: `dev:<user>`, the user must exist.
            let user = token
                .strip_prefix("dev:")
                .and_then(|u| UserId::new(u).ok())
                .filter(|u| self.clients.iter().any(|c| &c.user == u));
            match user {
                Some(user) => {
                    n.rooms.open(sconn, user.clone());
                    server.handle_connect(now, sconn, user);
                }
                None => {
                    let error = ErrorBody::new(ErrorCode::Unauthorized, "unauthorized");
                    let _ = self.net.send(
                        now,
                        conn,
                        Dir::ToClient,
                        Packet::Down(Rc::new(ServerFrame::Refused { error })),
                    );
                    return;
                }
            }
        } else {
            // Nothing is served before `hello`.
            return;
        }
        self.drain_server(node);
    }

    fn client_receives(&mut self, conn: ConnId, frame: Rc<ServerFrame>) {
        let now = self.now;
        let ix = conn.client();
        let i = ix.index();
        let Some((generation, current)) = self.clients[i].transport else {
            return;
        };
        if current != conn {
            return;
        }
        let d = trace::server_frame_digest(&frame);
        self.trace.mix(&[44, u64::from(ix.0), d[0], d[1], d[2]]);
        self.trace.line(now, || {
            format!("{ix} <- {}", trace::fmt_server_frame(&frame))
        });
        if let ServerFrame::Ack {
            req,
            body: Ack::Leave,
        } = &*frame
        {
            self.oracle.on_leave_acked(conn.serial(), *req);
        }
        self.oracle
            .on_frame_delivered(now, ix, &self.clients[i].user, conn.serial(), &frame);
        // The last member a broadcast reaches (and the one a reply is for)
        // takes the frame itself; the others get a copy.
        self.clients[i].machine.handle_transport(
            now,
            TransportEvent::Frame {
                generation,
                frame: Rc::unwrap_or_clone(frame),
            },
        );
        self.drain_client(i);
    }

    /// Outbox entries not resolved yet, over all clients that want to be
    /// online: the backlog the liveness phase must drain.
    #[must_use]
    pub fn backlog(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| c.app.online)
            .map(|c| c.machine.unresolved())
            .sum()
    }

    /// The oracle, for the liveness phase's report.
    pub(crate) fn oracle_mut(&mut self) -> &mut Oracle {
        &mut self.oracle
    }
}

/// Text of `x`s for generated bodies: one copy, sliced, instead of a new
/// string per send (`Op::Send` bodies go up to `BODY_LEN_MAX` bytes).
static FILLER: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| "x".repeat(crate::swarm::BODY_LEN_MAX as usize));

/// `len` `x`s (at most `BODY_LEN_MAX`).
/// The earlier of two optional times (`None`: never).
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn filler(len: usize) -> &'static str {
    &FILLER[..len.min(FILLER.len())]
}

fn event_digest(e: &ClientEvent) -> u64 {
    match e {
        ClientEvent::State(s) => 1 + s.name().len() as u64 * 16,
        ClientEvent::Subscription { .. } => 2,
        ClientEvent::Log { event, .. } => 3 + (event.seq().0 << 8),
        ClientEvent::Truncated { to, .. } => 4 + (to.0 << 8),
        ClientEvent::Reset { .. } => 5,
        ClientEvent::Outcome { outcome, .. } => match outcome {
            Outcome::Sent { seq, .. } | Outcome::Applied { seq } => 6 + (seq.0 << 8),
            Outcome::Failed(_) => 7,
        },
        ClientEvent::Protocol(_) => 8,
        _ => 9,
    }
}

fn fmt_client_event(e: &ClientEvent) -> String {
    match e {
        ClientEvent::State(s) => format!("state {}", s.name()),
        ClientEvent::Log { event, .. } => format!("delivers {}", trace::fmt_log_event(event)),
        ClientEvent::Outcome {
            channel,
            id,
            outcome,
        } => {
            let id = match id {
                EntryId::Message(cm) => cm.to_string(),
                EntryId::Op(op) => format!("op{}", op.0),
            };
            match outcome {
                Outcome::Sent { seq, message_id } => {
                    format!("{channel} {id} sent as {seq} {message_id}")
                }
                Outcome::Applied { seq } => format!("{channel} {id} applied as {seq}"),
                Outcome::Failed(f) => format!("{channel} {id} failed: {f}"),
            }
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::Failure;

    /// A frame that comes back different from its encoding is a codec
    /// failure, not a broken invariant, and travels as it was.
    #[test]
    fn a_frame_that_does_not_survive_its_encoding_is_a_codec_failure() {
        let mut oracle = Oracle::default();
        let frame = ServerFrame::Pong { nonce: 7 };
        let back = wire::roundtrip(&mut oracle, Instant::ZERO, None, frame.clone(), |_| {
            Ok(ServerFrame::Pong { nonce: 8 })
        });
        assert_eq!(back, frame);
        let failures: Vec<Failure> = oracle.violations().iter().map(|v| v.failure).collect();
        assert_eq!(failures, [Failure::CodecRoundTrip]);
        let same = wire::roundtrip(
            &mut oracle,
            Instant::ZERO,
            None,
            frame.clone(),
            wire::server_both,
        );
        assert_eq!(same, frame);
        assert_eq!(oracle.violations().len(), 1, "a faithful codec passes");
    }
}
