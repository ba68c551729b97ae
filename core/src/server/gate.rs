//! A connection's send-order gate for one channel: the sends it refused
//! that have not been admitted since, in the sender's order.
//!
//! A send's *place* is the number of its first arrival on the connection
//! (every send counts, whatever its channel). A client sends its messages
//! for the first time in its own order, so places are the sender's order.
//! The gate admits only the first waiting send (its *head*): a later
//! message, whether new or resent, is refused while an earlier one waits,
//! however the client times its resends. Found outside the lab (issue 12):
//! a gate that opened as soon as its blocking send was admitted let a plain
//! client's new sends overtake a refused one whose refusal was still on
//! the wire.
//!
//! The first waiting send counts as given up by its client when it is not
//! seen again within `order_gate_ttl` of its last refusal, or of when it
//! became the first (a send further back may wait longer: its client
//! resends it only after the ones before it): it then stops holding the
//! sends behind it. A client that still holds it resends it sooner than
//! that. Found by the lab (seed 792, streams, plain clients): a client that
//! resent in order held a message back behind earlier refused ones for
//! longer than the TTL, and a gate that expired every waiting send on its
//! own clock let a later message overtake it.
//!
//! The sends right behind a first send given up that were not seen since
//! its last refusal are given up with it: a client resending in order that
//! still held one would have sent it again after the first. Found by the
//! lab with three server processes (seed 1935, streams): after a failover a
//! client resent a burst of messages the join's history then showed it as
//! committed; the server had refused one of the burst (rate limit) and held
//! the rest behind it, the client resent none of them, and the gate let
//! them go one TTL after another, holding the client's new sends for
//! minutes.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crate::Instant;
use crate::ids::ClientMsgId;
use crate::wire::ErrorCode;

/// Sends one gate remembers: several send windows over. A send refused
/// while the gate is full is not remembered; it is refused all the same
/// and, when it comes again, counts as the sender's newest.
pub(crate) const WAITING_MAX: usize = 256;

/// One refused send, waiting to come again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    key: u64,
    /// The refusal's code, given to the sends it holds back.
    code: ErrorCode,
    /// Its last refusal.
    refused_at: Instant,
}

/// See the module docs. 40 bytes or so per waiting send, whatever the
/// length of its id (ids are kept as a fixed-key hash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderGate {
    /// Waiting sends by place.
    by_place: BTreeMap<u64, Waiting>,
    /// The place of each waiting send, by id key.
    places: BTreeMap<u64, u64>,
    /// When the first waiting send became the first.
    head_since: Instant,
}

/// What the gate says to a send that arrives while it holds sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It is the first waiting send, or nothing earlier waits any more:
    /// it may go, at this place.
    Pass { place: u64 },
    /// An earlier send waits: refused with that send's code.
    Hold { code: ErrorCode },
}

