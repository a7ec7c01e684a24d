//! The write-ahead log's file format: one segment file holds a header with
//! the table's Arrow schema, then records, each one acknowledged append:
//!
//! ```text
//! segment := MAGIC  u32 schema_len  u32 crc32(schema)  schema  record*
//! record  := u32 body_len  u32 crc32(body)  body
//! body    := u64 sequence  Arrow IPC messages (dictionaries, one record batch)
//! ```
//!
//! Integers are little-endian; `schema` is the Arrow IPC schema message.
//! A crash can leave the records written after the last flush to disk torn
//! or missing; none of them was acknowledged, so [`decode_segment`] stops
//! at the first record that is cut short or fails its checksum and says
//! how many bytes it dropped. A damaged header is an error: the segment's
//! acknowledged rows cannot be read, and nobody may silently lose them.

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::convert::try_schema_from_ipc_buffer;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, write_message,
};

use crate::{Error, Result};

/// The first bytes of every segment (format version 1).
pub const MAGIC: &[u8; 8] = b"WLWAL\0\0\x01";

/// The largest record or schema a segment may hold; a length field above
/// it is damage, not data.
pub const MAX_RECORD_BYTES: usize = 1 << 30;

/// Bytes of a record's frame before its body.
const FRAME_BYTES: usize = 8;

/// A segment's header: the magic, then the schema, framed.
pub fn encode_header(schema: &Schema) -> Vec<u8> {
    let options = IpcWriteOptions::default();
    let mut tracker = DictionaryTracker::new(false);
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut tracker,
        &options,
    );
    let mut message = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_message(&mut message, encoded, &options);
    let mut out = Vec::with_capacity(MAGIC.len() + FRAME_BYTES + message.len());
    out.extend_from_slice(MAGIC);
    frame(&mut out, &message);
    out
}

/// One record: `batch` appended under `sequence`.
pub fn encode_record(sequence: u64, batch: &RecordBatch) -> Result<Vec<u8>> {
    let messages = encode_batch(batch)?;
    let mut out = Vec::with_capacity(FRAME_BYTES + 8 + messages.len());
    frame_record(&mut out, sequence, &messages);
    Ok(out)
}

/// The Arrow IPC messages of `batch`, ready for [`frame_record`] (the
/// costly part of an append, done before its sequence number is known).
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let options = IpcWriteOptions::default();
    let mut tracker = DictionaryTracker::new(false);
    let (dictionaries, message) = IpcDataGenerator::default()
        .encode(
            batch,
            &mut tracker,
            &options,
            &mut IpcWriteContext::default(),
        )
        .map_err(|e| Error::Arrow(std::sync::Arc::new(e)))?;
    let mut messages = Vec::new();
    for encoded in dictionaries.into_iter().chain(std::iter::once(message)) {
        write_message(&mut messages, encoded, &options)
            .map_err(|e| Error::Arrow(std::sync::Arc::new(e)))?;
    }
    if messages.len() + 8 > MAX_RECORD_BYTES {
        return Err(Error::LimitExceeded {
            what: "one append to the write-ahead log".into(),
            limit: format!("{MAX_RECORD_BYTES} bytes"),
            detail: format!(
                "{} rows encode to {} bytes",
                batch.num_rows(),
                messages.len()
            ),
        });
    }
    Ok(messages)
}

/// Appends the record of `messages` (from [`encode_batch`]) under
/// `sequence` to `out`.
pub fn frame_record(out: &mut Vec<u8>, sequence: u64, messages: &[u8]) {
    let sequence = sequence.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&sequence);
    crc.update(messages);
    out.extend_from_slice(&((sequence.len() + messages.len()) as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&sequence);
    out.extend_from_slice(messages);
}

fn frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// What a segment file held.
#[derive(Debug)]
pub struct Segment {
    /// The schema its records were written with.
    pub schema: SchemaRef,
    /// Its whole records, in order: sequence number and rows.
    pub records: Vec<(u64, RecordBatch)>,
    /// Bytes after the last whole record (a write torn by a crash, never
    /// acknowledged); zero for a segment closed cleanly.
    pub torn_bytes: usize,
}

/// Reads a segment's bytes; `path` names it in errors.
pub fn decode_segment(path: &str, bytes: &[u8]) -> Result<Segment> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("not a Wavelake write-ahead log segment (bad magic)".into()))?;
    let (schema_message, mut rest) = match unframe(rest) {
        Frame::Whole { body, rest } => (body, rest),
        Frame::Torn | Frame::Damaged => {
            return Err(corrupt("the segment's schema header is damaged".into()));
        }
    };
    let schema = std::panic::catch_unwind(|| try_schema_from_ipc_buffer(schema_message))
        .map_err(|_| corrupt("the segment's schema header cannot be decoded".into()))?
        .map_err(|e| corrupt(format!("the segment's schema header: {e}")))?;
    let schema = std::sync::Arc::new(schema);
    // The decoder takes the schema message now and the records after it.
    let mut decoder = StreamDecoder::new();
    decoder
        .decode(&mut Buffer::from(schema_message))
        .map_err(|e| corrupt(format!("the segment's schema header: {e}")))?;
    let mut records: Vec<(u64, RecordBatch)> = Vec::new();
    loop {
        if rest.is_empty() {
            return Ok(Segment {
                schema,
                records,
                torn_bytes: 0,
            });
        }
        let body = match unframe(rest) {
            Frame::Whole { body, rest: after } => {
                rest = after;
                body
            }
            Frame::Torn | Frame::Damaged => {
                return Ok(Segment {
                    schema,
                    records,
                    torn_bytes: rest.len(),
                });
            }
        };
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decode_body(&mut decoder, body)
        }))
        .unwrap_or_else(|_| Err("the Arrow decoder failed on it".into()));
        let (sequence, batch) =
            decoded.map_err(|e| corrupt(format!("record {}: {e}", records.len() + 1)))?;
        if records.last().is_some_and(|(last, _)| *last >= sequence) {
            return Err(corrupt(format!(
                "record {} has sequence number {sequence}, not above the one before it",
                records.len() + 1
            )));
        }
        records.push((sequence, batch));
    }
}

