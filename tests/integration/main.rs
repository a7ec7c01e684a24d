//! Wavelake's integration tests, linked into one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod golden;
mod time_travel;
