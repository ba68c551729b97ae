//! Server events as the Socket.IO packets they arrived in: the driver
//! hands a burst over as the packets' own JSON text (`["name", payload]`,
//! what follows the packet type), so nothing is parsed or encoded again
//! in JavaScript, and each packet is decoded on its own here.

use lockstep_core::wire::json::{JsonError, Reader};
use lockstep_core::wire::socketio::decode_server_event;
use lockstep_core::wire::{DecodeError, MAX_FRAME_BYTES, ServerFrame};

/// Splits `packets`, byte strings written one after another, at
/// `lengths` (in bytes); the bytes after the last one come back too.
/// `None` when the lengths run past the end.
pub fn split<'a>(packets: &'a [u8], lengths: &[u32]) -> Option<(Vec<&'a [u8]>, &'a [u8])> {
    let mut out = Vec::with_capacity(lengths.len());
    let mut rest = packets;
    for &len in lengths {
        let (head, tail) = rest.split_at_checked(usize::try_from(len).ok()?)?;
        out.push(head);
        rest = tail;
    }
    Some((out, rest))
}

/// Decodes one event packet, `["name", payload, ...]`: its first argument
/// is the payload (absent: `null`), further ones are ignored, as a
/// `socket.on(name, (payload) => ...)` handler would. `Ok(None)` for an
/// event outside the contract.
///
/// # Errors
///
/// [`DecodeError`] for a packet that is not such an array (or not UTF-8),
/// a payload over the frame limit, or one that does not fit its event.
pub fn decode_packet(packet: &[u8]) -> Result<Option<ServerFrame>, DecodeError> {
    let packet = std::str::from_utf8(packet)
        .map_err(|e| DecodeError::Malformed(format!("event packet: {e}")))?;
    // The common shape, `["name",{...}]`, is decoded without a first pass
    // over the payload: a payload slice that is not exactly one value
    // fails to decode and takes the general path below.
    if let Some((name, payload)) = split_simple(packet) {
        if let Ok(Some(frame)) =
            checked_len(payload).and_then(|()| decode_server_event(name, payload))
        {
            return Ok(Some(frame));
        }
    }
    let malformed = |e: JsonError| DecodeError::Malformed(format!("event packet: {e}"));
    let mut r = Reader::new(packet);
    let (mut name, mut payload, mut index) = (None, None, 0);
    r.array(|r| {
        match index {
            0 => name = Some(r.string()?),
            1 => payload = Some(r.raw()?),
            _ => r.skip()?,
        }
        index += 1;
        Ok(())
    })
    .and_then(|()| r.end())
    .map_err(malformed)?;
    let Some(name) = name else {
        return Err(DecodeError::Malformed(
            "event packet: not an array of an event name and its arguments".to_owned(),
        ));
    };
    let payload = payload.unwrap_or("null");
    checked_len(payload)?;
    decode_server_event(&name, payload)
}

/// `["name", payload]` with a name free of escapes, as `(name, payload)`;
/// the payload slice is not checked here.
fn split_simple(packet: &str) -> Option<(&str, &str)> {
    let rest = packet.trim().strip_prefix("[\"")?.strip_suffix(']')?;
    let end = rest.find(['"', '\\'])?;
    let name = rest.get(..end)?;
    let rest = rest.get(end..)?.strip_prefix('"')?.trim_start();
    Some((name, rest.strip_prefix(',')?.trim()))
}

/// Refuses a payload over the transport's frame limit before parsing it.
pub fn checked_len(json: &str) -> Result<(), DecodeError> {
    if json.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge {
            len: json.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_split_the_bytes() {
        let parts: [&[u8]; 3] = [b"[1]", "[\"é\"]".as_bytes(), b"[]"];
        let text = parts.concat();
        assert_eq!(
            split(&text, &[3, 6, 2]).unwrap(),
            (parts.to_vec(), &b""[..])
        );
        assert_eq!(
            split(&text, &[3, 6]).unwrap(),
            (parts[..2].to_vec(), &b"[]"[..])
        );
        // Lengths that run past the end: refused.
        assert!(split(&text, &[3, 6, 3]).is_none());
        assert!(split(b"", &[1]).is_none());
        assert_eq!(split(b"", &[]).unwrap(), (vec![], &b""[..]));
    }

    #[test]
    fn the_first_argument_is_the_payload() {
        let typing = r#"{"channelId":"general","userId":"bob","active":true}"#;
        let simple = format!(r#"["typing",{typing}]"#);
        let spaced = format!(" [ \"typing\" , {typing} ] ");
        let extra = format!(r#"["typing",{typing},{{"more":1}}]"#);
        let escaped = format!(r#"["typ\u0069ng",{typing}]"#);
        let expected = decode_server_event("typing", typing).unwrap();
        assert!(expected.is_some());
        for packet in [simple, spaced, extra, escaped] {
            assert_eq!(
                decode_packet(packet.as_bytes()).unwrap(),
                expected,
                "{packet}"
            );
        }
        assert_eq!(decode_packet(br#"["not:ours",{"a":1}]"#).unwrap(), None);
    }

    #[test]
    fn bad_packets_are_typed_errors() {
        for bad in [
            "",
            "[",
            "[]",
            "{}",
            r#"["typing""#,
            r#"["typing",{"channelId":"general"}]"#,
            r#"["typing"]"#,
            r#"["not:ours",{]"#,
            r#"["typing",{"channelId":"general","userId":"bob","active":true}"#,
        ] {
            assert!(decode_packet(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(decode_packet(b"[\"typing\",\"\xff\"]").is_err());
        let big = format!(r#"["typing","{}"]"#, "x".repeat(MAX_FRAME_BYTES));
        assert!(matches!(
            decode_packet(big.as_bytes()),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
