//! Store operations in flight and the per-channel append queues.
//!
//! At most one append command per channel is at the store at a time, so
//! appends commit in the order the server accepted them whatever order the
//! store completes other operations in: a sender's messages keep their
//! order. The command carries everything that queued up behind the
//! previous one (up to `ServerConfig::max_append_batch` entries), so a busy
//! channel pays one store commit per batch, not per message.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::server::ConnId;
use crate::server::conn::JoinAttempt;
use crate::store::{AppendEntry, ModifyRule};
use crate::wire::{Body, ReqId};

/// The dedupe key of a send: (channel, author, client message id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SendKey {
    pub(crate) channel: ChannelId,
    pub(crate) author: UserId,
    pub(crate) client_msg_id: ClientMsgId,
}

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) conn: ConnId,
    pub(crate) req: ReqId,
}

/// Where a join attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinStep {
    /// No position given: only the head is needed.
    Head,
    /// Reading what followed the client's position.
    Since {
        /// The client's epoch.
        epoch: Epoch,
        /// The client's last seq.
        since: Seq,
    },
    /// Reading the latest page (position unknown, too old or from another
    /// epoch): the answer is `recovered: false`.
    Latest,
}

/// Who an append answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppendOrigin {
    /// A send: every waiter of the key in `Server::sends` is answered.
    Send(SendKey),
    /// An update or delete: one request.
    Modify(Waiter),
}

/// A store operation in flight, by what its completion must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PendingOp {
    /// A step of a join attempt.
    Join {
        waiter: Waiter,
        channel: ChannelId,
        /// The attempt (what `Membership::Joining` holds).
        attempt: JoinAttempt,
        step: JoinStep,
    },
    /// A history page.
    History { waiter: Waiter, channel: ChannelId },
    /// A read receipt.
    Receipt {
        waiter: Waiter,
        channel: ChannelId,
        user: UserId,
    },
    /// A read of a tailed channel past its cursor (shared stores only).
    Tail { channel: ChannelId },
    /// An append command (the only one in flight for its channel): whom
    /// each entry answers, in the entries' order.
    Append {
        channel: ChannelId,
        origins: Vec<AppendOrigin>,
    },
}

/// What an accepted update or delete changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Update(Body),
    Delete,
}

/// An accepted append waiting for its channel's turn at the store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QueuedAppend {
    Send {
        key: SendKey,
        body: Body,
    },
    Modify {
        waiter: Waiter,
        target: MessageId,
        actor: UserId,
        rule: ModifyRule,
        change: Change,
    },
}

impl QueuedAppend {
    /// The store entry (stamped with `ts` now that it goes to the store) and
    /// who the completion answers.
    pub(crate) fn into_entry(self, ts: u64) -> (AppendEntry, AppendOrigin) {
        match self {
            QueuedAppend::Send { key, body } => (
                AppendEntry::Message {
                    author: key.author.clone(),
                    client_msg_id: key.client_msg_id.clone(),
                    body,
                    ts,
                },
                AppendOrigin::Send(key),
            ),
            QueuedAppend::Modify {
                waiter,
                target,
                actor,
                rule,
                change,
            } => (
                match change {
                    Change::Update(body) => AppendEntry::Update {
                        target,
                        actor,
                        rule,
                        body,
                    },
                    Change::Delete => AppendEntry::Delete {
                        target,
                        actor,
                        rule,
                    },
                },
                AppendOrigin::Modify(waiter),
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct ChannelQueue {
    /// Entries of the command at the store (0: none is).
    in_flight: usize,
    waiting: VecDeque<QueuedAppend>,
}

/// Per-channel FIFO of appends with at most one command at the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppendQueues {
    channels: BTreeMap<ChannelId, ChannelQueue>,
    /// Channels with appends waiting and no command in flight: issued when
    /// the driver next polls, so appends accepted in one burst of inputs
    /// leave together.
    ready: BTreeSet<ChannelId>,
    /// Entries waiting, over all channels.
    queued: usize,
    /// Entries at the store beyond the first of each command (the op
    /// table counts a command once).
    batched: usize,
}

impl AppendQueues {
    pub(crate) fn push(&mut self, channel: &ChannelId, append: QueuedAppend) {
        let q = self.channels.entry(channel.clone()).or_default();
        q.waiting.push_back(append);
        if q.in_flight == 0 {
            self.ready.insert(channel.clone());
        }
        self.queued += 1;
    }

    /// The next command to issue: a ready channel and its oldest appends
    /// (at most `max`, at least one), now in flight.
    pub(crate) fn next_batch(&mut self, max: usize) -> Option<(ChannelId, Vec<QueuedAppend>)> {
        while let Some(channel) = self.ready.pop_first() {
            let Some(q) = self.channels.get_mut(&channel) else {
                continue;
            };
            if q.in_flight > 0 || q.waiting.is_empty() {
                continue;
            }
            let n = q.waiting.len().min(max.max(1));
            let batch: Vec<_> = q.waiting.drain(..n).collect();
            q.in_flight = n;
            self.queued -= n;
            self.batched += n.saturating_sub(1);
            return Some((channel, batch));
        }
        None
    }

    /// The in-flight command of `channel` completed.
    pub(crate) fn finish(&mut self, channel: &ChannelId) {
        if let Some(q) = self.channels.get_mut(channel) {
            self.batched -= q.in_flight.saturating_sub(1);
            q.in_flight = 0;
            if q.waiting.is_empty() {
                self.channels.remove(channel);
            } else {
                self.ready.insert(channel.clone());
            }
        }
    }

    /// The dedupe keys of the sends waiting (not issued) in `channel`.
    pub(crate) fn queued_sends(&self, channel: &ChannelId) -> Vec<SendKey> {
        self.channels
            .get(channel)
            .into_iter()
            .flat_map(|q| q.waiting.iter())
            .filter_map(|a| match a {
                QueuedAppend::Send { key, .. } => Some(key.clone()),
                QueuedAppend::Modify { .. } => None,
            })
            .collect()
    }

    /// Drops a waiting send (all its waiters were refused).
    pub(crate) fn remove_send(&mut self, channel: &ChannelId, key: &SendKey) {
        let Some(q) = self.channels.get_mut(channel) else {
            return;
        };
        let before = q.waiting.len();
        q.waiting
            .retain(|a| !matches!(a, QueuedAppend::Send { key: k, .. } if k == key));
        self.queued -= before - q.waiting.len();
        if q.in_flight == 0 && q.waiting.is_empty() {
            self.channels.remove(channel);
            self.ready.remove(channel);
        }
    }

    /// Appends not yet answered that the op table does not count: the
    /// waiting ones and those sharing a command with another.
    pub(crate) fn uncounted(&self) -> usize {
        self.queued + self.batched
    }
}
