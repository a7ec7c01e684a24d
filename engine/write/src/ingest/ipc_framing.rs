//! The framing of an Arrow IPC stream checked against the bytes there are,
//! before Arrow's reader sees it: the reader allocates each message's
//! metadata and body at the sizes the stream declares, so a 400-byte upload
//! declaring a 1 TiB body would abort the process. Here every declared size
//! must fit in what is left of the file.

use std::io::{ErrorKind, Read, Seek, SeekFrom};

/// The marker before each message's length (since Arrow 0.15).
const CONTINUATION: u32 = 0xFFFF_FFFF;

/// Checks that every message of the stream in `reader` declares metadata
/// and a body that fit in the stream's `len` bytes. Leaves the reader at
/// the start. An error says which size does not fit.
pub fn check_stream<R: Read + Seek>(reader: &mut R, len: u64) -> Result<(), String> {
    reader.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let outcome = check_messages(reader, len);
    reader.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    outcome
}

fn check_messages<R: Read + Seek>(reader: &mut R, len: u64) -> Result<(), String> {
    let mut at: u64 = 0;
    let mut metadata = Vec::new();
    loop {
        let Some(mut word) = read_u32(reader)? else {
            return Ok(());
        };
        at += 4;
        if word == CONTINUATION {
            word = read_u32(reader)?.ok_or("the stream ends inside a message length")?;
            at += 4;
        }
        let metadata_len = i32::from_le_bytes(word.to_le_bytes());
        if metadata_len == 0 {
            return Ok(());
        }
        let metadata_len = u64::try_from(metadata_len)
            .map_err(|_| format!("a message declares a negative length {metadata_len}"))?;
        let left = len.saturating_sub(at);
        if metadata_len > left {
            return Err(format!(
                "a message declares {metadata_len} bytes of metadata at byte {at}, but only \
                 {left} bytes follow"
            ));
        }
        metadata.resize(usize::try_from(metadata_len).map_err(|e| e.to_string())?, 0);
        reader
            .read_exact(&mut metadata)
            .map_err(|e| e.to_string())?;
        at += metadata_len;
        let message = arrow::ipc::root_as_message(&metadata)
            .map_err(|e| format!("a message's metadata is not valid: {e}"))?;
        let body = u64::try_from(message.bodyLength()).map_err(|_| {
            format!(
                "a message declares a negative body {}",
                message.bodyLength()
            )
        })?;
        let left = len.saturating_sub(at);
        if body > left {
            return Err(format!(
                "a message declares a body of {body} bytes at byte {at}, but only {left} bytes \
                 follow"
            ));
        }
        let skip = i64::try_from(body).map_err(|e| e.to_string())?;
        reader
            .seek(SeekFrom::Current(skip))
            .map_err(|e| e.to_string())?;
        at += body;
    }
}

/// The next little-endian `u32`, `None` at the end of the stream.
fn read_u32<R: Read>(reader: &mut R) -> Result<Option<u32>, String> {
    let mut bytes = [0u8; 4];
    match reader.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u32::from_le_bytes(bytes))),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn stream() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let mut bytes = Vec::new();
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &schema).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        bytes
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        check_stream(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn a_real_stream_passes_and_the_reader_is_rewound() {
        let bytes = stream();
        let mut cursor = Cursor::new(bytes.as_slice());
        check_stream(&mut cursor, bytes.len() as u64).unwrap();
        assert_eq!(cursor.position(), 0);
    }

    #[test]
    fn a_body_larger_than_the_upload_is_refused_before_any_allocation() {
        // The record batch message's metadata, its body length set to 1 TiB.
        let bytes = stream();
        let mut offsets = Vec::new();
        let mut at = 0usize;
        while at + 8 <= bytes.len() {
            let len = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
            if len <= 0 {
                break;
            }
            let metadata = &bytes[at + 8..at + 8 + len as usize];
            let message = arrow::ipc::root_as_message(metadata).unwrap();
            offsets.push((at, len as usize, message.bodyLength()));
            at += 8 + len as usize + message.bodyLength() as usize;
        }
        let (batch_at, batch_len, body) = offsets[1];
        assert!(body > 0);
        let metadata = &bytes[batch_at + 8..batch_at + 8 + batch_len];
        let needle = body.to_le_bytes();
        let position = metadata
            .windows(8)
            .position(|w| w == needle)
            .expect("the body length is in the metadata");
        let mut forged = bytes[..batch_at + 8 + batch_len].to_vec();
        forged[batch_at + 8 + position..batch_at + 16 + position]
            .copy_from_slice(&(1i64 << 40).to_le_bytes());
        let err = check(&forged).unwrap_err();
        assert!(err.contains("body of 1099511627776 bytes"), "{err}");
    }

    #[test]
    fn lengths_beyond_the_end_and_garbage_are_refused() {
        let mut huge = CONTINUATION.to_le_bytes().to_vec();
        huge.extend(i32::MAX.to_le_bytes());
        assert!(check(&huge).unwrap_err().contains("metadata"));
        let mut negative = CONTINUATION.to_le_bytes().to_vec();
        negative.extend((-5i32).to_le_bytes());
        assert!(check(&negative).unwrap_err().contains("negative"));
        let mut garbage = CONTINUATION.to_le_bytes().to_vec();
        garbage.extend(8i32.to_le_bytes());
        garbage.extend([0xAB; 8]);
        assert!(check(&garbage).is_err());
        assert!(check(&[]).is_ok());
        assert!(check(&[1, 2]).is_ok());
    }
}
