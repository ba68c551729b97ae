//! Delivering a channel's events when other processes append to the same
//! store: one cursor per channel with local members, events ahead of it
//! held (bounded in bytes) until the gap before them is read from the store.
//!
//! The rule, kept here once: a room is sent a channel's events strictly in
//! seq order, each once. An event at or below the cursor is dropped; the
//! one right after it is sent and the cursor moves; one further ahead
//! waits. What is known to exist beyond the cursor and not held (a hint
//! from another process, a join's head, an event dropped from a full
//! buffer) is read from the store: at once after a hint, after a short wait
//! otherwise (the missing events are usually this process's own commits,
//! about to complete). This module only decides; the machine issues the
//! reads, arms the timers and broadcasts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::Instant;
use crate::ids::{ChannelId, Epoch, Seq};
use crate::store::{Page, StoreOpId};
use crate::wire::{LogEvent, PresenceChange, ReadReceipt, TypingNotice};

/// Who appends to the store the machine serves from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Writers {
    /// This machine alone: its own commits are the whole log, so each is
    /// broadcast as it completes and no cursor is kept.
    #[default]
    Alone,
    /// Other processes append to the same store (a PostgreSQL shared by N
    /// `lockstep-server` processes): each channel with local members is
    /// delivered from one cursor, own commits and others' alike, and each
    /// own commit is announced with [`ServerOutput::Committed`](crate::server::ServerOutput::Committed).
    Shared(SharedTail),
}

/// The settings of [`Writers::Shared`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedTail {
    /// How long an event ahead of the cursor waits for the ones before it
    /// before they are read from the store. Default 50 ms: own commits
    /// complete within it, and a gap that is real costs that much latency.
    pub gap_wait: Duration,
    /// Bytes of events (by [`LogEvent::wire_len`]) held ahead of one
    /// channel's cursor; past it the highest are dropped and read again
    /// later. Default 1 MiB.
    pub ahead_bytes_max: usize,
    /// Gap reads at the store at once, all channels together; more wait
    /// their turn in order, so a resync of thousands of channels does not
    /// flood the store or crowd out members' requests. Default 8.
    pub reads_max: usize,
    /// Who decides presence: each process for itself (the default) or an
    /// arbiter the processes share.
    pub presence: crate::server::PresenceScope,
}

impl Default for SharedTail {
    fn default() -> Self {
        SharedTail {
            gap_wait: Duration::from_millis(50),
            ahead_bytes_max: 1 << 20,
            reads_max: 8,
            presence: crate::server::PresenceScope::PerProcess,
        }
    }
}

/// Another process committed events `first..=last` of `channel`: a hint to
/// read them from the store, never the data itself. A lost hint costs
/// latency (the next hint or a resync reads the gap), never a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitHint {
    /// The channel.
    pub channel: ChannelId,
    /// The first seq committed.
    pub first: Seq,
    /// The last seq committed.
    pub last: Seq,
}

/// An ephemeral event of a channel that another process's members caused:
/// relayed as it is to this process's members (never stored; losing one
/// is harmless for typing, which clients expire by themselves, and read
/// watermarks, which come with the next join; a lost presence change
/// leaves this process's members with a stale member list until they
/// join again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// A user started or stopped typing: to the room but that user.
    Typing(TypingNotice),
    /// A user's read watermark advanced: to the whole room.
    Read(ReadReceipt),
    /// A user appeared in the channel, on any process (the arbiter's first
    /// claim): to the room but that user.
    PresenceJoin(PresenceChange),
    /// A user left the channel, from every process (the arbiter's last
    /// release): to the whole room.
    PresenceLeave(PresenceChange),
}

impl Relay {
    /// The channel it is about.
    #[must_use]
    pub fn channel(&self) -> &ChannelId {
        match self {
            Relay::Typing(t) => &t.channel_id,
            Relay::Read(r) => &r.channel_id,
            Relay::PresenceJoin(p) | Relay::PresenceLeave(p) => &p.channel_id,
        }
    }
}

/// Where a room's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// No join read has said where the log stands yet: events wait.
    Unknown,
    /// Every event of `epoch` up to `seq` was sent to the room.
    At { epoch: Epoch, seq: Seq },
}

