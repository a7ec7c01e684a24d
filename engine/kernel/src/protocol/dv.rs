//! Deletion vectors: the descriptor stored in `add` actions and the
//! `RoaringBitmapArray` format of the bitmap itself (pure decoding, no IO).

use std::io::Cursor;

use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};

/// Magic number that starts a serialized `RoaringBitmapArray`.
const ROARING_ARRAY_MAGIC: u32 = 1_681_511_377;

/// Where a deletion vector is stored and how big it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionVectorDescriptor {
    /// `u` (UUID-named file beside the table), `i` (inline) or `p` (absolute path).
    pub storage_type: String,
    /// The random prefix and z85 UUID, the z85 inline bitmap, or the path.
    pub path_or_inline_dv: String,
    /// Byte offset of the vector within its file (file storage only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i32>,
    /// Size of the serialized bitmap in bytes.
    pub size_in_bytes: i32,
    /// Number of deleted rows.
    pub cardinality: i64,
}

/// Where to find a deletion vector's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DvLocation {
    /// The serialized bitmap itself (storage type `i`).
    Inline(Vec<u8>),
    /// A range of a file: `path` is relative to the table root, or an
    /// absolute URI for storage type `p`.
    File {
        /// The file holding the vector.
        path: String,
        /// Offset of the vector's 4-byte size prefix.
        offset: u64,
    },
}

impl DeletionVectorDescriptor {
    /// The id under which log replay tells deletion vectors apart.
    pub fn unique_id(&self) -> String {
        match self.offset {
            Some(offset) => format!("{}{}@{offset}", self.storage_type, self.path_or_inline_dv),
            None => format!("{}{}", self.storage_type, self.path_or_inline_dv),
        }
    }

    /// Resolves the descriptor to inline bytes or a file range.
    pub fn location(&self) -> Result<DvLocation, String> {
        let offset = u64::try_from(self.offset.unwrap_or(1))
            .map_err(|_| format!("negative offset {:?}", self.offset))?;
        match self.storage_type.as_str() {
            "i" => {
                let mut bytes = z85::decode(&self.path_or_inline_dv)
                    .map_err(|e| format!("inline vector is not valid z85: {e}"))?;
                let size = self.size()?;
                if bytes.len() < size {
                    return Err(format!(
                        "inline vector has {} bytes, descriptor says {size}",
                        bytes.len()
                    ));
                }
                bytes.truncate(size);
                Ok(DvLocation::Inline(bytes))
            }
            "u" => {
                let encoded = &self.path_or_inline_dv;
                if encoded.len() < 20 || !encoded.is_char_boundary(encoded.len() - 20) {
                    return Err(format!("UUID-relative path {encoded:?} is too short"));
                }
                let (prefix, z85_uuid) = encoded.split_at(encoded.len() - 20);
                let raw = z85::decode(z85_uuid)
                    .map_err(|e| format!("UUID {z85_uuid:?} is not valid z85: {e}"))?;
                let uuid = uuid::Uuid::from_slice(&raw)
                    .map_err(|e| format!("UUID {z85_uuid:?} does not decode: {e}"))?;
                let name = format!("deletion_vector_{uuid}.bin");
                let path = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                Ok(DvLocation::File { path, offset })
            }
            "p" => Ok(DvLocation::File {
                path: self.path_or_inline_dv.clone(),
                offset,
            }),
            other => Err(format!("unknown storage type {other:?}")),
        }
    }

    /// Size of the serialized bitmap, checked to be non-negative.
    pub fn size(&self) -> Result<usize, String> {
        usize::try_from(self.size_in_bytes)
            .map_err(|_| format!("negative sizeInBytes {}", self.size_in_bytes))
    }

    /// Number of bytes to read from a DV file at [`DvLocation::File`]'s
    /// offset: a 4-byte size, the bitmap and a 4-byte CRC-32.
    pub fn stored_len(&self) -> Result<u64, String> {
        Ok(self.size()? as u64 + 8)
    }

    /// Decodes the bytes read from a DV file (size prefix, bitmap, CRC-32),
    /// verifying size, checksum and cardinality.
    pub fn decode_stored(&self, stored: &[u8]) -> Result<RoaringTreemap, String> {
        let size = self.size()?;
        if stored.len() < size + 8 {
            return Err(format!(
                "expected {} bytes, storage returned {}",
                size + 8,
                stored.len()
            ));
        }
        let declared = u32::from_be_bytes([stored[0], stored[1], stored[2], stored[3]]) as usize;
        if declared != size {
            return Err(format!(
                "file declares {declared} bytes, descriptor says {size}"
            ));
        }
        let data = &stored[4..4 + size];
        let tail = &stored[4 + size..8 + size];
        let expected_crc = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let actual_crc = crc32fast::hash(data);
        if expected_crc != actual_crc {
            return Err(format!(
                "checksum mismatch: stored {expected_crc:#010x}, computed {actual_crc:#010x}"
            ));
        }
        self.decode_bitmap(data)
    }

