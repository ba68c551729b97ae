//! A small JSON reader and writer for the client's side of the wire: the
//! frames a client receives and the payloads it sends, read and written
//! without serde's per-type code, so the browser module (`adapters/wasm`)
//! carries one small parser instead of a derived one per message shape.
//!
//! It reads what serde_json reads for the contract's shapes (whitespace,
//! escapes, unknown fields skipped, duplicate fields refused, `null` for an
//! absent option) and writes what serde_json writes (compact, the same
//! escapes). Bodies come out in the one canonical compact form
//! (`Body`'s). The serde derives on the wire types stay the definition
//! (the server encodes with them); property tests hold this module to
//! them.

use std::borrow::Cow;

use crate::wire::body::any_needs_escape;

/// Why JSON text could not be read as the shape asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The text is not JSON of the expected kind at byte `at`.
    #[error("{what} at byte {at}")]
    Syntax {
        /// What was expected or wrong.
        what: &'static str,
        /// The byte offset in the text read.
        at: usize,
    },
    /// A field is missing, repeated or does not fit its type.
    #[error("field `{field}`: {problem}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What was wrong with it.
        problem: String,
    },
}

type Result<T> = std::result::Result<T, JsonError>;

/// A cursor over JSON text. Every method skips the whitespace before what
/// it reads; none panics on any input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    #[must_use]
    pub fn new(text: &'a str) -> Self {
        Reader { text, pos: 0 }
    }

    fn err<T>(&self, what: &'static str) -> Result<T> {
        Err(JsonError::Syntax { what, at: self.pos })
    }

    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.text.get(from..to).unwrap_or_default()
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    /// The next byte after whitespace (JSON's four), not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(b) = self.byte(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn eat(&mut self, b: u8, what: &'static str) -> Result<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// Checks that only whitespace is left.
    ///
    /// # Errors
    ///
    /// [`JsonError::Syntax`] for anything after the value.
    pub fn end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.err("trailing characters"),
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<()> {
        let end = self.pos + word.len();
        if self.text.as_bytes().get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(())
        } else {
            self.err("expected a value")
        }
    }

    /// Reads an object, handing each key to `field`, which must read (or
    /// [`skip`](Reader::skip)) its value.
    ///
    /// # Errors
    ///
    /// What is not an object, and any error of `field`.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>,
    ) -> Result<()> {
        self.object_dyn(&mut field)
    }

    /// [`object`](Reader::object) compiled once, not once per caller: the
    /// browser module is smaller for it.
    fn object_dyn(
        &mut self,
        field: &mut dyn FnMut(&mut Self, Cow<'a, str>) -> Result<()>,
    ) -> Result<()> {
        self.eat(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.err("expected a key");
            }
            let key = self.string()?;
            self.eat(b':', "expected `:`")?;
            field(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }

    /// Reads an array, calling `item` for each element, which must read it.
    ///
    /// # Errors
    ///
    /// What is not an array, and any error of `item`.
    pub fn array(&mut self, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.array_dyn(&mut item)
    }

    fn array_dyn(&mut self, item: &mut dyn FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.eat(b'[', "expected an array")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.err("expected `,` or `]`"),
            }
        }
    }

    /// Reads a string, unescaped; borrowed when it has no escapes. Lone
    /// surrogates (`\ud800`) are refused, as serde_json refuses them for
    /// a Rust string.
    ///
    /// # Errors
    ///
    /// What is not a string, bad escapes, raw control characters.
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        self.eat(b'"', "expected a string")?;
        let start = self.pos;
        let mut out: Option<String> = None;
        let mut run = start;
        loop {
            match self.byte(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    let tail = self.slice(run, self.pos);
                    self.pos += 1;
                    return Ok(match out {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                Some(b'\\') => {
                    let s = out.get_or_insert_with(String::new);
                    s.push_str(self.text.get(run..self.pos).unwrap_or_default());
                    self.pos += 1;
                    self.escape(Some(s))?;
                    run = self.pos;
                }
                Some(b) if b < 0x20 => return self.err("control character in a string"),
                Some(_) => self.plain_run(),
            }
        }
    }

    /// Moves past the bytes of a string that need no attention: up to the
    /// next quote, backslash or control character (or the end).
    /// Eight bytes at a time while they are plain (a bit trick: a byte's
    /// high bit is set in `special` where it is a quote, a backslash or
    /// below 0x20, and the lowest such bit marks the first one), then byte
    /// by byte.
    fn plain_run(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        while let Some(chunk) = bytes.get(i..i + 8) {
            let x = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or([b'"'; 8]));
            let quote = x ^ (ONES * u64::from(b'"'));
            let backslash = x ^ (ONES * u64::from(b'\\'));
            let special = ((quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (x.wrapping_sub(ONES * 0x20) & !x))
                & HIGH;
            if special != 0 {
                self.pos = i + (special.trailing_zeros() / 8) as usize;
                return;
            }
            i += 8;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        self.pos = i + rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(rest.len());
    }

    fn hex4(&mut self) -> Result<u32> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = self.byte(self.pos).and_then(|b| char::from(b).to_digit(16));
            let Some(d) = digit else {
                return self.err("invalid \\u escape");
            };
            n = n * 16 + d;
            self.pos += 1;
        }
        Ok(n)
    }

    /// One escape after its backslash; written to `out` when given (then
    /// surrogates must pair), only checked otherwise.
    fn escape(&mut self, out: Option<&mut String>) -> Result<()> {
        let Some(b) = self.byte(self.pos) else {
            return self.err("unterminated string");
        };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let n = self.hex4()?;
                let Some(out) = out else {
                    return Ok(());
                };
                let c = if (0xD800..0xDC00).contains(&n) {
                    if self.byte(self.pos) != Some(b'\\') || self.byte(self.pos + 1) != Some(b'u') {
                        return self.err("lone surrogate in \\u escape");
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return self.err("lone surrogate in \\u escape");
                    }
                    char::from_u32(0x10000 + ((n - 0xD800) << 10) + (low - 0xDC00))
                } else {
                    char::from_u32(n)
                };
                let Some(c) = c else {
                    return self.err("lone surrogate in \\u escape");
                };
                out.push(c);
                return Ok(());
            }
            _ => return self.err("invalid escape"),
        };
        if let Some(out) = out {
            out.push(c);
        }
        Ok(())
    }

    /// Reads a string and makes a value of it with `make` (an id's
    /// validation): its error becomes a [`JsonError::Field`].
    ///
    /// # Errors
    ///
    /// What is not a string, and what `make` refuses.
    pub fn id<T, E: ToString>(
        &mut self,
        make: impl FnOnce(&str) -> std::result::Result<T, E>,
    ) -> Result<T> {
        let text = self.string()?;
        make(&text).map_err(|e| JsonError::Field {
            field: "id",
            problem: e.to_string(),
        })
    }

    /// Skips a string, checking its escapes but not that surrogates pair
    /// (serde_json skips unknown fields the same way).
    fn skip_string(&mut self) -> Result<()> {
        self.eat(b'"', "expected a string")?;
        loop {
            match self.byte(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(None)?;
                }
                Some(b) if b < 0x20 => return self.err("control character in a string"),
                Some(_) => self.plain_run(),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.byte(self.pos).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Reads a number's text (JSON's grammar: no `+`, no leading zeros, a
    /// digit on both sides of the point).
    fn number(&mut self) -> Result<&'a str> {
        self.peek();
        let start = self.pos;
        if self.byte(self.pos) == Some(b'-') {
            self.pos += 1;
        }
        let first = self.byte(self.pos);
        let int = self.digits();
        if int == 0 || (first == Some(b'0') && int > 1) {
            return self.err("invalid number");
        }
        if self.byte(self.pos) == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.byte(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.byte(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        Ok(self.slice(start, self.pos))
    }

    /// Reads a non-negative integer that fits a `u64` (no fraction or
    /// exponent), as serde_json reads one for a `u64`.
    ///
    /// # Errors
    ///
    /// Anything else.
    pub fn u64(&mut self) -> Result<u64> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return self.err("expected a non-negative integer");
        }
        let at = self.pos;
        let text = self.number()?;
        match text.parse() {
            Ok(n) => Ok(n),
            Err(_) => Err(JsonError::Syntax {
                what: "expected an integer in range",
                at,
            }),
        }
    }

    /// Reads a number as an `f64`, as serde_json does (exactly rounded);
    /// one too large for an `f64` is refused.
    ///
    /// # Errors
    ///
    /// Anything but a number in range.
    pub fn f64(&mut self) -> Result<f64> {
        let at = self.pos;
        let text = self.number()?;
        float(text).ok_or(JsonError::Syntax {
            what: "number out of range",
            at,
        })
    }

    /// Reads `true` or `false`.
    ///
    /// # Errors
    ///
    /// Anything else.
    pub fn bool(&mut self) -> Result<bool> {
        match self.peek() {
            Some(b't') => self.literal("true").map(|()| true),
            Some(b'f') => self.literal("false").map(|()| false),
            _ => self.err("expected a boolean"),
        }
    }

    /// Reads `null` if it comes next: `true` when it did.
    ///
    /// # Errors
    ///
    /// A word starting with `n` that is not `null`.
    pub fn null(&mut self) -> Result<bool> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Skips one value of any kind, checking its syntax; nesting costs a
    /// byte of a stack per level, never recursion.
    ///
    /// # Errors
    ///
    /// What is not one JSON value.
    pub fn skip(&mut self) -> Result<()> {
        let mut open = Nesting::default();
        loop {
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        open.push(b'}');
                        self.skip_key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        open.push(b']');
                        continue;
                    }
                }
                Some(b'"') => self.skip_string()?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                _ => return self.err("expected a value"),
            }
            // A value ended: close what it ends, or go on after a comma.
            loop {
                let Some(close) = open.last() else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(b) if b == close => {
                        self.pos += 1;
                        open.pop();
                    }
                    _ => return self.err("expected `,` or a closing bracket"),
                }
            }
        }
    }

    fn skip_key(&mut self) -> Result<()> {
        if self.peek() != Some(b'"') {
            return self.err("expected a key");
        }
        self.skip_string()?;
        self.eat(b':', "expected `:`")
    }

    /// The rest of the text, whitespace trimmed, without checking it: for
    /// a reader over one value already checked (a [`Fields`] field's).
    pub fn rest(&mut self) -> &'a str {
        let rest = self.text.get(self.pos..).unwrap_or_default().trim();
        self.pos = self.text.len();
        rest
    }

    /// The text of the next value, checked and skipped.
    ///
    /// # Errors
    ///
    /// What is not one JSON value.
    pub fn raw(&mut self) -> Result<&'a str> {
        self.peek();
        let start = self.pos;
        self.skip()?;
        Ok(self.slice(start, self.pos))
    }
}

