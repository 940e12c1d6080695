//! Epoch keys that a removed device can never use to read what is written after its
//! removal, and that no member can split: a rekey concurrent with a removal is never written
//! under, and a copy of another key under an existing epoch is refused.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashSet;

use endra::identity::ops::{epoch_aad, epoch_commitment, SealedKey};
use endra::identity::{
    seal, DeviceKeys, EpochId, EpochKey, IdentityError, IdentityState, Invitation, Op, Rejection,
    Role, IDENTITY_TOPIC,
};
use endra::walytis::{Anchored, Block, BlockDraft, BlockId, Query};
use futures_executor::block_on;
use rand_core::OsRng;

mod common;

use common::identity::{
    add_device, blocks, exchange, genesis, keys_of, new_person, read_notes, write_note, Id, HOUR,
    T0,
};

/// Signs `op` with `key` on top of everything `identity` holds, bypassing every local check.
async fn sign_on_top(identity: &Id, key: &DeviceKeys, op: &Op) -> Block {
    let all = blocks(identity).await;
    BlockDraft {
        chain: Some(identity.chain().id()),
        parents: identity.chain().leaves().to_vec(),
        height: all.last().unwrap().height() + 1,
        time: T0 + 5,
        topics: vec![IDENTITY_TOPIC.into()],
        body: op.encode(),
    }
    .sign(key.signing().as_dalek())
    .unwrap()
}

/// Every epoch key `device` can open from the raw chain — what a removed device that kept
/// its agreement key can read, whatever the fold says — by epoch.
fn keys_in_chain(chain: &[Block], device: &DeviceKeys) -> Vec<(EpochId, EpochKey)> {
    let mut keys = Vec::new();
    for block in chain {
        let Ok(Op::Epoch {
            epoch,
            keys: copies,
            ..
        }) = Op::decode(block.body())
        else {
            continue;
        };
        let aad = epoch_aad(&chain[0].id(), &epoch, device.did());
        for copy in copies.iter().filter(|c| c.device == device.did()) {
            if let Ok(bytes) = device.agreement().open(&aad, &copy.sealed) {
                keys.push((epoch, EpochKey::from_slice(&bytes).unwrap()));
            }
        }
    }
    keys
}

/// The epoch a message of the identity's default chain was sealed under, read from the raw
/// block (`[epoch, ciphertext]` inside the anchored body).
async fn epochs_of_notes(identity: &Id) -> Vec<EpochId> {
    let chain = identity.default_chain().unwrap();
    let bound = endra::identity::BoundChain::open(identity, chain)
        .await
        .unwrap();
    let entries = bound
        .chain()
        .blocks(Query {
            limit: usize::MAX,
            ..Query::default()
        })
        .await
        .unwrap();
    let mut epochs = Vec::new();
    for entry in entries.iter().skip(1) {
        let content = Anchored::parse(&entry.block).unwrap().content;
        // CBOR: an array of two, then a byte string of 16 (the epoch ID).
        if content.starts_with(&[0x82, 0x50]) {
            epochs.push(content[2..18].try_into().unwrap());
        }
    }
    epochs
}

/// A phone rekeys three times (sealing to the tablet too) while, concurrently, the laptop
/// removes the tablet. The phone's epochs sort after the removal, and their copies for the
/// tablet are in the chain. Once everyone holds the whole DAG, no one writes under any
/// epoch the tablet holds a copy of: what the laptop and the phone write next, the tablet
/// cannot read even from the raw chain with its own agreement key.
#[test]
fn a_rekey_concurrent_with_a_removal_is_never_written_under() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0).await;
        let mut tablet = add_device(&mut laptop, T0).await;
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        let tablet_keys = keys_of(&tablet);

        laptop
            .remove(tablet.device().did(), T0 + HOUR, &mut OsRng)
            .await
            .unwrap();
        for _ in 0..3 {
            phone.rekey(T0 + HOUR, &mut OsRng).await.unwrap();
        }
        let phone_last = phone.state().epochs().last().unwrap().clone();
        assert!(phone_last.has_device(tablet.device().did()));
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;

        // The phone's last epoch sorts after the removal: before this rule it was the one
        // every device wrote under, and the tablet's copy of it is in the chain.
        let all = blocks(&laptop).await;
        let position = |id: BlockId| all.iter().position(|b| b.id() == id).unwrap();
        let removal = all
            .iter()
            .position(|b| matches!(Op::decode(b.body()), Ok(Op::Remove { .. })))
            .unwrap();
        assert!(position(phone_last.first) > removal);
        let readable: HashSet<EpochId> = keys_in_chain(&all, &tablet_keys)
            .into_iter()
            .map(|(epoch, _)| epoch)
            .collect();
        assert!(readable.contains(&phone_last.id), "the attack is real");

        for replica in [&laptop, &phone] {
            let current = replica.state().current_epoch().unwrap();
            assert!(!readable.contains(&current.id));
            assert!(current.addressed().all(|d| d != tablet.device().did()));
        }
        write_note(&mut laptop, b"after the removal", T0 + HOUR + 1)
            .await
            .unwrap();
        write_note(&mut phone, b"the phone too", T0 + HOUR + 2)
            .await
            .unwrap();
        // Nothing written after the whole DAG met is under an epoch the tablet can open.
        for replica in [&laptop, &phone] {
            let notes = epochs_of_notes(replica).await;
            assert!(!notes.is_empty());
            let last = notes.last().unwrap();
            assert!(!readable.contains(last), "written under a leaked epoch");
        }
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        let tablet_view = read_notes(&tablet).await;
        assert!(
            tablet_view
                .iter()
                .all(|n| n.as_deref() != Ok(b"after the removal".as_slice())
                    && n.as_deref() != Ok(b"the phone too".as_slice())),
            "{tablet_view:?}"
        );
        let laptop_view = read_notes(&laptop).await;
        assert!(laptop_view.contains(&Ok(b"the phone too".to_vec())));
        // Every replica agrees, and a fresh fold gives the same current epoch.
        let fresh = IdentityState::resolve(&blocks(&phone).await).unwrap();
        assert_eq!(
            fresh.current_epoch().map(|e| e.id),
            laptop.state().current_epoch().map(|e| e.id)
        );
    });
}

