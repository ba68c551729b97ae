//! Store operations in flight and the per-channel append queues.
//!
//! A channel has at most `ServerConfig::appends_in_flight` append commands
//! at the store at once. The store executes a channel's commands in the
//! order they were issued, and fails every one issued behind a failed one
//! (`AppendChain::Behind`), so appends commit in the order the server
//! accepted them and a sender's messages keep their order. Completions
//! are handled in issue order too, whatever order they come back in, so
//! commits are broadcast in seq order; after a failure nothing more is
//! issued until what was behind it is back. Each command carries
//! everything that queued up while the channel could not issue (up to
//! `ServerConfig::max_append_batch` entries), so a busy channel pays one
//! store commit per batch, not per message, and the next batch starts
//! while the previous one commits.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::server::ConnId;
use crate::server::conn::JoinAttempt;
use crate::store::{AppendChain, AppendEntry, ModifyRule, StoreError, StoreOpId, StoreReply};
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
    /// An append command: whom each entry answers, in the entries' order.
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

/// An append command at the store.
#[derive(Debug, Clone)]
struct InFlight {
    op: StoreOpId,
    /// Entries it carries.
    entries: usize,
    /// Its completion, when it came back before one issued ahead of it
    /// (handled once those are).
    done: Option<Done>,
}

/// A completed append command, in the order to handle it.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    pub(crate) origins: Vec<AppendOrigin>,
    pub(crate) result: Result<StoreReply, StoreError>,
}

/// Whether a channel may issue its next command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Chain {
    /// Every completion handled so far succeeded.
    #[default]
    Sound,
    /// A command failed while others were in flight behind it: they fail
    /// too (the store's rule), so nothing more is issued until the last
    /// is back and a new chain can start.
    Draining,
}

#[derive(Debug, Clone, Default)]
struct ChannelQueue {
    /// Commands at the store, oldest first (at most
    /// `ServerConfig::appends_in_flight`).
    in_flight: VecDeque<InFlight>,
    chain: Chain,
    waiting: VecDeque<QueuedAppend>,
}

/// How a channel's commands are cut and pipelined (from `ServerConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pipeline {
    /// Most entries per command (`max_append_batch`).
    pub(crate) batch: usize,
    /// Most commands at the store at once (`appends_in_flight`).
    pub(crate) depth: usize,
}

impl ChannelQueue {
    /// Whether the channel's next command may go now: when nothing of it
    /// is at the store; or, with room in the pipeline and no failure
    /// draining, once what waits would make a command as large as the
    /// last one issued (or a full one). Issuing whatever waits at once
    /// would split a busy channel's load into one large command and one of
    /// a message or two, a commit each (measured: more CPU per message and
    /// a worse p99 for nothing); so the commands stay large and the store
    /// is never left idle between them.
    fn may_issue(&self, p: Pipeline) -> bool {
        if self.waiting.is_empty() || self.chain != Chain::Sound {
            return false;
        }
        match self.in_flight.back() {
            None => true,
            Some(last) => {
                self.in_flight.len() < p.depth.max(1)
                    && self.waiting.len() >= last.entries.min(p.batch.max(1))
            }
        }
    }
}

/// Per-channel FIFO of appends with at most `depth` commands at the store,
/// their completions handled in the order they were issued.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppendQueues {
    channels: BTreeMap<ChannelId, ChannelQueue>,
    /// Channels with appends waiting that may issue: issued when the driver
    /// next polls, so appends accepted in one burst of inputs leave
    /// together.
    ready: BTreeSet<ChannelId>,
    /// Entries waiting, over all channels.
    queued: usize,
    /// Entries at the store the op table does not count: beyond the first
    /// of each command, and all of a completed command held for its turn.
    batched: usize,
}

/// The next command to issue.
pub(crate) struct Batch {
    pub(crate) channel: ChannelId,
    pub(crate) appends: Vec<QueuedAppend>,
    pub(crate) chain: AppendChain,
}

impl AppendQueues {
    pub(crate) fn push(&mut self, channel: &ChannelId, append: QueuedAppend, p: Pipeline) {
        let q = self.channels.entry(channel.clone()).or_default();
        q.waiting.push_back(append);
        if q.may_issue(p) {
            self.ready.insert(channel.clone());
        }
        self.queued += 1;
    }

    /// The next command to issue: a ready channel and its oldest appends
    /// (at most `max`, at least one). [`started`](Self::started) must
    /// follow with its op.
    pub(crate) fn next_batch(&mut self, p: Pipeline) -> Option<Batch> {
        while let Some(channel) = self.ready.pop_first() {
            let Some(q) = self.channels.get_mut(&channel) else {
                continue;
            };
            if !q.may_issue(p) {
                continue;
            }
            let n = q.waiting.len().min(p.batch.max(1));
            let appends: Vec<_> = q.waiting.drain(..n).collect();
            let chain = if q.in_flight.is_empty() {
                AppendChain::Start
            } else {
                AppendChain::Behind
            };
            self.queued -= n;
            return Some(Batch {
                channel,
                appends,
                chain,
            });
        }
        None
    }

    /// The batch of `entries` appends just taken from `channel` was issued
    /// as `op`.
    pub(crate) fn started(
        &mut self,
        channel: &ChannelId,
        op: StoreOpId,
        entries: usize,
        p: Pipeline,
    ) {
        let q = self.channels.entry(channel.clone()).or_default();
        q.in_flight.push_back(InFlight {
            op,
            entries,
            done: None,
        });
        self.batched += entries.saturating_sub(1);
        if q.may_issue(p) {
            self.ready.insert(channel.clone());
        }
    }

    /// The command `op` of `channel` completed: the completions to handle
    /// now, in issue order (none while one issued earlier is still out).
    pub(crate) fn finish(
        &mut self,
        channel: &ChannelId,
        op: StoreOpId,
        done: Done,
        p: Pipeline,
    ) -> Vec<Done> {
        let Some(q) = self.channels.get_mut(channel) else {
            return vec![done];
        };
        let Some(slot) = q.in_flight.iter_mut().find(|f| f.op == op) else {
            return vec![done];
        };
        // Held until its turn, it is no longer counted by the op table.
        self.batched += 1;
        slot.done = Some(done);
        let mut handle = Vec::new();
        while q.in_flight.front().is_some_and(|f| f.done.is_some()) {
            let Some(InFlight {
                entries,
                done: Some(done),
                ..
            }) = q.in_flight.pop_front()
            else {
                break;
            };
            self.batched -= entries;
            let failed = !matches!(done.result, Ok(StoreReply::Appended(_)));
            if failed && !q.in_flight.is_empty() {
                q.chain = Chain::Draining;
            }
            handle.push(done);
        }
        if q.in_flight.is_empty() {
            q.chain = Chain::Sound;
        }
        if q.in_flight.is_empty() && q.waiting.is_empty() {
            self.channels.remove(channel);
        } else if q.may_issue(p) {
            self.ready.insert(channel.clone());
        }
        handle
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
        if q.in_flight.is_empty() && q.waiting.is_empty() {
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
