//! `wavelake` end to end, linked into one test binary: the real server
//! process on loopback (on a local directory, S3 on moto and Azure on
//! Azurite) and the command line, driven over HTTP and by real clients
//! (the Python Delta Sharing client, DuckDB, the npm package in Node, the
//! web app in Chromium, schemathesis), and a Ballista cluster of real
//! scheduler and executor processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod api_fuzz;
mod authorization;
mod cli;
mod cluster;
mod common;
mod concurrent_history;
mod crash;
mod durability;
mod events;
mod flight;
mod ingest;
mod limits;
mod maintenance;
mod modules;
mod result_cache;
mod round_trips;
mod several_servers;
mod sharing;
mod transactions;
mod web_app;
