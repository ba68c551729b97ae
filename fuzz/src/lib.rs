//! Structured fuzzing of the lockstep core machines.
//!
//! Each target's input is decoded with `arbitrary` into a list of operations
//! over small pools of ids (three channels, four users, a few message ids),
//! so that frames hit channels and requests the machine really has instead
//! of bouncing off validation. After every operation the harness checks the
//! machine's own invariants, not only that it did not panic.

pub mod client;
pub mod pools;
pub mod server;

/// Most items drained from one output queue after one input. The machines
/// emit a bounded amount per input; hitting this means an output loop.
pub const DRAIN_MAX: usize = 1_000_000;

/// Whether a known core bug, named in `LOCKSTEP_FUZZ_ALLOW` (comma
/// separated), should be tolerated so fuzzing can look past it.
///
/// Known bugs and their names are listed in `fuzz/README.md`; each has a
/// crashing input under `fuzz/regressions/`. By default nothing is
/// tolerated: every broken invariant is a crash.
#[must_use]
pub fn allowed(bug: &str) -> bool {
    static ALLOW: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ALLOW
        .get_or_init(|| {
            std::env::var("LOCKSTEP_FUZZ_ALLOW")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|b| b == bug)
}
