//! Shared helpers for Wavelake's integration tests: locating and unpacking
//! the golden Delta tables in `../shared/golden`, running queries, and
//! comparing results as multisets of rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod canonical;
pub mod faults;
pub mod golden_cases;
pub mod http_server;
pub mod markers;

pub use canonical::{canonical_rows, column_names};

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The `tests/` crate's directory in the checkout being tested. Read at run
/// time: a build shared between checkouts (one `CARGO_TARGET_DIR`) must
/// not point at another checkout's files.
pub fn tests_dir() -> PathBuf {
    let running = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    // Another crate's tests (server/) run with their own manifest dir.
    let candidates = running
        .iter()
        .flat_map(|dir| [dir.clone(), dir.join("../tests")])
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR"))]);
    for candidate in candidates {
        if candidate.join("interop").is_dir() {
            return candidate;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The golden tables folder, if `../shared` is beside the project.
pub fn golden_root() -> Option<PathBuf> {
    let root = tests_dir().join("../../shared/golden");
    root.is_dir().then(|| root.canonicalize().unwrap_or(root))
}

/// Prints why a golden test is skipped and returns `None`, or the root.
pub fn golden_or_skip(test: &str) -> Option<PathBuf> {
    let root = golden_root();
    if root.is_none() {
        eprintln!("SKIPPED {test}: ../shared/golden is not beside the project");
    }
    root
}

/// Where archives are unpacked (outside the repository, reused between runs).
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::var_os("WAVELAKE_TEST_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("wavelake-tests"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Unpacks `archive` (a `.tar.zst`) into the scratch dir once; returns the
/// folder it unpacked to.
pub fn unpack(archive: &Path) -> PathBuf {
    unpack_into(archive, &scratch_dir().join("golden"))
}

/// Unpacks `archive` (a `.tar.zst` holding one folder named like it) into
/// `base` once; returns that folder.
pub fn unpack_into(archive: &Path, base: &Path) -> PathBuf {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.zst"))
        .expect("a .tar.zst archive");
    let done = base.join(format!("{name}.unpacked"));
    let target = base.join(name);
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(base).expect("dir");
        let file = std::fs::File::open(archive).expect("archive");
        let decoder = zstd::Decoder::new(file).expect("zstd");
        tar::Archive::new(decoder).unpack(base).expect("untar");
        std::fs::write(&done, b"").expect("marker");
    }
    target
}

/// Reads one Parquet file.
pub fn read_parquet_file(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

/// Reads every Parquet file in `dir` (not recursing into hidden files).
pub fn read_parquet_dir(dir: &Path) -> Vec<RecordBatch> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("expected dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut batches = Vec::new();
    for path in paths {
        let file = std::fs::File::open(&path).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        for batch in reader {
            batches.push(batch.expect("batch"));
        }
    }
    batches
}

/// An engine with the golden table `name` registered as `t`, or `None`
/// (with a visible message) when `../shared/golden` is absent.
pub async fn golden_engine(test: &str, name: &str) -> Option<wavelake_engine::SqlSession> {
    let root = golden_or_skip(test)?;
    let dir = unpack(&root.join(format!("kernel-golden/{name}.tar.zst"))).join("delta");
    let engine = wavelake_write::session();
    let storage = wavelake_engine::storage::ObjectStoreStorage::open(dir.to_str().expect("utf-8"))
        .expect("storage");
    engine
        .register("t", std::sync::Arc::new(storage))
        .await
        .expect("register");
    Some(engine)
}

/// An engine whose `CREATE TABLE` writes under the table root `root`, with
/// the tables already there registered.
pub async fn engine_at(root: &Path) -> wavelake_engine::SqlSession {
    engine_at_with(root, wavelake_engine::SqlSessionOptions::default()).await
}

/// An engine over a fresh table root (the directory, kept alive by the
/// caller) after running `statements`.
pub async fn engine_after(statements: &[&str]) -> (tempfile::TempDir, wavelake_engine::SqlSession) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = engine_at(dir.path()).await;
    for sql in statements {
        engine.query(sql).await.expect("set-up statement");
    }
    (dir, engine)
}

/// `sql`'s physical plan in `engine`'s session, optimized, not run.
pub async fn physical_plan(
    engine: &wavelake_engine::SqlSession,
    sql: &str,
) -> std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    engine
        .sql(sql)
        .await
        .expect("planned")
        .create_physical_plan()
        .await
        .expect("physical plan")
}

/// The first node of `plan` (depth first) that is a `T`.
pub fn find_node<T: datafusion::physical_plan::ExecutionPlan + 'static>(
    plan: &std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Option<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    if plan.downcast_ref::<T>().is_some() {
        return Some(plan.clone());
    }
    plan.children().into_iter().find_map(find_node::<T>)
}

/// [`engine_at`], with the session set up by `options`.
pub async fn engine_at_with(
    root: &Path,
    options: wavelake_engine::SqlSessionOptions,
) -> wavelake_engine::SqlSession {
    let engine = wavelake_write::session_with(options).with_storage_opener(std::sync::Arc::new(
        |location: &str| {
            Ok(
                std::sync::Arc::new(wavelake_engine::storage::ObjectStoreStorage::open(
                    location,
                )?) as _,
            )
        },
    ));
    engine
        .register_root(root.to_str().expect("utf-8"))
        .await
        .expect("table root");
    engine
}

/// Writes `batch` as a one-file Delta table in `dir` (protocol 1/2, no
/// statistics, so only the Parquet reader can prune), with pages of
/// `page_rows` rows and row groups of `group_rows` rows.
pub fn write_one_file_table(dir: &Path, batch: &RecordBatch, group_rows: usize, page_rows: usize) {
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .set_data_page_row_count_limit(page_rows)
        .set_write_batch_size(page_rows)
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let file_name = "part-00000.parquet";
    let file = std::fs::File::create(dir.join(file_name)).expect("create");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    let size = std::fs::metadata(dir.join(file_name)).expect("meta").len();
    let fields: Vec<serde_json::Value> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let delta_type = match f.data_type() {
                arrow::datatypes::DataType::Int64 => "long",
                arrow::datatypes::DataType::Utf8 => "string",
                other => panic!("no Delta type for {other} in this helper"),
            };
            serde_json::json!({"name": f.name(), "type": delta_type, "nullable": true, "metadata": {}})
        })
        .collect();
    let schema = serde_json::json!({"type": "struct", "fields": fields}).to_string();
    let log = [
        serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
        serde_json::json!({"metaData": {"id": "test", "format": {"provider": "parquet", "options": {}},
            "schemaString": schema, "partitionColumns": [], "configuration": {}, "createdTime": 0}}),
        serde_json::json!({"add": {"path": file_name, "partitionValues": {}, "size": size,
            "modificationTime": 0, "dataChange": true}}),
    ]
    .map(|a| a.to_string())
    .join("\n");
    std::fs::create_dir_all(dir.join("_delta_log")).expect("log dir");
    std::fs::write(dir.join("_delta_log/00000000000000000000.json"), log).expect("commit");
}

