//! The sizes a Parquet page header declares, read before the parquet
//! crate decompresses the page: it allocates a page's declared
//! uncompressed size (up to 2 GiB, an `i32`) and a small, highly
//! compressed page can really expand that far, so one file could make a
//! reader hold gigabytes. The parquet crate does not expose its page header
//! decoder, so this reads the header's Thrift compact encoding far enough
//! to know its sizes and where the next page starts.
//!
//! Every page of a column chunk must declare at most [`MAX_PAGE_BYTES`]
//! uncompressed; [`check_pages`] walks a file's pages through any
//! [`ChunkReader`], [`check_fetched_pages`] the pages inside bytes a scan
//! fetched.

use std::collections::HashSet;

use bytes::Bytes;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

use crate::{Error, Result};

/// The most a page may declare it decompresses to. Writers cut pages at
/// about 1 MiB (dictionary pages too); a page declaring more than this is
/// refused before it is decompressed.
pub const MAX_PAGE_BYTES: i64 = 256 << 20;

/// How deep Thrift structures may nest in a page header (statistics inside
/// a data page header inside the page header, and some room).
const MAX_DEPTH: usize = 16;

/// A page header's sizes and its own length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    /// Bytes of the header itself.
    pub header_len: usize,
    /// What the page declares it decompresses to.
    pub uncompressed: i64,
    /// Bytes of the page after its header.
    pub compressed: i64,
}

/// Reads the page header at the start of `bytes`: `Ok(None)` when `bytes`
/// end before the header does, an error when it is not a page header.
pub fn read_page_sizes(bytes: &[u8]) -> std::result::Result<Option<PageSizes>, String> {
    let mut reader = Compact { bytes, at: 0 };
    let mut uncompressed = None;
    let mut compressed = None;
    let outcome = (|| {
        let mut last_id = 0i16;
        loop {
            let Some((id, kind)) = reader.field_header(&mut last_id)? else {
                return Ok(());
            };
            match (id, kind) {
                (2, I32) => uncompressed = Some(reader.varint_signed()?),
                (3, I32) => compressed = Some(reader.varint_signed()?),
                _ => reader.skip(kind, 0)?,
            }
        }
    })();
    match outcome {
        Err(Truncated::End) => Ok(None),
        Err(Truncated::Invalid(why)) => Err(why),
        Ok(()) => match (uncompressed, compressed) {
            (Some(uncompressed), Some(compressed)) => Ok(Some(PageSizes {
                header_len: reader.at,
                uncompressed,
                compressed,
            })),
            _ => Err("a page header without its sizes".into()),
        },
    }
}

/// Checks every page of every column chunk of a file read through
/// `reader` (whose footer [`super::check_layout`] accepted).
pub fn check_pages<R: ChunkReader>(
    path: &str,
    metadata: &ParquetMetaData,
    reader: &R,
) -> Result<()> {
    for group in metadata.row_groups() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let (Ok(start), Ok(length)) = (
                u64::try_from(start),
                u64::try_from(column.compressed_size()),
            ) else {
                return Err(Error::corrupt(
                    path,
                    "a column chunk has a negative offset or size",
                ));
            };
            let end = start.saturating_add(length);
            let mut at = start;
            while at < end {
                let sizes = header_at(path, reader, at, end)?;
                check_sizes(path, &sizes, at)?;
                at = at
                    .saturating_add(sizes.header_len as u64)
                    .saturating_add(sizes.compressed as u64);
            }
        }
    }
    Ok(())
}

/// The page header at `at`, read from `reader` in growing pieces (a header
/// with long statistics can be large) but never past `end`.
fn header_at<R: ChunkReader>(path: &str, reader: &R, at: u64, end: u64) -> Result<PageSizes> {
    let mut want = 256u64;
    loop {
        let len = want.min(end - at);
        let bytes = reader
            .get_bytes(at, usize::try_from(len).unwrap_or(usize::MAX))
            .map_err(|e| {
                Error::corrupt(path, format!("a page at byte {at} cannot be read: {e}"))
            })?;
        match read_page_sizes(&bytes) {
            Ok(Some(sizes)) => return Ok(sizes),
            Ok(None) if len < end - at => want = want.saturating_mul(4),
            Ok(None) => {
                return Err(Error::corrupt(
                    path,
                    format!("the page header at byte {at} runs past its column chunk"),
                ));
            }
            Err(why) => {
                return Err(Error::corrupt(
                    path,
                    format!("the page header at byte {at} is not valid: {why}"),
                ));
            }
        }
    }
}

