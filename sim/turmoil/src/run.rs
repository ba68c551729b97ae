//! Runs one plan: builds the turmoil world, plays the steps, heals every
//! fault, waits (bounded) for the world to settle and judges it with the
//! lab's oracle.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use lockstep_core::Instant;
use lockstep_core::client::{Client, ConnectionState, Outcome, SubscriptionState};
use lockstep_core::ids::{ChannelId, Seq, UserId};
use lockstep_core::server::Server;
use lockstep_core::store::{MemStore, MemStoreConfig};
use lockstep_tokio::client::ClientDriverConfig;
use lockstep_tokio::server::{ServerDriverConfig, SharedMemStore};
use tokio::sync::mpsc;

use super::hosts::{self, SERVER};
use super::lab::{AppCmd, Lab};
use super::plan::{Action, CHANNELS, Plan, channel, host_name};
use lockstep_sim::oracle::Violation;

/// Turmoil's step: hosts run and the network moves this much virtual time
/// per step.
const TICK: Duration = Duration::from_millis(5);

/// The links' usual latency range.
const LATENCY_MIN: Duration = Duration::from_millis(1);
const LATENCY_MAX: Duration = Duration::from_millis(20);

/// How often the heal phase asks whether the world has settled.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// Longest the heal phase may take, in virtual time: a partitioned client
/// needs its heartbeat timeout and a few backoffs; a bounced server needs
/// every client to reconnect and rejoin.
pub const HEAL_MAX: Duration = Duration::from_secs(60);

/// Adjustments to the world's configs, applied after the harness's own:
/// a test can switch on the core's test-only sabotage to prove the oracle
/// bites under the real drivers too.
#[derive(Clone, Debug)]
pub struct Tweaks {
    /// Applied to client `i`'s driver config.
    pub client: fn(u8, &mut ClientDriverConfig),
    /// Applied to client `i`'s machine before its driver starts (tests
    /// switch the core's deliberate bugs on here).
    pub client_machine: fn(u8, &mut Client),
    /// Applied to the server's driver config (at every start).
    pub server: fn(&mut ServerDriverConfig),
    /// Applied to the server machine before its driver starts (at every
    /// start).
    pub server_machine: fn(&mut Server),
    /// The store's config.
    pub store: MemStoreConfig,
    /// Applied to the store once built.
    pub store_machine: fn(&mut MemStore),
}

impl Default for Tweaks {
    fn default() -> Self {
        Tweaks {
            client: |_, _| {},
            client_machine: |_, _| {},
            server: |_| {},
            server_machine: |_| {},
            store: MemStoreConfig::default(),
            store_machine: |_| {},
        }
    }
}

/// What a passing run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Virtual time of the steps.
    pub steps_time: Duration,
    /// Virtual time the heal phase took to settle.
    pub heal_time: Duration,
    /// Events the apps read, all clients.
    pub events: u64,
    /// Sends the clients accepted.
    pub sends: usize,
    /// Of those, sends that ended `Sent` (the rest ended `Failed`).
    pub stored: usize,
    /// Sends refused at once (channel not wanted).
    pub refused: usize,
    /// Events in the store's logs at the end.
    pub logged: usize,
    /// Connections made, all clients (the first ones included).
    pub connects: usize,
    /// Oracle checks that ran.
    pub checks: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "steps {:.1}s + heal {:.1}s · {} events read · {} sends ({} stored, {} refused) · {} logged · {} connects · {} checks",
            self.steps_time.as_secs_f64(),
            self.heal_time.as_secs_f64(),
            self.events,
            self.sends,
            self.stored,
            self.refused,
            self.logged,
            self.connects,
            self.checks
        )
    }
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The oracle found broken invariants.
    Violations(Vec<Violation>),
    /// After healing, the world did not settle within the time allowed.
    NotConverged {
        /// What was still missing.
        what: String,
        /// The time this run allowed after healing ([`HEAL_MAX`]).
        allowed: Duration,
    },
    /// A host's software returned an error.
    Host(String),
}

/// A failed run: what broke, when, the plan and what the apps saw last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What broke.
    pub kind: FailureKind,
    /// Virtual time it was found.
    pub at: Duration,
    /// The plan, to replay it.
    pub plan: Plan,
    /// Each client's latest events and commands.
    pub recent: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "at {:.3}s:", self.at.as_secs_f64())?;
        match &self.kind {
            FailureKind::Violations(vs) => {
                for v in vs {
                    writeln!(f, "  {v}")?;
                }
            }
            FailureKind::NotConverged { what, allowed } => {
                writeln!(
                    f,
                    "  not converged {:.3}s after healing: {what}",
                    allowed.as_secs_f64()
                )?;
            }
            FailureKind::Host(e) => writeln!(f, "  a host failed: {e}")?,
        }
        write!(f, "{}{}", self.plan, self.recent)
    }
}

struct Run<'a> {
    plan: &'a Plan,
    sim: ::turmoil::Sim<'static>,
    lab: Rc<RefCell<Lab>>,
    mailboxes: Vec<mpsc::UnboundedSender<AppCmd>>,
}