/// Whether the gap is being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Nothing planned.
    Idle,
    /// A read is planned when the timer armed for this instant fires.
    Waiting(Instant),
    /// A read waits for a free slot (`SharedTail::reads_max`).
    Queued,
    /// This read is at the store; `asked` is what was known when it left.
    Reading { op: StoreOpId, asked: Seq },
}

/// One channel with local members.
#[derive(Debug, Clone)]
struct Tail {
    cursor: Cursor,
    ahead: BTreeMap<Seq, LogEvent>,
    ahead_bytes: usize,
    /// The highest seq known to exist in the cursor's epoch (not below the
    /// cursor once it is known).
    known: Seq,
    /// Where the cursor last jumped to without broadcasting what it
    /// skipped (the first join read, a reset): a join whose read ended
    /// below it reads again, so no member misses what was skipped.
    jumped: Seq,
    fill: Fill,
}

/// What the machine must do for a channel after a change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    /// Events to broadcast, in order.
    pub(crate) deliver: Vec<LogEvent>,
    /// What to do about a gap.
    pub(crate) then: Then,
}

/// The gap action of a [`Step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Nothing (no gap, or it is already being filled).
    Nothing,
    /// Read the events after this seq now; report the op with
    /// [`Tails::reading`].
    Read(Seq),
    /// Arm the channel's gap timer for this instant.
    Arm(Instant),
}

impl Step {
    fn nothing() -> Self {
        Step {
            deliver: Vec::new(),
            then: Then::Nothing,
        }
    }
}

/// Every tailed channel.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tails {
    channels: BTreeMap<ChannelId, Tail>,
    /// Gap reads at the store (their channel may have closed since).
    reads: BTreeSet<StoreOpId>,
    /// Channels whose read waits for a slot, oldest first (a closed one
    /// is skipped when its turn comes).
    queued: VecDeque<ChannelId>,
}

impl Tails {
    /// `channel` got its first local member.
    pub(crate) fn open(&mut self, channel: &ChannelId) {
        self.channels.entry(channel.clone()).or_insert(Tail {
            cursor: Cursor::Unknown,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            known: Seq(0),
            jumped: Seq(0),
            fill: Fill::Idle,
        });
    }

    /// `channel` has no local member any more: it is not tailed. Returns
    /// the gap timer to cancel, if one was armed.
    pub(crate) fn close(&mut self, channel: &ChannelId) -> Option<Instant> {
        match self.channels.remove(channel)?.fill {
            Fill::Waiting(at) => Some(at),
            Fill::Queued => {
                self.queued.retain(|c| c != channel);
                None
            }
            Fill::Idle | Fill::Reading { .. } => None,
        }
    }

    /// True when the cursor of `channel` jumped past `head` of `epoch`
    /// (see `Tail::jumped`).
    pub(crate) fn jumped_past(&self, channel: &ChannelId, epoch: Epoch, head: Seq) -> bool {
        self.channels.get(channel).is_some_and(|t| {
            matches!(t.cursor, Cursor::At { epoch: e, .. } if e == epoch) && head < t.jumped
        })
    }

    /// Tailed channels.
    pub(crate) fn len(&self) -> usize {
        self.channels.len()
    }

    /// The cursor of `channel`, when it is tailed and known.
    pub(crate) fn cursor(&self, channel: &ChannelId) -> Option<(Epoch, Seq)> {
        match self.channels.get(channel)?.cursor {
            Cursor::At { epoch, seq } => Some((epoch, seq)),
            Cursor::Unknown => None,
        }
    }

    /// The tailed channels, in order.
    pub(crate) fn channels(&self) -> impl Iterator<Item = &ChannelId> {
        self.channels.keys()
    }

    /// This process committed `event` (in the epoch of the cursor).
    pub(crate) fn offer(
        &mut self,
        channel: &ChannelId,
        event: LogEvent,
        cfg: &SharedTail,
        now: Instant,
    ) -> Step {
        let Some(t) = self.channels.get_mut(channel) else {
            return Step::nothing();
        };
        if let Cursor::At { seq, .. } = t.cursor {
            if event.seq() <= seq {
                return Step::nothing();
            }
        }
        t.hold(event, cfg.ahead_bytes_max);
        t.step(cfg, now, false)
    }

    /// Another process committed up to `last` (a hint).
    pub(crate) fn hinted(
        &mut self,
        channel: &ChannelId,
        last: Seq,
        cfg: &SharedTail,
        now: Instant,
    ) -> Step {
        let Some(t) = self.channels.get_mut(channel) else {
            return Step::nothing();
        };
        t.known = t.known.max(last);
        t.step(cfg, now, true)
    }