/// The Python of the project's virtualenv (`scripts/test.sh` creates it with
/// the interop oracles), if it has `module`; otherwise says why the test is
/// skipped and returns `None`.
pub fn venv_python_with(test: &str, module: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("WAVELAKE_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wavelake/venv")))?;
    let python = venv.join("bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED {test}: no Python module {module} in {} (scripts/test.sh installs it)",
            venv.display()
        );
        return None;
    }
    Some(python)
}

/// The eight TPC-H tables at scale factor 0.01 as Delta tables (written by
/// PyPI `deltalake` from `tpchgen-cli`'s data, once, into the scratch
/// directory `scratch`): the directory holding them, or `None` (saying
/// why) when the venv lacks either.
pub fn tpch_sf001(test: &str, scratch: &str) -> Option<PathBuf> {
    let python = venv_python_with(test, "deltalake")?;
    let generator = python.parent()?.join("tpchgen-cli");
    if !generator.exists() {
        eprintln!("SKIPPED {test}: tpchgen-cli is not in the venv (scripts/test.sh installs it)");
        return None;
    }
    let data = scratch_dir().join(scratch);
    let script = tests_dir().join("interop/bench_peers.py");
    run_python(
        &python,
        script.to_str().expect("utf-8"),
        &["tpch-all", data.to_str().expect("utf-8"), "0.01"],
    );
    Some(data.join("delta"))
}

