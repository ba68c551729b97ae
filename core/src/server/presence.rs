//! Who is present in each channel, with a grace period before a leave.

use std::collections::{BTreeMap, BTreeSet};

use crate::Instant;
use crate::ids::{ChannelId, UserId};
use crate::server::ConnId;

/// A user's presence in one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UserPresence {
    /// Joined through these connections (never empty).
    Here(BTreeSet<ConnId>),
    /// No connection left; `presence:leave` is announced at the deadline
    /// unless the user comes back first.
    Leaving(Instant),
}

/// What a connection's join changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Joined {
    /// The user was absent: announce `presence:join`.
    Appeared,
    /// The user was in its grace period: cancel that timer, announce nothing.
    Returned {
        /// The cancelled leave deadline.
        deadline: Instant,
    },
    /// The user was already here (another connection, or a re-join).
    AlreadyHere,
}

/// What a connection's leave changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Left {
    /// The connection was not a member.
    NotMember,
    /// Another connection of the user remains.
    StillHere,
    /// It was the user's last connection: arm the grace timer.
    Leaving,
}

/// Per-channel presence: the members the rest of the room has been told of.
#[derive(Debug, Clone, Default)]
pub(crate) struct Presence {
    channels: BTreeMap<ChannelId, BTreeMap<UserId, UserPresence>>,
}

impl Presence {
    pub(crate) fn join(&mut self, channel: &ChannelId, user: &UserId, conn: ConnId) -> Joined {
        let users = self.channels.entry(channel.clone()).or_default();
        match users.get_mut(user) {
            None => {
                users.insert(user.clone(), UserPresence::Here(BTreeSet::from([conn])));
                Joined::Appeared
            }
            Some(UserPresence::Here(conns)) => {
                conns.insert(conn);
                Joined::AlreadyHere
            }
            Some(p @ UserPresence::Leaving(_)) => {
                let UserPresence::Leaving(deadline) = *p else {
                    return Joined::AlreadyHere;
                };
                *p = UserPresence::Here(BTreeSet::from([conn]));
                Joined::Returned { deadline }
            }
        }
    }

    pub(crate) fn leave(
        &mut self,
        channel: &ChannelId,
        user: &UserId,
        conn: ConnId,
        deadline: Instant,
    ) -> Left {
        let Some(p) = self.channels.get_mut(channel).and_then(|u| u.get_mut(user)) else {
            return Left::NotMember;
        };
        let UserPresence::Here(conns) = p else {
            return Left::NotMember;
        };
        if !conns.remove(&conn) {
            return Left::NotMember;
        }
        if !conns.is_empty() {
            return Left::StillHere;
        }
        *p = UserPresence::Leaving(deadline);
        Left::Leaving
    }

    /// Takes over a dead process's claim of `user` in `channel`: in grace
    /// until `deadline`. False (nothing changed) when the user already has
    /// state here.
    pub(crate) fn adopt(&mut self, channel: &ChannelId, user: &UserId, deadline: Instant) -> bool {
        let users = self.channels.entry(channel.clone()).or_default();
        if users.contains_key(user) {
            return false;
        }
        users.insert(user.clone(), UserPresence::Leaving(deadline));
        true
    }

    /// Ends a grace period due at `deadline`; true when the user is gone now.
    pub(crate) fn expire(&mut self, channel: &ChannelId, user: &UserId, deadline: Instant) -> bool {
        let Some(users) = self.channels.get_mut(channel) else {
            return false;
        };
        if users.get(user) != Some(&UserPresence::Leaving(deadline)) {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            self.channels.remove(channel);
        }
        true
    }

    /// Sorted ids of the users present (in grace too: their leave has not
    /// been announced yet).
    pub(crate) fn users(&self, channel: &ChannelId) -> Vec<UserId> {
        self.channels
            .get(channel)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `user` has presence in `channel` here (connected or in grace).
    pub(crate) fn has(&self, channel: &ChannelId, user: &UserId) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|users| users.contains_key(user))
    }

    /// Every (channel, user) with presence here: connected or in grace
    /// (whose claim this process holds, as far as it knows).
    pub(crate) fn held(&self) -> Vec<(ChannelId, UserId)> {
        self.channels
            .iter()
            .flat_map(|(channel, users)| users.keys().map(|user| (channel.clone(), user.clone())))
            .collect()
    }

    /// The connections joined to `channel`, in order.
    pub(crate) fn conns(&self, channel: &ChannelId) -> Vec<ConnId> {
        let Some(users) = self.channels.get(channel) else {
            return Vec::new();
        };
        let mut out: Vec<ConnId> = users
            .values()
            .flat_map(|p| match p {
                UserPresence::Here(c) => c.iter().copied().collect(),
                UserPresence::Leaving(_) => Vec::new(),
            })
            .collect();
        out.sort();
        out
    }

    /// Whether any connection is joined to `channel`.
    pub(crate) fn has_conns(&self, channel: &ChannelId) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|users| users.values().any(|p| matches!(p, UserPresence::Here(_))))
    }

    /// Channels with any presence state (joined or in grace), for leak checks.
    pub(crate) fn channel_count(&self) -> usize {
        self.channels.len()
    }
}
