//! The identity scenarios the benchmarks time, shared by the native bench
//! (`benches/identity.rs`) and the same measures in wasm (`tests/identity_wasm_bench.rs`).

use endra::identity::{DeviceKeys, Founding, Identity, KdfFloor, KdfParams, Kind, Policy, Role};
use endra::store::MemoryStore;
use endra::walytis::{Block, Chain};
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

/// A person with one device, in its own store; and that device's keys.
async fn one_device_person(name: &str) -> (Identity<MemoryStore>, DeviceKeys) {
    let keys = DeviceKeys::generate(&mut OsRng);
    let copy = DeviceKeys::from_secret_bytes(&keys.to_secret_bytes()).unwrap();
    let founding = Founding {
        kind: Kind::Person,
        name: name.into(),
        relays: Vec::new(),
        founder: None,
        recovery: None,
        anchor: None,
    };
    let person = Identity::create(MemoryStore::new(), keys, founding, T0, &mut OsRng)
        .await
        .unwrap();
    (person, copy)
}

/// A group of `devices` one-device members (real persons), built through real requests and
/// approvals; and the members' DIDs. The admin's store holds every member's person chain,
/// which the group checks their joins against.
pub async fn group(devices: usize) -> (Identity<MemoryStore>, Vec<String>) {
    let store = MemoryStore::new();
    let rules = endra::identity::rules();
    let hold = |person: Vec<Block>| {
        let store = store.clone();
        let rules = rules.clone();
        async move {
            let mut chain = Chain::from_genesis(store, &rules, person[0].clone())
                .await
                .unwrap();
            chain
                .insert(person[1..].iter().map(Block::bytes))
                .await
                .unwrap();
        }
    };
    let (founder, admin_keys) = one_device_person("admin").await;
    hold(all_blocks(&founder).await).await;
    let (entry, anchor) = founder.as_member();
    let mut admin = Identity::create(
        store.clone(),
        admin_keys,
        Founding {
            kind: Kind::Group,
            name: "bench".into(),
            relays: Vec::new(),
            founder: Some(entry),
            recovery: None,
            anchor: Some(anchor),
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
    let mut members = Vec::new();
    for i in 1..devices {
        let invitation = admin.invite(Role::Member, u64::MAX, &mut OsRng).unwrap();
        let (person, keys) = one_device_person(&format!("person-{i}")).await;
        hold(all_blocks(&person).await).await;
        let mut joiner = Identity::replica(person.chain().store().clone(), genesis.clone(), keys)
            .await
            .unwrap();
        let request = joiner
            .request_join(invitation, Some(person.as_member()), T0)
            .await
            .unwrap();
        let block = joiner.chain().block(&request).await.unwrap().unwrap().block;
        bytes.push(block.bytes().to_vec());
        requests.push(request);
        members.push(person.did());
    }
    admin.insert(bytes.iter()).await.unwrap();
    for request in requests {
        admin.approve(request, T0 + 1, &mut OsRng).await.unwrap();
    }
    assert_eq!(admin.state().devices().count(), devices);
    (admin, members)
}

/// A person identity of about `blocks` blocks: devices joining and leaving, key rotations,
/// rekeys and small ops (policy changes), as a long-lived identity accumulates them. Returns
/// its blocks.
pub async fn person_chain(blocks: u64) -> Vec<Block> {
    person_chain_with_insider(blocks, false).await.0
}

/// [`person_chain`]; with `insider`, a device joins first and is removed last, and its keys
/// are returned: a removed device whose key every block between holds current, so it can
/// sign on any of them ("into the past") and every replica admits what it signs.
pub async fn person_chain_with_insider(
    blocks: u64,
    insider: bool,
) -> (Vec<Block>, Option<DeviceKeys>) {
    let mut me = Identity::create(
        MemoryStore::new(),
        DeviceKeys::generate(&mut OsRng),
        Founding {
            kind: Kind::Person,
            name: "bench".into(),
            relays: vec!["/ip4/127.0.0.1/tcp/4002/ws".into()],
            founder: None,
            recovery: None,
            anchor: None,
        },
        T0,
        &mut OsRng,
    )
    .await
    .unwrap();
    let genesis = all_blocks(&me).await.remove(0);
    let insider = if insider {
        let keys = DeviceKeys::generate(&mut OsRng);
        let secret = DeviceKeys::from_secret_bytes(&keys.to_secret_bytes()).unwrap();
        join_device(&mut me, &genesis, keys, T0).await;
        Some(secret)
    } else {
        None
    };
    let mut round = 0u64;
    while me.chain().len() < blocks {
        round += 1;
        let device = join_device(
            &mut me,
            &genesis,
            DeviceKeys::generate(&mut OsRng),
            T0 + round,
        )
        .await;
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
    if let Some(insider) = &insider {
        me.remove(insider.did(), T0 + round + 1, &mut OsRng)
            .await
            .unwrap();
    }
    (all_blocks(&me).await, insider)
}

/// A device with `keys` joins `me` through a real request and approval; its replica.
async fn join_device(
    me: &mut Identity<MemoryStore>,
    genesis: &Block,
    keys: DeviceKeys,
    time: u64,
) -> Identity<MemoryStore> {
    let invitation = me.invite(Role::Admin, u64::MAX, &mut OsRng).unwrap();
    let mut device = Identity::replica(MemoryStore::new(), genesis.clone(), keys)
        .await
        .unwrap();
    // A joining device catches up first: a request is admitted only if its own history holds
    // the inviter's current key (rotated every third round of `person_chain`).
    let held = all_blocks(me).await;
    device.insert(held.iter().map(Block::bytes)).await.unwrap();
    let request = device.request_join(invitation, None, T0).await.unwrap();
    let block = device.chain().block(&request).await.unwrap().unwrap().block;
    me.insert([block.bytes()]).await.unwrap();
    me.approve(request, time, &mut OsRng).await.unwrap();
    device
}

/// The median of some timings.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
