//! Store operations in flight and the per-channel append queues.
//!
//! At most one append per channel is at the store at a time, so appends
//! commit in the order the server accepted them whatever order the store
//! completes other operations in: a sender's messages keep their order.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::server::ConnId;
use crate::store::{AppendEntry, ModifyRule, StoreOpId};
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
        /// The op id of the attempt's first step (what `Membership::Joining` holds).
        attempt: StoreOpId,
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
    /// An append (the only one in flight for its channel).
    Append {
        channel: ChannelId,
        origin: AppendOrigin,
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
    in_flight: bool,
    waiting: VecDeque<QueuedAppend>,
}

/// Per-channel FIFO of appends with at most one at the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppendQueues {
    channels: BTreeMap<ChannelId, ChannelQueue>,
    queued: usize,
}

impl AppendQueues {
    pub(crate) fn push(&mut self, channel: &ChannelId, append: QueuedAppend) {
        self.channels
            .entry(channel.clone())
            .or_default()
            .waiting
            .push_back(append);
        self.queued += 1;
    }

    /// The next append to issue for `channel`, if none is in flight.
    pub(crate) fn next_ready(&mut self, channel: &ChannelId) -> Option<QueuedAppend> {
        let q = self.channels.get_mut(channel)?;
        if q.in_flight {
            return None;
        }
        let next = q.waiting.pop_front()?;
        q.in_flight = true;
        self.queued -= 1;
        Some(next)
    }

    /// The in-flight append of `channel` completed.
    pub(crate) fn finish(&mut self, channel: &ChannelId) {
        if let Some(q) = self.channels.get_mut(channel) {
            q.in_flight = false;
            if q.waiting.is_empty() {
                self.channels.remove(channel);
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
        if !q.in_flight && q.waiting.is_empty() {
            self.channels.remove(channel);
        }
    }

    /// Appends accepted but not yet issued.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }
}
