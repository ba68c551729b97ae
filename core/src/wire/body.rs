//! Message bodies: any JSON value, shared cheaply.

use std::fmt;
use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest body accepted, in bytes of its compact JSON encoding
/// (inclusive). Larger bodies get `too_large` and consume no seq.
pub const MAX_BODY_BYTES: usize = 65_536;

/// A message body: any JSON value the application chooses.
///
/// lockstep never interprets bodies; it only measures them. The value sits
/// behind an `Arc` because one body is cloned into every member's broadcast,
/// every buffered event and every trace.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Body(Arc<Value>);

impl Body {
    /// Wraps a JSON value.
    #[must_use]
    pub fn new(value: Value) -> Self {
        Body(Arc::new(value))
    }

    /// A string body, the common case for chat text.
    #[must_use]
    pub fn text(s: impl Into<String>) -> Self {
        Body::new(Value::String(s.into()))
    }

    /// The JSON value.
    #[must_use]
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// Length of the compact JSON encoding in bytes: the number the
    /// [`MAX_BODY_BYTES`] limit is about. Counts without allocating.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        // Writing into a counter cannot fail, and a `Value` always serializes.
        let _ = serde_json::to_writer(&mut counter, &*self.0);
        counter.0
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
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
