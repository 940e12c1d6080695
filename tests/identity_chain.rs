//! Identities over their chains, several devices and people in one process: each device has
//! its own replica (own store) and blocks travel between replicas only by explicit
//! exchange, so concurrency is real: replicas that have not exchanged write independently.
//! Every scenario asserts what the devices would show: members, documents, readable
//! messages, and blocks every peer refuses.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use endra::identity::{
    BoundChain, DeviceKeys, Founding, Identity, IdentityError, IdentityState, Invitation, KdfFloor,
    KdfParams, KeystoreError, Kind, MemberEntry, Op, Policy, Rejection, Role, IDENTITY_TOPIC,
};
use endra::store::{BlockStore, MemoryStore};
use endra::walytis::sync::{Input, Message, Output, Peer, Sync};
use endra::walytis::{
    Anchored, Block, BlockDraft, BlockId, BoundRefusal, Chain, ChainError, Rules, RulesError,
    BOUND_TOPIC,
};
use futures_executor::block_on;
use rand_core::OsRng;

mod common;

use common::identity::{
    add_device, blocks, exchange, genesis, new_person, person, read_notes, with_default_chain,
    write_note, Id, HOUR, T0,
};

/// Where a block written now would go: the current leaves and the height above them.
async fn tip(identity: &Id) -> (Vec<BlockId>, u64) {
    let height = blocks(identity).await.last().unwrap().height() + 1;
    (identity.chain().leaves().to_vec(), height)
}

/// The same DAG, the same derived state on every replica.
async fn assert_converged(replicas: &[&Id]) {
    let first = replicas[0];
    // The state kept up incrementally by local writes equals a fresh fold.
    for replica in replicas {
        let fresh = IdentityState::resolve(&blocks(replica).await).unwrap();
        assert_eq!(endra::identity::document(&fresh), replica.document());
        assert_eq!(fresh.rejected(), replica.state().rejected());
    }
    let order: Vec<BlockId> = blocks(first).await.iter().map(Block::id).collect();
    for replica in &replicas[1..] {
        let other: Vec<BlockId> = blocks(replica).await.iter().map(Block::id).collect();
        assert_eq!(order, other, "block order differs");
        assert_eq!(first.document(), replica.document(), "documents differ");
        assert_eq!(first.state().rejected(), replica.state().rejected());
        assert_eq!(
            first.state().current_epoch().map(|e| e.id),
            replica.state().current_epoch().map(|e| e.id)
        );
    }
}

/// Signs a raw block with `key` on `parents`, bypassing every local check, as an attacker
/// would.
fn forge(identity: &Id, key: &DeviceKeys, parents: Vec<BlockId>, height: u64) -> Block {
    BlockDraft {
        chain: Some(identity.chain().id()),
        parents,
        height,
        time: T0,
        // An op (its relays pointed at an attacker's), so that only who signed it can
        // refuse it: data blocks are refused on identity chains whoever writes them.
        topics: vec![IDENTITY_TOPIC.into()],
        body: Op::Relays {
            relays: vec!["/dns4/attacker.example/tcp/443/wss".into()],
        }
        .encode(),
    }
    .sign(key.signing().as_dalek())
    .unwrap()
}

/// [`forge`]s a block and stores it: one whose own history still lists its key (written
/// "into the past"), so every replica admits it and only the fold can drop it.
async fn forge_after(
    identity: &mut Id,
    key: &DeviceKeys,
    parents: Vec<BlockId>,
    height: u64,
) -> BlockId {
    let block = forge(identity, key, parents, height);
    let report = identity.insert([block.bytes()]).await.unwrap();
    assert_eq!(
        report.accepted.len(),
        1,
        "admitted by its own history, so stored"
    );
    block.id()
}

/// [`forge`]s a block on top of everything the replica holds.
async fn forge_on_top(identity: &Id, key: &DeviceKeys) -> Block {
    let (leaves, height) = tip(identity).await;
    forge(identity, key, leaves, height)
}

/// Offers `block` to every replica; each refuses to store it, and the block's children are
/// refused with it, in the same batch or later (nothing can be built on a refused block).
async fn assert_refused_everywhere(replicas: &mut [&mut Id], block: &Block, key: &DeviceKeys) {
    let child = forge(replicas[0], key, vec![block.id()], block.height() + 1);
    let later = forge(replicas[0], key, vec![child.id()], block.height() + 2);
    for replica in replicas.iter_mut() {
        let len = replica.chain().len();
        let mut report = replica
            .insert([block.bytes(), child.bytes()])
            .await
            .unwrap();
        let again = replica.insert([later.bytes()]).await.unwrap();
        assert!(again.accepted.is_empty() && again.waiting.is_empty());
        report.rejected.extend(again.rejected);
        assert!(report.accepted.is_empty() && report.waiting.is_empty());
        assert_eq!(report.rejected.len(), 3, "{:?}", report.rejected);
        assert!(report
            .rejected
            .iter()
            .all(|(_, e)| matches!(e, ChainError::NotAdmitted(_))));
        assert_eq!(replica.chain().len(), len, "nothing stored");
        assert!(replica.chain().block(&block.id()).await.unwrap().is_none());
        assert!(
            replica.state().rejection(&block.id()).is_none(),
            "never folded"
        );
    }
}

#[test]
fn a_person_adds_and_removes_devices() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        write_note(&mut laptop, b"before the phone", T0)
            .await
            .unwrap();
        let mut phone = add_device(&mut laptop, T0 + 10).await;
        let mut tablet = add_device(&mut phone, T0 + 20).await;
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        assert_converged(&[&laptop, &phone, &tablet]).await;

        // Three devices, one DID, the same document listing all three.
        let doc = tablet.document();
        assert_eq!(doc["id"], laptop.did());
        let controllers: BTreeSet<String> = doc["controller"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = [&laptop, &phone, &tablet]
            .iter()
            .map(|d| d.device().did().to_owned())
            .collect();
        assert_eq!(controllers, expected);
        assert_eq!(doc["authentication"].as_array().unwrap().len(), 3);
        assert_eq!(doc["keyAgreement"].as_array().unwrap().len(), 3);
        // The new devices read what was written before they joined (a person's history).
        assert_eq!(
            read_notes(&tablet).await,
            vec![Ok(b"before the phone".to_vec())]
        );

        // The phone removes the tablet; a new epoch follows.
        let tablet_did = tablet.device().did().to_owned();
        phone
            .remove(&tablet_did, T0 + 30, &mut OsRng)
            .await
            .unwrap();
        write_note(&mut phone, b"after the tablet left", T0 + 31)
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        assert!(!tablet.is_current_device());
        assert_eq!(laptop.state().members().len(), 2);
        let tablet_view = read_notes(&tablet).await;
        assert_eq!(
            tablet_view[0],
            Ok(b"before the phone".to_vec()),
            "history stays"
        );
        assert!(
            tablet_view[1].is_err(),
            "the removed tablet cannot read new data"
        );
        assert_eq!(
            read_notes(&laptop).await[1],
            Ok(b"after the tablet left".to_vec())
        );

        // The tablet can no longer write: locally refused, even through the raw chain, and
        // a forced block is refused by every peer, the tablet's own replica included.
        assert!(matches!(
            write_note(&mut tablet, b"x", T0 + 40).await,
            Err(IdentityError::NotAMember)
        ));
        let key = DeviceKeys::from_secret_bytes(&tablet.device().to_secret_bytes()).unwrap();
        let raw = tablet
            .chain_mut()
            .append(
                key.signing().as_dalek(),
                T0 + 40,
                vec![(
                    Op::Relays { relays: vec![] }.encode(),
                    vec![IDENTITY_TOPIC.into()],
                )],
            )
            .await;
        assert!(matches!(raw, Err(ChainError::NotAdmitted(_))), "{raw:?}");
        let forged = forge_on_top(&tablet, &key).await;
        assert_refused_everywhere(&mut [&mut laptop, &mut phone, &mut tablet], &forged, &key).await;
        for replica in [&laptop, &phone, &tablet] {
            assert_eq!(read_notes(replica).await.len(), 2);
        }
        // Re-adding the same device keys is refused: a removed device stays removed.
        assert!(laptop.state().is_removed_device(&tablet_did));
        assert_converged(&[&laptop, &phone, &tablet]).await;
    });
}

