//! The client layer natively: accounts on separate stores that exchange blocks only through
//! their outboxes, as the wasm shell does through the node. Each scenario asserts what a
//! device would show, and that the outbox order is one every peer can admit as it arrives.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

mod common;

use endra::client::{Account, ClientError, Keyring};
use endra::envelope::{ContentKind, Envelope};
use endra::identity::{
    DeviceKeys, Founding, Identity, IdentityError, KdfFloor, KdfParams, Keystore, KeystoreError,
    Policy, RecoveryKey,
};
use endra::store::{BlockStore, MemoryStore};
use endra::walytis::{BlockId, ChainError};
use futures_executor::block_on;
use rand_core::OsRng;

use common::client::{
    bound_chain, deliver, join, new_person, person, Device, HOUR, T0, TEST_KEYRING,
};

/// The texts of a bound chain's messages as `device` shows them (unreadable ones as `?`).
async fn texts(device: &mut Device, chain: &BlockId) -> Vec<String> {
    device
        .messages_of(chain)
        .await
        .unwrap()
        .into_iter()
        .map(|m| match m.content {
            Ok(content) => {
                assert_eq!(content.kind, ContentKind::Message);
                String::from_utf8(content.payload).unwrap()
            }
            Err(_) => "?".into(),
        })
        .collect()
}

#[test]
fn a_removal_acknowledges_the_open_chains_first_so_the_removed_devices_messages_stay_shown() {
    block_on(async {
        let mut laptop = new_person().await;
        let mut phone = join(&mut laptop, &mut [], T0 + 10).await;
        let mut tablet = join(&mut laptop, &mut [&mut phone], T0 + 20).await;
        let notes = bound_chain(&mut laptop, &mut [&mut phone, &mut tablet], T0 + 30).await;
        let drafts = bound_chain(&mut laptop, &mut [&mut phone, &mut tablet], T0 + 31).await;

        // The tablet writes its last messages, which the laptop holds and nobody answered.
        tablet
            .write_to(
                &notes,
                &Envelope::message(*b"last words"),
                vec![],
                T0 + 40,
                &mut OsRng,
            )
            .await
            .unwrap();
        tablet
            .write_to(
                &drafts,
                &Envelope::message(*b"last draft"),
                vec![],
                T0 + 41,
                &mut OsRng,
            )
            .await
            .unwrap();
        deliver(&tablet.take_outbox(), &mut [&mut laptop, &mut phone]).await;

        // The laptop closes the drafts, then removes the tablet: the notes it still has open
        // are acknowledged, and the acknowledgement is queued before the removal.
        assert!(laptop.close_chain(&drafts));
        let tablet_did = tablet.identity().device().did().to_owned();
        laptop
            .remove(&tablet_did, T0 + 50, &mut OsRng)
            .await
            .unwrap();
        let outbox = laptop.take_outbox();
        let chains: Vec<BlockId> = outbox.iter().map(|p| p.chain).collect();
        assert_eq!(chains, vec![notes, laptop.chain()]);
        deliver(&outbox, &mut [&mut phone]).await;

        // Every current device shows the tablet's last note, which the laptop had seen; the
        // draft nobody acknowledged is not shown, as for any removed device's last blocks.
        assert_eq!(texts(&mut laptop, &notes).await, vec!["last words"]);
        assert_eq!(texts(&mut phone, &notes).await, vec!["last words"]);
        assert!(texts(&mut phone, &drafts).await.is_empty());
        assert!(!phone
            .identity()
            .state()
            .devices()
            .any(|(_, d)| d.did == tablet_did));

        // The tablet writes on until it hears of its removal (that block reaches nobody),
        // then can no longer write; a closed chain is no longer the account's.
        let unaware = tablet
            .write_to(
                &notes,
                &Envelope::message(*b"still here?"),
                vec![],
                T0 + 60,
                &mut OsRng,
            )
            .await;
        assert!(unaware.is_ok(), "{unaware:?}");
        tablet.take_outbox();
        deliver(&outbox, &mut [&mut tablet]).await;
        assert!(matches!(
            tablet
                .write_to(
                    &notes,
                    &Envelope::message(*b"and now?"),
                    vec![],
                    T0 + 61,
                    &mut OsRng
                )
                .await,
            Err(ClientError::Identity(IdentityError::NotAMember))
        ));
        assert!(matches!(
            laptop
                .write_to(&drafts, &Envelope::message(*b"x"), vec![], T0 + 62, &mut OsRng)
                .await,
            Err(ClientError::ChainNotOpen(chain)) if chain == drafts
        ));
    });
}

