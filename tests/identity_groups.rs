//! Groups follow their members' own identities: a member's devices in a group are the
//! devices its person chain lists, checked by every replica of the group against that chain
//! at the anchor each join and device list names; nobody joins as another person, and a
//! device a person removes loses every group of that person at the next epoch.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use endra::identity::handle::person_in_store;
use endra::identity::{
    DeviceKeys, IdentityState, MemberEntry, Op, PersonAnchor, Role, IDENTITY_TOPIC,
};
use endra::walytis::{Block, BlockDraft, ChainError};
use futures_executor::block_on;
use rand_core::OsRng;

mod common;

use common::identity::{
    add_device, blocks, exchange, genesis, group_founded_by, join_group, keys_of, new_person,
    read_notes, replica_for, share_persons, write_note, Id, HOUR, T0,
};

/// A join request `op` signed by `key`, on top of everything `group` holds.
fn signed(group: &Id, key: &DeviceKeys, op: &Op, height: u64) -> Block {
    BlockDraft {
        chain: Some(group.chain().id()),
        parents: group.chain().leaves().to_vec(),
        height,
        time: T0 + 1,
        topics: vec![IDENTITY_TOPIC.into()],
        body: op.encode(),
    }
    .sign(key.signing().as_dalek())
    .unwrap()
}

fn refused_as(report: &endra::walytis::InsertReport, code: &str) {
    assert!(report.accepted.is_empty(), "stored: {:?}", report.accepted);
    assert!(
        matches!(&report.rejected[..], [(_, ChainError::NotAdmitted(why))] if why.code() == code),
        "{:?}",
        report.rejected
    );
}

/// Mallory, a person of her own, holds a group invitation and asks to join as Ada: with her
/// own device under Ada's DID, with Ada's devices but her own signature, and with an anchor
/// that claims more of Ada's chain than it reaches. Every replica refuses each before any
/// admin sees it. With her own DID she joins.
#[test]
fn nobody_joins_a_group_as_another_persons_did() {
    block_on(async {
        let bob = new_person("Bob").await;
        let ada = new_person("Ada").await;
        let mallory = new_person("Mallory").await;
        let mut group = group_founded_by(&bob, "crew").await;
        let genesis = genesis(&group).await;
        let mut mallory_group = replica_for(&mallory, &genesis).await;
        // Every store involved holds Ada's chain: what a node following the group fetches.
        let mut ada_group = replica_for(&ada, &genesis).await;
        exchange(&mut [&mut group, &mut mallory_group, &mut ada_group]).await;
        let height = blocks(&group).await.last().unwrap().height() + 1;
        let mallory_keys = keys_of(&mallory);
        let invitation = group.invite(Role::Member, T0 + HOUR, &mut OsRng).unwrap();
        let (ada_entry, ada_anchor) = ada.as_member();
        let request = |member: MemberEntry, anchor: PersonAnchor| Op::Request {
            invitation: invitation.clone(),
            member,
            anchor: Some(anchor),
        };
        let as_ada_with_mallorys_device = request(
            MemberEntry {
                did: ada.did(),
                devices: vec![mallory_keys.entry()],
            },
            ada_anchor.clone(),
        );
        let as_ada_with_adas_devices = request(ada_entry.clone(), ada_anchor.clone());
        let overclaimed = request(
            MemberEntry {
                did: ada.did(),
                devices: vec![mallory_keys.entry()],
            },
            PersonAnchor {
                leaves: ada_anchor.leaves.clone(),
                blocks: ada_anchor.blocks + 10,
            },
        );
        for (op, code) in [
            (as_ada_with_mallorys_device, "NOT_THE_PERSONS"),
            (as_ada_with_adas_devices, "NOT_PERMITTED"),
            (overclaimed, "NOT_THE_PERSONS"),
        ] {
            let block = signed(&group, &mallory_keys, &op, height);
            for replica in [&mut group, &mut mallory_group] {
                let report = replica.insert([block.bytes()]).await.unwrap();
                refused_as(&report, code);
            }
        }
        // Her own replica refuses to write it in the first place (its chain checks it as
        // every replica does).
        let impostor = MemberEntry {
            did: ada.did(),
            devices: vec![mallory_keys.entry()],
        };
        let written = mallory_group
            .request_join(invitation.clone(), Some((impostor, ada_anchor.clone())), T0)
            .await;
        assert!(
            matches!(&written, Err(endra::identity::IdentityError::Chain(ChainError::NotAdmitted(why))) if why.code() == "NOT_THE_PERSONS"),
            "{written:?}"
        );
        assert_eq!(group.state().pending_requests().count(), 0);
        // As herself, she joins.
        join_group(&mut group, &mallory, &mut mallory_group).await;
        assert!(mallory_group.is_current_device());
        assert!(group.state().member(&mallory.did()).is_some());
        assert!(group.state().member(&ada.did()).is_none());
    });
}

