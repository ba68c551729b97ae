//! Message bodies: any JSON value, held as its compact JSON text.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// The largest body accepted, in bytes of its compact JSON encoding
/// (inclusive). Larger bodies get `too_large` and consume no seq.
pub const MAX_BODY_BYTES: usize = 65_536;

/// A message body: any JSON value the application chooses.
///
/// lockstep never interprets bodies; it only measures and forwards them. A
/// body is held as its **compact JSON text** behind an `Arc`, from the
/// decoder through the store to every broadcast: it costs what it weighs
/// on the wire (a parsed tree of `[0,0,…]` would cost sixteen times that),
/// its length is the text's length, and encoding a frame splices the text
/// instead of serializing a tree again. Clones share the text.
///
/// Object keys keep the order they arrived in; two bodies are equal when
/// their compact texts are.
///
/// The text stays in the `Box` it was validated in: an `Arc<RawValue>`
/// would copy every body once more on the way in (`Arc::from(Box)`), and
/// bodies run to 64 KiB.
#[derive(Clone)]
pub struct Body(Arc<Box<RawValue>>);

/// Whether JSON must escape `b` inside a string: quotes, backslashes and
/// control characters, exactly the bytes `serde_json` escapes.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of `bytes` needs escaping. Whole blocks are checked
/// without stopping early, which the compiler turns into vector code.
pub(crate) fn any_needs_escape(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        if block.iter().fold(false, |any, &b| any | needs_escape(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| needs_escape(b))
}

/// Why text could not become a [`Body`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid body: {0}")]
pub struct BodyError(String);

impl Body {
    /// A body from a JSON value (its keys in the value's order).
    #[must_use]
    pub fn new(value: Value) -> Self {
        // A `Value` always serializes; the fallback is never taken.
        let raw =
            serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Body(Arc::new(raw))
    }

    /// A string body, the common case for chat text.
    #[must_use]
    pub fn text(s: impl AsRef<str>) -> Self {
        let s = s.as_ref();
        // Most chat text needs no escaping: quote it as it is, which is
        // what the serializer below would write, at a fraction of the cost
        // (its escape check goes byte by byte; this one vectorizes).
        if !any_needs_escape(s.as_bytes()) {
            let mut quoted = String::with_capacity(s.len() + 2);
            quoted.push('"');
            quoted.push_str(s);
            quoted.push('"');
            if let Ok(raw) = RawValue::from_string(quoted) {
                return Body(Arc::new(raw));
            }
        }
        let raw = serde_json::value::to_raw_value(s).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Body(Arc::new(raw))
    }

    /// Parses JSON text (any whitespace) into a compact body.
    ///
    /// # Errors
    ///
    /// [`BodyError`] when `json` is not one JSON value.
    pub fn from_json(json: &str) -> Result<Self, BodyError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let body = Body::deserialize(&mut de).map_err(|e| BodyError(e.to_string()))?;
        de.end().map_err(|e| BodyError(e.to_string()))?;
        Ok(body)
    }

    /// The compact JSON text.
    #[must_use]
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The compact JSON text as a raw value, for splicing into a frame.
    #[must_use]
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The body parsed into a tree, for code that inspects it (tests,
    /// examples). Allocates; the server never needs it.
    #[must_use]
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    /// The body's text when it is a JSON string, for chat text.
    #[must_use]
    pub fn as_text(&self) -> Option<String> {
        match self.to_value() {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Length of the compact JSON encoding in bytes: the number the
    /// [`MAX_BODY_BYTES`] limit is about, and what the body costs in memory.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.0.get().len()
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.get() == other.0.get()
    }
}

impl Eq for Body {}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Body {
    /// Writes the value as compact JSON while it is read, whatever the
    /// deserializer (serde_json itself, or the buffered content of an
    /// internally tagged frame): no tree is built.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Compact(&mut out).deserialize(deserializer)?;
        let text = String::from_utf8(out).map_err(de::Error::custom)?;
        let raw = RawValue::from_string(text).map_err(de::Error::custom)?;
        Ok(Body(Arc::new(raw)))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::new(v)
    }
}

/// Transcodes one JSON value from any deserializer into compact JSON text.
struct Compact<'a>(&'a mut Vec<u8>);

