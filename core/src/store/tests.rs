//! What is particular to `MemStore`: its retention and dedupe-memory
//! limits, failure injection and resets. The store contract every store
//! keeps is checked by the kit in `lockstep_tokio::server::contract`, run
//! against `MemStore` there and against SQLite in `lockstep-sqlite`.

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
        chain: AppendChain::Start,
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
fn read(store: &mut MemStore, c: &str, from: ReadFrom, limit: u64) -> Page {
    match store
        .execute(StoreCommand::Read {
            channel: ch(c),
            from,
            limit,
            max_bytes: usize::MAX,
        })
        .unwrap()
    {
        StoreReply::Events(p) => p,
        other => panic!("not a page: {other:?}"),
    }
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
    assert_eq!(s.channels().count(), 0, "a head query writes nothing");
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
        chain: AppendChain::Start,
    });
    assert!(failed.is_err());
    assert_eq!(s.events(&ch("g")).count(), 0);
    let outcomes = append(&mut s, "g", vec![message("u", "1"), message("u", "2")]);
    assert_eq!(
        outcomes.iter().map(appended_seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

/// The pipelining rule: an append issued behind a failed one of its channel
/// fails too, committing nothing, until an append starts a new chain; other
/// channels are not affected.
#[test]
fn an_append_behind_a_failed_one_fails_until_a_chain_starts() {
    let mut s = MemStore::default();
    let cmd = |c: &str, cmid: &str, chain| StoreCommand::Append {
        channel: ch(c),
        entries: vec![message("u", cmid)],
        chain,
    };
    assert!(s.execute(cmd("g", "1", AppendChain::Start)).is_ok());
    assert!(s.execute(cmd("g", "2", AppendChain::Behind)).is_ok());
    s.set_fail_mode(FailMode::Next(1));
    assert!(s.execute(cmd("g", "3", AppendChain::Behind)).is_err());
    assert!(s.execute(cmd("g", "4", AppendChain::Behind)).is_err());
    assert!(s.execute(cmd("g", "5", AppendChain::Behind)).is_err());
    assert!(s.execute(cmd("h", "1", AppendChain::Behind)).is_ok());
    assert_eq!(s.events(&ch("g")).count(), 2, "nothing behind the failure");
    assert!(s.execute(cmd("g", "3", AppendChain::Start)).is_ok());
    assert!(s.execute(cmd("g", "4", AppendChain::Behind)).is_ok());
    let cmids: Vec<String> = s
        .events(&ch("g"))
        .filter_map(|e| match e {
            LogEvent::Message(m) => Some(m.client_msg_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(cmids, ["1", "2", "3", "4"]);
    // A failure decided by the caller (the lab's failure windows) breaks
    // the chain the same way.
    let failing = cmd("g", "5", AppendChain::Behind);
    let _ = s.fail(&failing, "window");
    assert!(s.execute(cmd("g", "6", AppendChain::Behind)).is_err());
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

#[test]
fn reads_of_a_never_written_channel_create_no_log() {
    let mut s = MemStore::default();
    let reads = [
        StoreCommand::Head { channel: ch("x") },
        StoreCommand::Read {
            channel: ch("x"),
            from: ReadFrom::Latest,
            limit: 10,
            max_bytes: usize::MAX,
        },
        StoreCommand::SetReceipt {
            channel: ch("x"),
            user: user("u"),
            up_to: Seq(0),
        },
    ];
    for cmd in reads {
        s.execute(cmd).unwrap();
    }
    assert_eq!(s.channels().count(), 0);
    assert_eq!(s.head(&ch("x")), None);
    send(&mut s, "x", "u", "1");
    assert_eq!(s.head(&ch("x")), Some((Epoch(1), Seq(1))));
}

#[test]
fn a_reset_takes_an_epoch_no_log_of_the_store_had() {
    let mut s = MemStore::new(MemStoreConfig {
        first_epoch: Epoch(7),
        ..MemStoreConfig::default()
    });
    send(&mut s, "a", "u", "1");
    send(&mut s, "b", "u", "1");
    assert_eq!(s.head(&ch("a")), Some((Epoch(7), Seq(1))));
    s.reset_channel(&ch("a"));
    s.reset_channel(&ch("never-written"));
    s.reset_channel(&ch("a"));
    assert_eq!(s.head(&ch("a")), Some((Epoch(10), Seq(0))));
    assert_eq!(s.head(&ch("never-written")), Some((Epoch(9), Seq(0))));
    assert_eq!(s.head(&ch("b")), Some((Epoch(7), Seq(1))));
}

fn message_at(cmid: &str, ts: u64) -> AppendEntry {
    AppendEntry::Message {
        author: user("u"),
        client_msg_id: ClientMsgId::new(cmid).unwrap(),
        body: Body::text(cmid),
        ts,
    }
}

#[test]
fn age_retention_follows_the_append_clock() {
    let mut s = MemStore::new(MemStoreConfig {
        retain_age: Some(std::time::Duration::from_secs(1)),
        ..MemStoreConfig::default()
    });
    let first = message_id(&append_one(&mut s, "g", message_at("a", 10_000)));
    append_one(&mut s, "g", message_at("b", 10_500));
    // An edit is stamped with the clock of the latest append (10,500).
    append_one(
        &mut s,
        "g",
        AppendEntry::Update {
            target: first.clone(),
            actor: user("u"),
            rule: ModifyRule::AuthorOnly,
            body: Body::text("a2"),
        },
    );
    assert_eq!(s.oldest_retained(&ch("g")), Some(Seq(1)));
    // 11,200: the event of 10,000 is over a second old, those of 10,500
    // are not.
    append_one(&mut s, "g", message_at("c", 11_200));
    let p = read(&mut s, "g", ReadFrom::After(Seq(0)), 10);
    assert_eq!(
        (
            p.oldest_retained,
            p.events.iter().map(|e| e.seq().0).collect::<Vec<_>>()
        ),
        (Seq(2), vec![2, 3, 4])
    );
    // A message whose event is gone is still remembered: deleting it works.
    let deleted = append_one(
        &mut s,
        "g",
        AppendEntry::Delete {
            target: first,
            actor: user("u"),
            rule: ModifyRule::AuthorOnly,
        },
    );
    assert_eq!(appended_seq(&deleted), 5);
    // The edit's body went with the deletion.
    assert_eq!(s.event(&ch("g"), Seq(3)).and_then(LogEvent::body), None);
    // Without an age limit nothing goes by age.
    let mut keep = MemStore::new(MemStoreConfig {
        retain_age: None,
        ..MemStoreConfig::default()
    });
    append_one(&mut keep, "g", message_at("a", 0));
    append_one(&mut keep, "g", message_at("b", u64::MAX));
    assert_eq!(keep.oldest_retained(&ch("g")), Some(Seq(1)));
}

#[test]
fn a_tombstone_outside_retention_is_no_error() {
    let mut s = MemStore::new(MemStoreConfig {
        retain: 2,
        ..MemStoreConfig::default()
    });
    let first = message_id(&send(&mut s, "g", "u", "a"));
    send(&mut s, "g", "u", "b");
    send(&mut s, "g", "u", "c");
    // The message's own event was dropped; the edit still commits, and
    // carries the body until the next edit.
    let edit = |body: &str| AppendEntry::Update {
        target: first.clone(),
        actor: user("u"),
        rule: ModifyRule::AuthorOnly,
        body: Body::text(body),
    };
    assert_eq!(appended_seq(&append_one(&mut s, "g", edit("a2"))), 4);
    assert_eq!(appended_seq(&append_one(&mut s, "g", edit("a3"))), 5);
    let p = read(&mut s, "g", ReadFrom::After(Seq(0)), 10);
    let bodies: Vec<Option<&Body>> = p.events.iter().map(LogEvent::body).collect();
    assert_eq!(bodies, [None, Some(&Body::text("a3"))]);
}
