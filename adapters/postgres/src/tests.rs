//! The planner's in-batch rules without a server, and the writer's
//! answers to a commit in doubt (with one: `LOCKSTEP_TEST_POSTGRES_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use lockstep_core::store::{
    AppendEntry, AppendOutcome, MessageState, ModifyRule, Refusal, StoreError, StoreReply,
};
use lockstep_core::wire::Body;
use lockstep_tokio::server::Store;

use crate::plan::{ChannelRow, Facts, Keys, Retention, WriteCommand, plan};
use crate::{CommitFault, PgConfig};

fn ch(s: &str) -> ChannelId {
    ChannelId::new(s).unwrap()
}
fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}
fn message(cmid: &str) -> AppendEntry {
    AppendEntry::Message {
        author: user("alice"),
        client_msg_id: ClientMsgId::new(cmid).unwrap(),
        body: Body::text(cmid),
        ts: 7,
    }
}
fn locked(channels: &[(&str, u64, u64)]) -> Facts {
    Facts {
        locked: channels
            .iter()
            .map(|(c, head, messages)| {
                let row = ChannelRow {
                    epoch: Epoch(9),
                    head: Seq(*head),
                    messages: *messages,
                };
                (ch(c), row)
            })
            .collect(),
        ..Facts::default()
    }
}
const KEEP_ALL: Retention = Retention {
    events: 1_000,
    remember: 1_000,
};

#[test]
fn an_edit_of_a_message_of_the_same_batch_drops_its_body_in_memory() {
    let id = MessageId::minted(Epoch(9), Seq(1));
    let cmds = [
        WriteCommand::Append {
            channel: ch("g"),
            entries: vec![message("a")],
            chain: lockstep_core::store::AppendChain::Start,
        },
        WriteCommand::Append {
            channel: ch("g"),
            entries: vec![AppendEntry::Update {
                target: id.clone(),
                actor: user("alice"),
                rule: ModifyRule::AuthorOnly,
                body: Body::text("edited"),
            }],
            chain: lockstep_core::store::AppendChain::Start,
        },
    ];
    let p = plan(&cmds, locked(&[("g", 0, 0)]), KEEP_ALL, 100);
    let w = &p.writes;
    assert!(w.tombstones.is_empty(), "no stored row to update");
    assert!(w.changed_messages.is_empty());
    let bodies: Vec<Option<&str>> = w
        .events
        .iter()
        .map(|e| e.event.body().map(Body::json))
        .collect();
    assert_eq!(bodies, [None, Some("\"edited\"")]);
    assert_eq!(w.new_messages.len(), 1);
    assert_eq!(w.new_messages[0].state, MessageState::Live { body: Seq(2) });
    assert_eq!(
        (w.heads.len(), w.heads[0].head, w.heads[0].messages),
        (1, Seq(2), 1)
    );
    // The broadcast of the message still carries its body.
    let Ok(StoreReply::Appended(first)) = &p.outcomes[0] else {
        panic!("{:?}", p.outcomes[0])
    };
    assert!(first[0].appended().unwrap().body().is_some());
}

#[test]
fn a_stored_target_is_updated_and_its_entry_tombstoned() {
    let id = MessageId::minted(Epoch(9), Seq(3));
    let mut facts = locked(&[("g", 4, 4)]);
    facts.targets.insert(
        (ch("g"), id.clone()),
        ("alice".into(), MessageState::Live { body: Seq(3) }),
    );
    let cmds = [WriteCommand::Append {
        channel: ch("g"),
        entries: vec![AppendEntry::Delete {
            target: id.clone(),
            actor: user("alice"),
            rule: ModifyRule::AuthorOnly,
        }],
        chain: lockstep_core::store::AppendChain::Start,
    }];
    let p = plan(&cmds, facts, KEEP_ALL, 100);
    assert_eq!(p.writes.tombstones, [(ch("g"), Seq(3))]);
    assert_eq!(
        p.writes.changed_messages,
        [(ch("g"), id, MessageState::Deleted { seq: Seq(5) })]
    );
}

#[test]
fn an_append_of_which_nothing_commits_leaves_no_row() {
    let cmds = [WriteCommand::Append {
        channel: ch("fresh"),
        entries: vec![AppendEntry::Delete {
            target: MessageId::new("nope").unwrap(),
            actor: user("u"),
            rule: ModifyRule::Anyone,
        }],
        chain: lockstep_core::store::AppendChain::Start,
    }];
    let p = plan(&cmds, locked(&[("fresh", 0, 0)]), KEEP_ALL, 100);
    assert_eq!(p.writes.unwritten, [ch("fresh")]);
    assert!(p.writes.heads.is_empty() && p.writes.events.is_empty());
}

