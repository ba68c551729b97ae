//! Drawing a scenario's ops from its parameters.

use lockstep_core::Rng;
use lockstep_core::ids::ChannelId;

use crate::net::ClientIx;
use crate::op::Op;
use crate::swarm::{OPS_MAX, SwarmParams};

/// Separates the ops' random stream from the parameters' ("ops_seed").
const OPS_SALT: u64 = 0x6f70_735f_7365_6564;

/// Separates the process faults' stream from the others ("servers").
const SERVERS_SALT: u64 = 0x0073_6572_7665_7273;

/// Separates the arbiter stalls' stream ("stalls").
const STALLS_SALT: u64 = 0x0000_7374_616c_6c73;

/// A uniform value in `lo..=hi`.
fn between(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.below(hi.saturating_sub(lo).saturating_add(1))
}

/// How many events a rate per minute gives over `ms`, the fraction settled
/// by a draw so low rates over short runs still happen sometimes.
fn count(rng: &mut Rng, per_min: u32, ms: u64) -> usize {
    let scaled = u64::from(per_min).saturating_mul(ms);
    let whole = scaled / 60_000;
    let extra = u64::from(rng.below(60_000) < scaled % 60_000);
    usize::try_from(whole + extra)
        .unwrap_or(OPS_MAX)
        .min(OPS_MAX)
}

/// A body length: mostly chat-sized, sometimes large, now and then too large.
pub(crate) fn body_len(rng: &mut Rng) -> u32 {
    let n = match rng.below(100) {
        0..=84 => between(rng, 1, 256),
        85..=97 => between(rng, 257, 65_536),
        _ => between(rng, 65_537, u64::from(crate::swarm::BODY_LEN_MAX)),
    };
    u32::try_from(n).unwrap_or(crate::swarm::BODY_LEN_MAX)
}

struct Picker<'a> {
    clients: u32,
    channels: &'a [ChannelId],
}

impl Picker<'_> {
    fn client(&self, rng: &mut Rng) -> ClientIx {
        ClientIx(u32::try_from(rng.below(u64::from(self.clients))).unwrap_or(0))
    }

    fn channel(&self, rng: &mut Rng) -> ChannelId {
        let i = usize::try_from(rng.below(self.channels.len() as u64)).unwrap_or(0);
        self.channels[i].clone()
    }
}

/// The ops of a scenario, sorted by time (stable: the prologue, then the
/// workload, then the faults, among equal times).
pub(super) fn ops(p: &SwarmParams) -> Vec<(u64, Op)> {
    // Salted, so the ops never share a stream with the parameter draws.
    let mut root = Rng::new(p.seed ^ OPS_SALT);
    let mut prologue = root.fork();
    let mut work = root.fork();
    let mut faults = root.fork();
    let pick = Picker {
        clients: p.clients,
        channels: &p.channels,
    };
    let mut ops = Vec::new();

    // Prologue: every client connects and joins a channel or two, so the
    // workload has something to act on.
    for c in 0..p.clients {
        let client = ClientIx(c);
        ops.push((between(&mut prologue, 0, 50), Op::Connect { client }));
        for _ in 0..between(&mut prologue, 1, 2) {
            let channel = pick.channel(&mut prologue);
            ops.push((
                between(&mut prologue, 0, 100),
                Op::Subscribe { client, channel },
            ));
        }
    }

    let budget = OPS_MAX.saturating_sub(ops.len());
    let n = usize::try_from(u64::from(p.ops_per_sec).saturating_mul(p.safety_ms) / 1000)
        .unwrap_or(budget)
        .min(budget);
    let weights = p.weights.as_array();
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    for _ in 0..n {
        let at_ms = work.below(p.safety_ms);
        let mut roll = work.below(total.max(1));
        let mut kind = 0;
        for (i, w) in weights.iter().enumerate() {
            if roll < u64::from(*w) {
                kind = i;
                break;
            }
            roll -= u64::from(*w);
        }
        let client = pick.client(&mut work);
        let channel = pick.channel(&mut work);
        let op = match kind {
            0 => Op::Connect { client },
            1 => Op::Disconnect { client },
            2 => Op::Subscribe { client, channel },
            3 => Op::Unsubscribe { client, channel },
            4 => Op::Send {
                client,
                channel,
                body_len: body_len(&mut work),
            },
            5 => Op::Edit {
                client,
                channel,
                pick: u32::try_from(work.below(1 << 16)).unwrap_or(0),
            },
            6 => Op::Delete {
                client,
                channel,
                pick: u32::try_from(work.below(1 << 16)).unwrap_or(0),
            },
            7 => Op::Read { client, channel },
            _ => Op::Typing {
                client,
                channel,
                active: work.below(4) != 0,
            },
        };
        ops.push((at_ms, op));
    }

    fault_ops(p, &pick, &mut faults, &mut ops);
    ops.truncate(OPS_MAX);
    ops.sort_by_key(|(at_ms, _)| *at_ms);
    ops
}

