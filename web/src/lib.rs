//! Wavelake's web app (Dioxus): the dataset explorer and query editor.
//! Every read query runs in the page, through the engine compiled to
//! wasm; a server only hands out table metadata and presigned URLs.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod chart;
pub mod completion;
pub mod connect;
pub mod download;
pub mod explain;
pub mod grid;
pub mod history;
pub mod live;
pub mod result_table;
pub mod server_api;
pub mod session;
pub mod sidebar;
pub mod table_page;
pub mod write_panel;

/// Renders `root` to HTML in a virtual DOM, without a browser (components
/// with event handlers need its runtime).
#[cfg(test)]
pub(crate) fn render_ssr(root: fn() -> dioxus::prelude::Element) -> String {
    let mut dom = dioxus::prelude::VirtualDom::new(root);
    dom.rebuild_in_place();
    dioxus_ssr::render(&dom)
}

/// Starts the app in the page's `<div id="main">`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    dioxus::launch(root);
}

/// The app, told the page's origin (for signing in to the server that
/// served it).
#[cfg(target_arch = "wasm32")]
fn root() -> dioxus::prelude::Element {
    use dioxus::prelude::*;
    let origin = web_sys::window()
        .and_then(|window| window.location().origin().ok())
        .unwrap_or_default();
    rsx! { app::App { origin } }
}