impl Compact<'_> {
    fn scalar<T: Serialize + ?Sized, E: de::Error>(self, v: &T) -> Result<(), E> {
        serde_json::to_writer(&mut *self.0, v).map_err(E::custom)
    }
}

impl<'de> DeserializeSeed<'de> for Compact<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Compact<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(&v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(&v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(&v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(&v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(Compact(&mut *self.0))?.is_none() {
                if !first {
                    // Undo the comma written for an element that was not there.
                    self.0.pop();
                }
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !first {
                self.0.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *self.0, key.as_ref()).map_err(de::Error::custom)?;
            self.0.push(b':');
            map.next_value_seed(Compact(&mut *self.0))?;
        }
        self.0.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_its_compact_text() {
        let b = Body::from_json(" { \"text\" : \"héllo\", \"n\" : [ 1 , 2.5, -3, null, true ] } ")
            .unwrap();
        assert_eq!(b.json(), r#"{"text":"héllo","n":[1,2.5,-3,null,true]}"#);
        assert_eq!(b.encoded_len(), b.json().len());
        assert_eq!(Body::text("x".repeat(10)).encoded_len(), 12);
        assert_eq!(Body::text("a\"b").json(), r#""a\"b""#);
        assert_eq!(Body::from_json("[]").unwrap().json(), "[]");
        assert_eq!(Body::from_json("{}").unwrap().json(), "{}");
        assert_eq!(Body::from_json("[[],{}]").unwrap().json(), "[[],{}]");
    }

    proptest::proptest! {
        /// The quoting shortcut of `Body::text` writes what the serializer
        /// writes, escapes or not (any char, and the ones it escapes).
        #[test]
        fn text_is_quoted_as_the_serializer_quotes_it(
            s in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}])*",
        ) {
            let expected = serde_json::to_string(&s).unwrap();
            let body = Body::text(&s);
            proptest::prop_assert_eq!(body.json(), expected.as_str());
        }
    }

    #[test]
    fn text_that_would_validate_quoted_as_it_is_is_still_escaped() {
        for s in [
            r"\n",
            r"\",
            r#"\""#,
            r#"a"b"#,
            r#"""#,
            r#"a""#,
            "tab\there",
            "\u{0}",
        ] {
            let expected = serde_json::to_string(s).unwrap();
            assert_eq!(Body::text(s).json(), expected, "{s:?}");
            assert_eq!(Body::text(s).as_text().as_deref(), Some(s));
        }
    }

    #[test]
    fn bad_text_is_an_error_not_a_body() {
        for bad in ["", "{", "[1,]", "1 2", "nul", "\"open"] {
            assert!(Body::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_body_inside_a_tagged_frame_keeps_its_order_and_weighs_its_text() {
        // Internally tagged enums hand the body over as buffered content,
        // not as serde_json's own deserializer: the transcoder serves both.
        #[derive(Deserialize)]
        #[serde(tag = "type")]
        enum Frame {
            #[serde(rename = "m")]
            M { body: Body },
        }
        let Frame::M { body } =
            serde_json::from_str(r#"{"body": {"z": [0, 0, 0], "a": "é"}, "type": "m"}"#).unwrap();
        assert_eq!(body.json(), r#"{"z":[0,0,0],"a":"é"}"#);
        assert_eq!(body, Body::from_json(r#"{"z":[0,0,0],"a":"é"}"#).unwrap());
    }

    #[test]
    fn serializing_splices_the_text() {
        let body = Body::from_json(r#"{"b":1,"a":[true]}"#).unwrap();
        let framed = serde_json::to_string(&serde_json::json!({"x": 1})).unwrap();
        assert_eq!(framed, r#"{"x":1}"#);
        #[derive(Serialize)]
        struct Carrier<'a> {
            body: &'a Body,
        }
        assert_eq!(
            serde_json::to_string(&Carrier { body: &body }).unwrap(),
            r#"{"body":{"b":1,"a":[true]}}"#
        );
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"a": [true], "b": 1})
        );
    }
}
