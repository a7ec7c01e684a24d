//! Where a query runs: in this page (or process), or on the Wavelake
//! server the tables are shared from (the engine's [`Offload`] decides
//! from the Delta log); what a session's options and a query's `runOn`
//! ask for.

use wasm_bindgen::JsValue;
use wavelake_engine::server_sql::{DEFAULT_MAX_PAGE_BYTES, Offload, ServerSql};

use crate::error::{from_engine, js_error};

/// Where a caller asks a query to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOn {
    /// In this page, whatever it reads.
    Page,
    /// On the server.
    Server,
    /// On the server when it reads more than the page's limit.
    Auto,
}

impl RunOn {
    /// `"page"`, `"server"` or `"auto"`; `None` when not given.
    pub fn parse(value: Option<JsValue>) -> Result<Option<Self>, JsValue> {
        let Some(value) = value else {
            return Ok(None);
        };
        match value.as_string().as_deref() {
            Some("page") => Ok(Some(Self::Page)),
            Some("server") => Ok(Some(Self::Server)),
            Some("auto") => Ok(Some(Self::Auto)),
            _ => Err(js_error(
                "INVALID_ARGUMENT",
                "runOn must be \"page\", \"server\" or \"auto\"",
            )),
        }
    }
}

/// A profile's `server` options (`sqlUrl`, `maxPageBytes`, `runOn`): the
/// SQL API given, or the one beside a Wavelake sharing endpoint, and where
/// queries run when they do not say.
pub fn offload_options(
    options: &JsValue,
    endpoint: &str,
    token: &str,
) -> Result<(Offload, RunOn), JsValue> {
    let field = |name: &str| crate::field(options, name);
    let default_run_on = match RunOn::parse(field("runOn"))? {
        Some(RunOn::Server) => {
            return Err(js_error(
                "INVALID_ARGUMENT",
                "a session's runOn is \"page\" or \"auto\"; send one query with runOn: \"server\"",
            ));
        }
        Some(run_on) => run_on,
        None => RunOn::Page,
    };
    let max_page_bytes =
        crate::bytes_field(options, "maxPageBytes")?.unwrap_or(DEFAULT_MAX_PAGE_BYTES);
    let server = match field("sqlUrl").map(|v| v.as_string()) {
        Some(Some(url)) => ServerSql::new(&url, token).map_err(|e| from_engine(&e))?,
        Some(None) => return Err(js_error("INVALID_ARGUMENT", "sqlUrl must be a URL")),
        None => match ServerSql::beside_sharing_endpoint(endpoint, token) {
            Some(server) => server,
            None => {
                let none = Offload::none(
                    "the sharing server is not a Wavelake server (its endpoint is not at \
                     /delta-sharing/ and no sqlUrl was given), so it has no SQL API",
                );
                return Ok((none, default_run_on));
            }
        },
    };
    Ok((Offload::to(server, max_page_bytes), default_run_on))
}