    /// Decodes a serialized `RoaringBitmapArray` and checks its cardinality.
    pub fn decode_bitmap(&self, data: &[u8]) -> Result<RoaringTreemap, String> {
        let bitmap = decode_roaring_array(data)?;
        if bitmap.len() != self.cardinality as u64 {
            return Err(format!(
                "bitmap holds {} rows, descriptor says {}",
                bitmap.len(),
                self.cardinality
            ));
        }
        Ok(bitmap)
    }
}

/// Decodes Delta's `RoaringBitmapArray` (magic number, then the portable
/// 64-bit Roaring serialization).
pub fn decode_roaring_array(data: &[u8]) -> Result<RoaringTreemap, String> {
    if data.len() < 4 {
        return Err(format!("{} bytes is too short for a bitmap", data.len()));
    }
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    if magic != ROARING_ARRAY_MAGIC {
        return Err(format!("bad magic number {magic}"));
    }
    RoaringTreemap::deserialize_from(Cursor::new(&data[4..]))
        .map_err(|e| format!("bitmap does not decode: {e}"))
}

/// Encodes a bitmap in Delta's `RoaringBitmapArray` format.
pub fn encode_roaring_array(bitmap: &RoaringTreemap) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + bitmap.serialized_size());
    out.extend_from_slice(&ROARING_ARRAY_MAGIC.to_le_bytes());
    // Writing into a Vec cannot fail.
    let _ = bitmap.serialize_into(&mut out);
    out
}

/// Serialized bitmaps up to this many bytes are stored inline in the log.
pub const MAX_INLINE_DV_BYTES: usize = 64;

impl DeletionVectorDescriptor {
    /// A descriptor holding `bitmap` inline (z85, padded to a multiple of
    /// four bytes as z85 requires; `sizeInBytes` is the unpadded size).
    pub fn inline(bitmap: &RoaringTreemap) -> Self {
        let mut data = encode_roaring_array(bitmap);
        let size = data.len();
        data.resize(size.div_ceil(4) * 4, 0);
        Self {
            storage_type: "i".into(),
            path_or_inline_dv: z85::encode(&data),
            offset: None,
            size_in_bytes: i32::try_from(size).unwrap_or(i32::MAX),
            cardinality: i64::try_from(bitmap.len()).unwrap_or(i64::MAX),
        }
    }
}

/// A deletion vector file being assembled: version byte, then for each
/// vector its size, its bitmap and a CRC-32 (sizes and checksums big-endian).
#[derive(Debug, Clone)]
pub struct DeletionVectorFile {
    uuid: uuid::Uuid,
    bytes: Vec<u8>,
}

impl Default for DeletionVectorFile {
    fn default() -> Self {
        Self::new()
    }
}

impl DeletionVectorFile {
    /// An empty file with a fresh name.
    pub fn new() -> Self {
        Self {
            uuid: uuid::Uuid::new_v4(),
            bytes: vec![1],
        }
    }

    /// The file's path relative to the table root.
    pub fn path(&self) -> String {
        format!("deletion_vector_{}.bin", self.uuid)
    }

