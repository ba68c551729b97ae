//! One channel as a plain client keeps it: what the app wants, where the
//! join stands, the position `(epoch, lastSeq)` of the last event shown,
//! early events held while a gap is paged in, members and typing.

use std::collections::{BTreeMap, BTreeSet};

use lockstep_core::Instant;
use lockstep_core::client::{ChannelView, ClientEvent, SubscriptionState};
use lockstep_core::ids::{ChannelId, Epoch, Seq, UserId};
use lockstep_core::wire::{ErrorCode, HistoryAck, JoinAck, LogEvent, ReqId};

/// Where the channel's membership stands on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    /// Not joined (no connection yet, or lost, or left).
    Idle,
    /// A join is in flight or waiting for its retry.
    Joining,
    /// The join was acknowledged; events flow.
    Joined,
    /// A leave is in flight.
    Leaving,
    /// The server refused the join for good (`forbidden`).
    Failed(ErrorCode),
}

/// A request in flight and when its reply is due.
pub(crate) type Asked = Option<(ReqId, Instant)>;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) name: ChannelId,
    pub(crate) desired: bool,
    pub(crate) sub: Sub,
    /// The join in flight: a first join, a re-join or a resync.
    pub(crate) join: Asked,
    /// Joins tried since the last success.
    pub(crate) join_attempt: u32,
    /// When a failed join is tried again.
    pub(crate) join_retry_at: Option<Instant>,
    /// The leave in flight.
    pub(crate) leave: Asked,
    /// A join was sent on this connection and no leave or refusal has
    /// undone it: the server may count us in (a join whose reply was lost
    /// may have landed), so giving the channel up needs a leave.
    pub(crate) maybe_joined: bool,
    /// When the joined channel is joined again from its position
    /// (lossy transports only).
    pub(crate) resync_at: Option<Instant>,
    /// The history page in flight.
    pub(crate) fill: Asked,
    /// When a refused history page is asked again.
    pub(crate) fill_retry_at: Option<Instant>,
    epoch: Option<Epoch>,
    /// The last seq shown (0 before any).
    last: Seq,
    /// The log's head as the last join reply or history page told it.
    head: Seq,
    /// Events that came early, by seq.
    buffer: BTreeMap<Seq, LogEvent>,
    members: BTreeSet<UserId>,
    /// Users typing, until when.
    typing: BTreeMap<UserId, Instant>,
    read_up_to: Seq,
}

impl Channel {
    pub(crate) fn new(name: ChannelId) -> Self {
        Channel {
            name,
            desired: true,
            sub: Sub::Idle,
            join: None,
            join_attempt: 0,
            join_retry_at: None,
            leave: None,
            maybe_joined: false,
            resync_at: None,
            fill: None,
            fill_retry_at: None,
            epoch: None,
            last: Seq::ZERO,
            head: Seq::ZERO,
            buffer: BTreeMap::new(),
            members: BTreeSet::new(),
            typing: BTreeMap::new(),
            read_up_to: Seq::ZERO,
        }
    }

    /// The position a re-join sends (`{ epoch, since }`), once known.
    pub(crate) fn position(&self) -> Option<(Epoch, Seq)> {
        self.epoch.map(|e| (e, self.last))
    }

    /// Moves to `sub`, telling the app when what it sees changes.
    pub(crate) fn set_sub(&mut self, sub: Sub, out: &mut Vec<ClientEvent>) {
        let before = self.subscription();
        self.sub = sub;
        let after = self.subscription();
        if before != after {
            out.push(ClientEvent::Subscription {
                channel: self.name.clone(),
                state: after,
            });
        }
    }

    pub(crate) fn subscription(&self) -> SubscriptionState {
        match self.sub {
            Sub::Idle if self.desired && (self.join_retry_at.is_some() || self.join.is_some()) => {
                SubscriptionState::Subscribing {
                    attempt: self.join_attempt.max(1),
                }
            }
            Sub::Idle => SubscriptionState::Unsubscribed,
            Sub::Joining => SubscriptionState::Subscribing {
                attempt: self.join_attempt.max(1),
            },
            Sub::Joined => SubscriptionState::Subscribed,
            Sub::Leaving => SubscriptionState::Unsubscribing,
            Sub::Failed(code) => SubscriptionState::Failed { code },
        }
    }

    /// The connection is gone: nothing is joined, every request with it;
    /// the position stays for the re-join.
    pub(crate) fn offline(&mut self, out: &mut Vec<ClientEvent>) {
        self.join = None;
        self.join_retry_at = None;
        self.join_attempt = 0;
        self.leave = None;
        self.maybe_joined = false;
        self.fill = None;
        self.fill_retry_at = None;
        self.resync_at = None;
        self.buffer.clear();
        self.members.clear();
        self.clear_typing(out);
        if !matches!(self.sub, Sub::Failed(_)) {
            self.set_sub(Sub::Idle, out);
        }
    }

    fn clear_typing(&mut self, out: &mut Vec<ClientEvent>) {
        for user in std::mem::take(&mut self.typing).into_keys() {
            out.push(ClientEvent::Typing {
                channel: self.name.clone(),
                user,
                active: false,
            });
        }
    }