#[test]
fn a_rekey_is_published_before_the_bound_block_anchored_on_it() {
    block_on(async {
        let mut laptop = new_person().await;
        let mut phone = join(&mut laptop, &mut [], T0 + 10).await;
        let notes = bound_chain(&mut laptop, &mut [&mut phone], T0 + 20).await;
        laptop
            .set_policy(
                Policy {
                    rekey_every: Some(HOUR),
                    keep_epochs: None,
                },
                T0 + 21,
            )
            .await
            .unwrap();
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;

        // Two hours later the epoch is due: the write rekeys first, and the outbox carries
        // the new epoch on the identity chain before the note anchored on it.
        let later = T0 + 2 * HOUR;
        let epoch_before = laptop.identity().state().current_epoch().map(|e| e.id);
        laptop
            .write_to(
                &notes,
                &Envelope::message(*b"scheduled"),
                vec![],
                later,
                &mut OsRng,
            )
            .await
            .unwrap();
        assert_ne!(
            laptop.identity().state().current_epoch().map(|e| e.id),
            epoch_before
        );
        let outbox = laptop.take_outbox();
        let chains: Vec<BlockId> = outbox.iter().map(|p| p.chain).collect();
        assert_eq!(chains, vec![laptop.chain(), notes]);

        // A replica that gets them in the other order cannot judge the note yet: it holds it
        // until the identity grows, then stores it by itself.
        let mut outbox_reversed = outbox.clone();
        outbox_reversed.reverse();
        let held = phone
            .receive(&notes, outbox_reversed[0].blocks.iter().map(|b| b.bytes()))
            .await
            .unwrap();
        assert!(matches!(
            held.rejected.as_slice(),
            [(_, ChainError::AwaitingAuthority { .. })]
        ));
        assert!(texts(&mut phone, &notes).await.is_empty());
        deliver(&outbox_reversed[1..], &mut [&mut phone]).await;
        assert_eq!(texts(&mut phone, &notes).await, vec!["scheduled"]);
        assert_eq!(texts(&mut laptop, &notes).await, vec!["scheduled"]);
    });
}

