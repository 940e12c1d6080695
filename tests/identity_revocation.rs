//! Revocations that choosing old parents cannot win: a removed device that removes its
//! remover "in the past", a removed device that rotates itself, a leaked old key that
//! rotates its device to the thief's key, and mutual removal — each replayed into fresh
//! replicas in every arrival order — plus a property test of the invariants over random
//! DAGs of ops signed by current and old keys.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{HashMap, HashSet};

use endra::identity::ops::{recovery_proof, rotation_proof};
use endra::identity::{
    DeviceKeys, Founding, Identity, IdentityState, Invitation, Kind, Op, PublicKey, RecoveryKey,
    Rejection, Role, SigningKeyPair, IDENTITY_TOPIC,
};
use endra::store::MemoryStore;
use endra::walytis::ChainError;
use endra::walytis::{Block, BlockDraft, BlockId};
use futures_executor::block_on;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand_core::OsRng;

mod common;

use common::identity::{
    add_device, blocks, exchange, founding, genesis, keys_of, new_person, with_default_chain,
    write_note, Id, HOUR, T0,
};

/// Signs `op` with `key` on `parents`, bypassing every local check, as an attacker would.
fn sign(chain: BlockId, key: &DeviceKeys, parents: Vec<BlockId>, height: u64, op: Op) -> Block {
    sign_as(chain, key.signing(), parents, height, op)
}

/// [`sign`] with any signing key (a recovery key).
fn sign_as(
    chain: BlockId,
    key: &SigningKeyPair,
    parents: Vec<BlockId>,
    height: u64,
    op: Op,
) -> Block {
    let mut parents = parents;
    parents.sort_unstable();
    parents.dedup();
    BlockDraft {
        chain: Some(chain),
        parents,
        height,
        time: T0 + 10,
        topics: vec![IDENTITY_TOPIC.into()],
        body: op.encode(),
    }
    .sign(key.as_dalek())
    .unwrap()
}

/// A rotation of `old`'s device to `new`, signed by `old`.
fn rotate(
    chain: BlockId,
    old: &DeviceKeys,
    new: &DeviceKeys,
    parents: Vec<BlockId>,
    height: u64,
) -> Block {
    let op = Op::Rotate {
        device: old.did().to_owned(),
        signing: new.signing().public(),
        agreement: new.agreement().public(),
        proof: rotation_proof(&chain, old.did(), new.signing(), &new.agreement().public()),
    };
    sign(chain, old, parents, height, op)
}

/// The raw signing key: the author key of the device's blocks.
fn ed(keys: &DeviceKeys) -> [u8; 32] {
    match keys.signing().public() {
        PublicKey::Ed25519(key) => key,
        _ => unreachable!("signing keys are Ed25519"),
    }
}

/// The block that approved `device` into the person, and its height: a parent from before
/// anything later.
async fn joined(identity: &Id, device: &str) -> (BlockId, u64) {
    let state = identity.state();
    let member = state.member(device).unwrap();
    let block = identity
        .chain()
        .block(&member.since)
        .await
        .unwrap()
        .unwrap();
    (member.since, block.block.height())
}

/// What a replica shows: its document and every block without effect.
fn view(state: &IdentityState) -> (serde_json::Value, Vec<(BlockId, String)>) {
    let rejected = state
        .rejected()
        .iter()
        .map(|(id, why)| (*id, why.to_string()))
        .collect();
    (endra::identity::document(state), rejected)
}

/// Every permutation of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            all.push(tail);
        }
    }
    all
}

/// A fresh replica holding `base`, then `extra` one block at a time in the given order.
async fn replay(base: &[Block], extra: &[Block]) -> Id {
    replay_in(MemoryStore::new(), base, extra).await
}

/// A fresh store holding the chains of `persons` (what a group's replica checks its
/// members' joins against).
async fn holding(persons: &[&Id]) -> MemoryStore {
    let store = MemoryStore::new();
    let rules = endra::identity::rules();
    for person in persons {
        let chain = blocks(person).await;
        let mut held = endra::walytis::Chain::from_genesis(store.clone(), &rules, chain[0].clone())
            .await
            .unwrap();
        held.insert(chain[1..].iter().map(Block::bytes))
            .await
            .unwrap();
    }
    store
}

/// [`replay`] into `store`.
async fn replay_in(store: MemoryStore, base: &[Block], extra: &[Block]) -> Id {
    let mut replica = Identity::replica(store, base[0].clone(), DeviceKeys::generate(&mut OsRng))
        .await
        .unwrap();
    let report = replica
        .insert(base[1..].iter().map(Block::bytes))
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    for block in extra {
        let report = replica.insert([block.bytes()]).await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }
    assert_eq!(replica.chain().len() as usize, base.len() + extra.len());
    replica
}

