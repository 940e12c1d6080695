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
//! - a device taking in a peer's new block on that chain (a device writing on top of
//!   everything the others have): the identity handle folds it in on top of its state;
//! - the binding's cost: a fresh replica (holding the identity chain) storing a 1,000-message
//!   chain bound to a person — every block's author checked against the identity at the
//!   block's anchor — in one batch and one block at a time (as live pushes arrive), beside a
//!   plain chain with the same bodies; and what writing one message and listing all of them
//!   (the visibility pass and decryption) cost.
//!
//! `cargo bench --bench identity` prints the numbers and writes them to
//! `bench/results/identity.json` (summarised in the README).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use ed25519_dalek::SigningKey;
use endra::identity::{document, BoundChain, DeviceKeys, Founding, Identity, IdentityState, Kind};
use endra::store::MemoryStore;
use endra::walytis::{Block, Chain};
use futures_executor::block_on;
use rand_core::OsRng;

#[path = "common/identity.rs"]
mod scenarios;
use endra::identity::KdfParams;
use endra::identity::{Op, IDENTITY_TOPIC};
use endra::walytis::BlockDraft;
use scenarios::{group, median, person_chain, person_chain_with_insider, sealed_keys, unlock, T0};

const RUNS: usize = 3;

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`, which `npm test`
    // runs) this is a smoke run: tiny sizes, nothing written, so a bench that no longer runs
    // fails CI.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (sizes, blocks): (&[usize], u64) = if smoke {
        (&[10], 50)
    } else {
        (&[10, 100, 1_000], 1_000)
    };
    // First, while the process has allocated little: its peak memory is part of the row.
    let hostile = block_on(hostile_side_branch(blocks, if smoke { 20 } else { 1_000 }));
    println!(
        "{} hostile side-branch blocks (a removed device signing on {} old blocks scattered over the chain) against a {}-block identity chain: one at a time {:.0} ms, in one batch {:.0} ms, peak resident memory +{} KiB; beside the honest catch-up of that chain by a fresh device {:.0} ms",
        hostile.count, hostile.count, hostile.chain, hostile.one_at_a_time_ms, hostile.batch_ms, hostile.memory_kib, hostile.honest_ms
    );

    let mut rekey = Vec::new();
    for &size in sizes {
        let (mut admin, members) = block_on(group(size));
        let mut times = Vec::new();
        for member in members.iter().take(RUNS) {
            let start = Instant::now();
            block_on(admin.remove(member, T0 + 10, &mut OsRng)).unwrap();
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let ms = median(times);
        println!("rekey on removal, {size} devices: {ms:.1} ms (median of {RUNS})");
        rekey.push(format!("{{ \"devices\": {size}, \"median_ms\": {ms:.2} }}"));
    }

    let unlock_runs = if smoke { 1 } else { 5 };
    let [unlock_ms, unlock_old_ms] = [KdfParams::DEFAULT, KdfParams::ONLINE_FLOOR].map(|params| {
        let sealed = sealed_keys(params);
        median(
            (0..unlock_runs)
                .map(|_| {
                    let start = Instant::now();
                    unlock(&sealed);
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    });
    println!(
        "unlock a device's keys (Argon2id + XChaCha20-Poly1305): {unlock_ms:.0} ms at the default 64 MiB x 3 passes, {unlock_old_ms:.0} ms at the former 19 MiB x 2 (median of {unlock_runs})"
    );

    let chain = block_on(person_chain(blocks));
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

    let peer_block_ms = block_on(peer_block(&chain, 20));
    println!(
        "take in a peer's block on top of a {}-block identity chain: {peer_block_ms:.3} ms (median of 20)",
        chain.len()
    );

    let plain = block_on(plain_twin(&chain));
    let [admitted_ms, plain_ms] =
        interleaved([&mut || store_all(&chain, MemoryStore::new, 1), &mut || {
            store_all(&plain, MemoryStore::new, 1)
        }]);
    println!(
        "store a {}-block chain in a fresh replica: identity chain (admission rule) {admitted_ms:.1} ms, plain chain {plain_ms:.1} ms (median of {STORE_RUNS}, interleaved)",
        chain.len()
    );

    let identity_store = stored(&chain);
    let plain_store = stored(&plain);
    let [read_identity_ms, read_plain_ms] =
        interleaved([&mut || read_all(&identity_store, &chain), &mut || {
            read_all(&plain_store, &plain)
        }]);
    println!(
        "read a stored {}-block chain back through a fresh handle: identity chain (every signature checked again) {read_identity_ms:.1} ms, plain chain (store trusted) {read_plain_ms:.1} ms (median of {STORE_RUNS}, interleaved)",
        chain.len()
    );

    let (identity, bound, costs) = block_on(bound_chain(blocks as usize));
    println!(
        "a chain bound to a person: write one message {:.3} ms (mean of {}); list all {} messages {:.1} ms (median of 5)",
        costs.write_ms,
        bound.len() - 1,
        bound.len() - 1,
        costs.list_ms
    );
    let bound_plain = block_on(plain_twin(&bound));
    let with_identity = || {
        let store = MemoryStore::new();
        let mut replica = block_on(Chain::from_genesis(
            store.clone(),
            &endra::identity::rules(),
            identity[0].clone(),
        ))
        .unwrap();
        block_on(replica.insert(identity.iter().map(Block::bytes))).unwrap();
        store
    };
    let [bound_batch_ms, plain_batch_ms, bound_each_ms, plain_each_ms] = interleaved([
        &mut || store_all(&bound, with_identity, 1),
        &mut || store_all(&bound_plain, MemoryStore::new, 1),
        &mut || store_all(&bound, with_identity, bound.len()),
        &mut || store_all(&bound_plain, MemoryStore::new, bound.len()),
    ]);
    println!(
        "store {} messages of a chain bound to a person: in one batch {bound_batch_ms:.1} ms (plain chain {plain_batch_ms:.1} ms); one at a time {bound_each_ms:.1} ms (plain {plain_each_ms:.1} ms) (median of {STORE_RUNS}, interleaved)",
        bound.len() - 1
    );

    let json = format!(
        "{{\n  \"benchmark\": \"identity (native, cargo bench --bench identity)\",\n  \"rekey_on_removal\": [\n    {}\n  ],\n  \"unlock\": {{ \"m_cost_kib\": {}, \"t_cost\": {}, \"median_ms\": {unlock_ms:.1}, \"former_19_mib_2_passes_ms\": {unlock_old_ms:.1} }},\n  \"resolve\": {{ \"blocks\": {}, \"current_devices\": {devices}, \"median_ms\": {resolve_ms:.2} }},\n  \"peer_block\": {{ \"blocks\": {}, \"median_ms\": {peer_block_ms:.3} }},\n  \"catch_up\": {{ \"blocks\": {}, \"identity_chain_ms\": {admitted_ms:.2}, \"plain_chain_ms\": {plain_ms:.2} }},\n  \"read_back\": {{ \"identity_chain_ms\": {read_identity_ms:.2}, \"plain_chain_ms\": {read_plain_ms:.2} }},\n  \"hostile_side_branch\": {{ \"blocks\": {}, \"chain\": {}, \"one_at_a_time_ms\": {:.1}, \"batch_ms\": {:.1}, \"memory_kib\": {}, \"honest_catch_up_ms\": {:.1} }},\n  \"bound_chain\": {{ \"messages\": {}, \"batch_ms\": {bound_batch_ms:.2}, \"plain_batch_ms\": {plain_batch_ms:.2}, \"one_at_a_time_ms\": {bound_each_ms:.2}, \"plain_one_at_a_time_ms\": {plain_each_ms:.2}, \"write_one_ms\": {:.3}, \"list_all_ms\": {:.2} }}\n}}\n",
        rekey.join(",\n    "),
        KdfParams::DEFAULT.m_cost_kib,
        KdfParams::DEFAULT.t_cost,
        chain.len(),
        chain.len(),
        chain.len(),
        hostile.count,
        hostile.chain,
        hostile.one_at_a_time_ms,
        hostile.batch_ms,
        hostile.memory_kib,
        hostile.honest_ms,
        bound.len() - 1,
        costs.write_ms,
        costs.list_ms
    );
    if smoke {
        return;
    }
    std::fs::create_dir_all("bench/results").unwrap();
    std::fs::write("bench/results/identity.json", &json).unwrap();
    print!("{json}");
}

/// A plain chain (no admission rule) of as many blocks as `chain`, with the same bodies and
/// topics (the store indexes topics), written in a line by one key.
async fn plain_twin(chain: &[Block]) -> Vec<Block> {
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut plain = Chain::create(
        MemoryStore::new(),
        &endra::identity::rules(),
        &key,
        T0,
        vec![],
        b"plain".to_vec(),
    )
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

/// A device's identity handle on a fresh store holding `chain` (genesis first).
async fn holding(chain: &[Block]) -> Identity<MemoryStore> {
    let mut device = Identity::replica(
        MemoryStore::new(),
        chain[0].clone(),
        DeviceKeys::generate(&mut OsRng),
    )
    .await
    .unwrap();
    device
        .insert(chain[1..].iter().map(Block::bytes))
        .await
        .unwrap();
    device
}

/// Median time for a device's identity handle to take in each of the last `count` blocks of
/// `chain` from a peer, one at a time, holding everything before them.
async fn peer_block(chain: &[Block], count: usize) -> f64 {
    let split = chain.len() - count;
    let mut device = holding(&chain[..split]).await;
    let mut times = Vec::new();
    for block in &chain[split..] {
        let start = Instant::now();
        let report = device.insert([block.bytes()]).await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(report.accepted.len(), 1);
    }
    median(times)
}

/// Runs of each store measurement.
const STORE_RUNS: usize = 11;

/// The median of [`STORE_RUNS`] runs of each measurement, the runs taken in turn, so that a
/// slow spell of this noisy machine hits every case alike.
fn interleaved<const N: usize>(mut cases: [&mut dyn FnMut() -> f64; N]) -> [f64; N] {
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for _ in 0..STORE_RUNS {
        for (case, times) in cases.iter_mut().zip(times.iter_mut()) {
            times.push(case());
        }
    }
    times.map(median)
}

/// Time in ms for a fresh replica (from the genesis, in a store made by `store`) to store all
/// of `chain`, in `batches` inserts.
fn store_all(chain: &[Block], store: impl Fn() -> MemoryStore, batches: usize) -> f64 {
    let bytes: Vec<&[u8]> = chain[1..].iter().map(Block::bytes).collect();
    let per_batch = bytes.len().div_ceil(batches.max(1)).max(1);
    let store = store();
    let start = Instant::now();
    let mut replica = block_on(Chain::from_genesis(
        store,
        &endra::identity::rules(),
        chain[0].clone(),
    ))
    .unwrap();
    let mut accepted = 0;
    for batch in bytes.chunks(per_batch) {
        let report = block_on(replica.insert(batch.iter())).unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
        accepted += report.accepted.len();
    }
    assert_eq!(accepted, bytes.len());
    start.elapsed().as_secs_f64() * 1e3
}

/// What hostile side-branch blocks cost a device that holds the chain.
struct HostileCosts {
    count: usize,
    chain: usize,
    one_at_a_time_ms: f64,
    batch_ms: f64,
    memory_kib: i64,
    honest_ms: f64,
}

/// A removed device signs `count` blocks (relay ops), each on another block from before its
/// removal, scattered over the chain: its own history lists it, so every replica admits each, and only the fold can
/// drop them. Times a device that holds the chain taking them in, one at a time (as gossip
/// brings them) and in one batch, and a fresh device catching up with the honest chain.
async fn hostile_side_branch(blocks: u64, count: usize) -> HostileCosts {
    let (chain, insider) = person_chain_with_insider(blocks, true).await;
    let insider = insider.unwrap();
    let id = chain[0].id();
    // The window: after the insider's approval, before its removal (the last two blocks).
    let first = chain
        .iter()
        .position(|b| matches!(Op::decode(b.body()), Ok(Op::Approve { .. })))
        .unwrap()
        + 1;
    let window = chain.len() - 2 - first;
    let hostile: Vec<Block> = (0..count)
        .map(|i| {
            // Scattered over the window, not in order: a kept view near the previous block
            // is no help to the next.
            let parent = &chain[first + (i * 7919) % window];
            BlockDraft {
                chain: Some(id),
                parents: vec![parent.id()],
                height: parent.height() + 1,
                time: T0,
                topics: vec![IDENTITY_TOPIC.into()],
                body: Op::Relays {
                    relays: vec![format!("/dns4/h{i}.example/tcp/443/wss")],
                }
                .encode(),
            }
            .sign(insider.signing().as_dalek())
            .unwrap()
        })
        .collect();
    let holder = || holding(&chain);
    let start = Instant::now();
    let honest = holder().await;
    let honest_ms = start.elapsed().as_secs_f64() * 1e3;
    let relays = honest.state().relays().to_vec();
    drop(honest);

    let mut device = holder().await;
    let before = resident_kib();
    let start = Instant::now();
    for block in &hostile {
        let report = device.insert([block.bytes()]).await.unwrap();
        assert_eq!(
            report.accepted.len(),
            1,
            "admitted: its history lists the device"
        );
    }
    let one_at_a_time_ms = start.elapsed().as_secs_f64() * 1e3;
    let memory_kib = resident_kib() - before;
    assert_eq!(
        device.state().relays(),
        relays.as_slice(),
        "none took effect"
    );

    let mut device = holder().await;
    let start = Instant::now();
    let report = device
        .insert(hostile.iter().map(Block::bytes))
        .await
        .unwrap();
    let batch_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(report.accepted.len(), count);
    assert_eq!(device.state().relays(), relays.as_slice());
    HostileCosts {
        count,
        chain: chain.len(),
        one_at_a_time_ms,
        batch_ms,
        memory_kib,
        honest_ms,
    }
}

/// This process's peak resident memory so far in KiB (Linux's `VmHWM`), 0 where it cannot
/// be read: the growth across a measurement is what it took at most beyond what the process
/// had held before.
fn resident_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<i64>().ok()
        })
        .unwrap_or(0)
}

/// A store holding all of `chain`.
fn stored(chain: &[Block]) -> MemoryStore {
    let store = MemoryStore::new();
    let mut replica = block_on(Chain::from_genesis(
        store.clone(),
        &endra::identity::rules(),
        chain[0].clone(),
    ))
    .unwrap();
    let report = block_on(replica.insert(chain[1..].iter().map(Block::bytes))).unwrap();
    assert!(report.rejected.is_empty());
    store
}

/// Time in ms to open `chain` from `store` with a fresh handle and read every block.
fn read_all(store: &MemoryStore, chain: &[Block]) -> f64 {
    let start = Instant::now();
    let replica = block_on(Chain::open(
        store.clone(),
        &endra::identity::rules(),
        chain[0].id(),
    ))
    .unwrap();
    let query = endra::walytis::Query {
        limit: usize::MAX,
        ..endra::walytis::Query::default()
    };
    let read = block_on(replica.blocks(query)).unwrap();
    assert_eq!(read.len(), chain.len());
    start.elapsed().as_secs_f64() * 1e3
}

/// What writing and listing a bound chain cost, in ms.
struct BoundCosts {
    /// One message written (sealed, anchored, signed, checked, stored), averaged.
    write_ms: f64,
    /// Every message listed (visibility pass, decryption), median of 5.
    list_ms: f64,
}

/// A person's identity chain and a chain bound to it holding `messages` sealed messages,
/// with what writing and listing them cost.
async fn bound_chain(messages: usize) -> (Vec<Block>, Vec<Block>, BoundCosts) {
    let founding = Founding {
        kind: Kind::Person,
        name: "Ada".into(),
        relays: vec![],
        founder: None,
        recovery: None,
        anchor: None,
    };
    let device = DeviceKeys::generate(&mut OsRng);
    let mut identity = Identity::create(MemoryStore::new(), device, founding, T0, &mut OsRng)
        .await
        .unwrap();
    let mut bound = BoundChain::create(&identity, T0, &mut OsRng).await.unwrap();
    let start = Instant::now();
    for i in 0..messages {
        let text = format!("message {i} of a chat bound to its members");
        bound
            .write(&mut identity, text.as_bytes(), vec![], T0 + 1, &mut OsRng)
            .await
            .unwrap();
    }
    let write_ms = start.elapsed().as_secs_f64() * 1e3 / messages as f64;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let listed = bound.messages(&identity).await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(listed.len(), messages);
        assert!(listed.iter().all(|(_, content)| content.is_ok()));
    }
    let list_ms = median(times);
    let all = |entries: Vec<endra::walytis::Entry>| entries.into_iter().map(|e| e.block).collect();
    (
        all(identity.chain().since(None, usize::MAX).await.unwrap()),
        all(bound.chain().since(None, usize::MAX).await.unwrap()),
        BoundCosts { write_ms, list_ms },
    )
}
