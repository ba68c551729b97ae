//! The tokio client driver: one loop task around
//! [`lockstep_core::client::Client`] and an async handle that feels native.
//!
//! [`spawn_client`] starts the driver and returns a [`ClientHandle`] (cheap to
//! clone; commands return at once) and the [`Events`] stream. Dropping every
//! handle closes the client: the driver ends and closes its transport.

mod config;
mod driver;
mod internals;
mod link;
mod shared;
mod stats;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use lockstep_core::client::{
    ChannelView, Client, ClientEvent, ConnectionState, EntryId, FailReason, OpId, OutboxSnapshot,
    Outcome, RestoreError, SendError, SubscribeError,
};
use lockstep_core::ids::{ChannelId, ClientMsgId, MessageId, Seq, UserId};
use lockstep_core::wire::Body;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use config::ClientDriverConfig;
pub use internals::{InternalsOverflowed, READINGS_MAX, StateInternals};
pub use stats::{ACK_LATENCY_BUCKET_COUNT, ACK_LATENCY_BUCKETS_MS, AckLatency, ClientStats};

use crate::transport::Connector;
use driver::Driver;
use shared::Shared;

/// The driver has stopped (the client was closed); no outcome will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client driver has stopped")]
pub struct DriverStopped;

/// Why [`ClientHandle::connected`] gave up waiting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The connection failed for good (refused, attempts exhausted);
    /// `connect` starts over.
    #[error("connection failed: {0}")]
    Failed(FailReason),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

/// Starts the client driver on `config.tracker` and returns the handle and
/// the event stream. The client stays idle until [`ClientHandle::connect`].
pub fn spawn_client<C: Connector>(
    config: ClientDriverConfig,
    connector: C,
) -> (ClientHandle, Events) {
    spawn_client_with(config, connector, |_| {})
}

/// Like [`spawn_client`], with the machine handed to `prepare` before the
/// driver starts: to restore a saved outbox or subscribe ahead of the first
/// connection, or, in tests, to switch the core's deliberate bugs on.
pub fn spawn_client_with<C: Connector>(
    config: ClientDriverConfig,
    connector: C,
    prepare: impl FnOnce(&mut Client),
) -> (ClientHandle, Events) {
    let mut client = Client::new(config.client, config.token, config.seed);
    prepare(&mut client);
    let shared = Arc::new(Shared::new(client, config.record_internals));
    let (events_tx, events_rx) = mpsc::channel(config.events_capacity.max(1));
    let (state_tx, state_rx) = watch::channel(ConnectionState::Idle);
    let done = CancellationToken::new();
    let driver = Driver {
        shared: Arc::clone(&shared),
        connector: Arc::new(connector),
        tracker: config.tracker.clone(),
        events: events_tx,
        state: state_tx,
        outgoing_capacity: config.outgoing_capacity,
        incoming_capacity: config.incoming_capacity,
        done: done.clone(),
    };
    config.tracker.spawn(driver.run());
    let handle = ClientHandle {
        inner: Arc::new(HandleInner {
            shared,
            state: state_rx,
            done,
        }),
    };
    (handle, Events { rx: events_rx })
}

/// Every [`ClientEvent`], in the order the machine produced them: state
/// changes, each channel's log events in seq order exactly once, outcomes,
/// presence, typing, receipts and protocol errors. Ends when the driver
/// stops.
///
/// Read it promptly: when its buffer is full the driver waits for the app
/// (backpressure), it never drops an event.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// The next event; `None` once the driver has stopped.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }
}

impl Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// Awaits the one outcome of an outbox entry (a send, edit or delete).
#[derive(Debug)]
pub struct SendHandle {
    entry: EntryId,
    outcome: oneshot::Receiver<Outcome>,
}

impl SendHandle {
    /// Which entry this is (for a send, its client message id).
    #[must_use]
    pub fn entry(&self) -> &EntryId {
        &self.entry
    }

    /// The client message id of a send (`None` for an edit or delete).
    #[must_use]
    pub fn client_msg_id(&self) -> Option<&ClientMsgId> {
        match &self.entry {
            EntryId::Message(id) => Some(id),
            EntryId::Op(_) => None,
        }
    }

    /// Waits for the outcome. It also appears once on the [`Events`] stream.
    ///
    /// # Errors
    ///
    /// [`DriverStopped`] when the client closed first (the entry stays in
    /// the exported outbox).
    pub async fn outcome(self) -> Result<Outcome, DriverStopped> {
        self.outcome.await.map_err(|_| DriverStopped)
    }
}

#[derive(Debug)]
struct HandleInner {
    shared: Arc<Shared>,
    state: watch::Receiver<ConnectionState>,
    done: CancellationToken,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        // The last handle is gone: nobody can use the client any more.
        self.shared.stop.cancel();
    }
}

/// The app's handle on a running client. Cheap to clone; every command runs
/// the machine at once and wakes the driver, so none of them waits on the
/// network.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    inner: Arc<HandleInner>,
}

