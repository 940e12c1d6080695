//! The identity benchmarks of `benches/identity.rs`, in wasm in headless Chromium: rekey on
//! removal versus group size, unlocking a device's keys, and resolving a DID from a 1,000-block
//! identity chain, the same
//! scenarios (`benches/common/identity.rs`) timed with `performance.now()`.
//!
//! A benchmark, not a test: it is `#[ignore]`d, and `scripts/bench.sh` runs it with
//! `--include-ignored --nocapture` in the release profile (the one the npm package ships),
//! taking the `ENDRA_BENCH {…}` line it prints to `bench/results/identity-wasm.json`.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]
#![cfg(target_arch = "wasm32")]

#[path = "../benches/common/identity.rs"]
mod scenarios;

use endra::identity::{document, IdentityState, KdfParams};
use rand_core::OsRng;
use scenarios::{group, median, person_chain, sealed_keys, unlock, T0};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const RUNS: usize = 3;

/// Milliseconds from `performance.now()`.
fn now_ms() -> f64 {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).unwrap();
    let now: js_sys::Function = js_sys::Reflect::get(&performance, &"now".into())
        .unwrap()
        .into();
    now.call0(&performance).unwrap().as_f64().unwrap()
}

#[wasm_bindgen_test]
#[ignore = "a benchmark: scripts/bench.sh runs it"]
async fn identity_benchmarks_in_wasm() {
    let mut rekey = Vec::new();
    for size in [10usize, 100, 1_000] {
        let (mut admin, members) = group(size).await;
        let mut times = Vec::new();
        for member in members.iter().take(RUNS) {
            let start = now_ms();
            admin.remove(member, T0 + 10, &mut OsRng).await.unwrap();
            times.push(now_ms() - start);
        }
        let ms = median(times);
        console_log!("rekey on removal, {size} devices: {ms:.1} ms (median of {RUNS})");
        rekey.push(format!("{{ \"devices\": {size}, \"median_ms\": {ms:.2} }}"));
    }
    let [unlock_ms, unlock_old_ms] = [KdfParams::DEFAULT, KdfParams::ONLINE_FLOOR].map(|params| {
        let sealed = sealed_keys(params);
        median(
            (0..RUNS)
                .map(|_| {
                    let start = now_ms();
                    unlock(&sealed);
                    now_ms() - start
                })
                .collect(),
        )
    });
    console_log!(
        "unlock: {unlock_ms:.0} ms at 64 MiB x 3, {unlock_old_ms:.0} ms at 19 MiB x 2 (median of {RUNS})"
    );
    let chain = person_chain(1_000).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = now_ms();
        let state = IdentityState::resolve(&chain).unwrap();
        let doc = document(&state);
        times.push(now_ms() - start);
        assert_eq!(doc["id"], state.did());
    }
    let resolve_ms = median(times);
    console_log!(
        "ENDRA_BENCH {{ \"benchmark\": \"identity (wasm, release profile, headless Chromium)\", \"rekey_on_removal\": [ {} ], \"unlock\": {{ \"median_ms\": {unlock_ms:.1}, \"former_19_mib_2_passes_ms\": {unlock_old_ms:.1} }}, \"resolve\": {{ \"blocks\": {}, \"median_ms\": {resolve_ms:.2} }} }}",
        rekey.join(", "),
        chain.len()
    );
}
