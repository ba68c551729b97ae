//! Two stores on one schema, as two server processes would share a
//! database: appends to the same channels, at the same time, with the same
//! dedupe keys. The head row lock keeps every channel's seqs contiguous,
//! and a key sent through both is stored once: the loser waits for the
//! winner's commit and answers its ack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::{AppendEntry, AppendOutcome, Existing, StoreCommand, StoreReply};
use lockstep_core::wire::{Body, LogEvent};
use lockstep_postgres::{PgConfig, PgStore};
use lockstep_tokio::server::Store;

const CHANNELS: [&str; 2] = ["a", "b"];
const TASKS: usize = 4;
const KEYS_PER_TASK: usize = 30;

/// Sends every key of task `t` (alternating channels; every third append
/// carries the next key too), returning what each send answered.
async fn sender(s: PgStore, t: usize) -> Vec<(String, String, AppendOutcome)> {
    let keys: Vec<String> = (0..KEYS_PER_TASK)
        .map(|i| format!("k{}", i * TASKS + t))
        .collect();
    let mut answers = Vec::new();
    let mut i = 0;
    while i < keys.len() {
        let channel = CHANNELS[i % 2];
        let n = if i % 3 == 0 { 2 } else { 1 }.min(keys.len() - i);
        let batch = &keys[i..i + n];
        let cmd = StoreCommand::Append {
            channel: ChannelId::new(channel).unwrap(),
            entries: batch
                .iter()
                .map(|k| AppendEntry::Message {
                    author: UserId::new("alice").unwrap(),
                    client_msg_id: ClientMsgId::new(k).unwrap(),
                    body: Body::text(k),
                    ts: 1,
                })
                .collect(),
            chain: lockstep_core::store::AppendChain::Start,
        };
        let reply = s.execute(cmd).await;
        let Ok(StoreReply::Appended(outcomes)) = reply else {
            panic!("a send failed: {reply:?}")
        };
        for (k, o) in batch.iter().zip(outcomes) {
            answers.push((channel.to_owned(), k.clone(), o));
        }
        i += n;
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_channels_with_contiguous_seqs_and_one_copy_per_key() {
    let Some(url) = common::url() else { return };
    let config = PgConfig {
        schema: common::fresh_schema(),
        ..PgConfig::default()
    };
    let one = PgStore::connect(&url, config.clone()).await.unwrap();
    let two = PgStore::connect(&url, config).await.unwrap();
    // Each key goes through both stores at about the same moment.
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        tasks.push(tokio::spawn(sender(one.clone(), t)));
        tasks.push(tokio::spawn(sender(two.clone(), t)));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    // Per (channel, key): one append, and every other answer is its ack.
    let mut appended: BTreeMap<(String, String), (Seq, String)> = BTreeMap::new();
    for (channel, k, o) in &answers {
        if let AppendOutcome::Appended(e) = o {
            let first = appended.insert(
                (channel.clone(), k.clone()),
                (e.seq(), e.message_id().to_string()),
            );
            assert!(first.is_none(), "{k} in {channel} appended twice");
        }
    }
    for (channel, k, o) in &answers {
        match o {
            AppendOutcome::Appended(_) => {}
            AppendOutcome::Duplicate(Existing::Message(ack)) => {
                let original = appended.get(&(channel.clone(), k.clone()));
                assert_eq!(
                    original,
                    Some(&(ack.seq, ack.message_id.to_string())),
                    "{k}: a duplicate answers the original"
                );
            }
            other => panic!("{k}: {other:?}"),
        }
    }
    assert_eq!(
        answers.len(),
        2 * TASKS * KEYS_PER_TASK,
        "every send answered"
    );
    // Each channel's log: contiguous from 1, one event per key.
    for channel in CHANNELS {
        let events = common::events(&one, channel).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq().0).collect();
        let expected = appended.keys().filter(|(c, _)| c == channel).count();
        assert_eq!(seqs, (1..=expected as u64).collect::<Vec<_>>(), "{channel}");
        for e in &events {
            let LogEvent::Message(m) = e else {
                panic!("{e:?}")
            };
            let key = (channel.to_owned(), m.client_msg_id.to_string());
            assert_eq!(appended.get(&key).map(|a| a.0), Some(m.seq));
        }
        // The other store reads the same log.
        assert_eq!(common::events(&two, channel).await, events);
    }
}
