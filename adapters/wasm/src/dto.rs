//! What crosses to JavaScript: the batch of one call, as JSON whose
//! TypeScript types are generated from these definitions (tsify), so the
//! two cannot disagree.
//!
//! Ids that do not fit a JavaScript number (op ids, epochs) cross as
//! decimal strings; positions (`seq`), times (ms) and generations are
//! numbers. Message bodies are spliced in as the JSON text they are.

use lockstep_core::client::{
    ClientEvent, Command, ConnectionState, EntryId, FailReason, Outcome, SendFailure,
    SubscriptionState, Transmit,
};
use lockstep_core::wire::json::{ObjectWriter, write_str};
use lockstep_core::wire::socketio::{Emit, emit};
use lockstep_core::wire::{Body, ErrorCode, LogEvent};
use tsify::Tsify;
use wasm_bindgen::prelude::wasm_bindgen;

/// The TypeScript type of an error code, for the generated `.d.ts` (only
/// wasm builds emit the section; tests check it names every code).
#[allow(
    dead_code,
    reason = "the section macro copies the text, so rustc sees no use"
)]
pub(crate) const ERROR_CODE_TS: &str = r#"
/** A request's error code (docs/PROTOCOL.md): `rate_limited` and `unavailable` are retryable. */
export type ErrorCode = "invalid" | "too_large" | "forbidden" | "not_joined" | "not_found" | "rate_limited" | "unavailable" | "unauthorized";
"#;

#[wasm_bindgen(typescript_custom_section)]
const ERROR_CODE_SECTION: &str = ERROR_CODE_TS;

/// Everything one call asks the JavaScript driver to do, in order.
#[derive(Debug, Default, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// Socket work, in order: open, connect, emit, close.
    pub transmits: Vec<TransmitOut>,
    /// What the app learns, in order.
    pub events: Vec<AppEvent>,
    /// When to call `tick` next (machine milliseconds); `null`: no timer.
    pub deadline: Option<u64>,
    /// A command's answer (`send`'s id, a refusal), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub result: Option<CommandResult>,
}

/// One piece of socket work, tagged with the socket's generation: events
/// from an older generation are ignored by the machine.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TransmitOut {
    /// Open the Engine.IO connection of a new socket; report `opened` or
    /// `closed` for it.
    Open {
        /// The new socket's generation.
        generation: u64,
    },
    /// Connect the namespace with `auth: { token }`; the server's
    /// `session` event follows, or `connect_error`.
    Connect {
        /// Which socket.
        generation: u64,
        /// The credentials.
        token: String,
    },
    /// `socket.emit(name, payload[, ack])`; when `ack` is set, feed the
    /// ack's reply back with its `req` and `kind`.
    Emit {
        /// Which socket.
        generation: u64,
        /// The contract's event name.
        name: &'static str,
        /// The payload object.
        #[tsify(type = "Record<string, unknown>")]
        #[cfg_attr(test, serde(serialize_with = "crate::dto::raw_json"))]
        payload: String,
        /// The reply to expect, if any.
        ack: Option<AckRef>,
    },
    /// Close the socket; its later events are ignored anyway.
    Close {
        /// Which socket.
        generation: u64,
        /// Why, for logs.
        reason: String,
    },
}

/// Names the reply an emit expects, to hand back with it.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct AckRef {
    /// The request id.
    pub req: u64,
    /// The kind of answer (`join`, `send`, ...).
    pub kind: &'static str,
}

impl TransmitOut {
    /// The Socket.IO form of a machine transmit (the one mapping in
    /// `lockstep_core::wire::socketio`). `None` for a heartbeat probe:
    /// Engine.IO has its own heartbeat, so this wrapper never enables the
    /// machine's and no probe is ever sent.
    pub(crate) fn from_transmit(t: Transmit) -> Option<TransmitOut> {
        Some(match t {
            Transmit::Open { generation } => TransmitOut::Open { generation },
            Transmit::Close { generation, reason } => TransmitOut::Close {
                generation,
                reason: reason.to_string(),
            },
            Transmit::Frame { generation, frame } => match emit(&frame) {
                Emit::Connect { token } => TransmitOut::Connect { generation, token },
                Emit::Pong { .. } => return None,
                Emit::Event {
                    name,
                    payload,
                    req,
                    kind,
                } => TransmitOut::Emit {
                    generation,
                    name,
                    // `emit` writes an object's JSON text.
                    payload,
                    ack: req.zip(kind).map(|(req, kind)| AckRef { req: req.0, kind }),
                },
            },
        })
    }
}

