//! The trace of a world: a running hash of everything that happened, and,
//! when asked for, the same events as readable lines.
//!
//! The hash is what proves determinism (one seed, one hash, on every run and
//! every machine); it is cheap enough to keep on in every run. The lines are
//! for `replay --trace` and for snapshot-reviewed scenarios.

use std::fmt::Write as _;

use lockstep_core::Instant;
use lockstep_core::wire::{Ack, ClientFrame, LogEvent, ServerFrame};

/// FNV-1a over 64-bit words: stable across platforms and Rust versions
/// (unlike `std`'s `DefaultHasher`), and fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Mixes one word in.
    pub fn mix(&mut self, word: u64) {
        self.mix_bytes(&word.to_le_bytes());
    }

    fn mix_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Mixes a string in (ids, reasons).
    pub fn mix_str(&mut self, s: &str) {
        self.mix_bytes(s.as_bytes());
        self.mix(s.len() as u64);
    }

    /// Mixes in what `value` displays, as [`mix_str`](TraceHash::mix_str)
    /// would mix its text, without building the text.
    pub fn mix_display(&mut self, value: &impl std::fmt::Display) {
        let mut sink = HashSink { hash: self, len: 0 };
        // Writing into the sink cannot fail.
        let _ = write!(sink, "{value}");
        let len = sink.len;
        self.mix(len as u64);
    }

    /// The digest so far.
    #[must_use]
    pub fn value(self) -> u64 {
        self.0
    }
}

/// Text written into it goes into the hash byte by byte, and is counted.
struct HashSink<'a> {
    hash: &'a mut TraceHash,
    len: usize,
}

impl std::fmt::Write for HashSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.hash.mix_bytes(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// Writes `n` in decimal, as `{}` would, whatever width or fill the
/// formatter it is written into was asked for (an op's or an id's text
/// is written piece by piece into every trace hash).
pub(crate) fn write_decimal(out: &mut impl std::fmt::Write, n: u64) -> std::fmt::Result {
    // The digits on the stack, last first: the formatting machinery cost
    // more than the digits (two numbers in nearly every op).
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
    // ASCII digits are always UTF-8; the fallback is never taken.
    out.write_str(std::str::from_utf8(&digits[at..]).unwrap_or_default())
}

/// A world's trace: always a hash, optionally readable lines.
#[derive(Debug, Default)]
pub struct Trace {
    hash: TraceHash,
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps readable lines when `lines` is true.
    #[must_use]
    pub fn new(lines: bool) -> Self {
        Trace {
            hash: TraceHash::default(),
            lines: lines.then(Vec::new),
        }
    }

    /// Whether readable lines are kept (callers skip formatting otherwise).
    #[must_use]
    pub fn wants_lines(&self) -> bool {
        self.lines.is_some()
    }

    /// Mixes words into the hash.
    pub fn mix(&mut self, words: &[u64]) {
        for w in words {
            self.hash.mix(*w);
        }
    }

    /// Mixes a string into the hash.
    pub fn mix_str(&mut self, s: &str) {
        self.hash.mix_str(s);
    }

    /// Mixes what `value` displays into the hash, as `mix_str` of its text.
    pub fn mix_display(&mut self, value: &impl std::fmt::Display) {
        self.hash.mix_display(value);
    }

    /// Adds a readable line (built only when lines are kept).
    #[inline]
    pub fn line(&mut self, now: Instant, text: impl FnOnce() -> String) {
        if let Some(lines) = &mut self.lines {
            Self::push_line(lines, now, text());
        }
    }

    /// Out of line: most runs keep no lines, and their steps should not
    /// carry the formatting.
    #[inline(never)]
    fn push_line(lines: &mut Vec<String>, now: Instant, text: String) {
        lines.push(format!("{:>9}  {}", now.to_string(), text));
    }

    /// The hash of everything so far.
    #[must_use]
    pub fn hash(&self) -> u64 {
        self.hash.value()
    }

    /// The readable lines, if kept.
    #[must_use]
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }
}