#[test]
fn a_removed_device_cannot_write_into_the_past() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0).await;
        // The approval that let the phone in: a parent below the removal's height.
        let joined = laptop
            .state()
            .changes()
            .iter()
            .find(|c| matches!(c.change, endra::identity::Change::Joined { .. }))
            .unwrap()
            .block;
        let joined_height = laptop
            .chain()
            .block(&joined)
            .await
            .unwrap()
            .unwrap()
            .block
            .height();
        laptop
            .remove(phone.device().did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone]).await;
        // The phone signs a block whose parents predate its removal: it sorts before the
        // removal, so a check "was the author a device at this point of the order" passes.
        let key = DeviceKeys::from_secret_bytes(&phone.device().to_secret_bytes()).unwrap();
        let backdated = forge_after(&mut phone, &key, vec![joined], joined_height + 1).await;
        exchange(&mut [&mut laptop, &mut phone]).await;
        for replica in [&laptop, &phone] {
            assert!(
                matches!(
                    replica.state().rejection(&backdated),
                    Some(Rejection::RevokedConcurrently { .. })
                ),
                "{:?}",
                replica.state().rejection(&backdated)
            );
        }
        assert_converged(&[&laptop, &phone]).await;
    });
}

/// A person identity with two devices, and a group member entry for it.
async fn two_device_person(name: &str) -> (Id, Id) {
    let mut first = new_person(name).await;
    let second = add_device(&mut first, T0).await;
    (first, second)
}

/// Group replicas for every device of every person, each in the store of that device's
/// person replica (as one browser holds all of a device's chains); person 0 founds, the
/// others join, each naming where it stands in its own chain.
async fn group_of(people: &[(Id, Id)]) -> Vec<Id> {
    let (p0a, _) = &people[0];
    let (founder, anchor) = p0a.as_member();
    let admin = Identity::create(
        p0a.chain().store().clone(),
        DeviceKeys::from_secret_bytes(&p0a.device().to_secret_bytes()).unwrap(),
        Founding {
            kind: Kind::Group,
            name: "crew".into(),
            relays: Vec::new(),
            founder: Some(founder),
            recovery: None,
            anchor: Some(anchor),
        },
        T0,
        &mut OsRng,
    )
    .await
    .unwrap();
    let admin = with_default_chain(admin).await;
    let genesis = genesis(&admin).await;
    let mut replicas = vec![admin];
    for (i, (a, b)) in people.iter().enumerate() {
        for (j, device) in [a, b].into_iter().enumerate() {
            if i == 0 && j == 0 {
                continue;
            }
            replicas.push(
                Identity::replica(
                    device.chain().store().clone(),
                    genesis.clone(),
                    DeviceKeys::from_secret_bytes(&device.device().to_secret_bytes()).unwrap(),
                )
                .await
                .unwrap(),
            );
        }
    }
    // Persons 1.. join: the admin invites, their first device requests with both devices.
    for (i, (a, b)) in people.iter().enumerate().skip(1) {
        let invitation = replicas[0]
            .invite(Role::Member, T0 + HOUR, &mut OsRng)
            .unwrap();
        let _ = b;
        let joiner = 2 * i;
        let request = replicas[joiner]
            .request_join(invitation, Some(a.as_member()), T0 + 1)
            .await
            .unwrap();
        let mut all: Vec<&mut Id> = replicas.iter_mut().collect();
        exchange(&mut all).await;
        replicas[0]
            .approve(request, T0 + 2, &mut OsRng)
            .await
            .unwrap();
    }
    let mut all: Vec<&mut Id> = replicas.iter_mut().collect();
    exchange(&mut all).await;
    replicas
}

#[test]
fn a_group_of_five_people_with_two_devices_each() {
    block_on(async {
        let mut people = Vec::new();
        for name in ["Ada", "Bo", "Cy", "Di", "Ed"] {
            people.push(two_device_person(name).await);
        }
        let mut group = group_of(&people).await;
        assert_eq!(group.len(), 10);
        for replica in &group {
            assert_eq!(replica.state().members().len(), 5);
            assert!(replica.is_current_device());
        }
        // Every device writes; every device reads everything.
        for (i, replica) in group.iter_mut().enumerate() {
            write_note(
                replica,
                format!("hello from device {i}").as_bytes(),
                T0 + 10,
            )
            .await
            .unwrap();
        }
        let mut all: Vec<&mut Id> = group.iter_mut().collect();
        exchange(&mut all).await;
        for replica in &group {
            let texts = read_notes(replica).await;
            assert_eq!(texts.len(), 10);
            assert!(texts.iter().all(Result::is_ok), "{texts:?}");
        }
        let views: Vec<&Id> = group.iter().collect();
        assert_converged(&views).await;

        // Ed (devices 8 and 9) is removed by the admin.
        let ed = people[4].0.did();
        group[0].remove(&ed, T0 + 20, &mut OsRng).await.unwrap();
        let mut all: Vec<&mut Id> = group.iter_mut().collect();
        exchange(&mut all).await;
        write_note(&mut group[1], b"Ed cannot read this", T0 + 22)
            .await
            .unwrap();
        let key = DeviceKeys::from_secret_bytes(&group[8].device().to_secret_bytes()).unwrap();
        let forged = forge_on_top(&group[8], &key).await;
        let mut all: Vec<&mut Id> = group.iter_mut().collect();
        exchange(&mut all).await;
        assert_refused_everywhere(&mut all, &forged, &key).await;
        for (i, replica) in group.iter().enumerate() {
            assert_eq!(replica.state().members().len(), 4);
            let last = read_notes(replica).await.pop().unwrap();
            if i >= 8 {
                assert!(last.is_err(), "removed device {i} read new data");
            } else {
                assert_eq!(last, Ok(b"Ed cannot read this".to_vec()));
            }
        }
        let views: Vec<&Id> = group.iter().collect();
        assert_converged(&views).await;
    });
}

