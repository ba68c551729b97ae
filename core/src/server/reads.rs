//! Fair scheduling of store reads (join and history).
//!
//! A read's cost is known only when it returns (a page of up to
//! `reply_bytes_max` bytes), and a store serves few at once. So reads wait
//! here and go to the store in turns: at most `reads_in_flight_per_user` of
//! one user and `reads_in_flight_max` in all at once, users taken
//! round-robin, and a user whose replies passed its byte budget
//! (`user_reply_bytes_per_sec`) waits until the debt is paid back. A flood
//! of reads from one user delays that user, never the others, and is never
//! refused for it: every request is answered, later.

use std::collections::{BTreeMap, VecDeque};

use crate::Instant;
use crate::ids::UserId;
use crate::server::ConnId;
use crate::server::ops::PendingOp;
use crate::store::{StoreCommand, StoreOpId};

/// A read waiting for its turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueuedRead {
    pub(crate) conn: ConnId,
    pub(crate) cmd: StoreCommand,
    pub(crate) pending: PendingOp,
}

/// Reads waiting and at the store, by user.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reads {
    waiting: BTreeMap<UserId, VecDeque<QueuedRead>>,
    /// Users with reads waiting, in turn order (each at most once).
    turns: VecDeque<UserId>,
    /// The user of each read at the store.
    at_store: BTreeMap<StoreOpId, UserId>,
    /// Reads at the store per user (entries dropped at zero).
    per_user: BTreeMap<UserId, usize>,
    /// When a user in debt may read again, if a timer is armed for it.
    pub(crate) resume_at: Option<Instant>,
}

/// What the scheduler may start now.
pub(crate) enum Next {
    /// Start this read.
    Start(UserId, QueuedRead),
    /// Nothing can start before this instant (a user's byte debt).
    WaitUntil(Instant),
    /// Nothing waits, or every slot is taken.
    Idle,
}

impl Reads {
    /// Queues a read of `user`.
    pub(crate) fn push(&mut self, user: UserId, read: QueuedRead) {
        let queue = self.waiting.entry(user.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(user);
        }
        queue.push_back(read);
    }

    /// The next read to start: the first user in turn order under its own
    /// cap whose byte budget is not in debt (`ready_at` says when a user may
    /// read), if the total cap allows.
    pub(crate) fn next(
        &mut self,
        per_user_max: usize,
        total_max: usize,
        now: Instant,
        mut ready_at: impl FnMut(&UserId) -> Instant,
    ) -> Next {
        if self.at_store.len() >= total_max.max(1) {
            return Next::Idle;
        }
        let mut earliest: Option<Instant> = None;
        for i in 0..self.turns.len() {
            let user = &self.turns[i];
            if self.per_user.get(user).copied().unwrap_or(0) >= per_user_max.max(1) {
                continue;
            }
            let ready = ready_at(user);
            if ready > now {
                earliest = Some(earliest.map_or(ready, |e| e.min(ready)));
                continue;
            }
            let Some(user) = self.turns.remove(i) else {
                break;
            };
            let Some(queue) = self.waiting.get_mut(&user) else {
                continue;
            };
            let Some(read) = queue.pop_front() else {
                self.waiting.remove(&user);
                continue;
            };
            if queue.is_empty() {
                self.waiting.remove(&user);
            } else {
                // Its next read waits behind everyone else's.
                self.turns.push_back(user.clone());
            }
            return Next::Start(user, read);
        }
        earliest.map_or(Next::Idle, Next::WaitUntil)
    }

    /// Records that `user`'s read went to the store as `op`.
    pub(crate) fn started(&mut self, op: StoreOpId, user: UserId) {
        *self.per_user.entry(user.clone()).or_default() += 1;
        self.at_store.insert(op, user);
    }

    /// A store completion: the user whose read `op` was, if it was one.
    pub(crate) fn finished(&mut self, op: StoreOpId) -> Option<UserId> {
        let user = self.at_store.remove(&op)?;
        if let Some(n) = self.per_user.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&user);
            }
        }
        Some(user)
    }

    /// Drops the waiting reads of a closed connection: nobody would be
    /// answered.
    pub(crate) fn forget_conn(&mut self, user: &UserId, conn: ConnId) {
        if let Some(queue) = self.waiting.get_mut(user) {
            queue.retain(|r| r.conn != conn);
            if queue.is_empty() {
                self.waiting.remove(user);
                self.turns.retain(|u| u != user);
            }
        }
    }

    /// Reads waiting for their turn.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChannelId;
    use crate::server::ops::Waiter;
    use crate::wire::ReqId;

    fn user(name: &str) -> UserId {
        UserId::new(name).unwrap()
    }

    fn read(conn: u64, req: u64) -> QueuedRead {
        let channel = ChannelId::new("c").unwrap();
        QueuedRead {
            conn: ConnId(conn),
            cmd: StoreCommand::Head {
                channel: channel.clone(),
            },
            pending: PendingOp::History {
                waiter: Waiter {
                    conn: ConnId(conn),
                    req: ReqId(req),
                },
                channel,
            },
        }
    }

    fn start(reads: &mut Reads, op: u64, now: Instant) -> Option<(String, u64)> {
        match reads.next(2, 3, now, |_| now) {
            Next::Start(user, r) => {
                reads.started(StoreOpId(op), user.clone());
                let req = match r.pending {
                    PendingOp::History { waiter, .. } => waiter.req.0,
                    _ => 0,
                };
                Some((user.to_string(), req))
            }
            _ => None,
        }
    }

    #[test]
    fn users_take_turns_within_their_caps() {
        let now = Instant::from_millis(0);
        let mut reads = Reads::default();
        for req in 1..=5 {
            reads.push(user("flood"), read(1, req));
        }
        reads.push(user("calm"), read(2, 100));
        // The flooder's first read, then the calm user's, then the flooder
        // again (its cap is 2), then the total cap of 3 is reached.
        assert_eq!(start(&mut reads, 1, now), Some(("flood".into(), 1)));
        assert_eq!(start(&mut reads, 2, now), Some(("calm".into(), 100)));
        assert_eq!(start(&mut reads, 3, now), Some(("flood".into(), 2)));
        assert_eq!(start(&mut reads, 4, now), None);
        assert_eq!(reads.finished(StoreOpId(2)), Some(user("calm")));
        // The flooder is at its own cap of 2: nothing starts.
        assert_eq!(start(&mut reads, 4, now), None);
        assert_eq!(reads.finished(StoreOpId(1)), Some(user("flood")));
        assert_eq!(start(&mut reads, 4, now), Some(("flood".into(), 3)));
        assert_eq!(reads.finished(StoreOpId(99)), None);
        reads.forget_conn(&user("flood"), ConnId(1));
        assert_eq!(reads.waiting(), 0);
    }

    #[test]
    fn a_user_in_debt_waits_and_says_until_when() {
        let now = Instant::from_millis(10);
        let later = Instant::from_millis(500);
        let mut reads = Reads::default();
        reads.push(user("heavy"), read(1, 1));
        let debt = |u: &UserId| if u.as_str() == "heavy" { later } else { now };
        assert!(matches!(reads.next(2, 3, now, debt), Next::WaitUntil(t) if t == later));
        reads.push(user("light"), read(2, 2));
        assert!(matches!(reads.next(2, 3, now, debt), Next::Start(u, _) if u.as_str() == "light"));
        assert!(
            matches!(reads.next(2, 3, later, debt), Next::Start(u, _) if u.as_str() == "heavy")
        );
    }
}
