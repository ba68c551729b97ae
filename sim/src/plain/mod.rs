//! A plain Socket.IO client: a model of a browser app on socket.io-client
//! that follows the guidance in `docs/PROTOCOL.md` ("A plain Socket.IO
//! client") and runs no lockstep code. Most of lockstep's users will run
//! this, not the Rust client machine, so the lab mixes it into its worlds
//! and holds it to the same oracle.
//!
//! What it does, rule by rule of the guidance:
//! - socket.io-client's own reconnection (1 s doubling to 5 s, ±50%), its
//!   connect timeout (20 s) and Engine.IO's heartbeat;
//! - per channel the position `(epoch, lastSeq)` of the last event shown;
//!   on every connect, each wanted channel is joined, from its position
//!   once it has one (`{ epoch, since }`); events that come before the
//!   join's reply are held;
//! - a reply with `recovered: false` (its position too old, or the reply
//!   cut by its byte budget) and any hole in the live events are filled
//!   with `channel:history` pages from the position until the log's head
//!   (`more: false`); a page that starts past the next seq proves events
//!   gone and is shown as such (`Truncated`);
//! - every message gets a `clientMsgId` when the user sends it and keeps it
//!   until it is acknowledged, also across a page reload; sends are
//!   pipelined (a window in flight); a retryable refusal or an ack timeout
//!   resends the message with the same id once its own backoff ends, while
//!   later sends may still be in flight or go out new (the lazy resend of
//!   issue 12), but never before an earlier refused message of its channel
//!   was resent; the broadcast of one's own message confirms it like its
//!   ack; after a reconnect every unacknowledged message goes again, in
//!   order, before anything new;
//! - members from the join reply and presence events; typing shown for
//!   5 s unless refreshed.
//!
//! The oracle judges it by invariants 1 to 7 exactly as it judges the
//! client machine, from the same [`ClientEvent`]s: what it shows (`Log`,
//! `Truncated`, `Reset`), each message's one `Outcome`, what it asked to
//! join and what arrived, and, after healing, its channels, members and
//! typing ([`ChannelView`]). Invariants 8 and 9 are about lockstep's client
//! machine (its timers, its state chart); this model reports no connection
//! states and no internals, so they are not judged for it.

mod channel;
mod config;
mod frames;
mod outbox;
mod reconcile;
mod socket;

use std::collections::{BTreeMap, VecDeque};

use lockstep_core::client::{
    ChannelView, ClientEvent, CloseReason, EntryId, OpId, Outcome, SendFailure, SubscriptionState,
    Transmit, TransportEvent,
};
use lockstep_core::ids::{ChannelId, ClientMsgId, MessageId, Seq, UserId};
use lockstep_core::wire::{Body, ClientFrame, PROTOCOL_VERSION};
use lockstep_core::{Instant, Rng};

use crate::oracle::{ClientView, Internals};
use channel::{Channel, Sub};
pub use config::PlainConfig;
use outbox::{Command, Outbox};

/// Where the socket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Not connected and not trying: never connected, or
    /// `socket.disconnect()`.
    Off,
    /// socket.io-client waits to reconnect.
    Waiting { retry_at: Instant, attempt: u32 },
    /// A transport is opening or shaking hands.
    Opening {
        generation: u64,
        attempt: u32,
        deadline: Instant,
    },
    /// Connected.
    Open {
        generation: u64,
        /// When the next heartbeat probe goes.
        ping_at: Instant,
        /// A probe is unanswered: the connection is dead if nothing
        /// arrives by then.
        dead_at: Option<Instant>,
    },
    /// The token was refused (`unauthorized`): socket.io-client does not
    /// retry a middleware refusal.
    Refused,
}

/// See the module docs. Driven like the client machine: `handle_*` in,
/// `poll_*` out, drained after every call.
#[derive(Debug)]
pub struct PlainClient {
    config: PlainConfig,
    token: String,
    rng: Rng,
    /// Random per page load; the high half of every id this page makes.
    instance: u64,
    next_local: u64,
    user: Option<UserId>,
    link: Link,
    /// The latest time seen: deadlines at or before it were dealt with
    /// (or wait for something else to happen) and are not polled again.
    now: Instant,
    generation: u64,
    next_req: u64,
    next_nonce: u64,
    channels: BTreeMap<ChannelId, Channel>,
    outbox: Outbox,
    /// Channels whose events arrive unwanted, and until when a leave sent
    /// for them is not repeated.
    strays: BTreeMap<ChannelId, Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
}

