//! Presence across processes ([`PresenceScope::Arbitrated`]): each process
//! owns its connections' presence, an arbiter the processes share (e.g.
//! PostgreSQL) says whether a claim is the first of a user in a channel and
//! a release the last, and only those are announced, here and (as a
//! [`Relay`]) on every other process.
//!
//! A claim is held through the grace period: a user who reconnects to
//! another process within it finds the claim still held and is not
//! announced again, and the old process's release is not the last. A dead
//! process's claims are adopted by a live one, which holds them for one
//! grace period and then releases them like its own.

use crate::Instant;
use crate::ids::{ChannelId, UserId};
use crate::server::conn::Membership;
use crate::server::presence::Answered;
use crate::server::tail::Relay;
use crate::server::timers::TimerKey;
use crate::server::{AccessPolicy, ConnId, Except, Server, ServerOutput};
use crate::wire::{PresenceChange, ServerFrame};

/// Who decides that a user appeared in or left a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresenceScope {
    /// Each process for its own connections: a user connected to two
    /// processes is announced by both.
    #[default]
    PerProcess,
    /// An arbiter the processes share: the machine emits
    /// [`ServerOutput::Presence`] and announces what
    /// [`Server::handle_presence`] reports.
    Arbitrated,
}

/// A claim or a release for the arbiter. The driver carries them out in
/// the order emitted, one after the other, and answers each with
/// [`Server::handle_presence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceCommand {
    /// This process has the user's first connection in the channel.
    Claim(PresenceChange),
    /// This process's grace for the user in the channel ended.
    Release(PresenceChange),
    /// Who holds a claim in `channel` on any process: asked when the
    /// channel gets a local member and at every resync, so a join's
    /// member list and the room know the users of other processes even
    /// when a relay was lost. Answer with [`PresenceOutcome::Members`]
    /// carrying `token` back; an answer may be lost (the next resync asks
    /// again).
    Members {
        /// The channel asked about.
        channel: ChannelId,
        /// Handed back with the answer, which is not taken if a relay came
        /// in after the question.
        token: u64,
    },
}

/// The arbiter's answer, or a dead process's claims taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceOutcome {
    /// A claim is held; `first` when no process held one before it.
    Claimed {
        /// Whose claim.
        change: PresenceChange,
        /// Announce `presence:join`.
        first: bool,
    },
    /// A release is done; `last` when no process holds a claim any more.
    Released {
        /// Whose release.
        change: PresenceChange,
        /// Announce `presence:leave`.
        last: bool,
    },
    /// The answer to [`PresenceCommand::Members`]: every user holding a
    /// claim in `channel` (on this process too), at most a driver-set
    /// bound of them.
    Members {
        /// The channel asked about.
        channel: ChannelId,
        /// The question's token.
        token: u64,
        /// The users, in any order.
        users: Vec<UserId>,
    },
    /// This process took over a dead process's claim: it holds it for one
    /// grace period, then releases it (a leave unless the user came back).
    Adopted(PresenceChange),
    /// This process's lease was found expired and taken again: another
    /// process may have adopted its claims (and will release them after a
    /// grace). Every user with presence here is claimed again, connected
    /// or in grace, so one who is still here, or comes back within the
    /// grace, is not announced as gone (a user back within the grace is
    /// not claimed anew: the machine holds its claim). Found by the lab
    /// (`--servers 3`, seed 91): a user in grace at the loss came back,
    /// and its claim, released by the adopter, was never taken again.
    Lost,
}

