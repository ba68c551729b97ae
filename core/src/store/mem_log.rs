//! One channel's log inside [`MemStore`](super::MemStore): events, message
//! metadata, dedupe keys and read watermarks, all bounded. An edit or a
//! deletion turns the entry that held the message's body into a tombstone,
//! so only the latest body of a live message is kept.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::store::{
    AppendEntry, AppendOutcome, Existing, MessageState, Modify, ModifyRule, Page, READ_LIMIT_MAX,
    ReadFrom, StoreReply, decide_modify, decide_receipt, fitting,
};
use crate::wire::{Body, LogEvent, MessageDeleted, MessageUpdated, NewMessage, SendAck};

/// What the store remembers about a message after its event may have been
/// dropped from retained history: enough to dedupe, authorize and answer.
#[derive(Debug, Clone)]
struct MessageMeta {
    author: UserId,
    client_msg_id: ClientMsgId,
    seq: Seq,
    ts: u64,
    state: MessageState,
}

/// A channel log's bounds (see [`MemStoreConfig`](super::MemStoreConfig)).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Most events kept.
    pub(super) retain: usize,
    /// Oldest event kept, in ms behind the newest append time.
    pub(super) retain_age_ms: Option<u64>,
    /// Most messages remembered for dedupe, edits and deletes.
    pub(super) remember: usize,
}

/// A retained event, the append time it was committed at (the `ts` of
/// the latest message appended), which age retention measures, and its
/// [`LogEvent::wire_len`], kept so that paging by bytes does not encode
/// every event of every page again.
#[derive(Debug, Clone)]
struct Stored {
    at: u64,
    event: LogEvent,
    wire_len: usize,
}

/// A channel log with bounded retention and bounded dedupe memory.
#[derive(Debug, Clone)]
pub(super) struct ChannelLog {
    channel: ChannelId,
    epoch: Epoch,
    head: Seq,
    /// The newest retained events; contiguous, ending at `head`.
    events: VecDeque<Stored>,
    limits: Limits,
    /// The append clock: the newest `ts` of a message appended.
    now: u64,
    /// The newest `remember` messages by id, with their creation order.
    messages: BTreeMap<MessageId, MessageMeta>,
    message_order: VecDeque<MessageId>,
    dedupe: BTreeMap<(UserId, ClientMsgId), MessageId>,
    receipts: BTreeMap<UserId, Seq>,
}

impl ChannelLog {
    pub(super) fn new(channel: ChannelId, epoch: Epoch, limits: Limits) -> Self {
        ChannelLog {
            channel,
            epoch,
            head: Seq::ZERO,
            events: VecDeque::new(),
            limits,
            now: 0,
            messages: BTreeMap::new(),
            message_order: VecDeque::new(),
            dedupe: BTreeMap::new(),
            receipts: BTreeMap::new(),
        }
    }

    pub(super) fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub(super) fn head(&self) -> Seq {
        self.head
    }

    pub(super) fn events(&self) -> impl DoubleEndedIterator<Item = &LogEvent> + Clone {
        self.events.iter().map(|s| &s.event)
    }

    /// The retained event at `seq`, if any.
    pub(super) fn event(&self, seq: Seq) -> Option<&LogEvent> {
        self.events.get(self.index(seq)?).map(|s| &s.event)
    }

    /// Where the event at `seq` sits in `events`, if it is retained.
    fn index(&self, seq: Seq) -> Option<usize> {
        let offset = seq.0.checked_sub(self.oldest_retained().0)?;
        usize::try_from(offset)
            .ok()
            .filter(|i| *i < self.events.len())
    }

    /// The lowest readable seq; `head + 1` when nothing is retained.
    pub(super) fn oldest_retained(&self) -> Seq {
        Seq(self.head.0 + 1 - self.events.len() as u64)
    }

    pub(super) fn read(&self, from: ReadFrom, limit: u64, max_bytes: usize) -> Page {
        let limit = usize::try_from(limit.min(READ_LIMIT_MAX)).unwrap_or(usize::MAX);
        let oldest = self.oldest_retained();
        let events: Vec<LogEvent> = match from {
            ReadFrom::After(after) => {
                let start = after.0.saturating_add(1).max(oldest.0);
                // `start >= oldest` here, so the index is inside the deque.
                let skip = usize::try_from(start - oldest.0).unwrap_or(usize::MAX);
                let window = self.events.iter().skip(skip).take(limit);
                let n = fitting(window.clone().map(|s| s.wire_len), max_bytes);
                window.take(n).map(|s| s.event.clone()).collect()
            }
            ReadFrom::Latest => {
                let window = self.events.iter().rev().take(limit);
                let n = fitting(window.clone().map(|s| s.wire_len), max_bytes);
                let mut newest: Vec<LogEvent> = window.take(n).map(|s| s.event.clone()).collect();
                newest.reverse();
                newest
            }
        };
        Page::new(self.epoch, events, self.head, oldest)
    }

    pub(super) fn append(&mut self, entry: AppendEntry) -> AppendOutcome {
        match entry {
            AppendEntry::Message {
                author,
                client_msg_id,
                body,
                ts,
            } => self.append_message(author, client_msg_id, body, ts),
            AppendEntry::Update {
                target,
                actor,
                rule,
                body,
            } => self.append_update(target, &actor, rule, body),
            AppendEntry::Delete {
                target,
                actor,
                rule,
            } => self.append_delete(target, &actor, rule),
        }
    }

