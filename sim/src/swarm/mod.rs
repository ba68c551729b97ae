//! Swarm parameters: the world and the fault mix one seed draws.
//!
//! Swarm testing (VOPR, FoundationDB): instead of one fixed fault mix, every
//! seed draws its own, so some seeds hammer loss, others partitions, others
//! crashes, and the space is explored unevenly enough for bugs to surface.
//! Every drawn value is printed up front ([`SwarmParams`]'s `Display`), so a
//! failing seed's conditions are on screen before its trace.

mod display;
mod draw;

use lockstep_core::ids::{ChannelId, UserId};

use crate::net::{ClientIx, NetConfig, PartitionKind, StreamPartition, TransportKind};

/// Most clients a seed draws by itself (`--clients` may ask for more).
pub const CLIENTS_DRAWN_MAX: u32 = 16;
/// Most clients an override may ask for.
pub const CLIENTS_OVERRIDE_MAX: u32 = 1024;
/// Fewest and most shared rooms per world (a private channel may be added).
pub const ROOMS_MIN: u32 = 2;
/// See [`ROOMS_MIN`].
pub const ROOMS_MAX: u32 = 5;
/// Longest safety phase an override may ask for: one virtual hour.
pub const SAFETY_MS_MAX: u64 = 3_600_000;
/// Most ops a scenario holds, whatever the rates and duration.
pub const OPS_MAX: usize = 200_000;
/// Largest body a `Send` asks for: a little over the 64 KiB limit, so
/// `too_large` is exercised, and far under the 1 MB frame limit.
pub const BODY_LEN_MAX: u32 = 70_000;

/// How transports are assigned to clients.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TransportPolicy {
    /// Every client on a stream (Socket.IO, TCP).
    AllStream,
    /// Every client on datagrams (loss, duplication, reordering).
    AllDatagram,
    /// Each client draws its own.
    Mixed,
}

/// Which client an app runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientKind {
    /// lockstep's client machine (`lockstep_core::client::Client`).
    Machine,
    /// A plain socket.io-client app following the protocol's guidance
    /// ([`crate::plain::PlainClient`]).
    Plain,
}

/// How client kinds are assigned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientPolicy {
    /// Every client runs the client machine.
    AllMachine,
    /// Every client is a plain app.
    AllPlain,
    /// Each client draws its own.
    Mixed,
}

/// Faults of one seed. Rates are expected events per virtual minute over
/// the whole world; 0 disables a fault.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FaultMix {
    /// Shortest one-way delay.
    pub delay_ms_min: u64,
    /// Longest one-way delay (the spread is jitter).
    pub delay_ms_max: u64,
    /// Datagram loss, per mille.
    pub loss_permille: u32,
    /// Datagram duplication, per mille.
    pub dup_permille: u32,
    /// Datagrams given an extra reordering delay, per mille.
    pub reorder_permille: u32,
    /// Largest extra reordering delay.
    pub reorder_ms_max: u64,
    /// What partitions do to streams: hold, or stall half-open.
    pub stream_partition: StreamPartition,
    /// Stream buffer per direction, in frames (small ones provoke overflow).
    pub stream_buffer_frames_max: u32,
    /// Connection drops per minute.
    pub drops_per_min: u32,
    /// Partitions per minute.
    pub partitions_per_min: u32,
    /// The partition kinds drawn from (not empty).
    pub partition_kinds: Vec<PartitionKind>,
    /// Longest partition before its repair.
    pub partition_ms_max: u64,
    /// Link holds per minute (each released after at most `hold_ms_max`).
    pub holds_per_min: u32,
    /// Longest hold before its release.
    pub hold_ms_max: u64,
    /// Server crashes per minute.
    pub crashes_per_min: u32,
    /// Longest server downtime before its restart.
    pub crash_ms_max: u64,
    /// Store failure windows per minute.
    pub store_fails_per_min: u32,
    /// Longest store failure window.
    pub store_fail_ms_max: u64,
    /// Store latency changes per minute.
    pub store_latency_changes_per_min: u32,
    /// Largest store latency drawn.
    pub store_latency_ms_max: u64,
    /// App restarts per minute.
    pub app_restarts_per_min: u32,
}

impl FaultMix {
    /// No faults at all: short delays, nothing lost, nothing cut.
    #[must_use]
    pub fn calm() -> Self {
        FaultMix {
            delay_ms_min: 1,
            delay_ms_max: 20,
            loss_permille: 0,
            dup_permille: 0,
            reorder_permille: 0,
            reorder_ms_max: 0,
            stream_partition: StreamPartition::Resume,
            stream_buffer_frames_max: 256,
            drops_per_min: 0,
            partitions_per_min: 0,
            partition_kinds: vec![PartitionKind::Symmetric],
            partition_ms_max: 0,
            holds_per_min: 0,
            hold_ms_max: 0,
            crashes_per_min: 0,
            crash_ms_max: 0,
            store_fails_per_min: 0,
            store_fail_ms_max: 0,
            store_latency_changes_per_min: 0,
            store_latency_ms_max: 0,
            app_restarts_per_min: 0,
        }
    }
}

