//! The decisions every store makes the same way, whatever keeps its data:
//! whether an edit or a deletion may proceed, what a receipt answers, and
//! how a page says that more follows. Engines look the facts up their own
//! way (a map, SQL) and ask these functions, so the rules exist once.

use crate::ids::{Epoch, Seq, UserId};
use crate::store::{AppendOutcome, Existing, ModifyRule, Page, Refusal, StoreReply};
use crate::wire::LogEvent;

/// Most old rows one retention step deletes from one channel: a durable
/// engine applies retention in bounded steps, so lowering it on a large
/// database never stalls a commit; appends (and sweeps) catch up a step at
/// a time.
pub const PRUNE_STEP: u64 = 1_000;

/// What a store remembers of a message's state, for edits and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Not deleted; `body` is the entry holding its latest body (the
    /// message itself, or its latest edit).
    Live {
        /// The entry that holds the latest body.
        body: Seq,
    },
    /// Deleted by the entry at `seq`.
    Deleted {
        /// The deletion's own seq.
        seq: Seq,
    },
}

/// Which change an entry asks of an existing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modify {
    /// [`AppendEntry::Update`](crate::store::AppendEntry::Update).
    Update,
    /// [`AppendEntry::Delete`](crate::store::AppendEntry::Delete).
    Delete,
}

impl Modify {
    /// The state a change appended at `seq` leaves its target in.
    #[must_use]
    pub fn leaves(self, seq: Seq) -> MessageState {
        match self {
            Modify::Update => MessageState::Live { body: seq },
            Modify::Delete => MessageState::Deleted { seq },
        }
    }
}

/// Decides an edit or a deletion of a message the store remembers as
/// `target` (its author and state; `None` when unknown or forgotten).
///
/// `Ok(superseded)`: the change is appended at the next seq, and the entry
/// at `superseded` (which held the latest body) becomes a tombstone.
/// `Err(outcome)`: answered without appending. An update checks existence
/// (and not deleted) before authorship; a delete checks authorship before
/// answering a repeated deletion with the original.
///
/// # Errors
///
/// The outcome to answer when the change is not appended.
pub fn decide_modify(
    target: Option<(&str, MessageState)>,
    actor: &UserId,
    rule: ModifyRule,
    change: Modify,
) -> Result<Seq, AppendOutcome> {
    let Some((author, state)) = target else {
        return Err(AppendOutcome::Refused(Refusal::NotFound));
    };
    let allowed = match rule {
        ModifyRule::AuthorOnly => author == actor.as_str(),
        ModifyRule::Anyone => true,
    };
    match (change, state) {
        (Modify::Update, MessageState::Deleted { .. }) => {
            Err(AppendOutcome::Refused(Refusal::NotFound))
        }
        _ if !allowed => Err(AppendOutcome::Refused(Refusal::Forbidden)),
        (Modify::Delete, MessageState::Deleted { seq }) => {
            Err(AppendOutcome::Duplicate(Existing::Deletion { seq }))
        }
        (_, MessageState::Live { body }) => Ok(body),
    }
}

/// What a receipt raising a watermark to `up_to` answers, given the head
/// and the watermark in force (0 when none): refused beyond the head, held
/// when not above the current one, else advanced (the caller stores
/// `up_to`).
#[must_use]
pub fn decide_receipt(head: Seq, current: Seq, up_to: Seq) -> StoreReply {
    if up_to > head {
        StoreReply::Refused(Refusal::BeyondHead { head })
    } else if up_to <= current {
        StoreReply::Receipt {
            up_to: current,
            advanced: false,
        }
    } else {
        StoreReply::Receipt {
            up_to,
            advanced: true,
        }
    }
}

impl Page {
    /// A page of `events` (ascending, contiguous) of a log at `head`:
    /// `more` is set when events after the page's last one exist.
    #[must_use]
    pub fn new(epoch: Epoch, events: Vec<LogEvent>, head: Seq, oldest_retained: Seq) -> Page {
        let last = events.last().map_or(Seq::ZERO, LogEvent::seq);
        Page {
            epoch,
            more: !events.is_empty() && last < head,
            events,
            head,
            oldest_retained,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_update_of_a_deleted_message_is_not_found_before_authorship() {
        let deleted = MessageState::Deleted { seq: Seq(3) };
        let bob = user("bob");
        let not_found = Err(AppendOutcome::Refused(Refusal::NotFound));
        let rule = ModifyRule::AuthorOnly;
        assert_eq!(
            decide_modify(Some(("alice", deleted)), &bob, rule, Modify::Update),
            not_found
        );
        assert_eq!(
            decide_modify(None, &bob, ModifyRule::Anyone, Modify::Delete),
            not_found
        );
        // A delete checks authorship first, then answers the original.
        assert_eq!(
            decide_modify(Some(("alice", deleted)), &bob, rule, Modify::Delete),
            Err(AppendOutcome::Refused(Refusal::Forbidden))
        );
        assert_eq!(
            decide_modify(Some(("bob", deleted)), &bob, rule, Modify::Delete),
            Err(AppendOutcome::Duplicate(Existing::Deletion { seq: Seq(3) }))
        );
        let live = MessageState::Live { body: Seq(5) };
        assert_eq!(
            decide_modify(
                Some(("alice", live)),
                &bob,
                ModifyRule::Anyone,
                Modify::Update
            ),
            Ok(Seq(5))
        );
    }

    #[test]
    fn a_receipt_moves_forward_only_and_not_beyond_the_head() {
        let receipt = |up_to, advanced| StoreReply::Receipt {
            up_to: Seq(up_to),
            advanced,
        };
        assert_eq!(
            decide_receipt(Seq(2), Seq(0), Seq(3)),
            StoreReply::Refused(Refusal::BeyondHead { head: Seq(2) })
        );
        assert_eq!(decide_receipt(Seq(2), Seq(1), Seq(2)), receipt(2, true));
        assert_eq!(decide_receipt(Seq(2), Seq(2), Seq(1)), receipt(2, false));
        assert_eq!(decide_receipt(Seq(0), Seq(0), Seq(0)), receipt(0, false));
    }
}