/// The closing brackets of the values [`Reader::skip`] is inside: a bit
/// per level in a word while they fit (no allocation for any common
/// value), on the heap beyond.
#[derive(Default)]
struct Nesting {
    /// One bit per level, set for an object; `depth` of them in use.
    bits: u64,
    depth: u32,
    deeper: Vec<u8>,
}

impl Nesting {
    fn push(&mut self, close: u8) {
        if self.depth < 64 {
            self.bits = (self.bits << 1) | u64::from(close == b'}');
            self.depth += 1;
        } else {
            self.deeper.push(close);
        }
    }

    fn last(&self) -> Option<u8> {
        if let Some(&close) = self.deeper.last() {
            return Some(close);
        }
        (self.depth > 0).then_some(if self.bits & 1 == 1 { b'}' } else { b']' })
    }

    fn pop(&mut self) {
        if self.deeper.pop().is_none() && self.depth > 0 {
            self.bits >>= 1;
            self.depth -= 1;
        }
    }
}

/// A JSON number's text (checked by [`Reader::number`]) as an `f64`,
/// `None` when out of range. Core's parser rounds exactly, as serde_json
/// does with `float_roundtrip` (the tests hold the two together).
fn float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// The fields named in `names` of one object, as their raw text, read in
/// one pass; other fields are skipped. A field given twice is an error
/// when it is used, as serde refuses a repeated field of a struct.
#[derive(Debug)]
pub struct Fields<'a, const N: usize> {
    names: [&'static str; N],
    raw: [Option<&'a str>; N],
    repeated: [bool; N],
}

impl<'a, const N: usize> Fields<'a, N> {
    /// Reads the object that `text` is (whitespace around it allowed).
    ///
    /// # Errors
    ///
    /// Text that is not one JSON object.
    pub fn parse(text: &'a str, names: [&'static str; N]) -> Result<Self> {
        let mut r = Reader::new(text);
        let fields = Fields::read(&mut r, names)?;
        r.end()?;
        Ok(fields)
    }

    /// Reads the object at `r`.
    ///
    /// # Errors
    ///
    /// What is not a JSON object.
    pub fn read(r: &mut Reader<'a>, names: [&'static str; N]) -> Result<Self> {
        let mut raw = [None; N];
        let mut repeated = [false; N];
        r.object(|r, key| {
            match names.iter().position(|n| *n == key) {
                Some(i) => {
                    let value = r.raw()?;
                    if let (Some(slot), Some(again)) = (raw.get_mut(i), repeated.get_mut(i)) {
                        if slot.is_some() {
                            *again = true;
                        } else {
                            *slot = Some(value);
                        }
                    }
                }
                None => r.skip()?,
            }
            Ok(())
        })?;
        Ok(Fields {
            names,
            raw,
            repeated,
        })
    }

    fn name(&self, i: usize) -> &'static str {
        self.names.get(i).copied().unwrap_or_default()
    }

    /// Field `i`'s error (kept out of line: `opt` and `req` are compiled
    /// once per caller, this once).
    #[inline(never)]
    fn problem(&self, i: usize, problem: String) -> JsonError {
        JsonError::Field {
            field: self.name(i),
            problem,
        }
    }

    #[inline(never)]
    fn wrap(&self, i: usize, e: JsonError) -> JsonError {
        self.problem(i, e.to_string())
    }

    /// The raw text of field `i`, if given.
    ///
    /// # Errors
    ///
    /// [`JsonError::Field`] when it was given twice.
    #[inline(never)]
    pub fn raw(&self, i: usize) -> Result<Option<&'a str>> {
        if self.repeated.get(i).copied().unwrap_or_default() {
            return Err(self.problem(i, "duplicate field".to_owned()));
        }
        Ok(self.raw.get(i).copied().flatten())
    }

    /// Field `i` read by `read`; `None` when absent or `null`.
    ///
    /// # Errors
    ///
    /// A repeated field, or what `read` refuses.
    pub fn opt<T>(
        &self,
        i: usize,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.raw(i)? {
            None | Some("null") => Ok(None),
            Some(text) => match read(&mut Reader::new(text)) {
                Ok(v) => Ok(Some(v)),
                Err(e) => Err(self.wrap(i, e)),
            },
        }
    }

    /// Field `i` read by `read`.
    ///
    /// # Errors
    ///
    /// A missing or repeated field, or what `read` refuses.
    pub fn req<T>(&self, i: usize, read: impl FnOnce(&mut Reader<'a>) -> Result<T>) -> Result<T> {
        let Some(text) = self.raw(i)? else {
            return Err(self.problem(i, "missing field".to_owned()));
        };
        match read(&mut Reader::new(text)) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.wrap(i, e)),
        }
    }
}