#[test]
fn the_keyring_keeps_one_device_key_that_only_the_passphrase_opens() {
    block_on(async {
        let store = MemoryStore::new();
        assert!(matches!(
            TEST_KEYRING.unlock(&store, "", &mut OsRng).await,
            Err(ClientError::PassphraseRequired)
        ));
        assert_eq!(store.setting(Keyring::SETTING).await.unwrap(), None);

        let keys = TEST_KEYRING
            .unlock(&store, "correct horse", &mut OsRng)
            .await
            .unwrap();
        let sealed = store.setting(Keyring::SETTING).await.unwrap().unwrap();
        let secrets = keys.to_secret_bytes();
        for window in secrets.windows(16) {
            assert!(!sealed.windows(16).any(|w| w == window));
        }

        // A wrong passphrase fails and leaves the sealed keys as they were.
        assert!(matches!(
            TEST_KEYRING.unlock(&store, "wrong horse", &mut OsRng).await,
            Err(ClientError::Identity(IdentityError::Keystore(
                KeystoreError::WrongPassphrase
            )))
        ));
        assert_eq!(
            store.setting(Keyring::SETTING).await.unwrap(),
            Some(sealed.clone())
        );
        // A keyring that demands real KDF costs refuses keys sealed with cheap ones (a store
        // rewritten to weaken them).
        assert!(matches!(
            Keyring::RECOMMENDED
                .unlock(&store, "correct horse", &mut OsRng)
                .await,
            Err(ClientError::Identity(IdentityError::Keystore(
                KeystoreError::WeakParams { .. }
            )))
        ));

        // "Reload": the account reopens from the store with the same device.
        let mut account = Account::create(store.clone(), keys, person("Ada"), T0, &mut OsRng)
            .await
            .unwrap();
        account
            .write(&Envelope::message(*b"kept"), vec![], T0 + 1, &mut OsRng)
            .await
            .unwrap();
        let chain = account.chain();
        let device = account.identity().device().did().to_owned();
        drop(account);
        let again = TEST_KEYRING
            .unlock(&store, "correct horse", &mut OsRng)
            .await
            .unwrap();
        assert_eq!(again.did(), device);
        let mut account = Account::open(store, chain, again).await.unwrap();
        assert!(account.identity().is_current_device());
        let messages = account.messages().await.unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(
            messages[0].content.as_ref().unwrap(),
            &Envelope::message(*b"kept")
        );
        assert_eq!(messages[0].device.as_deref(), Some(device.as_str()));
    });
}

/// Keys an older build sealed with weaker KDF costs (as the 19 MiB, 2-pass default of
/// before) still open, and are sealed again with the keyring's costs at that unlock; a wrong
/// passphrase migrates nothing. (Scaled down: the old costs here are the cheapest Argon2
/// takes, the new ones twice the memory and passes.)
#[test]
fn keys_sealed_with_weaker_kdf_costs_open_and_are_sealed_again_with_the_current_ones() {
    block_on(async {
        let store = MemoryStore::new();
        let old = KdfParams::INSECURE_TEST;
        let current = Keyring {
            params: KdfParams {
                m_cost_kib: old.m_cost_kib * 2,
                t_cost: old.t_cost * 2,
                p_cost: 1,
            },
            floor: KdfFloor::NONE,
        };
        let keys = DeviceKeys::generate(&mut OsRng);
        let weak = keys.seal("correct horse", old, &mut OsRng).unwrap();
        store.put_setting(Keyring::SETTING, &weak).await.unwrap();

        assert!(current
            .unlock(&store, "wrong horse", &mut OsRng)
            .await
            .is_err());
        assert_eq!(
            store.setting(Keyring::SETTING).await.unwrap(),
            Some(weak.clone())
        );
        let opened = current
            .unlock(&store, "correct horse", &mut OsRng)
            .await
            .unwrap();
        assert_eq!(opened.did(), keys.did());
        let resealed = store.setting(Keyring::SETTING).await.unwrap().unwrap();
        assert_eq!(Keystore::params(&resealed).unwrap(), current.params);
        // The old blob no longer opens under a floor above its costs; the new one does.
        let floor = KdfFloor {
            min_m_cost_kib: current.params.m_cost_kib,
            min_work: 0,
        };
        assert!(DeviceKeys::open("correct horse", &weak, floor).is_err());
        assert_eq!(
            DeviceKeys::open("correct horse", &resealed, floor)
                .unwrap()
                .did(),
            keys.did()
        );
        // Nothing to migrate the second time.
        current
            .unlock(&store, "correct horse", &mut OsRng)
            .await
            .unwrap();
        assert_eq!(
            store.setting(Keyring::SETTING).await.unwrap(),
            Some(resealed)
        );
        assert!(KdfParams::ONLINE_FLOOR.weaker_than(&KdfParams::DEFAULT));
        assert!(Keyring::RECOMMENDED.floor.admits(&KdfParams::ONLINE_FLOOR));
    });
}

