//! What the harness knows about each client app, and how the events a real
//! driver hands its app are fed to the lab's oracle.
//!
//! All hosts of a turmoil simulation run on one thread, so the lab is a
//! plain `RefCell` shared by the client hosts (which record) and the test
//! thread (which steps the simulation and judges), never borrowed across a
//! step.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use lockstep_core::Instant;
use lockstep_core::client::{ChannelView, ClientEvent, ConnectionState, EntryId, Outcome};
use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::wire::{Ack, Body, ClientFrame, ServerFrame};
use lockstep_tokio::client::ClientHandle;
use lockstep_tokio::server::SharedMemStore;

use super::tap::{Tap, Tapped};
use lockstep_sim::net::ClientIx;
use lockstep_sim::oracle::{ClientView, Internals, Invariant, Oracle};

/// How many recent events per client a failure report shows.
const RECENT_MAX: usize = 40;

/// A command for a client app, sent by the test thread to its host.
#[derive(Clone, Debug)]
pub(crate) enum AppCmd {
    /// Want the channel subscribed.
    Subscribe(ChannelId),
    /// Give the channel up.
    Unsubscribe(ChannelId),
    /// Send a text to the channel.
    Send(ChannelId),
}

/// One client app, as the harness saw it.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) ix: ClientIx,
    pub(crate) user: UserId,
    /// Set once the host has started the driver.
    pub(crate) handle: Option<ClientHandle>,
    /// The frames on the client's connections.
    pub(crate) tap: Tap,
    /// What the app wants subscribed.
    pub(crate) desired: BTreeSet<ChannelId>,
    /// Every send the client accepted, with its outcome once delivered.
    pub(crate) sends: BTreeMap<ClientMsgId, Option<Outcome>>,
    /// Sends the client refused at once (channel not wanted, outbox full).
    pub(crate) refused: usize,
    /// The highest seq read per channel in its current log (a new
    /// subscription after the client forgot the channel replays part of
    /// it; the oracle judges that stream's order, this only says how far
    /// the app got).
    pub(crate) delivered: BTreeMap<ChannelId, Seq>,
    /// The last connection state read.
    pub(crate) state: ConnectionState,
    /// Events read, all told.
    pub(crate) events: u64,
    /// Commands told but not carried out yet.
    pub(crate) unapplied: usize,
    /// Connections made (`Connected` states read).
    pub(crate) connects: usize,
    /// The latest events, for failure reports.
    pub(crate) recent: VecDeque<String>,
    texts: u64,
}

/// The client as the oracle sees it from a driver's handle: channel
/// summaries are read live (the handle locks the machine). That is exact
/// for what the oracle asks (whether the app still wants a channel, whether
/// the client forgot it), because the app drains its event queue before
/// every command: only a command changes what the app wants, and a client
/// forgets a channel in the same step that emits its `Unsubscribed` event.
/// The machine's internals (invariant 8) are the driver's readings taken in
/// the step that produced the state event being judged
/// (`ClientDriverConfig::record_internals`), not a later look.
struct HandleView<'a> {
    handle: &'a ClientHandle,
    internals: Option<Internals>,
}

impl ClientView for HandleView<'_> {
    fn channel(&self, channel: &ChannelId) -> Option<ChannelView> {
        self.handle.channel(channel)
    }

    fn internals(&self) -> Option<Internals> {
        self.internals.clone()
    }
}

/// The shared record: the oracle, the store (kept across server bounces)
/// and every app.
#[derive(Debug)]
pub(crate) struct Lab {
    pub(crate) oracle: Oracle,
    pub(crate) store: SharedMemStore,
    pub(crate) apps: Vec<App>,
}

impl Lab {
    pub(crate) fn new(clients: u8, store: SharedMemStore) -> Self {
        let serials = Arc::new(AtomicU64::new(0));
        let apps = (0..clients)
            .map(|i| App {
                ix: ClientIx(u32::from(i)),
                user: user(i),
                handle: None,
                tap: Tap::new(Arc::clone(&serials)),
                desired: BTreeSet::new(),
                sends: BTreeMap::new(),
                refused: 0,
                delivered: BTreeMap::new(),
                state: ConnectionState::Idle,
                events: 0,
                connects: 0,
                unapplied: 0,
                recent: VecDeque::new(),
                texts: 0,
            })
            .collect();
        Lab {
            oracle: Oracle::default(),
            store,
            apps,
        }
    }

