//! White-box tests of the raw engine: store kinds, validation after every operation,
//! dumps, and a small differential model.

mod basic;
mod kinds;
mod model;
mod perf;
mod whole;
