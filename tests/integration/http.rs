//! Reading tables over HTTP natively: a static host (base URL) and a map of
//! per-file URLs, against a Range-capable server that logs every request.
//! Checks the results and what was fetched: no HEAD, no listing, ranges
//! coalesced, missing files named.

use std::collections::HashMap;
use std::sync::Arc;

use wavelake_engine::storage::{COALESCE_GAP, HttpStorage, Storage, UrlMapStorage};
use wavelake_engine::{Error, SqlSession};
use wavelake_tests::golden_cases::http_cases;
use wavelake_tests::http_server::{RequestRecord, TestHttpServer};
use wavelake_tests::{
    canonical_rows, copy_dir, engine_at, files_under, golden_or_skip, scratch_dir, unpack,
};

async fn run_case(
    engine: &SqlSession,
    storage: Arc<dyn Storage>,
    sql: &str,
) -> Result<Vec<arrow::array::RecordBatch>, Error> {
    engine.register("t", storage).await?;
    engine.query(sql).await
}

fn assert_no_head_and_no_listing(requests: &[RequestRecord]) {
    for r in requests {
        assert_eq!(r.method, "GET", "only GETs are sent: {r:?}");
        assert!(!r.path.ends_with('/'), "no directory listing: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_over_http_equal_expected_rows() {
    let Some(golden) = golden_or_skip("golden_cases_over_http_equal_expected_rows") else {
        return;
    };
    let cases = http_cases(&golden);
    let server = TestHttpServer::start(&scratch_dir().join("golden"))
        .await
        .expect("server");
    let mut failures = Vec::new();
    for case in &cases {
        let engine = wavelake_write::session();
        let storage =
            Arc::new(HttpStorage::new(&format!("{}/{}", server.url, case.table)).expect("url"));
        let result = run_case(&engine, storage, &case.sql).await;
        let outcome = match (&result, &case.error_code) {
            (Err(e), Some(code)) if e.code() == code => Ok(()),
            (Ok(batches), None) => match canonical_rows(batches, &case.columns) {
                Ok(rows) if rows == case.rows => Ok(()),
                Ok(rows) => Err(format!("{} rows, expected {}", rows.len(), case.rows.len())),
                Err(e) => Err(e),
            },
            (other, _) => Err(format!("unexpected outcome {:?}", other.as_ref().err())),
        };
        if let Err(why) = outcome {
            eprintln!("FAILED {}: {why}", case.name);
            failures.push(case.name.clone());
        }
    }
    assert!(failures.is_empty(), "failed over HTTP: {failures:?}");
    let requests = server.requests();
    assert_no_head_and_no_listing(&requests);
    let data_reads: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with(".parquet") && !r.path.contains("_delta_log"))
        .collect();
    assert!(!data_reads.is_empty());
    assert!(
        data_reads
            .iter()
            .all(|r| r.range.is_some() && r.status == 206),
        "data files are read with Range requests only"
    );
    eprintln!(
        "{} cases over HTTP: {} requests, {} bytes",
        cases.len(),
        requests.len(),
        requests.iter().map(|r| r.bytes).sum::<u64>()
    );
}

#[tokio::test]
async fn nearby_ranges_are_coalesced_into_one_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let content: Vec<u8> = (0..3 * COALESCE_GAP as usize)
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(dir.path().join("blob.bin"), &content).expect("write");
    let server = TestHttpServer::start(dir.path()).await.expect("server");
    let storage = HttpStorage::new(&server.url).expect("url");
    let far = 2 * COALESCE_GAP;
    let ranges = [0..10, 100..200, 4096..5000, far..far + 7];
    let parts = storage
        .get_ranges("blob.bin", &ranges)
        .await
        .expect("ranges");
    for (range, part) in ranges.iter().zip(&parts) {
        assert_eq!(
            part.as_ref(),
            &content[range.start as usize..range.end as usize]
        );
    }
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        2,
        "three nearby ranges in one request, the far one alone: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.status == 206));
}

