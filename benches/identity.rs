//! Identity benchmarks (native; the same code runs in wasm, see `bench/browser.mjs`):
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

use endra::identity::{
    document, DeviceKeys, Founding, Identity, IdentityState, Kind, MemberEntry, Role,
};
use endra::store::MemoryStore;
use endra::walytis::Block;
use futures_executor::block_on;
use rand_core::OsRng;

const T0: u64 = 1_700_000_000_000;
const RUNS: usize = 3;

async fn all_blocks(identity: &Identity<MemoryStore>) -> Vec<Block> {
    identity.blocks().await.unwrap()
}

/// A group of `devices` one-device members, built through real requests and approvals.
async fn group(devices: usize) -> Identity<MemoryStore> {
    let admin_keys = DeviceKeys::generate(&mut OsRng);
    let founder = MemberEntry {
        did: "did:endra:admin-person".into(),
        devices: vec![admin_keys.entry()],
    };
    let mut admin = Identity::create(
        MemoryStore::new(),
        admin_keys,
        Founding {
            kind: Kind::Group,
            name: "bench".into(),
            relays: Vec::new(),
            founder: Some(founder),
        },
        T0,
        &mut OsRng,
    )
    .await
    .unwrap();
    let genesis = all_blocks(&admin).await.remove(0);
    // Requests are written on the joiners' replicas, then delivered in one batch.
    let mut requests = Vec::new();
    let mut bytes = Vec::new();
    for i in 1..devices {
        let invitation = admin.invite(Role::Member, u64::MAX, &mut OsRng).unwrap();
        let keys = DeviceKeys::generate(&mut OsRng);
        let member = MemberEntry {
            did: format!("did:endra:person-{i}"),
            devices: vec![keys.entry()],
        };
        let mut joiner = Identity::replica(MemoryStore::new(), genesis.clone(), keys)
            .await
            .unwrap();
        let request = joiner
            .request_join(invitation, Some(member), T0)
            .await
            .unwrap();
        let block = joiner.chain().block(&request).await.unwrap().unwrap().block;
        bytes.push(block.bytes().to_vec());
        requests.push(request);
    }
    admin.insert(bytes.iter()).await.unwrap();
    for request in requests {
        admin.approve(request, T0 + 1, &mut OsRng).await.unwrap();
    }
    assert_eq!(admin.state().devices().count(), devices);
    admin
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

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

    // A 1,000-block person identity: devices joining and leaving, rotations, rekeys, notes.
    let chain = block_on(async {
        let mut me = Identity::create(
            MemoryStore::new(),
            DeviceKeys::generate(&mut OsRng),
            Founding {
                kind: Kind::Person,
                name: "bench".into(),
                relays: vec!["/ip4/127.0.0.1/tcp/4002/ws".into()],
                founder: None,
            },
            T0,
            &mut OsRng,
        )
        .await
        .unwrap();
        let genesis = all_blocks(&me).await.remove(0);
        let mut round = 0u64;
        while me.chain().len() < 1_000 {
            round += 1;
            let invitation = me.invite(Role::Admin, u64::MAX, &mut OsRng).unwrap();
            let mut device = Identity::replica(
                MemoryStore::new(),
                genesis.clone(),
                DeviceKeys::generate(&mut OsRng),
            )
            .await
            .unwrap();
            let request = device.request_join(invitation, None, T0).await.unwrap();
            let block = device.chain().block(&request).await.unwrap().unwrap().block;
            me.insert([block.bytes()]).await.unwrap();
            me.approve(request, T0 + round, &mut OsRng).await.unwrap();
            for _ in 0..20 {
                me.write(
                    b"a note to self",
                    vec!["note".into()],
                    T0 + round,
                    &mut OsRng,
                )
                .await
                .unwrap();
            }
            if round % 3 == 0 {
                me.rotate(T0 + round, &mut OsRng).await.unwrap();
            }
            if round % 2 == 0 {
                let did = device.device().did().to_owned();
                me.remove(&did, T0 + round, &mut OsRng).await.unwrap();
            }
        }
        all_blocks(&me).await
    });
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
