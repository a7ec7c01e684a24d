//! What the server benchmarks share: a real `wavelake serve` on a free
//! loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The admin token every benchmark server is started with.
pub const ADMIN: &str = "benchmark-admin-token-0123456789";

/// Starts `binary serve --listen 127.0.0.1:0 ARGS…` with the admin token
/// and `RUST_LOG=log`; the child and the URL it listens on.
pub fn start_server(binary: &str, args: &[&std::ffi::OsStr], log: &str) -> (Child, String) {
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("WAVELAKE_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .trim_start_matches("wavelake listening on ")
        .to_owned();
    (child, url)
}

/// The peak resident set of process `pid`, in MB (NaN when unknown).
pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The whole number in environment variable `name`, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0 to 1) of `samples` (sorted in place); NaN for none.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

/// The directory named by environment variable `name`, or `default` under
/// the home directory.
fn home_dir_or(name: &str, default: &str) -> std::path::PathBuf {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(default)
        })
}

/// Runs `tests/interop/bench_peers.py ARGS…` in the project's Python
/// environment: the JSON lines it printed.
pub fn python_peers(args: &[String]) -> Vec<serde_json::Value> {
    let venv = home_dir_or("WAVELAKE_VENV", ".cache/wavelake/venv");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/bench_peers.py");
    let output = Command::new(venv.join("bin/python"))
        .arg(script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "bench_peers.py {args:?} failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// All eight TPC-H tables at `scale` as Delta tables written by PyPI
/// `deltalake` under `DIR/delta` (generated once into the scratch dir,
/// shared by every TPC-H benchmark): `DIR`.
pub fn tpch_data(scale: &str) -> std::path::PathBuf {
    let scratch = home_dir_or("WAVELAKE_TEST_SCRATCH", ".cache/wavelake/scratch");
    let data = scratch.join(format!("tpch-all-sf{scale}"));
    python_peers(&[
        "tpch-all".to_owned(),
        data.to_str().unwrap().to_owned(),
        scale.to_owned(),
    ]);
    data
}

/// A benchmark's `wavelake serve` with `config` (TOML), answering SQL
/// with a long timeout; killed when dropped.
pub struct SqlServer {
    child: std::process::Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl SqlServer {
    /// Starts `binary` with `config` written to `path`.
    pub fn start(binary: &str, path: &std::path::Path, config: &str) -> Self {
        std::fs::write(path, config).unwrap();
        let (child, url) = start_server(binary, &["--config".as_ref(), path.as_os_str()], "error");
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(3600))
            .build()
            .unwrap();
        Self { child, url, http }
    }

    /// The value of metric `name` in `/metrics` (NaN when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .and_then(|response| response.text())
            .unwrap_or_default();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(f64::NAN)
    }

    /// The rows (JSON objects) `sql` answers in namespace `namespace`.
    pub fn rows(&self, sql: &str, namespace: &str) -> Vec<serde_json::Value> {
        let response = self
            .http
            .post(format!("{}/api/v1/sql", self.url))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"sql": sql, "namespace": namespace}))
            .send()
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().unwrap();
        assert!(status.is_success(), "{sql}: {body}");
        body["rows"].as_array().unwrap().clone()
    }
}

impl Drop for SqlServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
