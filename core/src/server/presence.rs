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
    /// Arbitrated presence only: per channel with local presence, what the
    /// local room has been told of the users present on any process.
    told: BTreeMap<ChannelId, Told>,
}

/// What a process's room of one channel was told (arbitrated presence):
/// announcements come from the arbiter (a first claim here), from other
/// processes (relays, which may be lost) and from the arbiter's answers.
#[derive(Debug, Clone, Default)]
struct Told {
    /// Announced present and not gone since.
    users: BTreeSet<UserId>,
    /// Relays applied so far: an arbiter's answer to a question asked
    /// before the latest of them may be older than it, and is not taken.
    relays: u64,
}

/// Who the arbiter's answer adds to and removes from what the local room
/// was told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Answered {
    /// Present elsewhere, not known before: announce `presence:join`.
    pub(crate) added: Vec<UserId>,
    /// Known before, present nowhere now: announce `presence:leave`.
    pub(crate) removed: Vec<UserId>,
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
            self.told.remove(channel);
        }
        true
    }

    /// Sorted ids of the users present (in grace too: their leave has not
    /// been announced yet), here or, with arbitrated presence, anywhere.
    pub(crate) fn users(&self, channel: &ChannelId) -> Vec<UserId> {
        let local = self
            .channels
            .get(channel)
            .into_iter()
            .flat_map(|u| u.keys());
        let told = self.told.get(channel).into_iter().flat_map(|r| &r.users);
        let all: BTreeSet<&UserId> = local.chain(told).collect();
        all.into_iter().cloned().collect()
    }

    /// Starts (or goes on) following `channel`'s presence on every
    /// process; returns the token of a question to the arbiter asked now.
    pub(crate) fn ask(&mut self, channel: &ChannelId) -> u64 {
        self.told.entry(channel.clone()).or_default().relays
    }

    /// Another process announced `user` in `channel` (`present`) or gone:
    /// counted (answers asked before it are stale), then judged as any
    /// news is ([`Presence::news`]).
    pub(crate) fn relayed(&mut self, channel: &ChannelId, user: &UserId, present: bool) -> bool {
        if let Some(told) = self.told.get_mut(channel) {
            told.relays += 1;
        }
        self.news(channel, user, present)
    }

    /// Whether `user` has presence state in `channel` here (connected or
    /// in its grace period).
    pub(crate) fn has(&self, channel: &ChannelId, user: &UserId) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|l| l.contains_key(user))
    }

    /// The room learns that `user` is `present` in `channel` on some
    /// process, or on none (a relay, or the arbiter's answer to this
    /// process's claim or release). True when the room must be told: news
    /// to it (a claim that was not the first may still be, when the first
    /// one's relay was lost). A user gone elsewhere but with presence here
    /// (a release that ran late, a claim reaped while this process
    /// stalled) is not told gone here: its claim here follows or stands.
    pub(crate) fn news(&mut self, channel: &ChannelId, user: &UserId, present: bool) -> bool {
        if !present && self.has(channel, user) {
            return false;
        }
        match self.told.get_mut(channel) {
            Some(told) => told.set(user, present),
            // Not followed (no arbitrated state): as without it.
            None => true,
        }
    }

    /// The arbiter's answer to the question `token`: every user holding a
    /// claim in `channel`. `None` when it is stale (a relay came in since
    /// the question) or nobody here follows the channel any more; else
    /// what the room is to be told. A user with presence here is never
    /// told gone by an answer (its own release says so).
    pub(crate) fn answered(
        &mut self,
        channel: &ChannelId,
        token: u64,
        users: Vec<UserId>,
    ) -> Option<Answered> {
        let told = self.told.get_mut(channel)?;
        if told.relays != token {
            return None;
        }
        let local = self.channels.get(channel);
        let is_local = |u: &UserId| local.is_some_and(|l| l.contains_key(u));
        let now: BTreeSet<UserId> = users.into_iter().collect();
        let answered = Answered {
            added: now.difference(&told.users).cloned().collect(),
            removed: told
                .users
                .difference(&now)
                .filter(|u| !is_local(u))
                .cloned()
                .collect(),
        };
        for u in &answered.added {
            told.users.insert(u.clone());
        }
        for u in &answered.removed {
            told.users.remove(u);
        }
        Some(answered)
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

impl Told {
    /// Records `user` present or gone; true when that is news.
    fn set(&mut self, user: &UserId, present: bool) -> bool {
        if present {
            self.users.insert(user.clone())
        } else {
            self.users.remove(user)
        }
    }
}
