//! A plain client's unacknowledged messages (and edits, deletes): per
//! channel in the order the user made them, pipelined within a window,
//! each resent with the same id after its own backoff, never before an
//! earlier refused one of its channel.

use lockstep_core::client::{EntryId, OpId, Outcome, SendFailure};
use lockstep_core::ids::{ChannelId, ClientMsgId, MessageId};
use lockstep_core::wire::{Ack, Body, ClientFrame, ErrorBody, ErrorCode, ReqId};
use lockstep_core::{Instant, Rng};

use super::config::PlainConfig;

/// What an entry asks the server to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Send {
        id: ClientMsgId,
        body: Body,
    },
    Update {
        op: OpId,
        message_id: MessageId,
        body: Body,
    },
    Delete {
        op: OpId,
        message_id: MessageId,
    },
}

impl Command {
    fn id(&self) -> EntryId {
        match self {
            Command::Send { id, .. } => EntryId::Message(id.clone()),
            Command::Update { op, .. } | Command::Delete { op, .. } => EntryId::Op(*op),
        }
    }

    fn frame(&self, req: ReqId, channel: &ChannelId) -> ClientFrame {
        let channel_id = channel.clone();
        match self {
            Command::Send { id, body } => ClientFrame::Send {
                req,
                channel_id,
                client_msg_id: id.clone(),
                body: body.clone(),
            },
            Command::Update {
                message_id, body, ..
            } => ClientFrame::Update {
                req,
                channel_id,
                message_id: message_id.clone(),
                body: body.clone(),
            },
            Command::Delete { message_id, .. } => ClientFrame::Delete {
                req,
                channel_id,
                message_id: message_id.clone(),
            },
        }
    }
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not sent on this connection yet (new, or back after a reconnect).
    Queued,
    /// Sent as `req`; its ack is due by `deadline` (`socket.timeout`).
    InFlight { req: ReqId, deadline: Instant },
    /// Refused retryably or timed out: resent with the same id at `at`,
    /// or later if an earlier entry of its channel still waits.
    Waiting { at: Instant },
}

#[derive(Debug, Clone)]
struct Entry {
    channel: ChannelId,
    command: Command,
    state: State,
    failures: u32,
}

/// What a reply did to an entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settled {
    /// Its one outcome.
    Done(ChannelId, EntryId, Outcome),
    /// The server says the channel is not joined: join it again; the entry
    /// goes out again after that.
    Rejoin(ChannelId),
    /// It waits for its resend.
    Later,
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outbox {
    /// Every unresolved entry, oldest first (all channels).
    entries: Vec<Entry>,
    /// Entries in flight at most, all channels together.
    window: usize,
}

impl Outbox {
    pub(crate) fn new(config: &PlainConfig) -> Self {
        Outbox {
            entries: Vec::new(),
            window: config.window.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The oldest entry: its channel and id, for reports.
    pub(crate) fn first(&self) -> Option<(&ChannelId, EntryId, String)> {
        self.entries
            .first()
            .map(|e| (&e.channel, e.command.id(), format!("{:?}", e.state)))
    }

    pub(crate) fn push(&mut self, channel: ChannelId, command: Command) {
        self.entries.push(Entry {
            channel,
            command,
            state: State::Queued,
            failures: 0,
        });
    }

    fn in_flight(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.state, State::InFlight { .. }))
            .count()
    }

    /// The frames to send now: queued entries and entries whose backoff
    /// ended, oldest first, while the window has room, for channels
    /// `joined` says are joined. A waiting entry goes only when no earlier
    /// entry of its channel waits (resends keep their first order); a new
    /// entry goes whatever waits before it (the server's order gate holds
    /// it back if it must), as long as its channel has fewer than
    /// `unacked_max` entries sent and not acknowledged.
    pub(crate) fn due(
        &mut self,
        now: Instant,
        config: &PlainConfig,
        joined: impl Fn(&ChannelId) -> bool,
        mut next_req: impl FnMut() -> ReqId,
    ) -> Vec<ClientFrame> {
        let mut room = self.window.saturating_sub(self.in_flight());
        let mut frames = Vec::new();
        let mut unacked: Vec<(ChannelId, usize, bool)> = Vec::new();
        for e in &self.entries {
            let sent = !matches!(e.state, State::Queued);
            match unacked.iter_mut().find(|(c, _, _)| *c == e.channel) {
                Some((_, n, _)) => *n += usize::from(sent),
                None => unacked.push((e.channel.clone(), usize::from(sent), false)),
            }
        }
        let deadline = now.saturating_add(config.request_timeout);
        for e in &mut self.entries {
            if room == 0 {
                break;
            }
            let Some((_, n, earlier_waits)) = unacked.iter_mut().find(|(c, _, _)| *c == e.channel)
            else {
                continue;
            };
            let go = match e.state {
                State::InFlight { .. } => false,
                State::Waiting { at } => {
                    let go = at <= now && !*earlier_waits;
                    *earlier_waits = true;
                    go
                }
                State::Queued => *n < config.unacked_max,
            };
            if !go || !joined(&e.channel) {
                continue;
            }
            if e.state == State::Queued {
                *n += 1;
            } else {
                // Resent: the entries after it may go in their turn.
                *earlier_waits = false;
            }
            let req = next_req();
            e.state = State::InFlight { req, deadline };
            frames.push(e.command.frame(req, &e.channel));
            room -= 1;
        }
        frames
    }