#[test]
fn content_of_a_kind_this_build_does_not_know_is_kept_and_not_misread() {
    block_on(async {
        let mut laptop = new_person().await;
        let mut phone = join(&mut laptop, &mut [], T0 + 10).await;
        let notes = bound_chain(&mut laptop, &mut [&mut phone], T0 + 20).await;
        // A newer client writes a kind of content this build has no name for, about a
        // record, next to a plain message.
        let record = phone
            .write_to(
                &notes,
                &Envelope::message(*b"plain"),
                vec![],
                T0 + 30,
                &mut OsRng,
            )
            .await
            .unwrap();
        let newer = Envelope {
            kind: ContentKind::Other(99),
            target: Some(record),
            payload: b"from the future".to_vec(),
        };
        phone
            .write_to(&notes, &newer, vec![], T0 + 31, &mut OsRng)
            .await
            .unwrap();
        deliver(&phone.take_outbox(), &mut [&mut laptop]).await;
        let shown: Vec<Envelope> = laptop
            .messages_of(&notes)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.content.unwrap())
            .collect();
        assert_eq!(shown, vec![Envelope::message(*b"plain"), newer]);
    });
}

#[test]
fn rotated_keys_are_kept_in_the_store_and_a_reopen_writes_with_them() {
    block_on(async {
        let store = MemoryStore::new();
        let keys = TEST_KEYRING
            .unlock(&store, "correct horse", &mut OsRng)
            .await
            .unwrap();
        let mut account = Account::create(store.clone(), keys, person("Ada"), T0, &mut OsRng)
            .await
            .unwrap();
        let chain = account.chain();
        // A wrong passphrase rotates nothing.
        let before = account.identity().chain().len();
        assert!(matches!(
            account
                .rotate_kept(&TEST_KEYRING, "wrong horse", T0 + 1, &mut OsRng)
                .await,
            Err(ClientError::Identity(IdentityError::Keystore(
                KeystoreError::WrongPassphrase
            )))
        ));
        assert_eq!(account.identity().chain().len(), before);
        account
            .rotate_kept(&TEST_KEYRING, "correct horse", T0 + 1, &mut OsRng)
            .await
            .unwrap();
        let rotated = account.identity().device().signing().public();
        drop(account);
        // Reopened from the store (a reload): the rotated keys, current, and it writes.
        let mut again = Account::open_sealed(
            store.clone(),
            chain,
            &TEST_KEYRING,
            "correct horse",
            &mut OsRng,
        )
        .await
        .unwrap();
        assert_eq!(again.identity().device().signing().public(), rotated);
        assert!(again.identity().is_current_device());
        again
            .write(&Envelope::message(*b"after"), vec![], T0 + 2, &mut OsRng)
            .await
            .unwrap();
        // The device's shared keys are untouched: its other identities still open with them.
        let shared = TEST_KEYRING
            .unlock(&store, "correct horse", &mut OsRng)
            .await
            .unwrap();
        assert_ne!(shared.signing().public(), rotated);

        // A rotation the page died in the middle of: next keys saved, rotation written, the
        // keys not yet replaced. The reopen finishes it.
        let pending = again.identity().device().rotated(&mut OsRng);
        let sealed = pending
            .seal("correct horse", TEST_KEYRING.params, &mut OsRng)
            .unwrap();
        store
            .put_setting(&Keyring::next_setting(&chain), &sealed)
            .await
            .unwrap();
        drop(again);
        let reopened = Account::open_sealed(
            store.clone(),
            chain,
            &TEST_KEYRING,
            "correct horse",
            &mut OsRng,
        )
        .await
        .unwrap();
        // The chain never got that rotation: the pending keys are dropped, the current kept.
        assert_eq!(reopened.identity().device().signing().public(), rotated);
        assert!(reopened.identity().is_current_device());
        assert_eq!(
            store.setting(&Keyring::next_setting(&chain)).await.unwrap(),
            Some(Vec::new())
        );

        // Again, and this time the page dies after the rotation is written: the reopen
        // takes the new keys.
        let current = reopened.identity().device().to_secret_bytes();
        drop(reopened);
        let pending = DeviceKeys::from_secret_bytes(&current)
            .unwrap()
            .rotated(&mut OsRng);
        let next = pending.signing().public();
        let sealed = pending
            .seal("correct horse", TEST_KEYRING.params, &mut OsRng)
            .unwrap();
        store
            .put_setting(&Keyring::next_setting(&chain), &sealed)
            .await
            .unwrap();
        let mut writer = Identity::open(
            store.clone(),
            chain,
            DeviceKeys::from_secret_bytes(&current).unwrap(),
        )
        .await
        .unwrap();
        writer.rotate_to(pending, T0 + 3, &mut OsRng).await.unwrap();
        drop(writer);
        let finished = Account::open_sealed(
            store.clone(),
            chain,
            &TEST_KEYRING,
            "correct horse",
            &mut OsRng,
        )
        .await
        .unwrap();
        assert_eq!(finished.identity().device().signing().public(), next);
        assert!(finished.identity().is_current_device());
    });
}

