//! Small pools of valid ids and bodies, indexed by fuzzer-chosen bytes.

use arbitrary::Arbitrary;
use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use lockstep_core::wire::{Body, ErrorCode};

/// Builds an id the pools know is valid; the pools are constants.
fn valid<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("pool id must be valid: {e:?}"),
    }
}

/// One of three channels.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Chan(u8);

impl Chan {
    /// The `i`-th channel of the pool.
    #[must_use]
    pub fn from_index(i: u8) -> Chan {
        Chan(i)
    }

    /// The channel id.
    #[must_use]
    pub fn id(self) -> ChannelId {
        valid(ChannelId::new(
            ["general", "random", "room:x.1"][usize::from(self.0 % 3)],
        ))
    }
}

/// One of four users (`me` is the client's own identity in the client
/// target).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct User(u8);

impl User {
    /// The user id.
    #[must_use]
    pub fn id(self) -> UserId {
        valid(UserId::new(
            ["me", "alice", "bob", "carol"][usize::from(self.0 % 4)],
        ))
    }
}

/// A small seq, where logs and positions overlap.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct SmallSeq(u8);

impl SmallSeq {
    /// The seq (0..=19, or huge now and then).
    #[must_use]
    pub fn seq(self) -> Seq {
        match self.0 {
            255 => Seq(u64::MAX),
            n => Seq(u64::from(n % 20)),
        }
    }
}

/// An epoch among 1..=3 (0 now and then).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct SmallEpoch(u8);

impl SmallEpoch {
    /// The epoch.
    #[must_use]
    pub fn epoch(self) -> Epoch {
        Epoch(u64::from(self.0 % 4))
    }
}

/// A message id in the `MemStore`'s own format (`m{epoch}.{seq}`), so edits
/// and deletes name messages that exist.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Msg(u8, u8);

impl Msg {
    /// The message id.
    #[must_use]
    pub fn id(self) -> MessageId {
        valid(MessageId::new(format!(
            "m{}.{}",
            self.0 % 3 + 1,
            self.1 % 12 + 1
        )))
    }
}

/// A client message id from a small pool (or, in the client target, one the
/// client really issued).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Cmid(u8);

impl Cmid {
    /// Picks from `issued` when it has entries, else from a fixed pool.
    #[must_use]
    pub fn id(self, issued: &[ClientMsgId]) -> ClientMsgId {
        if !issued.is_empty() && self.0 < 200 {
            return issued[usize::from(self.0) % issued.len()].clone();
        }
        valid(ClientMsgId::new(format!("c{}", self.0 % 8)))
    }
}

/// A body: tiny, typical, structured, or too large for small limits.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum BodyKind {
    /// `"hi"`.
    Tiny,
    /// A chat line.
    Text,
    /// A JSON object.
    Object,
    /// About 600 bytes: over the small configs' body limit.
    Large,
}

impl BodyKind {
    /// The body.
    #[must_use]
    pub fn body(self) -> Body {
        match self {
            BodyKind::Tiny => Body::text("hi"),
            BodyKind::Text => Body::text("see you at the station in ten minutes"),
            BodyKind::Object => Body::new(serde_json::json!({"t": "x", "n": [1, 2.5, null]})),
            BodyKind::Large => Body::text("x".repeat(600)),
        }
    }
}

/// An error code.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Code(u8);

impl Code {
    /// The code.
    #[must_use]
    pub fn code(self) -> ErrorCode {
        ErrorCode::ALL[usize::from(self.0) % ErrorCode::ALL.len()]
    }
}