impl OrderGate {
    /// Whether nothing waits (the gate is open and can be dropped).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_place.is_empty()
    }

    /// How many sends wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_place.len()
    }

    /// Judges a send arriving `now` as the connection's `arrival`-th. A
    /// first waiting send given up (see the module docs, `ttl` being
    /// `order_gate_ttl`) is forgotten first; a send that is held back is
    /// recorded as waiting, at its own place if it waited before.
    pub(crate) fn judge(
        &mut self,
        id: &ClientMsgId,
        arrival: u64,
        now: Instant,
        ttl: Duration,
    ) -> Verdict {
        let key = key(id);
        let place = self.places.get(&key).copied().unwrap_or(arrival);
        while let Some((&first, head)) = self.by_place.first_key_value() {
            let since = head.refused_at.max(self.head_since);
            if head.key == key || since.saturating_add(ttl) > now {
                break;
            }
            let last_seen = head.refused_at;
            self.places.remove(&head.key);
            self.by_place.remove(&first);
            while let Some((&next, w)) = self.by_place.first_key_value() {
                if w.key == key || w.refused_at > last_seen {
                    break;
                }
                self.places.remove(&w.key);
                self.by_place.remove(&next);
            }
            self.head_since = now;
        }
        match self.by_place.first_key_value() {
            Some((_, head)) if head.key != key => {
                let code = head.code;
                self.refused(id, place, code, now);
                Verdict::Hold { code }
            }
            _ => Verdict::Pass { place },
        }
    }

    /// Records that `id`, at `place` in the sender's order, was refused
    /// `now` with the retryable `code`.
    pub(crate) fn refused(&mut self, id: &ClientMsgId, place: u64, code: ErrorCode, now: Instant) {
        let key = key(id);
        if let Some(old) = self.places.get(&key).copied() {
            if let Some(w) = self.by_place.get_mut(&old) {
                w.code = code;
                w.refused_at = w.refused_at.max(now);
            }
            return;
        }
        if self.by_place.len() >= WAITING_MAX {
            return;
        }
        if self
            .by_place
            .first_key_value()
            .is_none_or(|(first, _)| place < *first)
        {
            self.head_since = now;
        }
        self.places.insert(key, place);
        self.by_place.insert(
            place,
            Waiting {
                key,
                code,
                refused_at: now,
            },
        );
    }

    /// `id` was admitted (or was already stored or under way): it no longer
    /// waits.
    pub(crate) fn admitted(&mut self, id: &ClientMsgId, now: Instant) {
        if let Some(place) = self.places.remove(&key(id)) {
            let was_first = self
                .by_place
                .first_key_value()
                .is_some_and(|(p, _)| *p == place);
            self.by_place.remove(&place);
            if was_first {
                self.head_since = now;
            }
        }
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

    const RL: ErrorCode = ErrorCode::RateLimited;
    const TTL: Duration = Duration::from_secs(30);

    fn id(s: &str) -> ClientMsgId {
        ClientMsgId::new(s).unwrap()
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A gate whose sends `names` were refused at places 1, 2, … at `at`.
    fn gate(names: &[&str], at: Instant) -> OrderGate {
        let mut g = OrderGate::default();
        for (i, n) in names.iter().enumerate() {
            g.refused(&id(n), i as u64 + 1, RL, at);
        }
        g
    }

    #[test]
    fn only_the_first_waiting_send_passes() {
        let mut g = gate(&["a", "b"], t(0));
        assert_eq!(g.judge(&id("b"), 9, t(0), TTL), Verdict::Hold { code: RL });
        assert_eq!(
            g.judge(&id("new"), 10, t(0), TTL),
            Verdict::Hold { code: RL }
        );
        assert_eq!(g.len(), 3, "the new send waits too, at its arrival");
        assert_eq!(g.judge(&id("a"), 11, t(0), TTL), Verdict::Pass { place: 1 });
        g.admitted(&id("a"), t(0));
        assert_eq!(
            g.judge(&id("new"), 12, t(0), TTL),
            Verdict::Hold { code: RL }
        );
        assert_eq!(g.judge(&id("b"), 13, t(0), TTL), Verdict::Pass { place: 2 });
        g.admitted(&id("b"), t(0));
        assert_eq!(
            g.judge(&id("new"), 14, t(0), TTL),
            Verdict::Pass { place: 10 }
        );
        g.admitted(&id("new"), t(0));
        assert!(g.is_empty());
    }

    #[test]
    fn a_send_failed_again_keeps_its_place() {
        let mut g = gate(&["a", "b"], t(0));
        g.admitted(&id("a"), t(0));
        // `a` failed at the store after it was admitted: back at place 1.
        g.refused(&id("a"), 1, ErrorCode::Unavailable, t(0));
        assert_eq!(
            g.judge(&id("b"), 20, t(0), TTL),
            Verdict::Hold {
                code: ErrorCode::Unavailable
            }
        );
        assert_eq!(g.judge(&id("a"), 21, t(0), TTL), Verdict::Pass { place: 1 });
    }

    #[test]
    fn a_first_send_given_up_stops_holding_the_ones_behind_it() {
        let mut g = gate(&["a", "b", "c"], t(0));
        // Before its time is up, `a` holds `c` (and `c` is seen again).
        assert_eq!(
            g.judge(&id("c"), 9, t(29_000), TTL),
            Verdict::Hold { code: RL }
        );
        // `b` is seen again: it waits behind `a`, last seen after it.
        assert_eq!(
            g.judge(&id("b"), 10, t(29_500), TTL),
            Verdict::Hold { code: RL }
        );
        // At 30 s `a` was not seen for its whole time: given up. `b` is
        // the first now, for a whole TTL of its own: its client resends it
        // only after the ones before it.
        assert_eq!(
            g.judge(&id("c"), 11, t(30_000), TTL),
            Verdict::Hold { code: RL }
        );
        assert_eq!(g.len(), 2);
        assert_eq!(
            g.judge(&id("c"), 12, t(59_000), TTL),
            Verdict::Hold { code: RL }
        );
        assert_eq!(
            g.judge(&id("b"), 13, t(59_500), TTL),
            Verdict::Pass { place: 2 }
        );
        g.admitted(&id("b"), t(59_500));
        // `c`, last refused at 59 s, is the first from 59.5 s: it passes.
        assert_eq!(
            g.judge(&id("c"), 14, t(60_000), TTL),
            Verdict::Pass { place: 3 }
        );
    }

    #[test]
    fn the_sends_not_seen_since_a_given_up_one_go_with_it() {
        // Seed 1935 (three processes): `a` and the burst behind it were
        // committed after all; the client resends none of them, only `d`.
        let mut g = gate(&["a", "b", "c"], t(0));
        assert_eq!(
            g.judge(&id("d"), 9, t(1_000), TTL),
            Verdict::Hold { code: RL }
        );
        // When `a` is given up, so are `b` and `c`, not seen since; `d`,
        // seen after `a`'s last refusal, is the first now, and passes.
        assert_eq!(
            g.judge(&id("d"), 10, t(30_000), TTL),
            Verdict::Pass { place: 9 }
        );
        g.admitted(&id("d"), t(30_000));
        assert!(g.is_empty());
    }

    #[test]
    fn a_send_waiting_behind_others_does_not_expire_on_its_own() {
        // Seed 792: `c` waits behind `a` far longer than the TTL; when `a`
        // passes, `c` is still held for, and `d` may not overtake it.
        let mut g = gate(&["a", "b", "c"], t(0));
        g.refused(&id("a"), 1, RL, t(40_000));
        assert_eq!(
            g.judge(&id("a"), 20, t(45_000), TTL),
            Verdict::Pass { place: 1 }
        );
        g.admitted(&id("a"), t(45_000));
        assert_eq!(
            g.judge(&id("d"), 21, t(46_000), TTL),
            Verdict::Hold { code: RL }
        );
        assert_eq!(
            g.judge(&id("b"), 22, t(47_000), TTL),
            Verdict::Pass { place: 2 }
        );
        g.admitted(&id("b"), t(47_000));
        assert_eq!(
            g.judge(&id("d"), 23, t(48_000), TTL),
            Verdict::Hold { code: RL }
        );
        assert_eq!(
            g.judge(&id("c"), 24, t(49_000), TTL),
            Verdict::Pass { place: 3 }
        );
    }

    #[test]
    fn memory_is_bounded_and_a_forgotten_send_counts_as_newest() {
        let names: Vec<String> = (0..WAITING_MAX + 10).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut g = gate(&refs, t(0));
        assert_eq!(g.by_place.len(), WAITING_MAX);
        let late = id(&names[WAITING_MAX + 5]);
        assert_eq!(g.judge(&late, 1_000, t(0), TTL), Verdict::Hold { code: RL });
        assert_eq!(g.len(), WAITING_MAX, "still full");
    }
}
