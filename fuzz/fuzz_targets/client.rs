//! The client machine under structured input; see `lockstep_fuzz::client` for
//! the operations and the invariants checked after each.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: lockstep_fuzz::client::Input| {
    lockstep_fuzz::client::run(input);
});
