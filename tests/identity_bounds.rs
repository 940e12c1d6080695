//! Bounded cost under attack: blocks every replica must admit — a removed device's ops on
//! old parents, join requests with an invitation that was used since — are folded in where
//! they arrive, each for a lookup, never by folding the whole chain again; and join
//! requests are checked for use in the fold and listed a bounded number at a time.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use endra::identity::state::{MAX_PENDING_REQUESTS, MAX_REQUESTS_PER_INVITATION};
use endra::identity::{
    DeviceKeys, IdentityState, Invitation, MemberEntry, Op, Policy, Rejection, Role, IDENTITY_TOPIC,
};
use endra::walytis::{Block, BlockDraft, BlockId};
use futures_executor::block_on;
use rand_core::OsRng;

mod common;

use common::identity::{add_device, blocks, keys_of, new_person, Id, HOUR, T0};

/// `op` signed by `key` on `parent` alone.
fn on(chain: BlockId, key: &DeviceKeys, parent: &Block, op: &Op) -> Block {
    BlockDraft {
        chain: Some(chain),
        parents: vec![parent.id()],
        height: parent.height() + 1,
        time: T0 + 1,
        topics: vec![IDENTITY_TOPIC.into()],
        body: op.encode(),
    }
    .sign(key.signing().as_dalek())
    .unwrap()
}

/// The same document and the same rejections as a fold of the whole chain.
async fn assert_fresh(identity: &Id) {
    let fresh = IdentityState::resolve(&blocks(identity).await).unwrap();
    assert_eq!(endra::identity::document(&fresh), identity.document());
    assert_eq!(fresh.rejected(), identity.state().rejected());
    assert_eq!(
        fresh.pending_requests().collect::<Vec<_>>(),
        identity.state().pending_requests().collect::<Vec<_>>()
    );
}

/// A removed phone signs 100 ops, each on another block from before its removal: every
/// replica admits each (its own history lists the phone), and the laptop drops each, by the
/// removal, without folding its chain again.
#[test]
fn a_removed_devices_ops_on_old_parents_are_dropped_without_a_fold_of_the_chain() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let phone = add_device(&mut laptop, T0).await;
        let joined = blocks(&laptop).await.len();
        for i in 0..40 {
            let policy = Policy {
                rekey_every: Some(HOUR + i),
                keep_epochs: None,
            };
            laptop.set_policy(policy, T0 + 2).await.unwrap();
        }
        laptop
            .remove(phone.device().did(), T0 + 3, &mut OsRng)
            .await
            .unwrap();
        let all = blocks(&laptop).await;
        let removal = all
            .iter()
            .find(|b| matches!(Op::decode(b.body()), Ok(Op::Remove { .. })))
            .unwrap()
            .id();
        let relays = laptop.state().relays().to_vec();
        let folds = laptop.full_folds();
        let phone_keys = keys_of(&phone);
        for i in 0..100 {
            let parent = &all[joined + i % 40];
            let op = Op::Relays {
                relays: vec![format!("/dns4/thief{i}.example/tcp/443/wss")],
            };
            let block = on(laptop.chain().id(), &phone_keys, parent, &op);
            let report = laptop.insert([block.bytes()]).await.unwrap();
            assert_eq!(report.accepted.len(), 1, "admitted by its own history");
            assert_eq!(
                laptop.state().rejection(&block.id()),
                Some(&Rejection::RevokedConcurrently { by: removal })
            );
        }
        assert_eq!(
            laptop.full_folds(),
            folds,
            "not one fold of the whole chain"
        );
        assert_eq!(laptop.state().relays(), relays.as_slice());
        assert_fresh(&laptop).await;
    });
}

