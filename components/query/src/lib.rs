//! The query component (`POST /v1/search`, `POST /v1/query`, `POST /v1/chat/completions`).
//!
//! Not built yet: every request is answered with JSON 501
//! `{"error":{"code":"not_implemented","message":"<METHOD> <path> is not implemented yet"}}`.
#![cfg(target_arch = "wasm32")]

ragspin_spin::http_component!(ragspin_spin::not_implemented_handler);
