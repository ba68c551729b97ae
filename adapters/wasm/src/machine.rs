//! The client machine behind one-call-in, one-batch-out: every input takes
//! `now`, every call returns what the driver must do next. Plain Rust, so
//! the mapping and batching are tested on the host; the wasm-bindgen glue
//! only forwards to it.

use lockstep_core::Instant;
use lockstep_core::client::{
    Client, ClientEvent, EntryId, OutboxSnapshot, SendError, SnapshotEntry, SubscribeError,
    TransportEvent,
};
use lockstep_core::ids::{ChannelId, Epoch, MessageId, Seq};
use lockstep_core::wire::socketio::{decode_reply, decode_server_event, refused};
use lockstep_core::wire::{Body, DecodeError, LogEvent, ReqId, ServerFrame};

use crate::config::{ConfigError, WebConfig};
use crate::dto::{
    AppEvent, Batch, CommandError, CommandOut, CommandResult, Inspection, TransmitOut, entry_id,
};
use crate::packets::{checked_len, decode_packet, split};

/// Most events one [`Machine::events`] call takes; the rest of a longer
/// burst is dropped (the driver flushes far more often).
pub const EVENTS_PER_CALL_MAX: usize = 4_096;

/// The largest integer a JavaScript number holds exactly.
const JS_SAFE_MAX: f64 = 9_007_199_254_740_991.0;

/// A JavaScript number as a `u64`, if it is a whole number in range.
pub fn to_u64(n: f64) -> Option<u64> {
    ((0.0..=JS_SAFE_MAX).contains(&n) && n.fract() == 0.0).then_some(n as u64)
}

/// The client machine and what the wrapper keeps beside it.
#[derive(Debug)]
pub struct Machine {
    client: Client,
    /// The latest `now` seen: time never goes backwards for the machine.
    now: Instant,
    /// Restored entries whose channel is not subscribed yet: they enter
    /// the machine when it is, so a reload does not fail them for being
    /// restored before the app subscribed.
    held: Vec<SnapshotEntry>,
    /// The outbox's bound, shared by the machine's entries and `held`.
    outbox_max: usize,
    /// Events of this call that come before the machine's own.
    early: Vec<AppEvent>,
    /// The log events of the current `events` call with their index in
    /// its array, so a delivery of one of them is sent back as a reference.
    arrivals: Vec<(LogEvent, u32)>,
}

impl Machine {
    /// A machine with `options` (see [`WebConfig`]) and a random `seed`
    /// (from `crypto.getRandomValues`). The token is set on each `opened`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an option out of range.
    pub fn new(options: &WebConfig, seed: u64) -> Result<Machine, ConfigError> {
        let config = options.to_client_config()?;
        let outbox_max = config.outbox_max;
        Ok(Machine {
            client: Client::new(config, String::new(), seed),
            now: Instant::ZERO,
            held: Vec::new(),
            outbox_max,
            early: Vec::new(),
            arrivals: Vec::new(),
        })
    }

    /// `now` as the machine's instant: whole milliseconds, never earlier
    /// than the last one (a clock that jumps back is treated as standing).
    fn at(&mut self, now_ms: f64) -> Instant {
        if let Some(ms) = to_u64(now_ms.floor()) {
            self.now = self.now.max(Instant::from_millis(ms));
        }
        self.now
    }

    /// Starts connecting (single flight; retries now while waiting).
    pub fn connect(&mut self, now: f64) -> Batch {
        let now = self.at(now);
        self.client.connect(now);
        self.drain(None)
    }

    /// Closes for good: the socket closes, every timer stops. The outbox
    /// stays exportable.
    pub fn close(&mut self, now: f64) -> Batch {
        let now = self.at(now);
        self.client.close(now);
        self.drain(None)
    }

    /// Wants `channel` subscribed, now and after every reconnect.
    pub fn subscribe(&mut self, now: f64, channel: &str) -> Batch {
        self.subscribe_at(now, channel, None)
    }

