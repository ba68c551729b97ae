//! What the server machine asks its driver to do.

use std::fmt;

use crate::ids::{ChannelId, UserId};
use crate::store::{StoreCommand, StoreOpId};
use crate::wire::ServerFrame;

/// A transport connection, named by the driver. Ids must not be reused for
/// the life of a server machine, so a late store completion can never be
/// mistaken for a reply to a newer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Which members of a room a broadcast skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Except {
    /// Every member receives it.
    Nobody,
    /// Every member but this connection (e.g. the one whose join caused it).
    Conn(ConnId),
    /// Every member but this user's connections (e.g. a typing relay).
    User(UserId),
}

/// One instruction for the driver, drained with `Server::poll_output`.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerOutput {
    /// Send `frame` to one connection. A [`ServerFrame::Refused`] is the last
    /// frame for that connection: the driver closes it after sending.
    Send {
        /// The recipient.
        conn: ConnId,
        /// What to send.
        frame: ServerFrame,
    },
    /// Send `frame` to every connection joined to `channel`, except as said
    /// ([`Rooms::recipients`](crate::server::Rooms::recipients) lists them).
    /// One value for all members so the driver encodes it once.
    Broadcast {
        /// The room.
        channel: ChannelId,
        /// What to send.
        frame: ServerFrame,
        /// Who is skipped.
        except: Except,
    },
    /// `conn` is now a member of the room `channel` (a Socket.IO driver
    /// mirrors it with `socket.join`).
    RoomJoin {
        /// The connection.
        conn: ConnId,
        /// The room.
        channel: ChannelId,
    },
    /// `conn` is no longer a member of `channel`. Not emitted for a closed
    /// connection: the driver drops a closed connection from every room.
    RoomLeave {
        /// The connection.
        conn: ConnId,
        /// The room.
        channel: ChannelId,
    },
    /// Close `conn`: it was silent for longer than the idle timeout (a
    /// half-open transport). The machine has already forgotten it, as after
    /// `handle_disconnect`; the driver only closes the transport.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for logs.
        reason: &'static str,
    },
    /// This process committed events of a channel to a store other
    /// processes share ([`Writers::Shared`](crate::server::Writers::Shared)
    /// only): tell them, so they read the events (e.g. PostgreSQL
    /// `NOTIFY`). Losing it costs their members latency, never events.
    Committed(crate::server::CommitHint),
    /// Typing or a read receipt of this process's members, for the
    /// processes sharing the store ([`Writers::Shared`](crate::server::Writers::Shared)
    /// only); its loss is harmless.
    Relay(crate::server::Relay),
    /// Claim or release a user's presence at the arbiter the processes
    /// share ([`PresenceScope::Arbitrated`](crate::server::PresenceScope::Arbitrated)
    /// only): carry these out in order, one after the other, and answer
    /// each with `Server::handle_presence`.
    Presence(crate::server::PresenceCommand),
    /// Execute `cmd` and hand the outcome back with `Server::handle_store`
    /// and the same `op`, in any order and after any delay.
    Store {
        /// The correlation id to return.
        op: StoreOpId,
        /// The work.
        cmd: StoreCommand,
    },
}
