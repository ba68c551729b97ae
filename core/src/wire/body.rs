//! Message bodies: any JSON value, shared cheaply.

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The largest body accepted, in bytes of its compact JSON encoding
/// (inclusive). Larger bodies get `too_large` and consume no seq.
pub const MAX_BODY_BYTES: usize = 65_536;

/// A message body: any JSON value the application chooses.
///
/// lockstep never interprets bodies; it only measures them. The value sits
/// behind an `Arc` because one body is cloned into every member's broadcast,
/// every buffered event, every resend and every trace; its measured length
/// is kept beside it, so a body is measured once however often it is sent.
#[derive(Clone)]
pub struct Body(Arc<Shared>);

struct Shared {
    value: Value,
    encoded_len: OnceLock<usize>,
}

impl Body {
    /// Wraps a JSON value.
    #[must_use]
    pub fn new(value: Value) -> Self {
        Body(Arc::new(Shared {
            value,
            encoded_len: OnceLock::new(),
        }))
    }

    /// A string body, the common case for chat text.
    #[must_use]
    pub fn text(s: impl Into<String>) -> Self {
        Body::new(Value::String(s.into()))
    }

    /// The JSON value.
    #[must_use]
    pub fn value(&self) -> &Value {
        &self.0.value
    }

    /// Length of the compact JSON encoding in bytes: the number the
    /// [`MAX_BODY_BYTES`] limit is about. Counts without allocating, once
    /// per body (clones share the count).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        *self.0.encoded_len.get_or_init(|| {
            let mut counter = ByteCounter(0);
            // Writing into a counter cannot fail, and a `Value` always
            // serializes.
            let _ = serde_json::to_writer(&mut counter, &self.0.value);
            counter.0
        })
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.value == other.0.value
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Body::new)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.value)
    }
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::new(v)
    }
}

struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_matches_serialization() {
        let b = Body::new(serde_json::json!({"text": "héllo", "n": [1, 2]}));
        assert_eq!(
            b.encoded_len(),
            serde_json::to_vec(b.value()).unwrap().len()
        );
        assert_eq!(Body::text("x".repeat(10)).encoded_len(), 12);
    }
}
