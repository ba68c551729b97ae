//! Drawing swarm parameters from a seed.
//!
//! Each section draws from its own fork of the seed's generator, so changing
//! how one section draws (or overriding its result) leaves the others as
//! they were: `--clients 8` keeps the seed's fault mix.

use lockstep_core::Rng;

use super::{
    CLIENTS_DRAWN_MAX, CLIENTS_OVERRIDE_MAX, ClientKind, ClientPolicy, FaultMix, OpWeights,
    ROOMS_MAX, ROOMS_MIN, SAFETY_MS_MAX, SwarmError, SwarmOverrides, SwarmParams, TransportPolicy,
    private_id, room_id,
};
use crate::net::{PartitionKind, StreamPartition, TransportKind};

/// A uniform value in `lo..=hi`.
pub(crate) fn between(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.below(hi.saturating_sub(lo).saturating_add(1))
}

/// `lo..=hi` as `u32`.
fn between32(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    u32::try_from(between(rng, u64::from(lo), u64::from(hi))).unwrap_or(hi)
}

/// One value per client: `fixed` for all, or else a coin per client
/// between `heads` and `tails`. A coin is drawn per client either way, so
/// fixing the value moves no other draw.
fn per_client<T: Copy>(
    rng: &mut Rng,
    clients: u32,
    fixed: Option<T>,
    (heads, tails): (T, T),
) -> Vec<T> {
    (0..clients)
        .map(|_| {
            let coin = rng.below(2) == 0;
            fixed.unwrap_or(if coin { heads } else { tails })
        })
        .collect()
}

/// Swarm testing: a fault is on for about half the seeds.
fn maybe(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    if rng.below(2) == 0 {
        0
    } else {
        between32(rng, lo, hi)
    }
}

pub(super) fn draw(seed: u64, o: &SwarmOverrides) -> Result<SwarmParams, SwarmError> {
    if let Some(got) = o.clients {
        if got == 0 || got > CLIENTS_OVERRIDE_MAX {
            return Err(SwarmError::Clients {
                got,
                max: CLIENTS_OVERRIDE_MAX,
            });
        }
    }
    if let Some(got) = o.safety_ms {
        if got == 0 || got > SAFETY_MS_MAX {
            return Err(SwarmError::SafetyMs {
                got,
                max: SAFETY_MS_MAX,
            });
        }
    }
    let mut root = Rng::new(seed);
    let mut topo = root.fork();
    let mut transport = root.fork();
    let mut faults_rng = root.fork();
    let mut work = root.fork();
    // Drawn last, from its own fork: every other draw of a seed is what it
    // was before plain clients joined the lab.
    let mut kinds_rng = root.fork();

    // Topology: more small worlds than large ones (two draws, keep the min).
    let drawn =
        between32(&mut topo, 1, CLIENTS_DRAWN_MAX).min(between32(&mut topo, 1, CLIENTS_DRAWN_MAX));
    let clients = o.clients.unwrap_or(drawn);
    let users = if topo.below(2) == 0 {
        clients
    } else {
        between32(&mut topo, 1, clients)
    };
    let rooms = between32(&mut topo, ROOMS_MIN, ROOMS_MAX);
    let mut channels: Vec<_> = (0..rooms).map(room_id).collect();
    if topo.below(3) == 0 {
        channels.push(private_id(between32(&mut topo, 0, users - 1)));
    }

    let drawn_policy = match transport.below(3) {
        0 => TransportPolicy::AllStream,
        1 => TransportPolicy::AllDatagram,
        _ => TransportPolicy::Mixed,
    };
    let transport_policy = o.transport.unwrap_or(drawn_policy);
    let transports = per_client(
        &mut transport,
        clients,
        match transport_policy {
            TransportPolicy::AllStream => Some(TransportKind::Stream),
            TransportPolicy::AllDatagram => Some(TransportKind::Datagram),
            TransportPolicy::Mixed => None,
        },
        (TransportKind::Stream, TransportKind::Datagram),
    );

    let drawn_faults = draw_faults(&mut faults_rng);
    let faults = if o.calm {
        FaultMix::calm()
    } else {
        drawn_faults
    };

    let weights = OpWeights {
        connect: between32(&mut work, 1, 3),
        disconnect: maybe(&mut work, 1, 2),
        subscribe: between32(&mut work, 1, 5),
        unsubscribe: maybe(&mut work, 1, 3),
        send: between32(&mut work, 5, 20),
        edit: maybe(&mut work, 1, 4),
        delete: maybe(&mut work, 1, 3),
        read: maybe(&mut work, 1, 5),
        typing: maybe(&mut work, 1, 5),
    };
    let ops_per_sec = between32(&mut work, 2, 100);
    let drawn_safety_ms = between(&mut work, 2_000, 60_000);
    let safety_ms = o.safety_ms.unwrap_or(drawn_safety_ms);

    // A quarter of the seeds run only the machine, a quarter only plain
    // apps, half a mix.
    let drawn_kinds = match kinds_rng.below(4) {
        0 => ClientPolicy::AllMachine,
        1 => ClientPolicy::AllPlain,
        _ => ClientPolicy::Mixed,
    };
    let kind_policy = o.kinds.unwrap_or(drawn_kinds);
    let kinds = per_client(
        &mut kinds_rng,
        clients,
        match kind_policy {
            ClientPolicy::AllMachine => Some(ClientKind::Machine),
            ClientPolicy::AllPlain => Some(ClientKind::Plain),
            ClientPolicy::Mixed => None,
        },
        (ClientKind::Plain, ClientKind::Machine),
    );

    Ok(SwarmParams {
        seed,
        clients,
        users,
        channels,
        transport_policy,
        transports,
        kind_policy,
        kinds,
        faults,
        weights,
        ops_per_sec,
        safety_ms,
    })
}