    /// A join read found the log at `epoch`, `head`.
    pub(crate) fn learned(
        &mut self,
        channel: &ChannelId,
        epoch: Epoch,
        head: Seq,
        cfg: &SharedTail,
        now: Instant,
    ) -> Step {
        let Some(t) = self.channels.get_mut(channel) else {
            return Step::nothing();
        };
        match t.cursor {
            Cursor::At { epoch: e, .. } if e == epoch => {
                t.known = t.known.max(head);
            }
            // The first read: start at its head; what was held beyond it
            // stays held.
            Cursor::Unknown => t.start(epoch, head),
            // The log was reset: start at its head, as a join does (a
            // member learns of a reset when it joins again).
            Cursor::At { .. } => t.reset(epoch, head),
        }
        t.step(cfg, now, false)
    }

    /// Resync: read every tailed channel's log past its cursor now, whatever
    /// is known (the safety net for lost hints).
    pub(crate) fn resync(&mut self, channel: &ChannelId) -> Then {
        match self.channels.get(channel) {
            Some(Tail {
                cursor: Cursor::At { seq, .. },
                fill: Fill::Idle | Fill::Waiting(_),
                ..
            }) => Then::Read(*seq),
            _ => Then::Nothing,
        }
    }

    /// The gap timer armed for `at` fired.
    pub(crate) fn timer(
        &mut self,
        channel: &ChannelId,
        at: Instant,
        cfg: &SharedTail,
        now: Instant,
    ) -> Step {
        let Some(t) = self.channels.get_mut(channel) else {
            return Step::nothing();
        };
        if t.fill != Fill::Waiting(at) {
            return Step::nothing();
        }
        t.fill = Fill::Idle;
        t.step(cfg, now, true)
    }

    /// Whether a gap read may go to the store now (fewer than `max` are).
    pub(crate) fn slot_free(&self, max: usize) -> bool {
        self.reads.len() < max.max(1)
    }

    /// The read of `channel` waits for a slot. Returns the gap timer to
    /// cancel, if one was armed.
    pub(crate) fn queue(&mut self, channel: &ChannelId) -> Option<Instant> {
        let t = self.channels.get_mut(channel)?;
        let was = std::mem::replace(&mut t.fill, Fill::Queued);
        self.queued.push_back(channel.clone());
        match was {
            Fill::Waiting(at) => Some(at),
            Fill::Idle | Fill::Queued | Fill::Reading { .. } => None,
        }
    }

    /// The next queued channel whose read may start, and where it starts.
    pub(crate) fn next_queued(&mut self) -> Option<(ChannelId, Seq)> {
        while let Some(channel) = self.queued.pop_front() {
            if let Some(Tail {
                cursor: Cursor::At { seq, .. },
                fill: Fill::Queued,
                ..
            }) = self.channels.get(&channel)
            {
                let seq = *seq;
                return Some((channel, seq));
            }
        }
        None
    }

    /// The read `op` went to the store for `channel`. Returns the gap
    /// timer to cancel, if one was armed.
    pub(crate) fn reading(&mut self, channel: &ChannelId, op: StoreOpId) -> Option<Instant> {
        self.reads.insert(op);
        let t = self.channels.get_mut(channel)?;
        let was = std::mem::replace(&mut t.fill, Fill::Reading { op, asked: t.known });
        match was {
            Fill::Waiting(at) => Some(at),
            Fill::Idle | Fill::Queued | Fill::Reading { .. } => None,
        }
    }

    /// Gap reads waiting for a slot.
    pub(crate) fn queued_reads(&self) -> usize {
        self.queued.len()
    }