/// The 22 TPC-H queries (DuckDB's texts) as `(q1, SQL)` …
pub fn tpch_queries() -> Vec<(String, String)> {
    let dir = tests_dir().join("benches/tpch");
    (1..=22)
        .map(|n| {
            let sql = std::fs::read_to_string(dir.join(format!("q{n}.sql"))).expect("query text");
            (format!("q{n}"), sql)
        })
        .collect()
}

/// A real S3 server (moto, from the project's virtualenv) on a free
/// loopback port, stopped when dropped.
pub struct MotoServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl MotoServer {
    /// Starts moto, or says why the test is skipped and returns `None`.
    pub fn start(test: &str) -> Option<Self> {
        let python = venv_python_with(test, "moto.server")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // moto's own launcher lets racing conditional PUTs both succeed
        // under load; this one serializes requests (see the script).
        let child = std::process::Command::new(&python)
            .arg(tests_dir().join("interop/moto_server.py"))
            .args(["127.0.0.1", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(server)
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        use std::io::{Read, Write};
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("moto answers");
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    /// `object_store` options that point S3 at this server.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("aws_endpoint", self.endpoint.clone()),
            ("aws_allow_http", "true".into()),
            ("aws_access_key_id", "wavelake".into()),
            ("aws_secret_access_key", "wavelake".into()),
            ("aws_region", "us-east-1".into()),
        ]
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Azure Blob Storage server (Azurite, installed into `tests/js` by
/// `scripts/test.sh`) on a free loopback port, stopped when dropped.
pub struct AzuriteServer {
    child: std::process::Child,
    _data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// Azurite's well-known development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, in Azure's docs).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl AzuriteServer {
    /// Starts Azurite's blob service, or says why the test is skipped and
    /// returns `None`.
    pub fn start(test: &str) -> Option<Self> {
        let binary = tests_dir().join("js/node_modules/.bin/azurite-blob");
        if !binary.exists() {
            eprintln!(
                "SKIPPED {test}: no {} (scripts/test.sh installs it)",
                binary.display()
            );
            return None;
        }
        let data = tempfile::tempdir().expect("a scratch directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(binary)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--skipApiVersionCheck", "--silent", "--location"])
            .arg(data.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("azurite starts");
        let server = Self {
            child,
            _data: data,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "azurite did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(server)
    }

    /// Creates a container, signing the request with the account key
    /// (Shared Key authorization).
    pub fn create_container(&self, container: &str) {
        use base64::Engine as _;
        use hmac::Mac as _;
        use std::io::{Read, Write};
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .expect("the key is base64");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(string_to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("azurite answers");
        write!(
            stream,
            "PUT /{AZURITE_ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: {address}\r\n\
             x-ms-date: {date}\r\nx-ms-version: {version}\r\n\
             Authorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    }

    /// `object_store` options for this server's development account.
    /// `object_store` finds the emulator through the environment variable of
    /// [`Self::environment`].
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("azure_storage_use_emulator", "true".into()),
            ("azure_storage_account_name", AZURITE_ACCOUNT.into()),
            ("azure_storage_account_key", AZURITE_KEY.into()),
        ]
    }

    /// `object_store` options that reach this server by its endpoint alone
    /// (no environment variable): the development account, its key, and
    /// the account's path-style URL over plain HTTP.
    pub fn endpoint_options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("azure_storage_account_name", AZURITE_ACCOUNT.into()),
            ("azure_storage_account_key", AZURITE_KEY.into()),
            (
                "azure_storage_endpoint",
                format!("{}/{AZURITE_ACCOUNT}", self.endpoint),
            ),
            ("azure_allow_http", "true".into()),
        ]
    }

    /// The environment variable that points `object_store` at this server.
    pub fn environment(&self) -> (&'static str, String) {
        ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone())
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a Python script of `tests/interop/` with `args`, failing loudly.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    run_python_with_env(python, script, args, &[])
}

/// [`run_python`] with more environment variables.
pub fn run_python_with_env(
    python: &Path,
    script: &str,
    args: &[&str],
    environment: &[(&str, &str)],
) -> String {
    let mut command = std::process::Command::new(python);
    command
        .arg(tests_dir().join("interop").join(script))
        .args(args)
        .envs(environment.iter().copied());
    run_checked(command, script)
}

/// Runs a Node script with `args`, failing loudly; its standard output.
pub fn run_node<S: AsRef<std::ffi::OsStr>>(script: &Path, args: &[S]) -> String {
    let mut command = std::process::Command::new("node");
    command.arg(script).args(args);
    run_checked(command, &script.display().to_string())
}

/// Runs `command` to its end, failing with its output unless it succeeds;
/// its standard output.
fn run_checked(mut command: std::process::Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what} cannot start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The npm package's directory (`pkg/`).
pub fn package_dir() -> PathBuf {
    tests_dir().join("../pkg")
}

/// Whether scripts/build-pkg.sh has built the package and its test tools
/// are installed.
pub fn npm_package_built() -> bool {
    let pkg = package_dir();
    pkg.join("dist/wavelake_bg.wasm").exists() && pkg.join("node_modules").is_dir()
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Copies the tree under `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for file in files_under(from) {
        let target = to.join(file.strip_prefix(from).expect("under"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&file, &target).expect("copy");
    }
}

/// An independent Delta reader run from the project's virtualenv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oracle {
    /// PyPI `deltalake` (delta-rs), through its QueryBuilder.
    Deltalake,
    /// DuckDB with its delta extension (delta-kernel-rs).
    Duckdb,
}

impl Oracle {
    /// Both oracles.
    pub const ALL: [Oracle; 2] = [Oracle::Deltalake, Oracle::Duckdb];

    /// The reader's name, as `read_tables.py` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Oracle::Deltalake => "deltalake",
            Oracle::Duckdb => "duckdb",
        }
    }

    /// The Python module whose presence the oracle needs.
    pub fn module(self) -> &'static str {
        match self {
            Oracle::Deltalake => "deltalake",
            Oracle::Duckdb => "duckdb_extension_delta",
        }
    }
}

/// Reads the latest version of each table in `tables` with `oracle`, writing
/// under `out`; per table directory name, its rows or the oracle's error.
pub fn read_with_oracle(
    python: &Path,
    oracle: Oracle,
    out: &Path,
    tables: &[PathBuf],
) -> std::collections::BTreeMap<String, Result<Vec<RecordBatch>, String>> {
    let mut args = vec![oracle.name().to_owned(), out.to_str().unwrap().to_owned()];
    args.extend(tables.iter().map(|t| t.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("{}", run_python(python, "read_tables.py", &args).trim());
    let results: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    results
        .into_iter()
        .map(|(name, outcome)| {
            let rows = if outcome == "ok" {
                Ok(read_parquet_file(&out.join(format!("{name}.parquet"))))
            } else {
                Err(outcome)
            };
            (name, rows)
        })
        .collect()
}

/// Compares `actual` with `expected` as multisets of rows over the expected
/// columns; the number of rows, or the first difference labelled by
/// `expected_by`.
pub fn compare_rows(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    expected_by: &str,
) -> Result<usize, String> {
    let columns = column_names(expected);
    let want = canonical_rows(expected, &columns)?;
    let got = if actual.is_empty() && want.is_empty() {
        Vec::new()
    } else if actual.is_empty() {
        return Err(format!("no rows, {expected_by} {}", want.len()));
    } else {
        canonical_rows(actual, &columns)?
    };
    if want == got {
        return Ok(want.len());
    }
    let diff = want
        .iter()
        .zip(&got)
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("\n  {expected_by}: {a}\n  Wavelake: {b}"))
        .unwrap_or_default();
    Err(format!(
        "{} rows, {expected_by} {}{diff}",
        got.len(),
        want.len()
    ))
}

/// Reads each table of `tables` with Wavelake and with every oracle the
/// virtualenv has, and fails unless all read the same rows. Oracles that are
/// missing are reported as skipped. Returns the number of comparisons made.
pub async fn assert_oracles_agree(test: &str, tables: &[PathBuf]) -> usize {
    let mut failures = Vec::new();
    let mut compared = 0;
    for oracle in Oracle::ALL {
        let Some(python) = venv_python_with(test, oracle.module()) else {
            continue;
        };
        let out = tempfile::tempdir().unwrap();
        let theirs = read_with_oracle(&python, oracle, out.path(), tables);
        for table in tables {
            let name = table.file_name().unwrap().to_string_lossy().into_owned();
            let ours = read_latest_rows(table).await;
            let blind = match oracle {
                Oracle::Duckdb => duckdb_blind_columns(table).await,
                Oracle::Deltalake => Vec::new(),
            };
            if !blind.is_empty() {
                eprintln!(
                    "KNOWN   {name}: DuckDB reads renamed partition columns {blind:?} as NULL \
                     under column mapping (duckdb/duckdb-delta#343); compared without them"
                );
            }
            match (theirs.get(&name), ours) {
                (Some(Ok(expected)), Ok(actual)) => {
                    let expected = without_columns(expected, &blind);
                    let actual = without_columns(&actual, &blind);
                    match compare_rows(&expected, &actual, oracle.name()) {
                        Ok(rows) => {
                            eprintln!("same    {name} by {} ({rows} rows)", oracle.name());
                            compared += 1;
                        }
                        Err(why) => failures.push(format!("{name} by {}: {why}", oracle.name())),
                    }
                }
                (Some(Err(e)), _) => {
                    failures.push(format!("{name}: {} cannot read it: {e}", oracle.name()))
                }
                (None, _) => failures.push(format!("{name}: {} did not run", oracle.name())),
                (_, Err(e)) => failures.push(format!("{name}: Wavelake cannot read it: {e}")),
            }
        }
    }
    for failure in &failures {
        eprintln!("FAILED  {failure}");
    }
    assert!(
        failures.is_empty(),
        "{test}: {} disagreements",
        failures.len()
    );
    compared
}

/// Partition columns DuckDB's delta extension cannot read: under column
/// mapping it looks partition values up by logical name, where the log
/// (rightly) keys them by physical name (duckdb/duckdb-delta#343).
async fn duckdb_blind_columns(table: &Path) -> Vec<String> {
    use wavelake_engine::schema::{ColumnMappingMode, StructType};
    let Ok(storage) = wavelake_engine::storage::ObjectStoreStorage::open(table.to_str().unwrap())
    else {
        return Vec::new();
    };
    let Ok(table) = wavelake_engine::table::Table::new(std::sync::Arc::new(storage)) else {
        return Vec::new();
    };
    let Ok(snapshot) = table.snapshot().await else {
        return Vec::new();
    };
    let metadata = snapshot.metadata();
    let mode = ColumnMappingMode::from_property(metadata.property("delta.columnMapping.mode"))
        .unwrap_or(ColumnMappingMode::None);
    let Ok(schema) = StructType::parse(&metadata.schema_string) else {
        return Vec::new();
    };
    metadata
        .partition_columns
        .iter()
        .filter(|name| {
            schema
                .field(name)
                .is_some_and(|f| f.physical_name(mode) != f.name)
        })
        .cloned()
        .collect()
}

/// `batches` without the columns named in `drop`.
fn without_columns(batches: &[RecordBatch], drop: &[String]) -> Vec<RecordBatch> {
    batches
        .iter()
        .map(|batch| {
            let keep: Vec<usize> = batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| !drop.contains(f.name()))
                .map(|(i, _)| i)
                .collect();
            batch.project(&keep).unwrap()
        })
        .collect()
}

/// All rows of the latest version of the table at `table`, read by Wavelake.
pub async fn read_latest_rows(table: &Path) -> wavelake_engine::Result<Vec<RecordBatch>> {
    let engine = wavelake_write::session();
    let storage = wavelake_engine::storage::ObjectStoreStorage::open(table.to_str().unwrap())?;
    engine.register("t", std::sync::Arc::new(storage)).await?;
    engine.query("SELECT * FROM t").await
}
