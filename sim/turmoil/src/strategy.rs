//! The proptest strategy for turmoil plans: mostly sends, some membership
//! changes, and faults that come with their own heal a little later (a
//! partition is usually followed by a repair), so a case spends most of its
//! time on a flowing network and still sees every fault. Shrinking deletes
//! steps and shortens waits, down to the few steps that matter.

use proptest::prelude::*;

use super::plan::{Action, CHANNELS, CLIENTS_MAX, Plan, Step};

/// How many steps a plan has at most.
pub const STEPS_MAX: usize = 40;

/// Longest wait between two steps, in virtual milliseconds.
pub const AFTER_MS_MAX: u16 = 1_500;

/// Largest one-way link latency a step may set, in milliseconds: above
/// the clients' request and heartbeat timeouts' halves, so round trips
/// outlast them and requests are retried while the originals are still on
/// the way (the server's dedupe and the client's late-reply handling).
pub const LATENCY_MS_MAX: u16 = 2_500;

/// Most messages one send step queues at once.
pub const BURST_MAX: u8 = 4;

/// A channel index, `general` three times as often as the others (every
/// client starts subscribed to it, so most sends are accepted).
fn channel() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 1 => 0..CHANNELS.len() as u8]
}

fn action() -> impl Strategy<Value = Action> {
    let client = 0..CLIENTS_MAX;
    prop_oneof![
        8 => (client.clone(), channel(), 1..=BURST_MAX)
            .prop_map(|(client, channel, count)| Action::Send { client, channel, count }),
        2 => (client.clone(), 0..CHANNELS.len() as u8)
            .prop_map(|(client, channel)| Action::Subscribe { client, channel }),
        1 => (client.clone(), channel()).prop_map(|(client, channel)| Action::Unsubscribe { client, channel }),
        1 => client.clone().prop_map(|client| Action::Partition { client }),
        1 => client.clone().prop_map(|client| Action::Repair { client }),
        1 => client.clone().prop_map(|client| Action::Hold { client }),
        1 => client.clone().prop_map(|client| Action::Release { client }),
        1 => (client, 1..=LATENCY_MS_MAX).prop_map(|(client, ms)| Action::Latency { client, ms }),
        1 => Just(Action::Bounce),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (0..=AFTER_MS_MAX, action()).prop_map(|(after_ms, action)| Step { after_ms, action })
}

/// Plans with 2..=[`CLIENTS_MAX`] clients and up to `steps_max` steps.
pub fn plan(steps_max: usize) -> impl Strategy<Value = Plan> {
    (
        any::<u64>(),
        2..=CLIENTS_MAX,
        prop::collection::vec(step(), 0..=steps_max.min(STEPS_MAX)),
    )
        .prop_map(|(seed, clients, steps)| Plan {
            seed,
            clients,
            steps,
        })
}
