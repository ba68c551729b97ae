//! The server machine under structured input; see `lockstep_fuzz::server` for
//! the operations and the invariants checked after each.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: lockstep_fuzz::server::Input| {
    lockstep_fuzz::server::run(input);
});