/// The blocks `holder` has beyond `base`: what replicas receive in every order.
async fn beyond(holder: &Id, base: &[Block]) -> Vec<Block> {
    let known: HashSet<BlockId> = base.iter().map(Block::id).collect();
    blocks(holder)
        .await
        .into_iter()
        .filter(|b| !known.contains(&b.id()))
        .collect()
}

/// Replays `extra` on `base` in every order (or, past 5 blocks, in 24 shuffles of them) and
/// asserts every replica shows what `expected` shows; returns one replica's state.
async fn in_every_order(base: &[Block], extra: &[Block]) -> IdentityState {
    in_every_order_holding(&[], base, extra).await
}

/// [`in_every_order`] for a group: each replica's store holds the members' person chains.
async fn in_every_order_holding(persons: &[&Id], base: &[Block], extra: &[Block]) -> IdentityState {
    let orders = if extra.len() <= 4 {
        permutations(extra)
    } else {
        (0..24)
            .map(|i| {
                let mut order = extra.to_vec();
                order.rotate_left(i % extra.len());
                if i % 2 == 1 {
                    order.reverse();
                }
                order
            })
            .collect()
    };
    let mut first: Option<IdentityState> = None;
    for order in orders {
        let replica = replay_in(holding(persons).await, base, &order).await;
        let fresh = IdentityState::resolve(&blocks(&replica).await).unwrap();
        assert_eq!(
            view(&fresh),
            view(replica.state()),
            "incremental = fresh fold"
        );
        match &first {
            Some(state) => assert_eq!(view(state), view(replica.state()), "orders differ"),
            None => first = Some(replica.state().clone()),
        }
    }
    first.unwrap()
}

/// A person with three devices that all hold the same blocks.
async fn three_devices() -> (Id, Id, Id) {
    let mut laptop = new_person("Ada").await;
    let mut phone = add_device(&mut laptop, T0).await;
    let mut tablet = add_device(&mut laptop, T0).await;
    exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
    (laptop, phone, tablet)
}

#[test]
fn a_removed_device_that_removes_its_remover_in_the_past_goes_down_with_it() {
    block_on(async {
        let (mut laptop, phone, tablet) = three_devices().await;
        let base = blocks(&laptop).await;
        let (phone_did, laptop_did) = (phone.device().did(), laptop.device().did().to_owned());
        let (leaves, height) = (
            laptop.chain().leaves().to_vec(),
            base.last().unwrap().height(),
        );
        laptop.remove(phone_did, T0 + 5, &mut OsRng).await.unwrap();
        // The phone, removed, signs the laptop's removal on the parents the removal has:
        // it sorts first, and before, that alone put the laptop out and kept the phone in.
        let backdated = sign(
            laptop.chain().id(),
            &keys_of(&phone),
            leaves,
            height + 1,
            Op::Remove {
                member: laptop_did.clone(),
            },
        );
        let mut extra = beyond(&laptop, &base).await;
        extra.push(backdated);
        let state = in_every_order(&base, &extra).await;
        // Neither removal's author can be told from a backdater: both go.
        assert!(
            state.device(phone_did).is_none(),
            "the removed phone is out"
        );
        assert!(
            state.device(&laptop_did).is_none(),
            "its remover went down with it"
        );
        assert!(
            state.device(tablet.device().did()).is_some(),
            "the tablet stays"
        );
        // The laptop's epoch after the removal was written concurrently with the phone's
        // removal of it: dropped; the tablet must make a new one.
        assert!(state.needs_rekey());
        assert!(state
            .rejected()
            .values()
            .any(|r| matches!(r, Rejection::RevokedConcurrently { .. })));
    });
}