#[test]
fn concurrent_membership_changes_converge() {
    block_on(async {
        let mut people = Vec::new();
        for name in ["Ada", "Bo", "Cy", "Di"] {
            people.push(two_device_person(name).await);
        }
        let mut group = group_of(&people).await;
        // Ada is the admin; Bo, Cy and Di are members acting concurrently with her.
        let cy = people[2].0.did();
        // Without exchanging: Ada removes Cy; Cy writes; Di leaves; Bo rekeys.
        group[0].remove(&cy, T0 + 30, &mut OsRng).await.unwrap();
        write_note(&mut group[4], b"Cy, concurrently", T0 + 30)
            .await
            .unwrap();
        group[4].rekey(T0 + 30, &mut OsRng).await.unwrap();
        let cy_write = *group[4].chain().leaves().first().unwrap();
        group[6].leave(T0 + 30).await.unwrap();
        group[2].rekey(T0 + 30, &mut OsRng).await.unwrap();
        let mut all: Vec<&mut Id> = group.iter_mut().collect();
        exchange(&mut all).await;
        let members: BTreeSet<String> = group[0].state().members().keys().cloned().collect();
        assert_eq!(
            members,
            [people[0].0.did(), people[1].0.did()].into_iter().collect()
        );
        for replica in &group {
            let theirs: BTreeSet<String> = replica.state().members().keys().cloned().collect();
            assert_eq!(theirs, members);
            // Cy's epoch was written concurrently with Cy's removal: dropped everywhere
            // (`Revoked` if it sorts after the removal, `RevokedConcurrently` if before).
            assert!(matches!(
                replica.state().rejection(&cy_write),
                Some(Rejection::RevokedConcurrently { .. } | Rejection::Revoked { .. })
            ));
            // And Cy's concurrent note, on the group's default chain, is shown by nobody.
            let notes = read_notes(replica).await;
            assert!(
                !notes.contains(&Ok(b"Cy, concurrently".to_vec())),
                "{notes:?}"
            );
        }
        let views: Vec<&Id> = group.iter().collect();
        assert_converged(&views).await;
        // Bo's concurrent epoch reached Cy and Di, and Ada's, made with the removal, reached
        // Di, who left concurrently: their copies for them are in the chain, so neither is
        // written under again, and the next writer makes a new epoch.
        assert!(group[0].state().current_epoch().is_none());
        assert!(group[0].state().needs_rekey());
        assert!(group[0]
            .rekey_if_due(T0 + 31, None, &mut OsRng)
            .await
            .unwrap());
        let epoch = group[0].state().current_epoch().unwrap().clone();
        assert!(epoch
            .addressed()
            .all(|d| group[0].state().device(d).is_some()));
        let mut all: Vec<&mut Id> = group.iter_mut().collect();
        exchange(&mut all).await;
        let views: Vec<&Id> = group.iter().collect();
        assert_converged(&views).await;
    });
}

#[test]
fn mutual_removal_by_two_admins_removes_both() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0).await;
        let mut tablet = add_device(&mut laptop, T0).await;
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        let (phone_did, laptop_did) = (
            phone.device().did().to_owned(),
            laptop.device().did().to_owned(),
        );
        laptop.remove(&phone_did, T0 + 5, &mut OsRng).await.unwrap();
        phone.remove(&laptop_did, T0 + 5, &mut OsRng).await.unwrap();
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        assert_converged(&[&laptop, &phone, &tablet]).await;
        // Neither can be told from a removed device backdating its retaliation: both go
        // (see `tests/identity_revocation.rs`); the third device carries on.
        let left: Vec<&String> = tablet.state().members().keys().collect();
        assert_eq!(left, vec![tablet.device().did()]);
        assert!(tablet.is_current_device());
        assert!(!laptop.is_current_device() && !phone.is_current_device());
        tablet.rekey_if_due(T0 + 6, None, &mut OsRng).await.unwrap();
        write_note(&mut tablet, b"still here", T0 + 6)
            .await
            .unwrap();
        assert!(read_notes(&tablet)
            .await
            .contains(&Ok(b"still here".to_vec())));
    });
}

#[test]
fn forged_replayed_and_expired_invitations_are_refused() {
    block_on(async {
        let mut admin = new_person("Ada").await;
        let genesis = genesis(&admin).await;
        let new_replica = |g: Block| async move {
            Identity::replica(MemoryStore::new(), g, DeviceKeys::generate(&mut OsRng))
                .await
                .unwrap()
        };

        // Forged: signed by a key that is not a device of the identity.
        let outsider = DeviceKeys::generate(&mut OsRng);
        let forged = Invitation::new(
            admin.chain().id(),
            [7; 16],
            T0 + HOUR,
            admin.device().did().to_owned(),
            Role::Admin,
            Vec::new(),
            outsider.signing(),
        );
        let mut mallory = new_replica(genesis.clone()).await;
        assert!(matches!(
            mallory.request_join(forged.clone(), None, T0).await,
            Err(IdentityError::Rejected(Rejection::ForgedInvitation))
        ));
        // Forced into a block anyway, the request is refused by every replica: a forged
        // join never reaches the chain, so no admin ever sees it.
        let op = Op::Request {
            invitation: forged,
            member: MemberEntry {
                did: mallory.device().did().to_owned(),
                devices: vec![mallory.device().entry()],
            },
            anchor: None,
        };
        let forced = BlockDraft {
            chain: Some(admin.chain().id()),
            parents: admin.chain().leaves().to_vec(),
            height: tip(&admin).await.1,
            time: T0,
            topics: vec![IDENTITY_TOPIC.to_owned()],
            body: op.encode(),
        }
        .sign(mallory.device().signing().as_dalek())
        .unwrap();
        let report = admin.insert([forced.bytes()]).await.unwrap();
        assert!(matches!(
            report.rejected.as_slice(),
            [(_, ChainError::NotAdmitted(why))]
                if why.downcast_ref::<Rejection>() == Some(&Rejection::ForgedInvitation)
                    && why.code() == "INVITATION_FORGED"
        ));
        assert_eq!(admin.state().pending_requests().count(), 0);
        // A tampered invitation (role or expiry changed after signing) is forged too.
        let mut tampered = admin.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
        tampered.expires += 10 * HOUR;
        let mut eve = new_replica(genesis.clone()).await;
        assert!(matches!(
            eve.request_join(tampered, None, T0).await,
            Err(IdentityError::Rejected(Rejection::ForgedInvitation))
        ));

        // Replayed: one invitation, two requests; the second approval is refused.
        let invitation = admin.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
        let mut first = new_replica(genesis.clone()).await;
        let mut second = new_replica(genesis.clone()).await;
        let r1 = first
            .request_join(invitation.clone(), None, T0)
            .await
            .unwrap();
        let r2 = second.request_join(invitation, None, T0).await.unwrap();
        exchange(&mut [&mut admin, &mut first, &mut second]).await;
        admin.approve(r1, T0 + 1, &mut OsRng).await.unwrap();
        assert!(matches!(
            admin.approve(r2, T0 + 1, &mut OsRng).await,
            Err(IdentityError::Rejected(Rejection::InvitationReplayed))
        ));

        // Expired: the joiner refuses it locally and an approval after expiry is refused.
        let invitation = admin.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
        let mut late = new_replica(genesis.clone()).await;
        assert!(matches!(
            late.request_join(invitation.clone(), None, T0 + 2 * HOUR)
                .await,
            Err(IdentityError::InvalidInvitation(_))
        ));
        let request = late.request_join(invitation, None, T0).await.unwrap();
        exchange(&mut [&mut admin, &mut late]).await;
        assert!(matches!(
            admin.approve(request, T0 + 2 * HOUR, &mut OsRng).await,
            Err(IdentityError::Rejected(Rejection::InvitationExpired))
        ));

        // An approval forced into the chain anyway (bypassing the local check) is rejected
        // by every peer, and the would-be device stays out.
        let op = Op::Approve { request };
        let key =
            ed25519_dalek::SigningKey::from_bytes(&admin.device().signing().as_dalek().to_bytes());
        let entries = admin
            .chain_mut()
            .append(
                &key,
                T0 + 2 * HOUR,
                vec![(op.encode(), vec![IDENTITY_TOPIC.to_owned()])],
            )
            .await
            .unwrap();
        let forced = entries[0].block.id();
        admin.refresh().await.unwrap();
        exchange(&mut [&mut admin, &mut late, &mut first]).await;
        for replica in [&admin, &late, &first] {
            assert_eq!(
                replica.state().rejection(&forced),
                Some(&Rejection::InvitationExpired)
            );
        }
        assert!(!late.is_current_device());
        assert!(first.is_current_device());
        assert!(
            !mallory.is_current_device() && !eve.is_current_device() && !second.is_current_device()
        );
        assert_eq!(admin.state().members().len(), 2);
    });
}