#[tokio::test]
async fn a_url_map_reads_a_table_from_per_file_urls() {
    let Some(golden) = golden_or_skip("a_url_map_reads_a_table_from_per_file_urls") else {
        return;
    };
    let case = http_cases(&golden)
        .into_iter()
        .find(|c| c.name == "dv-partitioned-with-checkpoint")
        .expect("dv case");
    let root = scratch_dir().join("golden");
    let server = TestHttpServer::start(&root).await.expect("server");
    // Every file gets its own "presigned" URL with a query string, as a
    // sharing server hands them out.
    let table_dir = root.join(&case.table);
    let mut urls = HashMap::new();
    for file in files_under(&table_dir) {
        let relative = file
            .strip_prefix(&table_dir)
            .expect("under")
            .to_string_lossy()
            .replace('\\', "/");
        let url = format!(
            "{}/{}/{}?X-Amz-Signature=test",
            server.url,
            case.table,
            encode_path(&relative)
        );
        urls.insert(relative, url);
    }
    let reader = Arc::new(HttpStorage::new(&server.url).expect("url"));
    let storage = Arc::new(UrlMapStorage::new("shared://dv", urls, reader));
    let engine = wavelake_write::session();
    let batches = run_case(&engine, storage, &case.sql).await.expect("read");
    assert_eq!(
        canonical_rows(&batches, &case.columns).expect("rows"),
        case.rows
    );
    assert_no_head_and_no_listing(&server.requests());
}

#[tokio::test]
async fn a_missing_data_file_is_an_error_naming_it() {
    let Some(golden) = golden_or_skip("a_missing_data_file_is_an_error_naming_it") else {
        return;
    };
    let source =
        unpack(&golden.join("kernel-golden/basic-with-inserts-deletes-checkpoint.tar.zst"))
            .join("delta");
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(&source, copy.path());
    // An active file (an unreferenced one would not be read at all).
    let victim = {
        let local = wavelake_engine::storage::ObjectStoreStorage::open(
            copy.path().to_str().expect("utf-8"),
        )
        .expect("storage");
        let snapshot = wavelake_engine::Table::new(Arc::new(local))
            .expect("table")
            .snapshot()
            .await
            .expect("snapshot");
        copy.path().join(&snapshot.files()[0].path)
    };
    std::fs::remove_file(&victim).expect("remove");
    let victim_name = victim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let server = TestHttpServer::start(copy.path()).await.expect("server");
    let engine = wavelake_write::session();
    let storage = Arc::new(HttpStorage::new(&server.url).expect("url"));
    let err = run_case(&engine, storage, "SELECT * FROM t")
        .await
        .expect_err("a data file is missing");
    assert!(
        matches!(&err, Error::NotFound { path } if path.contains(&victim_name)),
        "{err:?}"
    );
}

fn encode_path(relative: &str) -> String {
    relative
        .split('/')
        .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
        .replace('+', "%20")
}

/// A server holding `data.bin` (`0123456789`), and storage reading it;
/// the directory lives as long as the first value.
async fn served_data_file() -> (tempfile::TempDir, TestHttpServer, HttpStorage) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("data.bin"), b"0123456789").expect("write");
    let server = TestHttpServer::start(dir.path()).await.expect("server");
    let storage = HttpStorage::new(&server.url).expect("url");
    (dir, server, storage)
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_and_the_rest_are_not() {
    let (_dir, server, storage) = served_data_file().await;

    // Two 503s, then the answer: three requests, one result.
    server.fail_next(2, 503);
    let started = std::time::Instant::now();
    let bytes = storage.get_range("data.bin", 2..5).await.expect("retried");
    assert_eq!(&bytes[..], b"234");
    assert_eq!(server.requests().len(), 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "backoff waited"
    );

    // A server that keeps failing: four tries, then an error naming the file.
    server.clear();
    server.fail_next(100, 500);
    let err = storage.get("data.bin").await.expect_err("gives up");
    assert!(err.to_string().contains("data.bin"), "{err}");
    assert_eq!(server.requests().len(), 4);

    // Not found and forbidden are answers, not accidents: one request each.
    server.fail_next(0, 500);
    server.clear();
    assert!(
        storage
            .get("missing.bin")
            .await
            .expect_err("404")
            .is_not_found()
    );
    server.fail_next(1, 403);
    assert!(storage.get("data.bin").await.is_err());
    assert_eq!(server.requests().len(), 2);
}

/// A DELETE stores the deletion vectors of every file it changed in one
/// file; a scan over HTTP fetches them in one request, not one per data
/// file, and the rows are those the writer reads locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deletion_vectors_of_one_delete_arrive_in_one_request() {
    let root = tempfile::tempdir().expect("tempdir");
    let writer = engine_at(root.path()).await;
    writer
        .query("CREATE TABLE t (id BIGINT)")
        .await
        .expect("create");
    for part in 0..4 {
        let insert = format!("INSERT INTO t SELECT value + {part} * 1000 FROM range(0, 1000)");
        writer.query(&insert).await.expect("insert");
    }
    writer
        .query("DELETE FROM t WHERE id % 7 = 0")
        .await
        .expect("delete");
    let dv_files: Vec<_> = files_under(&root.path().join("t"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("deletion_vector_"))
        .collect();
    assert_eq!(dv_files.len(), 1, "one DV file for four data files");
    let sql = "SELECT count(*) AS n, sum(id) AS s FROM t";
    let local = writer.query(sql).await.expect("local");

    let server = TestHttpServer::start(root.path()).await.expect("server");
    let reader = wavelake_write::session();
    let storage = HttpStorage::new(&format!("{}/t", server.url)).expect("url");
    reader
        .register("t", Arc::new(storage))
        .await
        .expect("register");
    let remote = reader.query(sql).await.expect("over HTTP");
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&remote)
            .expect("format")
            .to_string(),
        arrow::util::pretty::pretty_format_batches(&local)
            .expect("format")
            .to_string()
    );
    let n = remote[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("count")
        .value(0);
    assert_eq!(n, 4000 - 572, "multiples of 7 below 4000 are deleted");
    let dv_reads: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("deletion_vector_"))
        .collect();
    assert_eq!(dv_reads.len(), 1, "{dv_reads:?}");
}