    /// The join's reply: members from its snapshot, then its events from
    /// the position sent; a new epoch starts the channel over.
    pub(crate) fn joined(&mut self, ack: JoinAck, out: &mut Vec<ClientEvent>) {
        self.join = None;
        self.join_retry_at = None;
        self.join_attempt = 0;
        self.members = ack.members.into_iter().collect();
        out.push(ClientEvent::Members {
            channel: self.name.clone(),
            members: self.members.iter().cloned().collect(),
        });
        match self.epoch {
            Some(epoch) if epoch == ack.epoch => {
                self.head = ack.head_seq;
                for event in ack.events {
                    self.hold(event);
                }
            }
            known => {
                // First join, or the log was reset: start at its head.
                if known.is_some() {
                    out.push(ClientEvent::Reset {
                        channel: self.name.clone(),
                        epoch: ack.epoch,
                    });
                }
                self.epoch = Some(ack.epoch);
                self.last = ack.head_seq;
                self.head = ack.head_seq;
                let last = self.last;
                self.buffer.retain(|seq, _| *seq > last);
            }
        }
        self.set_sub(Sub::Joined, out);
        self.show_ready(out);
    }

    /// A live event (`message:new`, `message:updated`, `message:deleted`).
    pub(crate) fn live(&mut self, event: LogEvent, buffer_max: usize, out: &mut Vec<ClientEvent>) {
        if !matches!(self.sub, Sub::Joined | Sub::Joining) {
            return;
        }
        self.hold(event);
        if self.buffer.len() > buffer_max {
            // Too far behind: page it all in again.
            self.buffer.clear();
        }
        if self.sub == Sub::Joined {
            self.show_ready(out);
        }
    }

    /// A history page: events after the position; a page that starts past
    /// the next seq proves the events between are gone (retention).
    pub(crate) fn paged(&mut self, page: HistoryAck, out: &mut Vec<ClientEvent>) {
        self.fill = None;
        self.fill_retry_at = None;
        if self.epoch != Some(page.epoch) || self.sub != Sub::Joined {
            // Another log than ours: the next re-join sorts it out.
            return;
        }
        if let Some(first) = page.events.first() {
            let from = self.last.next();
            if first.seq() > from && !self.buffer.contains_key(&from) {
                let to = Seq(first.seq().0 - 1);
                out.push(ClientEvent::Truncated {
                    channel: self.name.clone(),
                    from,
                    to,
                });
                self.last = to;
            }
        }
        // An empty page: nothing follows the position (whatever the head
        // said when it was read).
        self.head = if page.events.is_empty() {
            self.last
        } else {
            page.head_seq
        };
        for event in page.events {
            self.hold(event);
        }
        self.show_ready(out);
    }

    fn hold(&mut self, event: LogEvent) {
        if event.seq() > self.last {
            self.buffer.insert(event.seq(), event);
        }
    }

    /// Shows every held event that is next in line.
    fn show_ready(&mut self, out: &mut Vec<ClientEvent>) {
        let last = self.last;
        self.buffer.retain(|seq, _| *seq > last);
        while let Some(entry) = self.buffer.first_entry() {
            if *entry.key() != self.last.next() {
                break;
            }
            let event = entry.remove();
            self.last = event.seq();
            self.head = self.head.max(self.last);
            out.push(ClientEvent::Log {
                channel: self.name.clone(),
                event,
            });
        }
    }

    /// Where to page from, when a gap needs filling now: behind the head,
    /// or early events held past a hole.
    pub(crate) fn gap(&self, now: Instant) -> Option<Seq> {
        let behind = self.last < self.head || !self.buffer.is_empty();
        (self.sub == Sub::Joined
            && self.fill.is_none()
            && self.fill_retry_at.is_none_or(|at| at <= now)
            && behind)
            .then_some(self.last)
    }

    pub(crate) fn presence(&mut self, user: UserId, present: bool, out: &mut Vec<ClientEvent>) {
        if !matches!(self.sub, Sub::Joined | Sub::Joining) {
            return;
        }
        let channel = self.name.clone();
        if present {
            if self.members.insert(user.clone()) {
                out.push(ClientEvent::MemberJoined { channel, user });
            }
        } else if self.members.remove(&user) {
            out.push(ClientEvent::MemberLeft { channel, user });
        }
    }

    pub(crate) fn typing(
        &mut self,
        user: UserId,
        active: bool,
        until: Instant,
        out: &mut Vec<ClientEvent>,
    ) {
        if self.sub != Sub::Joined {
            return;
        }
        let was = if active {
            self.typing.insert(user.clone(), until).is_some()
        } else {
            self.typing.remove(&user).is_some()
        };
        if was != active {
            out.push(ClientEvent::Typing {
                channel: self.name.clone(),
                user,
                active,
            });
        }
    }

    /// Typing indicators whose time is up go.
    pub(crate) fn expire_typing(&mut self, now: Instant, out: &mut Vec<ClientEvent>) {
        let gone: Vec<UserId> = self
            .typing
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(u, _)| u.clone())
            .collect();
        for user in gone {
            self.typing.remove(&user);
            out.push(ClientEvent::Typing {
                channel: self.name.clone(),
                user,
                active: false,
            });
        }
    }

    pub(crate) fn read(&mut self, up_to: Seq) {
        self.read_up_to = self.read_up_to.max(up_to);
    }

    /// The next time after `now` something of this channel is due.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        [
            self.join.map(|(_, at)| at),
            self.join_retry_at,
            self.leave.map(|(_, at)| at),
            self.resync_at,
            self.fill.map(|(_, at)| at),
            self.fill_retry_at,
            self.typing.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .filter(|at| *at > now)
        .min()
    }

    pub(crate) fn view(&self) -> ChannelView {
        ChannelView {
            desired: self.desired,
            subscription: self.subscription(),
            epoch: self.epoch,
            last_seq: self.last,
            buffered: self.buffer.len(),
            members: self.members.iter().cloned().collect(),
            typing: self.typing.keys().cloned().collect(),
            read_up_to: self.read_up_to,
        }
    }
}