    /// The reply to `req`, if it was an entry's.
    pub(crate) fn on_reply(
        &mut self,
        now: Instant,
        config: &PlainConfig,
        rng: &mut Rng,
        req: ReqId,
        reply: Result<&Ack, &ErrorBody>,
    ) -> Option<Settled> {
        let i = self
            .entries
            .iter()
            .position(|e| matches!(e.state, State::InFlight { req: r, .. } if r == req))?;
        let settled = match reply {
            Ok(ack) => {
                let outcome = match (&self.entries[i].command, ack) {
                    (Command::Send { .. }, Ack::Send(a)) => Outcome::Sent {
                        seq: a.seq,
                        message_id: a.message_id.clone(),
                    },
                    (Command::Update { .. }, Ack::Update { seq })
                    | (Command::Delete { .. }, Ack::Delete { seq }) => {
                        Outcome::Applied { seq: *seq }
                    }
                    // A reply of the wrong kind: the server is broken; the
                    // entry is given up rather than guessed at.
                    _ => Outcome::Failed(SendFailure::Refused {
                        code: ErrorCode::Invalid,
                        message: format!("reply of kind {}", ack.kind()),
                    }),
                };
                if self.window < config.window {
                    self.window += 1;
                }
                let e = self.entries.remove(i);
                Settled::Done(e.channel, e.command.id(), outcome)
            }
            Err(error) if error.code == ErrorCode::NotJoined => {
                self.entries[i].state = State::Queued;
                Settled::Rejoin(self.entries[i].channel.clone())
            }
            Err(error) if error.retryable => {
                self.wait(i, now, config, rng);
                Settled::Later
            }
            Err(error) => {
                let e = self.entries.remove(i);
                Settled::Done(
                    e.channel,
                    e.command.id(),
                    Outcome::Failed(SendFailure::Refused {
                        code: error.code,
                        message: error.message.clone(),
                    }),
                )
            }
        };
        Some(settled)
    }

    /// Sends whose ack did not come in time wait for their resend (the
    /// same id: the server stores a message once however often it comes).
    pub(crate) fn on_timeout(&mut self, now: Instant, config: &PlainConfig, rng: &mut Rng) {
        for i in 0..self.entries.len() {
            if let State::InFlight { deadline, .. } = self.entries[i].state {
                if deadline <= now {
                    self.wait(i, now, config, rng);
                }
            }
        }
    }

    fn wait(&mut self, i: usize, now: Instant, config: &PlainConfig, rng: &mut Rng) {
        let e = &mut self.entries[i];
        e.failures = e.failures.saturating_add(1);
        let base = config
            .resend_backoff_ms
            .saturating_mul(1u64 << (e.failures.saturating_sub(1)).min(16));
        let capped = base.min(config.resend_backoff_max_ms);
        // Jitter up to half again, so resends of one channel end their
        // backoffs out of order now and then: the order rule must hold.
        let ms = capped + rng.below(capped / 2 + 1);
        e.state = State::Waiting {
            at: now.saturating_add(std::time::Duration::from_millis(ms)),
        };
    }

    /// The broadcast of one's own message confirms its entry, whichever of
    /// it and the ack comes first: the entry is removed (a late ack then
    /// finds nothing). Returns its id if it was still unresolved.
    pub(crate) fn confirm(&mut self, channel: &ChannelId, id: &ClientMsgId) -> Option<EntryId> {
        let i = self.entries.iter().position(|e| {
            &e.channel == channel && matches!(&e.command, Command::Send { id: x, .. } if x == id)
        })?;
        Some(self.entries.remove(i).command.id())
    }

    /// The connection is gone: everything unacknowledged goes again on the
    /// next one, in its first order, before anything new. The window halves
    /// when sends were in flight (a burst the transport could not carry
    /// must not cut the next connection too).
    pub(crate) fn connection_lost(&mut self) {
        if self.in_flight() > 0 {
            self.window = (self.window / 2).max(1);
        }
        for e in &mut self.entries {
            e.state = State::Queued;
        }
    }

    /// The app left `channel`: its entries fail.
    pub(crate) fn drain_channel(&mut self, channel: &ChannelId) -> Vec<EntryId> {
        let mut gone = Vec::new();
        self.entries.retain(|e| {
            if &e.channel == channel {
                gone.push(e.command.id());
                false
            } else {
                true
            }
        });
        gone
    }

    /// After a page reload: the saved entries, none sent yet.
    pub(crate) fn reloaded(&self, config: &PlainConfig) -> Outbox {
        let mut entries = self.entries.clone();
        for e in &mut entries {
            e.state = State::Queued;
        }
        Outbox {
            entries,
            window: config.window.max(1),
        }
    }

    /// The next time after `now` an entry's ack is due or its backoff
    /// ends (an entry whose backoff ended waits for its turn, not a time).
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                State::Queued => None,
                State::InFlight { deadline, .. } => Some(deadline),
                State::Waiting { at } => Some(at),
            })
            .filter(|at| *at > now)
            .min()
    }
}
