//! Identity benchmarks, native (the same scenarios in wasm: `tests/identity_wasm_bench.rs`):
//!
//! - rekey on removal versus group size: a group whose members have one device each
//!   (10, 100, 1,000 devices); time for an admin to remove one member, which seals a new
//!   epoch key to every remaining device (hybrid X25519 + ML-KEM-768) and appends it;
//! - resolving a DID from a 1,000-block identity chain: folding every block into the state
//!   and deriving the W3C DID document.
//!
//! `cargo bench --bench identity` prints the numbers and writes them to
//! `bench/results/identity.json` (summarised in the README).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use endra::identity::{document, IdentityState};
use futures_executor::block_on;
use rand_core::OsRng;

#[path = "common/identity.rs"]
mod scenarios;
use scenarios::{group, median, person_chain, T0};

const RUNS: usize = 3;

fn main() {
    let mut rekey = Vec::new();
    for size in [10usize, 100, 1_000] {
        let mut admin = block_on(group(size));
        let mut times = Vec::new();
        for run in 0..RUNS {
            let member = format!("did:endra:person-{}", run + 1);
            let start = Instant::now();
            block_on(admin.remove(&member, T0 + 10, &mut OsRng)).unwrap();
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let ms = median(times);
        println!("rekey on removal, {size} devices: {ms:.1} ms (median of {RUNS})");
        rekey.push(format!("{{ \"devices\": {size}, \"median_ms\": {ms:.2} }}"));
    }

    let chain = block_on(person_chain(1_000));
    let mut times = Vec::new();
    let mut devices = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let state = IdentityState::resolve(&chain).unwrap();
        let doc = document(&state);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        devices = doc["verificationMethod"].as_array().unwrap().len() / 2;
    }
    let resolve_ms = median(times);
    println!(
        "resolve a DID from a {}-block identity chain ({devices} current devices): {resolve_ms:.1} ms (median of 5)",
        chain.len()
    );

    let json = format!(
        "{{\n  \"benchmark\": \"identity (native, cargo bench --bench identity)\",\n  \"rekey_on_removal\": [\n    {}\n  ],\n  \"resolve\": {{ \"blocks\": {}, \"current_devices\": {devices}, \"median_ms\": {resolve_ms:.2} }}\n}}\n",
        rekey.join(",\n    "),
        chain.len()
    );
    std::fs::create_dir_all("bench/results").unwrap();
    std::fs::write("bench/results/identity.json", &json).unwrap();
    print!("{json}");
}
