//! The store contract as a test kit: every rule of `lockstep_core::store`
//! that a [`Store`] must keep, checked against fresh stores. Run it from
//! the tests of your own store (PostgreSQL, FoundationDB, ...) before the
//! server trusts it with messages:
//!
//! ```text
//! #[tokio::test]
//! async fn my_store_keeps_the_contract() {
//!     lockstep_tokio::server::contract::check_store(|| MyStore::connect_fresh()).await;
//! }
//! ```
//!
//! Enabled by the `store-contract` feature (a dev-dependency feature: it
//! panics on the first broken rule, naming it). A fresh store must retain
//! at least the 1,005 events one check writes, and cut reads at
//! `READ_LIMIT_MAX`. Retention has its own entry, [`check_retention`], for
//! a store configured to keep few events; what else is configuration
//! specific (dedupe-memory limits, failure injection) is left to the
//! store's own tests.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use lockstep_core::store::{
    AppendChain, AppendEntry, AppendOutcome, Existing, ModifyRule, Page, ReadFrom, Refusal,
    StoreCommand, StoreReply,
};
use lockstep_core::wire::{Body, LogEvent};

use super::Store;

/// Checks every rule against a fresh store from `make` (one per rule).
///
/// # Panics
///
/// On the first broken rule, with the rule's name and what differed.
pub async fn check_store<S: Store>(mut make: impl FnMut() -> S) {
    check(
        "seqs_are_contiguous_per_channel_and_epochs_fixed",
        seqs_are_contiguous_per_channel_and_epochs_fixed(make()),
    )
    .await;
    check(
        "dedupe_returns_the_original_and_consumes_no_seq",
        dedupe_returns_the_original_and_consumes_no_seq(make()),
    )
    .await;
    check("update_and_delete_rules", update_and_delete_rules(make())).await;
    check(
        "one_append_commits_its_entries_in_order_with_an_outcome_each",
        one_append_commits_its_entries_in_order_with_an_outcome_each(make()),
    )
    .await;
    check("reads_are_bounded", reads_are_bounded(make())).await;
    check(
        "a_read_is_cut_to_the_store_limit",
        a_read_is_cut_to_the_store_limit(make()),
    )
    .await;
    check(
        "a_read_is_cut_to_its_byte_budget",
        a_read_is_cut_to_its_byte_budget(make()),
    )
    .await;
    check(
        "receipts_are_monotonic_and_bounded_by_head",
        receipts_are_monotonic_and_bounded_by_head(make()),
    )
    .await;
    check(
        "a_never_written_channel_reads_as_empty_and_keeps_its_epoch",
        a_never_written_channel_reads_as_empty_and_keeps_its_epoch(make()),
    )
    .await;
    check(
        "edits_and_deletes_leave_tombstones",
        edits_and_deletes_leave_tombstones(make()),
    )
    .await;
    check(
        "pipelined_appends_are_ordered_by_call",
        pipelined_appends_are_ordered_by_call(make()),
    )
    .await;
}

/// Checks the retention rules against a fresh store from `make` that keeps
/// `retain` events per channel (at least 2, at most 500; its age limit, if
/// any, must not apply within the check): what is kept is contiguous and
/// ends at the head, reads say where it begins (`oldest_retained`, so a
/// join from an older position is answered truncated), and dedupe, edit
/// and delete memory outlives the dropped events.
///
/// # Panics
///
/// On the first broken rule, with the rule's name and what differed.
pub async fn check_retention<S: Store>(mut make: impl FnMut() -> S, retain: u64) {
    assert!(
        (2..=500).contains(&retain),
        "check_retention needs 2..=500 retained events, not {retain}"
    );
    check(
        "retention_drops_the_oldest_and_says_so",
        retention_drops_the_oldest_and_says_so(make(), retain),
    )
    .await;
}