/// A command's answer: `{ id? }` when accepted, `{ error }` when refused.
#[derive(Debug, PartialEq, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(untagged)]
pub enum CommandResult {
    /// Accepted; `id` names the outbox entry for `send`, `update`, `delete`.
    Accepted {
        /// The entry's id, when the command made one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        id: Option<String>,
    },
    /// Refused at once; nothing changed.
    Refused {
        /// Why.
        error: CommandError,
    },
}

/// A command refused at once: a stable `kind` to match on and a message.
#[derive(Debug, PartialEq, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct CommandError {
    /// `outbox_full`, `not_subscribed`, `subscription_failed`, `closed`,
    /// `too_many_channels`, `invalid`, `version`.
    pub kind: &'static str,
    /// What was wrong, lowercase.
    pub message: String,
}

impl CommandError {
    /// An argument that did not parse (channel id, body JSON, snapshot).
    pub(crate) fn invalid(message: impl ToString) -> CommandError {
        CommandError {
            kind: "invalid",
            message: message.to_string(),
        }
    }
}

/// What the app learns. Every channel event names `channelId`.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AppEvent {
    /// The connection state changed.
    State {
        /// The new state.
        state: StateOut,
    },
    /// A channel's subscription changed; `epoch` and `lastSeq` are the
    /// channel's position (what was delivered), to resume from.
    #[serde(rename_all = "camelCase")]
    Subscription {
        /// The channel.
        channel_id: String,
        /// Where it stands.
        state: SubscriptionOut,
        /// The log identity followed, once known.
        #[tsify(type = "string | null")]
        epoch: Option<String>,
        /// The last seq delivered (0 before any).
        last_seq: u64,
    },
    /// The next event of a channel's log: in seq order, exactly once.
    #[serde(rename_all = "camelCase")]
    Log {
        /// The channel.
        channel_id: String,
        /// The event.
        event: LogOut,
    },
    /// Like `log`, for events that came in the same `events` call: the
    /// `count` packets of that call from the `index`-th on are the next
    /// events, in order (the driver already holds them, so they are not
    /// encoded again).
    #[serde(rename_all = "camelCase")]
    LogRef {
        /// The channel.
        channel_id: String,
        /// The first packet of the call.
        index: u32,
        /// How many packets, from `index` on (at least 1).
        count: u32,
    },
    /// Seqs `from..=to` are gone from the server; the stream goes on.
    #[serde(rename_all = "camelCase")]
    Truncated {
        /// The channel.
        channel_id: String,
        /// First missing seq.
        from: u64,
        /// Last missing seq.
        to: u64,
    },
    /// The channel's log was reset: forget its messages; a fresh stream
    /// follows.
    #[serde(rename_all = "camelCase")]
    Reset {
        /// The channel.
        channel_id: String,
        /// The new log identity.
        epoch: String,
    },
    /// An entry entered the outbox (a send, edit or delete, or one restored
    /// from storage): show it optimistically until its outcome.
    #[serde(rename_all = "camelCase")]
    Pending {
        /// The channel.
        channel_id: String,
        /// The entry's id (`clientMsgId` for a send).
        id: String,
        /// What it does.
        command: CommandOut,
    },
    /// The one outcome of an outbox entry.
    #[serde(rename_all = "camelCase")]
    Outcome {
        /// The channel.
        channel_id: String,
        /// The entry's id.
        id: String,
        /// What happened.
        outcome: OutcomeOut,
    },
    /// Who is present, after every join.
    #[serde(rename_all = "camelCase")]
    Members {
        /// The channel.
        channel_id: String,
        /// Sorted user ids.
        members: Vec<String>,
    },
    /// A user appeared.
    #[serde(rename_all = "camelCase")]
    MemberJoined {
        /// The channel.
        channel_id: String,
        /// Who.
        user_id: String,
    },
    /// A user left.
    #[serde(rename_all = "camelCase")]
    MemberLeft {
        /// The channel.
        channel_id: String,
        /// Who.
        user_id: String,
    },
    /// A typing indicator changed.
    #[serde(rename_all = "camelCase")]
    Typing {
        /// The channel.
        channel_id: String,
        /// Who.
        user_id: String,
        /// Typing now or not.
        active: bool,
    },
    /// A user's read watermark advanced.
    #[serde(rename_all = "camelCase")]
    Read {
        /// The channel.
        channel_id: String,
        /// Whose.
        user_id: String,
        /// Read up to and including this seq.
        up_to: u64,
    },
    /// The server sent something wrong; it was ignored.
    Protocol {
        /// What.
        message: String,
    },
}

