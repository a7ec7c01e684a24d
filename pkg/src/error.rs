//! Engine errors as JavaScript `Error`s with a stable `code`.

use wasm_bindgen::JsValue;

/// A JavaScript `Error` with `message` and a `code` property (`UNAUTHORIZED`,
/// `TABLE_NOT_FOUND`, `UNSUPPORTED_FEATURE`, `SQL_ERROR`, `ABORTED`, …).
pub fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// The JavaScript error for an engine error. An expired presigned URL is
/// told apart from other storage errors by the 403 it gets.
pub fn from_engine(err: &wavelake_engine::Error) -> JsValue {
    let text = err.to_string();
    let code = match err {
        wavelake_engine::Error::Storage { message, .. }
            if message.contains("403") || message.contains("expired") =>
        {
            "EXPIRED_URL"
        }
        _ => err.code(),
    };
    js_error(code, &text)
}
