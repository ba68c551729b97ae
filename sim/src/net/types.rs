//! The vocabulary of the virtual network: endpoints, connections, directions,
//! transport models, fault kinds and what comes out of the network.

use std::fmt;

/// A client endpoint, numbered `0..n` by the world.
///
/// A plain index (not a user id): several clients may belong to one user,
/// like a user's phone and laptop.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ClientIx(pub u32);

impl ClientIx {
    /// The index as a `usize`, for table lookups.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ClientIx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Piece by piece: ids are written into every trace hash.
        f.write_str("c")?;
        crate::trace::write_decimal(f, u64::from(self.0))
    }
}

/// One connection between a client and the server.
///
/// Every `open` makes a new id (`serial` counts all connections ever opened),
/// so frames and notices of an old connection can never be mistaken for the
/// new one's: the same rule as the client machine's transport generation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConnId {
    client: ClientIx,
    serial: u64,
}

impl ConnId {
    pub(crate) fn new(client: ClientIx, serial: u64) -> Self {
        ConnId { client, serial }
    }

    /// The client at the far end from the server.
    #[must_use]
    pub fn client(self) -> ClientIx {
        self.client
    }

    /// The network-wide opening order of this connection (from 1).
    #[must_use]
    pub fn serial(self) -> u64 {
        self.serial
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/k{}", self.client, self.serial)
    }
}

/// The direction a frame travels on a connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Dir {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

impl Dir {
    /// Index into per-direction tables.
    pub(crate) fn ix(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }

    /// The endpoint a frame travelling this way on `conn` arrives at.
    #[must_use]
    pub fn destination(self, conn: ConnId) -> Endpoint {
        match self {
            Dir::ToServer => Endpoint::Server,
            Dir::ToClient => Endpoint::Client(conn.client()),
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::ToServer => "->server",
            Dir::ToClient => "->client",
        })
    }
}

/// Either end of a connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Endpoint {
    /// The (single) server.
    Server,
    /// One client.
    Client(ClientIx),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Server => f.write_str("server"),
            Endpoint::Client(c) => c.fmt(f),
        }
    }
}

/// How a client's link behaves; chosen per client.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TransportKind {
    /// Like Socket.IO over WebSocket, or TCP: per-direction FIFO, no loss, no
    /// duplication, a bounded outgoing buffer, frames lost only with the
    /// connection.
    Stream,
    /// Like UDP or an unreliable channel: loss, duplication and reordering
    /// happen, so the protocol's own retries and dedupe are exercised.
    Datagram,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Stream => "stream",
            TransportKind::Datagram => "datagram",
        })
    }
}

/// Which directions a partition cuts for the clients it names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PartitionKind {
    /// Nothing passes either way.
    Symmetric,
    /// The client's frames do not reach the server; the server's still arrive.
    ToServerOnly,
    /// The server's frames do not reach the client; the client's still arrive.
    ToClientOnly,
}

impl PartitionKind {
    /// Whether this partition cuts frames travelling `dir`.
    #[must_use]
    pub fn blocks(self, dir: Dir) -> bool {
        matches!(
            (self, dir),
            (PartitionKind::Symmetric, _)
                | (PartitionKind::ToServerOnly, Dir::ToServer)
                | (PartitionKind::ToClientOnly, Dir::ToClient)
        )
    }
}

impl fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PartitionKind::Symmetric => "symmetric",
            PartitionKind::ToServerOnly => "to-server-only",
            PartitionKind::ToClientOnly => "to-client-only",
        })
    }
}

/// Why a connection ended; also decides who is told.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CloseReason {
    /// The client closed it; only the server is told.
    ClientClosed,
    /// The server closed it (kick, shutdown, heartbeat); only the client is told.
    ServerClosed,
    /// The client opened a new connection; only the server is told.
    Replaced,
    /// A fault cut it (reset, NAT timeout, crash of a middlebox); both are told.
    Dropped,
    /// The outgoing buffer of a stream direction was full: the connection is
    /// cut rather than a frame lost silently; both are told.
    Overflow(Dir),
}

impl CloseReason {
    /// Whether `dir`'s destination learns of the close (the initiator knows).
    #[must_use]
    pub fn notifies(self, dir: Dir) -> bool {
        match self {
            CloseReason::ClientClosed | CloseReason::Replaced => dir == Dir::ToServer,
            CloseReason::ServerClosed => dir == Dir::ToClient,
            CloseReason::Dropped | CloseReason::Overflow(_) => true,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ClientClosed => f.write_str("closed by client"),
            CloseReason::ServerClosed => f.write_str("closed by server"),
            CloseReason::Replaced => f.write_str("replaced by a new connection"),
            CloseReason::Dropped => f.write_str("dropped by the network"),
            CloseReason::Overflow(dir) => write!(f, "buffer overflow {dir}"),
        }
    }
}

/// Something the network hands to an endpoint.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Delivery<P> {
    /// The server learns of a new connection (the handshake arrived). On a
    /// stream it precedes every frame of the connection.
    Opened {
        /// The new connection.
        conn: ConnId,
    },
    /// A frame arrives at `dir`'s destination.
    Frame {
        /// The connection it travelled on.
        conn: ConnId,
        /// Its direction; the destination is `dir.destination(conn)`.
        dir: Dir,
        /// The frame itself.
        payload: P,
    },
    /// `dir`'s destination learns that `conn` is gone.
    Closed {
        /// The dead connection.
        conn: ConnId,
        /// Toward whom the notice travelled.
        dir: Dir,
        /// Why it ended.
        reason: CloseReason,
    },
}

impl<P> Delivery<P> {
    /// The connection this delivery concerns.
    #[must_use]
    pub fn conn(&self) -> ConnId {
        match self {
            Delivery::Opened { conn }
            | Delivery::Frame { conn, .. }
            | Delivery::Closed { conn, .. } => *conn,
        }
    }

    /// The endpoint that receives this delivery.
    #[must_use]
    pub fn to(&self) -> Endpoint {
        match self {
            Delivery::Opened { .. } => Endpoint::Server,
            Delivery::Frame { conn, dir, .. } | Delivery::Closed { conn, dir, .. } => {
                dir.destination(*conn)
            }
        }
    }
}

/// What happened to a frame handed to [`Network::send`](super::Network::send).
///
/// A real sender could only see `NotOpen` (a write error) and `Overflow`
/// (an emit error); the rest is for traces and tests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendOutcome {
    /// In flight once.
    Queued,
    /// In flight twice (datagram duplication).
    Duplicated,
    /// Lost on the way (datagram loss, partition or full buffer).
    Lost(LossCause),
    /// The stream buffer was full: the frame is lost and the connection is
    /// now closed with [`CloseReason::Overflow`]; both ends will be told.
    Overflow,
    /// The connection is already closed: like a write on a dead socket, the
    /// sender should treat its transport as gone.
    NotOpen,
}

/// Why a frame did not arrive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LossCause {
    /// Random datagram loss.
    Random,
    /// A partition cut the datagram.
    Partition,
    /// The datagram buffer of the direction was full.
    BufferFull,
}

impl<P: fmt::Debug> fmt::Display for Delivery<P> {
    /// One trace line: `<destination> <- <conn> <what>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <- {} ", self.to(), self.conn())?;
        match self {
            Delivery::Opened { .. } => f.write_str("opened"),
            Delivery::Frame { payload, .. } => write!(f, "{payload:?}"),
            Delivery::Closed { reason, .. } => write!(f, "closed: {reason}"),
        }
    }
}