#[test]
fn a_rotated_key_still_verifies_history_and_is_refused_afterwards() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0).await;
        write_note(&mut phone, b"old key", T0 + 1).await.unwrap();
        // An op signed by the old key before the rotation: it stays in the history.
        phone.rekey(T0 + 1, &mut OsRng).await.unwrap();
        let before = *phone.chain().leaves().first().unwrap();
        let old_keys = DeviceKeys::from_secret_bytes(&phone.device().to_secret_bytes()).unwrap();
        let old_doc = phone.document();
        let (before_rotation, height_before) = tip(&phone).await;
        phone.rotate(T0 + 2, &mut OsRng).await.unwrap();
        write_note(&mut phone, b"new key", T0 + 3).await.unwrap();
        phone.rekey(T0 + 3, &mut OsRng).await.unwrap();
        let after = *phone.chain().leaves().first().unwrap();
        exchange(&mut [&mut laptop, &mut phone]).await;
        assert_ne!(
            old_doc,
            laptop.document(),
            "the document lists the new keys"
        );
        assert!(
            laptop.state().device(phone.device().did()).is_some(),
            "same device DID"
        );
        for replica in [&laptop, &phone] {
            assert!(
                replica.state().is_accepted(&before),
                "history before the rotation stays"
            );
            assert!(replica.state().is_accepted(&after));
        }
        // Both devices read both, the rotated one included (its old epochs were re-sealed).
        for replica in [&laptop, &phone] {
            assert_eq!(
                read_notes(replica).await,
                vec![Ok(b"old key".to_vec()), Ok(b"new key".to_vec())]
            );
        }
        // Signatures by the rotated-out key: after the rotation, and backdated before it.
        let late = forge_on_top(&phone, &old_keys).await;
        assert_refused_everywhere(&mut [&mut laptop, &mut phone], &late, &old_keys).await;
        let backdated = forge_after(&mut phone, &old_keys, before_rotation, height_before).await;
        exchange(&mut [&mut laptop, &mut phone]).await;
        for replica in [&laptop, &phone] {
            // Same height as the rotation: `Revoked` if it sorts after, else concurrent.
            assert!(matches!(
                replica.state().rejection(&backdated),
                Some(Rejection::RevokedConcurrently { .. } | Rejection::Revoked { .. })
            ));
            assert!(replica.state().is_accepted(&before));
        }
        assert_converged(&[&laptop, &phone]).await;
    });
}

#[test]
fn keys_at_rest_hold_no_private_key_and_reopen_only_with_the_passphrase() {
    block_on(async {
        let store = MemoryStore::new();
        let device = DeviceKeys::generate(&mut OsRng);
        let secrets = device.to_secret_bytes();
        let sealed = device
            .seal("correct horse", KdfParams::INSECURE_TEST, &mut OsRng)
            .unwrap();
        // No 16-byte window of the secrets appears in what is stored.
        for window in secrets.windows(16) {
            assert!(!sealed.windows(16).any(|w| w == window));
        }
        assert!(matches!(
            DeviceKeys::open("wrong horse", &sealed, KdfFloor::NONE),
            Err(IdentityError::Keystore(KeystoreError::WrongPassphrase))
        ));
        let identity = Identity::create(store.clone(), device, person("Ada"), T0, &mut OsRng)
            .await
            .unwrap();
        let mut identity = with_default_chain(identity).await;
        write_note(&mut identity, b"kept", T0).await.unwrap();
        let chain = identity.chain().id();
        drop(identity);
        // "Reload": the store and the sealed keys are all that is left.
        let reopened = DeviceKeys::open("correct horse", &sealed, KdfFloor::NONE).unwrap();
        let identity = Identity::open(store, chain, reopened).await.unwrap();
        assert!(identity.is_current_device());
        assert_eq!(read_notes(&identity).await, vec![Ok(b"kept".to_vec())]);
    });
}

#[test]
fn malformed_ops_and_outsiders_change_nothing() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let before = laptop.document();
        let key =
            ed25519_dalek::SigningKey::from_bytes(&laptop.device().signing().as_dalek().to_bytes());
        // A device's malformed op is refused by the chain itself, before it is stored.
        let junk = laptop
            .chain_mut()
            .append(
                &key,
                T0,
                vec![(vec![0xff, 0x00], vec![IDENTITY_TOPIC.to_owned()])],
            )
            .await;
        assert!(
            matches!(&junk, Err(ChainError::NotAdmitted(why))
                if matches!(why.downcast_ref::<Rejection>(), Some(Rejection::Malformed(_)))),
            "{junk:?}"
        );
        // So is a block by a key the identity never listed, and a second genesis op.
        let outsider = DeviceKeys::generate(&mut OsRng);
        let stranger = forge_on_top(&laptop, &outsider).await;
        let mut replica = Identity::replica(
            MemoryStore::new(),
            genesis(&laptop).await,
            DeviceKeys::generate(&mut OsRng),
        )
        .await
        .unwrap();
        exchange(&mut [&mut laptop, &mut replica]).await;
        assert_refused_everywhere(&mut [&mut laptop, &mut replica], &stranger, &outsider).await;
        let genesis_op = genesis(&laptop).await.body().to_vec();
        let regenesis = laptop
            .chain_mut()
            .append(
                &key,
                T0,
                vec![(genesis_op, vec![IDENTITY_TOPIC.to_owned()])],
            )
            .await;
        assert!(matches!(regenesis, Err(ChainError::NotAdmitted(_))));
        laptop.refresh().await.unwrap();
        assert_eq!(laptop.state().block_count() as u64, laptop.chain().len());
        assert_eq!(laptop.document(), before);
        assert!(matches!(
            Invitation::from_code("endra-invite:0OIl"),
            Err(IdentityError::InvalidInvitation(_))
        ));
        assert!(IdentityState::resolve(&[]).is_err());
    });
}

/// Fail closed: a replica that does not know a chain's rule refuses the chain rather than
/// store it with no rule and misjudge its blocks.
#[test]
fn replicas_refuse_chains_whose_rule_they_do_not_know() {
    block_on(async {
        let laptop = new_person("Ada").await;
        let genesis = genesis(&laptop).await;
        // A replica that knows only Walytis's own kinds refuses an identity chain, storing
        // nothing.
        let store = MemoryStore::new();
        let refused = Chain::from_genesis(store.clone(), &Rules::walytis(), genesis.clone()).await;
        assert!(
            matches!(&refused, Err(ChainError::Rules(RulesError::Unclaimed(t))) if t == IDENTITY_TOPIC),
            "{refused:?}"
        );
        assert!(store.chain_state(&genesis.id()).await.unwrap().is_none());
        // Stored under the identity rules, it does not open without them either.
        Chain::from_genesis(store.clone(), &endra::identity::rules(), genesis.clone())
            .await
            .unwrap();
        assert!(matches!(
            Chain::open(store.clone(), &Rules::walytis(), genesis.id()).await,
            Err(ChainError::Rules(RulesError::Unclaimed(_)))
        ));
        // A newer version of the identity rule, a kind of chain of a layer this build lacks,
        // and the unversioned topic of earlier builds: all refused by today's rules.
        for topic in ["endra/identity/2", "endra/offchain/1", "endra/identity"] {
            let other = BlockDraft {
                chain: None,
                parents: vec![],
                height: 0,
                time: T0,
                topics: vec![topic.to_owned()],
                body: genesis.body().to_vec(),
            }
            .sign(laptop.device().signing().as_dalek())
            .unwrap();
            let store = MemoryStore::new();
            let refused =
                Chain::from_genesis(store.clone(), &endra::identity::rules(), other.clone()).await;
            assert!(
                matches!(&refused, Err(ChainError::Rules(RulesError::Unclaimed(t))) if t == topic),
                "{topic}: {refused:?}"
            );
            assert!(store.chain_state(&other.id()).await.unwrap().is_none());
        }
    });
}

