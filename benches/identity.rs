//! Identity benchmarks, native (the same scenarios in wasm: `tests/identity_wasm_bench.rs`):
//!
//! - rekey on removal versus group size: a group whose members have one device each
//!   (10, 100, 1,000 devices); time for an admin to remove one member, which seals a new
//!   epoch key to every remaining device (hybrid X25519 + ML-KEM-768) and appends it;
//! - resolving a DID from a 1,000-block identity chain: folding every block into the state
//!   and deriving the W3C DID document;
//! - the admission rule's cost: a fresh replica storing that chain in one batch (every block
//!   checked against the identity rule before it is stored), beside a plain chain of as many
//!   blocks with the same bodies and topics.
//!
//! `cargo bench --bench identity` prints the numbers and writes them to
//! `bench/results/identity.json` (summarised in the README).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use ed25519_dalek::SigningKey;
use endra::identity::{document, IdentityState};
use endra::store::MemoryStore;
use endra::walytis::{Block, Chain};
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

    let plain = block_on(plain_twin(&chain));
    let admitted_ms = store_all(&chain);
    let plain_ms = store_all(&plain);
    println!(
        "store a {}-block chain in a fresh replica: identity chain (admission rule) {admitted_ms:.1} ms, plain chain {plain_ms:.1} ms (median of 5)",
        chain.len()
    );

    let json = format!(
        "{{\n  \"benchmark\": \"identity (native, cargo bench --bench identity)\",\n  \"rekey_on_removal\": [\n    {}\n  ],\n  \"resolve\": {{ \"blocks\": {}, \"current_devices\": {devices}, \"median_ms\": {resolve_ms:.2} }},\n  \"catch_up\": {{ \"blocks\": {}, \"identity_chain_ms\": {admitted_ms:.2}, \"plain_chain_ms\": {plain_ms:.2} }}\n}}\n",
        rekey.join(",\n    "),
        chain.len(),
        chain.len()
    );
    std::fs::create_dir_all("bench/results").unwrap();
    std::fs::write("bench/results/identity.json", &json).unwrap();
    print!("{json}");
}

/// A plain chain (no admission rule) of as many blocks as `chain`, with the same bodies and
/// topics (the store indexes topics), written in a line by one key.
async fn plain_twin(chain: &[Block]) -> Vec<Block> {
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut plain = Chain::create(MemoryStore::new(), &key, T0, vec![], b"plain".to_vec())
        .await
        .unwrap();
    for block in &chain[1..] {
        plain
            .append(
                &key,
                T0,
                vec![(block.body().to_vec(), block.topics().to_vec())],
            )
            .await
            .unwrap();
    }
    plain
        .since(None, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.block)
        .collect()
}

/// Median time for a fresh replica (from the genesis) to store all of `chain` in one batch.
fn store_all(chain: &[Block]) -> f64 {
    let bytes: Vec<&[u8]> = chain[1..].iter().map(Block::bytes).collect();
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut replica =
            block_on(Chain::from_genesis(MemoryStore::new(), chain[0].clone())).unwrap();
        let report = block_on(replica.insert(bytes.iter())).unwrap();
        assert_eq!(
            report.accepted.len(),
            bytes.len(),
            "{:?}",
            report.rejected.first()
        );
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    median(times)
}