/// Join requests written on parents from before their invitation was used are refused by
/// the fold as replays, without a fold of the chain; requests with an unused invitation are
/// listed at most a few per invitation, any of them can be approved, and the approval
/// refuses the others.
#[test]
fn join_requests_on_old_parents_are_checked_for_use_and_listed_a_few_at_a_time() {
    block_on(async {
        let mut laptop = new_person("Ada").await;
        let chain = laptop.chain().id();
        let before = blocks(&laptop).await;
        // An invitation used by a phone; its code leaked to Mallory.
        let leaked = laptop.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
        let phone_keys = DeviceKeys::generate(&mut OsRng);
        let request = |keys: &DeviceKeys, invitation: &Invitation| Op::Request {
            invitation: invitation.clone(),
            member: MemberEntry {
                did: keys.did().to_owned(),
                devices: vec![keys.entry()],
            },
            anchor: None,
        };
        let tip = before.last().unwrap().clone();
        let phone_request = on(chain, &phone_keys, &tip, &request(&phone_keys, &leaked));
        laptop.insert([phone_request.bytes()]).await.unwrap();
        laptop
            .approve(phone_request.id(), T0 + 2, &mut OsRng)
            .await
            .unwrap();
        let folds = laptop.full_folds();
        // Mallory writes requests with it on every block from before it was used.
        for (i, parent) in before.iter().enumerate() {
            let mallory = DeviceKeys::generate(&mut OsRng);
            let block = on(chain, &mallory, parent, &request(&mallory, &leaked));
            let report = laptop.insert([block.bytes()]).await.unwrap();
            assert_eq!(
                report.accepted.len(),
                1,
                "request {i} admitted by its history"
            );
            assert_eq!(
                laptop.state().rejection(&block.id()),
                Some(&Rejection::InvitationReplayed)
            );
        }
        assert_eq!(laptop.full_folds(), folds);
        assert_eq!(laptop.state().pending_requests().count(), 0);

        // An unused invitation, leaked: ten requests with it, on old parents.
        let unused = laptop.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
        let mut written = Vec::new();
        for i in 0..10 {
            let mallory = DeviceKeys::generate(&mut OsRng);
            let parent = &before[i % before.len()];
            let block = on(chain, &mallory, parent, &request(&mallory, &unused));
            laptop.insert([block.bytes()]).await.unwrap();
            written.push(block.id());
        }
        assert_eq!(laptop.full_folds(), folds);
        let listed: Vec<BlockId> = laptop.state().pending_requests().map(|r| r.block).collect();
        assert_eq!(listed.len(), MAX_REQUESTS_PER_INVITATION);
        // Listed in chain order: the first ones.
        let mut order: Vec<(u64, BlockId)> = Vec::new();
        for id in &written {
            let entry = laptop.chain().block(id).await.unwrap().unwrap();
            order.push((entry.block.height(), *id));
        }
        order.sort_unstable();
        let first: Vec<BlockId> = order.iter().take(listed.len()).map(|(_, id)| *id).collect();
        assert_eq!(listed, first);
        // The admin approves one that is not listed; the others are refused.
        let chosen = order.last().unwrap().1;
        laptop.approve(chosen, T0 + 3, &mut OsRng).await.unwrap();
        assert_eq!(laptop.state().pending_requests().count(), 0);
        for id in written.iter().filter(|id| **id != chosen) {
            assert_eq!(
                laptop.state().rejection(id),
                Some(&Rejection::InvitationReplayed)
            );
        }
        assert_eq!(laptop.state().devices().count(), 3);

        // More requests than the list holds: as many invitations, each with four.
        let invitations = MAX_PENDING_REQUESTS / MAX_REQUESTS_PER_INVITATION + 1;
        for _ in 0..invitations {
            let invitation = laptop.invite(Role::Admin, T0 + HOUR, &mut OsRng).unwrap();
            for _ in 0..MAX_REQUESTS_PER_INVITATION {
                let joiner = DeviceKeys::generate(&mut OsRng);
                let block = on(chain, &joiner, &before[0], &request(&joiner, &invitation));
                laptop.insert([block.bytes()]).await.unwrap();
            }
        }
        assert_eq!(
            laptop.state().pending_requests().count(),
            MAX_PENDING_REQUESTS
        );
        assert_eq!(laptop.full_folds(), folds);
        assert_fresh(&laptop).await;
    });
}