/// Relative weights of the workload ops; 0 disables one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)] // each field is the weight of the op of the same name
pub struct OpWeights {
    pub connect: u32,
    pub disconnect: u32,
    pub subscribe: u32,
    pub unsubscribe: u32,
    pub send: u32,
    pub edit: u32,
    pub delete: u32,
    pub read: u32,
    pub typing: u32,
}

impl OpWeights {
    /// The weights in declaration order, for weighted picks.
    #[must_use]
    pub fn as_array(&self) -> [u32; 9] {
        [
            self.connect,
            self.disconnect,
            self.subscribe,
            self.unsubscribe,
            self.send,
            self.edit,
            self.delete,
            self.read,
            self.typing,
        ]
    }
}

/// What the command line may fix instead of letting the seed draw it. An
/// override replaces one value and changes no other draw.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SwarmOverrides {
    /// Number of clients (`--clients`), 1..=[`CLIENTS_OVERRIDE_MAX`].
    pub clients: Option<u32>,
    /// Safety phase length in virtual ms, 1..=[`SAFETY_MS_MAX`].
    pub safety_ms: Option<u64>,
    /// Transport assignment.
    pub transport: Option<TransportPolicy>,
    /// Replace the drawn fault mix with [`FaultMix::calm`].
    pub calm: bool,
    /// Client kind assignment.
    pub kinds: Option<ClientPolicy>,
}

/// Why overrides were refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// `clients` is 0 or above [`CLIENTS_OVERRIDE_MAX`].
    #[error("clients must be in 1..={max}, got {got}")]
    Clients {
        /// The value asked for.
        got: u32,
        /// The limit.
        max: u32,
    },
    /// `safety_ms` is 0 or above [`SAFETY_MS_MAX`].
    #[error("safety phase must be in 1..={max} ms, got {got}")]
    SafetyMs {
        /// The value asked for.
        got: u64,
        /// The limit.
        max: u64,
    },
}

/// Everything one seed decides about a world before it runs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SwarmParams {
    /// The seed everything was drawn from.
    pub seed: u64,
    /// Number of clients.
    pub clients: u32,
    /// Number of distinct users; client `i` belongs to user `i % users`, so
    /// some users have several devices (dedupe is per user).
    pub users: u32,
    /// The channels ops use: `room-0..` and maybe one `private:<user>`.
    pub channels: Vec<ChannelId>,
    /// How transports were assigned.
    pub transport_policy: TransportPolicy,
    /// One transport per client.
    pub transports: Vec<TransportKind>,
    /// How client kinds were assigned.
    pub kind_policy: ClientPolicy,
    /// One kind per client.
    pub kinds: Vec<ClientKind>,
    /// Network and process faults.
    pub faults: FaultMix,
    /// Workload op mix.
    pub weights: OpWeights,
    /// Workload ops per virtual second.
    pub ops_per_sec: u32,
    /// Length of the safety phase (faults on) in virtual ms.
    pub safety_ms: u64,
}

impl SwarmParams {
    /// The kind of client `client` runs (the machine if unlisted).
    #[must_use]
    pub fn kind_of(&self, client: ClientIx) -> ClientKind {
        self.kinds
            .get(client.index())
            .copied()
            .unwrap_or(ClientKind::Machine)
    }

    /// The user a client belongs to, as a validated id `user-<n>`.
    #[must_use]
    pub fn user_of(&self, client: ClientIx) -> UserId {
        user_id(client.0 % self.users.max(1))
    }

    /// The network configuration these parameters describe.
    #[must_use]
    pub fn net_config(&self) -> NetConfig {
        let f = &self.faults;
        NetConfig {
            transports: self.transports.clone(),
            delay_ms_min: f.delay_ms_min,
            delay_ms_max: f.delay_ms_max,
            loss_permille: f.loss_permille,
            dup_permille: f.dup_permille,
            reorder_permille: f.reorder_permille,
            reorder_ms_max: f.reorder_ms_max,
            stream_buffer_frames_max: f.stream_buffer_frames_max,
            datagram_buffer_frames_max: 1024,
            stream_partition: f.stream_partition,
        }
    }

    /// Draws every parameter from `seed`, then applies `overrides`.
    pub fn draw(seed: u64, overrides: &SwarmOverrides) -> Result<Self, SwarmError> {
        draw::draw(seed, overrides)
    }
}

/// `user-<n>`; always a valid user id.
pub(crate) fn user_id(n: u32) -> UserId {
    UserId::new(format!("user-{n}")).unwrap_or_else(|_| unreachable!("user-<n> is a valid id"))
}

/// `room-<n>`; always a valid channel id.
pub(crate) fn room_id(n: u32) -> ChannelId {
    ChannelId::new(format!("room-{n}")).unwrap_or_else(|_| unreachable!("room-<n> is a valid id"))
}

/// `private:user-<n>`; always a valid channel id.
pub(crate) fn private_id(user: u32) -> ChannelId {
    ChannelId::new(format!("private:user-{user}"))
        .unwrap_or_else(|_| unreachable!("private:user-<n> is a valid id"))
}
