//! Test-only component (never deployed): `GET /contract` runs every port's
//! contract suite from `ragspin_testkit::contract` against the Spin adapters
//! and answers `{"<suite>": "ok" | "<violation>"}` — the same suites the
//! in-memory implementations pass natively — plus `vector_kernels`: the
//! `simd128` Hamming and asymmetric-score kernels, which exist only in wasm,
//! checked against a bit-by-bit count (and the paired rescoring kernel
//! against one vector at a time), and `byte_scan`: the `simd128` block
//! check of `ragspin_core::bytescan` against a byte-by-byte scan.
#![cfg(target_arch = "wasm32")]

use ragspin_core::{HttpRequest, HttpResponse};
use ragspin_spin::{SpinClock, SpinConfig, SpinKv, SpinSql, SpinTimer};
use ragspin_testkit::contract;

ragspin_spin::http_component!(handle);

async fn handle(_request: HttpRequest) -> HttpResponse {
    let results = [
        (
            "kv_store",
            contract::kv_store(&SpinKv::open_default()).await,
        ),
        ("sql", contract::sql(&SpinSql::open_default()).await),
        ("config", contract::config(&SpinConfig).await),
        ("clock", contract::clock(&SpinClock).await),
        ("timer", contract::timer(&SpinTimer).await),
        (
            "byte_scan",
            ragspin_core::bytescan::check().map_err(|detail| contract::Violation {
                suite: "byte_scan",
                check: "the simd128 block scan finds what a byte-by-byte scan finds",
                detail,
            }),
        ),
        (
            "vector_kernels",
            ragspin_index::vectors::check_kernels()
                .and_then(|()| ragspin_index::search::check_rescoring())
                .map_err(|detail| contract::Violation {
                    suite: "vector_kernels",
                    check: "the simd128 kernels count bits like a bit-by-bit comparison \
                            and rescore vectors in pairs as one at a time",
                    detail,
                }),
        ),
    ];
    let out: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(suite, outcome)| {
            let verdict = match outcome {
                Ok(()) => "ok".to_string(),
                Err(violation) => violation.to_string(),
            };
            (suite.to_string(), verdict.into())
        })
        .collect();
    HttpResponse::json(200, &out)
}
