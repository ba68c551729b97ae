//! Validated identifiers and positions.
//!
//! Every id that arrives from the network is parsed into one of these types at
//! the edge, so the machines never see a malformed channel name or an
//! over-long client message id. String ids share their text (`Arc<str>`):
//! they are cloned into every event, broadcast and trace line.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string is empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier was being parsed.
        kind: &'static str,
    },
    /// The string is longer than the identifier allows.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// The maximum length in characters.
        max: usize,
    },
    /// The string holds a character outside the identifier's alphabet.
    #[error("{kind} has a character outside {alphabet}")]
    BadChar {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// The allowed alphabet, for the message.
        alphabet: &'static str,
    },
}

/// An alphabet's name (for error messages) and its membership test.
type Alphabet = (&'static str, fn(char) -> bool);

/// Checks a candidate id against a length limit and an optional alphabet.
fn check(
    kind: &'static str,
    s: &str,
    max: usize,
    alphabet: Option<Alphabet>,
) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.chars().count() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if let Some((name, ok)) = alphabet {
        if !s.chars().all(ok) {
            return Err(IdError::BadChar {
                kind,
                alphabet: name,
            });
        }
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $alphabet:expr) => {
        $(#[$doc])*
        #[derive(Clone, Eq)]
        pub struct $name(Arc<str>);

        /// Equal texts. Clones share their text, so two ids holding the
        /// same `Arc` are equal without comparing bytes (`==` on an
        /// `Arc<str>` does not know this: std only shortcuts `Arc<T>` for
        /// sized `T`).
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        /// The text's hash, as `str` hashes it (equal ids hash alike).
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        /// The text's order. Clones share their text, so two ids holding
        /// the same `Arc` are equal without comparing bytes, as for `==`
        /// (sorted tables search with `cmp`).
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                if Arc::ptr_eq(&self.0, &other.0) {
                    std::cmp::Ordering::Equal
                } else {
                    self.0.cmp(&other.0)
                }
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_LEN: usize = $max;

            /// Validates `s`; this is the only way to build one from text.
            pub fn new(s: impl AsRef<str>) -> Result<Self, IdError> {
                let s = s.as_ref();
                check($kind, s, $max, $alphabet)?;
                Ok($name(Arc::from(s)))
            }

            /// The id's text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $name::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Borrowed from the input where it can be: one copy, the id's own.
                let s = crate::wire::body::Text::deserialize(d)?;
                $name::new(&*s.0).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn channel_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-')
}

fn user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

string_id!(
    /// A channel name: 1..=128 characters of `[A-Za-z0-9_:.-]`.
    ///
    /// The narrow alphabet keeps channel names safe to use as room names,
    /// log keys and file-system-free identifiers in every store.
    ChannelId,
    "channel id",
    128,
    Some(("[A-Za-z0-9_:.-]", channel_char))
);

string_id!(
    /// A user's identity: 1..=64 characters of `[A-Za-z0-9_-]`.
    ///
    /// It only ever comes from a verified handshake; payloads cannot name one.
    UserId,
    "user id",
    64,
    Some(("[A-Za-z0-9_-]", user_char))
);

string_id!(
    /// The sender-chosen idempotency key of a message: any 1..=128 characters.
    ///
    /// Together with the channel and the author it is the dedupe key, so a
    /// retried send is stored once however often it travels.
    ClientMsgId,
    "client message id",
    128,
    None
);

string_id!(
    /// A server-assigned, opaque message identifier.
    ///
    /// Edits and deletes name their target by it; clients must not parse it.
    MessageId,
    "message id",
    128,
    None
);

impl MessageId {
    /// The id a store mints for the event at `seq` of log `epoch`:
    /// `m{epoch}.{seq}`. Unique per log identity and position, so every
    /// engine names messages alike, and always valid (at most 42 ASCII
    /// characters), so minting one cannot fail in the middle of a commit.
    #[must_use]
    pub fn minted(epoch: Epoch, seq: Seq) -> MessageId {
        let mut id = Minted::default();
        id.push(b"m");
        id.decimal(epoch.0);
        id.push(b".");
        id.decimal(seq.0);
        MessageId(Arc::from(id.text()))
    }
}

impl ClientMsgId {
    /// The id a client gives its `counter`-th message: `{instance:016x}-{counter}`
    /// (at most 37 ASCII characters, always valid).
    pub(crate) fn local(instance: u64, counter: u64) -> ClientMsgId {
        let mut id = Minted::default();
        for shift in (0..16).rev() {
            id.push(&[b"0123456789abcdef"[((instance >> (shift * 4)) & 0xf) as usize]]);
        }
        id.push(b"-");
        id.decimal(counter);
        ClientMsgId(Arc::from(id.text()))
    }
}

/// An id minted from numbers, built on the stack: ids are minted for every
/// message, and `format!` cost its machinery and a `String` on top of the
/// `Arc` that is the id's one allocation. Holds the longest minted id (42
/// ASCII bytes); more is cut, which no caller writes.
struct Minted {
    bytes: [u8; 48],
    len: usize,
}

impl Default for Minted {
    fn default() -> Self {
        Minted {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl Minted {
    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    fn decimal(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    /// The id's text (ASCII, so always UTF-8).
    fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// A position in a channel's log: events are numbered contiguously from 1,
/// and 0 means "before the first event".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The position before any event.
    pub const ZERO: Seq = Seq(0);

    /// The next position.
    #[must_use]
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The identity of a channel's log. It changes only when the log is reset
/// (e.g. the store was wiped); a client that sees a new epoch starts over.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn ids_order_by_text_whether_or_not_they_share_it() {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let a = ChannelId::new("room-1").unwrap();
        let same_text = ChannelId::new("room-1").unwrap();
        for (x, y, expected) in [
            (&a, &a.clone(), Ordering::Equal),
            (&a, &same_text, Ordering::Equal),
            (&a, &ChannelId::new("room-10").unwrap(), Ordering::Less),
            (&a, &ChannelId::new("room-0").unwrap(), Ordering::Greater),
            (&a, &ChannelId::new("room").unwrap(), Ordering::Greater),
        ] {
            assert_eq!(x.cmp(y), expected, "{x} {y}");
            assert_eq!(x.cmp(y), x.as_str().cmp(y.as_str()), "{x} {y}");
            assert_eq!(y.cmp(x), expected.reverse(), "{y} {x}");
            assert_eq!(x == y, expected == Ordering::Equal, "{x} {y}");
            assert_eq!(y == x, expected == Ordering::Equal, "{y} {x}");
        }
        // Equal ids hash alike, as their text does.
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        assert_eq!(hasher.hash_one(&a), hasher.hash_one(&same_text));
        assert_eq!(hasher.hash_one(&a), hasher.hash_one("room-1"));
    }

    #[test]
    fn channel_id_rules() {
        assert!(ChannelId::new("room:general.v2_x-1").is_ok());
        assert_eq!(
            ChannelId::new(""),
            Err(IdError::Empty { kind: "channel id" })
        );
        assert!(matches!(
            ChannelId::new("a b"),
            Err(IdError::BadChar { .. })
        ));
        assert!(ChannelId::new("x".repeat(128)).is_ok());
        assert!(matches!(
            ChannelId::new("x".repeat(129)),
            Err(IdError::TooLong { max: 128, .. })
        ));
    }

    #[test]
    fn minted_message_ids_pass_validation() {
        for (epoch, seq) in [(0, 0), (1, 1), (u64::MAX, u64::MAX)] {
            let id = MessageId::minted(Epoch(epoch), Seq(seq));
            assert_eq!(MessageId::new(id.as_str()), Ok(id));
        }
        assert_eq!(MessageId::minted(Epoch(3), Seq(9)).as_str(), "m3.9");
        for (epoch, seq) in [(0, 0), (12, 3456), (u64::MAX, u64::MAX)] {
            let id = MessageId::minted(Epoch(epoch), Seq(seq));
            assert_eq!(id.as_str(), format!("m{epoch}.{seq}"));
        }
    }

    #[test]
    fn local_client_msg_ids_are_hex_instance_and_counter() {
        for (instance, counter) in [(0, 1), (0xabc, 42), (u64::MAX, u64::MAX)] {
            let id = ClientMsgId::local(instance, counter);
            assert_eq!(id.as_str(), format!("{instance:016x}-{counter}"));
            assert_eq!(ClientMsgId::new(id.as_str()), Ok(id));
        }
    }

    #[test]
    fn user_id_rules() {
        assert!(UserId::new("alice_1-b").is_ok());
        assert!(UserId::new("a:b").is_err());
        assert!(UserId::new("u".repeat(65)).is_err());
    }

    #[test]
    fn client_msg_id_counts_characters_not_bytes() {
        assert!(ClientMsgId::new("é".repeat(128)).is_ok());
        assert!(ClientMsgId::new("é".repeat(129)).is_err());
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let ok: ChannelId = serde_json::from_str("\"general\"").unwrap();
        assert_eq!(ok.as_str(), "general");
        assert!(serde_json::from_str::<ChannelId>("\"bad channel\"").is_err());
        assert!(serde_json::from_str::<ChannelId>("17").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"general\"");
        assert_eq!(serde_json::to_string(&Seq(4)).unwrap(), "4");
    }
}
