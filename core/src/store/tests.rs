//! MemStore against the store contract.

use super::*;
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::{Body, LogEvent};

fn ch(s: &str) -> ChannelId {
    ChannelId::new(s).unwrap()
}
fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}
fn message(author: &str, cmid: &str) -> AppendEntry {
    AppendEntry::Message {
        author: user(author),
        client_msg_id: ClientMsgId::new(cmid).unwrap(),
        body: Body::text(cmid),
        ts: 7,
    }
}
/// Appends `entries` as one command; the outcomes, one per entry.
fn append(store: &mut MemStore, c: &str, entries: Vec<AppendEntry>) -> Vec<AppendOutcome> {
    let n = entries.len();
    match store.execute(StoreCommand::Append {
        channel: ch(c),
        entries,
    }) {
        Ok(StoreReply::Appended(outcomes)) if outcomes.len() == n => outcomes,
        other => panic!("not {n} append outcomes: {other:?}"),
    }
}
fn append_one(store: &mut MemStore, c: &str, entry: AppendEntry) -> AppendOutcome {
    append(store, c, vec![entry]).remove(0)
}
fn send(store: &mut MemStore, c: &str, author: &str, cmid: &str) -> AppendOutcome {
    append_one(store, c, message(author, cmid))
}
fn appended_seq(r: &AppendOutcome) -> u64 {
    match r {
        AppendOutcome::Appended(e) => e.seq().0,
        other => panic!("not appended: {other:?}"),
    }
}
fn message_id(r: &AppendOutcome) -> MessageId {
    match r {
        AppendOutcome::Appended(e) => e.message_id().clone(),
        other => panic!("not appended: {other:?}"),
    }
}
fn read(store: &mut MemStore, c: &str, from: ReadFrom, limit: u64) -> Page {
    match store
        .execute(StoreCommand::Read {
            channel: ch(c),
            from,
            limit,
        })
        .unwrap()
    {
        StoreReply::Events(p) => p,
        other => panic!("not a page: {other:?}"),
    }
}
fn modify(store: &mut MemStore, target: &MessageId, actor: &str, delete: bool) -> AppendOutcome {
    let entry = if delete {
        AppendEntry::Delete {
            target: target.clone(),
            actor: user(actor),
            rule: ModifyRule::AuthorOnly,
        }
    } else {
        AppendEntry::Update {
            target: target.clone(),
            actor: user(actor),
            rule: ModifyRule::AuthorOnly,
            body: Body::text("edited"),
        }
    };
    append_one(store, "g", entry)
}

#[test]
fn seqs_are_contiguous_per_channel_and_epochs_fixed() {
    let mut s = MemStore::default();
    // A read before any write fixes the epoch.
    let head = s.execute(StoreCommand::Head { channel: ch("a") }).unwrap();
    assert_eq!(
        head,
        StoreReply::Head {
            epoch: Epoch(1),
            head: Seq(0)
        }
    );
    assert_eq!(appended_seq(&send(&mut s, "a", "u", "1")), 1);
    assert_eq!(appended_seq(&send(&mut s, "b", "u", "1")), 1);
    assert_eq!(appended_seq(&send(&mut s, "a", "u", "2")), 2);
    assert_eq!(s.head(&ch("a")), Some((Epoch(1), Seq(2))));
    assert_eq!(s.head(&ch("b")), Some((Epoch(2), Seq(1))));
}

#[test]
fn dedupe_returns_the_original_and_consumes_no_seq() {
    let mut s = MemStore::default();
    let first = send(&mut s, "g", "alice", "c1");
    let again = send(&mut s, "g", "alice", "c1");
    let AppendOutcome::Duplicate(Existing::Message(ack)) = again else {
        panic!("{again:?}")
    };
    assert_eq!(ack.seq, Seq(1));
    assert_eq!(ack.message_id, message_id(&first));
    // Same key from another user is a new message.
    assert_eq!(appended_seq(&send(&mut s, "g", "bob", "c1")), 2);
    assert_eq!(s.head(&ch("g")), Some((Epoch(1), Seq(2))));
}

#[test]
fn dedupe_memory_is_bounded() {
    let mut s = MemStore::new(MemStoreConfig {
        retain: 10,
        remember: 3,
        ..MemStoreConfig::default()
    });
    for i in 0..5 {
        send(&mut s, "g", "u", &format!("c{i}"));
    }
    // c0 and c1 are forgotten: a retry becomes a new message.
    assert_eq!(appended_seq(&send(&mut s, "g", "u", "c0")), 6);
    assert!(matches!(
        send(&mut s, "g", "u", "c4"),
        AppendOutcome::Duplicate(_)
    ));
}