#[test]
fn a_mailbox_replica_refuses_what_no_current_device_wrote() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let phone = add_device(&mut laptop, T0).await;
        let phone_key = DeviceKeys::from_secret_bytes(&phone.device().to_secret_bytes()).unwrap();
        laptop
            .remove(phone.device().did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        // A relay's mailbox holds a chain as a bare `Sync` over its store and knows nothing
        // of identities: the chain's genesis alone makes it apply the identity rule.
        let genesis = genesis(&laptop).await;
        let store = MemoryStore::new();
        let chain = Chain::from_genesis(store.clone(), &endra::identity::rules(), genesis.clone())
            .await
            .unwrap();
        assert!(chain.has_admission_rule());
        let mut mailbox = Sync::new(chain);
        const HONEST: Peer = 1;
        const EVIL: Peer = 2;
        // The honest history arrives pushed block by block, as gossip brings it.
        for block in &blocks(&laptop).await[1..] {
            let push = Message::Push {
                block: block.bytes().to_vec(),
            };
            let outputs = mailbox
                .handle(T0, Input::Received(HONEST, push))
                .await
                .unwrap();
            assert!(!outputs.contains(&Output::Disconnect(HONEST)));
        }
        assert_eq!(mailbox.chain().len(), laptop.chain().len());
        // The removed phone and an outsider push blocks on top: refused, and the pusher is
        // cut off.
        let outsider = DeviceKeys::generate(&mut OsRng);
        let mut outputs = Vec::new();
        for key in [&phone_key, &outsider, &phone_key] {
            let push = Message::Push {
                block: forge_on_top(&laptop, key).await.bytes().to_vec(),
            };
            outputs.extend(
                mailbox
                    .handle(T0, Input::Received(EVIL, push))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            mailbox.chain().len(),
            laptop.chain().len(),
            "nothing stored"
        );
        assert!(outputs.contains(&Output::Disconnect(EVIL)));
        // Reopened from its store (a restart), the mailbox still refuses them.
        let mut reopened = Chain::open(store, &endra::identity::rules(), genesis.id())
            .await
            .unwrap();
        let report = reopened
            .insert([forge_on_top(&laptop, &outsider).await.bytes()])
            .await
            .unwrap();
        assert!(matches!(
            report.rejected.as_slice(),
            [(_, ChainError::NotAdmitted(why))]
                if why.downcast_ref::<Rejection>() == Some(&Rejection::Unauthorised)
                    && why.code() == "UNAUTHORISED"
        ));
        // A replica filled from the mailbox holds exactly the honest chain.
        let mut fresh = Identity::replica(
            MemoryStore::new(),
            genesis,
            DeviceKeys::generate(&mut OsRng),
        )
        .await
        .unwrap();
        let held: Vec<Vec<u8>> = reopened
            .since(None, usize::MAX)
            .await
            .unwrap()
            .iter()
            .map(|e| e.block.bytes().to_vec())
            .collect();
        fresh.insert(held.iter()).await.unwrap();
        assert_converged(&[&laptop, &fresh]).await;
    });
}

#[test]
fn the_did_document_lists_keys_services_and_members() {
    block_on(async {
        let laptop = new_person("Ada").await;
        let doc = laptop.document();
        assert!(laptop.did().starts_with("did:endra:b"));
        assert_eq!(
            endra::identity::parse_identity_did(&laptop.did()).unwrap(),
            laptop.chain().id()
        );
        assert_eq!(doc["@context"][0], "https://www.w3.org/ns/did/v1");
        assert_eq!(doc["controller"][0], laptop.device().did());
        assert!(
            laptop.device().did().starts_with("did:key:z6Mk"),
            "an Ed25519 did:key"
        );
        let methods = doc["verificationMethod"].as_array().unwrap();
        assert_eq!(methods.len(), 2);
        assert_eq!(methods[0]["type"], "Multikey");
        assert_eq!(doc["authentication"][0], methods[0]["id"]);
        assert_eq!(doc["keyAgreement"][0], methods[1]["id"]);
        assert_eq!(
            doc["service"][0]["serviceEndpoint"],
            "/ip4/127.0.0.1/tcp/4002/ws"
        );
        assert_eq!(doc["endra:kind"], "person");
    });
}

type Bound = BoundChain<MemoryStore>;

/// Every bound replica gets every bound block any of them has.
async fn exchange_bound(replicas: &mut [&mut Bound]) {
    let mut all = Vec::new();
    for replica in replicas.iter() {
        for entry in replica.chain().since(None, usize::MAX).await.unwrap() {
            all.push(entry.block.bytes().to_vec());
        }
    }
    for replica in replicas.iter_mut() {
        let report = replica.chain_mut().insert(all.iter()).await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        assert!(report.waiting.is_empty());
    }
}

async fn bound_contents(bound: &Bound, reader: &Id) -> Vec<Result<Vec<u8>, String>> {
    bound
        .messages(reader)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, content)| content.map_err(|e| e.to_string()))
        .collect()
}

/// A block of `bound` signed by `key` with `anchor`, on top of everything the replica holds,
/// bypassing every local check.
async fn forge_bound(bound: &Bound, key: &DeviceKeys, anchor: &[BlockId]) -> Block {
    forge_bound_on(bound, key, anchor, bound.chain().leaves().to_vec()).await
}

/// A block of `bound` signed by `key` with `anchor` on `parents`, bypassing every local
/// check.
async fn forge_bound_on(
    bound: &Bound,
    key: &DeviceKeys,
    anchor: &[BlockId],
    parents: Vec<BlockId>,
) -> Block {
    let mut height = 0;
    for parent in &parents {
        let parent = bound.chain().block(parent).await.unwrap().unwrap().block;
        height = height.max(parent.height() + 1);
    }
    BlockDraft {
        chain: Some(bound.chain().id()),
        parents,
        height,
        time: T0,
        topics: vec!["chat".into()],
        body: Anchored::body(anchor, b"not sealed, not allowed"),
    }
    .sign(key.signing().as_dalek())
    .unwrap()
}

/// The one block offered was refused by the bound-chain rule, for the reason `code` names.
fn assert_not_admitted(report: &endra::walytis::InsertReport, code: &str) {
    assert!(report.accepted.is_empty() && report.waiting.is_empty());
    assert!(
        matches!(
            report.rejected.as_slice(),
            [(_, ChainError::NotAdmitted(why))]
                if why.code() == code && why.downcast_ref::<BoundRefusal>().is_some()
        ),
        "{:?}",
        report.rejected
    );
}

async fn bound_genesis(bound: &Bound) -> Block {
    let id = bound.chain().id();
    bound.chain().block(&id).await.unwrap().unwrap().block
}

