//! The `wavelake` npm package: wasm-bindgen bindings over the engine. Built in a later issue.
