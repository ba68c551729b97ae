//! One client in the world: the app it runs (lockstep's client machine or
//! a plain socket.io-client app), its transport, and the app's intent.

use std::collections::BTreeSet;

use lockstep_core::client::{
    ChannelView, Client, ClientConfig, ClientEvent, ConnectionState, SubscriptionState, Transmit,
    TransportEvent,
};
use lockstep_core::ids::{ChannelId, ClientMsgId, MessageId, Seq, UserId};
use lockstep_core::wire::Body;
use lockstep_core::{Instant, Rng};

use crate::net::{ClientIx, ConnId};
use crate::oracle::{ClientView, Internals};
use crate::plain::{PlainClient, PlainConfig};

/// The app's side of a client: intent that survives a rebuild.
#[derive(Debug, Default)]
pub(crate) struct App {
    /// Channels the app asked for (and did not give up).
    pub(crate) desired: BTreeSet<ChannelId>,
    /// Whether the app wants to be online (connect called, close not).
    pub(crate) online: bool,
    /// Messages this client got acked, for edits and deletes.
    pub(crate) own: Vec<(ChannelId, MessageId)>,
}

/// The client an app runs. The world drives both the same way (`handle_*`
/// in, `poll_*` out) and the oracle judges both from the same events.
#[derive(Debug)]
pub(crate) enum Machine {
    /// lockstep's client machine.
    Lockstep(Box<Client>),
    /// A plain socket.io-client app.
    Plain(Box<PlainClient>),
}

impl Machine {
    pub(crate) fn connect(&mut self, now: Instant) {
        match self {
            Machine::Lockstep(c) => c.connect(now),
            Machine::Plain(p) => p.connect(now),
        }
    }

    pub(crate) fn close(&mut self, now: Instant) {
        match self {
            Machine::Lockstep(c) => c.close(now),
            Machine::Plain(p) => p.close(now),
        }
    }

    /// Whether the app may ask for `channel` (the machine's channel limit).
    pub(crate) fn subscribe(&mut self, now: Instant, channel: ChannelId) -> bool {
        match self {
            Machine::Lockstep(c) => c.subscribe(now, channel).is_ok(),
            Machine::Plain(p) => {
                p.subscribe(now, channel);
                true
            }
        }
    }

    pub(crate) fn unsubscribe(&mut self, now: Instant, channel: ChannelId) {
        match self {
            Machine::Lockstep(c) => c.unsubscribe(now, channel),
            Machine::Plain(p) => p.unsubscribe(now, channel),
        }
    }

    pub(crate) fn send(
        &mut self,
        now: Instant,
        channel: ChannelId,
        body: Body,
    ) -> Option<ClientMsgId> {
        match self {
            Machine::Lockstep(c) => c.send(now, channel, body).ok(),
            Machine::Plain(p) => p.send(now, channel, body),
        }
    }

    pub(crate) fn update(
        &mut self,
        now: Instant,
        channel: ChannelId,
        target: MessageId,
        body: Body,
    ) {
        match self {
            Machine::Lockstep(c) => {
                let _ = c.update(now, channel, target, body);
            }
            Machine::Plain(p) => {
                let _ = p.update(now, channel, target, body);
            }
        }
    }

    pub(crate) fn delete(&mut self, now: Instant, channel: ChannelId, target: MessageId) {
        match self {
            Machine::Lockstep(c) => {
                let _ = c.delete(now, channel, target);
            }
            Machine::Plain(p) => {
                let _ = p.delete(now, channel, target);
            }
        }
    }

    pub(crate) fn mark_read(&mut self, now: Instant, channel: ChannelId, up_to: Seq) {
        match self {
            Machine::Lockstep(c) => c.mark_read(now, channel, up_to),
            Machine::Plain(p) => p.mark_read(now, channel, up_to),
        }
    }

    pub(crate) fn set_typing(&mut self, now: Instant, channel: ChannelId, active: bool) {
        match self {
            Machine::Lockstep(c) => c.set_typing(now, channel, active),
            Machine::Plain(p) => p.set_typing(now, channel, active),
        }
    }