impl PlainClient {
    /// An app that has loaded, not connected yet.
    #[must_use]
    pub fn new(config: PlainConfig, token: String, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let instance = rng.next_u64();
        PlainClient {
            outbox: Outbox::new(&config),
            config,
            token,
            rng,
            instance,
            next_local: 0,
            user: None,
            link: Link::Off,
            now: Instant::ZERO,
            generation: 0,
            next_req: 0,
            next_nonce: 0,
            channels: BTreeMap::new(),
            strays: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A page reload: a new page with the unsent messages the old one saved
    /// (their ids kept) and the channels the app wants; positions, members
    /// and the socket start over.
    pub fn reload(&mut self, now: Instant, seed: u64, online: bool) {
        let mut page = PlainClient::new(self.config.clone(), self.token.clone(), seed);
        page.outbox = self.outbox.reloaded(&self.config);
        for (name, ch) in &self.channels {
            if ch.desired {
                page.channels
                    .insert(name.clone(), Channel::new(name.clone()));
            }
        }
        // Ids made by the new page must not meet the restored ones.
        page.next_local = self.next_local;
        *self = page;
        if online {
            self.connect(now);
        }
    }

    // ---- app commands -----------------------------------------------------

    /// `socket.connect()`.
    pub fn connect(&mut self, now: Instant) {
        self.fire(now);
        if matches!(self.link, Link::Off | Link::Refused | Link::Waiting { .. }) {
            self.open(now, 1);
        }
    }

    /// `socket.disconnect()`: offline until `connect`.
    pub fn close(&mut self, now: Instant) {
        self.fire(now);
        if let Link::Opening { generation, .. } | Link::Open { generation, .. } = self.link {
            self.transmits.push_back(Transmit::Close {
                generation,
                reason: CloseReason::ClientClosed,
            });
        }
        self.went_offline(now);
        self.link = Link::Off;
    }

    /// The app wants `channel`: joined now if connected, else on connect.
    pub fn subscribe(&mut self, now: Instant, channel: ChannelId) {
        self.fire(now);
        let ch = self
            .channels
            .entry(channel.clone())
            .or_insert_with(|| Channel::new(channel.clone()));
        ch.desired = true;
        self.strays.remove(&channel);
        self.reconcile(now, &channel);
    }

    /// The app leaves `channel`: its unsent messages fail; a leave goes if
    /// it was joined.
    pub fn unsubscribe(&mut self, now: Instant, channel: ChannelId) {
        self.fire(now);
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        ch.desired = false;
        for id in self.outbox.drain_channel(&channel) {
            self.events.push_back(ClientEvent::Outcome {
                channel: channel.clone(),
                id,
                outcome: Outcome::Failed(SendFailure::Unsubscribed),
            });
        }
        self.reconcile(now, &channel);
    }

    /// The user sends `body`: the message gets its id now and is sent when
    /// its turn comes. `None` when the channel is not wanted or was refused.
    pub fn send(&mut self, now: Instant, channel: ChannelId, body: Body) -> Option<ClientMsgId> {
        self.fire(now);
        self.accepts(&channel)?;
        self.next_local += 1;
        let id = ClientMsgId::new(format!("p{:016x}-{}", self.instance, self.next_local)).ok()?;
        self.outbox.push(
            channel,
            Command::Send {
                id: id.clone(),
                body,
            },
        );
        self.pump(now);
        Some(id)
    }

    /// The user edits one of its messages.
    pub fn update(
        &mut self,
        now: Instant,
        channel: ChannelId,
        message_id: MessageId,
        body: Body,
    ) -> Option<OpId> {
        let op = self.next_op(now, &channel)?;
        self.outbox.push(
            channel,
            Command::Update {
                op,
                message_id,
                body,
            },
        );
        self.pump(now);
        Some(op)
    }

    /// The user deletes one of its messages.
    pub fn delete(
        &mut self,
        now: Instant,
        channel: ChannelId,
        message_id: MessageId,
    ) -> Option<OpId> {
        let op = self.next_op(now, &channel)?;
        self.outbox
            .push(channel, Command::Delete { op, message_id });
        self.pump(now);
        Some(op)
    }

    fn next_op(&mut self, now: Instant, channel: &ChannelId) -> Option<OpId> {
        self.fire(now);
        self.accepts(channel)?;
        self.next_local += 1;
        Some(OpId(
            (self.instance & !0xffff_ffff) | (self.next_local & 0xffff_ffff),
        ))
    }

    fn accepts(&self, channel: &ChannelId) -> Option<()> {
        let ch = self.channels.get(channel)?;
        (ch.desired && !matches!(ch.sub, Sub::Failed(_))).then_some(())
    }

    /// `message:read` up to `up_to` (fire and forget: the next one repeats
    /// it).
    pub fn mark_read(&mut self, now: Instant, channel: ChannelId, up_to: Seq) {
        self.fire(now);
        let joined = self
            .channels
            .get_mut(&channel)
            .filter(|c| c.sub == Sub::Joined);
        if let Some(ch) = joined {
            ch.read(up_to);
            let req = self.req();
            self.frame(ClientFrame::Read {
                req,
                channel_id: channel,
                up_to,
            });
        }
    }

    /// `typing` (no ack asked).
    pub fn set_typing(&mut self, now: Instant, channel: ChannelId, active: bool) {
        self.fire(now);
        if self
            .channels
            .get(&channel)
            .is_some_and(|c| c.sub == Sub::Joined)
        {
            self.frame(ClientFrame::Typing {
                req: None,
                channel_id: channel,
                active,
            });
        }
    }

    // ---- inputs -----------------------------------------------------------

    /// What the transport reported; events of an older transport are
    /// ignored.
    pub fn handle_transport(&mut self, now: Instant, event: TransportEvent) {
        self.fire(now);
        let generation = match &event {
            TransportEvent::Opened { generation }
            | TransportEvent::Frame { generation, .. }
            | TransportEvent::Undecodable { generation, .. }
            | TransportEvent::Closed { generation, .. } => *generation,
        };
        let live = match self.link {
            Link::Opening { generation: g, .. } | Link::Open { generation: g, .. } => g,
            _ => return,
        };
        if generation != live {
            return;
        }
        match event {
            TransportEvent::Opened { .. } => {
                self.frame(ClientFrame::Hello {
                    version: PROTOCOL_VERSION,
                    token: self.token.clone(),
                });
            }
            TransportEvent::Frame { frame, .. } => {
                if let Link::Open { dead_at, .. } = &mut self.link {
                    *dead_at = None;
                }
                self.on_frame(now, frame);
            }
            TransportEvent::Undecodable { .. } => {}
            TransportEvent::Closed { .. } => self.lost(now),
        }
        self.settle(now);
    }

    /// Fires whatever is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fire(now);
    }

    /// Runs every timer due at `now` (every input starts with it, so no
    /// deadline is passed over), then reconciles.
    fn fire(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let now = self.now;
        match self.link {
            Link::Waiting { retry_at, attempt } if retry_at <= now => self.open(now, attempt),
            Link::Opening { deadline, .. } if deadline <= now => self.abandon(now),
            Link::Open { dead_at, .. } if dead_at.is_some_and(|at| at <= now) => {
                self.abandon(now);
            }
            Link::Open {
                generation,
                ping_at,
                dead_at,
            } if ping_at <= now => {
                self.next_nonce += 1;
                self.frame(ClientFrame::Ping {
                    nonce: self.next_nonce,
                });
                self.link = Link::Open {
                    generation,
                    ping_at: now.saturating_add(self.config.ping_interval),
                    dead_at: dead_at.or(Some(now.saturating_add(self.config.ping_timeout))),
                };
            }
            _ => {}
        }
        self.outbox.on_timeout(now, &self.config, &mut self.rng);
        let names: Vec<ChannelId> = self.channels.keys().cloned().collect();
        let mut out = Vec::new();
        for name in &names {
            if let Some(ch) = self.channels.get_mut(name) {
                ch.expire_typing(now, &mut out);
                if ch.join.is_some_and(|(_, at)| at <= now) {
                    // The join's ack timed out: try again.
                    ch.join = None;
                    ch.join_retry_at = Some(now);
                    if ch.sub == Sub::Joining {
                        ch.set_sub(Sub::Idle, &mut out);
                    }
                }
                if ch.leave.is_some_and(|(_, at)| at <= now) {
                    // The leave's ack timed out: it goes again.
                    ch.leave = None;
                }
                if ch.fill.is_some_and(|(_, at)| at <= now) {
                    ch.fill = None;
                }
                if ch.resync_at.is_some_and(|at| at <= now) && ch.sub == Sub::Joined {
                    ch.resync_at = None;
                    ch.join_retry_at = Some(now);
                }
            }
        }
        self.events.extend(out);
        self.settle(now);
    }

    /// Reconciles every channel and sends what is due.
    fn settle(&mut self, now: Instant) {
        let names: Vec<ChannelId> = self.channels.keys().cloned().collect();
        for name in &names {
            self.reconcile(now, name);
        }
        self.pump(now);
    }

    // ---- outputs ----------------------------------------------------------

    /// The next transport action.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing the app learns.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the
    /// earliest deadline after the latest time seen (one already passed
    /// waits for an input, e.g. a retry for the connection).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let link = match self.link {
            Link::Waiting { retry_at, .. } => Some(retry_at),
            Link::Opening { deadline, .. } => Some(deadline),
            Link::Open {
                ping_at, dead_at, ..
            } => Some(dead_at.map_or(ping_at, |d| d.min(ping_at))),
            Link::Off | Link::Refused => None,
        };
        let now = self.now;
        let channels = self
            .channels
            .values()
            .filter_map(|c| c.next_deadline(now))
            .min();
        [link, channels, self.outbox.next_deadline(now)]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    // ---- getters ----------------------------------------------------------

