//! The client state machine: connection, subscriptions and message sync.
//!
//! [`Client`] is sans-IO. It never opens a socket or reads a clock: the
//! driver opens transports when told ([`Transmit::Open`]), feeds what they
//! report ([`Client::handle_transport`]) and passes `now` into every call.
//! See [`Client`] for the loop a driver runs.

mod channel;
mod config;
mod connection;
mod delivery;
mod events;
#[cfg(any(test, feature = "test-util"))]
mod fake_server;
mod frames;
mod inbox;
mod outbox;
mod presence;
mod replies;
mod requests;
mod resync;
mod sending;
mod snapshot_json;
mod state_chart;
mod strays;
mod subscriptions;
mod timers;
mod vecmap;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use vecmap::{VecMap, VecSet};

pub use channel::ChannelView;
pub use config::{Backoff, ClientConfig, Heartbeat};
pub use events::{
    ClientEvent, CloseReason, ConnectionState, EntryId, FailReason, OpId, Outcome, ProtocolError,
    RestoreError, SendError, SendFailure, SubscribeError, SubscriptionState, Transmit,
    TransportEvent,
};
#[cfg(any(test, feature = "test-util"))]
pub use fake_server::FakeServer;
pub use outbox::{Command, EntryState, OutboxEntry, OutboxSnapshot, SnapshotEntry};

use crate::ids::{ChannelId, UserId};
use crate::{Instant, Rng};
use channel::Channel;
use inbox::InboxOut;
use outbox::Outbox;
use requests::Requests;
use strays::Stray;
use timers::{TimerKey, Timers};

/// Most timers fired by one `handle_timeout` call; the rest fire on the
/// next call. A guard against a zero-length timer re-arming itself forever.
const TIMER_FIRINGS_MAX: usize = 10_000;

/// The handshake credentials; redacted in `Debug` so logs never carry them.
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A chat client's connection, subscriptions, outbox and inbox, as a pure
/// state machine.
///
/// # Driving it
///
/// Four kinds of methods: app commands (`connect`, `subscribe`, `send`, ...),
/// inputs (`handle_transport`, `handle_timeout`), outputs (`poll_*`) and
/// getters. After **every** command or input call, a driver must:
///
/// 1. drain [`poll_transmit`](Client::poll_transmit) until `None`, doing
///    what each [`Transmit`] says (open a transport, send a frame, close);
/// 2. drain [`poll_event`](Client::poll_event) until `None`, handing each
///    [`ClientEvent`] to the app;
/// 3. re-arm its single timer from [`poll_timeout`](Client::poll_timeout)
///    and call [`handle_timeout`](Client::handle_timeout) when it fires.
///
/// `now` must not go backwards between calls (an earlier `now` is treated as
/// no time passing). A `handle_timeout` that comes early is a harmless
/// no-op, so a driver need not be precise.
///
/// The same inputs always give the same outputs: time and randomness (the
/// `seed`) are inputs, and every collection that reaches an output iterates
/// in a fixed order.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    token: Token,
    rng: Rng,
    /// Random per-instance prefix of client message ids.
    instance: u64,
    /// Counter behind client message ids and op ids.
    next_local: u64,
    state: ConnectionState,
    /// The latest generation handed out.
    generation: u64,
    /// The latest generation whose transport reported `Opened`.
    opened: u64,
    /// The attempt in progress or scheduled, within the current offline streak.
    attempt: u32,
    /// When the client last went offline (or started connecting).
    offline_since: Option<Instant>,
    ping_nonce: u64,
    /// The send window in force: `config.send_window`, halved when a
    /// transport dies with sends in flight, grown back by one per ack.
    window: usize,
    timers: Timers,
    requests: Requests,
    outbox: Outbox,
    channels: VecMap<ChannelId, Channel>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    /// Channels the server sent events of but we do not know, with the
    /// leave asking it to stop (bounded by `STRAYS_MAX`).
    strays: VecMap<ChannelId, Stray>,
    /// What an inbox last asked to tell the app, emptied as it is told:
    /// kept for its room, so a live event allocates nothing here. Never
    /// longer than one inbox's buffer plus one page.
    inbox_out: Vec<InboxOut>,
    /// Deliberate bugs switched on (test-only; see [`crate::sabotage`]).
    #[cfg(feature = "sabotage")]
    sabotage: crate::sabotage::Sabotage,
}

impl Client {
    /// Creates an idle client. `token` is sent in every `hello`; `seed`
    /// drives backoff jitter and the client-instance id of message ids.
    #[must_use]
    pub fn new(config: ClientConfig, token: String, seed: u64) -> Client {
        let mut rng = Rng::new(seed);
        let instance = rng.next_u64();
        let window = config.send_window;
        Client {
            config,
            token: Token(token),
            rng,
            instance,
            next_local: 0,
            state: ConnectionState::Idle,
            generation: 0,
            opened: 0,
            attempt: 0,
            offline_since: None,
            ping_nonce: 0,
            window,
            timers: Timers::default(),
            requests: Requests::default(),
            outbox: Outbox::default(),
            channels: VecMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            strays: VecMap::new(),
            inbox_out: Vec::new(),
            #[cfg(feature = "sabotage")]
            sabotage: crate::sabotage::Sabotage::default(),
        }
    }