/// The connection's state, tagged by `name`.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "name", rename_all = "camelCase")]
pub enum StateOut {
    /// Nothing asked yet.
    Idle,
    /// A socket is opening or shaking hands.
    Connecting {
        /// 1 for the first attempt after being online.
        attempt: u32,
        /// The socket tried.
        generation: u64,
    },
    /// The server said who we are.
    #[serde(rename_all = "camelCase")]
    Connected {
        /// The live socket.
        generation: u64,
        /// The verified identity.
        user_id: String,
    },
    /// Offline; the next attempt runs at `retryAt` (machine ms).
    #[serde(rename_all = "camelCase")]
    Reconnecting {
        /// The next attempt's number.
        attempt: u32,
        /// When it runs.
        retry_at: u64,
    },
    /// Offline for long: retrying at the slower pace.
    #[serde(rename_all = "camelCase")]
    Suspended {
        /// When the next attempt runs.
        retry_at: u64,
    },
    /// Closed by the app. Terminal.
    Closed,
    /// Given up: `unauthorized`, or the attempts ran out. `connect()`
    /// starts over.
    Failed {
        /// A stable reason: `unauthorized`, another refusal code, or
        /// `attempts_exhausted`.
        reason: String,
        /// What happened, lowercase.
        message: String,
    },
}

impl From<&ConnectionState> for StateOut {
    fn from(s: &ConnectionState) -> Self {
        match s {
            ConnectionState::Idle => StateOut::Idle,
            ConnectionState::Connecting {
                attempt,
                generation,
            } => StateOut::Connecting {
                attempt: *attempt,
                generation: *generation,
            },
            ConnectionState::Connected {
                generation,
                user_id,
            } => StateOut::Connected {
                generation: *generation,
                user_id: user_id.to_string(),
            },
            ConnectionState::Reconnecting { attempt, retry_at } => StateOut::Reconnecting {
                attempt: *attempt,
                retry_at: retry_at.as_millis(),
            },
            ConnectionState::Suspended { retry_at } => StateOut::Suspended {
                retry_at: retry_at.as_millis(),
            },
            ConnectionState::Closed => StateOut::Closed,
            ConnectionState::Failed { reason } => StateOut::Failed {
                reason: match reason {
                    FailReason::Refused { code, .. } => code.as_str().to_owned(),
                    FailReason::AttemptsExhausted { .. } => "attempts_exhausted".to_owned(),
                },
                message: reason.to_string(),
            },
        }
    }
}

/// A channel's subscription, tagged by `status`.
#[derive(Debug, PartialEq, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum SubscriptionOut {
    /// Not joined (offline, or not asked).
    Unsubscribed,
    /// Joining, or waiting to retry.
    Subscribing {
        /// 1-based.
        attempt: u32,
    },
    /// Joined: events flow.
    Subscribed,
    /// Leaving.
    Unsubscribing,
    /// Refused for good (e.g. `forbidden`).
    Failed {
        /// The refusal.
        #[tsify(type = "ErrorCode")]
        code: ErrorCode,
    },
}

impl From<&SubscriptionState> for SubscriptionOut {
    fn from(s: &SubscriptionState) -> Self {
        match s {
            SubscriptionState::Unsubscribed => SubscriptionOut::Unsubscribed,
            SubscriptionState::Subscribing { attempt } => {
                SubscriptionOut::Subscribing { attempt: *attempt }
            }
            SubscriptionState::Subscribed => SubscriptionOut::Subscribed,
            SubscriptionState::Unsubscribing => SubscriptionOut::Unsubscribing,
            SubscriptionState::Failed { code } => SubscriptionOut::Failed { code: *code },
        }
    }
}

