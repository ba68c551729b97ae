//! Frame decoding from arbitrary bytes, both directions.
//!
//! Properties: decoding never panics; whenever a first decode succeeds,
//! encoding the frame and decoding it again gives the same frame, and that
//! encoding is a fixed point (encode(decode(encode(f))) == encode(f)).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep_core::wire::{decode_client, decode_server, encode_client, encode_server};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_client(data) {
        let bytes = encode_client(&frame);
        let again = decode_client(&bytes)
            .unwrap_or_else(|e| panic!("client frame {frame:?} re-decode failed: {e}"));
        assert_eq!(again, frame, "client frame round trip");
        assert_eq!(encode_client(&again), bytes, "client encoding is stable");
    }
    if let Ok(frame) = decode_server(data) {
        let bytes = encode_server(&frame);
        let again = decode_server(&bytes)
            .unwrap_or_else(|e| panic!("server frame {frame:?} re-decode failed: {e}"));
        assert_eq!(again, frame, "server frame round trip");
        assert_eq!(encode_server(&again), bytes, "server encoding is stable");
    }
});