    /// Switches deliberate bugs on in this client (unstable, test-only; see
    /// [`crate::sabotage`]): a setter, not a config field, so no config's
    /// shape depends on the feature.
    #[cfg(feature = "sabotage")]
    pub fn set_sabotage(&mut self, sabotage: crate::sabotage::Sabotage) {
        self.sabotage = sabotage;
    }

    /// Replaces the credentials the next `hello` carries. Tokens expire: a
    /// driver fetches a fresh one before each connection attempt (on
    /// [`Transmit::Open`]) and hands it over before reporting the
    /// transport opened. The session already open keeps its identity.
    pub fn set_token(&mut self, token: String) {
        self.token = Token(token);
    }

    /// The next thing the driver must do on a transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Client::handle_timeout) is next needed;
    /// `None` when no timer is armed (e.g. after `close`).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires every timer due at `now`. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        for _ in 0..TIMER_FIRINGS_MAX {
            let Some(key) = self.timers.pop_due(now) else {
                return;
            };
            tracing::trace!(?key, %now, "timer fired");
            self.on_timer(now, key);
        }
    }

    fn on_timer(&mut self, now: Instant, key: TimerKey) {
        match key {
            TimerKey::Connect => self.on_connect_timeout(now),
            TimerKey::Reconnect => self.on_reconnect_due(now),
            TimerKey::Ping => self.on_ping_due(now),
            TimerKey::PingDeadline => self.on_heartbeat_timeout(now),
            TimerKey::OutboxPause => self.pump(now),
            TimerKey::Resync => self.on_resync_due(now),
            TimerKey::HistoryRetry(channel) => self.ensure_history(now, &channel),
            TimerKey::JoinRetry(channel) => self.on_join_retry(now, channel),
            TimerKey::Request(req) => self.on_request_timeout(now, req),
            TimerKey::LocalTyping(channel) => self.on_local_typing_expired(now, channel),
            TimerKey::RemoteTyping(channel, user) => self.on_remote_typing_expired(channel, user),
        }
    }

    /// The connection's state.
    #[must_use]
    pub fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// Our verified identity while connected.
    #[must_use]
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.state {
            ConnectionState::Connected { user_id, .. } => Some(user_id),
            _ => None,
        }
    }

    /// A summary of a channel the client knows (desired, or still leaving).
    #[must_use]
    pub fn channel(&self, channel: &ChannelId) -> Option<ChannelView> {
        self.channels.get(channel).map(Channel::view)
    }

    /// Where the subscription to `channel` stands, `None` when the client
    /// does not know it: [`Client::channel`]'s `subscription` without
    /// copying the member and typing lists, for callers that ask often.
    #[must_use]
    pub fn subscription(&self, channel: &ChannelId) -> Option<SubscriptionState> {
        self.channels.get(channel).map(|c| c.sub.view())
    }

    /// The channels the client knows, in name order.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelId> {
        self.channels.keys()
    }

    /// The outbox, in send order.
    pub fn outbox(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.outbox.iter()
    }

    /// Every unresolved outbox entry, for the app to persist.
    #[must_use]
    pub fn export_outbox(&self) -> OutboxSnapshot {
        self.outbox.export()
    }

    /// Adds a persisted outbox's entries (those not present already) as
    /// pending; they go out once their channel is subscribed.
    ///
    /// Subscribe to the app's channels first: an entry for a channel that is
    /// not desired at restore time gets its outcome at once
    /// (`Failed(Unsubscribed)`), so no restored entry can wait forever.
    pub fn restore_outbox(
        &mut self,
        now: Instant,
        snapshot: OutboxSnapshot,
    ) -> Result<(), RestoreError> {
        let max_op = self.outbox.restore(snapshot, self.config.outbox_max)?;
        if let Some(counter) = max_op.counter_of(self.instance) {
            self.next_local = self.next_local.max(counter);
        }
        let orphans: VecSet<ChannelId> = self
            .outbox
            .iter()
            .map(|e| &e.channel)
            .filter(|ch| !self.channels.get(*ch).is_some_and(|c| c.desired))
            .cloned()
            .collect();
        for channel in orphans.keys() {
            self.fail_channel_outbox(channel, SendFailure::Unsubscribed, true);
        }
        self.pump(now);
        Ok(())
    }

    /// How many timers are armed (0 after `close`): a leak check.
    #[must_use]
    pub fn armed_timers(&self) -> usize {
        self.timers.len()
    }

    /// How many requests await a reply (0 when offline): a leak check.
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    fn emit(&mut self, event: ClientEvent) {
        self.events.push_back(event);
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            tracing::debug!(
                from = self.state.name(),
                to = state.name(),
                "connection state"
            );
            self.state = state.clone();
            self.emit(ClientEvent::State(state));
        }
    }
}