impl ClientHandle {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Starts connecting (single flight: a second call joins the first;
    /// after `Failed` it starts over).
    pub fn connect(&self) {
        self.shared().command(|c, now| c.client.connect(now));
    }

    /// Wants `channel` subscribed; the driver joins (and re-joins after
    /// every reconnect) and reports progress as events.
    ///
    /// # Errors
    ///
    /// When too many channels are wanted or the client is closed.
    pub fn subscribe(&self, channel: ChannelId) -> Result<(), SubscribeError> {
        self.shared()
            .command(|c, now| c.client.subscribe(now, channel))
    }

    /// No longer wants `channel`.
    pub fn unsubscribe(&self, channel: ChannelId) {
        self.shared()
            .command(|c, now| c.client.unsubscribe(now, channel));
    }

    /// Queues a message and returns at once with its optimistic entry; it
    /// goes out whenever the channel is subscribed and is retried with the
    /// same id until stored.
    ///
    /// # Errors
    ///
    /// When the outbox is full, the channel is not wanted, or the client is
    /// closed.
    pub fn send(&self, channel: ChannelId, body: Body) -> Result<SendHandle, SendError> {
        self.shared().command(|c, now| {
            let id = c.client.send(now, channel, body)?;
            c.stats.sent(id.clone(), tokio::time::Instant::now());
            Ok(Self::waiter(c, EntryId::Message(id)))
        })
    }

    /// Queues an edit of one's own message.
    ///
    /// # Errors
    ///
    /// As [`ClientHandle::send`].
    pub fn update(
        &self,
        channel: ChannelId,
        message_id: MessageId,
        body: Body,
    ) -> Result<SendHandle, SendError> {
        self.shared().command(|c, now| {
            let op = c.client.update(now, channel, message_id, body)?;
            Ok(Self::waiter(c, EntryId::Op(op)))
        })
    }

    /// Queues a deletion of one's own message.
    ///
    /// # Errors
    ///
    /// As [`ClientHandle::send`].
    pub fn delete(
        &self,
        channel: ChannelId,
        message_id: MessageId,
    ) -> Result<SendHandle, SendError> {
        self.shared().command(|c, now| {
            let op: OpId = c.client.delete(now, channel, message_id)?;
            Ok(Self::waiter(c, EntryId::Op(op)))
        })
    }

    fn waiter(core: &mut shared::Core, entry: EntryId) -> SendHandle {
        let (tx, rx) = oneshot::channel();
        core.waiters.insert(entry.clone(), tx);
        SendHandle { entry, outcome: rx }
    }

    /// Marks `channel` read up to `up_to` (max wins).
    pub fn mark_read(&self, channel: ChannelId, up_to: Seq) {
        self.shared()
            .command(|c, now| c.client.mark_read(now, channel, up_to));
    }

    /// Shows or hides our typing indicator in `channel`.
    pub fn typing(&self, channel: ChannelId, active: bool) {
        self.shared()
            .command(|c, now| c.client.set_typing(now, channel, active));
    }

    /// Adds a persisted outbox's entries.
    ///
    /// # Errors
    ///
    /// When the snapshot's version is unknown or the outbox would overflow.
    pub fn restore_outbox(&self, snapshot: OutboxSnapshot) -> Result<(), RestoreError> {
        self.shared()
            .command(|c, now| c.client.restore_outbox(now, snapshot))
    }

    /// Every unresolved outbox entry, for the app to persist.
    #[must_use]
    pub fn export_outbox(&self) -> OutboxSnapshot {
        self.shared().lock().client.export_outbox()
    }

    /// The connection state now.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.inner.state.borrow().clone()
    }

    /// The client's counters so far (connects, reconnections,
    /// subscriptions, acks and ack latency), for dashboards and health
    /// checks. A cheap copy taken under the handle's lock.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.shared().lock().stats.snapshot()
    }

    /// The machine's readings at the oldest connection-state event not yet
    /// paired with one, in the order of the `State` events: take one per
    /// `ClientEvent::State` read. `Ok(None)` when there is none (or
    /// recording is off: [`ClientDriverConfig::record_internals`]).
    ///
    /// # Errors
    ///
    /// [`InternalsOverflowed`] once more than [`READINGS_MAX`] went untaken.
    pub fn next_state_internals(&self) -> Result<Option<StateInternals>, InternalsOverflowed> {
        match self.shared().lock().readings.as_mut() {
            Some(readings) => readings.take(),
            None => Ok(None),
        }
    }

    /// A summary of one channel.
    #[must_use]
    pub fn channel(&self, channel: &ChannelId) -> Option<ChannelView> {
        self.shared().lock().client.channel(channel)
    }

    /// Waits until the client is connected and returns its verified
    /// identity. Call [`connect`](Self::connect) first.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the connection fails for good or the client
    /// closes first.
    pub async fn connected(&self) -> Result<UserId, ConnectError> {
        let mut state = self.inner.state.clone();
        let seen = state
            .wait_for(|s| {
                matches!(
                    s,
                    ConnectionState::Connected { .. }
                        | ConnectionState::Closed
                        | ConnectionState::Failed { .. }
                )
            })
            .await
            .map_err(|_| ConnectError::Closed)?;
        match &*seen {
            ConnectionState::Connected { user_id, .. } => Ok(user_id.clone()),
            ConnectionState::Failed { reason } => Err(ConnectError::Failed(reason.clone())),
            _ => Err(ConnectError::Closed),
        }
    }

    /// Closes the client for good and waits until the driver has stopped
    /// and told its transport to close. Outbox entries stay exportable.
    ///
    /// Events still queued stay readable; if the app is not reading and the
    /// queue is full, the driver stops waiting on it rather than hang.
    pub async fn close(&self) {
        self.shared().command(|c, now| c.client.close(now));
        self.shared().stop.cancel();
        self.inner.done.cancelled().await;
    }

    /// Whether the driver has stopped.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.inner.done.is_cancelled()
    }
}
