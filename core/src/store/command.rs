//! Store commands, replies and errors: plain data any engine can execute.

use std::fmt;
use std::time::Duration;

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::{Body, LogEvent, SendAck};

/// The most events one [`StoreCommand::Read`] returns, whatever it asks:
/// enough for a full join recovery page, small enough to bound one reply.
pub const READ_LIMIT_MAX: u64 = 1_000;

/// Events a store keeps per channel by default: ten full join recoveries
/// (1,000 events each), far more than a chat view scrolls back, and at
/// most about 640 MiB of the largest bodies in one channel. A position
/// older than what is kept is answered as truncated (`recovered: false`).
pub const RETAIN_EVENTS_DEFAULT: u64 = 10_000;

/// How long a store keeps an event by default: ninety days. History is
/// read in the days after it was written; ninety days is what hosted chats
/// commonly keep on their free plans, and it empties a channel nobody
/// writes to any more.
pub const RETAIN_AGE_DEFAULT: Duration = Duration::from_secs(90 * 24 * 3_600);

/// Messages a store remembers per channel for dedupe, edits and deletes,
/// by default: the contract's minimum (the module docs), so a retry of
/// any of them is still recognised long after its event was dropped.
pub const REMEMBER_DEFAULT: u64 = 100_000;

/// Correlates a store command with its completion. Assigned by the server
/// machine, increasing from 1; the driver hands it back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreOpId(pub u64);

impl fmt::Display for StoreOpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op{}", self.0)
    }
}

/// Who may edit or delete a message: the access policy's rule, as data, so
/// the store can apply it inside the append transaction (e.g. as SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModifyRule {
    /// Only the message's author.
    AuthorOnly,
    /// Any member (e.g. moderators).
    Anyone,
}

/// What an append adds to a channel log.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendEntry {
    /// A new message, deduplicated by (channel, `author`, `client_msg_id`).
    Message {
        /// The verified sender.
        author: UserId,
        /// The sender's idempotency key.
        client_msg_id: ClientMsgId,
        /// The payload.
        body: Body,
        /// Server clock when the append was issued, Unix milliseconds.
        ts: u64,
    },
    /// An edit of an existing, not deleted message.
    Update {
        /// The message to edit.
        target: MessageId,
        /// Who asks.
        actor: UserId,
        /// Who may do it.
        rule: ModifyRule,
        /// The replacement body.
        body: Body,
    },
    /// A deletion; repeating it answers the original deletion.
    Delete {
        /// The message to delete.
        target: MessageId,
        /// Who asks.
        actor: UserId,
        /// Who may do it.
        rule: ModifyRule,
    },
}

/// Where an append stands in its channel's pipeline. The server may have
/// several appends of one channel at the store at once (so a busy channel
/// does not wait a whole commit before its next batch starts); a store
/// executes them in the order it was handed them, and an append issued
/// behind one that failed must fail too, or a later batch could commit
/// while an earlier one is lost and retried after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppendChain {
    /// No earlier append of the channel was in flight when it was issued:
    /// whatever failed before is settled, and it runs on its own merits.
    Start,
    /// Issued while earlier appends of the channel were in flight: it fails
    /// (committing nothing) if the channel's previous append failed.
    Behind,
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Events with seq greater than this one, oldest first (starting at the
    /// oldest retained event when this position was already dropped).
    After(Seq),
    /// The newest events, oldest first.
    Latest,
}

/// One unit of work for the store.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreCommand {
    /// Append entries to a channel log, in order, in one transaction (see
    /// the module docs for the contract). Several entries share one commit
    /// (one `fsync` for a durable engine), so a busy channel is not held to
    /// one message per disk flush.
    Append {
        /// The channel.
        channel: ChannelId,
        /// What to append, in commit order (at least one).
        entries: Vec<AppendEntry>,
        /// Whether earlier appends of the channel were still at the store
        /// when it was issued (see [`AppendChain`]).
        chain: AppendChain,
    },
    /// Read a page of a channel log.
    Read {
        /// The channel.
        channel: ChannelId,
        /// Where to start.
        from: ReadFrom,
        /// Most events to return (cut to [`READ_LIMIT_MAX`]).
        limit: u64,
        /// Most bytes of events to return, measured as
        /// [`LogEvent::wire_len`]: a page stops before the event that would
        /// pass it (but holds at least one event when any is there), so a
        /// reply of bodies built to weigh costs what the server allows,
        /// whatever the event count.
        max_bytes: usize,
    },
    /// The channel's epoch and head seq.
    Head {
        /// The channel.
        channel: ChannelId,
    },
    /// Raise a user's read watermark (max wins; not beyond the head).
    SetReceipt {
        /// The channel.
        channel: ChannelId,
        /// Whose watermark.
        user: UserId,
        /// The proposed watermark.
        up_to: Seq,
    },
}

impl StoreCommand {
    /// The channel the command is about.
    #[must_use]
    pub fn channel(&self) -> &ChannelId {
        match self {
            StoreCommand::Append { channel, .. }
            | StoreCommand::Read { channel, .. }
            | StoreCommand::Head { channel }
            | StoreCommand::SetReceipt { channel, .. } => channel,
        }
    }
}

/// A store command routed by what it needs: an engine may serve reads on
/// connections (or threads) of their own beside its writer, so history
/// reads never queue behind commits; writes go to the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// A command that only reads.
    Read(ReadCommand),
    /// A command that may write.
    Write(WriteCommand),
}