// ---- writing --------------------------------------------------------------

/// Writes `s` as a JSON string, escaped as serde_json escapes it: quotes,
/// backslashes and control characters (short forms where JSON has them,
/// `\u00xx` in lowercase hex otherwise); everything else as it is.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    if !any_needs_escape(s.as_bytes()) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(run..i).unwrap_or_default());
        run = i + 1;
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

/// An `f64` as serde_json writes it (the shortest text that reads back
/// the same; `NaN` and `inf` spelled out), for messages: it spares a
/// browser module core's own float formatter.
#[must_use]
pub fn f64_text(f: f64) -> String {
    zmij::Buffer::new().format(f).to_owned()
}

/// Writes `n` in decimal.
pub fn write_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while i > 0 {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in digits.get(i..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

/// Writes an object's fields one by one, commas and quotes included. Keys
/// are the contract's names, written as they are.
#[derive(Debug)]
pub struct ObjectWriter<'o> {
    out: &'o mut String,
    empty: bool,
}

impl<'o> ObjectWriter<'o> {
    /// Opens an object on `out`.
    pub fn new(out: &'o mut String) -> Self {
        out.push('{');
        ObjectWriter { out, empty: true }
    }

    /// Writes `key` and the colon; the caller writes the value to what is
    /// returned.
    pub fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        write_str(self.key(key), value);
        self
    }

    /// A number field.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        write_u64(self.key(key), value);
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    /// A field whose value is JSON text already.
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key).push_str(json);
        self
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push('}');
    }
}

