//! A batch of write commands, planned in memory between the two round
//! trips of its transaction.
//!
//! The writer first locks the head rows of the channels the batch appends
//! to and looks up every fact the batch can need (dedupe keys, edit and
//! delete targets, heads and watermarks for receipts) in one pipelined
//! round trip ([`Keys`] says what to look up, [`Facts`] holds the answer).
//! [`plan`] then decides every command here, in order, with the rules of
//! `lockstep_core::store` (the ones `MemStore` and SQLite ask too), and
//! turns the batch into set-based writes ([`Writes`]) that the writer sends
//! with the `COMMIT` in a second round trip. Nothing here can fail: the
//! facts were decoded before, so each command's outcome is final once the
//! transaction commits.

use std::collections::{BTreeMap, HashMap};

use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
pub(crate) use lockstep_core::store::WriteCommand;
use lockstep_core::store::{
    AppendEntry, AppendOutcome, Existing, MessageState, Modify, PRUNE_STEP, StoreError, StoreReply,
    decide_modify, decide_receipt,
};
use lockstep_core::wire::{LogEvent, MessageDeleted, MessageUpdated, NewMessage, SendAck};

/// What the store keeps (see [`PgConfig`](crate::PgConfig)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// Most events kept per channel.
    pub(crate) events: u64,
    /// Most messages remembered per channel (dedupe, edits, deletes).
    pub(crate) remember: u64,
}

/// A dedupe key.
pub(crate) type MessageKey = (ChannelId, UserId, ClientMsgId);
/// An edit or delete target.
pub(crate) type TargetKey = (ChannelId, MessageId);
/// A read watermark.
pub(crate) type ReceiptKey = (ChannelId, UserId);

/// What a batch needs looked up, each key once.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Channels appended to, sorted: their head rows are locked in this
    /// order by every writer, so two batches never wait for each other in
    /// a cycle.
    pub(crate) lock: Vec<ChannelId>,
    pub(crate) messages: Vec<MessageKey>,
    /// Targets that can exist: minted ids never hold NUL, which PostgreSQL
    /// text cannot carry, so a target with one is unknown without asking.
    pub(crate) targets: Vec<TargetKey>,
    /// Channels of receipts (their heads are read, not locked).
    pub(crate) receipt_channels: Vec<ChannelId>,
    pub(crate) receipts: Vec<ReceiptKey>,
}

impl Keys {
    pub(crate) fn of(cmds: &[WriteCommand]) -> Keys {
        let mut lock = Vec::new();
        let mut messages = Vec::new();
        let mut targets = Vec::new();
        let mut receipt_channels = Vec::new();
        let mut receipts = Vec::new();
        for cmd in cmds {
            match cmd {
                WriteCommand::Append {
                    channel, entries, ..
                } => {
                    lock.push(channel.clone());
                    for entry in entries {
                        match entry {
                            AppendEntry::Message {
                                author,
                                client_msg_id,
                                ..
                            } => messages.push((
                                channel.clone(),
                                author.clone(),
                                client_msg_id.clone(),
                            )),
                            AppendEntry::Update { target, .. }
                            | AppendEntry::Delete { target, .. } => {
                                if !target.as_str().contains('\0') {
                                    targets.push((channel.clone(), target.clone()));
                                }
                            }
                        }
                    }
                }
                WriteCommand::SetReceipt { channel, user, .. } => {
                    receipt_channels.push(channel.clone());
                    receipts.push((channel.clone(), user.clone()));
                }
            }
        }
        Keys {
            lock: sorted_unique(lock),
            messages: sorted_unique(messages),
            targets: sorted_unique(targets),
            receipt_channels: sorted_unique(receipt_channels),
            receipts: sorted_unique(receipts),
        }
    }
}

fn sorted_unique<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v.dedup();
    v
}

/// A channel's row as the batch found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelRow {
    pub(crate) epoch: Epoch,
    pub(crate) head: Seq,
    /// Rows of `messages` for the channel.
    pub(crate) messages: u64,
}