/// A command that only reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadCommand {
    /// [`StoreCommand::Read`].
    Read {
        /// The channel.
        channel: ChannelId,
        /// Where to start.
        from: ReadFrom,
        /// Most events to return.
        limit: u64,
        /// Most bytes of events to return.
        max_bytes: usize,
    },
    /// [`StoreCommand::Head`].
    Head {
        /// The channel.
        channel: ChannelId,
    },
}

/// A command that may write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteCommand {
    /// [`StoreCommand::Append`].
    Append {
        /// The channel.
        channel: ChannelId,
        /// What to append, in commit order.
        entries: Vec<AppendEntry>,
        /// Its place in the channel's pipeline.
        chain: AppendChain,
    },
    /// [`StoreCommand::SetReceipt`].
    SetReceipt {
        /// The channel.
        channel: ChannelId,
        /// Whose watermark.
        user: UserId,
        /// The proposed watermark.
        up_to: Seq,
    },
}

impl WriteCommand {
    /// The channel the command writes to: an engine keeps a channel's
    /// writes in one queue, in order.
    #[must_use]
    pub fn channel(&self) -> &ChannelId {
        match self {
            WriteCommand::Append { channel, .. } | WriteCommand::SetReceipt { channel, .. } => {
                channel
            }
        }
    }
}

impl From<StoreCommand> for Routed {
    fn from(cmd: StoreCommand) -> Self {
        match cmd {
            StoreCommand::Read {
                channel,
                from,
                limit,
                max_bytes,
            } => Routed::Read(ReadCommand::Read {
                channel,
                from,
                limit,
                max_bytes,
            }),
            StoreCommand::Head { channel } => Routed::Read(ReadCommand::Head { channel }),
            StoreCommand::Append {
                channel,
                entries,
                chain,
            } => Routed::Write(WriteCommand::Append {
                channel,
                entries,
                chain,
            }),
            StoreCommand::SetReceipt {
                channel,
                user,
                up_to,
            } => Routed::Write(WriteCommand::SetReceipt {
                channel,
                user,
                up_to,
            }),
        }
    }
}

/// How many events of `sizes` (in page order, oldest first) fit `max_bytes`:
/// at least one when there is one, so a page always makes progress.
#[must_use]
pub fn fitting(sizes: impl IntoIterator<Item = usize>, max_bytes: usize) -> usize {
    let mut total = 0usize;
    let mut n = 0;
    for size in sizes {
        total = total.saturating_add(size);
        if n > 0 && total > max_bytes {
            break;
        }
        n += 1;
    }
    n
}

/// A page of a channel log and where the log stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The log's identity.
    pub epoch: Epoch,
    /// Events, ascending by seq, without gaps between them.
    pub events: Vec<LogEvent>,
    /// The newest seq of the log (0 when empty).
    pub head: Seq,
    /// True when events after the page's last one exist (the page was cut
    /// by its event limit or its byte budget).
    pub more: bool,
    /// The lowest seq still readable (`head + 1` when nothing is retained):
    /// a position below `oldest_retained - 1` cannot be recovered exactly.
    pub oldest_retained: Seq,
}

/// What a deduplicated append already committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// The original message of a retried send.
    Message(SendAck),
    /// The original deletion of a repeated delete.
    Deletion {
        /// The original deletion's seq.
        seq: Seq,
    },
}

/// Why the store refused an append or a receipt. Nothing was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The target message is unknown (or, for an update, deleted).
    NotFound,
    /// The [`ModifyRule`] does not allow this actor.
    Forbidden,
    /// The receipt names a seq beyond the head.
    BeyondHead {
        /// The head in force.
        head: Seq,
    },
}

/// What one entry of an append came to.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// A new log event was committed: acknowledge and broadcast it.
    Appended(LogEvent),
    /// A dedupe hit: nothing new was committed; answer with the original.
    Duplicate(Existing),
    /// A precondition refused the entry; it consumed no seq.
    Refused(Refusal),
}

impl AppendOutcome {
    /// The event the entry appended, if it appended one (not a duplicate,
    /// not refused).
    #[must_use]
    pub fn appended(&self) -> Option<&LogEvent> {
        match self {
            AppendOutcome::Appended(event) => Some(event),
            AppendOutcome::Duplicate(_) | AppendOutcome::Refused(_) => None,
        }
    }
}

/// A successful store outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreReply {
    /// The outcome of each entry of an append, in the entries' order.
    Appended(Vec<AppendOutcome>),
    /// The receipt was refused by a precondition.
    Refused(Refusal),
    /// The answer to a read.
    Events(Page),
    /// The answer to a head query.
    Head {
        /// The log's identity.
        epoch: Epoch,
        /// The newest seq (0 when empty).
        head: Seq,
    },
    /// The watermark now in force after a receipt.
    Receipt {
        /// The watermark (never lower than before).
        up_to: Seq,
        /// True when this command raised it.
        advanced: bool,
    },
}

/// Why the store could not execute a command. Every variant is transient:
/// the server answers `unavailable` (retryable) and commits nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine failed (I/O error, lost connection, injected fault).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The engine is shutting down and accepts no more work.
    #[error("store is shutting down")]
    ShuttingDown,
}
