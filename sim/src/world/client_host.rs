//! One client in the world: its machine, its transport, and the app around
//! it (what the user asked for, which messages are its own).

use std::collections::BTreeSet;

use lockstep_core::client::{Client, ClientConfig, OutboxSnapshot};
use lockstep_core::ids::{ChannelId, MessageId, UserId};
use lockstep_core::{Instant, Rng};

use crate::net::{ClientIx, ConnId};

/// The app's side of a client: intent that survives a machine rebuild.
#[derive(Debug, Default)]
pub(crate) struct App {
    /// Channels the app asked for (and did not give up).
    pub(crate) desired: BTreeSet<ChannelId>,
    /// Whether the app wants to be online (connect called, close not).
    pub(crate) online: bool,
    /// Messages this client got acked, for edits and deletes.
    pub(crate) own: Vec<(ChannelId, MessageId)>,
}

/// A client machine with its current transport and app.
#[derive(Debug)]
pub(crate) struct ClientHost {
    pub(crate) ix: ClientIx,
    pub(crate) user: UserId,
    pub(crate) machine: Client,
    /// The open transport: the machine's generation and the network's id.
    pub(crate) transport: Option<(u64, ConnId)>,
    pub(crate) app: App,
    /// The machine's next deadline, cached after every drain.
    pub(crate) deadline: Option<Instant>,
    /// How many times the machine was rebuilt (seeds differ per rebuild).
    pub(crate) incarnation: u64,
    seed_rng: Rng,
    config: ClientConfig,
}

impl ClientHost {
    pub(crate) fn new(ix: ClientIx, user: UserId, config: ClientConfig, mut seed_rng: Rng) -> Self {
        let machine = Client::new(config.clone(), token(&user), seed_rng.next_u64());
        ClientHost {
            ix,
            user,
            machine,
            transport: None,
            app: App::default(),
            deadline: None,
            incarnation: 0,
            seed_rng,
            config,
        }
    }

    /// Rebuilds the machine as an app restart would: a fresh client with a
    /// new seed, the saved outbox restored and the app's channels asked for.
    /// Returns the old transport, which the caller closes.
    pub(crate) fn rebuild(&mut self, now: Instant, saved: OutboxSnapshot) -> Option<(u64, ConnId)> {
        self.incarnation += 1;
        self.machine = Client::new(
            self.config.clone(),
            token(&self.user),
            self.seed_rng.next_u64(),
        );
        for ch in &self.app.desired {
            let _ = self.machine.subscribe(now, ch.clone());
        }
        if let Err(e) = self.machine.restore_outbox(now, saved) {
            tracing::warn!(client = %self.ix, %e, "outbox restore refused");
        }
        if self.app.online {
            self.machine.connect(now);
        }
        self.transport.take()
    }
}

/// The lab's handshake token for a user (the world's authenticator accepts
/// exactly these).
pub(crate) fn token(user: &UserId) -> String {
    format!("dev:{user}")
}