/// What the database held for a batch's [`Keys`] (after the head rows
/// were locked, so nothing of the locked channels can change meanwhile).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Locked head rows (every channel of `Keys::lock`).
    pub(crate) locked: HashMap<ChannelId, ChannelRow>,
    /// Heads of receipt channels that have a row (read, not locked).
    pub(crate) heads: HashMap<ChannelId, Seq>,
    pub(crate) messages: HashMap<MessageKey, SendAck>,
    /// Remembered targets: author and state.
    pub(crate) targets: HashMap<TargetKey, (String, MessageState)>,
    pub(crate) receipts: HashMap<ReceiptKey, Seq>,
}

/// A message row to insert, in its final state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewMessageRow {
    pub(crate) channel: ChannelId,
    pub(crate) message_id: MessageId,
    pub(crate) author: UserId,
    pub(crate) client_msg_id: ClientMsgId,
    pub(crate) seq: Seq,
    pub(crate) ts: u64,
    pub(crate) state: MessageState,
}

/// An event to insert, stamped with the writer's clock.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRow {
    pub(crate) at: u64,
    pub(crate) event: LogEvent,
}

/// A channel whose head moved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeadRow {
    pub(crate) channel: ChannelId,
    pub(crate) head: Seq,
    pub(crate) messages: u64,
}

/// Everything a batch writes, as sets (one statement each).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Writes {
    pub(crate) new_messages: Vec<NewMessageRow>,
    /// Stored messages whose state changed (edited or deleted).
    pub(crate) changed_messages: Vec<(ChannelId, MessageId, MessageState)>,
    pub(crate) events: Vec<EventRow>,
    /// Stored entries that became tombstones.
    pub(crate) tombstones: Vec<(ChannelId, Seq)>,
    pub(crate) heads: Vec<HeadRow>,
    /// Locked channels that had no row and still have nothing: the row
    /// the lock created goes again (an append of which nothing commits
    /// writes nothing).
    pub(crate) unwritten: Vec<ChannelId>,
    /// Events through this seq go (count retention), a bounded step.
    pub(crate) prune: Vec<(ChannelId, Seq)>,
    /// The oldest this many messages are forgotten (dedupe memory).
    pub(crate) forget: Vec<(ChannelId, u64)>,
    /// Watermarks raised (one per key, the highest).
    pub(crate) receipts: Vec<(ChannelId, UserId, Seq)>,
}

impl Writes {
    /// Whether the batch changes nothing (then it needs no commit).
    pub(crate) fn is_empty(&self) -> bool {
        self.new_messages.is_empty()
            && self.changed_messages.is_empty()
            && self.events.is_empty()
            && self.tombstones.is_empty()
            && self.heads.is_empty()
            && self.unwritten.is_empty()
            && self.receipts.is_empty()
    }
}

/// A batch decided: an outcome per command (final once committed) and
/// what to write.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) outcomes: Vec<Result<StoreReply, StoreError>>,
    pub(crate) writes: Writes,
}

/// Where a tracked message's row is.
#[derive(Debug, Clone, Copy)]
enum Row {
    /// Stored before the batch; `changed` once an entry edits or deletes it.
    Stored { changed: bool },
    /// Inserted by the batch: `Writes::new_messages[i]`.
    New(usize),
}

/// A message the batch knows: remembered or appended.
#[derive(Debug)]
struct Tracked {
    author: String,
    state: MessageState,
    row: Row,
}

/// A channel as the batch moves it.
#[derive(Debug)]
struct Channel {
    found: ChannelRow,
    now: ChannelRow,
}

/// Decides every command of a batch in order (see the module docs).
pub(crate) fn plan(cmds: &[WriteCommand], facts: Facts, retention: Retention, now_ms: u64) -> Plan {
    Planner {
        channels: facts
            .locked
            .into_iter()
            .map(|(c, row)| {
                (
                    c,
                    Channel {
                        found: row,
                        now: row,
                    },
                )
            })
            .collect(),
        heads: facts.heads,
        messages: facts.messages,
        targets: facts
            .targets
            .into_iter()
            .map(|(k, (author, state))| {
                let row = Row::Stored { changed: false };
                (k, Tracked { author, state, row })
            })
            .collect(),
        receipts: facts.receipts,
        raised: BTreeMap::new(),
        changed: Vec::new(),
        writes: Writes::default(),
        new_events: HashMap::new(),
        now_ms,
    }
    .run(cmds, retention)
}

