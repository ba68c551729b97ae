//! Who receives a broadcast: the rooms as the machine's outputs build them,
//! kept by every driver with this one type.
//!
//! The machine says who joins and leaves a room (`RoomJoin`, `RoomLeave`,
//! `Close`) and whom a broadcast skips ([`Except`]); a driver only has to
//! tell it which connections are open and as whom. The tokio driver, the
//! lab, the machine's test harness and the benches all keep their rooms
//! here, so the code that decides who receives a broadcast in production
//! is the code the lab runs.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{ChannelId, UserId};
use crate::server::{ConnId, Except, ServerOutput};

/// One open connection: its user and the rooms it is in.
#[derive(Debug, Clone)]
struct Member {
    user: UserId,
    channels: BTreeSet<ChannelId>,
}

/// Room membership, by channel, by connection and by user.
///
/// Feed it [`open`](Self::open) when a connection is handed to the machine
/// (`handle_connect`), [`close`](Self::close) when it closes, and every
/// output through [`apply`](Self::apply); read a broadcast's recipients
/// with [`recipients`](Self::recipients). Joins of connections that are not
/// open are ignored, so a late output for a closed connection cannot put it
/// back in a room.
#[derive(Debug, Clone, Default)]
pub struct Rooms {
    rooms: BTreeMap<ChannelId, BTreeSet<ConnId>>,
    conns: BTreeMap<ConnId, Member>,
    by_user: BTreeMap<UserId, BTreeSet<ConnId>>,
}

impl Rooms {
    /// No connection, no room.
    #[must_use]
    pub fn new() -> Self {
        Rooms::default()
    }

    /// `conn` is open as `user` (the identity handed to `handle_connect`).
    /// Opening it again changes nothing.
    pub fn open(&mut self, conn: ConnId, user: UserId) {
        if self.conns.contains_key(&conn) {
            return;
        }
        self.by_user.entry(user.clone()).or_default().insert(conn);
        self.conns.insert(
            conn,
            Member {
                user,
                channels: BTreeSet::new(),
            },
        );
    }

    /// `conn` closed: it leaves every room. Returns its user, or `None` if
    /// it was not open.
    pub fn close(&mut self, conn: ConnId) -> Option<UserId> {
        let member = self.conns.remove(&conn)?;
        if let Some(conns) = self.by_user.get_mut(&member.user) {
            conns.remove(&conn);
            if conns.is_empty() {
                self.by_user.remove(&member.user);
            }
        }
        for channel in &member.channels {
            self.remove_from_room(conn, channel);
        }
        Some(member.user)
    }

    /// Every connection closed (a server that stopped or crashed).
    pub fn clear(&mut self) {
        self.rooms.clear();
        self.conns.clear();
        self.by_user.clear();
    }

    /// Mirrors one output of the machine: `RoomJoin` and `RoomLeave` change
    /// a room, `Close` closes the connection; the other outputs change
    /// nothing here.
    pub fn apply(&mut self, output: &ServerOutput) {
        match output {
            ServerOutput::RoomJoin { conn, channel } => self.join(*conn, channel),
            ServerOutput::RoomLeave { conn, channel } => self.leave(*conn, channel),
            ServerOutput::Close { conn, .. } => {
                self.close(*conn);
            }
            ServerOutput::Send { .. }
            | ServerOutput::Broadcast { .. }
            | ServerOutput::Committed(_)
            | ServerOutput::Relay(_)
            | ServerOutput::Presence(_)
            | ServerOutput::Store { .. } => {}
        }
    }

    /// `conn` joins the room of `channel` (ignored unless `conn` is open).
    pub fn join(&mut self, conn: ConnId, channel: &ChannelId) {
        let Some(member) = self.conns.get_mut(&conn) else {
            return;
        };
        if member.channels.insert(channel.clone()) {
            self.rooms.entry(channel.clone()).or_default().insert(conn);
        }
    }

    /// `conn` leaves the room of `channel`.
    pub fn leave(&mut self, conn: ConnId, channel: &ChannelId) {
        if let Some(member) = self.conns.get_mut(&conn) {
            member.channels.remove(channel);
        }
        self.remove_from_room(conn, channel);
    }

