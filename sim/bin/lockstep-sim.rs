//! `lockstep-sim`: explore thousands of seeded worlds, or replay one.
//!
//! This is the only part of the lab that reads a wall clock, and only to
//! report how fast the lab ran; nothing it reads reaches a world.

use std::process::ExitCode;
use std::time::Instant as WallClock;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use lockstep_sim::run::{RunOptions, RunReport, run};
use lockstep_sim::scenario::Scenario;
use lockstep_sim::swarm::{ClientKind, ClientPolicy, SwarmOverrides, TransportPolicy};

/// The lockstep lab: deterministic worlds of clients, a server and a store,
/// with faults, every invariant checked after every step.
#[derive(Parser, Debug)]
#[command(name = "lockstep-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run many seeds and report any violated invariant.
    Explore {
        /// How many seeds to run.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[command(flatten)]
        world: WorldArgs,
        /// Print every seed's parameters and result, not only failures.
        #[arg(long)]
        verbose: bool,
        /// Keep going after a violation (report all failing seeds).
        #[arg(long)]
        keep_going: bool,
    },
    /// Run one seed again and print what happened.
    Replay {
        /// The seed to replay.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        world: WorldArgs,
        /// Print the readable trace of every step.
        #[arg(long)]
        trace: bool,
        /// Print the scenario (parameters and every op) before running.
        #[arg(long)]
        ops: bool,
    },
}

#[derive(clap::Args, Debug, Clone, Copy)]
struct WorldArgs {
    /// Number of clients (default: drawn per seed, up to 16).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    clients: Option<u32>,
    /// Transport model of the clients (default: drawn per seed).
    #[arg(long, value_enum)]
    transport: Option<Transport>,
    /// Which client the apps run (default: drawn per seed).
    #[arg(long, value_enum)]
    kinds: Option<Kinds>,
    /// Round-trip every frame through its JSON encoding.
    #[arg(long)]
    wire: bool,
    /// No faults: a calm network, server and store.
    #[arg(long)]
    calm: bool,
    /// Server processes sharing the one store, with a lossy hint bus
    /// between them, process crashes and listener drops (1: one process
    /// writing alone, as always).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    servers: u8,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Kinds {
    /// Every app runs lockstep's client machine.
    Machine,
    /// Every app is a plain socket.io-client app (the protocol's guidance).
    Plain,
    /// Each client draws its own.
    Mixed,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// In order, no duplicates, frames lost with the connection (Socket.IO, TCP).
    Stream,
    /// Loss, duplication, reordering, delay.
    Datagram,
    /// Each client draws its own.
    Mixed,
}

impl WorldArgs {
    fn overrides(self) -> SwarmOverrides {
        SwarmOverrides {
            clients: self.clients,
            safety_ms: None,
            transport: self.transport.map(|t| match t {
                Transport::Stream => TransportPolicy::AllStream,
                Transport::Datagram => TransportPolicy::AllDatagram,
                Transport::Mixed => TransportPolicy::Mixed,
            }),
            calm: self.calm,
            kinds: self.kinds.map(|k| match k {
                Kinds::Machine => ClientPolicy::AllMachine,
                Kinds::Plain => ClientPolicy::AllPlain,
                Kinds::Mixed => ClientPolicy::Mixed,
            }),
        }
    }

    fn options(self, trace: bool) -> RunOptions {
        RunOptions {
            wire: self.wire,
            trace,
            servers: usize::from(self.servers),
        }
    }

    /// The flags that rebuild the same world, for reproduction lines.
    fn flags(self) -> String {
        let mut s = String::new();
        if let Some(c) = self.clients {
            s += &format!(" --clients {c}");
        }
        if let Some(t) = self.transport {
            s += match t {
                Transport::Stream => " --transport stream",
                Transport::Datagram => " --transport datagram",
                Transport::Mixed => " --transport mixed",
            };
        }
        if let Some(k) = self.kinds {
            s += match k {
                Kinds::Machine => " --kinds machine",
                Kinds::Plain => " --kinds plain",
                Kinds::Mixed => " --kinds mixed",
            };
        }
        if self.wire {
            s += " --wire";
        }
        if self.calm {
            s += " --calm";
        }
        if self.servers > 1 {
            s += &format!(" --servers {}", self.servers);
        }
        s
    }
}