/// Runs `plan` and judges it.
///
/// # Errors
///
/// A [`Failure`] with the plan and each client's latest events when an
/// invariant broke, the world did not settle after healing, or a host
/// failed.
pub fn run(plan: &Plan) -> Result<Report, Failure> {
    run_with(plan, &Tweaks::default())
}

/// Runs `plan` with adjusted configs and judges it.
///
/// # Errors
///
/// As [`run`].
pub fn run_with(plan: &Plan, tweaks: &Tweaks) -> Result<Report, Failure> {
    let clients = plan.client_count();
    let limit = plan.duration() + HEAL_MAX + Duration::from_secs(10);
    let mut sim = ::turmoil::Builder::new()
        .simulation_duration(limit)
        .tick_duration(TICK)
        .min_message_latency(LATENCY_MIN)
        .max_message_latency(LATENCY_MAX)
        .rng_seed(plan.seed)
        .build();
    let mut machine = MemStore::new(tweaks.store.clone());
    (tweaks.store_machine)(&mut machine);
    let store = SharedMemStore::new(machine);
    let lab = Rc::new(RefCell::new(Lab::new(clients, store.clone())));
    sim.host(
        SERVER,
        hosts::server(store, tweaks.server, tweaks.server_machine),
    );
    let mut mailboxes = Vec::new();
    for i in 0..clients {
        let (tx, rx) = mpsc::unbounded_channel();
        sim.client(
            host_name(i),
            hosts::client(
                i,
                plan.seed,
                tweaks.client,
                tweaks.client_machine,
                Rc::clone(&lab),
                rx,
            ),
        );
        mailboxes.push(tx);
    }
    let mut run = Run {
        plan,
        sim,
        lab,
        mailboxes,
    };
    for i in 0..clients {
        // Every client starts wanting `general`.
        run.tell(i, AppCmd::Subscribe(channel(0)));
    }
    run.play()
}

impl Run<'_> {
    fn play(&mut self) -> Result<Report, Failure> {
        let mut at = Duration::ZERO;
        for step in &self.plan.steps {
            at += step.after();
            self.step_until(at)?;
            self.act(step.action);
        }
        let steps_time = self.sim.elapsed();
        self.heal();
        let healed_at = self.sim.elapsed();
        loop {
            let pending = pending(&self.lab.borrow());
            let Some(what) = pending else { break };
            if self.sim.elapsed() >= healed_at + HEAL_MAX {
                return Err(self.failure(FailureKind::NotConverged {
                    what,
                    allowed: HEAL_MAX,
                }));
            }
            let next = self.sim.elapsed() + SETTLE_POLL;
            self.step_until(next)?;
        }
        let heal_time = self.sim.elapsed() - healed_at;
        let now = self.now();
        self.lab.borrow_mut().check_store(now);
        self.check()?;
        let lab = self.lab.borrow();
        let sends = lab.apps.iter().map(|a| a.sends.len()).sum();
        let stored = lab
            .apps
            .iter()
            .flat_map(|a| a.sends.values())
            .filter(|o| matches!(o, Some(Outcome::Sent { .. })))
            .count();
        let store = lab.store.lock();
        let logged = store.channels().map(|ch| store.events(ch).count()).sum();
        Ok(Report {
            steps_time,
            heal_time,
            events: lab.apps.iter().map(|a| a.events).sum(),
            sends,
            stored,
            refused: lab.apps.iter().map(|a| a.refused).sum(),
            logged,
            connects: lab.apps.iter().map(|a| a.connects).sum(),
            checks: lab.oracle.checks(),
        })
    }

    fn now(&self) -> Instant {
        let ms = u64::try_from(self.sim.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(ms)
    }

    fn failure(&self, kind: FailureKind) -> Failure {
        Failure {
            kind,
            at: self.sim.elapsed(),
            plan: self.plan.clone(),
            recent: self.lab.borrow().recent(),
        }
    }

    fn check(&self) -> Result<(), Failure> {
        let violations = {
            let lab = self.lab.borrow();
            let found = lab.oracle.violations();
            if found.is_empty() {
                return Ok(());
            }
            found.to_vec()
        };
        Err(self.failure(FailureKind::Violations(violations)))
    }

    /// Steps the world until `until`, judging after every step.
    fn step_until(&mut self, until: Duration) -> Result<(), Failure> {
        while self.sim.elapsed() < until {
            if let Err(e) = self.sim.step() {
                return Err(self.failure(FailureKind::Host(e.to_string())));
            }
            let now = self.now();
            self.lab.borrow_mut().drain_taps(now);
            self.check()?;
        }
        Ok(())
    }

    fn tell(&self, client: u8, cmd: AppCmd) {
        let i = usize::from(self.plan.client(client));
        if let Some(mailbox) = self.mailboxes.get(i) {
            // The host ends only when the mailbox closes: it is listening.
            if mailbox.send(cmd).is_ok() {
                if let Some(app) = self.lab.borrow_mut().apps.get_mut(i) {
                    app.unapplied += 1;
                }
            }
        }
    }

    fn link(&self, client: u8) -> String {
        host_name(self.plan.client(client))
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Subscribe {
                client,
                channel: ch,
            } => {
                self.tell(client, AppCmd::Subscribe(channel(ch)));
            }
            Action::Unsubscribe {
                client,
                channel: ch,
            } => {
                self.tell(client, AppCmd::Unsubscribe(channel(ch)));
            }
            Action::Send {
                client,
                channel: ch,
                count,
            } => {
                for _ in 0..count {
                    self.tell(client, AppCmd::Send(channel(ch)));
                }
            }
            // Segments vanish both ways: the stream goes half-open, the
            // heartbeat (client) and the idle timeout (server) must notice.
            Action::Partition { client } => self.sim.partition(self.link(client), SERVER),
            Action::Repair { client } => self.sim.repair(self.link(client), SERVER),
            // Segments wait: a stall longer than the heartbeat timeout
            // makes the client give up a connection that would recover.
            Action::Hold { client } => self.sim.hold(self.link(client), SERVER),
            Action::Release { client } => self.sim.release(self.link(client), SERVER),
            // A slow link stretches every round trip toward the timeouts:
            // requests time out and are retried while the originals are
            // still on the way.
            Action::Latency { client, ms } => self.sim.set_link_latency(
                self.link(client),
                SERVER,
                Duration::from_millis(u64::from(ms)),
            ),
            // The server loses its memory and every connection; the store
            // stays: clients must reconnect, rejoin and resend.
            Action::Bounce => self.sim.bounce(SERVER),
        }
    }

    /// Ends every fault: links repaired, released, back to usual latency.
    fn heal(&mut self) {
        for i in 0..self.plan.client_count() {
            let host = host_name(i);
            self.sim.repair(host.as_str(), SERVER);
            self.sim.release(host.as_str(), SERVER);
            self.sim
                .set_link_latency(host.as_str(), SERVER, LATENCY_MIN);
            self.sim
                .set_link_max_message_latency(host.as_str(), SERVER, LATENCY_MAX);
        }
    }
}