struct Planner {
    /// Locked channels.
    channels: HashMap<ChannelId, Channel>,
    /// Heads of receipt channels not locked.
    heads: HashMap<ChannelId, Seq>,
    messages: HashMap<MessageKey, SendAck>,
    targets: HashMap<TargetKey, Tracked>,
    receipts: HashMap<ReceiptKey, Seq>,
    /// Watermarks the batch raises.
    raised: BTreeMap<ReceiptKey, Seq>,
    /// Stored messages the batch edits or deletes, in order.
    changed: Vec<TargetKey>,
    writes: Writes,
    /// Where each event the batch appends sits in `writes.events`.
    new_events: HashMap<(ChannelId, Seq), usize>,
    now_ms: u64,
}

impl Planner {
    fn run(mut self, cmds: &[WriteCommand], retention: Retention) -> Plan {
        let outcomes = cmds.iter().map(|cmd| self.command(cmd)).collect();
        self.finish(retention);
        Plan {
            outcomes,
            writes: self.writes,
        }
    }

    fn command(&mut self, cmd: &WriteCommand) -> Result<StoreReply, StoreError> {
        match cmd {
            WriteCommand::Append {
                channel, entries, ..
            } => {
                if !self.channels.contains_key(channel) {
                    // The lock returns every channel it was given.
                    return Err(StoreError::Unavailable(format!(
                        "postgres: the head row of {channel} was not locked"
                    )));
                }
                let outcomes = entries
                    .iter()
                    .map(|entry| self.append(channel, entry))
                    .collect();
                Ok(StoreReply::Appended(outcomes))
            }
            WriteCommand::SetReceipt {
                channel,
                user,
                up_to,
            } => {
                let head = match self.channels.get(channel) {
                    Some(c) => c.now.head,
                    None => self.heads.get(channel).copied().unwrap_or(Seq::ZERO),
                };
                let key = (channel.clone(), user.clone());
                let current = self.receipts.get(&key).copied().unwrap_or(Seq::ZERO);
                let reply = decide_receipt(head, current, *up_to);
                if let StoreReply::Receipt { advanced: true, .. } = reply {
                    self.receipts.insert(key.clone(), *up_to);
                    self.raised.insert(key, *up_to);
                }
                Ok(reply)
            }
        }
    }

    fn append(&mut self, channel: &ChannelId, entry: &AppendEntry) -> AppendOutcome {
        match entry {
            AppendEntry::Message {
                author,
                client_msg_id,
                body,
                ts,
            } => {
                let key = (channel.clone(), author.clone(), client_msg_id.clone());
                if let Some(ack) = self.messages.get(&key) {
                    return AppendOutcome::Duplicate(Existing::Message(ack.clone()));
                }
                let (epoch, seq) = self.next(channel);
                let message_id = MessageId::minted(epoch, seq);
                self.messages.insert(
                    key,
                    SendAck {
                        message_id: message_id.clone(),
                        seq,
                        ts: *ts,
                    },
                );
                let state = MessageState::Live { body: seq };
                self.writes.new_messages.push(NewMessageRow {
                    channel: channel.clone(),
                    message_id: message_id.clone(),
                    author: author.clone(),
                    client_msg_id: client_msg_id.clone(),
                    seq,
                    ts: *ts,
                    state,
                });
                let row = Row::New(self.writes.new_messages.len() - 1);
                self.targets.insert(
                    (channel.clone(), message_id.clone()),
                    Tracked {
                        author: author.as_str().to_owned(),
                        state,
                        row,
                    },
                );
                if let Some(c) = self.channels.get_mut(channel) {
                    c.now.messages += 1;
                }
                self.commit(LogEvent::Message(NewMessage {
                    channel_id: channel.clone(),
                    seq,
                    message_id,
                    author_id: author.clone(),
                    client_msg_id: client_msg_id.clone(),
                    body: Some(body.clone()),
                    ts: *ts,
                }))
            }
            AppendEntry::Update {
                target,
                actor,
                rule,
                body,
            } => {
                let (_, seq) = self.next(channel);
                match self.modify(channel, target, actor, *rule, Modify::Update, seq) {
                    Err(outcome) => outcome,
                    Ok(()) => self.commit(LogEvent::Updated(MessageUpdated {
                        channel_id: channel.clone(),
                        seq,
                        message_id: target.clone(),
                        body: Some(body.clone()),
                    })),
                }
            }
            AppendEntry::Delete {
                target,
                actor,
                rule,
            } => {
                let (_, seq) = self.next(channel);
                match self.modify(channel, target, actor, *rule, Modify::Delete, seq) {
                    Err(outcome) => outcome,
                    Ok(()) => self.commit(LogEvent::Deleted(MessageDeleted {
                        channel_id: channel.clone(),
                        seq,
                        message_id: target.clone(),
                    })),
                }
            }
        }
    }