/// A person with a laptop, a phone and a tablet, and a notes chain bound to it that the
/// laptop founded and the others replicate.
async fn three_devices_with_notes() -> ([Id; 3], [Bound; 3]) {
    let mut laptop = new_person("Ada").await;
    let mut phone = add_device(&mut laptop, T0).await;
    let mut tablet = add_device(&mut laptop, T0 + 10).await;
    exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
    let on_laptop = BoundChain::create(&laptop, T0 + 20, &mut OsRng)
        .await
        .unwrap();
    let genesis = bound_genesis(&on_laptop).await;
    let on_phone = BoundChain::replica(&phone, genesis.clone()).await.unwrap();
    let on_tablet = BoundChain::replica(&tablet, genesis).await.unwrap();
    ([laptop, phone, tablet], [on_laptop, on_phone, on_tablet])
}

#[test]
fn a_chain_bound_to_a_person_takes_blocks_only_from_its_current_devices() {
    block_on(async {
        let ([mut laptop, mut phone, mut tablet], [mut on_laptop, mut on_phone, mut on_tablet]) =
            three_devices_with_notes().await;
        assert_eq!(on_laptop.chain().authority(), Some(laptop.chain().id()));
        let genesis = bound_genesis(&on_laptop).await;
        for (bound, device, text) in [
            (&mut on_laptop, &mut laptop, "from the laptop"),
            (&mut on_phone, &mut phone, "from the phone"),
            (&mut on_tablet, &mut tablet, "from the tablet"),
        ] {
            bound
                .write(
                    device,
                    text.as_bytes(),
                    vec!["chat".into()],
                    T0 + 30,
                    &mut OsRng,
                )
                .await
                .unwrap();
        }
        exchange_bound(&mut [&mut on_laptop, &mut on_phone, &mut on_tablet]).await;
        let everyone: BTreeSet<Vec<u8>> = ["from the laptop", "from the phone", "from the tablet"]
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect();
        for (bound, device) in [
            (&on_laptop, &laptop),
            (&on_phone, &phone),
            (&on_tablet, &tablet),
        ] {
            let read: BTreeSet<Vec<u8>> = bound_contents(bound, device)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(read, everyone);
        }
        // The store of a bound chain holds ciphertext only.
        let stored = on_phone.chain().since(None, usize::MAX).await.unwrap();
        assert!(stored
            .iter()
            .all(|e| !e.block.bytes().windows(9).any(|w| w == b"from the ")));

        // The phone removes the tablet, acknowledging first what it holds of the bound chain
        // (so the tablet's message stays shown); its next write makes a new epoch first.
        let stale_anchor = tablet.chain().leaves().to_vec();
        let ack = on_phone
            .acknowledge(&phone, T0 + 39)
            .await
            .unwrap()
            .expect("the leaves are not all the phone's");
        assert!(on_phone
            .acknowledge(&phone, T0 + 39)
            .await
            .unwrap()
            .is_none());
        phone
            .remove(tablet.device().did(), T0 + 40, &mut OsRng)
            .await
            .unwrap();
        on_phone
            .write(
                &mut phone,
                b"after the tablet left",
                vec![],
                T0 + 41,
                &mut OsRng,
            )
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        exchange_bound(&mut [&mut on_laptop, &mut on_phone, &mut on_tablet]).await;
        assert_eq!(
            bound_contents(&on_laptop, &laptop).await.last().unwrap(),
            &Ok(b"after the tablet left".to_vec())
        );
        let tablet_view = bound_contents(&on_tablet, &tablet).await;
        assert_eq!(
            tablet_view.iter().filter(|c| c.is_ok()).count(),
            3,
            "history stays, the tablet's own message included, and the acknowledgement is no message"
        );
        assert!(tablet_view.contains(&Ok(b"from the tablet".to_vec())));
        assert!(!bound_contents(&on_laptop, &laptop)
            .await
            .contains(&Ok(Vec::new())));
        assert!(on_laptop
            .chain()
            .block(&ack.block.id())
            .await
            .unwrap()
            .is_some());
        assert!(
            tablet_view.last().unwrap().is_err(),
            "new data is unreadable to it"
        );

        // The tablet cannot write: refused locally, and every replica — the tablet's own
        // included — refuses a forced block whether it names the identity as it is now or
        // as it was before the removal (anchors never go back behind a parent's).
        assert!(matches!(
            on_tablet
                .write(&mut tablet, b"x", vec![], T0 + 50, &mut OsRng)
                .await,
            Err(IdentityError::NotAMember)
        ));
        let key = DeviceKeys::from_secret_bytes(&tablet.device().to_secret_bytes()).unwrap();
        let outsider = DeviceKeys::generate(&mut OsRng);
        let current_anchor = laptop.chain().leaves().to_vec();
        let forged = [
            (
                forge_bound(&on_tablet, &key, &current_anchor).await,
                "NOT_A_WRITER",
            ),
            (
                forge_bound(&on_tablet, &key, &stale_anchor).await,
                "ANCHOR_BEHIND",
            ),
            (
                forge_bound(&on_tablet, &outsider, &current_anchor).await,
                "NOT_A_WRITER",
            ),
        ];
        for replica in [&mut on_laptop, &mut on_phone, &mut on_tablet] {
            let len = replica.chain().len();
            for (block, code) in &forged {
                assert_not_admitted(
                    &replica.chain_mut().insert([block.bytes()]).await.unwrap(),
                    code,
                );
            }
            assert_eq!(replica.chain().len(), len, "nothing stored");
        }

        // A chain someone founds "for" the person without being one of its devices is not
        // opened, and not stored.
        let fake = BlockDraft {
            chain: None,
            parents: vec![],
            height: 0,
            time: T0,
            topics: vec![BOUND_TOPIC.into()],
            body: Anchored::genesis_body(&laptop.chain().id(), &current_anchor, b"fake"),
        }
        .sign(outsider.signing().as_dalek())
        .unwrap();
        assert!(matches!(
            BoundChain::replica(&laptop, fake.clone()).await,
            Err(IdentityError::Rejected(Rejection::Unauthorised))
        ));
        assert!(laptop
            .chain()
            .store()
            .chain_state(&fake.id())
            .await
            .unwrap()
            .is_none());
        // Nor is a chain bound to another identity.
        let other = new_person("Bob").await;
        assert!(matches!(
            BoundChain::replica(&other, genesis).await,
            Err(IdentityError::NotBound(_))
        ));
    });
}

/// What `reader` is shown of `bound`: its readable messages, as text.
async fn shown_text(bound: &Bound, reader: &Id) -> BTreeSet<String> {
    bound_contents(bound, reader)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .map(|bytes| String::from_utf8(bytes).unwrap())
        .collect()
}

