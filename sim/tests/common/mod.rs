//! World building and reading helpers shared by the whole-system tests.
//!
//! Every world here is calm (short delays, no random faults: faults come
//! only from the ops a test applies), on streams, with one user per client,
//! and keeps its readable trace for the snapshot.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use lockstep_core::Instant;
use lockstep_core::client::ChannelView;
use lockstep_core::ids::{ChannelId, ClientMsgId, Seq};
use lockstep_core::wire::LogEvent;
use lockstep_sim::net::ClientIx;
use lockstep_sim::op::Op;
use lockstep_sim::swarm::{ClientKind, ClientPolicy, SwarmOverrides, SwarmParams, TransportPolicy};
use lockstep_sim::world::{World, WorldConfig};

/// One seed for every test: the fault mix is calm, so the seed only picks
/// delays, ids and jitter.
pub(crate) const SEED: u64 = 7;

/// Most events one `run_until` may process: a livelock guard, far above any
/// test's needs.
pub(crate) const EVENTS_MAX: u64 = 1_000_000;

/// Longest a healed world may take to converge in these tests (virtual).
pub(crate) const CONVERGE_MS_MAX: u64 = 120_000;

/// `room-0`, `private:user-1`, ...
pub(crate) fn ch(name: &str) -> ChannelId {
    ChannelId::new(name).expect("valid channel id")
}

/// Client `i`.
pub(crate) fn c(i: u32) -> ClientIx {
    ClientIx(i)
}

/// The parameters of a calm stream world of `clients` clients, each its own
/// user (`user-<i>`), using `channels`.
pub(crate) fn params(clients: u32, channels: &[&str]) -> SwarmParams {
    let mut params = SwarmParams::draw(
        SEED,
        &SwarmOverrides {
            clients: Some(clients),
            calm: true,
            transport: Some(TransportPolicy::AllStream),
            kinds: Some(ClientPolicy::AllMachine),
            ..Default::default()
        },
    )
    .expect("valid overrides");
    params.users = clients;
    params.channels = channels.iter().map(|n| ch(n)).collect();
    params
}

/// A world built from `params` with the lab's defaults and trace lines on.
pub(crate) fn world_from(params: SwarmParams) -> World {
    let mut config = WorldConfig::new(params);
    config.trace_lines = true;
    World::new(config).expect("valid world")
}

/// [`params`] with the clients `plain` names running a plain socket.io
/// app, the others the client machine.
pub(crate) fn params_with_plain(clients: u32, channels: &[&str], plain: &[u32]) -> SwarmParams {
    let mut p = params(clients, channels);
    p.kind_policy = ClientPolicy::Mixed;
    p.kinds = (0..clients)
        .map(|i| {
            if plain.contains(&i) {
                ClientKind::Plain
            } else {
                ClientKind::Machine
            }
        })
        .collect();
    p
}

/// A calm stream world; see [`params`].
pub(crate) fn world(clients: u32, channels: &[&str]) -> World {
    world_from(params(clients, channels))
}

/// Runs the world to `ms` (virtual), asserting no livelock.
pub(crate) fn run_to(w: &mut World, ms: u64) {
    assert!(
        w.run_until(Instant::from_millis(ms), EVENTS_MAX),
        "livelock before {ms} ms"
    );
}

/// Runs the world for `ms` more (virtual).
pub(crate) fn run_for(w: &mut World, ms: u64) {
    let to = w.now().as_millis() + ms;
    run_to(w, to);
}

/// Applies every op now, in order.
pub(crate) fn apply_all(w: &mut World, ops: &[Op]) {
    for op in ops {
        w.apply(op);
    }
}

/// Connects `client` and subscribes it to `channel` (both now).
pub(crate) fn join(w: &mut World, client: ClientIx, channel: &str) {
    w.apply(&Op::Connect { client });
    w.apply(&Op::Subscribe {
        client,
        channel: ch(channel),
    });
}

/// `client` sends a `body_len`-byte message to `channel` now.
pub(crate) fn send(w: &mut World, client: ClientIx, channel: &str, body_len: u32) {
    w.apply(&Op::Send {
        client,
        channel: ch(channel),
        body_len,
    });
}

/// The client's view of `channel`, which must exist.
pub(crate) fn view(w: &World, client: ClientIx, channel: &str) -> ChannelView {
    w.view(client, &ch(channel))
        .unwrap_or_else(|| panic!("{client} knows no channel {channel}"))
}

/// The store's head seq of `channel` (0 when it has no log yet).
pub(crate) fn head(w: &World, channel: &str) -> Seq {
    w.store().head(&ch(channel)).map_or(Seq::ZERO, |(_, h)| h)
}

/// The store's log of `channel`.
pub(crate) fn log(w: &World, channel: &str) -> Vec<LogEvent> {
    w.store().events(&ch(channel)).cloned().collect()
}

/// The client message ids of the messages in `channel`'s log, in log order.
pub(crate) fn stored_msg_ids(w: &World, channel: &str) -> Vec<ClientMsgId> {
    log(w, channel)
        .into_iter()
        .filter_map(|e| match e {
            LogEvent::Message(m) => Some(m.client_msg_id),
            _ => None,
        })
        .collect()
}

/// Whether the client is connected now.
pub(crate) fn is_connected(w: &World, client: ClientIx) -> bool {
    w.is_connected(client)
}

/// Trace lines containing every one of `needles`.
pub(crate) fn lines_with(w: &World, needles: &[&str]) -> Vec<String> {
    w.trace()
        .lines()
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .cloned()
        .collect()
}

/// The seqs `client`'s app was handed in `channel`, in delivery order, read
/// from the trace (`cN app: delivers <channel> #S ...`).
pub(crate) fn delivered(w: &World, client: ClientIx, channel: &str) -> Vec<u64> {
    let prefix = format!("{client} app: delivers {channel} #");
    w.trace()
        .lines()
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            rest.split(' ').next()?.parse().ok()
        })
        .collect()
}

/// `1..=n` as a vector, for comparing with [`delivered`].
pub(crate) fn seqs(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// The oracle found nothing.
pub(crate) fn assert_no_violation(w: &World) {
    assert!(
        w.oracle().violations().is_empty(),
        "oracle: {:#?}",
        w.oracle().violations()
    );
}

/// Heals every fault and runs until the world converges (bounded), then
/// asserts it did and that the oracle found nothing. Returns the virtual
/// time of convergence in ms.
pub(crate) fn heal_and_converge(w: &mut World) -> u64 {
    w.heal_everything();
    converge(w)
}

/// Runs until the world converges (bounded), asserting it does and that
/// the oracle found nothing on the way. Returns when (virtual ms).
pub(crate) fn converge(w: &mut World) -> u64 {
    let deadline = w.now().as_millis() + CONVERGE_MS_MAX;
    loop {
        assert_no_violation(w);
        match w.pending() {
            None => return w.now().as_millis(),
            Some(p) => assert!(
                w.now().as_millis() < deadline,
                "not converged after {CONVERGE_MS_MAX} ms: {p}"
            ),
        }
        run_for(w, 100);
    }
}

/// The readable trace, one line per event, for the snapshot.
pub(crate) fn trace(w: &World) -> String {
    w.trace().lines().join("\n")
}