/// A member extends an existing epoch with a copy of another key for a device: under
/// another commitment the op is refused by every replica; under the epoch's own commitment
/// the device refuses the copy (`ForgedEpochKey`), its genuine copy still reads, and a
/// device that holds only the forged copy makes a new epoch the moment it writes, which
/// everyone else reads.
#[test]
fn a_copy_of_another_key_under_an_existing_epoch_is_refused() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let mut phone = add_device(&mut laptop, T0).await;
        write_note(&mut laptop, b"before", T0 + 1).await.unwrap();
        exchange(&mut [&mut laptop, &mut phone]).await;
        let epoch = laptop.state().current_epoch().unwrap().clone();
        let chain = laptop.chain().id();
        let phone_keys = keys_of(&phone);

        // The phone turns hostile: another key, sealed to the laptop under the same epoch.
        let other = EpochKey::generate(&mut OsRng);
        let copy = |to: &DeviceKeys, key: &EpochKey| SealedKey {
            device: to.did().to_owned(),
            sealed: seal(
                &to.agreement().public(),
                &epoch_aad(&chain, &epoch.id, to.did()),
                key.as_bytes(),
                &mut OsRng,
            )
            .unwrap(),
        };
        let laptop_keys = keys_of(&laptop);
        let open_commitment = Op::Epoch {
            epoch: epoch.id,
            commitment: epoch_commitment(&chain, &epoch.id, &other).unwrap(),
            keys: vec![copy(&laptop_keys, &other)],
        };
        let block = sign_on_top(&phone, &phone_keys, &open_commitment).await;
        for replica in [&mut laptop, &mut phone] {
            replica.insert([block.bytes()]).await.unwrap();
            assert!(matches!(
                replica.state().rejection(&block.id()),
                Some(Rejection::NotPermitted(_))
            ));
        }
        let same_commitment = Op::Epoch {
            epoch: epoch.id,
            commitment: epoch.commitment,
            keys: vec![copy(&laptop_keys, &other)],
        };
        let block = sign_on_top(&phone, &phone_keys, &same_commitment).await;
        laptop.insert([block.bytes()]).await.unwrap();
        assert!(
            laptop.state().is_accepted(&block.id()),
            "the fold cannot tell"
        );
        let opened = laptop
            .state()
            .epoch_key(
                &epoch.id,
                laptop.device().did(),
                laptop.device().agreement(),
            )
            .unwrap();
        assert_eq!(
            epoch_commitment(&chain, &epoch.id, &opened).unwrap(),
            epoch.commitment,
            "the laptop keeps reading with its genuine copy"
        );
        assert_eq!(read_notes(&laptop).await, vec![Ok(b"before".to_vec())]);

        // A tablet joins; the hostile phone approves it and seals it only the other key.
        let invitation = laptop.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
        let mut tablet = endra::identity::Identity::replica(
            endra::store::MemoryStore::new(),
            genesis(&laptop).await,
            DeviceKeys::generate(&mut OsRng),
        )
        .await
        .unwrap();
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        let request = tablet
            .request_join(
                Invitation::from_code(&invitation.to_code()).unwrap(),
                None,
                T0 + 2,
            )
            .await
            .unwrap();
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        let tablet_keys = keys_of(&tablet);
        let approve = sign_on_top(&phone, &phone_keys, &Op::Approve { request }).await;
        phone.insert([approve.bytes()]).await.unwrap();
        let only_forged = Op::Epoch {
            epoch: epoch.id,
            commitment: epoch.commitment,
            keys: vec![copy(&tablet_keys, &other)],
        };
        let forged = sign_on_top(&phone, &phone_keys, &only_forged).await;
        phone.insert([forged.bytes()]).await.unwrap();
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        assert!(tablet.is_current_device());
        assert!(matches!(
            tablet.state().epoch_key(
                &epoch.id,
                tablet.device().did(),
                tablet.device().agreement()
            ),
            Err(IdentityError::ForgedEpochKey)
        ));
        let shown = read_notes(&tablet).await;
        assert_eq!(shown.len(), 1);
        assert!(
            shown[0].as_ref().unwrap_err().contains("commits to"),
            "{shown:?}"
        );
        // The tablet writes: every peer still sees the epoch as current, so the tablet makes
        // a new one first, and everyone reads what it wrote.
        write_note(&mut tablet, b"from the tablet", T0 + 3)
            .await
            .unwrap();
        let current = tablet.state().current_epoch().unwrap().id;
        assert_ne!(current, epoch.id);
        exchange(&mut [&mut laptop, &mut phone, &mut tablet]).await;
        assert_eq!(laptop.state().current_epoch().unwrap().id, current);
        assert_eq!(
            read_notes(&laptop).await,
            vec![Ok(b"before".to_vec()), Ok(b"from the tablet".to_vec())]
        );
    });
}
