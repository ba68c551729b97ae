//! A sender's message order as a closed send-order gate sees it.
//!
//! Clients resend a channel's waiting messages oldest first, in rounds. The
//! gate refuses them all until the failed send comes back; if it never
//! does (the client gave it up), the gate must pass to the sender's oldest
//! message still waiting, not to whichever send happens to arrive when it
//! expires. The first-refusal order of the ids is the client's order, and a
//! send earlier in that order than the one before it starts a new round, as
//! does the same send twice in a row (a round of one: a send window of 1,
//! or one message left).
//! Found by the lab (seed 10125, streams): a gate that expired in the middle
//! of a round was handed to a send refused in an older, overlapping round,
//! and the round's first message, resent next, was overtaken; and (seed
//! 10367, mixed) a sender with a window of 1 never went back in the order,
//! so its gate kept passing to a message it had given up.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::ids::ClientMsgId;

/// Ids remembered per gate: a full send window many times over; ids
/// refused after this many count as the newest (clients send new messages
/// last). Round starts are a sender's oldest messages, refused first, so
/// they are always among the remembered.
const REMEMBERED_MAX: usize = 256;

/// What a gate learned of its sender's order from the sends it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResendRounds {
    /// Each id's place in the sender's order (first refusal order), by a
    /// fixed-key hash of the id: 12 bytes an entry whatever the id's length,
    /// so a connection that closes gates on every channel holds little.
    places: BTreeMap<u64, usize>,
    /// The place of the last refused send.
    last: usize,
    /// The first send of the latest round: the sender's oldest message
    /// still waiting. `None` until the gate refused something.
    round_start: Option<ClientMsgId>,
}

impl ResendRounds {
    /// A gate closed by the failure of `failed`, the oldest message.
    pub(crate) fn new(failed: &ClientMsgId) -> Self {
        ResendRounds {
            places: BTreeMap::from([(key(failed), 0)]),
            last: 0,
            round_start: None,
        }
    }

    /// Whether `id`, arriving now, begins a new round: it is known and
    /// not later in the order than the last refused send.
    fn begins_round(&self, id: &ClientMsgId) -> bool {
        self.places
            .get(&key(id))
            .is_some_and(|place| *place <= self.last)
    }

    /// Records a refused send.
    pub(crate) fn note(&mut self, id: &ClientMsgId) {
        if self.round_start.is_none() || self.begins_round(id) {
            self.round_start = Some(id.clone());
        }
        let next = self.places.len();
        let place = match self.places.get(&key(id)) {
            Some(place) => *place,
            None if next < REMEMBERED_MAX => {
                self.places.insert(key(id), next);
                next
            }
            None => next,
        };
        self.last = place;
    }

    /// Whom an expired gate passes to, as the send `arriving` finds it:
    /// `arriving` itself when it begins a new round, else the first send of
    /// the latest round. `None` when nothing was refused (the gate opens).
    pub(crate) fn successor(&self, arriving: &ClientMsgId) -> Option<ClientMsgId> {
        let start = self.round_start.as_ref()?;
        if self.begins_round(arriving) {
            return Some(arriving.clone());
        }
        Some(start.clone())
    }
}

/// A deterministic hash of an id (SipHash with fixed keys: the same on
/// every run and machine).
fn key(id: &ClientMsgId) -> u64 {
    let mut h = DefaultHasher::new();
    id.as_str().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientMsgId {
        ClientMsgId::new(s).unwrap()
    }

    fn rounds(failed: &str, refused: &[&str]) -> ResendRounds {
        let mut r = ResendRounds::new(&id(failed));
        for s in refused {
            r.note(&id(s));
        }
        r
    }

    #[test]
    fn nothing_refused_opens_the_gate() {
        assert_eq!(rounds("x", &[]).successor(&id("a")), None);
    }

    #[test]
    fn the_first_round_starts_with_the_first_refused_send() {
        let r = rounds("x", &["a", "b", "c"]);
        assert_eq!(r.successor(&id("d")), Some(id("a")));
        assert_eq!(
            r.successor(&id("b")),
            Some(id("b")),
            "back to b: a new round"
        );
    }

    #[test]
    fn a_send_earlier_than_the_last_starts_a_new_round() {
        // The client gave up `a`: its next round starts with `b`.
        let r = rounds("x", &["a", "b", "c", "d", "b", "c"]);
        assert_eq!(r.successor(&id("d")), Some(id("b")));
        // An arriving send that goes back in the order begins a round itself.
        assert_eq!(r.successor(&id("b")), Some(id("b")));
    }

    #[test]
    fn the_same_send_twice_is_a_round_of_one() {
        // Seed 10367: a window of 1; `a` was given up, then `b` alone.
        let r = rounds("x", &["a", "a", "b"]);
        assert_eq!(r.successor(&id("c")), Some(id("a")), "not known yet");
        let r = rounds("x", &["a", "a", "b", "b"]);
        assert_eq!(r.successor(&id("c")), Some(id("b")));
        assert_eq!(r.successor(&id("b")), Some(id("b")));
    }

    #[test]
    fn overlapping_rounds_hand_over_to_the_latest_round_s_start() {
        // Seed 10125: round one `a b c d e`, round two (after `a` was given
        // up) `b c …` overlaps it; the gate expires as `d` arrives.
        let r = rounds("x", &["a", "b", "c", "d", "e", "b", "c"]);
        assert_eq!(r.successor(&id("d")), Some(id("b")));
    }

    #[test]
    fn memory_is_bounded_and_later_ids_count_as_newest() {
        let names: Vec<String> = (0..REMEMBERED_MAX + 10).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let r = rounds("x", &refs);
        assert_eq!(r.places.len(), REMEMBERED_MAX);
        assert_eq!(r.successor(&id("new")), Some(id("m0")));
    }
}