/// Ada has a laptop and a phone, and is in two groups: one she founded, one Bob founded.
/// She removes the phone from her person. Bob's device, which follows Ada's chain, brings
/// Ada's devices up to date in both groups (a new epoch each); the phone then reads nothing
/// written in either group and cannot write. An older anchor of Ada's, brought by anyone,
/// is refused: device lists never go back.
#[test]
fn a_device_removed_from_a_person_loses_every_group_of_that_person() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0).await;
        exchange(&mut [&mut laptop, &mut phone]).await;
        let bob = new_person("Bob").await;
        let before_removal = laptop.as_member();

        // Group one, founded by Ada (both devices in it); group two, Bob's, Ada joins.
        let mut g1_laptop = group_founded_by(&laptop, "ours").await;
        let g1 = genesis(&g1_laptop).await;
        let mut g1_phone = replica_for(&phone, &g1).await;
        let mut g1_bob = replica_for(&bob, &g1).await;
        join_group(&mut g1_laptop, &bob, &mut g1_bob).await;
        let mut g2_bob = group_founded_by(&bob, "theirs").await;
        let g2 = genesis(&g2_bob).await;
        let mut g2_laptop = replica_for(&laptop, &g2).await;
        let mut g2_phone = replica_for(&phone, &g2).await;
        join_group(&mut g2_bob, &laptop, &mut g2_laptop).await;
        exchange(&mut [&mut g1_laptop, &mut g1_phone, &mut g1_bob]).await;
        exchange(&mut [&mut g2_bob, &mut g2_laptop, &mut g2_phone]).await;
        assert!(g1_phone.is_current_device() && g2_phone.is_current_device());
        write_note(&mut g2_phone, b"the phone, before", T0 + 3)
            .await
            .unwrap();

        // Ada removes the phone from her person; Bob's stores get her chain.
        laptop
            .remove(phone.device().did(), T0 + 4, &mut OsRng)
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone]).await;
        share_persons(&[&mut g1_laptop, &mut g1_bob]).await;
        share_persons(&[&mut g2_bob, &mut g2_laptop]).await;
        for group in [&mut g1_bob, &mut g2_bob] {
            // What Bob's store holds of Ada's chain, as his device's client reads it.
            let now = person_in_store(group.chain().store(), &laptop.did())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(now, laptop.as_member());
            assert_eq!(now.0.devices.len(), 1);
            assert!(group.follow_member(&now, T0 + 5, &mut OsRng).await.unwrap());
            // Nothing more to bring: the same anchor again writes nothing.
            assert!(!group.follow_member(&now, T0 + 5, &mut OsRng).await.unwrap());
        }
        exchange(&mut [&mut g1_laptop, &mut g1_phone, &mut g1_bob]).await;
        exchange(&mut [&mut g2_bob, &mut g2_laptop, &mut g2_phone]).await;
        for (group, phone_view) in [(&mut g1_bob, &mut g1_phone), (&mut g2_bob, &mut g2_phone)] {
            let ada = group.state().member(&laptop.did()).unwrap();
            assert_eq!(ada.devices.len(), 1);
            assert!(!phone_view.is_current_device());
            write_note(group, b"after the phone left", T0 + 6)
                .await
                .unwrap();
        }
        exchange(&mut [&mut g1_laptop, &mut g1_phone, &mut g1_bob]).await;
        exchange(&mut [&mut g2_bob, &mut g2_laptop, &mut g2_phone]).await;
        for (phone_view, laptop_view) in [(&g1_phone, &g1_laptop), (&g2_phone, &g2_laptop)] {
            let shown = read_notes(phone_view).await;
            assert!(
                !shown.contains(&Ok(b"after the phone left".to_vec())),
                "{shown:?}"
            );
            assert!(read_notes(laptop_view)
                .await
                .contains(&Ok(b"after the phone left".to_vec())));
        }
        assert!(write_note(&mut g2_phone, b"still here?", T0 + 7)
            .await
            .is_err());

        // Bob's device brings Ada's devices as they were before the removal: refused.
        let (entry, anchor) = before_removal;
        let stale = Op::SetDevices {
            member: laptop.did(),
            devices: entry.devices,
            anchor,
        };
        let height = blocks(&g2_bob).await.last().unwrap().height() + 1;
        let block = signed(&g2_bob, &keys_of(&bob), &stale, height);
        let report = g2_bob.insert([block.bytes()]).await.unwrap();
        refused_as(&report, "NOT_THE_PERSONS");
        // Every replica agrees with a fresh fold.
        for group in [&g1_bob, &g1_laptop, &g2_bob, &g2_laptop] {
            let fresh = IdentityState::resolve(&blocks(group).await).unwrap();
            assert_eq!(endra::identity::document(&fresh), group.document());
        }
    });
}
