//! The messages workers of a group send each other: rows of one partition
//! of one exchange (an Arrow IPC stream holding one batch), the end of a
//! worker's rows for that partition, or the failure that cut them short.
//!
//! Layout, little-endian: `WLX1`, a kind byte, the query id (u64), the
//! plan's fingerprint (u64), the exchange, the partition and the sending
//! worker (u32 each), then the payload.
//!
//! Messages pass only between workers of one host running the same build
//! (a page's Web Workers): the header is checked, and a message cut short
//! is an error, but the Arrow IPC body is read as the sender's encoder
//! wrote it (Arrow's reader does not survive every corruption of a
//! schema).

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"WLX1";
const HEADER_LEN: usize = 4 + 1 + 8 + 8 + 4 + 4 + 4;

const KIND_ROWS: u8 = 1;
const KIND_END: u8 = 2;
const KIND_FAILED: u8 = 3;

/// Where a message belongs: which query, plan, exchange, partition and
/// sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The query, as numbered by whoever started it on every worker.
    pub query: u64,
    /// The fingerprint of the plan the sender runs.
    pub plan: u64,
    /// The exchange within the plan.
    pub exchange: u32,
    /// The exchange's output partition.
    pub partition: u32,
    /// The worker that sent it.
    pub from: u32,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Rows of the partition.
    Rows(RecordBatch),
    /// The sender has no more rows for the partition.
    End,
    /// The sender failed; no more rows will come.
    Failed(String),
}

/// One message between workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Where it belongs.
    pub address: Address,
    /// What it carries.
    pub payload: Payload,
}

impl Message {
    /// The message as bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + 64);
        bytes.extend_from_slice(MAGIC);
        bytes.push(match self.payload {
            Payload::Rows(_) => KIND_ROWS,
            Payload::End => KIND_END,
            Payload::Failed(_) => KIND_FAILED,
        });
        let address = &self.address;
        bytes.extend_from_slice(&address.query.to_le_bytes());
        bytes.extend_from_slice(&address.plan.to_le_bytes());
        bytes.extend_from_slice(&address.exchange.to_le_bytes());
        bytes.extend_from_slice(&address.partition.to_le_bytes());
        bytes.extend_from_slice(&address.from.to_le_bytes());
        match &self.payload {
            Payload::Rows(batch) => {
                let batch = compact_views(batch)?;
                let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())
                    .map_err(|e| Error::Arrow(e.into()))?;
                writer.write(&batch).map_err(|e| Error::Arrow(e.into()))?;
                writer.finish().map_err(|e| Error::Arrow(e.into()))?;
            }
            Payload::End => {}
            Payload::Failed(reason) => bytes.extend_from_slice(reason.as_bytes()),
        }
        Ok(bytes)
    }

    /// Reads a message; anything but a well-formed one is a `WorkerGroup`
    /// error.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let malformed = |why: &str| Error::WorkerGroup {
            reason: format!("malformed exchange message ({} bytes): {why}", bytes.len()),
        };
        if bytes.len() < HEADER_LEN {
            return Err(malformed("shorter than its header"));
        }
        let (header, body) = bytes.split_at(HEADER_LEN);
        if &header[..4] != MAGIC {
            return Err(malformed("not an exchange message"));
        }
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let u32_at = |at: usize| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(word)
        };
        let address = Address {
            query: u64_at(5),
            plan: u64_at(13),
            exchange: u32_at(21),
            partition: u32_at(25),
            from: u32_at(29),
        };
        let payload = match header[4] {
            KIND_ROWS => Payload::Rows(read_batch(body).map_err(|why| malformed(&why))?),
            KIND_END if body.is_empty() => Payload::End,
            KIND_END => return Err(malformed("an end with a body")),
            KIND_FAILED => Payload::Failed(String::from_utf8_lossy(body).into_owned()),
            _ => return Err(malformed("unknown kind")),
        };
        Ok(Self { address, payload })
    }
}

/// `batch` with its string and binary views holding only the bytes they
/// point at: a view column taken or sliced from a larger one shares that
/// one's buffers, which Arrow IPC would otherwise write whole.
fn compact_views(batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View => Arc::new(column.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(column.as_binary_view().gc()) as ArrayRef,
            _ => Arc::clone(column),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| Error::Arrow(e.into()))
}