    /// Whether no vector has been added.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() <= 1
    }

    /// The file's contents.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Appends `bitmap`; its descriptor (storage type `u`).
    pub fn push(&mut self, bitmap: &RoaringTreemap) -> DeletionVectorDescriptor {
        let data = encode_roaring_array(bitmap);
        let offset = self.bytes.len();
        self.bytes
            .extend_from_slice(&(data.len() as u32).to_be_bytes());
        self.bytes.extend_from_slice(&data);
        self.bytes
            .extend_from_slice(&crc32fast::hash(&data).to_be_bytes());
        DeletionVectorDescriptor {
            storage_type: "u".into(),
            path_or_inline_dv: z85::encode(self.uuid.as_bytes()),
            offset: Some(i32::try_from(offset).unwrap_or(i32::MAX)),
            size_in_bytes: i32::try_from(data.len()).unwrap_or(i32::MAX),
            cardinality: i64::try_from(bitmap.len()).unwrap_or(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stored(bitmap: &RoaringTreemap) -> (Vec<u8>, i32) {
        let data = encode_roaring_array(bitmap);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&data);
        out.extend_from_slice(&crc32fast::hash(&data).to_be_bytes());
        (out, data.len() as i32)
    }

    fn descriptor(
        storage: &str,
        path: &str,
        size: i32,
        cardinality: u64,
    ) -> DeletionVectorDescriptor {
        DeletionVectorDescriptor {
            storage_type: storage.into(),
            path_or_inline_dv: path.into(),
            offset: Some(1),
            size_in_bytes: size,
            cardinality: cardinality as i64,
        }
    }

    #[test]
    fn uuid_path_decodes_with_prefix() {
        // From the Delta protocol's example descriptor.
        let dv = descriptor("u", "ab^-aqEH.-t@S}K{vb[*k^", 36, 2);
        let DvLocation::File { path, offset } = dv.location().expect("resolves") else {
            panic!("not a file")
        };
        assert_eq!(offset, 1);
        assert_eq!(
            path,
            "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
        );
    }

    #[test]
    fn checksum_mismatch_is_reported() {
        let bitmap: RoaringTreemap = [1u64, 5, 9].into_iter().collect();
        let (mut bytes, size) = stored(&bitmap);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let err = descriptor("u", "x", size, 3)
            .decode_stored(&bytes)
            .expect_err("bad crc");
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn wrong_cardinality_is_reported() {
        let bitmap: RoaringTreemap = [1u64, 5].into_iter().collect();
        let (bytes, size) = stored(&bitmap);
        let err = descriptor("u", "x", size, 3)
            .decode_stored(&bytes)
            .expect_err("bad count");
        assert!(err.contains("descriptor says 3"), "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        for junk in [
            &b""[..],
            b"\x01",
            b"\xd1\xd3\x39\x64",
            b"\xd1\xd3\x39\x64\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(decode_roaring_array(junk).is_err());
        }
    }

    proptest! {
        #[test]
        fn stored_round_trip(rows in proptest::collection::btree_set(0u64..(1u64 << 40), 0..200)) {
            let bitmap: RoaringTreemap = rows.iter().copied().collect();
            let (bytes, size) = stored(&bitmap);
            let dv = descriptor("u", "x", size, bitmap.len());
            prop_assert_eq!(dv.decode_stored(&bytes).expect("decodes"), bitmap);
        }

        #[test]
        fn inline_round_trip(rows in proptest::collection::btree_set(0u64..100_000, 0..50)) {
            let bitmap: RoaringTreemap = rows.iter().copied().collect();
            let mut data = encode_roaring_array(&bitmap);
            let size = data.len() as i32;
            while !data.len().is_multiple_of(4) { data.push(0); }
            let dv = DeletionVectorDescriptor {
                storage_type: "i".into(),
                path_or_inline_dv: z85::encode(&data),
                offset: None,
                size_in_bytes: size,
                cardinality: bitmap.len() as i64,
            };
            let DvLocation::Inline(bytes) = dv.location().expect("resolves") else { panic!("not inline") };
            prop_assert_eq!(dv.decode_bitmap(&bytes).expect("decodes"), bitmap);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_roaring_array(&bytes);
            let _ = descriptor("u", "x", bytes.len().saturating_sub(8) as i32, 0).decode_stored(&bytes);
        }
    }

    #[test]
    fn written_vectors_read_back_inline_and_from_files() {
        let bitmap: RoaringTreemap = [0u64, 3, 7, 1 << 33].into_iter().collect();
        let inline = DeletionVectorDescriptor::inline(&bitmap);
        let DvLocation::Inline(bytes) = inline.location().unwrap() else {
            panic!("inline");
        };
        assert_eq!(inline.decode_bitmap(&bytes).unwrap(), bitmap);

        let mut file = DeletionVectorFile::new();
        let first = file.push(&bitmap);
        let other: RoaringTreemap = (10u64..20).collect();
        let second = file.push(&other);
        let path = file.path();
        let bytes = file.into_bytes();
        for (descriptor, expected) in [(first, &bitmap), (second, &other)] {
            let DvLocation::File { path: at, offset } = descriptor.location().unwrap() else {
                panic!("file");
            };
            assert_eq!(at, path);
            let start = offset as usize;
            let end = start + descriptor.stored_len().unwrap() as usize;
            assert_eq!(
                &descriptor.decode_stored(&bytes[start..end]).unwrap(),
                expected
            );
        }
    }
}
