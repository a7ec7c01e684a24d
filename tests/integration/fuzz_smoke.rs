//! The fuzz targets' bodies (`wavelake_write::fuzzing`) over seeds from
//! the golden tables and seeded mutations of them (bytes flipped, cut,
//! repeated, spliced), and over every input a fuzzing campaign saved under
//! `engine/fuzz/regressions/TARGET/`: no input may panic. The coverage-
//! guided campaigns run with cargo-fuzz (`scripts/fuzz.sh`, and for ten
//! minutes a target in `scripts/bench.sh fuzz`); this is their quick,
//! deterministic pass in the test command. `WAVELAKE_FUZZ_MUTATIONS` sets
//! the mutations per seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wavelake_tests::markers::env_or;
use wavelake_write::fuzzing::TARGETS;

/// Inputs every target starts from, besides the golden tables'.
fn built_in_seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let text = |items: &[&str]| items.iter().map(|s| s.as_bytes().to_vec()).collect();
    BTreeMap::from([
        (
            "log_actions",
            text(&[
                r#"{"commitInfo":{"timestamp":1}}
{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}
{"add":{"path":"a.parquet","partitionValues":{"p":null},"size":10,"modificationTime":1,"dataChange":true,"deletionVector":{"storageType":"i","pathOrInlineDv":"wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L","sizeInBytes":40,"cardinality":6}}}
{"remove":{"path":"c.parquet","deletionTimestamp":5,"dataChange":true}}"#,
            ]),
        ),
        ("checkpoint", vec![b"PAR1\0\0\0\0PAR1".to_vec()]),
        (
            "deletion_vector",
            vec![
                b"\x02{\"storageType\":\"i\",\"pathOrInlineDv\":\"wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L\",\"sizeInBytes\":40,\"cardinality\":6}".to_vec(),
                vec![0, 1, 0, 0, 0, 0x3a, 0x30, 0, 0, 1, 0, 0, 0],
            ],
        ),
        (
            "partition_value",
            vec![
                b"\x0a2024-01-01 12:00:00".to_vec(),
                b"\x0c12345.67".to_vec(),
                b"\x041234".to_vec(),
                b"\x092024-02-29".to_vec(),
            ],
        ),
        (
            "statistics",
            text(&[
                r#"{"numRecords":3,"minValues":{"l":1,"d":0.5,"s":"a","dt":"2024-01-01","ts":"2024-01-01T00:00:00.000Z","dec":1.25,"st":{"x":1}},"maxValues":{"l":9,"s":"z","b":true},"nullCount":{"l":0,"st":{"x":0}}}"#,
            ]),
        ),
        (
            "sharing_response",
            text(&[
                r#"{"protocol":{"minReaderVersion":1}}
{"metaData":{"id":"x","format":{"provider":"parquet"},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{},"version":3}}
{"file":{"id":"f","url":"https://h/a.parquet","partitionValues":{},"size":1,"stats":"{\"numRecords\":1}","version":3,"timestamp":1}}"#,
            ]),
        ),
        (
            "statement",
            text(&[
                "SELECT * FROM t VERSION AS OF 3 WHERE a > 1",
                "/*!DELETE FROM*/ t",
                "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
                "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN DELETE",
                "EXPLAIN ANALYZE UPDATE t SET a = 1 WHERE b = 2",
                "OPTIMIZE ns.t WHERE d > '2024-01-01' ZORDER BY (a, b)",
                "VACUUM t RETAIN 168 HOURS DRY RUN",
                "CREATE TABLE t (a BIGINT, m MAP<STRING, LONG>) USING DELTA PARTITIONED BY (a)",
            ]),
        ),
    ])
}