    fn remove_from_room(&mut self, conn: ConnId, channel: &ChannelId) {
        if let Some(members) = self.rooms.get_mut(channel) {
            members.remove(&conn);
            if members.is_empty() {
                self.rooms.remove(channel);
            }
        }
    }

    /// The connections a broadcast to `channel` reaches, skipping what
    /// `except` names, in connection order.
    pub fn recipients<'a>(
        &'a self,
        channel: &ChannelId,
        except: &'a Except,
    ) -> impl Iterator<Item = ConnId> + 'a {
        self.rooms
            .get(channel)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |c| match except {
                Except::Nobody => true,
                Except::Conn(skip) => c != skip,
                Except::User(user) => self.conns.get(c).is_some_and(|m| &m.user != user),
            })
    }

    /// Every connection in the room of `channel`, in order.
    pub fn members(&self, channel: &ChannelId) -> impl Iterator<Item = ConnId> + '_ {
        self.rooms.get(channel).into_iter().flatten().copied()
    }

    /// The rooms with at least one member, in order.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelId> {
        self.rooms.keys()
    }

    /// The user of an open connection.
    #[must_use]
    pub fn user_of(&self, conn: ConnId) -> Option<&UserId> {
        self.conns.get(&conn).map(|m| &m.user)
    }

    /// The open connections of `user`, in order.
    pub fn conns_of(&self, user: &UserId) -> impl Iterator<Item = ConnId> + '_ {
        self.by_user.get(user).into_iter().flatten().copied()
    }

    /// Whether `conn` is open.
    #[must_use]
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// How many connections are open.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(s: &str) -> ChannelId {
        ChannelId::new(s).unwrap()
    }
    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn world() -> Rooms {
        let mut r = Rooms::new();
        r.open(ConnId(1), user("alice"));
        r.open(ConnId(2), user("alice"));
        r.open(ConnId(3), user("bob"));
        for c in 1..=3 {
            r.apply(&ServerOutput::RoomJoin {
                conn: ConnId(c),
                channel: ch("general"),
            });
        }
        r
    }

    fn to(r: &Rooms, except: &Except) -> Vec<u64> {
        r.recipients(&ch("general"), except).map(|c| c.0).collect()
    }

    #[test]
    fn except_skips_one_connection_or_every_connection_of_a_user() {
        let r = world();
        assert_eq!(to(&r, &Except::Nobody), [1, 2, 3]);
        assert_eq!(to(&r, &Except::Conn(ConnId(2))), [1, 3]);
        assert_eq!(to(&r, &Except::User(user("alice"))), [3]);
        assert_eq!(to(&r, &Except::User(user("carol"))), [1, 2, 3]);
        assert_eq!(r.recipients(&ch("random"), &Except::Nobody).count(), 0);
    }

    #[test]
    fn leave_and_close_drop_memberships_and_a_closed_connection_cannot_rejoin() {
        let mut r = world();
        r.apply(&ServerOutput::RoomLeave {
            conn: ConnId(1),
            channel: ch("general"),
        });
        assert_eq!(to(&r, &Except::Nobody), [2, 3]);
        r.apply(&ServerOutput::Close {
            conn: ConnId(3),
            reason: "idle timeout",
        });
        assert_eq!(to(&r, &Except::Nobody), [2]);
        assert_eq!(r.close(ConnId(2)), Some(user("alice")));
        assert_eq!(r.channels().count(), 0, "an empty room is dropped");
        r.join(ConnId(2), &ch("general"));
        assert_eq!(r.members(&ch("general")).count(), 0, "closed: not rejoined");
        assert_eq!(r.conns_of(&user("alice")).collect::<Vec<_>>(), [ConnId(1)]);
        assert_eq!(r.close(ConnId(1)), Some(user("alice")));
        assert_eq!(r.conns_of(&user("alice")).count(), 0);
        assert_eq!(r.connections(), 0);
    }
}
