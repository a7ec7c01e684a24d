//! Saving a result as a file from the page.

/// Offers `bytes` as a download named `name` (a Blob URL and a clicked
/// link).
#[cfg(target_arch = "wasm32")]
pub fn offer(name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let failed = |what: &str| format!("The download could not start ({what}).");
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|_| failed("blob"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| failed("URL"))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| failed("no document"))?;
    let link: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|_| failed("link"))?
        .dyn_into()
        .map_err(|_| failed("link"))?;
    link.set_href(&url);
    link.set_download(name);
    link.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Outside a browser there is nothing to download into.
#[cfg(not(target_arch = "wasm32"))]
pub fn offer(name: &str, _mime: &str, _bytes: &[u8]) -> Result<(), String> {
    Err(format!("{name} can only be downloaded in a browser"))
}

/// `batches` as one Parquet file (snappy), for the download.
pub fn parquet_bytes(batches: &[arrow::array::RecordBatch]) -> Result<Vec<u8>, String> {
    let failed =
        |e: parquet::errors::ParquetError| format!("The Parquet file could not be written: {e}");
    let Some(first) = batches.first() else {
        return Err("There are no rows to download.".into());
    };
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, first.schema(), Some(properties))
            .map_err(failed)?;
    for batch in batches {
        writer.write(batch).map_err(failed)?;
    }
    writer.close().map_err(failed)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};

    #[test]
    fn a_result_downloads_as_a_parquet_file_that_reads_back() {
        let batch = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as arrow::array::ArrayRef,
        )])
        .unwrap();
        let bytes = super::parquet_bytes(&[batch.clone(), batch]).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            bytes::Bytes::from(bytes),
            1024,
        )
        .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 6);
        assert!(super::parquet_bytes(&[]).is_err());
    }
}
