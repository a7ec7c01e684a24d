//! SqlSession errors as JavaScript `Error`s with a stable `code`.

use wasm_bindgen::JsValue;

/// A JavaScript `Error` with `message` and a `code` property (`UNAUTHORIZED`,
/// `TABLE_NOT_FOUND`, `UNSUPPORTED_FEATURE`, `SQL_ERROR`, `ABORTED`, …).
pub fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// The JavaScript error for an engine error, with the engine's code
/// (`EXPIRED_URL` for a presigned URL refused even after a refresh).
pub fn from_engine(err: &wavelake_engine::Error) -> JsValue {
    js_error(err.code(), &err.to_string())
}