#[test]
fn retention_steps_are_planned_with_the_head() {
    let retention = Retention {
        events: 2,
        remember: 3,
    };
    let cmds = [WriteCommand::Append {
        channel: ch("g"),
        entries: vec![message("a"), message("b")],
        chain: lockstep_core::store::AppendChain::Start,
    }];
    let p = plan(&cmds, locked(&[("g", 3, 3)]), retention, 100);
    assert_eq!(p.writes.prune, [(ch("g"), Seq(3))], "keep 4 and 5");
    assert_eq!(p.writes.forget, [(ch("g"), 2)], "5 messages, remember 3");
    assert_eq!(p.writes.heads[0].messages, 3);
}

#[test]
fn receipts_see_the_batch_before_them_and_keep_the_highest() {
    let cmds = [
        WriteCommand::SetReceipt {
            channel: ch("g"),
            user: user("bob"),
            up_to: Seq(2),
        },
        WriteCommand::Append {
            channel: ch("g"),
            entries: vec![message("a")],
            chain: lockstep_core::store::AppendChain::Start,
        },
        WriteCommand::SetReceipt {
            channel: ch("g"),
            user: user("bob"),
            up_to: Seq(2),
        },
        WriteCommand::SetReceipt {
            channel: ch("g"),
            user: user("bob"),
            up_to: Seq(1),
        },
    ];
    let mut facts = locked(&[("g", 1, 1)]);
    facts.receipts.insert((ch("g"), user("bob")), Seq(1));
    let p = plan(&cmds, facts, KEEP_ALL, 100);
    let receipt = |up_to, advanced| {
        Ok(StoreReply::Receipt {
            up_to: Seq(up_to),
            advanced,
        })
    };
    assert_eq!(
        p.outcomes[0],
        Ok(StoreReply::Refused(Refusal::BeyondHead { head: Seq(1) }))
    );
    assert_eq!(p.outcomes[2], receipt(2, true));
    assert_eq!(p.outcomes[3], receipt(2, false));
    assert_eq!(p.writes.receipts, [(ch("g"), user("bob"), Seq(2))]);
}

#[test]
fn keys_are_unique_and_sorted_and_skip_targets_that_cannot_exist() {
    let cmds = [
        WriteCommand::Append {
            channel: ch("b"),
            entries: vec![
                message("x"),
                message("x"),
                AppendEntry::Delete {
                    target: MessageId::new("m\0").unwrap(),
                    actor: user("u"),
                    rule: ModifyRule::Anyone,
                },
            ],
            chain: lockstep_core::store::AppendChain::Start,
        },
        WriteCommand::Append {
            channel: ch("a"),
            entries: vec![message("x")],
            chain: lockstep_core::store::AppendChain::Start,
        },
    ];
    let keys = Keys::of(&cmds);
    assert_eq!(keys.lock, [ch("a"), ch("b")]);
    assert_eq!(keys.messages.len(), 2);
    assert!(keys.targets.is_empty());
    // Unknown without asking: not found.
    let p = plan(&cmds, locked(&[("a", 0, 0), ("b", 0, 0)]), KEEP_ALL, 1);
    let Ok(StoreReply::Appended(outcomes)) = &p.outcomes[0] else {
        panic!()
    };
    assert_eq!(outcomes[2], AppendOutcome::Refused(Refusal::NotFound));
    assert!(matches!(outcomes[1], AppendOutcome::Duplicate(_)));
}

/// A commit whose reply is lost is answered from the server: what it
/// says was committed is acknowledged, what it says was not fails.
#[tokio::test]
async fn a_commit_in_doubt_is_answered_as_the_server_kept_it() {
    let Some(url) = common::url() else { return };
    let s = common::fresh(&url, PgConfig::default()).await;
    s.fail_next_commit(CommitFault::LoseReply);
    let kept = s.execute(common::append("c", &["k1", "k2"])).await;
    assert!(
        matches!(&kept, Ok(StoreReply::Appended(o)) if o.iter().all(|o| o.appended().is_some())),
        "{kept:?}"
    );
    assert_eq!(common::seqs(&s, "c").await, [1, 2]);

    s.fail_next_commit(CommitFault::RollBackSilently);
    let lost = s.execute(common::append("c", &["k3"])).await;
    assert!(matches!(lost, Err(StoreError::Unavailable(_))), "{lost:?}");
    assert_eq!(common::seqs(&s, "c").await, [1, 2], "k3 was not kept");
    // Nothing of k3 was stored: sending it again appends it, at seq 3.
    let again = s.execute(common::append("c", &["k3"])).await;
    assert!(
        matches!(&again, Ok(StoreReply::Appended(o)) if o[0].appended().map(|e| e.seq()) == Some(Seq(3))),
        "{again:?}"
    );
}