/// Checks the pages inside `bytes`, fetched from the file at `start`, when
/// `start` is where a column chunk or an indexed page begins (other
/// fetches are not page-aligned and are left alone). Pages that continue
/// past the fetched bytes are checked as far as their headers reach.
pub fn check_fetched_pages(
    path: &str,
    page_starts: &HashSet<u64>,
    start: u64,
    bytes: &Bytes,
) -> Result<()> {
    if !page_starts.contains(&start) {
        return Ok(());
    }
    let mut at = 0usize;
    while at < bytes.len() {
        let sizes = match read_page_sizes(&bytes[at..]) {
            Ok(Some(sizes)) => sizes,
            Ok(None) => return Ok(()),
            Err(why) => {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "the page header at byte {} is not valid: {why}",
                        start + at as u64
                    ),
                ));
            }
        };
        check_sizes(path, &sizes, start + at as u64)?;
        let next = (sizes.header_len as u64).saturating_add(sizes.compressed as u64);
        at = at.saturating_add(usize::try_from(next).unwrap_or(usize::MAX));
    }
    Ok(())
}

/// Where the pages of `metadata` may begin: each column chunk's start and,
/// where the offset index was read, each indexed page's.
pub fn page_starts(metadata: &ParquetMetaData) -> HashSet<u64> {
    let mut starts = HashSet::new();
    for group in metadata.row_groups() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            if let Ok(start) = u64::try_from(start) {
                starts.insert(start);
            }
        }
    }
    if let Some(index) = metadata.offset_index() {
        for group in index {
            for column in group {
                for page in column.page_locations() {
                    if let Ok(offset) = u64::try_from(page.offset) {
                        starts.insert(offset);
                    }
                }
            }
        }
    }
    starts
}

fn check_sizes(path: &str, sizes: &PageSizes, at: u64) -> Result<()> {
    if sizes.uncompressed < 0 || sizes.compressed < 0 {
        return Err(Error::corrupt(
            path,
            format!("the page at byte {at} declares a negative size"),
        ));
    }
    if sizes.uncompressed > MAX_PAGE_BYTES {
        return Err(Error::LimitExceeded {
            what: "a Parquet page".into(),
            limit: format!("{MAX_PAGE_BYTES} bytes uncompressed"),
            detail: format!(
                "the page at byte {at} of {path} declares {} bytes",
                sizes.uncompressed
            ),
        });
    }
    Ok(())
}

/// Thrift compact type ids.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

/// Why a header could not be read.
enum Truncated {
    /// The bytes end inside it.
    End,
    /// It is not valid Thrift.
    Invalid(String),
}

impl From<String> for Truncated {
    fn from(why: String) -> Self {
        Self::Invalid(why)
    }
}

type Step<T> = std::result::Result<T, Truncated>;

