//! Running one scenario: the safety phase under faults, then the liveness
//! phase (heal everything, require convergence within a bounded time).

use std::fmt;

use lockstep_core::Instant;

use crate::oracle::{Failure, Violation};
use crate::scenario::Scenario;
use crate::world::{World, WorldConfig, WorldError, WorldStats};

/// How long the healed world may take to converge, in virtual ms, before
/// any backlog. Long enough for a client at the slowest (suspended) retry
/// pace to come back and catch up; short enough that a stuck world is
/// reported quickly.
pub const LIVENESS_MS_MAX: u64 = 300_000;

/// Extra convergence time per outbox entry still unresolved at the heal: a
/// client that sends one message at a time over a lossy link (datagrams)
/// drains a big backlog at a round trip or a retransmission per message.
pub const LIVENESS_MS_PER_ENTRY: u64 = 1_000;

/// How often convergence is checked during the liveness phase.
pub const CONVERGENCE_CHECK_MS: u64 = 250;

/// Most events one run may process: a livelock guard.
pub const EVENTS_MAX: u64 = 50_000_000;

/// Knobs of a run that are not part of the scenario.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Round-trip every frame through its JSON encoding.
    pub wire: bool,
    /// Keep readable trace lines.
    pub trace: bool,
    /// Server processes on the one store; 0 counts as 1 (the default).
    pub servers: usize,
}

/// What one run found.
#[derive(Debug)]
pub struct RunReport {
    /// The scenario's seed.
    pub seed: u64,
    /// The first violation, if any (the run stops at it).
    pub violation: Option<Violation>,
    /// Hash of the whole trace: one seed, one hash.
    pub trace_hash: u64,
    /// The readable trace, when asked for.
    pub trace: Vec<String>,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// When the healed world converged (virtual ms), if it did.
    pub converged_at_ms: Option<u64>,
    /// Event and fault counters.
    pub stats: WorldStats,
    /// Oracle checks made.
    pub checks: u64,
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} events, {} faults, {} checks, {} virtual, trace {:016x}",
            self.seed,
            self.stats.events,
            self.stats.faults,
            self.checks,
            Instant::from_millis(self.virtual_ms),
            self.trace_hash
        )?;
        match &self.violation {
            Some(v) => write!(f, "\n  {v}"),
            None => Ok(()),
        }
    }
}

/// Builds the world for a scenario.
pub fn world_for(scenario: &Scenario, options: RunOptions) -> Result<World, WorldError> {
    let mut config = WorldConfig::new(scenario.params.clone());
    config.wire = options.wire;
    config.trace_lines = options.trace;
    config.servers = options.servers.max(1);
    World::new(config)
}

/// Runs `scenario` in `world` (built by [`world_for`], or adjusted by a
/// test): ops at their times, then heal and wait for convergence.
#[must_use]
pub fn run_in(world: World, scenario: &Scenario) -> RunReport {
    run_bounded(world, scenario, EVENTS_MAX)
}

/// [`run_in`] with another livelock bound: more than `events_max` events
/// between two ops (or two convergence checks) is reported as
/// [`Failure::Livelock`].
#[must_use]
pub fn run_bounded(mut world: World, scenario: &Scenario, events_max: u64) -> RunReport {
    let mut violation = None;
    'safety: for (at_ms, op) in &scenario.ops {
        if !world.run_until(Instant::from_millis(*at_ms), events_max) {
            violation = Some(livelock(&world, events_max));
            break 'safety;
        }
        if !world.oracle().violations().is_empty() {
            break 'safety;
        }
        world.apply(op);
    }
    if violation.is_none() && world.oracle().violations().is_empty() {
        let end = Instant::from_millis(scenario.params.safety_ms.max(world.now().as_millis()));
        if !world.run_until(end, events_max) {
            violation = Some(livelock(&world, events_max));
        }
    }
    let mut converged_at_ms = None;
    if violation.is_none() && world.oracle().violations().is_empty() {
        world.heal_everything();
        let allowed_ms = LIVENESS_MS_MAX + LIVENESS_MS_PER_ENTRY * world.backlog() as u64;
        let deadline = world.now().as_millis() + allowed_ms;
        // Whether the world has settled depends on its state alone, which
        // only events change in a one-process world (a cluster's bus and
        // arbiter also move between events): a check after a quiet 250 ms
        // would find what the last one found, so it is not made again.
        let one_process = world.bus_faults().is_none();
        let mut unsettled_at = None;
        loop {
            if !world.oracle().violations().is_empty() {
                break;
            }
            let events = world.stats().events;
            let quiet = one_process && unsettled_at == Some(events);
            if !quiet && world.converged() {
                converged_at_ms = Some(world.now().as_millis());
                break;
            }
            unsettled_at = Some(events);
            if world.now().as_millis() >= deadline {
                let now = world.now();
                // Described only now: the check above found something.
                let Some(pending) = world.pending() else {
                    break;
                };
                world.oracle_mut().fail(
                    Failure::NotConverged {
                        invariant: pending.invariant,
                        allowed_ms,
                    },
                    now,
                    pending.client,
                    pending.channel.as_ref(),
                    pending.what,
                );
                break;
            }
            let next = Instant::from_millis(world.now().as_millis() + CONVERGENCE_CHECK_MS);
            if !world.run_until(next, events_max) {
                violation = Some(livelock(&world, events_max));
                break;
            }
        }
    }
    let violation = violation.or_else(|| world.oracle().violations().first().cloned());
    RunReport {
        seed: scenario.seed,
        violation,
        trace_hash: world.trace().hash(),
        trace: world.trace().lines().to_vec(),
        virtual_ms: world.now().as_millis(),
        converged_at_ms,
        stats: world.stats(),
        checks: world.oracle().checks(),
    }
}

/// Runs a scenario from scratch.
pub fn run(scenario: &Scenario, options: RunOptions) -> Result<RunReport, WorldError> {
    Ok(run_in(world_for(scenario, options)?, scenario))
}

fn livelock(world: &World, events_max: u64) -> Violation {
    Violation {
        failure: Failure::Livelock { events_max },
        at: world.now(),
        client: None,
        channel: None,
        detail: "a timer or message loop never settles".into(),
    }
}