    pub(crate) fn handle_transport(&mut self, now: Instant, event: TransportEvent) {
        match self {
            Machine::Lockstep(c) => c.handle_transport(now, event),
            Machine::Plain(p) => p.handle_transport(now, event),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Machine::Lockstep(c) => c.handle_timeout(now),
            Machine::Plain(p) => p.handle_timeout(now),
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Machine::Lockstep(c) => c.poll_transmit(),
            Machine::Plain(p) => p.poll_transmit(),
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<ClientEvent> {
        match self {
            Machine::Lockstep(c) => c.poll_event(),
            Machine::Plain(p) => p.poll_event(),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Machine::Lockstep(c) => c.poll_timeout(),
            Machine::Plain(p) => p.poll_timeout(),
        }
    }

    /// Whether it is connected (the handshake done).
    pub(crate) fn is_connected(&self) -> bool {
        match self {
            Machine::Lockstep(c) => matches!(c.state(), ConnectionState::Connected { .. }),
            Machine::Plain(p) => p.is_connected(),
        }
    }

    /// Whether it stopped trying to be online by itself (closed, or failed
    /// for good): the liveness phase does not wait for it.
    pub(crate) fn gave_up(&self) -> bool {
        match self {
            Machine::Lockstep(c) => matches!(
                c.state(),
                ConnectionState::Closed | ConnectionState::Failed { .. }
            ),
            Machine::Plain(p) => p.is_off(),
        }
    }

    /// A short name of its connection state.
    pub(crate) fn state_name(&self) -> &'static str {
        match self {
            Machine::Lockstep(c) => c.state().name(),
            Machine::Plain(p) => p.state_name(),
        }
    }

    /// Where its subscription to `channel` stands (cheaper than a view).
    pub(crate) fn subscription(&self, channel: &ChannelId) -> Option<SubscriptionState> {
        match self {
            Machine::Lockstep(c) => c.subscription(channel),
            Machine::Plain(p) => p.subscription(channel),
        }
    }

    /// The first channel it keeps, in name order, that is not in
    /// `desired` yet not unsubscribed either, with where it stands.
    pub(crate) fn first_undesired_subscription<'a>(
        &'a self,
        desired: &BTreeSet<ChannelId>,
    ) -> Option<(&'a ChannelId, Option<SubscriptionState>)> {
        let undesired = |ch: &&ChannelId| !desired.contains(*ch);
        let stands = |ch: &'a ChannelId| {
            let state = self.subscription(ch);
            state
                .as_ref()
                .is_some_and(|s| *s != SubscriptionState::Unsubscribed)
                .then_some((ch, state))
        };
        match self {
            Machine::Lockstep(c) => c.channels().filter(undesired).find_map(stands),
            Machine::Plain(p) => p.channels().filter(undesired).find_map(stands),
        }
    }

    /// Sends, edits and deletes not resolved yet.
    pub(crate) fn unresolved(&self) -> usize {
        match self {
            Machine::Lockstep(c) => c.outbox().count(),
            Machine::Plain(p) => p.unresolved(),
        }
    }

    /// The channel of the oldest unresolved entry, without describing it.
    pub(crate) fn first_unresolved_channel(&self) -> Option<ChannelId> {
        match self {
            Machine::Lockstep(c) => c.outbox().next().map(|e| e.channel.clone()),
            Machine::Plain(p) => p.first_unresolved().map(|(ch, _, _)| ch),
        }
    }

    /// The oldest unresolved entry, described, and its channel.
    pub(crate) fn first_unresolved(&self) -> Option<(ChannelId, String)> {
        match self {
            Machine::Lockstep(c) => c.outbox().next().map(|e| {
                (
                    e.channel.clone(),
                    format!(
                        "{:?} {:?}; {} timers",
                        e.command.id(),
                        e.state,
                        c.armed_timers()
                    ),
                )
            }),
            Machine::Plain(p) => p
                .first_unresolved()
                .map(|(ch, id, state)| (ch, format!("{id:?} {state}"))),
        }
    }

    /// The client machine, if this is one.
    pub(crate) fn lockstep(&self) -> Option<&Client> {
        match self {
            Machine::Lockstep(c) => Some(c),
            Machine::Plain(_) => None,
        }
    }

    /// The plain app, if this is one.
    pub(crate) fn plain(&self) -> Option<&PlainClient> {
        match self {
            Machine::Lockstep(_) => None,
            Machine::Plain(p) => Some(p),
        }
    }
}