    /// Carries out an app command on client `i` (inside its host, so the
    /// driver reads the host's virtual clock).
    pub(crate) fn apply(&mut self, now: Instant, i: usize, cmd: AppCmd) {
        let Some(app) = self.apps.get_mut(i) else {
            return;
        };
        app.unapplied = app.unapplied.saturating_sub(1);
        let Some(handle) = app.handle.clone() else {
            return;
        };
        note(app, now, format!("app: {cmd:?}"));
        match cmd {
            AppCmd::Subscribe(ch) => {
                if handle.subscribe(ch.clone()).is_ok() {
                    app.desired.insert(ch);
                }
            }
            AppCmd::Unsubscribe(ch) => {
                handle.unsubscribe(ch.clone());
                app.desired.remove(&ch);
                let view = HandleView {
                    handle: &handle,
                    internals: None,
                };
                self.oracle.on_unsubscribed(app.ix, &view, &ch);
            }
            AppCmd::Send(ch) => {
                app.texts += 1;
                let text = format!("{} #{}", app.user, app.texts);
                match handle.send(ch.clone(), Body::text(text)) {
                    Ok(sent) => {
                        if let Some(id) = sent.client_msg_id() {
                            app.sends.insert(id.clone(), None);
                            self.oracle.on_send(app.ix, id.clone(), ch);
                        }
                    }
                    Err(e) => {
                        app.refused += 1;
                        note(app, now, format!("app: send refused: {e}"));
                    }
                }
            }
        }
    }

    /// Feeds one event client `i` handed its app to the oracle, and records
    /// it.
    pub(crate) fn on_event(&mut self, now: Instant, i: usize, event: ClientEvent) {
        let Some(app) = self.apps.get_mut(i) else {
            return;
        };
        app.events += 1;
        note(app, now, format!("{event:?}"));
        let Some(handle) = app.handle.as_ref() else {
            return;
        };
        let internals = match &event {
            ClientEvent::State(state) => match handle.next_state_internals() {
                Ok(Some(reading)) if &reading.state == state => Some(Internals {
                    state: reading.state,
                    pending_requests: reading.pending_requests,
                    armed_timers: reading.armed_timers,
                }),
                other => {
                    self.oracle.violate(
                        Invariant::NoLeaks,
                        now,
                        Some(app.ix),
                        None,
                        format!("the harness lost step with the driver's readings: {other:?} for {state:?}"),
                    );
                    None
                }
            },
            _ => None,
        };
        let view = HandleView { handle, internals };
        self.oracle
            .on_client_event(now, app.ix, &view, &self.store.lock(), &event);
        match event {
            ClientEvent::Log { channel, event } => {
                let read = app.delivered.entry(channel).or_default();
                *read = (*read).max(event.seq());
            }
            ClientEvent::Truncated { channel, to, .. } => {
                let read = app.delivered.entry(channel).or_default();
                *read = (*read).max(to);
            }
            ClientEvent::Reset { channel, .. } => {
                app.delivered.remove(&channel);
            }
            ClientEvent::Outcome {
                id: EntryId::Message(id),
                outcome,
                ..
            } => {
                app.sends.insert(id, Some(outcome));
            }
            ClientEvent::State(state) => {
                if matches!(state, ConnectionState::Connected { .. }) {
                    app.connects += 1;
                }
                app.state = state;
            }
            _ => {}
        }
    }

    /// Feeds what the taps saw since the last drain to invariant 7.
    pub(crate) fn drain_taps(&mut self, now: Instant) {
        for app in &self.apps {
            let (frames, overflowed) = app.tap.drain();
            if overflowed {
                self.oracle.violate(
                    Invariant::OnlyJoined,
                    now,
                    Some(app.ix),
                    None,
                    "the harness's tap overflowed: frames went unjudged",
                );
            }
            for tapped in frames {
                match tapped {
                    Tapped::Sent {
                        serial,
                        frame: ClientFrame::Join { channel_id, .. },
                    } => self.oracle.on_join_sent(serial, &channel_id),
                    Tapped::Sent {
                        serial,
                        frame: ClientFrame::Leave { req, channel_id },
                    } => self.oracle.on_leave_sent(serial, req, &channel_id),
                    Tapped::Sent { .. } => {}
                    Tapped::Received {
                        serial,
                        frame:
                            ServerFrame::Ack {
                                req,
                                body: Ack::Leave,
                            },
                    } => self.oracle.on_leave_acked(serial, req),
                    Tapped::Received { serial, frame } => {
                        self.oracle
                            .on_frame_delivered(now, app.ix, &app.user, serial, &frame);
                    }
                }
            }
        }
    }

    /// After the run: every event the store committed, through invariant 2
    /// (no duplicate in a log).
    pub(crate) fn check_store(&mut self, now: Instant) {
        let store = self.store.lock();
        let channels: Vec<ChannelId> = store.channels().cloned().collect();
        for ch in &channels {
            for event in store.events(ch) {
                self.oracle.on_append(now, event);
            }
        }
    }

    /// The recent events of every client, for a failure report.
    pub(crate) fn recent(&self) -> String {
        let mut out = String::new();
        for app in &self.apps {
            out.push_str(&format!(
                "-- {} ({}): {} events read; the last {} lines\n",
                app.ix,
                app.user,
                app.events,
                app.recent.len()
            ));
            for line in &app.recent {
                out.push_str("   ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

fn note(app: &mut App, now: Instant, line: String) {
    if app.recent.len() == RECENT_MAX {
        app.recent.pop_front();
    }
    app.recent.push_back(format!("{now} {line}"));
}

/// The user of client `i`.
pub(crate) fn user(i: u8) -> UserId {
    let name = format!("u{i}");
    UserId::new(&name).unwrap_or_else(|_| unreachable!("invalid user id {name}"))
}