/// An expired signed URL refused the way Google Cloud Storage does (400,
/// ExpiredToken) is refused like a 403, so a URL map asks for a fresh one;
/// other 400s are errors that quote the answer.
#[tokio::test]
async fn an_expired_token_answer_is_a_refusal() {
    let (_dir, server, storage) = served_data_file().await;
    server.fail_next_with(
        1,
        400,
        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>\
         <Message>Invalid argument.</Message></Error>",
    );
    let refused = storage
        .get_range("data.bin", 0..4)
        .await
        .expect_err("expired");
    assert!(
        matches!(refused, Error::Forbidden { status: 400, .. }),
        "{refused:?}"
    );
    server.fail_next_with(1, 400, "<Error><Code>InvalidArgument</Code></Error>");
    let bad = storage
        .get_range("data.bin", 0..4)
        .await
        .expect_err("bad request");
    assert!(
        matches!(&bad, Error::Storage { message, .. } if message.contains("InvalidArgument")),
        "{bad:?}"
    );
    assert_eq!(
        &storage
            .get_range("data.bin", 0..4)
            .await
            .expect("then served")[..],
        b"0123"
    );
}

/// A point query over a table whose two files both might hold the key (even
/// ids in one, odd in the other): with late materialization the file
/// without the row is read for its key column only, so the session fetches
/// at least that file's payload less, and the same row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_materialization_reads_other_columns_only_where_rows_pass() {
    let root = tempfile::tempdir().expect("tempdir");
    let writer = engine_at(root.path()).await;
    writer
        .query("CREATE TABLE t (id BIGINT, payload STRING)")
        .await
        .expect("create");
    for offset in [0, 1] {
        // About 1.3 MB of hex text per file, over the size small files are
        // read whole at.
        let insert = format!(
            "INSERT INTO t SELECT value * 2 + {offset}, \
             concat(md5(CAST(value AS STRING)), md5(CAST(value + 1 AS STRING)), \
             md5(CAST(value + 2 AS STRING)), md5(CAST(value + 3 AS STRING))) \
             FROM range(0, 10000)"
        );
        writer.query(&insert).await.expect("insert");
    }
    let server = TestHttpServer::start(root.path()).await.expect("server");
    let sql = "SELECT id, payload FROM t WHERE id = 10001";
    let mut fetched = Vec::new();
    for late_materialization in [false, true] {
        let reader = wavelake_write::session_with(wavelake_engine::SqlSessionOptions {
            late_materialization,
            ..wavelake_engine::SqlSessionOptions::default()
        });
        let storage = HttpStorage::new(&format!("{}/t", server.url)).expect("url");
        reader
            .register("t", Arc::new(storage))
            .await
            .expect("register");
        server.clear();
        let rows = reader.query(sql).await.expect("query");
        let pretty = arrow::util::pretty::pretty_format_batches(&rows)
            .expect("format")
            .to_string();
        assert!(pretty.contains("| 10001 |"), "{pretty}");
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        let bytes: u64 = server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(".parquet"))
            .map(|r| r.bytes)
            .sum();
        fetched.push(bytes);
    }
    // The payload column chunk of the file of even ids, which has no row
    // with id 10001.
    let even_payload: u64 = files_under(&root.path().join("t"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .filter_map(|f| {
            let reader =
                parquet::file::reader::SerializedFileReader::new(std::fs::File::open(f).ok()?)
                    .ok()?;
            let metadata = parquet::file::reader::FileReader::metadata(&reader).clone();
            let group = metadata.row_group(0);
            let min = match group.column(0).statistics()? {
                parquet::file::statistics::Statistics::Int64(s) => *s.min_opt()?,
                _ => return None,
            };
            (min == 0).then(|| group.column(1).compressed_size() as u64)
        })
        .sum();
    assert!(even_payload > 300_000, "{even_payload}");
    // Only lookups are decoded this way: a range keeping a quarter of the
    // rows leaves a passing row in nearly every page, and filtering while
    // decoding would cost time for nothing.
    let late = wavelake_write::session_with(wavelake_engine::SqlSessionOptions {
        late_materialization: true,
        ..wavelake_engine::SqlSessionOptions::default()
    });
    let storage = HttpStorage::new(&format!("{}/t", server.url)).expect("url");
    late.register("t", Arc::new(storage))
        .await
        .expect("register");
    // Rows the filter removed while decoding (`16.38 K`: the figure is
    // rounded, only whether it is 0 matters).
    let pruned_while_decoding = |plan: &str| -> f64 {
        plan.split("pushdown_rows_pruned=")
            .skip(1)
            .filter_map(|rest| rest.split([',', ' ', ']']).next()?.parse::<f64>().ok())
            .sum()
    };
    for (query, lookup) in [(sql, true), ("SELECT id FROM t WHERE id < 5000", false)] {
        let explained = late
            .query(&format!("EXPLAIN ANALYZE {query}"))
            .await
            .expect("explain");
        let plan = arrow::util::pretty::pretty_format_batches(&explained)
            .expect("format")
            .to_string();
        let pruned = pruned_while_decoding(&plan);
        assert_eq!(
            pruned > 0.0,
            lookup,
            "{query}: {pruned} rows pruned while decoding\n{plan}"
        );
    }
    let (eager, late) = (fetched[0], fetched[1]);
    assert!(
        late + even_payload <= eager,
        "late materialization fetched {late} bytes, eager {eager}; \
         the other file's payload is {even_payload}"
    );
}

/// With DataFusion's `metadata_size_hint` (a page's sessions set 128 KiB),
/// a scan reads a data file's footer and page index in one request from
/// its end (the index, which DataFusion asks for by its own range, is cut
/// from it); without one, in three: the footer's length, the footer, the
/// index. The same row either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_footer_hint_reads_footer_and_page_index_in_one_request() {
    let root = tempfile::tempdir().expect("tempdir");
    let writer = engine_at(root.path()).await;
    writer
        .query("CREATE TABLE t (id BIGINT, payload STRING)")
        .await
        .expect("create");
    writer
        .query(
            "INSERT INTO t SELECT value, concat(md5(CAST(value AS STRING)), \
             md5(CAST(value + 1 AS STRING))) FROM range(0, 20000)",
        )
        .await
        .expect("insert");
    let server = TestHttpServer::start(root.path()).await.expect("server");
    let mut footer_requests = Vec::new();
    for hint in [None, Some(128 * 1024)] {
        let reader = wavelake_write::session();
        if let Some(hint) = hint {
            reader
                .query(&format!(
                    "SET datafusion.execution.parquet.metadata_size_hint = {hint}"
                ))
                .await
                .expect("set");
        }
        let storage = HttpStorage::new(&format!("{}/t", server.url)).expect("url");
        reader
            .register("t", Arc::new(storage))
            .await
            .expect("register");
        server.clear();
        let rows = reader
            .query("SELECT payload FROM t WHERE id = 12345")
            .await
            .expect("query");
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        let parquet: Vec<RequestRecord> = server
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(".parquet"))
            .collect();
        let sizes: HashMap<String, u64> = files_under(&root.path().join("t"))
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
            .filter_map(|f| {
                let name = f.file_name()?.to_str()?.to_owned();
                Some((name, std::fs::metadata(&f).ok()?.len()))
            })
            .collect();
        assert!(!sizes.is_empty());
        // Per data file, requests for its end (its footer's length, the
        // footer, the page index, or all at once): a suffix range
        // (`bytes=-N`) or one starting in its last 128 KiB, past the pages
        // the query reads.
        let mut footer: Vec<usize> = sizes
            .iter()
            .map(|(name, size)| {
                parquet
                    .iter()
                    .filter(|r| r.path.ends_with(name.as_str()))
                    .filter(|r| {
                        let start = r
                            .range
                            .as_deref()
                            .and_then(|range| range.strip_prefix("bytes="))
                            .and_then(|range| range.split('-').next())
                            .and_then(|start| start.parse::<u64>().ok());
                        start.is_none_or(|start| start + 128 * 1024 >= *size)
                    })
                    .count()
            })
            .collect();
        // A file the log's statistics rule out is never opened.
        footer.retain(|requests| *requests > 0);
        footer.dedup();
        footer_requests.push(footer);
    }
    assert_eq!(
        footer_requests,
        vec![vec![3], vec![1]],
        "{:?}",
        server.requests()
    );
}
