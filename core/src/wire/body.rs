//! Message bodies: any JSON value, held as its compact JSON text.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::wire::json::{JsonError, Reader, compact};

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

/// Zero exactly when JSON must escape `b` inside a string (quotes,
/// backslashes and control characters, exactly the bytes `serde_json`
/// escapes), in a form the compiler vectorizes to three operations and a
/// minimum per 16 bytes. `b ^ 2` keeps 0x00..=0x1f below 0x20 and turns
/// `"` (0x22) into 0x20, and nothing else into either, so subtracting 0x20
/// (saturating) leaves zero for both; `b ^ b'\\'` is zero for a backslash.
fn escape_distance(b: u8) -> u8 {
    (b ^ 0x02).saturating_sub(0x20).min(b ^ b'\\')
}

/// Whether any byte of `bytes` needs escaping. The whole text is checked
/// without stopping early (most text needs no escape, so it is read to the
/// end anyway), which the compiler turns into vector code with one
/// reduction at the end.
pub(crate) fn any_needs_escape(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(u8::MAX, |nearest, &b| nearest.min(escape_distance(b)))
        == 0
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
            // Valid JSON by construction (a `str` quoted, nothing in it to
            // escape): not parsed again to prove it.
            if let Ok(raw) = known_valid::<serde_json::Error>(Cow::Owned(quoted)) {
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
        let mut r = Reader::new(json);
        let raw = r.raw().and_then(|raw| r.end().map(|()| raw));
        raw.and_then(Body::from_valid)
            .map_err(|e| BodyError(e.to_string()))
    }

    /// A body from the text of one JSON value that the wire's reader
    /// accepted ([`Reader::raw`]): taken as it is when it is compact
    /// already, transcoded to the compact form otherwise.
    pub(crate) fn from_valid(json: &str) -> Result<Self, JsonError> {
        if is_compact(json.as_bytes()) {
            return Ok(Body(Arc::new(verbatim(json))));
        }
        Ok(Body(Arc::new(verbatim(&compact(json)?))))
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
    /// Takes the value's text as it is when it is already compact (what
    /// serde_json's own deserializers hand over, checked by
    /// `is_compact`); otherwise writes the value as compact JSON while it
    /// is read, whatever the deserializer (serde_json on text with spaces or
    /// escapes, or the buffered content of an internally tagged frame): no
    /// tree is built either way.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde_json answers this name with the value's raw text (its
        // `RawValue` protocol); any other deserializer visits the newtype.
        deserializer.deserialize_newtype_struct(RAW_VALUE_TOKEN, BodyVisitor)
    }
}

/// The newtype name serde_json's deserializers answer with a value's raw
/// text: `serde_json::value::RawValue` asks with it. Another deserializer
/// treats it as any newtype, and the body is transcoded.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Compact JSON text known to be one valid value, as a raw value, without
/// parsing it again: serde_json writes a raw value's text as it is.
fn verbatim(json: &str) -> Box<RawValue> {
    struct Verbatim<'a>(&'a str);
    impl Serialize for Verbatim<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut raw = s.serialize_struct(RAW_VALUE_TOKEN, 1)?;
            raw.serialize_field(RAW_VALUE_TOKEN, self.0)?;
            raw.end()
        }
    }
    // Writing a string into memory cannot fail; the fallback is never taken.
    serde_json::value::to_raw_value(&Verbatim(json)).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// A body from compact JSON text written by [`Compact`].
fn from_compact<E: de::Error>(out: Vec<u8>) -> Result<Body, E> {
    let text = String::from_utf8(out).map_err(E::custom)?;
    let raw = RawValue::from_string(text).map_err(E::custom)?;
    Ok(Body(Arc::new(raw)))
}

