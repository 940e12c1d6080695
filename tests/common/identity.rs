//! Helpers for identity tests: persons and devices, each device with its own replica (its
//! own store), blocks exchanged between replicas only when a test says so.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use endra::identity::{
    BoundChain, DeviceKeys, Founding, Identity, IdentityError, Invitation, Kind, MemberEntry,
    PersonAnchor, Role,
};
use endra::store::{BlockStore, MemoryStore};
use endra::walytis::{Block, BlockId, Chain, ChainError, Query};
use rand_core::OsRng;

/// One device's handle on an identity, over its own store.
pub type Id = Identity<MemoryStore>;

/// A fixed start time (ms since the Unix epoch): tests never read the clock.
pub const T0: u64 = 1_700_000_000_000;
/// One hour, in ms.
pub const HOUR: u64 = 3_600_000;

/// Every block of the identity chain, in chain order.
pub async fn blocks(identity: &Id) -> Vec<Block> {
    identity.blocks().await.unwrap()
}

/// The genesis block.
pub async fn genesis(identity: &Id) -> Block {
    blocks(identity).await.remove(0)
}

/// Every replica's store gets every block of the *other* identity chains (persons) any of
/// their stores holds: a group checks its members' joins and device lists against their
/// person chains, which a device's node fetches as it follows the group.
pub async fn share_persons(replicas: &[&mut Id]) {
    let rules = endra::identity::rules();
    let mut chains: Vec<Vec<Block>> = Vec::new();
    for replica in replicas.iter() {
        let store = replica.chain().store();
        for id in store.chains().await.unwrap() {
            if id == replica.chain().id() {
                continue;
            }
            let chain = Chain::open(store.clone(), &rules, id).await.unwrap();
            let all = chain
                .blocks(Query {
                    limit: usize::MAX,
                    ..Query::default()
                })
                .await
                .unwrap();
            let person = all.first().is_some_and(|g| {
                matches!(
                    endra::identity::Op::decode(g.block.body()),
                    Ok(endra::identity::Op::Genesis {
                        kind: Kind::Person,
                        ..
                    })
                )
            });
            if person {
                chains.push(all.into_iter().map(|e| e.block).collect());
            }
        }
    }
    for replica in replicas.iter() {
        let store = replica.chain().store().clone();
        for chain in &chains {
            let id = chain[0].id();
            let mut held = match Chain::open(store.clone(), &rules, id).await {
                Ok(held) => held,
                Err(_) => Chain::from_genesis(store.clone(), &rules, chain[0].clone())
                    .await
                    .unwrap(),
            };
            let report = held.insert(chain.iter().map(Block::bytes)).await.unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        }
    }
}

/// Every replica gets every block any of them has — of the identity chain, then of its
/// default chain (whose blocks name identity blocks) — and must store them all at once
/// (nothing refused, nothing waiting for a parent or an anchor). The persons' chains the
/// replicas' stores hold are shared first ([`share_persons`]).
pub async fn exchange(replicas: &mut [&mut Id]) {
    share_persons(replicas).await;
    // Another handle on a store (sharing persons' chains between groups) may have written.
    for replica in replicas.iter_mut() {
        replica.refresh().await.unwrap();
    }
    let mut all = Vec::new();
    for replica in replicas.iter() {
        for block in blocks(replica).await {
            all.push(block.bytes().to_vec());
        }
    }
    for replica in replicas.iter_mut() {
        let report = replica.insert(all.iter()).await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        assert!(report.waiting.is_empty());
    }
    let Some(chain) = replicas[0].default_chain() else {
        return;
    };
    let mut notes = Vec::new();
    for replica in replicas.iter() {
        if let Some(chain) = default_chain(replica, chain).await {
            let entries = chain
                .chain()
                .blocks(Query {
                    limit: usize::MAX,
                    ..Query::default()
                })
                .await
                .unwrap();
            notes.extend(entries.into_iter().map(|e| e.block));
        }
    }
    let Some(genesis) = notes.iter().find(|b| b.id() == chain).cloned() else {
        return;
    };
    for replica in replicas.iter_mut() {
        let mut bound = match default_chain(replica, chain).await {
            Some(bound) => bound,
            None => BoundChain::replica(replica, genesis.clone()).await.unwrap(),
        };
        let report = bound
            .chain_mut()
            .insert(notes.iter().map(Block::bytes))
            .await
            .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        assert!(report.waiting.is_empty());
    }
}

/// The replica's handle on the identity's default chain, if its store holds it.
async fn default_chain(replica: &Id, chain: BlockId) -> Option<BoundChain<MemoryStore>> {
    match BoundChain::open(replica, chain).await {
        Ok(bound) => Some(bound),
        Err(IdentityError::Chain(ChainError::UnknownChain(_))) => None,
        Err(e) => panic!("the default chain does not open: {e}"),
    }
}