/// Runs one rule's check; a failure panics again with the rule's name.
async fn check(rule: &str, run: impl Future<Output = ()>) {
    if let Err(payload) = AssertUnwindSafe(run).catch_unwind().await {
        panic!(
            "store contract broken: {rule}: {}",
            panic_text(payload.as_ref())
        );
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

fn ch(s: &str) -> ChannelId {
    ChannelId::new(s).unwrap_or_else(|e| panic!("test channel id {s:?}: {e}"))
}
fn user(s: &str) -> UserId {
    UserId::new(s).unwrap_or_else(|e| panic!("test user id {s:?}: {e}"))
}
async fn run<S: Store>(s: &S, cmd: StoreCommand) -> StoreReply {
    let kind = format!("{cmd:?}");
    s.execute(cmd)
        .await
        .unwrap_or_else(|e| panic!("the store failed a command it must answer ({e}): {kind}"))
}
fn message(author: &str, cmid: &str) -> AppendEntry {
    AppendEntry::Message {
        author: user(author),
        client_msg_id: ClientMsgId::new(cmid)
            .unwrap_or_else(|e| panic!("test client message id {cmid:?}: {e}")),
        body: Body::text(cmid),
        ts: 7,
    }
}
/// Appends `entries` as one command; the outcomes, one per entry.
async fn append<S: Store>(s: &S, c: &str, entries: Vec<AppendEntry>) -> Vec<AppendOutcome> {
    let n = entries.len();
    let cmd = StoreCommand::Append {
        channel: ch(c),
        entries,
        chain: AppendChain::Start,
    };
    match run(s, cmd).await {
        StoreReply::Appended(outcomes) if outcomes.len() == n => outcomes,
        other => panic!("not {n} append outcomes: {other:?}"),
    }
}
async fn send<S: Store>(s: &S, c: &str, author: &str, cmid: &str) -> AppendOutcome {
    append(s, c, vec![message(author, cmid)]).await.remove(0)
}

/// The server hands a channel's next append over while the previous one is
/// still at the store (`AppendChain::Behind`); the store must order them
/// as they were handed over, whichever future is awaited first, or a
/// sender's later batch could take the earlier seq.
async fn pipelined_appends_are_ordered_by_call<S: Store>(s: S) {
    let command = |cmid: &str, chain| StoreCommand::Append {
        channel: ch("pipe"),
        entries: vec![message("alice", cmid)],
        chain,
    };
    let first = s.execute(command("1", AppendChain::Start));
    let second = s.execute(command("2", AppendChain::Behind));
    let third = s.execute(command("3", AppendChain::Behind));
    let seq = |reply: Result<StoreReply, lockstep_core::store::StoreError>| match reply {
        Ok(StoreReply::Appended(outcomes)) => match outcomes.as_slice() {
            [AppendOutcome::Appended(event)] => event.seq().0,
            other => panic!("not one appended outcome: {other:?}"),
        },
        other => panic!("a pipelined append was not answered: {other:?}"),
    };
    let third = seq(third.await);
    let second = seq(second.await);
    let first = seq(first.await);
    assert_eq!(
        [first, second, third],
        [1, 2, 3],
        "seqs must follow the order of the execute calls"
    );
}

fn appended(r: &AppendOutcome) -> &LogEvent {
    r.appended()
        .unwrap_or_else(|| panic!("not appended: {r:?}"))
}
fn appended_seq(r: &AppendOutcome) -> u64 {
    appended(r).seq().0
}
fn message_id(r: &AppendOutcome) -> MessageId {
    appended(r).message_id().clone()
}
async fn head<S: Store>(s: &S, c: &str) -> (Epoch, Seq) {
    match run(s, StoreCommand::Head { channel: ch(c) }).await {
        StoreReply::Head { epoch, head } => (epoch, head),
        other => panic!("not a head: {other:?}"),
    }
}
async fn read<S: Store>(s: &S, c: &str, from: ReadFrom, limit: u64) -> Page {
    read_bytes(s, c, from, limit, usize::MAX).await
}
async fn read_bytes<S: Store>(
    s: &S,
    c: &str,
    from: ReadFrom,
    limit: u64,
    max_bytes: usize,
) -> Page {
    match run(
        s,
        StoreCommand::Read {
            channel: ch(c),
            from,
            limit,
            max_bytes,
        },
    )
    .await
    {
        StoreReply::Events(p) => p,
        other => panic!("not a page: {other:?}"),
    }
}
async fn modify<S: Store>(
    s: &S,
    target: &MessageId,
    actor: &str,
    delete: bool,
    rule: ModifyRule,
) -> AppendOutcome {
    let entry = if delete {
        AppendEntry::Delete {
            target: target.clone(),
            actor: user(actor),
            rule,
        }
    } else {
        AppendEntry::Update {
            target: target.clone(),
            actor: user(actor),
            rule,
            body: Body::text("edited"),
        }
    };
    append(s, "g", vec![entry]).await.remove(0)
}

async fn seqs_are_contiguous_per_channel_and_epochs_fixed<S: Store>(s: S) {
    // A read before any write already tells the epoch.
    let (epoch_a, h) = head(&s, "a").await;
    assert_eq!(h, Seq(0));
    assert_eq!(appended_seq(&send(&s, "a", "u", "1").await), 1);
    assert_eq!(appended_seq(&send(&s, "b", "u", "1").await), 1);
    assert_eq!(appended_seq(&send(&s, "a", "u", "2").await), 2);
    assert_eq!(head(&s, "a").await, (epoch_a, Seq(2)));
    let (epoch_b, h) = head(&s, "b").await;
    assert_eq!(h, Seq(1));
    assert_eq!(appended_seq(&send(&s, "b", "u", "2").await), 2);
    assert_eq!(head(&s, "b").await, (epoch_b, Seq(2)), "b's epoch holds");
}

async fn dedupe_returns_the_original_and_consumes_no_seq<S: Store>(s: S) {
    let first = send(&s, "g", "alice", "c1").await;
    let again = send(&s, "g", "alice", "c1").await;
    let AppendOutcome::Duplicate(Existing::Message(ack)) = again else {
        panic!("{again:?}")
    };
    assert_eq!(ack.seq, Seq(1));
    assert_eq!(ack.ts, 7);
    assert_eq!(ack.message_id, message_id(&first));
    // Same key from another user is a new message; in another channel too.
    assert_eq!(appended_seq(&send(&s, "g", "bob", "c1").await), 2);
    assert_eq!(appended_seq(&send(&s, "h", "alice", "c1").await), 1);
    assert_eq!(head(&s, "g").await.1, Seq(2));
}

async fn update_and_delete_rules<S: Store>(s: S) {
    let author_only = ModifyRule::AuthorOnly;
    let id = message_id(&send(&s, "g", "alice", "c1").await);
    let unknown = MessageId::new("nope").unwrap_or_else(|e| panic!("test message id: {e}"));
    for delete in [false, true] {
        assert_eq!(
            modify(&s, &unknown, "alice", delete, author_only).await,
            AppendOutcome::Refused(Refusal::NotFound)
        );
        assert_eq!(
            modify(&s, &id, "bob", delete, author_only).await,
            AppendOutcome::Refused(Refusal::Forbidden)
        );
    }
    assert_eq!(
        appended_seq(&modify(&s, &id, "alice", false, author_only).await),
        2
    );
    assert_eq!(
        appended_seq(&modify(&s, &id, "alice", true, author_only).await),
        3
    );
    // Repeating a delete answers the original deletion.
    assert_eq!(
        modify(&s, &id, "alice", true, author_only).await,
        AppendOutcome::Duplicate(Existing::Deletion { seq: Seq(3) })
    );
    // An update of a deleted message is not_found, checked before authorship.
    assert_eq!(
        modify(&s, &id, "bob", false, author_only).await,
        AppendOutcome::Refused(Refusal::NotFound)
    );
    assert_eq!(head(&s, "g").await.1, Seq(3));
    let target = message_id(&send(&s, "g", "alice", "c2").await);
    let anyone = modify(&s, &target, "mod", false, ModifyRule::Anyone).await;
    assert_eq!(appended_seq(&anyone), 5);
    // The log holds every event, in order, with the right kinds.
    let page = read(&s, "g", ReadFrom::After(Seq(0)), 10).await;
    let kinds: Vec<&str> = page.events.iter().map(LogEvent::kind).collect();
    assert_eq!(
        kinds,
        ["message", "updated", "deleted", "message", "updated"]
    );
}

async fn one_append_commits_its_entries_in_order_with_an_outcome_each<S: Store>(s: S) {
    let first = send(&s, "g", "alice", "c1").await;
    let entries = vec![
        message("bob", "b1"),
        // Refused: consumes no seq and does not stop the others.
        AppendEntry::Delete {
            target: message_id(&first),
            actor: user("bob"),
            rule: ModifyRule::AuthorOnly,
        },
        // A duplicate of an earlier command's message.
        message("alice", "c1"),
        message("bob", "b2"),
        // A duplicate of an entry of this same command.
        message("bob", "b1"),
        // An edit of a message of this same command.
        AppendEntry::Update {
            target: MessageId::minted(head(&s, "g").await.0, Seq(2)),
            actor: user("bob"),
            rule: ModifyRule::AuthorOnly,
            body: Body::text("b1 edited"),
        },
    ];
    let outcomes = append(&s, "g", entries).await;
    assert_eq!(appended_seq(&outcomes[0]), 2);
    assert_eq!(outcomes[1], AppendOutcome::Refused(Refusal::Forbidden));
    assert!(matches!(
        &outcomes[2],
        AppendOutcome::Duplicate(Existing::Message(a)) if a.seq == Seq(1)
    ));
    assert_eq!(appended_seq(&outcomes[3]), 3);
    assert!(matches!(
        &outcomes[4],
        AppendOutcome::Duplicate(Existing::Message(a)) if a.seq == Seq(2)
    ));
    assert_eq!(appended_seq(&outcomes[5]), 4);
    assert_eq!(head(&s, "g").await.1, Seq(4));
    let page = read(&s, "g", ReadFrom::After(Seq(0)), 10).await;
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq().0).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

async fn reads_are_bounded<S: Store>(s: S) {
    for i in 0..8 {
        send(&s, "g", "u", &format!("c{i}")).await;
    }
    let seqs = |p: &Page| p.events.iter().map(|e| e.seq().0).collect::<Vec<_>>();
    let p = read(&s, "g", ReadFrom::After(Seq(0)), 2).await;
    assert_eq!(
        (seqs(&p), p.more, p.oldest_retained, p.head),
        (vec![1, 2], true, Seq(1), Seq(8))
    );
    let p = read(&s, "g", ReadFrom::After(Seq(6)), 10).await;
    assert_eq!((seqs(&p), p.more), (vec![7, 8], false));
    let p = read(&s, "g", ReadFrom::After(Seq(8)), 10).await;
    assert_eq!((seqs(&p), p.more), (vec![], false));
    let p = read(&s, "g", ReadFrom::After(Seq(99)), 10).await;
    assert_eq!((seqs(&p), p.more), (vec![], false));
    let p = read(&s, "g", ReadFrom::Latest, 3).await;
    assert_eq!((seqs(&p), p.more), (vec![6, 7, 8], false));
    let p = read(&s, "g", ReadFrom::Latest, 0).await;
    assert!(p.events.is_empty());
    let p = read(&s, "g", ReadFrom::After(Seq(0)), u64::MAX).await;
    assert_eq!(seqs(&p), (1..=8).collect::<Vec<_>>());
    // An empty log.
    let p = read(&s, "empty", ReadFrom::After(Seq(0)), 10).await;
    assert_eq!((p.head, p.oldest_retained, p.more), (Seq(0), Seq(1), false));
}

async fn a_read_is_cut_to_the_store_limit<S: Store>(s: S) {
    for i in 0..1_005 {
        send(&s, "big", "u", &format!("c{i}")).await;
    }
    let p = read(&s, "big", ReadFrom::After(Seq(0)), 5_000).await;
    assert_eq!((p.events.len(), p.more), (1_000, true));
    let p = read(&s, "big", ReadFrom::Latest, 5_000).await;
    assert_eq!(p.events.first().map(|e| e.seq().0), Some(6));
}

async fn a_read_is_cut_to_its_byte_budget<S: Store>(s: S) {
    // Ten events of 1 KiB bodies (as a hostile client would store them to
    // make replies heavy): a budget of 3.5 events' weight gives 3.
    let heavy = |i: usize| AppendEntry::Message {
        author: user("u"),
        client_msg_id: ClientMsgId::new(format!("h{i}"))
            .unwrap_or_else(|e| panic!("test client message id: {e}")),
        body: Body::from_json(&format!("[{}0]", "0,".repeat(511)))
            .unwrap_or_else(|e| panic!("test body: {e}")),
        ts: 7,
    };
    append(&s, "heavy", (0..10).map(heavy).collect()).await;
    let all = read(&s, "heavy", ReadFrom::After(Seq(0)), 100).await;
    let one = all.events.first().map_or(0, LogEvent::wire_len);
    assert!(one > 1_024, "an event weighs its body: {one} bytes");
    let budget = one * 7 / 2;
    let seqs = |p: &Page| p.events.iter().map(|e| e.seq().0).collect::<Vec<_>>();
    let p = read_bytes(&s, "heavy", ReadFrom::After(Seq(0)), 100, budget).await;
    assert_eq!((seqs(&p), p.more), (vec![1, 2, 3], true));
    let weight: usize = p.events.iter().map(LogEvent::wire_len).sum();
    assert!(
        weight <= budget,
        "{weight} bytes within a budget of {budget}"
    );
    let p = read_bytes(&s, "heavy", ReadFrom::After(Seq(8)), 100, budget).await;
    assert_eq!((seqs(&p), p.more), (vec![9, 10], false));
    // The newest that fit, oldest first.
    let p = read_bytes(&s, "heavy", ReadFrom::Latest, 100, budget).await;
    assert_eq!((seqs(&p), p.more), (vec![8, 9, 10], false));
    // A budget below one event still makes progress: one event a page.
    let p = read_bytes(&s, "heavy", ReadFrom::After(Seq(4)), 100, 1).await;
    assert_eq!((seqs(&p), p.more), (vec![5], true));
    let p = read_bytes(&s, "heavy", ReadFrom::Latest, 100, 1).await;
    assert_eq!(seqs(&p), vec![10]);
}

async fn receipts_are_monotonic_and_bounded_by_head<S: Store>(s: S) {
    send(&s, "g", "u", "1").await;
    send(&s, "g", "u", "2").await;
    let rc = |up_to| {
        run(
            &s,
            StoreCommand::SetReceipt {
                channel: ch("g"),
                user: user("bob"),
                up_to: Seq(up_to),
            },
        )
    };
    assert_eq!(
        rc(3).await,
        StoreReply::Refused(Refusal::BeyondHead { head: Seq(2) })
    );
    let receipt = |up_to, advanced| StoreReply::Receipt {
        up_to: Seq(up_to),
        advanced,
    };
    assert_eq!(rc(2).await, receipt(2, true));
    assert_eq!(rc(1).await, receipt(2, false));
    assert_eq!(rc(2).await, receipt(2, false));
}

async fn a_never_written_channel_reads_as_empty_and_keeps_its_epoch<S: Store>(s: S) {
    let (epoch, h) = head(&s, "fresh").await;
    assert_eq!(h, Seq(0));
    for from in [
        ReadFrom::After(Seq(0)),
        ReadFrom::After(Seq(5)),
        ReadFrom::Latest,
    ] {
        let p = read(&s, "fresh", from, 10).await;
        assert_eq!(
            (p.epoch, p.head, p.oldest_retained, p.more, p.events.len()),
            (epoch, Seq(0), Seq(1), false, 0),
            "an empty page from {from:?}"
        );
    }
    let rc = |up_to| StoreCommand::SetReceipt {
        channel: ch("fresh"),
        user: user("bob"),
        up_to: Seq(up_to),
    };
    assert_eq!(
        run(&s, rc(1)).await,
        StoreReply::Refused(Refusal::BeyondHead { head: Seq(0) })
    );
    assert_eq!(
        run(&s, rc(0)).await,
        StoreReply::Receipt {
            up_to: Seq(0),
            advanced: false
        }
    );
    // An append of which nothing commits leaves the channel unwritten.
    let unknown = MessageId::new("nope").unwrap_or_else(|e| panic!("test message id: {e}"));
    let refused = append(
        &s,
        "fresh",
        vec![AppendEntry::Delete {
            target: unknown,
            actor: user("u"),
            rule: ModifyRule::Anyone,
        }],
    )
    .await;
    assert_eq!(refused, vec![AppendOutcome::Refused(Refusal::NotFound)]);
    assert_eq!(head(&s, "fresh").await, (epoch, Seq(0)), "reads kept it");
    // The first message keeps the epoch every read reported.
    let first = send(&s, "fresh", "u", "1").await;
    assert_eq!(appended_seq(&first), 1);
    assert_eq!(head(&s, "fresh").await, (epoch, Seq(1)));
    let p = read(&s, "fresh", ReadFrom::After(Seq(0)), 10).await;
    assert_eq!((p.epoch, p.events.len()), (epoch, 1));
}

async fn edits_and_deletes_leave_tombstones<S: Store>(s: S) {
    let body = |text: &str| Some(Body::text(text));
    let edit = |target: &MessageId, text: &str| AppendEntry::Update {
        target: target.clone(),
        actor: user("alice"),
        rule: ModifyRule::AuthorOnly,
        body: Body::text(text),
    };
    let kept = send(&s, "g", "alice", "kept").await; // 1
    let edited = message_id(&send(&s, "g", "alice", "edited").await); // 2
    let deleted = message_id(&send(&s, "g", "alice", "deleted").await); // 3
    // The append outcomes (what is broadcast) carry their bodies.
    for (text, seq) in [("edit 1", 4), ("edit 2", 5)] {
        let outcome = append(&s, "g", vec![edit(&edited, text)]).await.remove(0);
        assert_eq!(appended_seq(&outcome), seq);
        assert_eq!(appended(&outcome).body(), body(text).as_ref(), "broadcast");
    }
    // An edit, then the deletion, in one command.
    let outcomes = append(
        &s,
        "g",
        vec![
            edit(&deleted, "edit 3"),
            AppendEntry::Delete {
                target: deleted.clone(),
                actor: user("alice"),
                rule: ModifyRule::AuthorOnly,
            },
        ],
    )
    .await;
    assert_eq!(appended(&outcomes[0]).body(), body("edit 3").as_ref());
    assert_eq!(appended_seq(&outcomes[1]), 7);
    // A replay keeps only the latest body of each live message.
    let page = read(&s, "g", ReadFrom::After(Seq(0)), 10).await;
    let shape: Vec<(u64, &str, Option<&Body>)> = page
        .events
        .iter()
        .map(|e| (e.seq().0, e.kind(), e.body()))
        .collect();
    assert_eq!(
        shape,
        [
            (1, "message", body("kept").as_ref()),
            (2, "message", None),
            (3, "message", None),
            (4, "updated", None),
            (5, "updated", body("edit 2").as_ref()),
            (6, "updated", None),
            (7, "deleted", None),
        ]
    );
    // A tombstone keeps everything but the body.
    let LogEvent::Message(tomb) = &page.events[2] else {
        panic!("not a message: {:?}", page.events[2])
    };
    assert_eq!(
        (
            tomb.seq,
            &tomb.message_id,
            tomb.author_id.as_str(),
            tomb.client_msg_id.as_str(),
            tomb.ts
        ),
        (Seq(3), &deleted, "alice", "deleted", 7)
    );
    assert_eq!(page.events[0], *appended(&kept), "an untouched message");
    // Latest-first reads show the same, and dedupe still knows the deleted
    // message.
    let latest = read(&s, "g", ReadFrom::Latest, 3).await;
    assert_eq!(latest.events, page.events[4..]);
    let retry = send(&s, "g", "alice", "deleted").await;
    assert!(
        matches!(&retry, AppendOutcome::Duplicate(Existing::Message(a)) if a.seq == Seq(3) && a.message_id == deleted),
        "{retry:?}"
    );
}

async fn retention_drops_the_oldest_and_says_so<S: Store>(s: S, retain: u64) {
    let first = message_id(&send(&s, "g", "u", "c0").await);
    let total = retain + 5;
    for i in 1..total {
        send(&s, "g", "u", &format!("c{i}")).await;
    }
    let seqs = |p: &Page| p.events.iter().map(|e| e.seq().0).collect::<Vec<_>>();
    let p = read(&s, "g", ReadFrom::After(Seq(0)), 1_000).await;
    let oldest = p.oldest_retained.0;
    assert!(
        oldest > 1 && oldest <= total - retain + 1,
        "keeping {retain} of {total} events, the oldest retained is {oldest}"
    );
    assert_eq!(p.head, Seq(total));
    assert_eq!(
        (seqs(&p), p.more),
        ((oldest..=total).collect::<Vec<_>>(), false),
        "what is kept is contiguous up to the head, and a read from a dropped position starts there"
    );
    let p = read(&s, "g", ReadFrom::After(Seq(oldest - 1)), 2).await;
    assert_eq!(
        (seqs(&p), p.more),
        (vec![oldest, oldest + 1], oldest + 1 < total)
    );
    let p = read(&s, "g", ReadFrom::Latest, 1_000).await;
    assert_eq!(
        (p.oldest_retained.0, seqs(&p).first().copied()),
        (oldest, Some(oldest))
    );
    // Dedupe, edits and deletes remember what was dropped.
    assert!(
        matches!(send(&s, "g", "u", "c0").await, AppendOutcome::Duplicate(Existing::Message(a)) if a.seq == Seq(1)),
        "a retry of a dropped message is still a duplicate"
    );
    let deleted = modify(&s, &first, "u", true, ModifyRule::AuthorOnly).await;
    assert_eq!(appended_seq(&deleted), total + 1);
    let p = read(&s, "g", ReadFrom::After(Seq(0)), 1_000).await;
    assert_eq!(p.events.last().map(LogEvent::kind), Some("deleted"));
    assert!(
        p.oldest_retained.0 >= oldest,
        "retention moves forward only"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::SharedMemStore;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        check_store(SharedMemStore::default).await;
    }

    #[tokio::test]
    async fn the_memory_store_keeps_the_retention_rules() {
        for retain in [2, 7, 100] {
            check_retention(
                || {
                    SharedMemStore::new(lockstep_core::store::MemStore::new(
                        lockstep_core::store::MemStoreConfig {
                            retain,
                            ..lockstep_core::store::MemStoreConfig::default()
                        },
                    ))
                },
                retain as u64,
            )
            .await;
        }
    }

    /// A store that forgets dedupe keys: the kit must catch it.
    struct Forgetful(SharedMemStore);

    impl Store for Forgetful {
        async fn execute(
            &self,
            cmd: StoreCommand,
        ) -> Result<StoreReply, lockstep_core::store::StoreError> {
            let cmd = match cmd {
                StoreCommand::Append {
                    channel,
                    entries,
                    chain,
                } => StoreCommand::Append {
                    channel,
                    chain,
                    entries: entries
                        .into_iter()
                        .map(|e| match e {
                            AppendEntry::Message {
                                author, body, ts, ..
                            } => AppendEntry::Message {
                                author,
                                client_msg_id: forgotten_key(),
                                body,
                                ts,
                            },
                            other => other,
                        })
                        .collect(),
                },
                other => other,
            };
            self.0.execute(cmd).await
        }
    }

    /// A key never seen before, in place of the client's.
    fn forgotten_key() -> ClientMsgId {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        ClientMsgId::new(format!("forgotten-{n}")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A store that takes a command's place when its future is first
    /// polled, not when `execute` is called: the kit must catch it.
    struct Lazy(SharedMemStore);

    impl Store for Lazy {
        async fn execute(
            &self,
            cmd: StoreCommand,
        ) -> Result<StoreReply, lockstep_core::store::StoreError> {
            self.0.lock().execute(cmd)
        }
    }

    #[tokio::test]
    async fn a_store_ordered_by_first_poll_is_caught_by_name() {
        let caught = AssertUnwindSafe(check_store(|| Lazy(SharedMemStore::default())))
            .catch_unwind()
            .await;
        let Err(payload) = caught else {
            panic!("a store ordered by first poll passed the contract")
        };
        let text = panic_text(payload.as_ref());
        assert!(
            text.starts_with("store contract broken: pipelined_appends_are_ordered_by_call:"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_store_that_forgets_dedupe_keys_is_caught_by_name() {
        let caught = AssertUnwindSafe(check_store(|| Forgetful(SharedMemStore::default())))
            .catch_unwind()
            .await;
        let Err(payload) = caught else {
            panic!("a store without dedupe passed the contract")
        };
        let text = panic_text(payload.as_ref());
        assert!(
            text.starts_with(
                "store contract broken: dedupe_returns_the_original_and_consumes_no_seq:"
            ),
            "{text}"
        );
    }
}
