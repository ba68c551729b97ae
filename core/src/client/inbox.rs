//! One channel's inbound log stream: strictly in order, exactly once.

use super::vecmap::VecMap;

use crate::ids::{Epoch, Seq};
use crate::wire::{HistoryAck, LogEvent};

/// How far the app has been given a channel's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// Never joined: the first join loads a recent backlog.
    Fresh,
    /// Delivered everything up to `last` of the log `epoch`.
    At {
        /// The log's identity.
        epoch: Epoch,
        /// The last delivered (or explicitly skipped) seq.
        last: Seq,
    },
}

/// What the inbox asks the client to tell the app, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InboxOut {
    /// Hand this event to the app.
    Deliver(LogEvent),
    /// These seqs are gone for good.
    Truncated {
        /// First missing.
        from: Seq,
        /// Last missing.
        to: Seq,
    },
    /// The log was reset.
    Reset(Epoch),
}

/// The delivery position plus a bounded buffer of early arrivals.
#[derive(Debug)]
pub(crate) struct Inbox {
    position: Position,
    buffer: VecMap<Seq, LogEvent>,
    /// The highest seq known to exist (from heads and arrivals), so a gap
    /// is remembered even after the buffer was dropped.
    known_max: Seq,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            position: Position::Fresh,
            buffer: VecMap::new(),
            known_max: Seq::ZERO,
        }
    }
}

impl Inbox {
    /// The position to resume from in a `channel:join`.
    pub(crate) fn position(&self) -> Position {
        self.position
    }

    /// Whether events are known to be missing (the client should page
    /// history from [`Inbox::last`]).
    pub(crate) fn has_gap(&self) -> bool {
        match self.position {
            Position::Fresh => false,
            Position::At { last, .. } => !self.buffer.is_empty() || last < self.known_max,
        }
    }

    /// The last delivered seq (0 before any).
    pub(crate) fn last(&self) -> Seq {
        match self.position {
            Position::Fresh => Seq::ZERO,
            Position::At { last, .. } => last,
        }
    }

    /// Early arrivals held back.
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Follows `epoch` from `last`: everything up to it was delivered
    /// before (by an earlier machine), so only what follows is wanted.
    pub(crate) fn resume(&mut self, epoch: Epoch, last: Seq) {
        self.start(epoch, last, 0);
    }

    /// Starts following `epoch` at `head`, skipping to the recent `backlog`.
    fn start(&mut self, epoch: Epoch, head: Seq, backlog: u64) {
        self.buffer.clear();
        self.position = Position::At {
            epoch,
            last: Seq(head.0.saturating_sub(backlog)),
        };
        self.known_max = head;
    }

    /// Applies a join reply's position and events.
    pub(crate) fn on_join(
        &mut self,
        epoch: Epoch,
        head: Seq,
        events: Vec<LogEvent>,
        backlog: u64,
        buffer_max: usize,
        out: &mut Vec<InboxOut>,
    ) {
        self.align_epoch(epoch, head, backlog, out);
        self.known_max = self.known_max.max(head);
        for e in events {
            self.ingest(e, buffer_max, out);
        }
    }

    fn align_epoch(&mut self, epoch: Epoch, head: Seq, backlog: u64, out: &mut Vec<InboxOut>) {
        match self.position {
            Position::Fresh => self.start(epoch, head, backlog),
            Position::At { epoch: mine, .. } if mine != epoch => {
                out.push(InboxOut::Reset(epoch));
                self.start(epoch, head, backlog);
            }
            Position::At { .. } => {}
        }
    }

    /// Takes one event (live or from a page): delivers it and whatever it
    /// unblocks, buffers it when early, drops it when already delivered.
    pub(crate) fn ingest(&mut self, event: LogEvent, buffer_max: usize, out: &mut Vec<InboxOut>) {
        let Position::At { last, .. } = self.position else {
            return;
        };
        let seq = event.seq();
        self.known_max = self.known_max.max(seq);
        if seq <= last {
            return;
        }
        if seq == last.next() {
            self.advance(seq);
            out.push(InboxOut::Deliver(event));
            self.drain(out);
        } else {
            self.buffer.insert(seq, event);
            if self.buffer.len() > buffer_max {
                // Overflow: forget the early arrivals; `known_max` keeps
                // the gap visible so history refetches them.
                self.buffer.clear();
            }
        }
    }

    /// Sabotage: forgets that anything is missing before `seq`, so it is
    /// delivered at once.
    #[cfg(feature = "sabotage")]
    pub(crate) fn skip_gap_before(&mut self, seq: Seq) {
        if seq > self.last().next() {
            self.advance(Seq(seq.0 - 1));
        }
    }

    fn advance(&mut self, to: Seq) {
        if let Position::At { last, .. } = &mut self.position {
            *last = to;
        }
    }

    fn drain(&mut self, out: &mut Vec<InboxOut>) {
        loop {
            let last = self.last();
            let Some((&first, _)) = self.buffer.first_key_value() else {
                break;
            };
            if first <= last {
                self.buffer.pop_first();
            } else if first == last.next() {
                let Some((seq, e)) = self.buffer.pop_first() else {
                    break;
                };
                self.advance(seq);
                out.push(InboxOut::Deliver(e));
            } else {
                break;
            }
        }
    }

    /// Declares `last+1..=to` lost and moves past it.
    fn truncate_to(&mut self, to: Seq, out: &mut Vec<InboxOut>) {
        let last = self.last();
        if to > last {
            out.push(InboxOut::Truncated {
                from: last.next(),
                to,
            });
            self.advance(to);
            self.drain(out);
        }
    }

    /// Applies a history page asked from [`Inbox::last`]. A page that starts
    /// past `last+1`, or a final page that leaves a hole, means the server
    /// no longer has those events: that is reported, never skipped silently.
    pub(crate) fn on_history(
        &mut self,
        page: HistoryAck,
        backlog: u64,
        buffer_max: usize,
        out: &mut Vec<InboxOut>,
    ) {
        let HistoryAck {
            epoch,
            head_seq: head,
            events,
            more,
            ..
        } = page;
        if matches!(self.position, Position::At { epoch: mine, .. } if mine != epoch) {
            self.align_epoch(epoch, head, backlog, out);
            return;
        }
        self.align_epoch(epoch, head, backlog, out);
        self.known_max = self.known_max.max(head);
        let before = self.last();
        if let Some(first) = events.first().map(LogEvent::seq) {
            self.truncate_to(Seq(first.0.saturating_sub(1)), out);
        }
        for e in events {
            self.ingest(e, buffer_max, out);
        }
        if !more {
            // Everything up to the head was in this final page: what is
            // still missing below it is gone.
            let below_buffer = self
                .buffer
                .first_key_value()
                .map(|(b, _)| Seq(b.0.saturating_sub(1)));
            self.truncate_to(below_buffer.map_or(head, |b| b.min(head)), out);
        }
        if self.last() == before {
            // The page brought nothing new. If the log already reached past
            // the hole when it was read, the server cannot fill the hole:
            // say so and stop asking. A page read before the hole's events
            // were committed proves nothing (found by the lab: seed 33,
            // datagrams, where a stale page reported #3 truncated); the gap
            // check asks again.
            if let Some(b) = self.buffer.first_key_value().map(|(b, _)| *b) {
                if head.0 >= b.0.saturating_sub(1) {
                    self.truncate_to(Seq(b.0.saturating_sub(1)), out);
                }
            }
            if self.buffer.is_empty() {
                self.known_max = self.last();
            }
        }
    }
}
