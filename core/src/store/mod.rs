//! The store interface the server machine talks to, and an in-memory store.
//!
//! The server machine never calls a store: it emits a [`StoreCommand`] with a
//! [`StoreOpId`] and later receives the outcome through
//! `Server::handle_store`. Commands and replies are plain data so any engine
//! can execute them: [`MemStore`] here, SQLite or PostgreSQL in adapters.
//!
//! # The contract every store keeps
//!
//! - **The store is the truth.** The server machine loses its memory on a
//!   restart; everything a reply depends on (seqs, dedupe keys, authorship,
//!   deletions, read watermarks) lives in the store.
//! - **One append is one transaction.** [`StoreCommand::Append`] takes its
//!   entries in order; for each it checks the preconditions (dedupe key,
//!   target existence, [`ModifyRule`]), assigns the next seq of the channel
//!   (contiguous from 1 within an epoch) and records the dedupe key, and it
//!   answers one [`AppendOutcome`] per entry. The entries commit together or,
//!   on a [`StoreError`], not at all, so a failure can never let a later
//!   message of a sender in while an earlier one is lost. A refused entry
//!   consumes no seq and does not stop the others.
//! - **Pipelined appends keep their order.** The server may have several
//!   appends of one channel at the store at once. A store executes them in
//!   the order it was handed them (seqs follow that order), and an append
//!   marked [`AppendChain::Behind`] fails, committing nothing, when the
//!   channel's previous append failed: nothing commits out of order and
//!   nothing is acked that is not stored. [`BrokenChains`] is the memory
//!   that rule needs.
//! - **Deduplication.** The key is (channel, author, client message id). A hit
//!   commits nothing and answers [`AppendOutcome::Duplicate`] with the original
//!   message's id, seq and ts. The memory covers at least the last 100,000
//!   messages of a channel.
//! - **Epochs.** A channel's log has an identity ([`Epoch`](crate::ids::Epoch))
//!   that changes only when the log is reset; seqs restart at 1 in a new epoch,
//!   and a channel's epochs never repeat. Reading a channel that was never
//!   written still reports its epoch, and that epoch stays the same when the
//!   first message is appended. Channels may share an epoch (the stores here
//!   give every never-reset log one per-store number).
//! - **Reads write nothing.** A read, a head query or a receipt that cannot
//!   advance changes nothing and creates nothing, whatever channel it names:
//!   joining a million names costs no storage.
//! - **Edits and deletes supersede bodies.** Only the latest body of a live
//!   message is kept: an edit turns the entry that held the body (the message,
//!   or the previous edit) into a tombstone, and a deletion does so too, so a
//!   replay no longer carries what was replaced or deleted. A tombstone keeps
//!   everything but the body (seq, message id, author, client message id,
//!   ts); the append's own outcome (the broadcast) always carries its body.
//! - **Retention.** A store may drop a channel's oldest events (by count or
//!   age); what it keeps is contiguous and ends at the head, and every read
//!   says where it begins (`oldest_retained`). Dedupe, edit and delete
//!   memory outlives the events (see above).
//! - **Bounded reads.** A read returns at most [`READ_LIMIT_MAX`] events and
//!   at most its `max_bytes` of them (by [`LogEvent::wire_len`], at least
//!   one event), and says whether more follow and where retained history
//!   begins, so the server can say "recovered" or "truncated" and never
//!   hide a gap. A latest-first read keeps the newest events that fit.
//!
//! [`LogEvent::wire_len`]: crate::wire::LogEvent::wire_len
//! - **Receipts are monotonic.** A read watermark only moves forward (max
//!   wins) and never beyond the head.
//! - **Failure is a reply, and the truth.** A store that cannot serve answers
//!   [`StoreError`]; the server turns it into a retryable `unavailable`. An
//!   error means nothing of the command was committed, and an answer means
//!   all of it was: a store that cannot tell (its engine rolled a shared
//!   transaction back, or a commit failed half-way) finds out what is on
//!   disk before it answers. Slowness is not modelled here: the caller
//!   simply delays handing the completion back.

mod chains;
mod command;
mod mem;
mod mem_log;
mod rules;

pub use chains::{BROKEN_CHAINS_MAX, BrokenChains};
pub use command::{
    AppendChain, AppendEntry, AppendOutcome, Existing, ModifyRule, Page, READ_LIMIT_MAX,
    REMEMBER_DEFAULT, RETAIN_AGE_DEFAULT, RETAIN_EVENTS_DEFAULT, ReadCommand, ReadFrom, Refusal,
    Routed, StoreCommand, StoreError, StoreOpId, StoreReply, WriteCommand, fitting,
};
pub use mem::{FailMode, LogView, MemStore, MemStoreConfig};
pub use rules::{MessageState, Modify, PRUNE_STEP, decide_modify, decide_receipt};

#[cfg(test)]
mod tests;