/// One log event, tagged by `type` as in join and history replies.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum LogOut {
    /// A new message. `body` is absent in a replay once the message was
    /// deleted or edited (the latest `updated` holds it).
    #[serde(rename_all = "camelCase")]
    Message {
        /// Its position.
        seq: u64,
        /// The server's id.
        message_id: String,
        /// Who sent it.
        author_id: String,
        /// The sender's idempotency key.
        client_msg_id: String,
        /// The payload.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional, type = "unknown")]
        body: Option<Body>,
        /// Server time at commit, ms since the Unix epoch.
        ts: u64,
    },
    /// An edit: a log event of its own.
    #[serde(rename_all = "camelCase")]
    Updated {
        /// Its own position.
        seq: u64,
        /// The edited message.
        message_id: String,
        /// The new body (absent in a replay once replaced again).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional, type = "unknown")]
        body: Option<Body>,
    },
    /// A deletion: a log event of its own.
    #[serde(rename_all = "camelCase")]
    Deleted {
        /// Its own position.
        seq: u64,
        /// The deleted message.
        message_id: String,
    },
}

impl From<LogEvent> for LogOut {
    fn from(e: LogEvent) -> Self {
        match e {
            LogEvent::Message(m) => LogOut::Message {
                seq: m.seq.0,
                message_id: m.message_id.to_string(),
                author_id: m.author_id.to_string(),
                client_msg_id: m.client_msg_id.to_string(),
                body: m.body,
                ts: m.ts,
            },
            LogEvent::Updated(u) => LogOut::Updated {
                seq: u.seq.0,
                message_id: u.message_id.to_string(),
                body: u.body,
            },
            LogEvent::Deleted(d) => LogOut::Deleted {
                seq: d.seq.0,
                message_id: d.message_id.to_string(),
            },
        }
    }
}

/// What an outbox entry does, tagged by `kind`.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CommandOut {
    /// Post a message.
    Send {
        /// The payload.
        #[tsify(type = "unknown")]
        body: Body,
    },
    /// Edit a message.
    #[serde(rename_all = "camelCase")]
    Update {
        /// The message.
        message_id: String,
        /// The new body.
        #[tsify(type = "unknown")]
        body: Body,
    },
    /// Delete a message.
    #[serde(rename_all = "camelCase")]
    Delete {
        /// The message.
        message_id: String,
    },
}

impl From<&Command> for CommandOut {
    fn from(c: &Command) -> Self {
        match c {
            Command::Send { body, .. } => CommandOut::Send { body: body.clone() },
            Command::Update {
                message_id, body, ..
            } => CommandOut::Update {
                message_id: message_id.to_string(),
                body: body.clone(),
            },
            Command::Delete { message_id, .. } => CommandOut::Delete {
                message_id: message_id.to_string(),
            },
        }
    }
}

/// An outbox entry's id as JavaScript sees it: the `clientMsgId` of a
/// send, the decimal op id of an edit or delete.
pub(crate) fn entry_id(id: &EntryId) -> String {
    match id {
        EntryId::Message(m) => m.to_string(),
        EntryId::Op(op) => op.0.to_string(),
    }
}

/// The one outcome of an outbox entry, tagged by `status`.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum OutcomeOut {
    /// Stored: the message has its seq and id.
    #[serde(rename_all = "camelCase")]
    Sent {
        /// Its position.
        seq: u64,
        /// The server's id.
        message_id: String,
    },
    /// Stored: the edit or delete has its own seq.
    Applied {
        /// Its position.
        seq: u64,
    },
    /// Given up.
    Failed {
        /// `refused`, `unsubscribed`, `subscription_failed`, `exhausted`.
        reason: &'static str,
        /// The server's code, when it refused.
        #[tsify(type = "ErrorCode | null")]
        code: Option<ErrorCode>,
        /// What happened, lowercase.
        message: String,
    },
}