fn draw_faults(rng: &mut Rng) -> FaultMix {
    let delay_ms_min = between(rng, 0, 20);
    let delay_ms_max = delay_ms_min + between(rng, 0, 300);
    let loss_permille = maybe(rng, 1, 200);
    let dup_permille = maybe(rng, 1, 100);
    let reorder_permille = maybe(rng, 1, 200);
    let reorder_ms_max = if reorder_permille > 0 {
        between(rng, 1, 500)
    } else {
        0
    };
    let stream_partition = if rng.below(3) == 0 {
        StreamPartition::Stall
    } else {
        StreamPartition::Resume
    };
    // A small buffer now and then provokes the slow-consumer cut-off.
    let stream_buffer_frames_max = if rng.below(4) == 0 {
        between32(rng, 16, 64)
    } else {
        256
    };
    let drops_per_min = maybe(rng, 1, 20);
    let partitions_per_min = maybe(rng, 1, 10);
    let mut partition_kinds: Vec<PartitionKind> = [
        PartitionKind::Symmetric,
        PartitionKind::ToServerOnly,
        PartitionKind::ToClientOnly,
    ]
    .into_iter()
    .filter(|_| rng.below(2) == 0)
    .collect();
    if partition_kinds.is_empty() {
        partition_kinds.push(PartitionKind::Symmetric);
    }
    let partition_ms_max = between(rng, 100, 10_000);
    let crashes_per_min = maybe(rng, 1, 4);
    let crash_ms_max = between(rng, 100, 5_000);
    let store_fails_per_min = maybe(rng, 1, 10);
    let store_fail_ms_max = between(rng, 10, 3_000);
    let store_latency_changes_per_min = maybe(rng, 1, 6);
    let store_latency_ms_max = between(rng, 1, 200);
    let app_restarts_per_min = maybe(rng, 1, 6);
    let holds_per_min = maybe(rng, 1, 10);
    let hold_ms_max = between(rng, 10, 5_000);
    FaultMix {
        delay_ms_min,
        delay_ms_max,
        loss_permille,
        dup_permille,
        reorder_permille,
        reorder_ms_max,
        stream_partition,
        stream_buffer_frames_max,
        drops_per_min,
        partitions_per_min,
        partition_kinds,
        partition_ms_max,
        holds_per_min,
        hold_ms_max,
        crashes_per_min,
        crash_ms_max,
        store_fails_per_min,
        store_fail_ms_max,
        store_latency_changes_per_min,
        store_latency_ms_max,
        app_restarts_per_min,
    }
}
