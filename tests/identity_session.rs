//! Authenticated, encrypted sessions between persons: the sans-IO handshake and frames in
//! memory, then `/endra/session/1` between libp2p nodes over loopback TCP.
//!
//! Every person has their own identity chain; each side resolves the other from its own
//! replica of the other's chain (a [`Directory`] over those replicas). The assertions are
//! what a user would see: who the peer is, the messages, and why a session was refused.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use endra::identity::session::{FRAME_OVERHEAD, MAX_FRAME_LEN};
use endra::identity::{
    Change, DeviceKeys, Directory, Identity, IdentityState, Initiator, Kind, Local, PeerIdentity,
    ReplayGuard, Responder, Session, SessionError,
};
use endra::store::MemoryStore;
use futures_executor::block_on;
use rand_core::OsRng;

mod common;

use common::identity::{add_device, blocks, exchange, founding, new_person, Id, T0};

// ---------------------------------------------------------------------------------------------
// Persons, devices and replicas

/// Someone else's replica of `identity`'s chain (a read-only copy: its own keys are unused).
async fn replica_of(identity: &Id) -> Id {
    let mut replica = Identity::replica(
        MemoryStore::new(),
        blocks(identity).await.remove(0),
        DeviceKeys::generate(&mut OsRng),
    )
    .await
    .unwrap();
    catch_up(&mut replica, identity).await;
    replica
}

/// The replica receives every block `source` holds.
async fn catch_up(replica: &mut Id, source: &Id) {
    let all: Vec<Vec<u8>> = blocks(source)
        .await
        .iter()
        .map(|b| b.bytes().to_vec())
        .collect();
    replica.insert(all.iter()).await.unwrap();
}

/// What one device knows of others: their states, resolved from its replicas.
fn directory(replicas: &[&Id]) -> HashMap<String, IdentityState> {
    replicas
        .iter()
        .map(|r| (r.did(), r.state().clone()))
        .collect()
}

fn copy_keys(keys: &DeviceKeys) -> DeviceKeys {
    DeviceKeys::from_secret_bytes(&keys.to_secret_bytes()).unwrap()
}

/// `keys` under another device DID: what an impostor would present.
fn relabelled(keys: &DeviceKeys, did: &str) -> DeviceKeys {
    let secret = keys.to_secret_bytes();
    // [did, signing, agreement]: skip the array head and the text item of the old DID.
    let (len, head) = match secret[1] & 0x1f {
        n @ 0..=23 => (usize::from(n), 2),
        24 => (usize::from(secret[2]), 3),
        _ => unreachable!("DIDs are shorter than 256 bytes"),
    };
    let mut bytes = vec![0x83, 0x78, u8::try_from(did.len()).unwrap()];
    bytes.extend_from_slice(did.as_bytes());
    bytes.extend_from_slice(&secret[head + len..]);
    DeviceKeys::from_secret_bytes(&bytes).unwrap()
}

