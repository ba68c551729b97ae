//! The one driver loop around the client machine: feed input, drain
//! transmits, drain events, re-arm the single timer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use lockstep_core::client::{ClientEvent, ConnectionState, Transmit, TransportEvent};
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::internals::StateInternals;
use super::link::{self, Link};
use super::shared::{Core, Shared};
use crate::transport::Connector;

/// What the driver needs besides the shared machine.
pub(crate) struct Driver<C> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) connector: Arc<C>,
    pub(crate) tracker: TaskTracker,
    pub(crate) events: mpsc::Sender<ClientEvent>,
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) outgoing_capacity: usize,
    pub(crate) incoming_capacity: usize,
    /// Cancelled once the loop has ended and every transport was told to
    /// close.
    pub(crate) done: tokio_util::sync::CancellationToken,
}

/// One drain of the machine, taken under the lock and acted on after it.
struct Drained {
    transmits: Vec<Transmit>,
    events: Vec<ClientEvent>,
    deadline: Option<lockstep_core::Instant>,
    closed: bool,
}

fn drain(core: &mut Core) -> Drained {
    let mut transmits = Vec::new();
    while let Some(t) = core.client.poll_transmit() {
        transmits.push(t);
    }
    let mut events = Vec::new();
    let now = tokio::time::Instant::now();
    while let Some(e) = core.client.poll_event() {
        core.stats.observe(&e, now);
        if let (ClientEvent::State(state), Some(readings)) = (&e, &mut core.readings) {
            readings.record(StateInternals {
                state: state.clone(),
                pending_requests: core.client.pending_requests(),
                armed_timers: core.client.armed_timers(),
            });
        }
        if let ClientEvent::Outcome { id, outcome, .. } = &e {
            if let Some(waiter) = core.waiters.remove(id) {
                // The app may have dropped its handle: nothing to tell.
                let _ = waiter.send(outcome.clone());
            }
        }
        events.push(e);
    }
    Drained {
        transmits,
        events,
        deadline: core.client.poll_timeout(),
        closed: *core.client.state() == ConnectionState::Closed,
    }
}

impl<C: Connector> Driver<C> {
    /// Runs until the client is closed (by `close` or by dropping the last
    /// handle); then every transport task is told to end.
    pub(crate) async fn run(self) {
        let (report, mut reports) = mpsc::channel(self.incoming_capacity.max(1));
        let mut links: BTreeMap<u64, Link> = BTreeMap::new();
        // Transport failures the driver itself detects (a full queue), fed
        // back into the machine before anything else.
        let mut synthetic: VecDeque<TransportEvent> = VecDeque::new();
        loop {
            let step = drain(&mut self.shared.lock());
            for t in step.transmits {
                self.transmit(t, &mut links, &report, &mut synthetic);
            }
            for e in step.events {
                self.forward(e).await;
            }
            if step.closed {
                break;
            }
            if let Some(event) = synthetic.pop_front() {
                let mut core = self.shared.lock();
                let now = self.shared.now();
                core.client.handle_transport(now, event);
                continue;
            }
            let deadline = step.deadline.map(|at| self.shared.deadline(at));
            tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => {
                    debug!("last client handle dropped: closing");
                    let mut core = self.shared.lock();
                    let now = self.shared.now();
                    core.client.close(now);
                }
                () = self.shared.wake.notified() => {}
                Some(event) = reports.recv() => {
                    let mut core = self.shared.lock();
                    let now = self.shared.now();
                    core.client.handle_transport(now, event);
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    let mut core = self.shared.lock();
                    let now = self.shared.now();
                    core.client.handle_timeout(now);
                }
            }
        }
        // Dropping the links cancels every transport task; dropping the
        // waiters tells every pending `SendHandle` that no outcome will come.
        drop(links);
        {
            let mut core = self.shared.lock();
            core.waiters.clear();
            core.stats.stopped();
        }
        self.done.cancel();
        debug!("client driver stopped");
    }

    fn transmit(
        &self,
        t: Transmit,
        links: &mut BTreeMap<u64, Link>,
        report: &mpsc::Sender<TransportEvent>,
        synthetic: &mut VecDeque<TransportEvent>,
    ) {
        match t {
            Transmit::Open { generation } => {
                // Every older generation is superseded: end its task.
                links.retain(|g, _| *g >= generation);
                let link = link::spawn(
                    &self.tracker,
                    &self.connector,
                    generation,
                    self.outgoing_capacity,
                    report.clone(),
                );
                links.insert(generation, link);
            }
            Transmit::Frame { generation, frame } => {
                let Some(link) = links.get(&generation) else {
                    debug!(generation, "frame for a transport already gone: dropped");
                    return;
                };
                match link.frames.try_send(frame) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        warn!(generation, "transport cannot keep up: closing it");
                        links.remove(&generation);
                        synthetic.push_back(TransportEvent::Closed {
                            generation,
                            reason: "outgoing queue full".into(),
                        });
                    }
                    // The task ended; its `Closed` report is on the way.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            Transmit::Close { generation, reason } => {
                debug!(generation, %reason, "closing transport");
                links.remove(&generation);
            }
        }
    }

    /// Hands an event to the app, waiting while its queue is full, unless
    /// the app is gone.
    async fn forward(&self, event: ClientEvent) {
        if let ClientEvent::State(state) = &event {
            self.state.send_replace(state.clone());
        }
        if self.shared.stop.is_cancelled() {
            let _ = self.events.try_send(event);
            return;
        }
        tokio::select! {
            // Err: nobody listens; that is the app's choice.
            _ = self.events.send(event) => {}
            () = self.shared.stop.cancelled() => {}
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
