//! Serves the unpacked golden tables over HTTP (with Range support) for the
//! wasm32 tests, which cannot read files: unpacks `../shared/golden`, writes
//! `manifest.json` (the cases and their expected rows) beside the tables,
//! prints `WAVELAKE_TEST_HTTP_URL=<base url>` and serves until killed.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;

use wavelake_tests::golden_cases::http_cases;
use wavelake_tests::http_server::TestHttpServer;
use wavelake_tests::{golden_root, scratch_dir};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(golden) = golden_root() else {
        println!("SKIPPED: ../shared/golden is not beside the project");
        return Ok(());
    };
    let cases = http_cases(&golden);
    let root = scratch_dir().join("golden");
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_vec_pretty(&cases)?,
    )?;
    let port = std::env::args()
        .nth(1)
        .map(|p| p.parse::<u16>())
        .transpose()?
        .unwrap_or(0);
    let server = TestHttpServer::start_on(&root, port).await?;
    println!("WAVELAKE_TEST_HTTP_URL={}", server.url);
    eprintln!("serving {} cases from {}", cases.len(), root.display());
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}