/// The compact form of one valid JSON value (text [`Reader::raw`] or
/// [`Reader::skip`] accepted): no whitespace, strings escaped as
/// [`write_str`] escapes them, numbers as serde_json writes what it reads
/// (integers that fit `u64` or `i64` as they are, any other number as the
/// shortest `f64` text). This is the canonical text of a `Body`.
///
/// # Errors
///
/// A lone surrogate in a string, or a number out of `f64`'s range.
pub fn compact(json: &str) -> Result<String> {
    let mut r = Reader::new(json);
    let mut out = String::with_capacity(json.len());
    loop {
        match r.peek() {
            None => return Ok(out),
            Some(b'"') => {
                let s = r.string()?;
                write_str(&mut out, &s);
            }
            Some(b'-' | b'0'..=b'9') => {
                let at = r.pos;
                let text = r.number()?;
                if !write_integer(&mut out, text) {
                    let Some(f) = float(text) else {
                        return Err(JsonError::Syntax {
                            what: "number out of range",
                            at,
                        });
                    };
                    out.push_str(zmij::Buffer::new().format_finite(f));
                }
            }
            Some(b) => {
                // Brackets, braces, commas, colons, and the letters of
                // `true`, `false` and `null`: ASCII in valid text.
                out.push(char::from(b));
                r.pos += 1;
            }
        }
    }
}

/// Writes a JSON integer's text as it is when serde_json reads it as an
/// integer (it fits `u64`, or `i64` when negative, and is not `-0`);
/// `false` (nothing written) when it is a float to serde_json.
fn write_integer(out: &mut String, text: &str) -> bool {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return false;
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    let fits = match digits.parse::<u64>() {
        Ok(n) => !negative || (1..=1u64 << 63).contains(&n),
        Err(_) => false,
    };
    if fits {
        out.push_str(text);
    }
    fits
}

#[cfg(test)]
mod tests;
