//! The client layer's test helpers: accounts on separate stores that exchange blocks only
//! through their outboxes, as the wasm shell does through the node.
#![allow(dead_code)]

use endra::client::{Account, Keyring, Publication};
use endra::identity::{Founding, Invitation, KdfFloor, KdfParams, Kind, Role};
use endra::store::MemoryStore;
use endra::walytis::BlockId;
use rand_core::OsRng;

pub type Device = Account<MemoryStore>;

pub const T0: u64 = 1_700_000_000_000;
pub const HOUR: u64 = 3_600_000;

/// Cheap KDF costs: the tests are about where keys are kept, not about Argon2.
pub const TEST_KEYRING: Keyring = Keyring {
    params: KdfParams::INSECURE_TEST,
    floor: KdfFloor::NONE,
};

pub fn person(name: &str) -> Founding {
    Founding {
        kind: Kind::Person,
        name: name.into(),
        relays: vec![],
        founder: None,
        recovery: None,
        anchor: None,
    }
}

/// Hands each publication to every device, in outbox order, and asserts each block is
/// admitted as it arrives: nothing refused, nothing left waiting for a parent or an anchor.
pub async fn deliver(outbox: &[Publication], devices: &mut [&mut Device]) {
    for publication in outbox {
        for device in devices.iter_mut() {
            let report = device
                .receive(
                    &publication.chain,
                    publication.blocks.iter().map(|b| b.bytes()),
                )
                .await
                .unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            assert!(report.waiting.is_empty(), "{:?}", report.waiting);
        }
    }
}

/// A device that joined `admin`'s person, every block carried by outboxes only; `others`
/// (devices already in) get every block too.
pub async fn join(admin: &mut Device, others: &mut [&mut Device], time: u64) -> Device {
    join_keeping_keys(admin, others, time, &MemoryStore::new()).await
}

/// `device` restarted: its identity opened again from its store, with its keys unlocked from
/// `keys_store` (see [`join_keeping_keys`]), and its bound chain `chain` opened.
pub async fn reopen(device: Device, keys_store: &MemoryStore, chain: BlockId) -> Device {
    let store = device.identity().chain().store().clone();
    let identity = device.chain();
    drop(device);
    let keys = TEST_KEYRING
        .unlock(keys_store, "pass", &mut OsRng)
        .await
        .unwrap();
    let mut device = Account::open(store, identity, keys).await.unwrap();
    device.open_chain(chain).await.unwrap();
    device
}

/// [`join`], the device's keys sealed in `keys_store`: unlocked from there again, they open
/// the device after a restart.
pub async fn join_keeping_keys(
    admin: &mut Device,
    others: &mut [&mut Device],
    time: u64,
    keys_store: &MemoryStore,
) -> Device {
    let keys = TEST_KEYRING
        .unlock(keys_store, "pass", &mut OsRng)
        .await
        .unwrap();
    let genesis = admin
        .identity()
        .chain()
        .block(&admin.chain())
        .await
        .unwrap()
        .unwrap()
        .block;
    let mut device = Account::replica(MemoryStore::new(), genesis, keys)
        .await
        .unwrap();
    // What the admin wrote so far, as a peer's catch-up would bring it.
    let history = admin.identity().blocks().await.unwrap();
    let report = device
        .receive(&admin.chain(), history.iter().map(|b| b.bytes()))
        .await
        .unwrap();
    assert!(report.rejected.is_empty());
    let invitation = admin
        .identity()
        .invite(Role::Admin, time + HOUR, &mut OsRng)
        .unwrap();
    let code = Invitation::from_code(&invitation.to_code()).unwrap();
    let request = device.request_join(code, None, time).await.unwrap();
    let outbox = device.take_outbox();
    deliver(&outbox, &mut [admin]).await;
    deliver(&outbox, others).await;
    admin.approve(request, time + 1, &mut OsRng).await.unwrap();
    let outbox = admin.take_outbox();
    deliver(&outbox, &mut [&mut device]).await;
    deliver(&outbox, others).await;
    assert!(device.identity().is_current_device());
    device
}

pub async fn new_person() -> Device {
    let keys = TEST_KEYRING
        .unlock(&MemoryStore::new(), "pass", &mut OsRng)
        .await
        .unwrap();
    let mut laptop = Account::create(MemoryStore::new(), keys, person("Ada"), T0, &mut OsRng)
        .await
        .unwrap();
    // Founding queues the genesis and the first epoch, then the default chain's genesis,
    // then the op that names it: identity chains carry ops only, messages go there.
    let outbox = laptop.take_outbox();
    let default = laptop.default_chain().unwrap();
    let chains: Vec<BlockId> = outbox.iter().map(|p| p.chain).collect();
    assert_eq!(chains, vec![laptop.chain(), default, laptop.chain()]);
    assert_eq!(outbox[0].blocks[0].id(), laptop.chain());
    assert_eq!(outbox[1].blocks[0].id(), default);
    assert_eq!(
        (outbox[0].blocks.len() + outbox[2].blocks.len()) as u64,
        laptop.identity().chain().len()
    );
    laptop
}

/// Founds a bound chain on `founder` and opens it on the others from its genesis.
pub async fn bound_chain(founder: &mut Device, others: &mut [&mut Device], time: u64) -> BlockId {
    let chain = founder.create_chain(time, &mut OsRng).await.unwrap();
    let outbox = founder.take_outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].blocks[0].id(), chain);
    for other in others.iter_mut() {
        other.join_chain(outbox[0].blocks[0].clone()).await.unwrap();
    }
    chain
}
