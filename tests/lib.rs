//! Cross-crate integration and interop tests for lockstep; the tests live
//! in `tests/`, the Node scripts in `js/` (install them with
//! `scripts/js-setup`).