/// A small upload of every format: typed columns, nulls, a list and a
/// struct, as a client would send them.
fn upload_seeds(seeds: &mut BTreeMap<&'static str, Vec<Vec<u8>>>) {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, ListArray,
        RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Int64Type};
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        (
            "name",
            Arc::new(StringArray::from(vec![Some("a"), None, Some("b,c")])),
        ),
        (
            "amount",
            Arc::new(
                Decimal128Array::from(vec![Some(125), None, Some(-300)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        (
            "ok",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
        (
            "day",
            Arc::new(Date32Array::from(vec![Some(19723), None, Some(0)])),
        ),
        (
            "at",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_704_067_200_000_000), None, Some(0)])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "score",
            Arc::new(Float64Array::from(vec![Some(0.5), None, Some(1e3)])),
        ),
        (
            "tags",
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
                Some(vec![Some(1), None]),
                None,
                Some(vec![]),
            ])),
        ),
        (
            "s",
            Arc::new(StructArray::from(vec![(
                Arc::new(Field::new("k", DataType::Int64, true)),
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
            )])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut arrow_stream = Vec::new();
    let mut writer =
        arrow::ipc::writer::StreamWriter::try_new(&mut arrow_stream, &batch.schema()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    let mut parquet_file = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut parquet_file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let mut json_lines = Vec::new();
    let mut writer = arrow::json::LineDelimitedWriter::new(&mut json_lines);
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    let flat = batch.project(&[0, 1, 2, 3, 4, 5, 6]).unwrap();
    let mut csv = Vec::new();
    arrow::csv::Writer::new(&mut csv).write(&flat).unwrap();
    seeds.entry("upload_arrow").or_default().push(arrow_stream);
    seeds
        .entry("upload_parquet")
        .or_default()
        .push(parquet_file);
    seeds.entry("upload_json").or_default().push(json_lines);
    seeds.entry("upload_csv").or_default().push(csv);
}

/// Seeds from the golden tables: their commits, checkpoints, deletion
/// vectors and the statistics and partition values in their logs.
fn golden_seeds(seeds: &mut BTreeMap<&'static str, Vec<Vec<u8>>>) {
    let Some(root) = wavelake_tests::golden_or_skip("fuzz seeds from the golden tables") else {
        return;
    };
    let mut archives: Vec<PathBuf> = std::fs::read_dir(root.join("kernel-golden"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    archives.sort();
    for archive in archives {
        let dir = wavelake_tests::unpack(&archive);
        for file in wavelake_tests::files_under(&dir) {
            let name = file.to_string_lossy().into_owned();
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            if bytes.len() > 1 << 20 {
                continue;
            }
            if name.contains("_delta_log/") && name.ends_with(".json") {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                        continue;
                    };
                    if let Some(stats) = value["add"]["stats"].as_str() {
                        seeds.entry("statistics").or_default().push(stats.into());
                    }
                    if let Some(values) = value["add"]["partitionValues"].as_object() {
                        for (i, v) in values.values().filter_map(|v| v.as_str()).enumerate() {
                            let mut input = vec![i as u8];
                            input.extend_from_slice(v.as_bytes());
                            seeds.entry("partition_value").or_default().push(input);
                        }
                    }
                    if value["add"]["deletionVector"].is_object() {
                        let mut input = vec![2u8];
                        input.extend(value["add"]["deletionVector"].to_string().bytes());
                        seeds.entry("deletion_vector").or_default().push(input);
                    }
                }
                seeds.entry("log_actions").or_default().push(bytes);
            } else if name.contains(".checkpoint") && name.ends_with(".parquet") {
                seeds.entry("checkpoint").or_default().push(bytes);
            } else if name.ends_with(".parquet") && bytes.len() < 64 << 10 {
                // A few data files: each decode is a whole Parquet read.
                let uploads = seeds.entry("upload_parquet").or_default();
                if uploads.len() < 24 {
                    uploads.push(bytes);
                }
            } else if name.ends_with(".bin") {
                let mut input = vec![1u8];
                input.extend_from_slice(&bytes);
                seeds.entry("deletion_vector").or_default().push(input);
            }
        }
    }
}

/// Inputs a fuzzing campaign found and saved, by target.
fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// One seeded mutation of `input`.
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = out.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = [0u8, 0xff, b'"', b'{', b'9', b'-', b'\n', 0x7f][rng.random_range(0..8)];
            }
            2 => out.truncate(rng.random_range(0..=len)),
            3 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 64));
                let slice = out[start..end].to_vec();
                let at = rng.random_range(0..=out.len());
                out.splice(at..at, slice);
            }
            4 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len);
                out.drain(start..end);
            }
            _ => {
                let at = rng.random_range(0..=len);
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                out.splice(at..at, extra);
            }
        }
    }
    out
}

#[test]
fn parsers_and_codecs_survive_mutated_input() {
    let mutations = env_or("WAVELAKE_FUZZ_MUTATIONS", 200);
    let mut seeds = built_in_seeds();
    upload_seeds(&mut seeds);
    golden_seeds(&mut seeds);
    let mut rng = StdRng::seed_from_u64(20261202);
    let mut crashes = Vec::new();
    let mut figures = Vec::new();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (name, body) in TARGETS {
        let mut inputs: Vec<Vec<u8>> = seeds.get(name).cloned().unwrap_or_default();
        inputs.truncate(400);
        let mut runs = 0u64;
        let mut run = |input: &[u8], origin: String| {
            runs += 1;
            if std::panic::catch_unwind(|| body(input)).is_err() {
                crashes.push((name, origin, input.to_vec()));
            }
        };
        for (path, input) in regressions(name) {
            run(&input, format!("regression {}", path.display()));
        }
        for (i, seed) in inputs.iter().enumerate() {
            run(seed, format!("seed {i}"));
            for m in 0..mutations {
                let mutated = mutate(&mut rng, seed);
                run(&mutated, format!("mutation {m} of seed {i}"));
            }
        }
        figures.push(format!("{name}: {runs} inputs ({} seeds)", inputs.len()));
    }
    std::panic::set_hook(quiet);
    eprintln!("fuzz smoke: {}", figures.join("; "));
    let saved = wavelake_tests::scratch_dir().join("fuzz-smoke-crashes");
    for (i, (name, origin, input)) in crashes.iter().enumerate() {
        std::fs::create_dir_all(saved.join(name)).unwrap();
        std::fs::write(saved.join(name).join(format!("crash-{i}")), input).unwrap();
        eprintln!(
            "PANIC   {name} on {origin} (saved under {})",
            saved.display()
        );
    }
    assert!(crashes.is_empty(), "{} inputs panicked", crashes.len());
}