impl ClientView for Machine {
    fn channel(&self, channel: &ChannelId) -> Option<ChannelView> {
        match self {
            Machine::Lockstep(c) => c.channel(channel),
            Machine::Plain(p) => p.channel(channel),
        }
    }

    fn internals(&self) -> Option<Internals> {
        match self {
            Machine::Lockstep(c) => ClientView::internals(c.as_ref()),
            Machine::Plain(p) => ClientView::internals(p.as_ref()),
        }
    }
}

/// How a client is built, and rebuilt after an app restart.
#[derive(Debug, Clone)]
pub(crate) enum Recipe {
    /// The client machine's config, and what to do to each one built.
    Lockstep(Box<ClientConfig>, super::Hooks),
    Plain(PlainConfig),
}

/// A client with its current transport and app.
#[derive(Debug)]
pub(crate) struct ClientHost {
    pub(crate) ix: ClientIx,
    pub(crate) user: UserId,
    pub(crate) machine: Machine,
    /// The open transport: the machine's generation and the network's id.
    pub(crate) transport: Option<(u64, ConnId)>,
    pub(crate) app: App,
    /// How many times the machine was rebuilt (seeds differ per rebuild).
    pub(crate) incarnation: u64,
    seed_rng: Rng,
    recipe: Recipe,
}

impl ClientHost {
    pub(crate) fn new(ix: ClientIx, user: UserId, recipe: Recipe, mut seed_rng: Rng) -> Self {
        let machine = build(&recipe, &user, seed_rng.next_u64());
        ClientHost {
            ix,
            user,
            machine,
            transport: None,
            app: App::default(),
            incarnation: 0,
            seed_rng,
            recipe,
        }
    }

    /// Rebuilds the app as a restart (a page reload) would: a fresh client
    /// with a new seed, its unsent messages restored, the app's channels
    /// asked for. Returns the old transport, which the caller closes.
    pub(crate) fn rebuild(&mut self, now: Instant) -> Option<(u64, ConnId)> {
        self.incarnation += 1;
        let seed = self.seed_rng.next_u64();
        match &mut self.machine {
            Machine::Lockstep(old) => {
                let saved = old.export_outbox();
                let mut fresh = build(&self.recipe, &self.user, seed);
                if let Machine::Lockstep(c) = &mut fresh {
                    for ch in &self.app.desired {
                        let _ = c.subscribe(now, ch.clone());
                    }
                    if let Err(e) = c.restore_outbox(now, saved) {
                        tracing::warn!(client = %self.ix, %e, "outbox restore refused");
                    }
                    if self.app.online {
                        c.connect(now);
                    }
                }
                self.machine = fresh;
            }
            Machine::Plain(p) => p.reload(now, seed, self.app.online),
        }
        self.transport.take()
    }
}

fn build(recipe: &Recipe, user: &UserId, seed: u64) -> Machine {
    match recipe {
        Recipe::Lockstep(config, hooks) => Machine::Lockstep(Box::new(hooks.client(Client::new(
            ClientConfig::clone(config),
            token(user),
            seed,
        )))),
        Recipe::Plain(config) => Machine::Plain(Box::new(PlainClient::new(
            config.clone(),
            token(user),
            seed,
        ))),
    }
}

/// The lab's handshake token for a user (the world's authenticator accepts
/// exactly these).
pub(crate) fn token(user: &UserId) -> String {
    format!("dev:{user}")
}
