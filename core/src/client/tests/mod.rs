//! Client tests: a harness with an explicit clock, named scenarios with
//! snapshot traces, and a property test over random inputs.

mod chart;
mod harness;
mod lifecycle;
mod prop;
mod scenarios;
mod sync;