fn fault_ops(p: &SwarmParams, pick: &Picker<'_>, rng: &mut Rng, ops: &mut Vec<(u64, Op)>) {
    let f = &p.faults;
    let end_ms = p.safety_ms;
    // A repair after the safety phase is left to the liveness phase, which
    // heals and restarts everything anyway.
    let push_until = |ops: &mut Vec<(u64, Op)>, at_ms: u64, op: Op| {
        if at_ms < end_ms {
            ops.push((at_ms, op));
        }
    };
    for _ in 0..count(rng, f.drops_per_min, end_ms) {
        let client = pick.client(rng);
        push_until(ops, rng.below(end_ms), Op::DropConnection { client });
    }
    for _ in 0..count(rng, f.partitions_per_min, end_ms) {
        let at_ms = rng.below(end_ms);
        let mut clients: Vec<ClientIx> = (0..p.clients)
            .filter(|_| rng.below(2) == 0)
            .map(ClientIx)
            .collect();
        if clients.is_empty() {
            clients.push(pick.client(rng));
        }
        let i = usize::try_from(rng.below(f.partition_kinds.len() as u64)).unwrap_or(0);
        let kind = f.partition_kinds[i];
        push_until(ops, at_ms, Op::Partition { clients, kind });
        let repair_ms = at_ms + between(rng, 1, f.partition_ms_max.max(1));
        push_until(ops, repair_ms, Op::Repair);
    }
    for _ in 0..count(rng, f.holds_per_min, end_ms) {
        let client = pick.client(rng);
        let duration_ms = between(rng, 1, f.hold_ms_max.max(1));
        push_until(
            ops,
            rng.below(end_ms),
            Op::Hold {
                client,
                duration_ms,
            },
        );
    }
    for _ in 0..count(rng, f.crashes_per_min, end_ms) {
        let at_ms = rng.below(end_ms);
        push_until(ops, at_ms, Op::Crash);
        let up_ms = at_ms + between(rng, 1, f.crash_ms_max.max(1));
        push_until(ops, up_ms, Op::Bounce);
    }
    for _ in 0..count(rng, f.store_fails_per_min, end_ms) {
        let duration_ms = between(rng, 1, f.store_fail_ms_max.max(1));
        push_until(ops, rng.below(end_ms), Op::StoreFail { duration_ms });
    }
    for _ in 0..count(rng, f.store_latency_changes_per_min, end_ms) {
        let ms = between(rng, 0, f.store_latency_ms_max);
        push_until(ops, rng.below(end_ms), Op::StoreLatency { ms });
    }
    for _ in 0..count(rng, f.app_restarts_per_min, end_ms) {
        let client = pick.client(rng);
        push_until(ops, rng.below(end_ms), Op::AppRestart { client });
    }
}

/// Process crashes (each followed by a restart) and listener drops among
/// `servers` processes, sorted by time; none for a calm world or one
/// process. A stream of their own, so the other ops stay as they are.
pub(super) fn process_ops(p: &SwarmParams, servers: usize) -> Vec<(u64, Op)> {
    let mut ops = Vec::new();
    if servers < 2 || p.faults == crate::swarm::FaultMix::calm() {
        return ops;
    }
    let mut rng = Rng::new(p.seed ^ SERVERS_SALT);
    let end_ms = p.safety_ms;
    let server = |rng: &mut Rng| u8::try_from(rng.below(servers as u64)).unwrap_or(0);
    let crashes_per_min = 1 + u32::try_from(rng.below(3)).unwrap_or(0);
    for _ in 0..count(&mut rng, crashes_per_min, end_ms) {
        let at_ms = rng.below(end_ms);
        let server = server(&mut rng);
        ops.push((at_ms, Op::ProcessCrash { server }));
        let up_ms = at_ms + between(&mut rng, 1, 20_000);
        if up_ms < end_ms {
            ops.push((up_ms, Op::ProcessRestart { server }));
        }
    }
    let drops_per_min = u32::try_from(rng.below(6)).unwrap_or(0);
    for _ in 0..count(&mut rng, drops_per_min, end_ms) {
        let at_ms = rng.below(end_ms);
        let server = server(&mut rng);
        let duration_ms = between(&mut rng, 1, 10_000);
        ops.push((
            at_ms,
            Op::ListenerDrop {
                server,
                duration_ms,
            },
        ));
    }
    // Stalls on their own stream: some past the lease (10 s).
    let mut rng = Rng::new(p.seed ^ STALLS_SALT);
    let stalls_per_min = u32::try_from(rng.below(3)).unwrap_or(0);
    for _ in 0..count(&mut rng, stalls_per_min, end_ms) {
        let at_ms = rng.below(end_ms);
        let server = server(&mut rng);
        let duration_ms = between(&mut rng, 1, 20_000);
        ops.push((
            at_ms,
            Op::ArbiterStall {
                server,
                duration_ms,
            },
        ));
    }
    ops.sort_by_key(|(at_ms, _)| *at_ms);
    ops
}
