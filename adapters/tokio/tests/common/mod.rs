//! Helpers shared by the integration tests: a server on loopback, clients
//! with fast timers, and an event probe whose waits are bounded.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lockstep_core::client::{Backoff, ClientEvent, ConnectionState, Heartbeat, SubscriptionState};
use lockstep_core::ids::{ChannelId, ClientMsgId, UserId};
use lockstep_core::server::Open;
use lockstep_core::wire::{Body, LogEvent, NewMessage};
use lockstep_tokio::client::{ClientDriverConfig, ClientHandle, Events, SendHandle, spawn_client};
use lockstep_tokio::framed::TcpConnector;
use lockstep_tokio::server::{
    DevAuthenticator, ServerDriverConfig, ServerHandle, SharedMemStore, TokioClock, spawn_server,
};
use tokio::net::TcpListener;

/// Longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn channel(name: &str) -> ChannelId {
    ChannelId::new(name).unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// Starts a server with `store` on `addr` (port 0 picks one).
pub async fn start_server(addr: SocketAddr, store: SharedMemStore) -> (ServerHandle, SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn_server(
        ServerDriverConfig::default(),
        Open,
        store,
        TokioClock::new(),
    );
    server.serve_tcp(listener, Arc::new(DevAuthenticator::new()));
    (server, addr)
}

fn fast(base_ms: u64) -> Backoff {
    Backoff {
        base: Duration::from_millis(base_ms),
        cap: Duration::from_millis(base_ms * 4),
        factor: 2.0,
        jitter: 0.2,
    }
}

/// A client config with timers short enough for tests.
pub fn fast_config(token: &str, seed: u64, reconnect_base_ms: u64) -> ClientDriverConfig {
    let mut config = ClientDriverConfig::new(token, seed);
    config.client.connect_timeout = Duration::from_secs(2);
    config.client.reconnect_backoff = fast(reconnect_base_ms);
    config.client.join_timeout = Duration::from_secs(2);
    config.client.join_backoff = fast(100);
    config.client.request_timeout = Duration::from_secs(2);
    config.client.send_backoff = fast(100);
    // Generous on real sockets: a loaded 2-core machine can stall a task
    // for a second, and a false heartbeat loss would be a reconnect the
    // test did not cause. A closed socket is seen at once anyway.
    config.client.heartbeat = Some(Heartbeat {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(15),
    });
    config
}

/// [`fast_config`] with a quick heartbeat, for simulated networks (turmoil's
/// virtual time does not stall) where only the heartbeat can tell a
/// half-open connection.
pub fn quick_heartbeat(mut config: ClientDriverConfig) -> ClientDriverConfig {
    config.client.heartbeat = Some(Heartbeat {
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
    });
    config
}

/// A client app under test: its handle and everything it has seen.
pub struct App {
    pub name: &'static str,
    pub handle: ClientHandle,
    pub events: Events,
    pub seen: Vec<ClientEvent>,
}

impl App {
    pub fn start(name: &'static str, config: ClientDriverConfig, addr: SocketAddr) -> App {
        App::with_connector(name, config, TcpConnector { addr })
    }

    pub fn with_connector(
        name: &'static str,
        config: ClientDriverConfig,
        connector: impl lockstep_tokio::transport::Connector,
    ) -> App {
        let (handle, events) = spawn_client(config, connector);
        App {
            name,
            handle,
            events,
            seen: Vec::new(),
        }
    }

    /// Reads events until `pred` holds for one of them; fails the test
    /// after [`WAIT`] instead of hanging.
    pub async fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&ClientEvent) -> bool) {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                match self.events.next().await {
                    Some(e) => {
                        let hit = pred(&e);
                        self.seen.push(e);
                        if hit {
                            return true;
                        }
                    }
                    None => return false,
                }
            }
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "{}: timed out or stopped waiting for {what}; saw {:#?}",
            self.name,
            self.seen
        );
    }

    /// Connects and expects the handshake to be refused for good (a
    /// stranger's token), then closes.
    pub async fn refused_for_good(self) {
        self.handle.connect();
        let refused = tokio::time::timeout(WAIT, self.handle.connected())
            .await
            .unwrap();
        assert!(
            matches!(
                refused,
                Err(lockstep_tokio::client::ConnectError::Failed(_))
            ),
            "{refused:?}"
        );
        self.handle.close().await;
    }

    pub async fn subscribed(&mut self, ch: &ChannelId) {
        let ch = ch.clone();
        self.wait_for("subscribed", |e| {
            matches!(e, ClientEvent::Subscription { channel, state: SubscriptionState::Subscribed } if *channel == ch)
        })
        .await;
    }

    pub async fn connected(&mut self) {
        self.wait_for("connected", |e| {
            matches!(e, ClientEvent::State(ConnectionState::Connected { .. }))
        })
        .await;
    }

    /// Waits until the log of `ch` holds a message with each id.
    pub async fn has_messages(&mut self, ch: &ChannelId, ids: &[ClientMsgId]) {
        let mut missing: Vec<ClientMsgId> = ids
            .iter()
            .filter(|id| !self.messages(ch).iter().any(|m| &m.client_msg_id == *id))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let ch = ch.clone();
        self.wait_for("messages", |e| {
            if let ClientEvent::Log {
                channel,
                event: LogEvent::Message(m),
            } = e
            {
                if *channel == ch {
                    missing.retain(|id| *id != m.client_msg_id);
                }
            }
            missing.is_empty()
        })
        .await;
    }

    /// The messages of `ch` delivered so far, in delivery order.
    pub fn messages(&self, ch: &ChannelId) -> Vec<NewMessage> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Log {
                    channel,
                    event: LogEvent::Message(m),
                } if channel == ch => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Asserts `ch`'s log was delivered as seqs 1, 2, 3, ... with no gap
    /// and no duplicate.
    pub fn assert_contiguous(&self, ch: &ChannelId) {
        let seqs: Vec<u64> = self
            .seen
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Log { channel, event } if channel == ch => Some(event.seq().0),
                _ => None,
            })
            .collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "{}: log of {ch} not contiguous", self.name);
    }

    /// How many outcome events the app saw for a client message id.
    pub fn outcomes_of(&self, id: &ClientMsgId) -> usize {
        self.seen
            .iter()
            .filter(|e| matches!(e, ClientEvent::Outcome { id: lockstep_core::client::EntryId::Message(m), .. } if m == id))
            .count()
    }

    pub fn send(&self, ch: &ChannelId, text: &str) -> lockstep_tokio::client::SendHandle {
        self.handle.send(ch.clone(), Body::text(text)).unwrap()
    }
}

/// Texts of messages, for readable assertions.
pub fn texts(messages: &[NewMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.body.as_ref().and_then(Body::as_text).unwrap_or_default())
        .collect()
}

/// Waits (bounded) for every send's outcome and returns the message ids and
/// the acked seqs, in send order; any outcome but `Sent` fails the test.
pub async fn sent_in_order(sends: Vec<SendHandle>) -> (Vec<ClientMsgId>, Vec<u64>) {
    let ids = sends
        .iter()
        .map(|s| s.client_msg_id().unwrap().clone())
        .collect();
    let mut seqs = Vec::new();
    for s in sends {
        match tokio::time::timeout(WAIT, s.outcome())
            .await
            .unwrap()
            .unwrap()
        {
            lockstep_core::client::Outcome::Sent { seq, .. } => seqs.push(seq.0),
            other => panic!("{other:?}"),
        }
    }
    (ids, seqs)
}
