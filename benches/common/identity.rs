//! The identity scenarios the benchmarks time, shared by the native bench
//! (`benches/identity.rs`) and the same measures in wasm (`tests/identity_wasm_bench.rs`).

use endra::identity::{
    DeviceKeys, Founding, Identity, KdfFloor, KdfParams, Kind, MemberEntry, Policy, Role,
};
use endra::store::MemoryStore;
use endra::walytis::Block;
use rand_core::OsRng;

/// The scenarios' clock.
pub const T0: u64 = 1_700_000_000_000;

/// The passphrase of [`sealed_keys`].
const PASSPHRASE: &str = "correct horse battery staple";

/// A device's keys sealed under a passphrase with `params`, as a keyring keeps them.
pub fn sealed_keys(params: KdfParams) -> Vec<u8> {
    DeviceKeys::generate(&mut OsRng)
        .seal(PASSPHRASE, params, &mut OsRng)
        .unwrap()
}

/// Unlocks [`sealed_keys`]'s bytes as a page does when it opens an identity (Argon2id,
/// then XChaCha20-Poly1305).
pub fn unlock(sealed: &[u8]) {
    DeviceKeys::open(PASSPHRASE, sealed, KdfFloor::RECOMMENDED).unwrap();
}

async fn all_blocks(identity: &Identity<MemoryStore>) -> Vec<Block> {
    identity.blocks().await.unwrap()
}

/// A group of `devices` one-device members, built through real requests and approvals.
pub async fn group(devices: usize) -> Identity<MemoryStore> {
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
            recovery: None,
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

/// A person identity of about `blocks` blocks: devices joining and leaving, key rotations,
/// rekeys and small ops (policy changes), as a long-lived identity accumulates them. Returns
/// its blocks.
pub async fn person_chain(blocks: u64) -> Vec<Block> {
    let mut me = Identity::create(
        MemoryStore::new(),
        DeviceKeys::generate(&mut OsRng),
        Founding {
            kind: Kind::Person,
            name: "bench".into(),
            relays: vec!["/ip4/127.0.0.1/tcp/4002/ws".into()],
            founder: None,
            recovery: None,
        },
        T0,
        &mut OsRng,
    )
    .await
    .unwrap();
    let genesis = all_blocks(&me).await.remove(0);
    let mut round = 0u64;
    while me.chain().len() < blocks {
        round += 1;
        let invitation = me.invite(Role::Admin, u64::MAX, &mut OsRng).unwrap();
        let mut device = Identity::replica(
            MemoryStore::new(),
            genesis.clone(),
            DeviceKeys::generate(&mut OsRng),
        )
        .await
        .unwrap();
        // A joining device catches up first: a request is admitted only if its own history
        // holds the inviter's current key (rotated every third round here).
        let held = all_blocks(&me).await;
        device.insert(held.iter().map(Block::bytes)).await.unwrap();
        let request = device.request_join(invitation, None, T0).await.unwrap();
        let block = device.chain().block(&request).await.unwrap().unwrap().block;
        me.insert([block.bytes()]).await.unwrap();
        me.approve(request, T0 + round, &mut OsRng).await.unwrap();
        // Small ops, as many as the notes to self this chain carried before data moved to
        // bound chains, so the chain keeps its shape and the resolve numbers stay comparable.
        for i in 0..20u64 {
            let policy = Policy {
                rekey_every: Some(3_600_000 + i),
                keep_epochs: None,
            };
            me.set_policy(policy, T0 + round).await.unwrap();
        }
        if round.is_multiple_of(3) {
            me.rotate(T0 + round, &mut OsRng).await.unwrap();
        }
        if round.is_multiple_of(2) {
            let did = device.device().did().to_owned();
            me.remove(&did, T0 + round, &mut OsRng).await.unwrap();
        }
    }
    all_blocks(&me).await
}

/// The median of some timings.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