    /// Like [`subscribe`](Machine::subscribe), resuming after `last_seq` of
    /// log `epoch` (a decimal string): what the app already has.
    pub fn subscribe_from(&mut self, now: f64, channel: &str, epoch: &str, last_seq: f64) -> Batch {
        let position = match (epoch.parse::<u64>(), to_u64(last_seq)) {
            (Ok(epoch), Some(last)) => (Epoch(epoch), Seq(last)),
            _ => {
                let error = CommandError::invalid(
                    "epoch must be a decimal string and lastSeq a whole number",
                );
                return self.refuse(error);
            }
        };
        self.subscribe_at(now, channel, Some(position))
    }

    fn subscribe_at(&mut self, now: f64, channel: &str, from: Option<(Epoch, Seq)>) -> Batch {
        let now = self.at(now);
        let channel = match ChannelId::new(channel) {
            Ok(c) => c,
            Err(e) => return self.refuse(CommandError::invalid(e)),
        };
        let done = match from {
            None => self.client.subscribe(now, channel.clone()),
            Some((epoch, last)) => self
                .client
                .subscribe_from(now, channel.clone(), epoch, last),
        };
        if let Err(e) = done {
            let kind = match e {
                SubscribeError::TooManyChannels(_) => "too_many_channels",
                SubscribeError::Closed => "closed",
            };
            return self.refuse(CommandError {
                kind,
                message: e.to_string(),
            });
        }
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|e| e.channel == channel);
        self.held = rest;
        self.restore_entries(now, mine);
        self.drain(Some(CommandResult::Accepted { id: None }))
    }

    /// No longer wants `channel`; its unsent entries fail (`unsubscribed`),
    /// held ones too.
    pub fn unsubscribe(&mut self, now: f64, channel: &str) -> Batch {
        let now = self.at(now);
        let channel = match ChannelId::new(channel) {
            Ok(c) => c,
            Err(e) => return self.refuse(CommandError::invalid(e)),
        };
        self.client.unsubscribe(now, channel.clone());
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|e| e.channel == channel);
        self.held = rest;
        for entry in mine {
            let outcome = lockstep_core::client::Outcome::Failed(
                lockstep_core::client::SendFailure::Unsubscribed,
            );
            let event = ClientEvent::Outcome {
                channel: entry.channel,
                id: entry.command.id(),
                outcome,
            };
            self.early.push(AppEvent::from_event(event, |_| (None, 0)));
        }
        self.drain(Some(CommandResult::Accepted { id: None }))
    }

    /// Queues a message (`body_json`: any JSON text); the result's `id` is
    /// its `clientMsgId`, and a `pending` event shows it at once.
    pub fn send(&mut self, now: f64, channel: &str, body_json: &str) -> Batch {
        let now = self.at(now);
        let (channel, body) = match (ChannelId::new(channel), Body::from_json(body_json)) {
            (Ok(c), Ok(b)) => (c, b),
            (Err(e), _) => return self.refuse(CommandError::invalid(e)),
            (_, Err(e)) => return self.refuse(CommandError::invalid(e)),
        };
        let done = self.client.send(now, channel.clone(), body.clone());
        self.queued(
            channel,
            done.map(EntryId::Message),
            CommandOut::Send { body },
        )
    }

    /// Queues an edit of `message_id`; the result's `id` is its op id.
    pub fn update(&mut self, now: f64, channel: &str, message_id: &str, body_json: &str) -> Batch {
        let now = self.at(now);
        let parsed = (
            ChannelId::new(channel),
            MessageId::new(message_id),
            Body::from_json(body_json),
        );
        let (channel, message_id, body) = match parsed {
            (Ok(c), Ok(m), Ok(b)) => (c, m, b),
            (Err(e), _, _) | (_, Err(e), _) => return self.refuse(CommandError::invalid(e)),
            (_, _, Err(e)) => return self.refuse(CommandError::invalid(e)),
        };
        let command = CommandOut::Update {
            message_id: message_id.to_string(),
            body: body.clone(),
        };
        let done = self.client.update(now, channel.clone(), message_id, body);
        self.queued(channel, done.map(EntryId::Op), command)
    }

    /// Queues a deletion of `message_id`; the result's `id` is its op id.
    pub fn delete(&mut self, now: f64, channel: &str, message_id: &str) -> Batch {
        let now = self.at(now);
        let (channel, message_id) = match (ChannelId::new(channel), MessageId::new(message_id)) {
            (Ok(c), Ok(m)) => (c, m),
            (Err(e), _) | (_, Err(e)) => return self.refuse(CommandError::invalid(e)),
        };
        let command = CommandOut::Delete {
            message_id: message_id.to_string(),
        };
        let done = self.client.delete(now, channel.clone(), message_id);
        self.queued(channel, done.map(EntryId::Op), command)
    }

    fn queued(
        &mut self,
        channel: ChannelId,
        done: Result<EntryId, SendError>,
        command: CommandOut,
    ) -> Batch {
        match done {
            Ok(id) => {
                let id = entry_id(&id);
                self.early.push(AppEvent::Pending {
                    channel_id: channel.to_string(),
                    id: id.clone(),
                    command,
                });
                self.drain(Some(CommandResult::Accepted { id: Some(id) }))
            }
            Err(e) => {
                let kind = match e {
                    SendError::OutboxFull(_) => "outbox_full",
                    SendError::NotSubscribed(_) => "not_subscribed",
                    SendError::SubscriptionFailed(..) => "subscription_failed",
                    SendError::Closed => "closed",
                    SendError::BadId(_) => "invalid",
                };
                self.refuse(CommandError {
                    kind,
                    message: e.to_string(),
                })
            }
        }
    }

    /// Marks `channel` read up to `up_to` (max wins).
    pub fn mark_read(&mut self, now: f64, channel: &str, up_to: f64) -> Batch {
        let now = self.at(now);
        match (ChannelId::new(channel), to_u64(up_to)) {
            (Ok(c), Some(up_to)) => {
                self.client.mark_read(now, c, Seq(up_to));
                self.drain(Some(CommandResult::Accepted { id: None }))
            }
            (Err(e), _) => self.refuse(CommandError::invalid(e)),
            (_, None) => self.refuse(CommandError::invalid("upTo must be a whole number")),
        }
    }

    /// Shows or hides our typing indicator (call on each keystroke).
    pub fn set_typing(&mut self, now: f64, channel: &str, active: bool) -> Batch {
        let now = self.at(now);
        match ChannelId::new(channel) {
            Ok(c) => {
                self.client.set_typing(now, c, active);
                self.drain(Some(CommandResult::Accepted { id: None }))
            }
            Err(e) => self.refuse(CommandError::invalid(e)),
        }
    }

    /// The Engine.IO connection of socket `generation` is open; `token`
    /// (fetched for this attempt) goes out with the namespace connect.
    pub fn opened(&mut self, now: f64, generation: f64, token: Option<String>) -> Batch {
        if let Some(token) = token {
            self.client.set_token(token);
        }
        self.transport(now, generation, |generation| {
            Some(TransportEvent::Opened { generation })
        })
    }

    /// Socket `generation` closed or could not open.
    pub fn closed(&mut self, now: f64, generation: f64, reason: &str) -> Batch {
        self.transport(now, generation, |generation| {
            Some(TransportEvent::Closed {
                generation,
                reason: reason.to_owned(),
            })
        })
    }

    /// The namespace connect of socket `generation` was refused
    /// (`connect_error` with `message`; `unauthorized` is for good).
    pub fn connect_error(&mut self, now: f64, generation: f64, message: &str) -> Batch {
        self.transport(now, generation, |generation| {
            Some(TransportEvent::Frame {
                generation,
                frame: refused(message),
            })
        })
    }

    /// Socket `generation` received event `name` with its first argument
    /// as JSON text. Events outside the contract are ignored.
    pub fn event(&mut self, now: f64, generation: f64, name: &str, payload_json: &str) -> Batch {
        self.transport(now, generation, |generation| {
            let decoded =
                checked_len(payload_json).and_then(|()| decode_server_event(name, payload_json));
            decoded
                .map(|frame| frame.map(|frame| TransportEvent::Frame { generation, frame }))
                .unwrap_or_else(|error| Some(TransportEvent::Undecodable { generation, error }))
        })
    }

    /// Several events of socket `generation` at once, in arrival order:
    /// `packets` is their Socket.IO packets' JSON text (`["name",
    /// payload]`) in UTF-8, one after another, `lengths` the byte length
    /// of each (at most [`EVENTS_PER_CALL_MAX`] are read). One call and
    /// one batch for a burst, which is what lets a recovery or a busy
    /// channel keep up.
    pub fn events(&mut self, now: f64, generation: f64, packets: &[u8], lengths: &[u32]) -> Batch {
        let now = self.at(now);
        let Some(generation) = to_u64(generation) else {
            return self.drain(None);
        };
        let read = lengths.get(..EVENTS_PER_CALL_MAX).unwrap_or(lengths);
        // The rest of the text is dropped only with the lengths past the
        // bound; otherwise the lengths must cover it exactly.
        let split =
            split(packets, read).filter(|(_, rest)| rest.is_empty() || read.len() < lengths.len());
        let Some((items, _)) = split else {
            let error = DecodeError::Malformed(
                "event batch: the lengths do not split the packets".to_owned(),
            );
            self.client
                .handle_transport(now, TransportEvent::Undecodable { generation, error });
            return self.drain(None);
        };
        for (index, packet) in (0u32..).zip(items) {
            let event = match decode_packet(packet) {
                Ok(Some(frame)) => {
                    if let Some(log) = frame.clone().into_log_event() {
                        self.arrivals.push((log, index));
                    }
                    TransportEvent::Frame { generation, frame }
                }
                Ok(None) => continue,
                Err(error) => TransportEvent::Undecodable { generation, error },
            };
            self.client.handle_transport(now, event);
        }
        let batch = self.drain(None);
        self.arrivals.clear();
        batch
    }

    /// The ack of request `req` (whose answer is of `kind`, as the emit
    /// said) arrived on socket `generation`, its first argument as JSON.
    pub fn ack(
        &mut self,
        now: f64,
        generation: f64,
        req: f64,
        kind: &str,
        reply_json: &str,
    ) -> Batch {
        let Some(req) = to_u64(req) else {
            return self.drain(None);
        };
        self.transport(now, generation, |generation| {
            let decoded: Result<ServerFrame, DecodeError> =
                checked_len(reply_json).and_then(|()| decode_reply(ReqId(req), kind, reply_json));
            Some(match decoded {
                Ok(frame) => TransportEvent::Frame { generation, frame },
                Err(error) => TransportEvent::Undecodable { generation, error },
            })
        })
    }

    fn transport(
        &mut self,
        now: f64,
        generation: f64,
        event: impl FnOnce(u64) -> Option<TransportEvent>,
    ) -> Batch {
        let now = self.at(now);
        // A generation that is not a whole number names no socket the
        // machine opened: nothing to do.
        if let Some(event) = to_u64(generation).and_then(event) {
            self.client.handle_transport(now, event);
        }
        self.drain(None)
    }

    /// Fires the timers due at `now` (an early call does nothing).
    pub fn tick(&mut self, now: f64) -> Batch {
        let now = self.at(now);
        self.client.handle_timeout(now);
        self.drain(None)
    }

    /// Every unresolved entry (the machine's and the held ones) as the
    /// JSON text of an outbox snapshot, to persist.
    #[must_use]
    pub fn export_outbox(&self) -> String {
        let mut snapshot = self.client.export_outbox();
        snapshot.entries.extend(self.held.iter().cloned());
        snapshot.to_json()
    }

    /// Restores a persisted snapshot (from [`export_outbox`](Machine::export_outbox)):
    /// entries of subscribed channels go out at once; the others wait
    /// until their channel is subscribed. Entries already here are skipped.
    pub fn restore_outbox(&mut self, now: f64, snapshot_json: &str) -> Batch {
        let now = self.at(now);
        let snapshot = match OutboxSnapshot::from_json(snapshot_json) {
            Ok(s) => s,
            Err(e) => return self.refuse(CommandError::invalid(format!("outbox snapshot: {e}"))),
        };
        if snapshot.version != OutboxSnapshot::VERSION {
            return self.refuse(CommandError {
                kind: "version",
                message: format!("unsupported outbox snapshot version {}", snapshot.version),
            });
        }
        let known: Vec<EntryId> = self
            .client
            .outbox()
            .map(|e| e.command.id())
            .chain(self.held.iter().map(|e| e.command.id()))
            .collect();
        let fresh: Vec<SnapshotEntry> = snapshot
            .entries
            .into_iter()
            .filter(|e| !known.contains(&e.command.id()))
            .collect();
        if known.len().saturating_add(fresh.len()) > self.outbox_max {
            return self.refuse(CommandError {
                kind: "outbox_full",
                message: format!("outbox is full ({} entries)", self.outbox_max),
            });
        }
        let (now_in, later): (Vec<_>, Vec<_>) = fresh.into_iter().partition(|e| {
            self.client
                .channel(&e.channel)
                .is_some_and(|view| view.desired)
        });
        self.held.extend(later);
        self.restore_entries(now, now_in);
        self.drain(Some(CommandResult::Accepted { id: None }))
    }

    /// Hands entries of desired channels to the machine, each shown as
    /// pending.
    fn restore_entries(&mut self, now: Instant, entries: Vec<SnapshotEntry>) {
        if entries.is_empty() {
            return;
        }
        let shown: Vec<AppEvent> = entries
            .iter()
            .map(|e| AppEvent::Pending {
                channel_id: e.channel.to_string(),
                id: entry_id(&e.command.id()),
                command: (&e.command).into(),
            })
            .collect();
        let snapshot = OutboxSnapshot {
            version: OutboxSnapshot::VERSION,
            entries,
        };
        match self.client.restore_outbox(now, snapshot) {
            Ok(()) => self.early.extend(shown),
            // Checked against the bound before; not reached.
            Err(e) => self.early.push(AppEvent::Protocol {
                message: format!("outbox restore refused: {e}"),
            }),
        }
    }

    /// What the machine still holds, for leak checks.
    #[must_use]
    pub fn inspect(&self) -> Inspection {
        Inspection {
            state: self.client.state().name(),
            armed_timers: self.client.armed_timers(),
            pending_requests: self.client.pending_requests(),
            outbox: self.client.outbox().count(),
            held: self.held.len(),
        }
    }

    fn refuse(&mut self, error: CommandError) -> Batch {
        self.drain(Some(CommandResult::Refused { error }))
    }

    /// Collects everything the machine wants done.
    fn drain(&mut self, result: Option<CommandResult>) -> Batch {
        let mut batch = Batch {
            events: std::mem::take(&mut self.early),
            result,
            ..Batch::default()
        };
        while let Some(t) = self.client.poll_transmit() {
            if let Some(t) = TransmitOut::from_transmit(t) {
                batch.transmits.push(t);
            }
        }
        // Arrivals are usually delivered in arrival order: look from where
        // the last one was found.
        let mut cursor = 0;
        while let Some(e) = self.client.poll_event() {
            if let ClientEvent::Log { channel, event } = &e {
                let found = (cursor..self.arrivals.len())
                    .chain(0..cursor)
                    .find(|&i| self.arrivals.get(i).is_some_and(|(a, _)| a == event));
                if let Some((i, &(_, index))) = found.and_then(|i| Some((i, self.arrivals.get(i)?)))
                {
                    cursor = i + 1;
                    // The next packet of the run before it: one reference.
                    if let Some(AppEvent::LogRef {
                        channel_id,
                        index: first,
                        count,
                    }) = batch.events.last_mut()
                        && first.checked_add(*count) == Some(index)
                        && channel_id.as_str() == channel.as_str()
                    {
                        *count += 1;
                        continue;
                    }
                    batch.events.push(AppEvent::LogRef {
                        channel_id: channel.to_string(),
                        index,
                        count: 1,
                    });
                    continue;
                }
            }
            let client = &self.client;
            batch.events.push(AppEvent::from_event(e, |channel| {
                client.channel(channel).map_or((None, 0), |view| {
                    (view.epoch.map(|e| e.0.to_string()), view.last_seq.0)
                })
            }));
        }
        batch.deadline = self.client.poll_timeout().map(Instant::as_millis);
        batch
    }
}