impl From<Outcome> for OutcomeOut {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Sent { seq, message_id } => OutcomeOut::Sent {
                seq: seq.0,
                message_id: message_id.to_string(),
            },
            Outcome::Applied { seq } => OutcomeOut::Applied { seq: seq.0 },
            Outcome::Failed(f) => {
                let (reason, code) = match &f {
                    SendFailure::Refused { code, .. } => ("refused", Some(*code)),
                    SendFailure::Unsubscribed => ("unsubscribed", None),
                    SendFailure::SubscriptionFailed(code) => ("subscription_failed", Some(*code)),
                    SendFailure::Exhausted(_) => ("exhausted", None),
                };
                OutcomeOut::Failed {
                    reason,
                    code,
                    message: f.to_string(),
                }
            }
        }
    }
}

impl AppEvent {
    /// The app's form of a machine event; the subscription position comes
    /// from `position` (the channel's epoch and last seq).
    pub(crate) fn from_event(
        e: ClientEvent,
        position: impl FnOnce(&lockstep_core::ids::ChannelId) -> (Option<String>, u64),
    ) -> AppEvent {
        match e {
            ClientEvent::State(s) => AppEvent::State { state: (&s).into() },
            ClientEvent::Subscription { channel, state } => {
                let (epoch, last_seq) = position(&channel);
                AppEvent::Subscription {
                    channel_id: channel.to_string(),
                    state: (&state).into(),
                    epoch,
                    last_seq,
                }
            }
            ClientEvent::Log { channel, event } => AppEvent::Log {
                channel_id: channel.to_string(),
                event: event.into(),
            },
            ClientEvent::Truncated { channel, from, to } => AppEvent::Truncated {
                channel_id: channel.to_string(),
                from: from.0,
                to: to.0,
            },
            ClientEvent::Reset { channel, epoch } => AppEvent::Reset {
                channel_id: channel.to_string(),
                epoch: epoch.0.to_string(),
            },
            ClientEvent::Outcome {
                channel,
                id,
                outcome,
            } => AppEvent::Outcome {
                channel_id: channel.to_string(),
                id: entry_id(&id),
                outcome: outcome.into(),
            },
            ClientEvent::Members { channel, members } => AppEvent::Members {
                channel_id: channel.to_string(),
                members: members.iter().map(ToString::to_string).collect(),
            },
            ClientEvent::MemberJoined { channel, user } => AppEvent::MemberJoined {
                channel_id: channel.to_string(),
                user_id: user.to_string(),
            },
            ClientEvent::MemberLeft { channel, user } => AppEvent::MemberLeft {
                channel_id: channel.to_string(),
                user_id: user.to_string(),
            },
            ClientEvent::Typing {
                channel,
                user,
                active,
            } => AppEvent::Typing {
                channel_id: channel.to_string(),
                user_id: user.to_string(),
                active,
            },
            ClientEvent::Read {
                channel,
                user,
                up_to,
            } => AppEvent::Read {
                channel_id: channel.to_string(),
                user_id: user.to_string(),
                up_to: up_to.0,
            },
            ClientEvent::Protocol(e) => AppEvent::Protocol {
                message: e.to_string(),
            },
        }
    }
}

/// Counters for leak checks and tests: what the machine still holds.
#[derive(Debug, Tsify)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The connection state's name.
    pub state: &'static str,
    /// Timers armed (0 after `close`).
    pub armed_timers: usize,
    /// Requests awaiting a reply (0 when offline).
    pub pending_requests: usize,
    /// Entries in the machine's outbox.
    pub outbox: usize,
    /// Restored entries held until their channel is subscribed.
    pub held: usize,
}

/// Serializes JSON text as the value it is (tests' serde derive of
/// [`TransmitOut`]).
#[cfg(test)]
pub(crate) fn raw_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    serde_json::value::RawValue::from_string(text.to_owned())
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

// ---- the JSON JavaScript reads ---------------------------------------------
//
// Written by hand (no serde in the module); the field names and tags are
// the serde attributes above, which tsify turns into the TypeScript types,
// and the tests hold every batch they make to serde's output of them.

fn list<T>(out: &mut String, items: &[T], write: impl Fn(&T, &mut String)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(item, out);
    }
    out.push(']');
}

fn opt_str(o: &mut ObjectWriter<'_>, key: &str, value: Option<&str>) {
    match value {
        Some(v) => o.str(key, v),
        None => o.raw(key, "null"),
    };
}