    /// The channel's epoch and the seq the next event would take.
    fn next(&self, channel: &ChannelId) -> (Epoch, Seq) {
        self.channels
            .get(channel)
            .map_or((Epoch(0), Seq(1)), |c| (c.now.epoch, c.now.head.next()))
    }

    /// Applies an edit or deletion at `seq` to its target: the rule, then
    /// the target's new state and the tombstone of the body it supersedes.
    fn modify(
        &mut self,
        channel: &ChannelId,
        target: &MessageId,
        actor: &UserId,
        rule: lockstep_core::store::ModifyRule,
        change: Modify,
        seq: Seq,
    ) -> Result<(), AppendOutcome> {
        let tracked = self.targets.get_mut(&(channel.clone(), target.clone()));
        let known = tracked.as_ref().map(|t| (t.author.as_str(), t.state));
        let superseded = decide_modify(known, actor, rule, change)?;
        if let Some(tracked) = tracked {
            tracked.state = change.leaves(seq);
            match &mut tracked.row {
                Row::New(i) => {
                    if let Some(row) = self.writes.new_messages.get_mut(*i) {
                        row.state = tracked.state;
                    }
                }
                Row::Stored { changed } => {
                    if !*changed {
                        *changed = true;
                        self.changed.push((channel.clone(), target.clone()));
                    }
                }
            }
        }
        self.drop_body(channel, superseded);
        Ok(())
    }

    /// The entry at `seq` becomes a tombstone: in memory when the batch
    /// appended it, else by an update of the stored row (if retained).
    fn drop_body(&mut self, channel: &ChannelId, seq: Seq) {
        match self.new_events.get(&(channel.clone(), seq)) {
            Some(&i) => {
                if let Some(row) = self.writes.events.get_mut(i) {
                    row.event.drop_body();
                }
            }
            None => self.writes.tombstones.push((channel.clone(), seq)),
        }
    }

    /// Records `event` at the head + 1 of its channel.
    fn commit(&mut self, event: LogEvent) -> AppendOutcome {
        let channel = event.channel_id().clone();
        let seq = event.seq();
        if let Some(c) = self.channels.get_mut(&channel) {
            c.now.head = seq;
        }
        self.new_events
            .insert((channel, seq), self.writes.events.len());
        self.writes.events.push(EventRow {
            at: self.now_ms,
            event: event.clone(),
        });
        AppendOutcome::Appended(event)
    }

    /// The final state of changed messages, heads, retention steps and
    /// watermarks.
    fn finish(&mut self, retention: Retention) {
        for (channel, id) in std::mem::take(&mut self.changed) {
            if let Some(t) = self.targets.get(&(channel.clone(), id.clone())) {
                self.writes.changed_messages.push((channel, id, t.state));
            }
        }
        let mut channels: Vec<(&ChannelId, &mut Channel)> = self.channels.iter_mut().collect();
        channels.sort_by(|a, b| a.0.cmp(b.0));
        for (channel, c) in channels {
            if c.now.head == c.found.head {
                if c.found.head == Seq::ZERO {
                    self.writes.unwritten.push(channel.clone());
                }
                continue;
            }
            if let Some(cut) = c.now.head.0.checked_sub(retention.events)
                && cut > 0
            {
                self.writes.prune.push((channel.clone(), Seq(cut)));
            }
            if let Some(excess) = c.now.messages.checked_sub(retention.remember)
                && excess > 0
            {
                let n = excess.min(PRUNE_STEP);
                self.writes.forget.push((channel.clone(), n));
                c.now.messages -= n;
            }
            self.writes.heads.push(HeadRow {
                channel: channel.clone(),
                head: c.now.head,
                messages: c.now.messages,
            });
        }
        self.writes.receipts = std::mem::take(&mut self.raised)
            .into_iter()
            .map(|((channel, user), up_to)| (channel, user, up_to))
            .collect();
    }
}