#[test]
fn update_and_delete_rules() {
    let mut s = MemStore::default();
    let id = message_id(&send(&mut s, "g", "alice", "c1"));
    let unknown = MessageId::new("nope").unwrap();
    assert_eq!(
        modify(&mut s, &unknown, "alice", false),
        AppendOutcome::Refused(Refusal::NotFound)
    );
    assert_eq!(
        modify(&mut s, &unknown, "alice", true),
        AppendOutcome::Refused(Refusal::NotFound)
    );
    assert_eq!(
        modify(&mut s, &id, "bob", false),
        AppendOutcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(
        modify(&mut s, &id, "bob", true),
        AppendOutcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(appended_seq(&modify(&mut s, &id, "alice", false)), 2);
    assert_eq!(appended_seq(&modify(&mut s, &id, "alice", true)), 3);
    assert_eq!(
        modify(&mut s, &id, "alice", true),
        AppendOutcome::Duplicate(Existing::Deletion { seq: Seq(3) })
    );
    // An update of a deleted message is not_found, checked before authorship.
    assert_eq!(
        modify(&mut s, &id, "bob", false),
        AppendOutcome::Refused(Refusal::NotFound)
    );
    assert_eq!(s.head(&ch("g")), Some((Epoch(1), Seq(3))));
    let target = message_id(&send(&mut s, "g", "alice", "c2"));
    let anyone = append_one(
        &mut s,
        "g",
        AppendEntry::Update {
            target,
            actor: user("mod"),
            rule: ModifyRule::Anyone,
            body: Body::text("moderated"),
        },
    );
    assert_eq!(appended_seq(&anyone), 5);
}

#[test]
fn reads_are_bounded_and_report_retention() {
    let mut s = MemStore::new(MemStoreConfig {
        retain: 5,
        ..MemStoreConfig::default()
    });
    for i in 0..8 {
        send(&mut s, "g", "u", &format!("c{i}"));
    }
    let seqs = |p: &Page| p.events.iter().map(|e| e.seq().0).collect::<Vec<_>>();
    let p = read(&mut s, "g", ReadFrom::After(Seq(0)), 2);
    assert_eq!(
        (seqs(&p), p.more, p.oldest_retained, p.head),
        (vec![4, 5], true, Seq(4), Seq(8))
    );
    let p = read(&mut s, "g", ReadFrom::After(Seq(6)), 10);
    assert_eq!((seqs(&p), p.more), (vec![7, 8], false));
    let p = read(&mut s, "g", ReadFrom::After(Seq(8)), 10);
    assert_eq!((seqs(&p), p.more), (vec![], false));
    let p = read(&mut s, "g", ReadFrom::After(Seq(99)), 10);
    assert_eq!((seqs(&p), p.more), (vec![], false));
    let p = read(&mut s, "g", ReadFrom::Latest, 3);
    assert_eq!((seqs(&p), p.more), (vec![6, 7, 8], false));
    let p = read(&mut s, "g", ReadFrom::Latest, 0);
    assert!(p.events.is_empty());
    let p = read(&mut s, "g", ReadFrom::After(Seq(0)), u64::MAX);
    assert_eq!(p.events.len(), 5);
    // An empty log.
    let p = read(&mut s, "empty", ReadFrom::After(Seq(0)), 10);
    assert_eq!((p.head, p.oldest_retained, p.more), (Seq(0), Seq(1), false));
}

#[test]
fn receipts_are_monotonic_and_bounded_by_head() {
    let mut s = MemStore::default();
    send(&mut s, "g", "u", "1");
    send(&mut s, "g", "u", "2");
    let mut rc = |up_to| {
        s.execute(StoreCommand::SetReceipt {
            channel: ch("g"),
            user: user("bob"),
            up_to: Seq(up_to),
        })
        .unwrap()
    };
    assert_eq!(
        rc(3),
        StoreReply::Refused(Refusal::BeyondHead { head: Seq(2) })
    );
    assert_eq!(
        rc(2),
        StoreReply::Receipt {
            up_to: Seq(2),
            advanced: true
        }
    );
    assert_eq!(
        rc(1),
        StoreReply::Receipt {
            up_to: Seq(2),
            advanced: false
        }
    );
    assert_eq!(
        rc(2),
        StoreReply::Receipt {
            up_to: Seq(2),
            advanced: false
        }
    );
}

#[test]
fn injected_failures_change_nothing() {
    let mut s = MemStore::default();
    s.set_fail_mode(FailMode::Next(2));
    let cmd = StoreCommand::Head { channel: ch("g") };
    assert!(s.execute(cmd.clone()).is_err());
    assert_eq!(s.fail_mode(), FailMode::Next(1));
    assert!(s.execute(cmd.clone()).is_err());
    assert!(s.execute(cmd.clone()).is_ok());
    s.set_fail_mode(FailMode::Always);
    assert!(s.execute(cmd.clone()).is_err());
    assert!(s.channels().count() == 1);
    s.set_fail_mode(FailMode::Never);
    assert_eq!(appended_seq(&send(&mut s, "g", "u", "1")), 1);
}

#[test]
fn a_failed_append_commits_none_of_its_entries() {
    let mut s = MemStore::default();
    s.set_fail_mode(FailMode::Next(1));
    let failed = s.execute(StoreCommand::Append {
        channel: ch("g"),
        entries: vec![message("u", "1"), message("u", "2")],
    });
    assert!(failed.is_err());
    assert_eq!(s.events(&ch("g")).count(), 0);
    let outcomes = append(&mut s, "g", vec![message("u", "1"), message("u", "2")]);
    assert_eq!(
        outcomes.iter().map(appended_seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn reset_gives_a_new_epoch_and_fresh_ids() {
    let mut s = MemStore::default();
    let before = message_id(&send(&mut s, "g", "u", "1"));
    s.reset_channel(&ch("g"));
    assert_eq!(s.head(&ch("g")), Some((Epoch(2), Seq(0))));
    let after = send(&mut s, "g", "u", "1");
    assert_eq!(appended_seq(&after), 1);
    assert_ne!(message_id(&after), before);
    assert!(matches!(
        s.events(&ch("g")).next(),
        Some(LogEvent::Message(_))
    ));
}