/// A short, stable code per client frame kind for the hash.
#[must_use]
pub fn client_frame_digest(f: &ClientFrame) -> [u64; 3] {
    match f {
        ClientFrame::Hello { version, .. } => [1, u64::from(*version), 0],
        ClientFrame::Join { req, since, .. } => [2, req.0, since.map_or(u64::MAX, |s| s.0)],
        ClientFrame::Leave { req, .. } => [3, req.0, 0],
        ClientFrame::Send { req, body, .. } => [4, req.0, body.encoded_len() as u64],
        ClientFrame::Update { req, .. } => [5, req.0, 0],
        ClientFrame::Delete { req, .. } => [6, req.0, 0],
        ClientFrame::History { req, after, .. } => [7, req.0, after.map_or(0, |s| s.0)],
        ClientFrame::Read { req, up_to, .. } => [8, req.0, up_to.0],
        ClientFrame::Typing { active, .. } => [9, u64::from(*active), 0],
        ClientFrame::Ping { nonce } => [10, *nonce, 0],
    }
}

/// A short, stable code per server frame kind for the hash.
#[must_use]
pub fn server_frame_digest(f: &ServerFrame) -> [u64; 3] {
    match f {
        ServerFrame::Welcome { .. } => [21, 0, 0],
        ServerFrame::Refused { .. } => [22, 0, 0],
        ServerFrame::Ack { req, body } => [23, req.0, ack_digest(body)],
        ServerFrame::Nack { req, error } => [24, req.0, error.code as u64],
        ServerFrame::MessageNew(m) => [25, m.seq.0, 0],
        ServerFrame::MessageUpdated(m) => [26, m.seq.0, 0],
        ServerFrame::MessageDeleted(m) => [27, m.seq.0, 0],
        ServerFrame::PresenceJoin(_) => [28, 0, 0],
        ServerFrame::PresenceLeave(_) => [29, 0, 0],
        ServerFrame::Typing(t) => [30, u64::from(t.active), 0],
        ServerFrame::Read(r) => [31, r.up_to.0, 0],
        ServerFrame::Pong { nonce } => [32, *nonce, 0],
    }
}

fn ack_digest(a: &Ack) -> u64 {
    match a {
        Ack::Join(j) => j.head_seq.0 << 8 | j.events.len() as u64,
        Ack::Leave => 1,
        Ack::Send(s) => s.seq.0,
        Ack::Update { seq } | Ack::Delete { seq } => seq.0,
        Ack::History(h) => h.head_seq.0 << 8 | h.events.len() as u64,
        Ack::Read { up_to } => up_to.0,
        Ack::Typing => 2,
    }
}

/// One readable line for a client frame.
#[must_use]
pub fn fmt_client_frame(f: &ClientFrame) -> String {
    let mut s = String::new();
    let _ = match f {
        ClientFrame::Hello { version, .. } => write!(s, "hello v{version}"),
        ClientFrame::Join {
            req,
            channel_id,
            epoch,
            since,
        } => {
            let pos = match (epoch, since) {
                (Some(e), Some(q)) => format!(" since {e}{q}"),
                (None, Some(q)) => format!(" since {q}"),
                _ => String::new(),
            };
            write!(s, "join {channel_id} r{}{pos}", req.0)
        }
        ClientFrame::Leave { req, channel_id } => write!(s, "leave {channel_id} r{}", req.0),
        ClientFrame::Send {
            req,
            channel_id,
            client_msg_id,
            body,
        } => write!(
            s,
            "send {channel_id} r{} cm={client_msg_id} ({} B)",
            req.0,
            body.encoded_len()
        ),
        ClientFrame::Update {
            req,
            channel_id,
            message_id,
            ..
        } => write!(s, "update {channel_id} r{} {message_id}", req.0),
        ClientFrame::Delete {
            req,
            channel_id,
            message_id,
        } => write!(s, "delete {channel_id} r{} {message_id}", req.0),
        ClientFrame::History {
            req,
            channel_id,
            after,
            limit,
        } => write!(
            s,
            "history {channel_id} r{} after {} limit {}",
            req.0,
            after.unwrap_or_default(),
            limit.map_or("-".into(), |l| l.to_string())
        ),
        ClientFrame::Read {
            req,
            channel_id,
            up_to,
        } => write!(s, "read {channel_id} r{} up to {up_to}", req.0),
        ClientFrame::Typing {
            channel_id, active, ..
        } => write!(s, "typing {channel_id} {active}"),
        ClientFrame::Ping { nonce } => write!(s, "ping {nonce}"),
    };
    s
}

