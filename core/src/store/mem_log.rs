//! One channel's log inside [`MemStore`](super::MemStore): events, message
//! metadata, dedupe keys and read watermarks, all bounded.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::store::{
    AppendEntry, AppendOutcome, Existing, ModifyRule, Page, READ_LIMIT_MAX, ReadFrom, Refusal,
    StoreReply, fitting,
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

#[derive(Debug, Clone, Copy)]
enum MessageState {
    Live,
    Deleted { seq: Seq },
}

/// A channel log with bounded retention and bounded dedupe memory.
#[derive(Debug, Clone)]
pub(super) struct ChannelLog {
    channel: ChannelId,
    epoch: Epoch,
    head: Seq,
    /// The newest `retain` events; contiguous, ending at `head`.
    events: VecDeque<LogEvent>,
    retain: usize,
    /// The newest `remember` messages by id, with their creation order.
    messages: BTreeMap<MessageId, MessageMeta>,
    message_order: VecDeque<MessageId>,
    remember: usize,
    dedupe: BTreeMap<(UserId, ClientMsgId), MessageId>,
    receipts: BTreeMap<UserId, Seq>,
}

impl ChannelLog {
    pub(super) fn new(channel: ChannelId, epoch: Epoch, retain: usize, remember: usize) -> Self {
        ChannelLog {
            channel,
            epoch,
            head: Seq::ZERO,
            events: VecDeque::new(),
            retain,
            messages: BTreeMap::new(),
            message_order: VecDeque::new(),
            remember,
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

    pub(super) fn events(&self) -> impl Iterator<Item = &LogEvent> {
        self.events.iter()
    }

    /// The retained event at `seq`, if any.
    pub(super) fn event(&self, seq: Seq) -> Option<&LogEvent> {
        let offset = seq.0.checked_sub(self.oldest_retained().0)?;
        self.events.get(usize::try_from(offset).ok()?)
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
                let n = fitting(window.clone().map(LogEvent::wire_len), max_bytes);
                window.take(n).cloned().collect()
            }
            ReadFrom::Latest => {
                let window = self.events.iter().rev().take(limit);
                let n = fitting(window.clone().map(LogEvent::wire_len), max_bytes);
                let mut newest: Vec<LogEvent> = window.take(n).cloned().collect();
                newest.reverse();
                newest
            }
        };
        let last = events.last().map_or(Seq::ZERO, LogEvent::seq);
        Page {
            epoch: self.epoch,
            more: !events.is_empty() && last < self.head,
            events,
            head: self.head,
            oldest_retained: oldest,
        }
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
                state: MessageState::Live,
            },
        );
        self.message_order.push_back(message_id);
        self.forget_beyond_memory();
        self.commit(event)
    }

    fn append_update(
        &mut self,
        target: MessageId,
        actor: &UserId,
        rule: ModifyRule,
        body: Body,
    ) -> AppendOutcome {
        // Existence (and not deleted) is checked before authorship.
        let Some(meta) = self.messages.get(&target) else {
            return AppendOutcome::Refused(Refusal::NotFound);
        };
        if let MessageState::Deleted { .. } = meta.state {
            return AppendOutcome::Refused(Refusal::NotFound);
        }
        if !allowed(rule, &meta.author, actor) {
            return AppendOutcome::Refused(Refusal::Forbidden);
        }
        let seq = self.head.next();
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
        let Some(meta) = self.messages.get_mut(&target) else {
            return AppendOutcome::Refused(Refusal::NotFound);
        };
        if !allowed(rule, &meta.author, actor) {
            return AppendOutcome::Refused(Refusal::Forbidden);
        }
        if let MessageState::Deleted { seq } = meta.state {
            return AppendOutcome::Duplicate(Existing::Deletion { seq });
        }
        meta.state = MessageState::Deleted { seq };
        self.commit(LogEvent::Deleted(MessageDeleted {
            channel_id: self.channel.clone(),
            seq,
            message_id: target,
        }))
    }

    pub(super) fn set_receipt(&mut self, user: UserId, up_to: Seq) -> StoreReply {
        if up_to > self.head {
            return StoreReply::Refused(Refusal::BeyondHead { head: self.head });
        }
        let current = self.receipts.entry(user).or_insert(Seq::ZERO);
        let advanced = up_to > *current;
        if advanced {
            *current = up_to;
        }
        StoreReply::Receipt {
            up_to: *current,
            advanced,
        }
    }

    /// Sabotage: forgets every dedupe key, so a retried send is appended again.
    #[cfg(feature = "sabotage")]
    pub(super) fn forget_dedupe_keys(&mut self) {
        self.dedupe.clear();
    }

    /// Records `event` at `head + 1` and drops what falls out of retention.
    fn commit(&mut self, event: LogEvent) -> AppendOutcome {
        self.head = event.seq();
        self.events.push_back(event.clone());
        while self.events.len() > self.retain {
            self.events.pop_front();
        }
        AppendOutcome::Appended(event)
    }

    fn forget_beyond_memory(&mut self) {
        while self.message_order.len() > self.remember {
            let Some(old) = self.message_order.pop_front() else {
                break;
            };
            if let Some(meta) = self.messages.remove(&old) {
                self.dedupe.remove(&(meta.author, meta.client_msg_id));
            }
        }
    }
}

fn allowed(rule: ModifyRule, author: &UserId, actor: &UserId) -> bool {
    match rule {
        ModifyRule::AuthorOnly => author == actor,
        ModifyRule::Anyone => true,
    }
}
