//! The outbox: optimistic entries, sent in order, resolved exactly once.

use super::vecmap::VecMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ChannelId, ClientMsgId, MessageId};
use crate::wire::{Ack, Body, ReqId};

use super::events::{EntryId, OpId, Outcome, RestoreError};

/// The outcome an ack gives an entry, if the ack is of the right kind.
pub(super) fn outcome_of(id: &EntryId, ack: &Ack) -> Option<Outcome> {
    match (id, ack) {
        (EntryId::Message(_), Ack::Send(a)) => Some(Outcome::Sent {
            seq: a.seq,
            message_id: a.message_id.clone(),
        }),
        (EntryId::Op(_), Ack::Update { seq } | Ack::Delete { seq }) => {
            Some(Outcome::Applied { seq: *seq })
        }
        _ => None,
    }
}

/// What an outbox entry asks the server to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Command {
    /// Post a new message under an idempotency key.
    #[serde(rename_all = "camelCase")]
    Send {
        /// The idempotency key, also the entry's id.
        client_msg_id: ClientMsgId,
        /// The payload.
        body: Body,
    },
    /// Replace a message's body.
    #[serde(rename_all = "camelCase")]
    Update {
        /// The entry's id.
        op: OpId,
        /// The message to edit.
        message_id: MessageId,
        /// The new body.
        body: Body,
    },
    /// Delete a message.
    #[serde(rename_all = "camelCase")]
    Delete {
        /// The entry's id.
        op: OpId,
        /// The message to delete.
        message_id: MessageId,
    },
}

impl Command {
    /// The entry's id.
    #[must_use]
    pub fn id(&self) -> EntryId {
        match self {
            Command::Send { client_msg_id, .. } => EntryId::Message(client_msg_id.clone()),
            Command::Update { op, .. } | Command::Delete { op, .. } => EntryId::Op(*op),
        }
    }
}

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Waiting for its channel to be subscribed and a window slot.
    Pending,
    /// Sent as request `req` on the current connection; no reply yet.
    InFlight {
        /// The request.
        req: ReqId,
    },
}

/// One optimistic entry: the app shows it at once and updates it on its
/// outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The channel.
    pub channel: ChannelId,
    /// What to do.
    pub command: Command,
    /// Where it stands.
    pub state: EntryState,
    /// Timeouts and retryable refusals so far.
    pub failures: u32,
}

/// Unsent entries, in order, for an app to persist across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxSnapshot {
    /// Format version ([`OutboxSnapshot::VERSION`]).
    pub version: u32,
    /// The entries, oldest first.
    pub entries: Vec<SnapshotEntry>,
}

impl OutboxSnapshot {
    /// The format this build writes and reads.
    pub const VERSION: u32 = 1;
}

/// One persisted entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// The channel.
    pub channel: ChannelId,
    /// What to do.
    pub command: Command,
}

/// Entries keyed by insertion order, so iteration is send order.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    next_order: u64,
    entries: VecMap<u64, OutboxEntry>,
}

impl Outbox {
    /// Appends a pending entry.
    pub(crate) fn push(&mut self, channel: ChannelId, command: Command) {
        self.next_order += 1;
        self.entries.insert(
            self.next_order,
            OutboxEntry {
                channel,
                command,
                state: EntryState::Pending,
                failures: 0,
            },
        );
    }

    /// Entries in send order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.entries.values()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether an entry with `id` exists.
    pub(crate) fn contains(&self, id: &EntryId) -> bool {
        self.find(id).is_some()
    }

    fn find(&self, id: &EntryId) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, e)| e.command.id() == *id)
            .map(|(k, _)| *k)
    }

    /// The entry `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: &EntryId) -> Option<&mut OutboxEntry> {
        let k = self.find(id)?;
        self.entries.get_mut(&k)
    }

    /// Removes and returns the entry `id`.
    pub(crate) fn remove(&mut self, id: &EntryId) -> Option<OutboxEntry> {
        let k = self.find(id)?;
        self.entries.remove(&k)
    }

    /// Removes the entries of `channel` (only the pending ones unless
    /// `in_flight_too`), in order.
    pub(crate) fn drain_channel(
        &mut self,
        channel: &ChannelId,
        in_flight_too: bool,
    ) -> Vec<OutboxEntry> {
        let keys: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.channel == *channel)
            .filter(|(_, e)| in_flight_too || e.state == EntryState::Pending)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.entries.remove(&k))
            .collect()
    }

    /// Puts every in-flight entry back to pending (its connection is gone).
    pub(crate) fn requeue_all(&mut self) {
        for e in self.entries.values_mut() {
            e.state = EntryState::Pending;
        }
    }

    /// Puts the in-flight entries of `channel` back to pending.
    pub(crate) fn requeue_channel(&mut self, channel: &ChannelId) {
        for e in self.entries.values_mut().filter(|e| e.channel == *channel) {
            e.state = EntryState::Pending;
        }
    }

    /// Number of entries in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.state, EntryState::InFlight { .. }))
            .count()
    }

    /// Mutable entries in send order, for the pump.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut OutboxEntry> {
        self.entries.values_mut()
    }

    /// The persistable form: every entry, as pending.
    pub(crate) fn export(&self) -> OutboxSnapshot {
        OutboxSnapshot {
            version: OutboxSnapshot::VERSION,
            entries: self
                .entries
                .values()
                .map(|e| SnapshotEntry {
                    channel: e.channel.clone(),
                    command: e.command.clone(),
                })
                .collect(),
        }
    }

    /// Appends the snapshot's entries that are not here yet; returns the
    /// largest op id seen so new ops never reuse one.
    pub(crate) fn restore(
        &mut self,
        snapshot: OutboxSnapshot,
        max: usize,
    ) -> Result<OpId, RestoreError> {
        if snapshot.version != OutboxSnapshot::VERSION {
            return Err(RestoreError::Version(snapshot.version));
        }
        let fresh: Vec<SnapshotEntry> = snapshot
            .entries
            .into_iter()
            .filter(|s| !self.contains(&s.command.id()))
            .collect();
        if self.len().saturating_add(fresh.len()) > max {
            return Err(RestoreError::OutboxFull(max));
        }
        let mut max_op = OpId(0);
        for s in fresh {
            if let EntryId::Op(op) = s.command.id() {
                max_op = max_op.max(op);
            }
            self.push(s.channel, s.command);
        }
        Ok(max_op)
    }
}
