//! Saving a result as a file from the page.

/// Offers `text` as a download named `name` (a Blob URL and a clicked
/// link).
#[cfg(target_arch = "wasm32")]
pub fn offer(name: &str, mime: &str, text: &str) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let failed = |what: &str| format!("The download could not start ({what}).");
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
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
pub fn offer(name: &str, _mime: &str, _text: &str) -> Result<(), String> {
    Err(format!("{name} can only be downloaded in a browser"))
}