impl Batch {
    /// The batch as JSON text, for JavaScript.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        let mut o = ObjectWriter::new(&mut out);
        list(o.key("transmits"), &self.transmits, TransmitOut::write);
        list(o.key("events"), &self.events, AppEvent::write);
        match self.deadline {
            Some(d) => o.u64("deadline", d),
            None => o.raw("deadline", "null"),
        };
        if let Some(result) = &self.result {
            result.write(o.key("result"));
        }
        o.finish();
        out
    }
}

impl TransmitOut {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            TransmitOut::Open { generation } => {
                o.str("type", "open").u64("generation", *generation);
            }
            TransmitOut::Connect { generation, token } => {
                o.str("type", "connect")
                    .u64("generation", *generation)
                    .str("token", token);
            }
            TransmitOut::Emit {
                generation,
                name,
                payload,
                ack,
            } => {
                o.str("type", "emit")
                    .u64("generation", *generation)
                    .str("name", name)
                    .raw("payload", payload);
                match ack {
                    Some(ack) => {
                        let mut a = ObjectWriter::new(o.key("ack"));
                        a.u64("req", ack.req).str("kind", ack.kind);
                        a.finish();
                    }
                    None => {
                        o.raw("ack", "null");
                    }
                }
            }
            TransmitOut::Close { generation, reason } => {
                o.str("type", "close")
                    .u64("generation", *generation)
                    .str("reason", reason);
            }
        }
        o.finish();
    }
}

impl CommandResult {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            CommandResult::Accepted { id } => {
                if let Some(id) = id {
                    o.str("id", id);
                }
            }
            CommandResult::Refused { error } => {
                let mut e = ObjectWriter::new(o.key("error"));
                e.str("kind", error.kind).str("message", &error.message);
                e.finish();
            }
        }
        o.finish();
    }
}

impl AppEvent {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            AppEvent::State { state } => {
                o.str("type", "state");
                state.write(o.key("state"));
            }
            AppEvent::Subscription {
                channel_id,
                state,
                epoch,
                last_seq,
            } => {
                o.str("type", "subscription").str("channelId", channel_id);
                state.write(o.key("state"));
                opt_str(&mut o, "epoch", epoch.as_deref());
                o.u64("lastSeq", *last_seq);
            }
            AppEvent::Log { channel_id, event } => {
                o.str("type", "log").str("channelId", channel_id);
                event.write(o.key("event"));
            }
            AppEvent::LogRef {
                channel_id,
                index,
                count,
            } => {
                o.str("type", "logRef")
                    .str("channelId", channel_id)
                    .u64("index", u64::from(*index))
                    .u64("count", u64::from(*count));
            }
            AppEvent::Truncated {
                channel_id,
                from,
                to,
            } => {
                o.str("type", "truncated")
                    .str("channelId", channel_id)
                    .u64("from", *from)
                    .u64("to", *to);
            }
            AppEvent::Reset { channel_id, epoch } => {
                o.str("type", "reset")
                    .str("channelId", channel_id)
                    .str("epoch", epoch);
            }
            AppEvent::Pending {
                channel_id,
                id,
                command,
            } => {
                o.str("type", "pending")
                    .str("channelId", channel_id)
                    .str("id", id);
                command.write(o.key("command"));
            }
            AppEvent::Outcome {
                channel_id,
                id,
                outcome,
            } => {
                o.str("type", "outcome")
                    .str("channelId", channel_id)
                    .str("id", id);
                outcome.write(o.key("outcome"));
            }
            AppEvent::Members {
                channel_id,
                members,
            } => {
                o.str("type", "members").str("channelId", channel_id);
                list(o.key("members"), members, |m, out| write_str(out, m));
            }
            AppEvent::MemberJoined {
                channel_id,
                user_id,
            } => {
                o.str("type", "memberJoined")
                    .str("channelId", channel_id)
                    .str("userId", user_id);
            }
            AppEvent::MemberLeft {
                channel_id,
                user_id,
            } => {
                o.str("type", "memberLeft")
                    .str("channelId", channel_id)
                    .str("userId", user_id);
            }
            AppEvent::Typing {
                channel_id,
                user_id,
                active,
            } => {
                o.str("type", "typing")
                    .str("channelId", channel_id)
                    .str("userId", user_id)
                    .bool("active", *active);
            }
            AppEvent::Read {
                channel_id,
                user_id,
                up_to,
            } => {
                o.str("type", "read")
                    .str("channelId", channel_id)
                    .str("userId", user_id)
                    .u64("upTo", *up_to);
            }
            AppEvent::Protocol { message } => {
                o.str("type", "protocol").str("message", message);
            }
        }
        o.finish();
    }
}