    /// The read `op` of `channel` completed (`None`: it failed).
    pub(crate) fn read(
        &mut self,
        channel: &ChannelId,
        op: StoreOpId,
        page: Option<Page>,
        cfg: &SharedTail,
        now: Instant,
    ) -> Step {
        self.reads.remove(&op);
        let Some(t) = self.channels.get_mut(channel) else {
            return Step::nothing();
        };
        let Fill::Reading { op: ours, asked } = t.fill else {
            return Step::nothing();
        };
        if ours != op {
            return Step::nothing();
        }
        t.fill = Fill::Idle;
        let Some(page) = page else {
            // Try again after the wait.
            return t.step(cfg, now, false);
        };
        let Cursor::At { epoch, seq } = t.cursor else {
            return t.step(cfg, now, false);
        };
        if page.epoch != epoch {
            t.reset(page.epoch, page.head);
            return t.step(cfg, now, false);
        }
        let progressed = page.events.last().is_some_and(|e| e.seq() > seq);
        if !progressed && t.known == asked {
            // Nothing beyond what the read saw is known: what was known
            // beyond its head (a hint from a reset log) is forgotten, so a
            // wrong hint cannot make the tail read forever.
            t.known = t.known.min(page.head.max(seq));
        }
        t.known = t.known.max(page.head);
        let mut deliver = Vec::new();
        let mut at = seq;
        for event in page.events {
            let s = event.seq();
            // Past retention the page may start later than the cursor's
            // next: those events are gone for everyone (a client's history
            // read says so), and the cursor moves on.
            if s <= at {
                continue;
            }
            if let Some(held) = t.ahead.remove(&s) {
                t.ahead_bytes = t.ahead_bytes.saturating_sub(held.wire_len());
            }
            at = s;
            deliver.push(event);
        }
        t.cursor = Cursor::At { epoch, seq: at };
        let mut step = t.step(cfg, now, page.more);
        deliver.append(&mut step.deliver);
        step.deliver = deliver;
        step
    }
}

impl Tail {
    /// Holds an event ahead of the cursor, dropping the highest held when
    /// the buffer is full (they are read again: `known` covers them).
    fn hold(&mut self, event: LogEvent, max_bytes: usize) {
        let s = event.seq();
        self.known = self.known.max(s);
        let len = event.wire_len();
        if let Some(old) = self.ahead.insert(s, event) {
            self.ahead_bytes = self.ahead_bytes.saturating_sub(old.wire_len());
        }
        self.ahead_bytes = self.ahead_bytes.saturating_add(len);
        while self.ahead_bytes > max_bytes {
            let Some((_, dropped)) = self.ahead.pop_last() else {
                break;
            };
            self.ahead_bytes = self.ahead_bytes.saturating_sub(dropped.wire_len());
        }
    }

    /// The first read found the log at `epoch`, `head`: nothing before it
    /// is owed; events held or known beyond it still are.
    fn start(&mut self, epoch: Epoch, head: Seq) {
        self.cursor = Cursor::At { epoch, seq: head };
        self.known = self.known.max(head);
        self.jumped = head;
    }

    /// The log is at `epoch`, `head` (a new epoch): nothing before it is
    /// owed, and nothing held or known of the old epoch counts.
    fn reset(&mut self, epoch: Epoch, head: Seq) {
        self.ahead.clear();
        self.ahead_bytes = 0;
        self.known = head;
        self.start(epoch, head);
    }

    /// Sends what follows the cursor, then decides about what is missing:
    /// read now when `urgent` (a hint, a fired timer, a page with more),
    /// else after the wait.
    fn step(&mut self, cfg: &SharedTail, now: Instant, urgent: bool) -> Step {
        let Cursor::At { epoch, mut seq } = self.cursor else {
            return Step::nothing();
        };
        let mut deliver = Vec::new();
        // Held events the cursor already passed are dropped.
        while let Some(entry) = self.ahead.first_entry() {
            let s = *entry.key();
            if s > seq.next() {
                break;
            }
            let event = entry.remove();
            self.ahead_bytes = self.ahead_bytes.saturating_sub(event.wire_len());
            if s == seq.next() {
                seq = s;
                deliver.push(event);
            }
        }
        self.cursor = Cursor::At { epoch, seq };
        self.known = self.known.max(seq);
        let gap = self.known > seq || !self.ahead.is_empty();
        let then = match (gap, self.fill) {
            (false, _) | (true, Fill::Reading { .. } | Fill::Queued) => Then::Nothing,
            (true, Fill::Idle | Fill::Waiting(_)) if urgent => Then::Read(seq),
            (true, Fill::Waiting(_)) => Then::Nothing,
            (true, Fill::Idle) => {
                let at = now.saturating_add(cfg.gap_wait);
                self.fill = Fill::Waiting(at);
                Then::Arm(at)
            }
        };
        Step { deliver, then }
    }
}