fn texts(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_removed_devices_block_into_the_past_is_stored_but_shown_to_nobody() {
    block_on(async {
        let ([mut laptop, mut phone, mut tablet], [mut on_laptop, mut on_phone, mut on_tablet]) =
            three_devices_with_notes().await;

        // The tablet writes, the laptop answers, the tablet writes once more; all see it all.
        let say = |text: &'static str| text.as_bytes().to_vec();
        on_tablet
            .write(&mut tablet, &say("answered"), vec![], T0 + 30, &mut OsRng)
            .await
            .unwrap();
        exchange_bound(&mut [&mut on_laptop, &mut on_phone, &mut on_tablet]).await;
        on_laptop
            .write(&mut laptop, &say("the answer"), vec![], T0 + 31, &mut OsRng)
            .await
            .unwrap();
        exchange_bound(&mut [&mut on_laptop, &mut on_phone, &mut on_tablet]).await;
        let unanswered = on_tablet
            .write(&mut tablet, &say("unanswered"), vec![], T0 + 32, &mut OsRng)
            .await
            .unwrap()
            .block
            .id();
        exchange_bound(&mut [&mut on_laptop, &mut on_phone, &mut on_tablet]).await;
        let answer_and_all = texts(&["answered", "the answer", "unanswered"]);
        assert_eq!(shown_text(&on_laptop, &laptop).await, answer_and_all);

        // The phone removes the tablet, and only the laptop hears of it. The phone's next
        // write does not build on the removed tablet's leaf: it takes that leaf's parent.
        let stale_anchor = tablet.chain().leaves().to_vec();
        phone
            .remove(tablet.device().did(), T0 + 40, &mut OsRng)
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone]).await;
        let after = on_phone
            .write(&mut phone, &say("after"), vec![], T0 + 41, &mut OsRng)
            .await
            .unwrap()
            .block;
        assert!(!after.parents().contains(&unanswered));
        assert_eq!(after.parents().len(), 1);
        exchange_bound(&mut [&mut on_laptop, &mut on_phone]).await;

        // The tablet, not knowing, writes on the state before its removal with the anchor it
        // knows: a block "into the past", sealed under an epoch the others hold.
        let past = on_tablet
            .write(
                &mut tablet,
                &say("into the past"),
                vec![],
                T0 + 50,
                &mut OsRng,
            )
            .await
            .unwrap()
            .block;
        assert_eq!(Anchored::parse(&past).unwrap().anchor, stale_anchor);
        // Every replica stores it (nothing in either chain tells it from an honest last
        // message) and none shows it, nor the tablet's unanswered message.
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        exchange_bound(&mut [&mut on_laptop, &mut on_phone, &mut on_tablet]).await;
        let shown = texts(&["answered", "the answer", "after"]);
        for (bound, device) in [(&on_laptop, &laptop), (&on_phone, &phone)] {
            assert!(bound.chain().block(&past.id()).await.unwrap().is_some());
            assert_eq!(shown_text(bound, device).await, shown);
        }

        // The laptop's next write leaves both out; a block that builds on the block into the
        // past with the identity as it is now is refused everywhere.
        let next = on_laptop
            .write(&mut laptop, &say("next"), vec![], T0 + 60, &mut OsRng)
            .await
            .unwrap()
            .block;
        assert!(!next.parents().contains(&past.id()));
        assert!(!next.parents().contains(&unanswered));
        exchange_bound(&mut [&mut on_laptop, &mut on_phone, &mut on_tablet]).await;
        let phone_key = DeviceKeys::from_secret_bytes(&phone.device().to_secret_bytes()).unwrap();
        let current_anchor = phone.chain().leaves().to_vec();
        let vouching =
            forge_bound_on(&on_phone, &phone_key, &current_anchor, vec![past.id()]).await;
        for replica in [&mut on_laptop, &mut on_phone, &mut on_tablet] {
            assert_not_admitted(
                &replica
                    .chain_mut()
                    .insert([vouching.bytes()])
                    .await
                    .unwrap(),
                "BUILDS_ON_REMOVED",
            );
        }
        let shown = texts(&["answered", "the answer", "after", "next"]);
        assert_eq!(shown_text(&on_laptop, &laptop).await, shown);

        // A current device that had not heard of the removal may build on it (its anchor
        // predates the removal): then it is shown, as a message that device answered.
        let unaware = forge_bound_on(&on_phone, &phone_key, &stale_anchor, vec![past.id()]).await;
        for replica in [&mut on_laptop, &mut on_phone] {
            let report = replica.chain_mut().insert([unaware.bytes()]).await.unwrap();
            assert_eq!(report.accepted.len(), 1, "{:?}", report.rejected);
        }
        let shown = texts(&[
            "answered",
            "the answer",
            "unanswered",
            "into the past",
            "after",
            "next",
        ]);
        assert_eq!(shown_text(&on_laptop, &laptop).await, shown);
    });
}

#[test]
fn a_mailbox_replica_of_a_bound_chain_waits_for_the_identity_then_judges_alike() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let phone = add_device(&mut laptop, T0).await;
        let phone_key = DeviceKeys::from_secret_bytes(&phone.device().to_secret_bytes()).unwrap();
        let mut notes = BoundChain::create(&laptop, T0 + 1, &mut OsRng)
            .await
            .unwrap();
        notes
            .write(&mut laptop, b"first", vec![], T0 + 2, &mut OsRng)
            .await
            .unwrap();
        laptop
            .remove(phone.device().did(), T0 + 5, &mut OsRng)
            .await
            .unwrap();
        notes
            .write(&mut laptop, b"second", vec![], T0 + 6, &mut OsRng)
            .await
            .unwrap();
        let bound_blocks: Vec<Block> = notes
            .chain()
            .since(None, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.block)
            .collect();

        // A relay's mailbox: bare chains over one store, knowing nothing of identities. It
        // has the bound chain's genesis but not yet the identity chain.
        let store = MemoryStore::new();
        let chain = Chain::from_genesis(
            store.clone(),
            &endra::identity::rules(),
            bound_blocks[0].clone(),
        )
        .await
        .unwrap();
        assert!(chain.has_admission_rule());
        assert_eq!(chain.authority(), Some(laptop.chain().id()));
        let mut mailbox = Sync::new(chain);
        const HONEST: Peer = 1;
        const EVIL: Peer = 2;
        let push = |block: &Block| Message::Push {
            block: block.bytes().to_vec(),
        };
        // Undecidable without the identity: neither stored nor held against the sender.
        let report = Chain::open(store.clone(), &endra::identity::rules(), notes.chain().id())
            .await
            .unwrap()
            .insert([bound_blocks[1].bytes()])
            .await
            .unwrap();
        assert!(matches!(
            report.rejected.as_slice(),
            [(_, ChainError::AwaitingAuthority { .. })]
        ));
        for block in &bound_blocks[1..] {
            let outputs = mailbox
                .handle(T0, Input::Received(HONEST, push(block)))
                .await
                .unwrap();
            assert!(outputs
                .iter()
                .all(|o| !matches!(o, Output::Disconnect(_) | Output::Refused(..))));
        }
        assert_eq!(mailbox.chain().len(), 1, "nothing stored yet");
        assert!(mailbox.chain().has_awaiting());
        // Asked again before the identity arrived, it still holds them.
        assert!(mailbox.authority_grew(T0).await.unwrap().is_empty());
        assert_eq!(mailbox.chain().len(), 1);
        assert!(mailbox.chain().has_awaiting());

        // Once the mailbox holds the identity chain, the blocks it held are judged again
        // and stored, without being sent again.
        let mut identity = Chain::from_genesis(
            store.clone(),
            &endra::identity::rules(),
            genesis(&laptop).await,
        )
        .await
        .unwrap();
        identity
            .insert(blocks(&laptop).await.iter().map(Block::bytes))
            .await
            .unwrap();
        let outputs = mailbox.authority_grew(T0).await.unwrap();
        assert!(outputs.iter().all(|o| !matches!(o, Output::Refused(..))));
        assert_eq!(mailbox.chain().len(), notes.chain().len());
        assert!(!mailbox.chain().has_awaiting());

        // The removed phone's blocks (with the identity as it is, or as the phone last saw
        // it) and an outsider's are refused, and the pusher cut off.
        let outsider = DeviceKeys::generate(&mut OsRng);
        let anchor = laptop.chain().leaves().to_vec();
        let stale = phone.chain().leaves().to_vec();
        let mut outputs = Vec::new();
        for (key, anchor) in [
            (&phone_key, &anchor),
            (&phone_key, &stale),
            (&outsider, &anchor),
        ] {
            let forged = forge_bound(&notes, key, anchor).await;
            outputs.extend(
                mailbox
                    .handle(T0, Input::Received(EVIL, push(&forged)))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(mailbox.chain().len(), notes.chain().len(), "nothing stored");
        assert!(outputs.contains(&Output::Disconnect(EVIL)));
    });
}