/// The one batch of an Arrow IPC stream.
fn read_batch(body: &[u8]) -> std::result::Result<RecordBatch, String> {
    let mut reader = StreamReader::try_new(Cursor::new(body), None).map_err(|e| e.to_string())?;
    let batch = match reader.next() {
        Some(Ok(batch)) => batch,
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("rows without a batch".into()),
    };
    match reader.next() {
        None => Ok(batch),
        Some(_) => Err("more than one batch".into()),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use proptest::prelude::*;

    use super::*;

    fn address() -> Address {
        Address {
            query: 7,
            plan: 0xfeed,
            exchange: 3,
            partition: 1,
            from: 2,
        }
    }

    fn batch(values: &[i64], names: &[Option<String>]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(values.to_vec())) as arrow::array::ArrayRef,
            ),
            ("name", Arc::new(StringArray::from(names.to_vec())) as _),
        ])
        .unwrap()
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        for payload in [
            Payload::Rows(batch(&[1, 2], &[Some("a".into()), None])),
            Payload::End,
            Payload::Failed("disk on fire".into()),
        ] {
            let message = Message {
                address: address(),
                payload,
            };
            assert_eq!(
                Message::decode(&message.encode().unwrap()).unwrap(),
                message
            );
        }
    }

    #[test]
    fn a_few_views_of_a_large_column_are_sent_without_it() {
        let long: Vec<String> = (0..10_000)
            .map(|i| format!("a string long enough {i}"))
            .collect();
        let column = arrow::array::StringViewArray::from_iter_values(long.iter());
        let few = arrow::compute::take(
            &column,
            &arrow::array::UInt32Array::from(vec![1, 9_999]),
            None,
        )
        .unwrap();
        let batch = RecordBatch::try_from_iter([("s", few)]).unwrap();
        let message = Message {
            address: address(),
            payload: Payload::Rows(batch),
        };
        let bytes = message.encode().unwrap();
        assert!(bytes.len() < 2_000, "{} bytes for two strings", bytes.len());
        assert_eq!(Message::decode(&bytes).unwrap(), message);
    }

    #[test]
    fn malformed_messages_are_errors() {
        let rows = Message {
            address: address(),
            payload: Payload::Rows(batch(&[1], &[None])),
        }
        .encode()
        .unwrap();
        let end = Message {
            address: address(),
            payload: Payload::End,
        }
        .encode()
        .unwrap();
        let mut wrong_magic = end.clone();
        wrong_magic[0] = b'X';
        let mut wrong_kind = end.clone();
        wrong_kind[4] = 9;
        let mut end_with_body = end.clone();
        end_with_body.push(0);
        let mut two_batches = rows.clone();
        two_batches.extend_from_slice(&rows[HEADER_LEN..]);
        for bytes in [
            &end[..10],
            &wrong_magic[..],
            &wrong_kind[..],
            &end_with_body[..],
            &rows[..rows.len() - 9],
            &rows[..HEADER_LEN],
        ] {
            let error = Message::decode(bytes).unwrap_err();
            assert!(matches!(error, Error::WorkerGroup { .. }), "{error}");
        }
    }

    proptest! {
        #[test]
        fn rows_read_back(values in proptest::collection::vec(any::<i64>(), 0..200),
                          text in "[a-z]{0,12}") {
            let names: Vec<Option<String>> = values
                .iter()
                .map(|v| (v % 3 != 0).then(|| text.clone()))
                .collect();
            let message = Message { address: address(), payload: Payload::Rows(batch(&values, &names)) };
            prop_assert_eq!(Message::decode(&message.encode().unwrap()).unwrap(), message);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn cut_rows_are_errors(cut in 0usize..400) {
            let bytes = Message { address: address(), payload: Payload::Rows(batch(&[5, 6, 7], &[None, Some("x".into()), None])) }
                .encode().unwrap();
            prop_assume!(cut < bytes.len());
            prop_assert!(Message::decode(&bytes[..cut]).is_err());
        }
    }
}