impl StateOut {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            StateOut::Idle => {
                o.str("name", "idle");
            }
            StateOut::Connecting {
                attempt,
                generation,
            } => {
                o.str("name", "connecting")
                    .u64("attempt", u64::from(*attempt))
                    .u64("generation", *generation);
            }
            StateOut::Connected {
                generation,
                user_id,
            } => {
                o.str("name", "connected")
                    .u64("generation", *generation)
                    .str("userId", user_id);
            }
            StateOut::Reconnecting { attempt, retry_at } => {
                o.str("name", "reconnecting")
                    .u64("attempt", u64::from(*attempt))
                    .u64("retryAt", *retry_at);
            }
            StateOut::Suspended { retry_at } => {
                o.str("name", "suspended").u64("retryAt", *retry_at);
            }
            StateOut::Closed => {
                o.str("name", "closed");
            }
            StateOut::Failed { reason, message } => {
                o.str("name", "failed")
                    .str("reason", reason)
                    .str("message", message);
            }
        }
        o.finish();
    }
}

impl SubscriptionOut {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            SubscriptionOut::Unsubscribed => o.str("status", "unsubscribed"),
            SubscriptionOut::Subscribing { attempt } => o
                .str("status", "subscribing")
                .u64("attempt", u64::from(*attempt)),
            SubscriptionOut::Subscribed => o.str("status", "subscribed"),
            SubscriptionOut::Unsubscribing => o.str("status", "unsubscribing"),
            SubscriptionOut::Failed { code } => {
                o.str("status", "failed").str("code", code.as_str())
            }
        };
        o.finish();
    }
}

fn opt_body(o: &mut ObjectWriter<'_>, body: Option<&Body>) {
    if let Some(body) = body {
        o.raw("body", body.json());
    }
}

impl LogOut {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            LogOut::Message {
                seq,
                message_id,
                author_id,
                client_msg_id,
                body,
                ts,
            } => {
                o.str("type", "message")
                    .u64("seq", *seq)
                    .str("messageId", message_id)
                    .str("authorId", author_id)
                    .str("clientMsgId", client_msg_id);
                opt_body(&mut o, body.as_ref());
                o.u64("ts", *ts);
            }
            LogOut::Updated {
                seq,
                message_id,
                body,
            } => {
                o.str("type", "updated")
                    .u64("seq", *seq)
                    .str("messageId", message_id);
                opt_body(&mut o, body.as_ref());
            }
            LogOut::Deleted { seq, message_id } => {
                o.str("type", "deleted")
                    .u64("seq", *seq)
                    .str("messageId", message_id);
            }
        }
        o.finish();
    }
}

impl CommandOut {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            CommandOut::Send { body } => {
                o.str("kind", "send").raw("body", body.json());
            }
            CommandOut::Update { message_id, body } => {
                o.str("kind", "update")
                    .str("messageId", message_id)
                    .raw("body", body.json());
            }
            CommandOut::Delete { message_id } => {
                o.str("kind", "delete").str("messageId", message_id);
            }
        }
        o.finish();
    }
}

impl OutcomeOut {
    fn write(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            OutcomeOut::Sent { seq, message_id } => {
                o.str("status", "sent")
                    .u64("seq", *seq)
                    .str("messageId", message_id);
            }
            OutcomeOut::Applied { seq } => {
                o.str("status", "applied").u64("seq", *seq);
            }
            OutcomeOut::Failed {
                reason,
                code,
                message,
            } => {
                o.str("status", "failed").str("reason", reason);
                opt_str(&mut o, "code", code.map(ErrorCode::as_str));
                o.str("message", message);
            }
        }
        o.finish();
    }
}

impl Inspection {
    /// The counters as JSON text, for JavaScript.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut o = ObjectWriter::new(&mut out);
        o.str("state", self.state)
            .u64("armedTimers", self.armed_timers as u64)
            .u64("pendingRequests", self.pending_requests as u64)
            .u64("outbox", self.outbox as u64)
            .u64("held", self.held as u64);
        o.finish();
        out
    }
}