/// A reader of the Thrift compact protocol over a byte slice.
struct Compact<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Compact<'_> {
    fn byte(&mut self) -> Step<u8> {
        let byte = *self.bytes.get(self.at).ok_or(Truncated::End)?;
        self.at += 1;
        Ok(byte)
    }

    fn advance(&mut self, n: u64) -> Step<()> {
        let n = usize::try_from(n).map_err(|_| Truncated::End)?;
        let end = self.at.checked_add(n).ok_or(Truncated::End)?;
        if end > self.bytes.len() {
            return Err(Truncated::End);
        }
        self.at = end;
        Ok(())
    }

    fn varint(&mut self) -> Step<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err("a varint longer than 64 bits".to_owned().into());
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 64 bits".to_owned().into())
    }

    fn varint_signed(&mut self) -> Step<i64> {
        let zigzag = self.varint()?;
        Ok(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
    }

    /// The next field's id and type, `None` at the struct's end.
    fn field_header(&mut self, last_id: &mut i16) -> Step<Option<(i16, u8)>> {
        let byte = self.byte()?;
        if byte == 0 {
            return Ok(None);
        }
        let kind = byte & 0x0f;
        let delta = byte >> 4;
        let id = if delta == 0 {
            i16::try_from(self.varint_signed()?)
                .map_err(|_| Truncated::Invalid("a field id out of range".into()))?
        } else {
            last_id.saturating_add(i16::from(delta))
        };
        *last_id = id;
        Ok(Some((id, kind)))
    }

    /// Skips one value of type `kind`.
    fn skip(&mut self, kind: u8, depth: usize) -> Step<()> {
        if depth > MAX_DEPTH {
            return Err("a page header nested too deeply".to_owned().into());
        }
        match kind {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.advance(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.advance(8),
            UUID => self.advance(16),
            BINARY => {
                let len = self.varint()?;
                self.advance(len)
            }
            LIST | SET => {
                let header = self.byte()?;
                let element = header & 0x0f;
                let mut count = u64::from(header >> 4);
                if count == 15 {
                    count = self.varint()?;
                }
                self.skip_elements(element, count, depth)
            }
            MAP => {
                let count = self.varint()?;
                if count == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                for _ in 0..count {
                    self.skip_element(types >> 4, depth)?;
                    self.skip_element(types & 0x0f, depth)?;
                }
                Ok(())
            }
            STRUCT => {
                let mut last_id = 0i16;
                while let Some((_, field)) = self.field_header(&mut last_id)? {
                    self.skip(field, depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("an unknown Thrift type {other}").into()),
        }
    }

    fn skip_elements(&mut self, element: u8, count: u64, depth: usize) -> Step<()> {
        // Each element takes at least a byte (or none, for booleans in a
        // map key/value position, which a list never holds): a count past
        // the bytes left is a header cut short.
        if count > (self.bytes.len() - self.at) as u64 {
            return Err(Truncated::End);
        }
        for _ in 0..count {
            self.skip_element(element, depth)?;
        }
        Ok(())
    }

    /// One element of a list, set or map: booleans take a byte there.
    fn skip_element(&mut self, kind: u8, depth: usize) -> Step<()> {
        match kind {
            BOOL_TRUE | BOOL_FALSE => self.advance(1),
            other => self.skip(other, depth + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    fn file() -> Bytes {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..50_000)) as arrow::array::ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    (0..50_000).map(|i| format!("name {}", i % 700)),
                )),
            ),
        ])
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_data_page_size_limit(4096)
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    fn metadata(bytes: &Bytes) -> Arc<ParquetMetaData> {
        SerializedFileReader::new(bytes.clone())
            .unwrap()
            .metadata()
            .clone()
            .into()
    }

    #[test]
    fn the_pages_of_a_real_file_are_walked_to_their_ends() {
        let bytes = file();
        let metadata = metadata(&bytes);
        check_pages("f.parquet", &metadata, &bytes).unwrap();
        // The walk lands exactly on each chunk's end: the sizes read are
        // the parquet crate's own.
        let column = metadata.row_group(0).column(0);
        let start = column
            .dictionary_page_offset()
            .unwrap_or(column.data_page_offset()) as usize;
        let end = start + column.compressed_size() as usize;
        let (mut at, mut pages) = (start, 0);
        while at < end {
            let sizes = read_page_sizes(&bytes[at..]).unwrap().unwrap();
            assert!(sizes.uncompressed >= sizes.compressed / 2);
            at += sizes.header_len + sizes.compressed as usize;
            pages += 1;
        }
        assert_eq!(at, end);
        assert!(pages > 10, "{pages} pages");
        let starts = page_starts(&metadata);
        check_fetched_pages("f.parquet", &starts, start as u64, &bytes.slice(start..end)).unwrap();
    }

    /// The file with the first page header's uncompressed size set to
    /// `size` (a zigzag varint rewritten in place, same length).
    fn with_declared_size(size: i64) -> (Bytes, usize) {
        let bytes = file();
        let metadata = metadata(&bytes);
        let column = metadata.row_group(0).column(0);
        let start = column
            .dictionary_page_offset()
            .unwrap_or(column.data_page_offset()) as usize;
        let mut out = bytes.to_vec();
        // Field 1 (the page type) comes first, then field 2: each a header
        // byte 0x15 (id delta 1, type i32) and a varint.
        assert_eq!(out[start], 0x15);
        let mut at = start + 1;
        while out[at] & 0x80 != 0 {
            at += 1;
        }
        at += 1;
        assert_eq!(out[at], 0x15);
        at += 1;
        let mut old_len = 0;
        while out[at + old_len] & 0x80 != 0 {
            old_len += 1;
        }
        old_len += 1;
        let zigzag = ((size << 1) ^ (size >> 63)) as u64;
        let mut encoded = Vec::new();
        let mut v = zigzag;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                encoded.push(byte);
                break;
            }
            encoded.push(byte | 0x80);
        }
        out.splice(at..at + old_len, encoded);
        (Bytes::from(out), start)
    }

    #[test]
    fn a_page_declaring_gigabytes_is_refused_by_name() {
        let (bytes, start) = with_declared_size(2_000_000_000);
        let metadata = metadata(&file());
        let err = check_pages("f.parquet", &metadata, &bytes).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
        assert!(err.to_string().contains("2000000000"), "{err}");
        let starts = page_starts(&metadata);
        let fetched = bytes.slice(start..start + 4096);
        let err = check_fetched_pages("f.parquet", &starts, start as u64, &fetched).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    }

    #[test]
    fn a_negative_size_and_garbage_are_corrupt() {
        let (bytes, _) = with_declared_size(-5);
        let metadata = metadata(&file());
        let err = check_pages("f.parquet", &metadata, &bytes).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(read_page_sizes(&[0x1f, 0x00]).is_err(), "an unknown type");
        assert_eq!(read_page_sizes(&[0x15]), Ok(None));
        assert!(read_page_sizes(&[0x00]).is_err(), "no sizes");
        // A list claiming more elements than bytes left is a cut header.
        assert_eq!(read_page_sizes(&[0x19, 0xf5, 0xff, 0x7f]), Ok(None));
    }
}