/// A person recovered on a new browser with the recovery code: the new device's keys are
/// fresh, kept sealed under its passphrase, and a reload opens with them; the old devices,
/// once the recovery reaches them, are removed; a wrong passphrase writes nothing.
#[test]
fn a_recovery_on_a_new_device_keeps_its_keys_and_removes_the_old_devices() {
    block_on(async {
        let recovery = RecoveryKey::generate(&mut OsRng);
        let keys = TEST_KEYRING
            .unlock(&MemoryStore::new(), "pass", &mut OsRng)
            .await
            .unwrap();
        let founding = Founding {
            recovery: Some(recovery.public()),
            ..person("Ada")
        };
        let mut laptop = Account::create(MemoryStore::new(), keys, founding, T0, &mut OsRng)
            .await
            .unwrap();
        laptop.take_outbox();
        // The new browser fetched the identity chain (as a node would) and already keeps keys
        // of its own under its passphrase.
        let browser = MemoryStore::new();
        let own = TEST_KEYRING
            .unlock(&browser, "new browser", &mut OsRng)
            .await
            .unwrap();
        let history = laptop.identity().blocks().await.unwrap();
        let mut replica = Account::replica(browser.clone(), history[0].clone(), own)
            .await
            .unwrap();
        replica
            .receive(&laptop.chain(), history.iter().map(|b| b.bytes()))
            .await
            .unwrap();
        drop(replica);
        let chain = laptop.chain();
        let next = RecoveryKey::generate(&mut OsRng);
        let wrong = Account::recover_kept(
            browser.clone(),
            chain,
            &TEST_KEYRING,
            "wrong",
            &recovery,
            next.public(),
            T0 + 1,
            &mut OsRng,
        )
        .await;
        assert!(matches!(
            wrong,
            Err(ClientError::Identity(IdentityError::Keystore(
                KeystoreError::WrongPassphrase
            )))
        ));
        let before = laptop.identity().chain().len();
        let mut recovered = Account::recover_kept(
            browser.clone(),
            chain,
            &TEST_KEYRING,
            "new browser",
            &recovery,
            next.public(),
            T0 + 1,
            &mut OsRng,
        )
        .await
        .unwrap();
        let device = recovered.identity().device().did().to_owned();
        assert!(recovered.identity().is_current_device());
        assert_eq!(
            recovered.identity().state().recovery_key(),
            Some(next.public())
        );
        deliver(&recovered.take_outbox(), &mut [&mut laptop]).await;
        assert!(laptop.identity().chain().len() > before);
        assert!(!laptop.identity().is_current_device());
        assert!(laptop
            .write(&Envelope::message(*b"late"), vec![], T0 + 2, &mut OsRng)
            .await
            .is_err());
        drop(recovered);
        let reopened =
            Account::open_sealed(browser, chain, &TEST_KEYRING, "new browser", &mut OsRng)
                .await
                .unwrap();
        assert_eq!(reopened.identity().device().did(), device);
        assert!(reopened.identity().is_current_device());
    });
}