#[test]
fn a_policy_schedules_new_epochs_and_discards_old_ones() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let policy = Policy {
            rekey_every: Some(HOUR),
            keep_epochs: Some(2),
        };
        laptop.set_policy(policy, T0 + 1).await.unwrap();
        assert_eq!(laptop.state().policy(), policy);
        // One epoch an hour at most, made by the first write after it is due.
        for (text, time) in [
            ("first epoch", T0 + 2),
            ("still the first epoch", T0 + 3),
            ("second epoch", T0 + 2 * HOUR),
            ("third epoch", T0 + 4 * HOUR),
        ] {
            write_note(&mut laptop, text.as_bytes(), time)
                .await
                .unwrap();
        }
        assert_eq!(laptop.state().epochs().len(), 3);
        let discarded = Err(IdentityError::EpochDiscarded.to_string());
        let expected = vec![
            discarded.clone(),
            discarded.clone(),
            Ok(b"second epoch".to_vec()),
            Ok(b"third epoch".to_vec()),
        ];
        assert_eq!(read_notes(&laptop).await, expected);

        // A new device gets only what the policy keeps; every replica agrees.
        let mut phone = add_device(&mut laptop, T0 + 4 * HOUR).await;
        assert!(!laptop.state().epochs()[0].has_device(phone.device().did()));
        assert_eq!(read_notes(&phone).await, expected);
        assert_converged(&[&laptop, &phone]).await;

        // A rotation seals again only the kept epochs: with its old agreement key gone, the
        // discarded epoch is gone for the laptop even if the policy is relaxed later.
        laptop.rotate(T0 + 4 * HOUR + 10, &mut OsRng).await.unwrap();
        laptop
            .set_policy(Policy::default(), T0 + 4 * HOUR + 11)
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone]).await;
        let relaxed = read_notes(&laptop).await;
        assert_eq!(relaxed[0], Err(IdentityError::NoEpochKey.to_string()));
        assert_eq!(relaxed[2..], expected[2..]);
        assert_converged(&[&laptop, &phone]).await;

        // Invalid policies are refused.
        for bad in [
            Policy {
                keep_epochs: Some(0),
                ..Policy::default()
            },
            Policy {
                rekey_every: Some(0),
                ..Policy::default()
            },
        ] {
            assert!(matches!(
                laptop.set_policy(bad, T0 + 5 * HOUR).await,
                Err(IdentityError::Rejected(Rejection::NotPermitted(_)))
            ));
        }
    });
}

#[test]
fn only_a_groups_admins_set_its_policy() {
    block_on(async {
        let people = vec![
            two_device_person("Ada").await,
            two_device_person("Bob").await,
        ];
        let mut group = group_of(&people).await;
        let policy = Policy {
            rekey_every: None,
            keep_epochs: Some(1),
        };
        assert!(matches!(
            group[2].set_policy(policy, T0 + 10).await,
            Err(IdentityError::Rejected(Rejection::NotPermitted(_)))
        ));
        group[0].set_policy(policy, T0 + 10).await.unwrap();
        let mut all: Vec<&mut Id> = group.iter_mut().collect();
        exchange(&mut all).await;
        assert!(group
            .iter()
            .all(|replica| replica.state().policy() == policy));
    });
}

#[test]
fn identity_chains_carry_ops_only_and_name_their_default_chain_once() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0 + 10).await;
        let default = laptop.default_chain().unwrap();
        assert_eq!(
            phone.default_chain(),
            Some(default),
            "every replica knows it"
        );

        // Data on the identity chain, by a current device, is refused by every replica: it
        // goes to a bound chain (the default chain for an identity's own messages).
        let key = DeviceKeys::from_secret_bytes(&laptop.device().to_secret_bytes()).unwrap();
        let raw = laptop
            .chain_mut()
            .append(
                key.signing().as_dalek(),
                T0 + 20,
                vec![(b"a note".to_vec(), vec!["note".into()])],
            )
            .await;
        assert!(
            matches!(&raw, Err(ChainError::NotAdmitted(why)) if why.code() == "MALFORMED_OP"),
            "{raw:?}"
        );
        let (leaves, height) = tip(&laptop).await;
        let data = BlockDraft {
            chain: Some(laptop.chain().id()),
            parents: leaves,
            height,
            time: T0 + 20,
            topics: vec![],
            body: b"a note".to_vec(),
        }
        .sign(key.signing().as_dalek())
        .unwrap();
        let report = phone.insert([data.bytes()]).await.unwrap();
        assert!(report.accepted.is_empty(), "{report:?}");
        assert!(matches!(
            report.rejected.as_slice(),
            [(_, ChainError::NotAdmitted(_))]
        ));

        // The default chain is named once: a second name is refused.
        let other = BoundChain::create(&phone, T0 + 30, &mut OsRng)
            .await
            .unwrap();
        assert!(matches!(
            phone.name_default_chain(other.chain().id(), T0 + 30).await,
            Err(IdentityError::Rejected(Rejection::NotPermitted(_)))
        ));
        write_note(&mut phone, b"on the default chain", T0 + 31)
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone]).await;
        assert_eq!(
            read_notes(&laptop).await,
            vec![Ok(b"on the default chain".to_vec())]
        );
        assert_converged(&[&laptop, &phone]).await;
    });
}

/// Something other than this code that can write the store (a browser extension, a script
/// with the page's IndexedDB) plants a block claiming the laptop as its author, pointing the
/// person's relays at an attacker's: the signature is not the laptop's, and reading the
/// identity from that store refuses the record instead of folding it in.
#[test]
fn a_record_planted_in_the_store_is_refused_when_the_identity_is_read() {
    block_on(async {
        use endra::walytis::store::{BlockRecord, ChainState, Commit};
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0).await;
        exchange(&mut [&mut laptop, &mut phone]).await;
        let laptop_key = DeviceKeys::from_secret_bytes(&laptop.device().to_secret_bytes()).unwrap();
        // The laptop's signature over another time: the author still says "laptop".
        let (leaves, height) = tip(&phone).await;
        let signed = forge(&phone, &laptop_key, leaves, height);
        let mut bytes = signed.bytes().to_vec();
        let at = bytes
            .windows(6)
            .position(|w| w == b"attack")
            .expect("the relay address");
        bytes[at] = b'A';
        let planted = BlockId::of(&bytes);
        let store = phone.chain().store().clone();
        let chain = phone.chain().id();
        let state = store.chain_state(&chain).await.unwrap().unwrap();
        store
            .commit(&Commit {
                chain,
                expected: Some(state.clone()),
                blocks: vec![BlockRecord {
                    id: planted,
                    seq: state.next_seq,
                    height,
                    author: signed.author(),
                    topics: signed.topics().to_vec(),
                    bytes,
                }],
                state: ChainState {
                    next_seq: state.next_seq + 1,
                    leaves: vec![planted],
                },
            })
            .await
            .unwrap();
        let phone_key = DeviceKeys::from_secret_bytes(&phone.device().to_secret_bytes()).unwrap();
        let reopened = Identity::open(store, chain, phone_key).await;
        let error = reopened.expect_err("the planted record is refused");
        assert!(
            matches!(
                error,
                IdentityError::Chain(ChainError::Store(endra::store::StoreError::Corrupt(_)))
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("signature"), "{error}");
        // The laptop's own replica never saw it.
        assert!(laptop
            .state()
            .relays()
            .iter()
            .all(|r| !r.contains("ttacker")));
    });
}