/// The documented cost of deciding mutual removals symmetrically: a removed device that
/// backdates its retaliation to before its remover approved another device also drops that
/// approval (the remover's concurrent ops fall with it, and what they enrolled).
#[test]
fn backdating_past_an_approval_drops_what_the_remover_approved_since() {
    block_on(async {
        let (mut laptop, phone, tablet) = three_devices().await;
        let base = blocks(&laptop).await;
        let (before, height) = joined(&laptop, phone.device().did()).await;
        laptop
            .remove(phone.device().did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        let backdated = sign(
            laptop.chain().id(),
            &keys_of(&phone),
            vec![before],
            height + 1,
            Op::Remove {
                member: laptop.device().did().to_owned(),
            },
        );
        let mut extra = beyond(&laptop, &base).await;
        extra.push(backdated);
        let state = in_every_order(&base, &extra).await;
        for device in [&laptop, &phone, &tablet] {
            assert!(state.device(device.device().did()).is_none());
        }
    });
}

#[test]
fn a_removed_device_that_rotates_itself_in_the_past_gains_nothing() {
    block_on(async {
        let (mut laptop, phone, _tablet) = three_devices().await;
        let base = blocks(&laptop).await;
        let phone_did = phone.device().did().to_owned();
        let (before, height) = joined(&laptop, &phone_did).await;
        laptop.remove(&phone_did, T0 + 5, &mut OsRng).await.unwrap();
        let old = keys_of(&phone);
        let new = old.rotated(&mut OsRng);
        let rotation = rotate(laptop.chain().id(), &old, &new, vec![before], height + 1);
        // And, as its new key, it writes an op on top of its rotation.
        let strike = sign(
            laptop.chain().id(),
            &new,
            vec![rotation.id()],
            height + 2,
            Op::Relays { relays: Vec::new() },
        );
        let mut extra = beyond(&laptop, &base).await;
        extra.extend([rotation.clone(), strike.clone()]);
        let state = in_every_order(&base, &extra).await;
        assert!(state.device(&phone_did).is_none());
        assert!(
            state.device(laptop.device().did()).is_some(),
            "the laptop stays"
        );
        assert!(state.signer(&ed(&new)).is_none());
        for block in [&rotation, &strike] {
            assert!(matches!(
                state.rejection(&block.id()),
                Some(Rejection::RevokedConcurrently { .. })
            ));
        }
        assert!(
            !state.needs_rekey(),
            "the laptop's epoch after the removal stands"
        );
    });
}

#[test]
fn a_leaked_old_key_that_rotates_its_device_is_an_equivocation() {
    block_on(async {
        let (laptop, mut phone, _tablet) = three_devices().await;
        let base = blocks(&laptop).await;
        let phone_did = phone.device().did().to_owned();
        let (before, height) = joined(&laptop, &phone_did).await;
        let leaked = keys_of(&phone);
        phone.rotate(T0 + 5, &mut OsRng).await.unwrap();
        let successor = keys_of(&phone);
        // The thief signs, with the old key, a rotation to a key of its own on parents from
        // before the real one; then, as the thief's key, removes the laptop.
        let thief = leaked.rotated(&mut OsRng);
        let hijack = rotate(
            laptop.chain().id(),
            &leaked,
            &thief,
            vec![before],
            height + 1,
        );
        let strike = sign(
            laptop.chain().id(),
            &thief,
            vec![hijack.id()],
            height + 2,
            Op::Remove {
                member: laptop.device().did().to_owned(),
            },
        );
        let mut extra = beyond(&phone, &base).await;
        extra.extend([hijack, strike.clone()]);
        let state = in_every_order(&base, &extra).await;
        // Two successors of one key: the device and both successors are out, for good.
        assert!(
            state.device(&phone_did).is_none(),
            "the equivocating device is out"
        );
        for key in [&leaked, &thief, &successor] {
            assert!(state.signer(&ed(key)).is_none());
        }
        assert!(
            state.device(laptop.device().did()).is_some(),
            "the thief's removal fails"
        );
        assert!(state.rejection(&strike.id()).is_some());
    });
}

#[test]
fn a_leaked_old_key_writes_nothing_after_the_rotation_it_did_not_see() {
    block_on(async {
        let (laptop, mut phone, tablet) = three_devices().await;
        let base = blocks(&laptop).await;
        let (before, height) = joined(&laptop, phone.device().did()).await;
        let leaked = keys_of(&phone);
        phone.rotate(T0 + 5, &mut OsRng).await.unwrap();
        // The thief removes the tablet with the old key, on old parents.
        let strike = sign(
            laptop.chain().id(),
            &leaked,
            vec![before],
            height + 1,
            Op::Remove {
                member: tablet.device().did().to_owned(),
            },
        );
        let mut extra = beyond(&phone, &base).await;
        extra.push(strike.clone());
        let state = in_every_order(&base, &extra).await;
        assert!(state.device(tablet.device().did()).is_some());
        assert!(
            state.device(phone.device().did()).is_some(),
            "the phone rotated"
        );
        assert!(matches!(
            state.rejection(&strike.id()),
            Some(Rejection::RevokedConcurrently { .. })
        ));
    });
}

#[test]
fn two_admins_of_a_group_that_remove_each_other_both_go() {
    block_on(async {
        let ada = new_person("Ada").await;
        let bo = new_person("Bo").await;
        let cy = new_person("Cy").await;
        let mut group_ada = Identity::create(
            ada.chain().store().clone(),
            keys_of(&ada),
            founding(endra::identity::Kind::Group, "crew", Some(ada.as_member())),
            T0,
            &mut OsRng,
        )
        .await
        .unwrap();
        let genesis = blocks(&group_ada).await.remove(0);
        let mut others = Vec::new();
        for (person, role) in [(&bo, Role::Admin), (&cy, Role::Member)] {
            let mut replica = Identity::replica(
                person.chain().store().clone(),
                genesis.clone(),
                keys_of(person),
            )
            .await
            .unwrap();
            let invitation = group_ada.invite(role, T0 + HOUR, &mut OsRng).unwrap();
            exchange(&mut [&mut group_ada, &mut replica]).await;
            let request = replica
                .request_join(invitation, Some(person.as_member()), T0 + 1)
                .await
                .unwrap();
            exchange(&mut [&mut group_ada, &mut replica]).await;
            group_ada
                .approve(request, T0 + 2, &mut OsRng)
                .await
                .unwrap();
            exchange(&mut [&mut group_ada, &mut replica]).await;
            others.push(replica);
        }
        let [mut group_bo, mut group_cy]: [Id; 2] = others.try_into().ok().unwrap();
        exchange(&mut [&mut group_ada, &mut group_bo, &mut group_cy]).await;
        let base = blocks(&group_ada).await;
        // Without exchanging, each admin removes the other.
        group_ada
            .remove(&bo.did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        group_bo
            .remove(&ada.did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        let mut extra = beyond(&group_ada, &base).await;
        extra.extend(beyond(&group_bo, &base).await);
        let state = in_every_order_holding(&[&ada, &bo, &cy], &base, &extra).await;
        // The documented cost: the group keeps its member and has no admin left.
        let members: Vec<&String> = state.members().keys().collect();
        assert_eq!(members, vec![&cy.did()]);
        exchange(&mut [&mut group_ada, &mut group_bo, &mut group_cy]).await;
        assert!(group_cy.is_current_device());
        assert!(!group_ada.is_current_device() && !group_bo.is_current_device());
    });
}

#[test]
fn a_fold_on_top_gives_what_a_fold_of_the_whole_chain_gives_for_a_lone_admin_leaving() {
    block_on(async {
        let laptop = new_person("Ada").await;
        let base = blocks(&laptop).await;
        let (leaves, height) = (
            laptop.chain().leaves().to_vec(),
            base.last().unwrap().height(),
        );
        // Refused to a local writer (the last admin cannot go); a forged one on top of
        // everything is folded in incrementally, and must count as a fresh fold counts it.
        let leave = sign(
            laptop.chain().id(),
            &keys_of(&laptop),
            leaves,
            height + 1,
            Op::Remove {
                member: laptop.device().did().to_owned(),
            },
        );
        let state = in_every_order(&base, &[leave]).await;
        assert!(state.members().is_empty());
    });
}

/// A person founded with a recovery key, and a phone: both hold the same blocks.
async fn person_with_recovery() -> (Id, Id, RecoveryKey) {
    let recovery = RecoveryKey::generate(&mut OsRng);
    let laptop = Identity::create(
        MemoryStore::new(),
        DeviceKeys::generate(&mut OsRng),
        Founding {
            recovery: Some(recovery.public()),
            ..founding(Kind::Person, "Ada", None)
        },
        T0,
        &mut OsRng,
    )
    .await
    .unwrap();
    let mut laptop = with_default_chain(laptop).await;
    let mut phone = add_device(&mut laptop, T0).await;
    exchange(&mut [&mut laptop, &mut phone]).await;
    // The code the user wrote down is what recovers.
    let kept = RecoveryKey::from_code(&recovery.to_code()).unwrap();
    (laptop, phone, kept)
}

/// A fresh device holding `blocks` of the identity: where a user recovers.
async fn fresh_device(blocks: &[Block]) -> Id {
    let mut device = Identity::replica(
        MemoryStore::new(),
        blocks[0].clone(),
        DeviceKeys::generate(&mut OsRng),
    )
    .await
    .unwrap();
    device
        .insert(blocks[1..].iter().map(Block::bytes))
        .await
        .unwrap();
    device
}

/// A recovery signed by `key` on `parents`, removing `remove`, enrolling `device`.
fn recovery_op(
    chain: BlockId,
    key: &RecoveryKey,
    device: &DeviceKeys,
    remove: Vec<String>,
    next: &RecoveryKey,
    parents: Vec<BlockId>,
    height: u64,
) -> Block {
    let entry = device.entry();
    let op = Op::Recover {
        remove,
        proof: recovery_proof(&chain, &entry, device.signing()),
        device: entry,
        next: next.public(),
    };
    sign_as(chain, key.signing(), parents, height, op)
}

/// The phone is stolen. The thief removes the laptop, then — concurrently with the owner's
/// recovery, which it never sees — lets a device of its own in and rotates the phone's key.
/// The owner, on a new device holding what the thief wrote before, recovers with the code
/// kept offline. In every arrival order: the new device is the person's only device, the
/// phone, the thief's device and the phone's new key are out, the next recovery key is
/// named, and the spent one admits nothing more.
#[test]
fn a_recovery_key_takes_the_person_back_from_a_stolen_device() {
    block_on(async {
        let (mut laptop, mut phone, recovery) = person_with_recovery().await;
        let base = blocks(&phone).await;
        phone
            .remove(laptop.device().did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        let before_recovery = blocks(&phone).await;
        let mut owner = fresh_device(&before_recovery).await;
        let next = RecoveryKey::generate(&mut OsRng);
        owner
            .recover(&recovery, next.public(), T0 + 10, &mut OsRng)
            .await
            .unwrap();
        assert!(owner.is_current_device());
        // Concurrently, the thief approves a device of its own and rotates the phone's key.
        let invitation = phone.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
        let mut thief = fresh_device(&blocks(&phone).await).await;
        let request = thief
            .request_join(
                Invitation::from_code(&invitation.to_code()).unwrap(),
                None,
                T0 + 6,
            )
            .await
            .unwrap();
        let request_block = thief.chain().block(&request).await.unwrap().unwrap().block;
        phone.insert([request_block.bytes()]).await.unwrap();
        phone.approve(request, T0 + 7, &mut OsRng).await.unwrap();
        phone.rotate(T0 + 8, &mut OsRng).await.unwrap();
        let thief_did = thief.device().did().to_owned();

        let mut extra = beyond(&phone, &base).await;
        let ours = beyond(&owner, &before_recovery).await;
        extra.extend(ours);
        let state = in_every_order(&base, &extra).await;
        let devices: Vec<&str> = state.devices().map(|(_, d)| d.did.as_str()).collect();
        assert_eq!(devices, vec![owner.device().did()]);
        for gone in [laptop.device().did(), phone.device().did(), &thief_did] {
            assert!(state.device(gone).is_none(), "{gone} is out");
        }
        assert_eq!(state.recovery_key(), Some(next.public()));
        assert!(!state.needs_rekey(), "the recovering device's epoch stands");

        // The spent key admits nothing more, on top of everything; nor does the recovery
        // key sign anything but a recovery, nor a device a recovery.
        let mut replica = replay(&base, &extra).await;
        let (leaves, height) = (
            replica.chain().leaves().to_vec(),
            blocks(&replica).await.last().unwrap().height() + 1,
        );
        let chain = replica.chain().id();
        let again = recovery_op(
            chain,
            &recovery,
            &DeviceKeys::generate(&mut OsRng),
            vec![],
            &RecoveryKey::generate(&mut OsRng),
            leaves.clone(),
            height,
        );
        let relays = sign_as(
            chain,
            next.signing(),
            leaves.clone(),
            height,
            Op::Relays { relays: vec![] },
        );
        let by_device = sign(
            chain,
            &keys_of(&owner),
            leaves.clone(),
            height,
            Op::Recover {
                remove: vec![],
                device: DeviceKeys::generate(&mut OsRng).entry(),
                proof: [0; 64],
                next: RecoveryKey::generate(&mut OsRng).public(),
            },
        );
        for (block, code) in [
            (again, "REVOKED"),
            (relays, "UNAUTHORISED"),
            (by_device, "UNAUTHORISED"),
        ] {
            let report = replica.insert([block.bytes()]).await.unwrap();
            assert!(report.accepted.is_empty());
            assert!(
                matches!(&report.rejected[..], [(_, ChainError::NotAdmitted(refused))] if refused.code() == code),
                "{:?}",
                report.rejected
            );
        }
        // The recovered person writes (the default chain fetched from a peer that has it),
        // and can recover again with the next code.
        exchange(&mut [&mut owner, &mut laptop]).await;
        write_note(&mut owner, b"mine again", T0 + 11)
            .await
            .unwrap();
        let mut later = fresh_device(&blocks(&owner).await).await;
        later
            .recover(
                &next,
                RecoveryKey::generate(&mut OsRng).public(),
                T0 + 12,
                &mut OsRng,
            )
            .await
            .unwrap();
        assert!(later.is_current_device());
        assert!(later.state().device(owner.device().did()).is_none());
    });
}

/// A recovery outranks every device: the stolen phone removes the laptop concurrently with
/// a recovery that removes only the phone, and, whatever the order, the laptop stays, the
/// phone goes and its removal of the laptop is dropped.
#[test]
fn a_recovery_outranks_a_concurrent_removal_by_a_device() {
    block_on(async {
        let (laptop, mut phone, recovery) = person_with_recovery().await;
        let base = blocks(&phone).await;
        phone
            .remove(laptop.device().did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        let chain = laptop.chain().id();
        let new_device = DeviceKeys::generate(&mut OsRng);
        let recover = recovery_op(
            chain,
            &recovery,
            &new_device,
            vec![phone.device().did().to_owned()],
            &RecoveryKey::generate(&mut OsRng),
            laptop.chain().leaves().to_vec(),
            base.last().unwrap().height() + 1,
        );
        let mut extra = beyond(&phone, &base).await;
        extra.push(recover);
        let state = in_every_order(&base, &extra).await;
        assert!(
            state.device(laptop.device().did()).is_some(),
            "the laptop stays"
        );
        assert!(state.device(new_device.did()).is_some());
        assert!(state.device(phone.device().did()).is_none());
        assert!(state
            .rejected()
            .values()
            .any(|r| matches!(r, Rejection::RevokedConcurrently { .. })));
    });
}

/// The documented cost of a spent recovery key that leaks (a code thrown away after use):
/// used on parents from before the recovery that spent it, it makes two recoveries by one
/// key, which no replica can tell apart, so neither enrols its device or names its next key.
/// The attacker does not get in; the person is left without devices or a recovery key.
#[test]
fn a_spent_recovery_key_used_on_old_parents_is_an_equivocation() {
    block_on(async {
        let (laptop, phone, recovery) = person_with_recovery().await;
        let base = blocks(&laptop).await;
        let mut owner = fresh_device(&base).await;
        owner
            .recover(
                &recovery,
                RecoveryKey::generate(&mut OsRng).public(),
                T0 + 10,
                &mut OsRng,
            )
            .await
            .unwrap();
        let attacker = DeviceKeys::generate(&mut OsRng);
        let backdated = recovery_op(
            laptop.chain().id(),
            &recovery,
            &attacker,
            vec![],
            &RecoveryKey::generate(&mut OsRng),
            laptop.chain().leaves().to_vec(),
            base.last().unwrap().height() + 1,
        );
        let mut extra = beyond(&owner, &base).await;
        extra.push(backdated);
        let state = in_every_order(&base, &extra).await;
        for device in [
            laptop.device().did(),
            phone.device().did(),
            owner.device().did(),
            attacker.did(),
        ] {
            assert!(state.device(device).is_none(), "{device}");
        }
        assert_eq!(state.recovery_key(), None);
    });
}

/// Only a person has a recovery key: a group founded with one founds nothing.
#[test]
fn a_group_has_no_recovery_key() {
    block_on(async {
        let ada = new_person("Ada").await;
        let made = Identity::create(
            MemoryStore::new(),
            keys_of(&ada),
            Founding {
                recovery: Some(RecoveryKey::generate(&mut OsRng).public()),
                ..founding(Kind::Group, "Team", Some(ada.as_member()))
            },
            T0,
            &mut OsRng,
        )
        .await;
        assert!(made.is_err());
        let _ = genesis;
    });
}

/// One step of a random history: `device` writes `op` with its newest key (on its own last
/// block and what `seen` picks), or with its first key (`stale`, as a thief holding a
/// leaked copy would, on whatever `seen` picks). Op 3 is a recovery of `target`, signed by
/// the newest recovery key or, `stale`, by the first (a spent code that leaked).
#[derive(Debug, Clone)]
struct Step {
    device: usize,
    stale: bool,
    op: u8,
    target: usize,
    seen: u64,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0..3usize, any::<bool>(), 0..4u8, 0..3usize, any::<u64>()).prop_map(
            |(device, stale, op, target, seen)| Step {
                device,
                stale,
                op,
                target,
                seen,
            },
        ),
        1..9,
    )
}

/// Every ancestor of `block` in `all`.
fn past(all: &HashMap<BlockId, Block>, block: &BlockId) -> HashSet<BlockId> {
    let mut seen = HashSet::new();
    let mut stack: Vec<BlockId> = all[block].parents().to_vec();
    while let Some(id) = stack.pop() {
        if seen.insert(id) {
            stack.extend_from_slice(all[&id].parents());
        }
    }
    seen
}

#[test]
fn random_histories_keep_removed_and_rotated_out_keys_out() {
    let (mut laptop, mut phone, recovery) = block_on(person_with_recovery());
    let mut tablet = block_on(add_device(&mut laptop, T0));
    block_on(exchange(&mut [&mut laptop, &mut phone, &mut tablet]));
    let base = block_on(blocks(&laptop));
    let chain = laptop.chain().id();
    let devices: Vec<String> = [&laptop, &phone, &tablet]
        .iter()
        .map(|d| d.device().did().to_owned())
        .collect();
    let first_keys: Vec<DeviceKeys> = [&laptop, &phone, &tablet]
        .iter()
        .map(|d| keys_of(d))
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: 128,
        ..Config::default()
    });
    runner
        .run(&steps(), |steps| {
            block_on(async {
                check_history(&base, chain, &devices, &first_keys, &recovery, &steps).await;
            });
            Ok(())
        })
        .unwrap();
}

/// Writes the steps, keeps what the replica admits, then checks invariants 1–3 (and that a
/// recovery keeps what it removes out) on the resulting state, and that two other arrival
/// orders give the same state.
async fn check_history(
    base: &[Block],
    chain: BlockId,
    devices: &[String],
    first_keys: &[DeviceKeys],
    first_recovery: &RecoveryKey,
    steps: &[Step],
) {
    let mut recovery_keys = vec![RecoveryKey::from_code(&first_recovery.to_code()).unwrap()];
    let mut replica = replay(base, &[]).await;
    // The block that enrolled each device: a removal names a device it knows of.
    let since: Vec<BlockId> = devices
        .iter()
        .map(|d| replica.state().member(d).unwrap().since)
        .collect();
    let mut keys: Vec<Vec<DeviceKeys>> = first_keys
        .iter()
        .map(|k| vec![DeviceKeys::from_secret_bytes(&k.to_secret_bytes()).unwrap()])
        .collect();
    let mut all: HashMap<BlockId, Block> = base.iter().map(|b| (b.id(), b.clone())).collect();
    let mut order: Vec<BlockId> = base.iter().map(Block::id).collect();
    let mut written = Vec::new();
    let mut last_own: Vec<Option<BlockId>> = first_keys
        .iter()
        .map(|k| {
            base.iter()
                .rev()
                .find(|b| *b.author().key_bytes() == ed(k))
                .map(Block::id)
        })
        .collect();
    for step in steps {
        // Parents: the leaves of the ancestry of a pseudo-random pick of known blocks — and,
        // for a device writing with its newest key, of its own last block: an honest device
        // never forks its own history (a thief's copy of a key does, as it likes).
        let mut pick: HashSet<BlockId> = HashSet::new();
        if let (false, Some(own)) = (step.stale, last_own[step.device]) {
            pick.insert(own);
            pick.extend(past(&all, &own));
        }
        for (i, id) in order.iter().enumerate() {
            if i == 0 || (step.seen >> (i % 64)) & 1 == 1 {
                pick.insert(*id);
                pick.extend(past(&all, id));
            }
        }
        let inner: HashSet<BlockId> = pick
            .iter()
            .flat_map(|id| all[id].parents().iter().copied())
            .collect();
        let parents: Vec<BlockId> = pick
            .iter()
            .filter(|id| !inner.contains(id))
            .copied()
            .collect();
        let height = parents.iter().map(|p| all[p].height()).max().unwrap_or(0) + 1;
        let history = &keys[step.device];
        let key = if step.stale {
            &history[0]
        } else {
            history.last().unwrap()
        };
        let mut next_recovery = None;
        let (block, fresh) = match step.op {
            0 => (
                sign(
                    chain,
                    key,
                    parents,
                    height,
                    Op::Remove {
                        member: devices[step.target].clone(),
                    },
                ),
                None,
            ),
            1 => {
                let next = key.rotated(&mut OsRng);
                (rotate(chain, key, &next, parents, height), Some(next))
            }
            2 => (
                sign(
                    chain,
                    key,
                    parents,
                    height,
                    Op::Relays {
                        relays: vec![format!("/dns4/r{}.example/tcp/443/wss", order.len())],
                    },
                ),
                None,
            ),
            _ => {
                let signer = if step.stale {
                    &recovery_keys[0]
                } else {
                    recovery_keys.last().unwrap()
                };
                let next = RecoveryKey::generate(&mut OsRng);
                let block = recovery_op(
                    chain,
                    signer,
                    &DeviceKeys::generate(&mut OsRng),
                    vec![devices[step.target].clone()],
                    &next,
                    parents,
                    height,
                );
                next_recovery = Some(next);
                (block, None)
            }
        };
        let report = replica.insert([block.bytes()]).await.unwrap();
        if report.accepted.len() == 1 {
            if let Some(next) = fresh {
                keys[step.device].push(next);
            }
            if let Some(next) = next_recovery {
                recovery_keys.push(next);
            }
            if !step.stale && step.op != 3 {
                last_own[step.device] = Some(block.id());
            }
            all.insert(block.id(), block.clone());
            order.push(block.id());
            written.push((step.clone(), block));
        }
    }
    let state = replica.state().clone();
    // What the device kept up block by block (on top, or on a side branch where the result
    // is known without a fold) is what a fold of the whole chain gives.
    let fresh = IdentityState::resolve(&blocks(&replica).await).unwrap();
    assert_eq!(view(&fresh), view(&state), "{steps:?}");
    let key_of = |block: &Block| *block.author().key_bytes();
    let device_keys: Vec<HashSet<[u8; 32]>> =
        keys.iter().map(|h| h.iter().map(ed).collect()).collect();
    let accepted = |block: &Block| state.rejection(&block.id()).is_none();
    for (step, revocation) in &written {
        let author_current = state.signer(&key_of(revocation)).is_some();
        let past_of = past(&all, &revocation.id());
        match step.op {
            // 1. A removal (of a device it knows of) whose author is still current keeps its
            // target out, and 2. no block by the target outside the removal's past has any
            // effect.
            0 if author_current
                && step.target != step.device
                && (since[step.target] == base[0].id()
                    || past_of.contains(&since[step.target])) =>
            {
                assert!(state.device(&devices[step.target]).is_none(), "{steps:?}");
                for (_, other) in &written {
                    if device_keys[step.target].contains(&key_of(other)) && accepted(other) {
                        assert!(past_of.contains(&other.id()), "{steps:?}");
                    }
                }
            }
            // 2. A key rotated out by a rotation that took effect writes nothing the
            // rotation did not see — except a revocation that takes the device down with it
            // (a removal, or a second rotation: an equivocation), since a leaked copy cannot
            // be told from the device itself.
            1 if accepted(revocation) => {
                let device_out = state.device(&devices[step.device]).is_none();
                for (other_step, other) in &written {
                    if key_of(other) == key_of(revocation)
                        && other.id() != revocation.id()
                        && accepted(other)
                        && !past_of.contains(&other.id())
                    {
                        assert!(device_out && other_step.op != 2, "{steps:?}");
                    }
                }
            }
            // A recovery that took effect (of a device it knows of) keeps the device it
            // removes out, and nothing that device wrote outside the recovery's past has any
            // effect. (One whose key was also used on other parents, an equivocation, leaves
            // the person no recovery key.)
            3 if accepted(revocation)
                && state.recovery_key().is_some()
                && past_of.contains(&since[step.target]) =>
            {
                assert!(state.device(&devices[step.target]).is_none(), "{steps:?}");
                for (_, other) in &written {
                    if device_keys[step.target].contains(&key_of(other)) && accepted(other) {
                        assert!(past_of.contains(&other.id()), "{steps:?}");
                    }
                }
            }
            _ => {}
        }
    }
    // 3. Two concurrent rotations of one key: the device and both successors are out.
    let rotations: Vec<&Block> = written
        .iter()
        .filter(|(s, _)| s.op == 1)
        .map(|(_, b)| b)
        .collect();
    for (i, a) in rotations.iter().enumerate() {
        for b in &rotations[i + 1..] {
            let concurrent =
                !past(&all, &a.id()).contains(&b.id()) && !past(&all, &b.id()).contains(&a.id());
            if key_of(a) == key_of(b) && concurrent {
                let device = written
                    .iter()
                    .find(|(_, x)| x.id() == a.id())
                    .unwrap()
                    .0
                    .device;
                assert!(state.device(&devices[device]).is_none(), "{steps:?}");
                for key in &device_keys[device] {
                    assert!(state.signer(key).is_none(), "{steps:?}");
                }
            }
        }
    }
    // Any arrival order gives the same state.
    let extra: Vec<Block> = written.iter().map(|(_, b)| b.clone()).collect();
    let mut reversed = extra.clone();
    reversed.reverse();
    for order in [extra, reversed] {
        let other = replay(base, &order).await;
        assert_eq!(view(other.state()), view(&state), "{steps:?}");
    }
}