fn peer_of(identity: &Id) -> PeerIdentity {
    PeerIdentity {
        identity: identity.did(),
        device: identity.device().did().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The handshake in memory

/// Which side refused, and why.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    ByResponder(SessionError),
    ByInitiator(SessionError),
}

/// The three handshake messages as they travelled.
struct Wire {
    hello: Vec<u8>,
    reply: Vec<u8>,
    finish: Vec<u8>,
}

/// Runs a whole handshake; returns (initiator's session, responder's session).
fn handshake<A: Directory + ?Sized, B: Directory + ?Sized>(
    initiator: Local<'_>,
    initiator_knows: &A,
    responder: Local<'_>,
    responder_knows: &B,
) -> Result<(Session, Session, Wire), Refused> {
    let mut guard = ReplayGuard::default();
    let (start, hello) = Initiator::new(initiator, &mut OsRng);
    let (answer, reply) =
        Responder::new(responder, &hello, responder_knows, &mut guard, &mut OsRng)
            .map_err(Refused::ByResponder)?;
    let (mine, finish) = start
        .on_reply(&reply, initiator_knows, &mut OsRng)
        .map_err(Refused::ByInitiator)?;
    let theirs = answer.on_finish(&finish).map_err(Refused::ByResponder)?;
    Ok((
        mine,
        theirs,
        Wire {
            hello,
            reply,
            finish,
        },
    ))
}

/// `a` sends `message`; returns what `b` reads.
fn talk(a: &mut Session, b: &mut Session, message: &[u8]) -> Vec<u8> {
    let frame = a.seal(message).unwrap();
    assert_eq!(frame.len(), message.len() + FRAME_OVERHEAD);
    if message.len() >= 8 {
        assert!(
            !frame.windows(message.len()).any(|w| w == message),
            "the plaintext does not travel in the clear"
        );
    }
    b.open(&frame).unwrap()
}

/// Alice (one device) and Bob (one device), each with a replica of the other's chain.
struct Pair {
    alice: Id,
    bob: Id,
    /// What Alice's device knows: Bob's chain.
    alice_knows: HashMap<String, IdentityState>,
    /// What Bob's device knows: Alice's chain.
    bob_knows: HashMap<String, IdentityState>,
}

async fn alice_and_bob() -> Pair {
    let alice = new_person("Alice").await;
    let bob = new_person("Bob").await;
    let alice_knows = directory(&[&replica_of(&bob).await]);
    let bob_knows = directory(&[&replica_of(&alice).await]);
    Pair {
        alice,
        bob,
        alice_knows,
        bob_knows,
    }
}

#[test]
fn two_persons_authenticate_each_other_and_talk_both_ways() {
    block_on(async {
        let mut pair = alice_and_bob().await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let alice = Local::new(&alice_did, pair.alice.device());
        let bob = Local::new(&bob_did, pair.bob.device());

        let (mut at_alice, mut at_bob, wire) =
            handshake(alice, &pair.alice_knows, bob, &pair.bob_knows).unwrap();
        // Each knows who is at the other end: the person and the device.
        assert_eq!(at_alice.peer(), &peer_of(&pair.bob));
        assert_eq!(at_bob.peer(), &peer_of(&pair.alice));
        assert_eq!(at_alice.handshake_hash(), at_bob.handshake_hash());
        // Hello and Reply are small; Finish carries the hybrid encapsulation.
        assert!(wire.hello.len() < 400 && wire.reply.len() < 400);
        assert!(wire.finish.len() > 1100 && wire.finish.len() < MAX_FRAME_LEN);

        // Both ways, several messages each, in order.
        for i in 0..5 {
            let to_bob = format!("hello Bob, #{i}");
            assert_eq!(
                talk(&mut at_alice, &mut at_bob, to_bob.as_bytes()),
                to_bob.as_bytes()
            );
            let to_alice = format!("hi Alice, re #{i}");
            assert_eq!(
                talk(&mut at_bob, &mut at_alice, to_alice.as_bytes()),
                to_alice.as_bytes()
            );
        }
        assert_eq!(talk(&mut at_alice, &mut at_bob, b""), b"");
        let big = vec![7u8; MAX_FRAME_LEN - FRAME_OVERHEAD];
        assert_eq!(talk(&mut at_bob, &mut at_alice, &big), big);

        // A second session between the same devices has other keys.
        let (mut again, _, _) = handshake(alice, &pair.alice_knows, bob, &pair.bob_knows).unwrap();
        assert_ne!(again.handshake_hash(), at_alice.handshake_hash());
        // Its frame with the counter Bob's first session is due (6) still does not open there.
        let frame = (0..7)
            .map(|_| again.seal(b"from the second session").unwrap())
            .last()
            .unwrap();
        assert_eq!(at_bob.open(&frame), Err(SessionError::FrameTampered));

        // Alice's second device speaks for the same person; Bob learns of it from her chain.
        let alice_phone = add_device(&mut pair.alice, T0 + 10).await;
        let phone = Local::new(&alice_did, alice_phone.device());
        assert_eq!(
            handshake(phone, &pair.alice_knows, bob, &pair.bob_knows)
                .err()
                .unwrap(),
            Refused::ByResponder(SessionError::UnknownDevice {
                identity: alice_did.clone(),
                device: alice_phone.device().did().to_owned(),
            }),
            "Bob's replica does not list the phone yet"
        );
        pair.bob_knows = directory(&[&replica_of(&pair.alice).await]);
        let (_, at_bob, _) = handshake(phone, &pair.alice_knows, bob, &pair.bob_knows).unwrap();
        assert_eq!(at_bob.peer().identity, alice_did);
        assert_eq!(at_bob.peer().device, alice_phone.device().did());
    });
}

#[test]
fn the_initiator_refuses_a_responder_it_did_not_want() {
    block_on(async {
        let pair = alice_and_bob().await;
        let carol = new_person("Carol").await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let alice = Local::new(&alice_did, pair.alice.device());
        let bob = Local::new(&bob_did, pair.bob.device());
        let mut guard = ReplayGuard::default();
        let (start, hello) = Initiator::new(alice, &mut OsRng);
        let start = start.expect_identity(&carol.did());
        let (_, reply) =
            Responder::new(bob, &hello, &pair.bob_knows, &mut guard, &mut OsRng).unwrap();
        assert_eq!(
            start
                .on_reply(&reply, &pair.alice_knows, &mut OsRng)
                .unwrap_err(),
            SessionError::UnexpectedPeer {
                expected: carol.did(),
                actual: bob_did.clone(),
            }
        );
    });
}

#[test]
fn an_impostor_cannot_speak_for_someone_else() {
    block_on(async {
        let pair = alice_and_bob().await;
        let carol = new_person("Carol").await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let bob = Local::new(&bob_did, pair.bob.device());
        // Bob knows Alice and Carol.
        let bob_knows = directory(&[&replica_of(&pair.alice).await, &replica_of(&carol).await]);
        let alice_device = pair.alice.device().did().to_owned();

        // Mallory's own device claims Alice's DID: no such device of Alice.
        let mallory = DeviceKeys::generate(&mut OsRng);
        assert_eq!(
            handshake(
                Local::new(&alice_did, &mallory),
                &pair.alice_knows,
                bob,
                &bob_knows
            )
            .err(),
            Some(Refused::ByResponder(SessionError::UnknownDevice {
                identity: alice_did.clone(),
                device: mallory.did().to_owned(),
            }))
        );

        // Mallory names Alice's device too, but can only present her own key.
        let posing = relabelled(&mallory, &alice_device);
        assert_eq!(
            handshake(
                Local::new(&alice_did, &posing),
                &pair.alice_knows,
                bob,
                &bob_knows
            )
            .err(),
            Some(Refused::ByResponder(SessionError::KeyNotListed {
                device: alice_device.clone(),
            }))
        );

        // Carol's real device claims to be Alice: a device of another identity.
        assert_eq!(
            handshake(
                Local::new(&alice_did, carol.device()),
                &pair.alice_knows,
                bob,
                &bob_knows
            )
            .err(),
            Some(Refused::ByResponder(SessionError::UnknownDevice {
                identity: alice_did.clone(),
                device: carol.device().did().to_owned(),
            }))
        );

        // A responder posing as Bob is refused by the initiator the same way.
        let alice = Local::new(&alice_did, pair.alice.device());
        let fake_bob = relabelled(&mallory, pair.bob.device().did());
        assert_eq!(
            handshake(
                alice,
                &pair.alice_knows,
                Local::new(&bob_did, &fake_bob),
                &bob_knows
            )
            .err(),
            Some(Refused::ByInitiator(SessionError::KeyNotListed {
                device: pair.bob.device().did().to_owned(),
            }))
        );

        // Someone Bob has never heard of, and a DID that is no DID.
        let dave = new_person("Dave").await;
        assert_eq!(
            handshake(
                Local::new(&dave.did(), dave.device()),
                &pair.alice_knows,
                bob,
                &bob_knows
            )
            .err(),
            Some(Refused::ByResponder(SessionError::UnknownIdentity(
                dave.did()
            )))
        );
        assert_eq!(
            handshake(
                Local::new("did:web:alice.example", pair.alice.device()),
                &pair.alice_knows,
                bob,
                &bob_knows
            )
            .err(),
            Some(Refused::ByResponder(SessionError::InvalidDid(
                "did:web:alice.example".into()
            )))
        );
    });
}

#[test]
fn a_removed_device_is_refused_afterwards() {
    block_on(async {
        let mut pair = alice_and_bob().await;
        let mut phone = add_device(&mut pair.alice, T0 + 10).await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let bob = Local::new(&bob_did, pair.bob.device());
        let mut bobs_replica = replica_of(&pair.alice).await;
        let phone_did = phone.device().did().to_owned();

        // Before the removal the phone speaks for Alice.
        let bob_knows = directory(&[&bobs_replica]);
        let (_, at_bob, _) = handshake(
            Local::new(&alice_did, phone.device()),
            &pair.alice_knows,
            bob,
            &bob_knows,
        )
        .unwrap();
        assert_eq!(at_bob.peer().device, phone_did);

        // The laptop removes the phone; Bob's replica catches up.
        pair.alice
            .remove(&phone_did, T0 + 20, &mut OsRng)
            .await
            .unwrap();
        exchange(&mut [&mut pair.alice, &mut phone]).await;
        catch_up(&mut bobs_replica, &pair.alice).await;
        let bob_knows = directory(&[&bobs_replica]);
        let removed = SessionError::RemovedDevice {
            identity: alice_did.clone(),
            device: phone_did.clone(),
        };
        // Initiating or answering, the phone is refused.
        assert_eq!(
            handshake(
                Local::new(&alice_did, phone.device()),
                &pair.alice_knows,
                bob,
                &bob_knows
            )
            .err(),
            Some(Refused::ByResponder(removed.clone()))
        );
        assert_eq!(
            handshake(
                bob,
                &bob_knows,
                Local::new(&alice_did, phone.device()),
                &pair.alice_knows
            )
            .err(),
            Some(Refused::ByInitiator(removed))
        );
        // The laptop still is Alice.
        let (_, at_bob, _) = handshake(
            Local::new(&alice_did, pair.alice.device()),
            &pair.alice_knows,
            bob,
            &bob_knows,
        )
        .unwrap();
        assert_eq!(at_bob.peer(), &peer_of(&pair.alice));
    });
}

#[test]
fn a_rotated_out_key_is_refused_and_the_rotated_in_key_works() {
    block_on(async {
        let mut pair = alice_and_bob().await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let bob = Local::new(&bob_did, pair.bob.device());
        let old = copy_keys(pair.alice.device());
        let mut bobs_replica = replica_of(&pair.alice).await;

        pair.alice.rotate(T0 + 5, &mut OsRng).await.unwrap();
        catch_up(&mut bobs_replica, &pair.alice).await;
        let bob_knows = directory(&[&bobs_replica]);

        // The old key, under the same device DID, no longer speaks for Alice.
        let Some(Refused::ByResponder(SessionError::RevokedKey { device, by })) = handshake(
            Local::new(&alice_did, &old),
            &pair.alice_knows,
            bob,
            &bob_knows,
        )
        .err() else {
            panic!("the rotated-out key was not refused as revoked");
        };
        assert_eq!(device, old.did());
        assert!(
            bobs_replica
                .state()
                .changes()
                .iter()
                .any(|c| c.block == by && matches!(c.change, Change::Rotated { .. })),
            "revoked by the rotation in Alice's chain"
        );

        // The new key does, and the device is the same device.
        let (mut at_alice, mut at_bob, _) = handshake(
            Local::new(&alice_did, pair.alice.device()),
            &pair.alice_knows,
            bob,
            &bob_knows,
        )
        .unwrap();
        assert_eq!(at_bob.peer().device, old.did());
        assert_eq!(talk(&mut at_alice, &mut at_bob, b"new keys"), b"new keys");
        assert_eq!(talk(&mut at_bob, &mut at_alice, b"got it"), b"got it");
    });
}

#[test]
fn tampered_handshake_messages_are_refused() {
    block_on(async {
        let pair = alice_and_bob().await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let alice = Local::new(&alice_did, pair.alice.device());
        let bob = Local::new(&bob_did, pair.bob.device());

        // One Reply, altered in different places: each run of the initiator is fresh.
        let flip = |bytes: &[u8], at: usize| {
            let mut bytes = bytes.to_vec();
            bytes[at] ^= 0x01;
            bytes
        };
        let reply_for = |hello: &[u8]| {
            let mut guard = ReplayGuard::default();
            Responder::new(bob, hello, &pair.bob_knows, &mut guard, &mut OsRng)
                .unwrap()
                .1
        };
        let (start, hello) = Initiator::new(alice, &mut OsRng);
        let reply = reply_for(&hello);
        let last = reply.len() - 1;
        // The signature's last byte, the ephemeral key, the nonce (just before the ephemeral
        // key's 2-byte head and 32 bytes, and the signature's 2-byte head and 64 bytes).
        let sig_byte = last;
        let ephemeral_byte = last - 66 - 5;
        let nonce_byte = last - 66 - 34 - 5;
        for at in [sig_byte, ephemeral_byte, nonce_byte] {
            let (start, hello) = Initiator::new(alice, &mut OsRng);
            let reply = flip(&reply_for(&hello), at);
            assert_eq!(
                start.on_reply(&reply, &pair.alice_knows, &mut OsRng).err(),
                Some(SessionError::BadSignature),
                "Reply altered at byte {at}"
            );
        }
        // A Reply cut short, a Hello where a Reply is due.
        assert!(matches!(
            Initiator::new(alice, &mut OsRng).0.on_reply(
                &reply[..reply.len() - 10],
                &pair.alice_knows,
                &mut OsRng
            ),
            Err(SessionError::Malformed(_))
        ));
        assert_eq!(
            Initiator::new(alice, &mut OsRng)
                .0
                .on_reply(&hello, &pair.alice_knows, &mut OsRng)
                .err(),
            Some(SessionError::UnexpectedMessage { expected: "Reply" })
        );
        // The untouched Reply still completes (the first initiator was never used).
        assert!(start
            .on_reply(&reply, &pair.alice_knows, &mut OsRng)
            .is_ok());

        // Finish altered in the encapsulation or the signature.
        for at in [20, 600, usize::MAX] {
            let mut guard = ReplayGuard::default();
            let (start, hello) = Initiator::new(alice, &mut OsRng);
            let (answer, reply) =
                Responder::new(bob, &hello, &pair.bob_knows, &mut guard, &mut OsRng).unwrap();
            let (_, finish) = start
                .on_reply(&reply, &pair.alice_knows, &mut OsRng)
                .unwrap();
            let at = at.min(finish.len() - 1);
            assert_eq!(
                answer.on_finish(&flip(&finish, at)).err(),
                Some(SessionError::BadSignature),
                "Finish altered at byte {at}"
            );
        }
        // A Hello altered in its claim is refused before Bob signs anything.
        let (_, hello) = Initiator::new(alice, &mut OsRng);
        let mut guard = ReplayGuard::default();
        assert!(matches!(
            Responder::new(
                bob,
                &flip(&hello, 20),
                &pair.bob_knows,
                &mut guard,
                &mut OsRng
            ),
            Err(SessionError::InvalidDid(_) | SessionError::UnknownIdentity(_))
        ));
    });
}

#[test]
fn tampered_replayed_reordered_and_truncated_frames_are_refused() {
    block_on(async {
        let pair = alice_and_bob().await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let (mut at_alice, mut at_bob, _) = handshake(
            Local::new(&alice_did, pair.alice.device()),
            &pair.alice_knows,
            Local::new(&bob_did, pair.bob.device()),
            &pair.bob_knows,
        )
        .unwrap();
        let first = at_alice.seal(b"first").unwrap();
        let second = at_alice.seal(b"second").unwrap();
        let third = at_alice.seal(b"third").unwrap();
        // A frame reflected back to its sender does not open (the counter is the one due).
        assert_eq!(at_alice.open(&first), Err(SessionError::FrameTampered));

        // Out of order: the second before the first.
        assert_eq!(
            at_bob.open(&second),
            Err(SessionError::FrameOutOfOrder {
                counter: 1,
                expected: 0
            })
        );
        // Altered ciphertext, altered tag, cut short, cut below the header.
        let mut altered = first.clone();
        altered[9] ^= 0x80;
        assert_eq!(at_bob.open(&altered), Err(SessionError::FrameTampered));
        let mut altered = first.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(at_bob.open(&altered), Err(SessionError::FrameTampered));
        assert_eq!(
            at_bob.open(&first[..first.len() - 1]),
            Err(SessionError::FrameTampered)
        );
        assert_eq!(
            at_bob.open(&first[..10]),
            Err(SessionError::FrameTruncated { len: 10 })
        );
        // A counter rewritten to the one due does not open either.
        let mut renumbered = second.clone();
        renumbered[7] = 0;
        assert_eq!(at_bob.open(&renumbered), Err(SessionError::FrameTampered));
        // None of that moved the receiver on: the genuine frames open in order.
        assert_eq!(at_bob.open(&first).unwrap(), b"first");
        assert_eq!(at_bob.open(&second).unwrap(), b"second");
        // Replayed.
        assert_eq!(
            at_bob.open(&first),
            Err(SessionError::FrameReplayed {
                counter: 0,
                expected: 2
            })
        );
        assert_eq!(at_bob.open(&third).unwrap(), b"third");
        // The other way: Alice's receiver was not moved on by the reflected frame.
        let back = at_bob.seal(b"to Alice").unwrap();
        assert_eq!(at_alice.open(&back).unwrap(), b"to Alice");
        // Oversized, both ways.
        assert!(matches!(
            at_alice.seal(&vec![0; MAX_FRAME_LEN]),
            Err(SessionError::TooLong { .. })
        ));
        assert!(matches!(
            at_alice.open(&vec![0; MAX_FRAME_LEN + 1]),
            Err(SessionError::TooLong { .. })
        ));
    });
}

#[test]
fn a_replayed_hello_cannot_complete_a_new_session() {
    block_on(async {
        let pair = alice_and_bob().await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let alice = Local::new(&alice_did, pair.alice.device());
        let bob = Local::new(&bob_did, pair.bob.device());

        // Alice and Bob talk; Mallory records the handshake.
        let mut bobs_guard = ReplayGuard::default();
        let (start, hello) = Initiator::new(alice, &mut OsRng);
        let (answer, reply) =
            Responder::new(bob, &hello, &pair.bob_knows, &mut bobs_guard, &mut OsRng).unwrap();
        let (_, finish) = start
            .on_reply(&reply, &pair.alice_knows, &mut OsRng)
            .unwrap();
        answer.on_finish(&finish).unwrap();

        // Replayed to the same Bob: refused on sight.
        assert_eq!(
            Responder::new(bob, &hello, &pair.bob_knows, &mut bobs_guard, &mut OsRng).err(),
            Some(SessionError::Replayed)
        );
        // Replayed to a Bob that forgot it (restarted): he answers with a fresh challenge,
        // which the recorded Finish does not sign.
        let mut fresh_guard = ReplayGuard::default();
        let (answer, new_reply) =
            Responder::new(bob, &hello, &pair.bob_knows, &mut fresh_guard, &mut OsRng).unwrap();
        assert_ne!(new_reply, reply);
        assert_eq!(
            answer.on_finish(&finish).err(),
            Some(SessionError::BadSignature)
        );
        // The recorded Reply, replayed to a new Hello of Alice's, fails the same way.
        let (start, _) = Initiator::new(alice, &mut OsRng);
        assert_eq!(
            start.on_reply(&reply, &pair.alice_knows, &mut OsRng).err(),
            Some(SessionError::BadSignature)
        );
    });
}

#[test]
fn a_group_did_does_not_speak_as_a_person() {
    block_on(async {
        let pair = alice_and_bob().await;
        let alice = &pair.alice;
        let group = Identity::create(
            MemoryStore::new(),
            copy_keys(alice.device()),
            founding(Kind::Group, "crew", Some(alice.as_member())),
            T0,
            &mut OsRng,
        )
        .await
        .unwrap();
        // Bob holds the group's chain and Alice's: the group lists Alice's device.
        let bob_knows = directory(&[&replica_of(alice).await, &replica_of(&group).await]);
        let bob_did = pair.bob.did();
        let group_did = group.did();
        assert_eq!(
            handshake(
                Local::new(&group_did, alice.device()),
                &pair.alice_knows,
                Local::new(&bob_did, pair.bob.device()),
                &bob_knows
            )
            .err(),
            Some(Refused::ByResponder(SessionError::NotAPerson(group_did)))
        );
    });
}

#[test]
fn a_directory_can_be_a_closure_or_a_list() {
    block_on(async {
        let pair = alice_and_bob().await;
        let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
        let bobs_view = pair.bob_knows.clone();
        let closure = move |did: &str| bobs_view.get(did).cloned();
        let list: Vec<IdentityState> = pair.alice_knows.values().cloned().collect();
        let (at_alice, at_bob, _) = handshake(
            Local::new(&alice_did, pair.alice.device()),
            list.as_slice(),
            Local::new(&bob_did, pair.bob.device()),
            &closure,
        )
        .unwrap();
        assert_eq!(at_alice.peer().identity, bob_did);
        assert_eq!(at_bob.peer().identity, alice_did);
    });
}

// ---------------------------------------------------------------------------------------------
// Over libp2p

#[cfg(feature = "net")]
mod over_libp2p {
    use std::cell::RefCell;
    use std::rc::Rc;

    use futures::channel::mpsc;
    use futures::{AsyncWriteExt, StreamExt};
    use libp2p::PeerId;

    use endra::net::session::{
        accept_session, accept_sessions, open_session, SessionStreamError, MAX_FRAME_BYTES,
        SESSION_PROTOCOL,
    };
    use endra::net::{NodeConfig, NodeEvent};

    use super::common::net::{listening, run_local, start, wait_for, Running, PATIENCE};
    use super::*;

    type Outcome = Result<PeerIdentity, SessionStreamError>;

    /// Bob's side: accepts sessions one handshake at a time, reports each outcome, and
    /// answers every message with "Bob got: <message>" until the other side closes.
    fn serve(
        node: &Running,
        did: String,
        keys: DeviceKeys,
        knows: Rc<RefCell<HashMap<String, IdentityState>>>,
    ) -> mpsc::UnboundedReceiver<Outcome> {
        let mut incoming = accept_sessions(&mut node.handle.streams()).unwrap();
        let (report, outcomes) = mpsc::unbounded();
        tokio::task::spawn_local(async move {
            let directory = move |did: &str| knows.borrow().get(did).cloned();
            let mut replay = ReplayGuard::default();
            while let Some((peer, stream)) = incoming.next().await {
                let local = Local::new(&did, &keys);
                match accept_session(peer, stream, local, &directory, &mut replay).await {
                    Ok(mut session) => {
                        assert_eq!(session.peer_id(), peer);
                        let _ = report.unbounded_send(Ok(session.peer().clone()));
                        tokio::task::spawn_local(async move {
                            while let Ok(message) = session.receive().await {
                                let answer = [b"Bob got: ".as_slice(), &message].concat();
                                if session.send(&answer).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(e) => {
                        let _ = report.unbounded_send(Err(e));
                    }
                }
            }
        });
        outcomes
    }

    async fn next(outcomes: &mut mpsc::UnboundedReceiver<Outcome>) -> Outcome {
        tokio::time::timeout(PATIENCE, outcomes.next())
            .await
            .expect("no session outcome in time")
            .expect("Bob's acceptor stopped")
    }

    /// A node connected to `to`.
    async fn connected(seed: u8, to: &libp2p::Multiaddr, peer: PeerId) -> Running {
        let mut node = start(MemoryStore::new(), seed, NodeConfig::default()).await;
        node.handle.dial(to.clone()).await.unwrap();
        wait_for(
            &mut node,
            |e| matches!(e, NodeEvent::Connection { peer: p, connected: true } if *p == peer),
        )
        .await;
        node
    }

    #[test]
    fn a_session_to_a_node_that_takes_none_is_refused_with_a_typed_error() {
        // Bob's node accepts no sessions: it does not speak `/endra/session/1`. (With lazy
        // negotiation, closing that stream panicked in multistream-select.)
        run_local(async {
            let pair = alice_and_bob().await;
            let mut bob_node = start(MemoryStore::new(), 2, NodeConfig::default()).await;
            let bob_address = listening(&mut bob_node).await;
            let bob_peer = bob_node.handle.peer_id();
            let laptop_node = connected(1, &bob_address, bob_peer).await;
            let refused = tokio::time::timeout(
                PATIENCE,
                open_session(
                    &mut laptop_node.handle.streams(),
                    bob_peer,
                    Local::new(&pair.alice.did(), pair.alice.device()),
                    &pair.alice_knows,
                    None,
                ),
            )
            .await
            .expect("it fails in time")
            .unwrap_err();
            assert!(
                matches!(refused, SessionStreamError::Open(_)),
                "{refused:?}"
            );
        });
    }

    #[test]
    fn two_nodes_open_a_session_and_a_removed_device_is_refused() {
        run_local(async {
            let mut pair = alice_and_bob().await;
            let mut alice_phone = add_device(&mut pair.alice, T0 + 10).await;
            let (alice_did, bob_did) = (pair.alice.did(), pair.bob.did());
            let mut bobs_replica = replica_of(&pair.alice).await;
            let bob_knows = Rc::new(RefCell::new(directory(&[&bobs_replica])));

            let mut bob_node = start(MemoryStore::new(), 2, NodeConfig::default()).await;
            let bob_address = listening(&mut bob_node).await;
            let bob_peer = bob_node.handle.peer_id();
            let mut outcomes = serve(
                &bob_node,
                bob_did.clone(),
                copy_keys(pair.bob.device()),
                bob_knows.clone(),
            );

            // Alice's laptop, on its own node, opens a session to Bob's node.
            let laptop_node = connected(1, &bob_address, bob_peer).await;
            let mut session = open_session(
                &mut laptop_node.handle.streams(),
                bob_peer,
                Local::new(&alice_did, pair.alice.device()),
                &pair.alice_knows,
                Some(&bob_did),
            )
            .await
            .unwrap();
            assert_eq!(session.peer(), &peer_of(&pair.bob));
            assert_eq!(session.peer_id(), bob_peer);
            assert_eq!(next(&mut outcomes).await, Ok(peer_of(&pair.alice)));
            for message in ["hello Bob", "are you there?", "it is Alice"] {
                session.send(message.as_bytes()).await.unwrap();
                assert_eq!(
                    session.receive().await.unwrap(),
                    format!("Bob got: {message}").into_bytes()
                );
            }
            session.close().await.unwrap();

            // Alice's phone works too, until the laptop removes it and Bob hears of it.
            let phone_node = connected(3, &bob_address, bob_peer).await;
            let phone_keys = copy_keys(alice_phone.device());
            let phone = Local::new(&alice_did, &phone_keys);
            let mut session = open_session(
                &mut phone_node.handle.streams(),
                bob_peer,
                phone,
                &pair.alice_knows,
                None,
            )
            .await
            .unwrap();
            assert_eq!(next(&mut outcomes).await, Ok(peer_of(&alice_phone)));
            session.send(b"from the phone").await.unwrap();
            assert_eq!(session.receive().await.unwrap(), b"Bob got: from the phone");
            drop(session);

            let phone_did = alice_phone.device().did().to_owned();
            pair.alice
                .remove(&phone_did, T0 + 20, &mut OsRng)
                .await
                .unwrap();
            exchange(&mut [&mut pair.alice, &mut alice_phone]).await;
            catch_up(&mut bobs_replica, &pair.alice).await;
            *bob_knows.borrow_mut() = directory(&[&bobs_replica]);

            let refused = open_session(
                &mut phone_node.handle.streams(),
                bob_peer,
                phone,
                &pair.alice_knows,
                None,
            )
            .await
            .unwrap_err();
            // The phone sees Bob hang up; Bob knows why.
            assert!(
                matches!(
                    refused,
                    SessionStreamError::Closed | SessionStreamError::Io(_)
                ),
                "{refused:?}"
            );
            assert_eq!(
                next(&mut outcomes).await,
                Err(SessionStreamError::Session(SessionError::RemovedDevice {
                    identity: alice_did.clone(),
                    device: phone_did,
                }))
            );

            // A peer announcing an oversized frame is cut off before Bob buffers it.
            let mut raw = phone_node
                .handle
                .streams()
                .open_stream(bob_peer, SESSION_PROTOCOL)
                .await
                .unwrap();
            let huge = u32::try_from(16 * MAX_FRAME_BYTES).unwrap();
            raw.write_all(&huge.to_be_bytes()).await.unwrap();
            raw.flush().await.unwrap();
            assert_eq!(
                next(&mut outcomes).await,
                Err(SessionStreamError::FrameTooLarge {
                    len: 16 * MAX_FRAME_BYTES,
                    max: MAX_FRAME_BYTES,
                })
            );

            // The laptop's session still works afterwards.
            let mut session = open_session(
                &mut laptop_node.handle.streams(),
                bob_peer,
                Local::new(&alice_did, pair.alice.device()),
                &pair.alice_knows,
                Some(&bob_did),
            )
            .await
            .unwrap();
            assert_eq!(next(&mut outcomes).await, Ok(peer_of(&pair.alice)));
            session.send(b"still me").await.unwrap();
            assert_eq!(session.receive().await.unwrap(), b"Bob got: still me");
        });
    }
}
