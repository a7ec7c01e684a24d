//! Wavelake's integration tests, linked into one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bad_input;
mod concurrency;
mod faults;
mod fuzz_smoke;
mod golden;
mod hot_data;
mod http;
mod interop;
mod kernel_data;
mod maintenance;
mod metadata;
mod namespaces;
mod npm_group;
mod npm_package;
mod plan_codec;
mod profile;
mod read_estimate;
mod result_cache;
mod row_ranges;
mod scan_statistics;
mod semi_join_reduction;
mod shared_subplan;
mod slt;
mod snapshot_cache;
mod spread_queries;
mod sql_writes;
mod storage_suite;
mod string_views;
mod time_travel;
mod writes;