enum Frame<'a> {
    Whole {
        body: &'a [u8],
        rest: &'a [u8],
    },
    /// The bytes end inside the frame.
    Torn,
    /// A length no record has, or a checksum that does not match.
    Damaged,
}

fn unframe(bytes: &[u8]) -> Frame<'_> {
    let Some((header, rest)) = bytes.split_first_chunk::<FRAME_BYTES>() else {
        return Frame::Torn;
    };
    let (len, crc) = header.split_at(4);
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if len > MAX_RECORD_BYTES {
        return Frame::Damaged;
    }
    if rest.len() < len {
        return Frame::Torn;
    }
    let (body, rest) = rest.split_at(len);
    if crc32fast::hash(body) != crc {
        return Frame::Damaged;
    }
    Frame::Whole { body, rest }
}

fn decode_body(
    decoder: &mut StreamDecoder,
    body: &[u8],
) -> std::result::Result<(u64, RecordBatch), String> {
    let (sequence, messages) = body
        .split_first_chunk::<8>()
        .ok_or("shorter than its sequence number")?;
    let sequence = u64::from_le_bytes(*sequence);
    let mut buffer = Buffer::from(messages);
    let mut batch = None;
    while !buffer.is_empty() {
        if let Some(decoded) = decoder.decode(&mut buffer).map_err(|e| e.to_string())? {
            if batch.is_some() {
                return Err("holds more than one record batch".into());
            }
            batch = Some(decoded);
        }
    }
    let batch = batch.ok_or("holds no record batch")?;
    Ok((sequence, batch))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use proptest::prelude::*;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(ids: &[i64]) -> RecordBatch {
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 3 != 0).then(|| format!("row {i}")))
            .collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn segment(appends: &[Vec<i64>]) -> Vec<u8> {
        let mut bytes = encode_header(&schema());
        for (i, ids) in appends.iter().enumerate() {
            bytes.extend(encode_record(i as u64 + 7, &batch(ids)).unwrap());
        }
        bytes
    }

    #[test]
    fn records_read_back_in_order_with_their_sequence_numbers() {
        let bytes = segment(&[vec![1], vec![2, 3, 4], vec![]]);
        let read = decode_segment("s", &bytes).unwrap();
        assert_eq!(read.schema, schema());
        assert_eq!(read.torn_bytes, 0);
        let sequences: Vec<u64> = read.records.iter().map(|(s, _)| *s).collect();
        assert_eq!(sequences, [7, 8, 9]);
        assert_eq!(read.records[1].1, batch(&[2, 3, 4]));
        assert_eq!(read.records[2].1.num_rows(), 0);
    }

    #[test]
    fn a_torn_or_damaged_tail_is_dropped_and_counted() {
        let whole = segment(&[vec![1], vec![2, 3]]);
        let cut = &whole[..whole.len() - 5];
        let read = decode_segment("s", cut).unwrap();
        assert_eq!(read.records.len(), 1);
        let second = encode_record(8, &batch(&[2, 3])).unwrap();
        assert_eq!(read.torn_bytes, second.len() - 5);

        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let read = decode_segment("s", &flipped).unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.torn_bytes, second.len());
    }

    #[test]
    fn a_damaged_header_or_foreign_file_is_an_error() {
        let mut bytes = segment(&[vec![1]]);
        bytes[MAGIC.len() + 10] ^= 1;
        let err = decode_segment("wal/1.wal", &bytes).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path, reason }
                if path == "wal/1.wal" && reason.contains("schema header")),
            "{err}"
        );
        let err = decode_segment("x", b"PAR1....").unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
    }

    #[test]
    fn sequence_numbers_must_rise() {
        let mut bytes = encode_header(&schema());
        bytes.extend(encode_record(5, &batch(&[1])).unwrap());
        bytes.extend(encode_record(5, &batch(&[2])).unwrap());
        let err = decode_segment("s", &bytes).unwrap_err();
        assert!(err.to_string().contains("not above"), "{err}");
    }

    proptest! {
        #[test]
        fn any_prefix_reads_as_the_whole_records_it_holds(
            appends in prop::collection::vec(prop::collection::vec(any::<i64>(), 0..20), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = segment(&appends);
            let header = encode_header(&schema()).len();
            let end = header + cut.index(bytes.len() - header + 1);
            let read = decode_segment("s", &bytes[..end]).unwrap();
            let mut offset = header;
            let mut whole = 0;
            for (i, ids) in appends.iter().enumerate() {
                offset += encode_record(i as u64 + 7, &batch(ids)).unwrap().len();
                if offset <= end {
                    whole += 1;
                }
            }
            prop_assert_eq!(read.records.len(), whole);
            for ((_, got), ids) in read.records.iter().zip(&appends) {
                prop_assert_eq!(got, &batch(ids));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            tail in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = segment(&[vec![1, 2]]);
            let _ = decode_segment("s", &tail);
            bytes.extend(tail);
            let _ = decode_segment("s", &bytes);
        }
    }
}