/// One readable line for a log event.
#[must_use]
pub fn fmt_log_event(e: &LogEvent) -> String {
    match e {
        LogEvent::Message(m) => format!(
            "{} {} new {} by {} cm={}",
            m.channel_id, m.seq, m.message_id, m.author_id, m.client_msg_id
        ),
        LogEvent::Updated(u) => format!("{} {} edit of {}", u.channel_id, u.seq, u.message_id),
        LogEvent::Deleted(d) => format!("{} {} delete of {}", d.channel_id, d.seq, d.message_id),
    }
}

/// One readable line for a server frame.
#[must_use]
pub fn fmt_server_frame(f: &ServerFrame) -> String {
    match f {
        ServerFrame::Welcome { user_id, .. } => format!("welcome {user_id}"),
        ServerFrame::Refused { error } => format!("refused {}", error.code),
        ServerFrame::Ack { req, body } => format!("ack r{} {}", req.0, fmt_ack(body)),
        ServerFrame::Nack { req, error } => {
            format!("nack r{} {} ({})", req.0, error.code, error.message)
        }
        ServerFrame::MessageNew(m) => format!(
            "message:new {} {} {} by {} cm={}",
            m.channel_id, m.seq, m.message_id, m.author_id, m.client_msg_id
        ),
        ServerFrame::MessageUpdated(u) => {
            format!(
                "message:updated {} {} {}",
                u.channel_id, u.seq, u.message_id
            )
        }
        ServerFrame::MessageDeleted(d) => {
            format!(
                "message:deleted {} {} {}",
                d.channel_id, d.seq, d.message_id
            )
        }
        ServerFrame::PresenceJoin(p) => format!("presence:join {} {}", p.channel_id, p.user_id),
        ServerFrame::PresenceLeave(p) => format!("presence:leave {} {}", p.channel_id, p.user_id),
        ServerFrame::Typing(t) => format!("typing {} {} {}", t.channel_id, t.user_id, t.active),
        ServerFrame::Read(r) => format!("message:read {} {} {}", r.channel_id, r.user_id, r.up_to),
        ServerFrame::Pong { nonce } => format!("pong {nonce}"),
    }
}

fn fmt_ack(a: &Ack) -> String {
    match a {
        Ack::Join(j) => format!(
            "join {} {}{} members={} events={} {}",
            j.channel_id,
            j.epoch,
            j.head_seq,
            j.members.len(),
            j.events.len(),
            if j.recovered {
                "recovered"
            } else {
                "not recovered"
            }
        ),
        Ack::Leave => "leave".into(),
        Ack::Send(s) => format!("send {} {}", s.seq, s.message_id),
        Ack::Update { seq } => format!("update {seq}"),
        Ack::Delete { seq } => format!("delete {seq}"),
        Ack::History(h) => format!(
            "history {} {}{} events={}{}",
            h.channel_id,
            h.epoch,
            h.head_seq,
            h.events.len(),
            if h.more { " more" } else { "" }
        ),
        Ack::Read { up_to } => format!("read {up_to}"),
        Ack::Typing => "typing".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::write_decimal;

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        let powers = (0..20).flat_map(|e| {
            let p = 10u64.pow(e);
            [p - 1, p, p + 1]
        });
        let values = [0, 7, 9, 10, 99, 100, 65_536, u64::from(u32::MAX), u64::MAX];
        for n in values.into_iter().chain(powers).chain(0..1000) {
            let mut out = String::new();
            write_decimal(&mut out, n).unwrap();
            assert_eq!(out, n.to_string());
        }
    }
}