fn scenario(seed: u64, world: WorldArgs) -> Result<Scenario, String> {
    Scenario::generate(seed, &world.overrides())
        .map(|s| s.with_servers(usize::from(world.servers)))
        .map_err(|e| format!("lockstep-sim: {e}"))
}

fn one(seed: u64, world: WorldArgs, trace: bool) -> Result<(Scenario, RunReport), String> {
    let scenario = scenario(seed, world)?;
    let report = run(&scenario, world.options(trace)).map_err(|e| format!("lockstep-sim: {e}"))?;
    Ok((scenario, report))
}

fn reproduce(seed: u64, world: WorldArgs) -> String {
    format!(
        "reproduce with: cargo run --release -p lockstep-sim -- replay --seed {seed}{} --trace",
        world.flags()
    )
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Explore {
            seeds,
            from,
            world,
            verbose,
            keep_going,
        } => explore(seeds, from, world, verbose, keep_going),
        Command::Replay {
            seed,
            world,
            trace,
            ops,
        } => replay(seed, world, trace, ops),
    }
}

fn replay(seed: u64, world: WorldArgs, trace: bool, ops: bool) -> ExitCode {
    let (scenario, report) = match one(seed, world, trace) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if ops {
        println!("{scenario}");
    } else {
        println!("{}", scenario.params);
    }
    for line in &report.trace {
        println!("{line}");
    }
    println!("{report}");
    match report.converged_at_ms {
        Some(ms) => println!("converged at {}", lockstep_core::Instant::from_millis(ms)),
        None => println!("did not converge"),
    }
    if report.violation.is_some() {
        println!("{}", reproduce(seed, world));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn explore(seeds: u64, from: u64, world: WorldArgs, verbose: bool, keep_going: bool) -> ExitCode {
    let started = WallClock::now();
    let bar = ProgressBar::new(seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut events, mut faults, mut checks, mut virtual_ms, mut runs) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut clients, mut plain, mut plain_seeds) = (0u64, 0u64, 0u64);
    let mut failing = Vec::new();
    for seed in from..from.saturating_add(seeds) {
        let (scenario, report) = match one(seed, world, false) {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        runs += 1;
        let p = scenario
            .params
            .kinds
            .iter()
            .filter(|k| **k == ClientKind::Plain)
            .count() as u64;
        clients += u64::from(scenario.params.clients);
        plain += p;
        plain_seeds += u64::from(p > 0);
        events += report.stats.events;
        faults += report.stats.faults;
        checks += report.checks;
        virtual_ms += report.virtual_ms;
        if verbose {
            bar.suspend(|| println!("{}\n{report}", scenario.params));
        }
        if let Some(v) = &report.violation {
            bar.suspend(|| {
                println!(
                    "\nseed {seed} FAILED\n{}\n  {v}\n  {}\n",
                    scenario.params,
                    reproduce(seed, world)
                );
            });
            failing.push(seed);
            if !keep_going {
                bar.inc(1);
                break;
            }
        }
        bar.inc(1);
        bar.set_message(format!("{} violations", failing.len()));
    }
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    println!("lockstep-sim explore: seeds {from}..{}", from + runs);
    println!("  seeds run          {runs}");
    println!(
        "  clients            {clients} ({plain} plain socket.io apps, in {plain_seeds} seeds)"
    );
    println!("  virtual time       {:.1} s", virtual_ms as f64 / 1000.0);
    println!("  events             {events}");
    println!("  faults injected    {faults}");
    println!("  checks made        {checks}");
    println!("  violations         {}", failing.len());
    println!("  wall time          {wall:.2} s");
    println!("  events per second  {:.0}", events as f64 / wall);
    if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("  failing seeds      {failing:?}");
        ExitCode::FAILURE
    }
}