    /// Whether the socket is connected.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Open { .. })
    }

    /// Whether it is not trying to connect: the app disconnected it (or
    /// never connected), or its token was refused.
    #[must_use]
    pub fn is_off(&self) -> bool {
        matches!(self.link, Link::Off | Link::Refused)
    }

    /// A short name of the socket's state, for traces and reports.
    #[must_use]
    pub fn state_name(&self) -> &'static str {
        match self.link {
            Link::Off => "off",
            Link::Waiting { .. } => "reconnecting",
            Link::Opening { .. } => "connecting",
            Link::Open { .. } => "connected",
            Link::Refused => "refused",
        }
    }

    /// A summary of one channel, `None` once the app left it and the leave
    /// is done.
    #[must_use]
    pub fn channel(&self, channel: &ChannelId) -> Option<ChannelView> {
        self.channels.get(channel).map(Channel::view)
    }

    /// Where the subscription to `channel` stands: [`PlainClient::channel`]'s
    /// `subscription` without copying the member and typing lists.
    #[must_use]
    pub fn subscription(&self, channel: &ChannelId) -> Option<SubscriptionState> {
        self.channels.get(channel).map(Channel::subscription)
    }

    /// Every channel it keeps, in order.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelId> {
        self.channels.keys()
    }

    /// Messages, edits and deletes not resolved yet.
    #[must_use]
    pub fn unresolved(&self) -> usize {
        self.outbox.len()
    }

    /// The oldest unresolved entry, for reports.
    #[must_use]
    pub fn first_unresolved(&self) -> Option<(ChannelId, EntryId, String)> {
        self.outbox
            .first()
            .map(|(ch, id, state)| (ch.clone(), id, state))
    }
}

impl ClientView for PlainClient {
    fn channel(&self, channel: &ChannelId) -> Option<ChannelView> {
        PlainClient::channel(self, channel)
    }

    /// A plain client has no machine internals to judge (invariant 8 is
    /// about lockstep's client machine).
    fn internals(&self) -> Option<Internals> {
        None
    }
}