/// Gives a new identity its default chain, as the client layer does when it creates one.
pub async fn with_default_chain(mut identity: Id) -> Id {
    let chain = BoundChain::create(&identity, T0, &mut OsRng).await.unwrap();
    identity
        .name_default_chain(chain.chain().id(), T0)
        .await
        .unwrap();
    identity
}

/// Writes a message to the identity's default chain, as this device.
pub async fn write_note(
    identity: &mut Id,
    body: &[u8],
    time: u64,
) -> Result<BlockId, IdentityError> {
    let chain = identity.default_chain().expect("a default chain");
    let mut bound = default_chain(identity, chain).await.expect("held");
    Ok(bound
        .write(identity, body, vec![], time, &mut OsRng)
        .await?
        .block
        .id())
}

/// The default chain's messages as this device shows them: each text, or why unreadable.
pub async fn read_notes(identity: &Id) -> Vec<Result<Vec<u8>, String>> {
    let Some(chain) = identity.default_chain() else {
        return Vec::new();
    };
    let Some(bound) = default_chain(identity, chain).await else {
        return Vec::new();
    };
    bound
        .messages(identity)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, content)| content.map_err(|e| e.to_string()))
        .collect()
}

/// How an identity is founded: `kind`, `name`, and for a group its founding person (with
/// where it stands in its own chain).
pub fn founding(kind: Kind, name: &str, founder: Option<(MemberEntry, PersonAnchor)>) -> Founding {
    let (founder, anchor) = founder.unzip();
    Founding {
        kind,
        name: name.into(),
        relays: vec!["/ip4/127.0.0.1/tcp/4002/ws".into()],
        founder,
        recovery: None,
        anchor,
    }
}

/// A person's founding.
pub fn person(name: &str) -> Founding {
    founding(Kind::Person, name, None)
}

/// A person identity founded by a fresh device, with its default chain.
pub async fn new_person(name: &str) -> Id {
    let identity = Identity::create(
        MemoryStore::new(),
        DeviceKeys::generate(&mut OsRng),
        person(name),
        T0,
        &mut OsRng,
    )
    .await
    .unwrap();
    with_default_chain(identity).await
}

/// A new device joins `admin`'s person through an invitation code (written out and read
/// back, as a user would pass it on); returns its replica.
pub async fn add_device(admin: &mut Id, time: u64) -> Id {
    let invitation = admin.invite(Role::Admin, time + HOUR, &mut OsRng).unwrap();
    let parsed = Invitation::from_code(&invitation.to_code()).unwrap();
    let mut joiner = Identity::replica(
        MemoryStore::new(),
        genesis(admin).await,
        DeviceKeys::generate(&mut OsRng),
    )
    .await
    .unwrap();
    exchange(&mut [admin, &mut joiner]).await;
    let request = joiner.request_join(parsed, None, time).await.unwrap();
    exchange(&mut [admin, &mut joiner]).await;
    admin.approve(request, time + 1, &mut OsRng).await.unwrap();
    exchange(&mut [admin, &mut joiner]).await;
    assert!(joiner.is_current_device());
    joiner
}

/// A copy of `identity`'s device keys (another handle on the same device).
pub fn keys_of(identity: &Id) -> DeviceKeys {
    DeviceKeys::from_secret_bytes(&identity.device().to_secret_bytes()).unwrap()
}

/// `device`'s replica of the group, in the store of its person replica.
pub async fn replica_for(device: &Id, genesis: &Block) -> Id {
    Identity::replica(
        device.chain().store().clone(),
        genesis.clone(),
        keys_of(device),
    )
    .await
    .unwrap()
}

/// A group founded by `founder`'s person (its replica in `founder`'s store).
pub async fn group_founded_by(founder: &Id, name: &str) -> Id {
    let group = Identity::create(
        founder.chain().store().clone(),
        keys_of(founder),
        founding(Kind::Group, name, Some(founder.as_member())),
        T0,
        &mut OsRng,
    )
    .await
    .unwrap();
    with_default_chain(group).await
}

/// `person` (through its device `device`) joins `group`, approved by `admin`.
pub async fn join_group(admin: &mut Id, person: &Id, device: &mut Id) {
    let invitation = admin.invite(Role::Member, T0 + HOUR, &mut OsRng).unwrap();
    exchange(&mut [admin, device]).await;
    let request = device
        .request_join(invitation, Some(person.as_member()), T0 + 1)
        .await
        .unwrap();
    exchange(&mut [admin, device]).await;
    admin.approve(request, T0 + 2, &mut OsRng).await.unwrap();
    exchange(&mut [admin, device]).await;
}