/// Whether `json`, one valid JSON value, is already exactly what
/// [`Compact`] would write for it: no whitespace, strings escaped as
/// serde_json escapes them (only quotes, backslashes and control
/// characters, short forms where they exist, lowercase hex), and numbers
/// that are plain integers serde_json reads and writes back unchanged (no
/// fraction or exponent, at most 18 digits, not `-0`). Anything else is
/// transcoded, so a body's text stays one canonical form however it arrived.
fn is_compact(json: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => {
                i += 1;
                loop {
                    // Plain bytes up to the next quote or backslash.
                    let Some(n) = json[i..].iter().position(|&c| c == b'"' || c == b'\\') else {
                        return false;
                    };
                    i += n;
                    if json[i] == b'"' {
                        i += 1;
                        break;
                    }
                    match json.get(i + 1) {
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => match json.get(i + 2..i + 6) {
                            // Only control characters without a short form.
                            Some(&[b'0', b'0', high @ (b'0' | b'1'), low])
                                if low.is_ascii_digit() || (b'a'..=b'f').contains(&low) =>
                            {
                                let low = if low.is_ascii_digit() {
                                    low - b'0'
                                } else {
                                    low - b'a' + 10
                                };
                                if !matches!((high - b'0') * 16 + low, 0x00..=0x07 | 0x0b | 0x0e..=0x1f)
                                {
                                    return false;
                                }
                                i += 6;
                            }
                            _ => return false,
                        },
                        _ => return false,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let negative = b == b'-';
                let start = i + usize::from(negative);
                i = start;
                while json.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let digits = &json[start..i];
                if digits.is_empty()
                    || digits.len() > 18
                    || (negative && digits == b"0")
                    || matches!(json.get(i), Some(b'.' | b'e' | b'E'))
                {
                    return false;
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => return false,
            // Brackets, braces, commas, colons, and the letters of
            // `true`, `false` and `null`.
            _ => i += 1,
        }
    }
    true
}

/// Reads a body from whatever its deserializer hands over: serde_json's
/// raw text, a newtype to transcode, or (from a deserializer that ignores
/// newtypes) the value itself.
struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Body, D::Error> {
        let mut out = Vec::new();
        Compact(&mut out).deserialize(deserializer)?;
        from_compact(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut out = Vec::new();
        let Some(key) = map.next_key::<Text<'de>>()? else {
            out.extend_from_slice(b"{}");
            return from_compact(out);
        };
        if key.0 == RAW_VALUE_TOKEN {
            // serde_json's raw text of the value: valid JSON, maybe not compact.
            let Text(json) = map.next_value()?;
            if is_compact(json.as_bytes()) {
                // Valid already: handed to serde_json's own `RawValue` the
                // way its deserializer hands it over, so it is not parsed
                // a third time.
                return Ok(Body(Arc::new(known_valid(json)?)));
            }
            // Read it again, this time through the transcoder.
            return Body::from_valid(&json).map_err(de::Error::custom);
        }
        // An object from a deserializer that does not know newtypes.
        out.push(b'{');
        Compact::map_entries(&mut out, &key.0, map)?;
        from_compact(out)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Body, E> {
        self.transcode(|c| c.visit_bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Body, E> {
        self.transcode(|c| c.visit_i64(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Body, E> {
        self.transcode(|c| c.visit_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Body, E> {
        self.transcode(|c| c.visit_f64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Body, E> {
        self.transcode(|c| c.visit_str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Body, E> {
        self.transcode(|c| Visitor::<'de>::visit_unit(c))
    }

    fn visit_none<E: de::Error>(self) -> Result<Body, E> {
        self.transcode(|c| Visitor::<'de>::visit_unit(c))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Body, D::Error> {
        self.visit_newtype_struct(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Body, A::Error> {
        self.transcode(|c| c.visit_seq(seq))
    }
}

impl BodyVisitor {
    /// A body from one value visited by [`Compact`].
    fn transcode<E: de::Error>(
        self,
        visit: impl FnOnce(Compact<'_>) -> Result<(), E>,
    ) -> Result<Body, E> {
        let mut out = Vec::new();
        visit(Compact(&mut out))?;
        from_compact(out)
    }
}

/// `json`, known to be one valid compact JSON value, as serde_json's
/// `RawValue`, handed over the way serde_json's own deserializer hands a
/// value's raw text (its token, then the text; see [`RawText`]): taken as
/// it is, not parsed again. Should serde_json stop taking it this way, the
/// error sends callers to their validating path.
fn known_valid<'de, E: de::Error>(json: Cow<'de, str>) -> Result<Box<RawValue>, E> {
    Box::<RawValue>::deserialize(MapAccessDeserializer::new(RawText(
        Some(json),
        std::marker::PhantomData,
    )))
}

/// Replays serde_json's raw-value map (its token, then the text) for
/// serde_json's `RawValue` to take.
struct RawText<'de, E>(Option<Cow<'de, str>>, std::marker::PhantomData<E>);

impl<'de, E: de::Error> MapAccess<'de> for RawText<'de, E> {
    type Error = E;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        if self.0.is_none() {
            return Ok(None);
        }
        seed.deserialize(BorrowedStrDeserializer::new(RAW_VALUE_TOKEN))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0.take() {
            Some(Cow::Borrowed(text)) => seed.deserialize(BorrowedStrDeserializer::new(text)),
            Some(Cow::Owned(text)) => seed.deserialize(text.into_deserializer()),
            None => Err(de::Error::custom("no raw value")),
        }
    }
}

/// A string borrowed from the input where the deserializer can lend it
/// (`Cow<str>` itself always copies).
pub(crate) struct Text<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
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
    /// Writes a map's entries from its first key on (the `{` is written)
    /// and closes it.
    fn map_entries<'de, A: MapAccess<'de>>(
        out: &mut Vec<u8>,
        first: &str,
        mut map: A,
    ) -> Result<(), A::Error> {
        serde_json::to_writer(&mut *out, first).map_err(de::Error::custom)?;
        out.push(b':');
        map.next_value_seed(Compact(&mut *out))?;
        while let Some(Text(key)) = map.next_key()? {
            out.push(b',');
            serde_json::to_writer(&mut *out, key.as_ref()).map_err(de::Error::custom)?;
            out.push(b':');
            map.next_value_seed(Compact(&mut *out))?;
        }
        out.push(b'}');
        Ok(())
    }

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
        match map.next_key::<Text<'de>>()? {
            Some(key) => Compact::map_entries(self.0, &key.0, map),
            None => {
                self.0.push(b'}');
                Ok(())
            }
        }
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

    /// What the transcoder alone writes for `json`: the compact form.
    fn transcoded(json: &str) -> String {
        let mut out = Vec::new();
        Compact(&mut out)
            .deserialize(&mut serde_json::Deserializer::from_str(json))
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// JSON text in any spelling: spaces, escapes (needed, optional, upper
    /// or lower hex), integers of any length, `-0`, fractions, exponents.
    fn any_json() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let space = prop::sample::select(vec!["", "", "", " ", "\n\t "]);
        let string = prop::collection::vec(
            prop_oneof![
                "[a-zé\u{7f}😀 ]{1,4}".prop_map(|s| s),
                prop::sample::select(vec![
                    r#"\""#,
                    r"\\",
                    r"\/",
                    r"\b",
                    r"\f",
                    r"\n",
                    r"\r",
                    r"\t",
                    r"\u0000",
                    r"\u001f",
                    r"\u001F",
                    r"\u0008",
                    r"\u000a",
                    r"\u0041",
                    r"\u00e9",
                    r"\u00E9",
                    r"\u007f",
                    r"\ud83d\ude00",
                ])
                .prop_map(str::to_owned),
            ],
            0..4,
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat()));
        let number = prop_oneof![
            "-?(0|[1-9][0-9]{0,21})",
            "-?(0|[1-9][0-9]{0,3})\\.[0-9]{1,20}",
            "-?[1-9](\\.[0-9]{1,5})?[eE][-+]?[0-9]{1,3}",
        ];
        let leaf = prop_oneof![
            string.clone(),
            number,
            prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_owned),
        ];
        leaf.prop_recursive(4, 32, 4, move |inner| {
            let pair = (space.clone(), string.clone(), space.clone(), inner.clone());
            prop_oneof![
                prop::collection::vec((space.clone(), inner), 0..4).prop_map(|items| {
                    let items: Vec<String> =
                        items.into_iter().map(|(s, v)| format!("{s}{v}")).collect();
                    format!("[{}]", items.join(","))
                }),
                prop::collection::vec(pair, 0..4).prop_map(|entries| {
                    let entries: Vec<String> = entries
                        .into_iter()
                        .map(|(s, k, t, v)| format!("{s}{k}{t}:{v}"))
                        .collect();
                    format!("{{{}}}", entries.join(","))
                }),
            ]
        })
    }

    proptest::proptest! {
        /// Text taken as it is (the fast path) is exactly what the
        /// transcoder would have written, and a body read any way (raw
        /// text, or the buffered content of a tagged frame) is the
        /// transcoder's compact form.
        #[test]
        fn a_body_is_the_compact_form_however_it_is_read(json in any_json()) {
            let Ok(expected) = std::panic::catch_unwind(|| transcoded(&json)) else {
                // Not JSON serde_json takes (a lone surrogate, a number
                // out of range): no body either way.
                proptest::prop_assert!(Body::from_json(&json).is_err());
                return Ok(());
            };
            if is_compact(json.as_bytes()) {
                proptest::prop_assert_eq!(&json, &expected);
            }
            let body = Body::from_json(&json).unwrap();
            proptest::prop_assert_eq!(body.json(), expected.as_str());
            let framed = format!(r#"{{"type":"m","body":{json}}}"#);
            #[derive(Deserialize)]
            #[serde(tag = "type")]
            enum Frame {
                #[serde(rename = "m")]
                M { body: Body },
            }
            let Frame::M { body: tagged } = serde_json::from_str(&framed).unwrap();
            proptest::prop_assert_eq!(tagged.json(), expected.as_str());
            let value: Value = serde_json::from_str(&json).unwrap();
            let from_value: Body = serde_json::from_value(value.clone()).unwrap();
            proptest::prop_assert_eq!(from_value, Body::new(value));
        }
    }

    #[test]
    fn compact_text_is_taken_as_it_is_and_other_text_is_not() {
        for compact in [
            r#"{"a":[1,-2,true,false,null,"x\"\\\n\u0001é"],"b":{}}"#,
            "123456789012345678",
            "-123456789012345678",
            "0",
            r#""\u001f\u000b""#,
        ] {
            assert!(is_compact(compact.as_bytes()), "{compact}");
            assert_eq!(transcoded(compact), compact);
        }
        for other in [
            " 1",
            "[1, 2]",
            "1.0",
            "1e3",
            "-0",
            "1234567890123456789",
            r#""\/""#,
            r#""\u0041""#,
            r#""\u001F""#,
            r#""\u000a""#,
        ] {
            assert!(!is_compact(other.as_bytes()), "{other}");
        }
    }

    /// `Body::text` and the compact path of the deserializer rely on
    /// serde_json taking known-valid text without parsing it: should a
    /// serde_json release stop, they fall back to validating, which is
    /// correct but slow; this says so.
    #[test]
    fn serde_json_takes_known_valid_text_as_it_is() {
        let raw = known_valid::<serde_json::Error>(Cow::Owned(r#""chat""#.to_owned())).unwrap();
        assert_eq!(raw.get(), r#""chat""#);
        let raw = known_valid::<serde_json::Error>(Cow::Borrowed("[1,{}]")).unwrap();
        assert_eq!(raw.get(), "[1,{}]");
    }

    #[test]
    fn exactly_quotes_backslashes_and_control_characters_need_escaping() {
        for b in 0..=u8::MAX {
            let expected = b < 0x20 || b == b'"' || b == b'\\';
            assert_eq!(escape_distance(b) == 0, expected, "{b:#04x}");
            assert_eq!(any_needs_escape(&[b; 70]), expected, "{b:#04x}");
        }
        // One such byte anywhere in texts of every length around the
        // vector widths is found (the vector loop and its remainder).
        for len in 1..=140 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut text = vec![b'x'; len];
                    text[at] = special;
                    assert!(any_needs_escape(&text), "{len} {at} {special:#04x}");
                }
            }
            assert!(!any_needs_escape(&vec![0x7f; len]), "{len}");
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