/// The chain rule: one command a batch, the first append of a channel is
/// rolled back, and the append issued behind it (queued before the writer
/// knew) fails too instead of taking its seq; another channel goes on, and
/// an append that starts a new chain is stored after.
#[tokio::test]
async fn an_append_issued_behind_a_rolled_back_one_fails_too() {
    use lockstep_core::store::{AppendChain, StoreCommand};
    let Some(url) = common::url() else { return };
    let config = PgConfig {
        batch_max: 1,
        ..PgConfig::default()
    };
    let s = common::fresh(&url, config).await;
    let behind = |cmd: StoreCommand| match cmd {
        StoreCommand::Append {
            channel, entries, ..
        } => StoreCommand::Append {
            channel,
            entries,
            chain: AppendChain::Behind,
        },
        other => other,
    };
    s.fail_next_commit(CommitFault::RollBackSilently);
    let first = s.execute(common::append("c", &["k1"]));
    let second = s.execute(behind(common::append("c", &["k2"])));
    let other = s.execute(behind(common::append("d", &["d1"])));
    let (first, second, other) = (first.await, second.await, other.await);
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "{first:?}"
    );
    assert!(
        matches!(&second, Err(StoreError::Unavailable(why)) if why.contains("an earlier append")),
        "k2 may not commit before k1: {second:?}"
    );
    assert!(other.is_ok(), "{other:?}");
    assert_eq!(common::seqs(&s, "c").await, Vec::<u64>::new());
    let again = s.execute(common::append("c", &["k1"])).await;
    assert!(
        matches!(&again, Ok(StoreReply::Appended(o)) if o[0].appended().map(|e| e.seq()) == Some(Seq(1))),
        "{again:?}"
    );
}

/// Two processes claim and release; one stops its heartbeat, and once its
/// lease expired exactly one of the others adopts its claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_claims_releases_and_the_reap_of_a_dead_process() {
    use std::time::Duration;

    use lockstep_core::wire::PresenceChange;

    use crate::presence::Arbiter;

    let Some(url) = common::url() else { return };
    let config = PgConfig {
        schema: common::fresh_schema(),
        ..PgConfig::default()
    };
    drop(crate::PgStore::connect(&url, config.clone()).await.unwrap());
    let mut pg: tokio_postgres::Config = url.parse().unwrap();
    crate::session_settings(&mut pg, &config);
    let change = |u: &str| PresenceChange {
        channel_id: ch("room"),
        user_id: user(u),
    };
    let long = Duration::from_secs(3_600);
    let mut a = Arbiter::connect(&pg, 1, long).await.unwrap();
    // b's lease is short and not renewed: b is dead soon.
    let mut b = Arbiter::connect(&pg, 2, Duration::from_millis(300))
        .await
        .unwrap();
    let mut c = Arbiter::connect(&pg, 3, long).await.unwrap();
    for arbiter in [&a, &b, &c] {
        assert!(arbiter.heartbeat().await.unwrap(), "a first lease");
    }
    assert!(!a.heartbeat().await.unwrap(), "renewed");
    assert!(a.claim(&change("alice")).await.unwrap(), "first claim");
    assert!(!b.claim(&change("alice")).await.unwrap(), "a holds it");
    assert!(!a.claim(&change("alice")).await.unwrap(), "a claim again");
    assert!(!a.release(&change("alice")).await.unwrap(), "b holds it");
    assert!(!a.release(&change("alice")).await.unwrap(), "a holds none");
    assert!(b.claim(&change("bob")).await.unwrap());
    assert!(c.claim(&change("carol")).await.unwrap());
    // Bounded wait for b's lease to run out, as a or c sees it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut by_a, mut by_c) = (Vec::new(), Vec::new());
    while by_a.is_empty() && by_c.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "b never reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
        by_a = a.reap().await.unwrap();
        by_c = c.reap().await.unwrap();
    }
    let mut adopted: Vec<_> = by_a.iter().chain(&by_c).cloned().collect();
    adopted.sort_by(|x, y| x.user_id.cmp(&y.user_id));
    assert_eq!(adopted, [change("alice"), change("bob")], "adopted once");
    assert!(a.reap().await.unwrap().is_empty());
    assert!(c.reap().await.unwrap().is_empty());
    // b was only slow: its next beat finds its lease gone.
    assert!(b.heartbeat().await.unwrap(), "b's lease was reaped");
    assert!(!b.heartbeat().await.unwrap());
    // The adopter's releases are the last ones; c's carol is untouched.
    let mut adopter = if by_a.is_empty() { c } else { a };
    assert!(adopter.release(&change("alice")).await.unwrap());
    assert!(adopter.release(&change("bob")).await.unwrap());
    assert!(
        !adopter.claim(&change("carol")).await.unwrap(),
        "c holds carol"
    );
    // c restarts with the same node id: it finds its earlier claims.
    let c = Arbiter::connect(&pg, 3, long).await.unwrap();
    assert_eq!(c.held().await.unwrap(), [change("carol")]);
}
