//! Frame decoding from arbitrary bytes, both directions.
//!
//! Properties: decoding never panics; whenever a first decode succeeds,
//! encoding the frame and decoding it again gives the same frame, and that
//! encoding is a fixed point (encode(decode(encode(f))) == encode(f)).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_core::wire::{decode_client, decode_server, encode_client, encode_server};
use serde_json::Value;

/// Whether two JSON values are equal up to a float's last bits: the
/// comparison used while the known `float-roundtrip` bug is tolerated.
fn near(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || ((x - y) / x.abs().max(y.abs())).abs() < 1e-14,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| near(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| near(v, w)))
        }
        _ => a == b,
    }
}

/// Checks one direction's round trip.
fn check<F: PartialEq + std::fmt::Debug + serde::Serialize>(
    side: &str,
    frame: &F,
    encode: impl Fn(&F) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<F, lockstep_core::wire::DecodeError>,
) {
    let bytes = encode(frame);
    let again =
        decode(&bytes).unwrap_or_else(|e| panic!("{side} frame {frame:?} re-decode failed: {e}"));
    if lockstep_fuzz::allowed("float-roundtrip") {
        let (a, b) = (serde_json::to_value(frame), serde_json::to_value(&again));
        if let (Ok(a), Ok(b)) = (a, b) {
            assert!(
                near(&a, &b),
                "{side} frame round trip: {frame:?} != {again:?}"
            );
        }
        return;
    }
    assert_eq!(&again, frame, "{side} frame round trip");
    assert_eq!(encode(&again), bytes, "{side} encoding is stable");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_client(data) {
        check("client", &frame, encode_client, decode_client);
    }
    if let Ok(frame) = decode_server(data) {
        check("server", &frame, encode_server, decode_server);
    }
});