    fn append_message(
        &mut self,
        author: UserId,
        client_msg_id: ClientMsgId,
        body: Body,
        ts: u64,
    ) -> AppendOutcome {
        let key = (author, client_msg_id);
        if let Some(meta) = self
            .dedupe
            .get(&key)
            .and_then(|id| self.messages.get(id).map(|m| (id, m)))
        {
            let (id, meta) = meta;
            return AppendOutcome::Duplicate(Existing::Message(SendAck {
                message_id: id.clone(),
                seq: meta.seq,
                ts: meta.ts,
            }));
        }
        let (author, client_msg_id) = key;
        let seq = self.head.next();
        let message_id = MessageId::minted(self.epoch, seq);
        let event = LogEvent::Message(NewMessage {
            channel_id: self.channel.clone(),
            seq,
            message_id: message_id.clone(),
            author_id: author.clone(),
            client_msg_id: client_msg_id.clone(),
            body: Some(body),
            ts,
        });
        self.dedupe
            .insert((author.clone(), client_msg_id.clone()), message_id.clone());
        self.messages.insert(
            message_id.clone(),
            MessageMeta {
                author,
                client_msg_id,
                seq,
                ts,
                state: MessageState::Live { body: seq },
            },
        );
        self.message_order.push_back(message_id);
        self.forget_beyond_memory();
        self.now = self.now.max(ts);
        self.commit(event)
    }

    fn append_update(
        &mut self,
        target: MessageId,
        actor: &UserId,
        rule: ModifyRule,
        body: Body,
    ) -> AppendOutcome {
        let seq = self.head.next();
        let superseded = match self.modify(&target, actor, rule, Modify::Update, seq) {
            Ok(superseded) => superseded,
            Err(outcome) => return outcome,
        };
        self.drop_body(superseded);
        self.commit(LogEvent::Updated(MessageUpdated {
            channel_id: self.channel.clone(),
            seq,
            message_id: target,
            body: Some(body),
        }))
    }

    fn append_delete(
        &mut self,
        target: MessageId,
        actor: &UserId,
        rule: ModifyRule,
    ) -> AppendOutcome {
        let seq = self.head.next();
        let superseded = match self.modify(&target, actor, rule, Modify::Delete, seq) {
            Ok(superseded) => superseded,
            Err(outcome) => return outcome,
        };
        self.drop_body(superseded);
        self.commit(LogEvent::Deleted(MessageDeleted {
            channel_id: self.channel.clone(),
            seq,
            message_id: target,
        }))
    }

    /// Applies the rule of an edit or deletion at `seq` to the remembered
    /// target: on success its state moves on and the entry whose body it
    /// superseded is returned.
    fn modify(
        &mut self,
        target: &MessageId,
        actor: &UserId,
        rule: ModifyRule,
        change: Modify,
        seq: Seq,
    ) -> Result<Seq, AppendOutcome> {
        let meta = self.messages.get_mut(target);
        let known = meta.as_ref().map(|m| (m.author.as_str(), m.state));
        let superseded = decide_modify(known, actor, rule, change)?;
        if let Some(meta) = meta {
            meta.state = change.leaves(seq);
        }
        Ok(superseded)
    }

    pub(super) fn set_receipt(&mut self, user: UserId, up_to: Seq) -> StoreReply {
        let current = self.receipts.get(&user).copied().unwrap_or(Seq::ZERO);
        let reply = decide_receipt(self.head, current, up_to);
        if let StoreReply::Receipt { advanced: true, .. } = reply {
            self.receipts.insert(user, up_to);
        }
        reply
    }

    /// Sabotage: forgets every dedupe key, so a retried send is appended again.
    #[cfg(feature = "sabotage")]
    pub(super) fn forget_dedupe_keys(&mut self) {
        self.dedupe.clear();
    }

    /// Records `event` at `head + 1` and drops what falls out of retention
    /// (by count, and by age on the append clock).
    fn commit(&mut self, event: LogEvent) -> AppendOutcome {
        self.head = event.seq();
        self.events.push_back(Stored {
            at: self.now,
            wire_len: event.wire_len(),
            event: event.clone(),
        });
        let cutoff = self
            .limits
            .retain_age_ms
            .map_or(0, |age| self.now.saturating_sub(age));
        while self.events.len() > self.limits.retain
            || self.events.front().is_some_and(|s| s.at < cutoff)
        {
            self.events.pop_front();
        }
        AppendOutcome::Appended(event)
    }

    /// Makes the retained entry at `seq` a tombstone: a later edit or the
    /// deletion superseded the body it holds.
    fn drop_body(&mut self, seq: Seq) {
        if let Some(stored) = self.index(seq).and_then(|i| self.events.get_mut(i)) {
            stored.event.drop_body();
            stored.wire_len = stored.event.wire_len();
        }
    }

    fn forget_beyond_memory(&mut self) {
        while self.message_order.len() > self.limits.remember {
            let Some(old) = self.message_order.pop_front() else {
                break;
            };
            if let Some(meta) = self.messages.remove(&old) {
                self.dedupe.remove(&(meta.author, meta.client_msg_id));
            }
        }
    }
}