/// Users truly present in `channel`: their client is connected and
/// subscribed to it.
fn present_truth(lab: &Lab, channel: &ChannelId) -> Vec<UserId> {
    let mut users: Vec<UserId> = lab
        .apps
        .iter()
        .filter(|a| {
            a.handle.as_ref().is_some_and(|h| {
                matches!(h.state(), ConnectionState::Connected { .. })
                    && h.channel(channel)
                        .is_some_and(|v| v.subscription == SubscriptionState::Subscribed)
            })
        })
        .map(|a| a.user.clone())
        .collect();
    users.sort();
    users
}

/// The first thing the world has not settled on yet, in words; `None` once
/// every client is connected, subscribed as desired, at the head of every
/// desired log (in the machine and in what the app read), every send has
/// its outcome and presence views are true.
fn pending(lab: &Lab) -> Option<String> {
    let store = lab.store.lock();
    for app in &lab.apps {
        let who = app.ix;
        let Some(handle) = &app.handle else {
            return Some(format!("{who} has not started"));
        };
        if app.unapplied > 0 {
            return Some(format!("{who} has {} commands to carry out", app.unapplied));
        }
        if !matches!(handle.state(), ConnectionState::Connected { .. })
            || !matches!(app.state, ConnectionState::Connected { .. })
        {
            return Some(format!(
                "{who} is {} (its app read {}), not connected",
                handle.state().name(),
                app.state.name()
            ));
        }
        let unresolved: Vec<_> = app
            .sends
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|(id, _)| id)
            .collect();
        if let Some(first) = unresolved.first() {
            return Some(format!(
                "{who} has {} sends without an outcome, the first {first}",
                unresolved.len()
            ));
        }
        for name in CHANNELS {
            let ch = ChannelId::new(name).ok()?;
            let view = handle.channel(&ch);
            if !app.desired.contains(&ch) {
                if let Some(v) = view.filter(|v| v.subscription != SubscriptionState::Unsubscribed)
                {
                    return Some(format!(
                        "{who} {ch} is {:?} but not desired",
                        v.subscription
                    ));
                }
                continue;
            }
            let Some(view) = view else {
                return Some(format!("{who} {ch} is desired but unknown to the client"));
            };
            if view.subscription != SubscriptionState::Subscribed {
                return Some(format!(
                    "{who} {ch} is {:?}, not subscribed",
                    view.subscription
                ));
            }
            let (epoch, head) = store
                .head(&ch)
                .map_or((None, Seq::ZERO), |(e, h)| (Some(e), h));
            if view.last_seq != head || (head > Seq::ZERO && view.epoch != epoch) {
                return Some(format!(
                    "{who} {ch} delivered up to {:?} {}, the log's head is {epoch:?} {head}",
                    view.epoch, view.last_seq
                ));
            }
            let read = app.delivered.get(&ch).copied().unwrap_or(Seq::ZERO);
            if read != head {
                return Some(format!(
                    "{who} {ch}: the app read up to {read}, the log's head is {head}"
                ));
            }
            let truth = present_truth(lab, &ch);
            if view.members != truth {
                return Some(format!(
                    "{who} {ch} shows members {:?}, truth is {truth:?}",
                    view.members
                ));
            }
        }
    }
    None
}