impl<P: AccessPolicy> Server<P> {
    /// The arbiter answered a [`PresenceCommand`], or this process adopted
    /// a dead process's claim. Ignored unless presence is
    /// [`PresenceScope::Arbitrated`].
    pub fn handle_presence(&mut self, now: Instant, outcome: PresenceOutcome) {
        self.tick(now);
        if !self.arbitrated() {
            return;
        }
        match outcome {
            // The first claim anywhere, or the last release: every process
            // is told; this room when it is news to it.
            PresenceOutcome::Claimed {
                change,
                first: true,
            } => {
                self.tell_room(&change, true);
                self.outputs
                    .push_back(ServerOutput::Relay(Relay::PresenceJoin(change)));
            }
            PresenceOutcome::Released { change, last } => {
                if last {
                    self.tell_room(&change, false);
                    self.outputs
                        .push_back(ServerOutput::Relay(Relay::PresenceLeave(change.clone())));
                } else {
                    // Present elsewhere: if this room never heard of it (a
                    // lost relay), it is told now.
                    self.tell_room(&change, true);
                }
                // The release was of an earlier grace, but the user has
                // presence here again (a dead process's claim adopted, or
                // back) while it was on its way: claim anew, or a user back
                // within an adopted grace would stay without a claim. Found
                // by the lab (`--servers 3`, seed 31590): a release queued
                // behind a stalled arbiter connection deleted the claim the
                // reap had just adopted.
                if self.presence.has(&change.channel_id, &change.user_id) {
                    self.outputs
                        .push_back(ServerOutput::Presence(PresenceCommand::Claim(change)));
                }
            }
            // Present elsewhere too: announced there, but if this room
            // never heard of it (a lost relay), it is told now.
            PresenceOutcome::Claimed {
                change,
                first: false,
            } => self.tell_room(&change, true),
            PresenceOutcome::Members {
                channel,
                token,
                users,
            } => match self.presence.answered(&channel, token, users) {
                Some(answered) => self.tell_joined(&channel, answered),
                // Older than a relay: ask again while anyone here listens.
                None if self.presence.has_conns(&channel) => self.ask_members(&channel),
                None => {}
            },
            PresenceOutcome::Adopted(change) => {
                let deadline = self.now.saturating_add(self.config.presence_grace);
                if self
                    .presence
                    .adopt(&change.channel_id, &change.user_id, deadline)
                {
                    self.timers.arm(
                        deadline,
                        TimerKey::PresenceLeave(change.channel_id, change.user_id),
                    );
                }
            }
            PresenceOutcome::Lost => {
                for (channel_id, user_id) in self.presence.held() {
                    let change = PresenceChange {
                        channel_id,
                        user_id,
                    };
                    self.outputs
                        .push_back(ServerOutput::Presence(PresenceCommand::Claim(change)));
                }
            }
        }
    }

    /// Tells this process's room that `change`'s user is `present` or
    /// gone, if that is news to it.
    fn tell_room(&mut self, change: &PresenceChange, present: bool) {
        let (channel, user) = (&change.channel_id, &change.user_id);
        if !self.presence.news(channel, user, present) {
            return;
        }
        if present {
            let frame = ServerFrame::PresenceJoin(change.clone());
            self.broadcast(channel, frame, Except::User(user.clone()));
        } else {
            let frame = ServerFrame::PresenceLeave(change.clone());
            self.broadcast(channel, frame, Except::Nobody);
        }
    }

    /// Tells the connections joined to `channel` what the arbiter's answer
    /// changed. Those still joining are not told: their join's member list
    /// is taken after it, so they would hear of a user twice.
    fn tell_joined(&mut self, channel: &ChannelId, answered: Answered) {
        let joined: Vec<ConnId> = self
            .presence
            .conns(channel)
            .into_iter()
            .filter(|c| self.membership(*c, channel) == Some(Membership::Joined))
            .collect();
        let frames = answered
            .added
            .into_iter()
            .map(|u| (u, true))
            .chain(answered.removed.into_iter().map(|u| (u, false)));
        for (user_id, present) in frames {
            let change = PresenceChange {
                channel_id: channel.clone(),
                user_id,
            };
            for conn in &joined {
                let frame = if present {
                    ServerFrame::PresenceJoin(change.clone())
                } else {
                    ServerFrame::PresenceLeave(change.clone())
                };
                self.send(*conn, frame);
            }
        }
    }

    /// Asks the arbiter who is present in `channel` on any process.
    pub(super) fn ask_members(&mut self, channel: &ChannelId) {
        let token = self.presence.ask(channel);
        self.outputs
            .push_back(ServerOutput::Presence(PresenceCommand::Members {
                channel: channel.clone(),
                token,
            }));
    }

    /// Whether presence is decided by a shared arbiter.
    pub(super) fn arbitrated(&self) -> bool {
        self.shared()
            .is_some_and(|cfg| cfg.presence == PresenceScope::Arbitrated)
    }

    /// `user`'s first local connection joined `channel` (`joiner`): announce
    /// it, or ask the arbiter whether it is the first anywhere.
    pub(super) fn presence_appeared(&mut self, channel: &ChannelId, user: &UserId, joiner: Except) {
        let change = PresenceChange {
            channel_id: channel.clone(),
            user_id: user.clone(),
        };
        if self.arbitrated() {
            self.outputs
                .push_back(ServerOutput::Presence(PresenceCommand::Claim(change)));
        } else {
            self.broadcast(channel, ServerFrame::PresenceJoin(change), joiner);
        }
    }

    /// `user`'s grace in `channel` ended here: announce the leave, or
    /// release the claim and let the arbiter say whether it was the last.
    pub(super) fn presence_gone(&mut self, channel: &ChannelId, user: UserId) {
        let change = PresenceChange {
            channel_id: channel.clone(),
            user_id: user,
        };
        if self.arbitrated() {
            self.outputs
                .push_back(ServerOutput::Presence(PresenceCommand::Release(change)));
        } else {
            self.broadcast(channel, ServerFrame::PresenceLeave(change), Except::Nobody);
        }
    }
}
