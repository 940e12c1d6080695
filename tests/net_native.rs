//! The libp2p shell natively over TCP on 127.0.0.1: two clients and a relay with a mailbox.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(all(feature = "net", not(target_arch = "wasm32")))]

mod common;

use std::time::Duration;

use common::net::{
    count_reaches, listening, new_chain, order, run_local, start, start_relay, start_with_rules,
    wait_for, Running,
};
use common::{FounderOnly, FOUNDER_ONLY_TOPIC};
use endra::net::{NodeConfig, NodeEvent};
use endra::store::{BlockStore, MemoryStore};
use endra::walytis::{BlockId, Chain};
use libp2p::Multiaddr;

/// A relay config without a mailbox: circuits and rendezvous only.
fn no_mailbox_relay() -> NodeConfig {
    NodeConfig {
        mailbox: false,
        relay_server: true,
        ..fast()
    }
}

/// Alice, a client of `alice_relay`, writes `written` blocks before Bob exists; Bob, who
/// knows only `bob_relay` and the chain's ID, must find her, catch up and write 2 blocks
/// that reach her. Asserts that Alice is Bob's direct chain peer and that both hold the same
/// order; returns both nodes for further checks.
async fn alice_writes_then_bob_catches_up(
    alice_relay: Multiaddr,
    bob_relay: Multiaddr,
    written: usize,
) -> (Running, Running) {
    let (alice_store, chain) = new_chain(1, 1).await;
    let mut alice = start(alice_store, 1, fast()).await;
    alice.handle.open(chain, None).await.expect("open");
    alice
        .handle
        .use_relay(alice_relay)
        .await
        .expect("use Alice's relay");
    alice
        .handle
        .append(chain, 2, vec![(b"a".to_vec(), vec![]); written])
        .await
        .expect("append");
    // Alice is reachable once the relay holds a reservation for her.
    wait_for(
        &mut alice,
        |e| matches!(e, NodeEvent::Listening(a) if a.to_string().contains("p2p-circuit")),
    )
    .await;

    // Bob knows only his relay and the chain's ID (its genesis, from an invitation).
    let mut bob = start(MemoryStore::new(), 2, fast()).await;
    bob.handle
        .use_relay(bob_relay)
        .await
        .expect("use Bob's relay");
    bob.handle.open(chain, None).await.expect("join");
    count_reaches(&mut bob, chain, written as u64 + 1).await;
    // Live both ways over the circuit.
    bob.handle
        .append(chain, 3, vec![(b"b".to_vec(), vec![]); 2])
        .await
        .expect("append");
    count_reaches(&mut alice, chain, written as u64 + 3).await;

    let alice_id = alice.handle.peer_id();
    assert!(
        bob.handle
            .peers(chain)
            .await
            .expect("peers")
            .contains(&alice_id),
        "Alice is a direct peer of Bob's chain"
    );
    assert_eq!(
        order(&bob.store, chain).await,
        order(&alice.store, chain).await,
        "same DAG, same order"
    );
    (alice, bob)
}

fn fast() -> NodeConfig {
    NodeConfig {
        tick: Duration::from_millis(500),
        ..NodeConfig::default()
    }
}

#[test]
fn two_clients_sync_through_a_relay_and_meet_offline_through_its_mailbox() {
    run_local(async {
        let relay_config = NodeConfig {
            mailbox: true,
            relay_server: true,
            ..fast()
        };
        let (mut relay, relay_address) = start_relay(100, relay_config).await;

        // Alice creates a chain and writes.
        let (alice_store, chain) = new_chain(1, 1).await;
        let mut alice = start(alice_store, 1, fast()).await;
        alice
            .handle
            .dial(relay_address.clone())
            .await
            .expect("dial");
        alice.handle.open(chain, None).await.expect("open");
        alice
            .handle
            .append(chain, 2, vec![(b"hi".to_vec(), vec![]); 5])
            .await
            .expect("append");

        // Bob joins knowing only the chain ID and the relay.
        let bob_store = MemoryStore::new();
        let mut bob = start(bob_store.clone(), 2, fast()).await;
        bob.handle.dial(relay_address.clone()).await.expect("dial");
        bob.handle.open(chain, None).await.expect("join");
        count_reaches(&mut bob, chain, 6).await;

        // Live: Bob writes, Alice sees it.
        bob.handle
            .append(chain, 3, vec![(b"yo".to_vec(), vec![]); 3])
            .await
            .expect("append");
        count_reaches(&mut alice, chain, 9).await;

        // Offline: Bob leaves, Alice writes and leaves, Bob comes back and finds it all.
        drop(bob);
        alice
            .handle
            .append(chain, 4, vec![(b"later".to_vec(), vec![]); 10])
            .await
            .expect("append");
        count_reaches(&mut relay, chain, 19).await;
        let alice_store = alice.store.clone();
        drop(alice);
        let mut bob = start(bob_store, 2, fast()).await;
        bob.handle.dial(relay_address).await.expect("dial");
        bob.handle.open(chain, None).await.expect("reopen");
        count_reaches(&mut bob, chain, 19).await;

        let reference = order(&alice_store, chain).await;
        assert_eq!(reference.len(), 19);
        assert_eq!(
            order(&bob.store, chain).await,
            reference,
            "same DAG, same order"
        );
        assert_eq!(
            order(&relay.store, chain).await,
            reference,
            "the mailbox holds it all"
        );
    });
}

#[test]
fn clients_of_two_peered_relays_converge() {
    run_local(async {
        let relay_config = || NodeConfig {
            mailbox: true,
            relay_server: true,
            ..fast()
        };
        let (_relay1, relay1_address) = start_relay(101, relay_config()).await;
        let (relay2, relay2_address) = start_relay(102, relay_config()).await;
        // Relays grow past one machine by dialling each other (`endra-relay --peer`).
        relay2
            .handle
            .dial(relay1_address.clone())
            .await
            .expect("peer the relays");

        let (alice_store, chain) = new_chain(1, 1).await;
        let mut alice = start(alice_store, 1, fast()).await;
        alice
            .handle
            .dial(relay1_address)
            .await
            .expect("dial relay 1");
        alice.handle.open(chain, None).await.expect("open");
        alice
            .handle
            .append(chain, 2, vec![(b"a".to_vec(), vec![]); 4])
            .await
            .expect("append");

        let mut bob = start(MemoryStore::new(), 2, fast()).await;
        bob.handle.dial(relay2_address).await.expect("dial relay 2");
        bob.handle
            .open(chain, None)
            .await
            .expect("join through relay 2");
        count_reaches(&mut bob, chain, 5).await;
        bob.handle
            .append(chain, 3, vec![(b"b".to_vec(), vec![]); 2])
            .await
            .expect("append");
        count_reaches(&mut alice, chain, 7).await;

        let reference = order(&alice.store, chain).await;
        assert_eq!(
            order(&bob.store, chain).await,
            reference,
            "same DAG, same order across relays"
        );
    });
}

/// A relay without a mailbox forwards nothing itself: two clients that only share it must
/// find each other by rendezvous and sync over a `/p2p-circuit` connection through it.
#[test]
fn clients_find_each_other_by_rendezvous_and_sync_over_a_circuit() {
    run_local(async {
        let (relay, relay_address) = start_relay(100, no_mailbox_relay()).await;
        let _nodes =
            alice_writes_then_bob_catches_up(relay_address.clone(), relay_address, 5).await;
        assert!(
            relay.store.chains().await.expect("chains").is_empty(),
            "a relay without a mailbox stores nothing"
        );
    });
}

/// The mailbox stops storing a chain at its quota; members still converge directly.
#[test]
fn the_mailbox_keeps_to_its_per_chain_quota() {
    run_local(async {
        let limits = endra::net::Limits {
            mailbox_chain_blocks: 3,
            ..endra::net::Limits::default()
        };
        let relay_config = NodeConfig {
            mailbox: true,
            relay_server: true,
            limits,
            ..fast()
        };
        let (mut relay, relay_address) = start_relay(100, relay_config).await;

        let (alice_store, chain) = new_chain(1, 1).await;
        let alice = start(alice_store, 1, fast()).await;
        alice.handle.open(chain, None).await.expect("open");
        alice
            .handle
            .use_relay(relay_address.clone())
            .await
            .expect("use relay");
        count_reaches(&mut relay, chain, 1).await;
        for n in 0..20u64 {
            alice
                .handle
                .append(chain, 2 + n, vec![(b"a".to_vec(), vec![])])
                .await
                .expect("append");
        }
        let mut bob = start(MemoryStore::new(), 2, fast()).await;
        bob.handle
            .use_relay(relay_address)
            .await
            .expect("use relay");
        bob.handle.open(chain, None).await.expect("join");
        count_reaches(&mut bob, chain, 21).await;
        let held = order(&relay.store, chain).await.len();
        assert!(
            held < 21,
            "the mailbox holds {held} blocks, more than its quota allows"
        );
        assert_eq!(
            order(&bob.store, chain).await,
            order(&alice.store, chain).await
        );
    });
}

/// Subscriptions to chains that do not exist hold a place in the mailbox for a while, not
/// for good, and one peer's hold at most a few: members' chains still get their replica.
#[test]
fn bogus_subscriptions_cannot_fill_the_mailbox() {
    run_local(async {
        let limits = endra::net::Limits {
            mailbox_max_chains: 3,
            mailbox_joins_per_peer: 2,
            mailbox_join_timeout: Duration::from_millis(500),
            ..endra::net::Limits::default()
        };
        let relay_config = NodeConfig {
            mailbox: true,
            relay_server: true,
            limits,
            ..fast()
        };
        let (mut relay, relay_address) = start_relay(100, relay_config).await;
        let mallory = start(MemoryStore::new(), 9, fast()).await;
        mallory
            .handle
            .use_relay(relay_address.clone())
            .await
            .expect("use relay");
        for n in 0..4u8 {
            let bogus = BlockId::of(&[n; 8]);
            mallory.handle.open(bogus, None).await.expect("join");
        }
        // Only two of the four take a place: Alice's chain gets the third.
        let (alice_store, alice_chain) = new_chain(1, 1).await;
        let alice = start(alice_store, 1, fast()).await;
        alice.handle.open(alice_chain, None).await.expect("open");
        alice
            .handle
            .use_relay(relay_address.clone())
            .await
            .expect("use relay");
        count_reaches(&mut relay, alice_chain, 1).await;
        // The bogus joins expire: Bob's chain gets a place later.
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        let (bob_store, bob_chain) = new_chain(2, 1).await;
        let bob = start(bob_store, 2, fast()).await;
        bob.handle.open(bob_chain, None).await.expect("open");
        bob.handle
            .use_relay(relay_address)
            .await
            .expect("use relay");
        count_reaches(&mut relay, bob_chain, 1).await;
        drop((mallory, alice, bob));
    });
}

/// One address gets at most its cap of connections; a closed one frees a place, and the
/// refused client's redial gets it.
#[test]
fn connections_from_one_ip_are_capped() {
    run_local(async {
        let limits = endra::net::Limits {
            max_connections_per_ip: 2,
            ..endra::net::Limits::default()
        };
        let relay_config = NodeConfig {
            mailbox: true,
            relay_server: true,
            limits,
            ..fast()
        };
        let (relay, relay_address) = start_relay(100, relay_config).await;
        let relay_id = relay.handle.peer_id();
        let connected = move |event: &NodeEvent| matches!(event, NodeEvent::Connection { peer, connected: true } if *peer == relay_id);
        let mut clients = Vec::new();
        for seed in 1..=2 {
            let mut client = start(MemoryStore::new(), seed, fast()).await;
            client
                .handle
                .use_relay(relay_address.clone())
                .await
                .expect("use relay");
            wait_for(&mut client, connected).await;
            clients.push(client);
        }
        let mut third = start(MemoryStore::new(), 3, fast()).await;
        third
            .handle
            .use_relay(relay_address.clone())
            .await
            .expect("use relay");
        let refused = tokio::time::timeout(Duration::from_millis(1_500), async {
            wait_for(&mut third, connected).await;
        })
        .await;
        assert!(
            refused.is_err(),
            "a third connection from 127.0.0.1 was accepted"
        );
        clients.remove(0).handle.stop().await.expect("stop");
        wait_for(&mut third, connected).await;
        drop((relay, clients));
    });
}

/// A relay passes a gossiped block on only once it judged it: a hostile member's refused
/// blocks stop at the relay, which disconnects it, and the relay's honest clients never see
/// them, so they never blame (and drop) the relay for them.
#[test]
fn a_relay_does_not_pass_on_blocks_it_refuses() {
    run_local(async {
        let strict = || endra::identity::rules().with(FounderOnly::new(true));
        let relay_config = NodeConfig {
            mailbox: true,
            relay_server: true,
            ..fast()
        };
        let mut relay = start_with_rules(MemoryStore::new(), 100, relay_config, strict()).await;
        let relay_address = listening(&mut relay).await;
        relay.handle.add_external_address(relay_address.clone());
        let relay_id = relay.handle.peer_id();

        let alice_store = MemoryStore::new();
        let chain = Chain::create(
            alice_store.clone(),
            &strict(),
            &common::key(1),
            1,
            vec![FOUNDER_ONLY_TOPIC.into()],
            b"g".to_vec(),
        )
        .await
        .expect("create")
        .id();
        let mut alice = start_with_rules(alice_store, 1, fast(), strict()).await;
        alice.handle.open(chain, None).await.expect("open");
        alice
            .handle
            .use_relay(relay_address.clone())
            .await
            .expect("use relay");
        count_reaches(&mut relay, chain, 1).await;

        let permissive = endra::identity::rules().with(FounderOnly::new(false));
        let mut mallory = start_with_rules(MemoryStore::new(), 9, fast(), permissive).await;
        mallory
            .handle
            .use_relay(relay_address.clone())
            .await
            .expect("use relay");
        mallory.handle.open(chain, None).await.expect("join");
        count_reaches(&mut mallory, chain, 1).await;
        let mallory_id = mallory.handle.peer_id();
        for n in 0..5u64 {
            // Once the relay drops it, its appends stay home.
            let _ = mallory
                .handle
                .append(chain, 10 + n, vec![(b"forged".to_vec(), vec![])])
                .await;
        }
        wait_for(&mut relay, |event| {
            matches!(event, NodeEvent::Connection { peer, connected: false } if *peer == mallory_id)
        })
        .await;

        // Alice still writes through the relay to a new reader.
        let mut bob = start_with_rules(MemoryStore::new(), 2, fast(), strict()).await;
        bob.handle
            .use_relay(relay_address)
            .await
            .expect("use relay");
        bob.handle.open(chain, None).await.expect("join");
        alice
            .handle
            .append(chain, 20, vec![(b"hello".to_vec(), vec![])])
            .await
            .expect("append");
        count_reaches(&mut bob, chain, 2).await;
        let held = Chain::open(bob.store.clone(), &strict(), chain)
            .await
            .expect("open");
        assert_eq!(held.len(), 2, "nothing of Mallory's");
        while let Ok(event) = alice.events.try_recv() {
            assert!(
                !matches!(event, NodeEvent::Connection { peer, connected: false } if peer == relay_id),
                "Alice dropped the relay"
            );
        }
        drop((relay, mallory));
    });
}

/// Rendezvous is shared between peered relays: a client of one relay finds the members of
/// a chain registered at another, although neither relay stores anything, and catches up
/// from them over a `/p2p-circuit` connection.
#[test]
fn clients_of_two_peered_no_mailbox_relays_find_each_other() {
    run_local(async {
        let (relay1, relay1_address) = start_relay(101, no_mailbox_relay()).await;
        let (relay2, relay2_address) = start_relay(102, no_mailbox_relay()).await;
        relay2
            .handle
            .dial(relay1_address.clone())
            .await
            .expect("peer the relays");
        let _nodes = alice_writes_then_bob_catches_up(relay1_address, relay2_address, 7).await;
        for relay in [&relay1, &relay2] {
            assert!(
                relay.store.chains().await.expect("chains").is_empty(),
                "a relay without a mailbox stores nothing"
            );
        }
    });
}

#[test]
fn a_did_resolves_over_the_network_from_the_did_alone() {
    use endra::identity::{
        handle::resolve, parse_identity_did, DeviceKeys, Founding, Identity, Kind,
    };
    use rand_core::OsRng;
    run_local(async {
        let relay_config = NodeConfig {
            mailbox: true,
            relay_server: true,
            ..fast()
        };
        let (_relay, relay_address) = start_relay(100, relay_config).await;

        // Ada's person identity, past its genesis: her device rotated its keys twice.
        let ada_store = MemoryStore::new();
        let founding = Founding {
            kind: Kind::Person,
            name: "Ada".into(),
            relays: vec![relay_address.to_string()],
            founder: None,
            recovery: None,
            anchor: None,
        };
        let mut ada = Identity::create(
            ada_store.clone(),
            DeviceKeys::generate(&mut OsRng),
            founding,
            1,
            &mut OsRng,
        )
        .await
        .expect("create");
        ada.rotate(2, &mut OsRng).await.expect("rotate");
        ada.rotate(3, &mut OsRng).await.expect("rotate again");
        let ada_node = start(ada_store, 1, fast()).await;
        ada_node
            .handle
            .dial(relay_address.clone())
            .await
            .expect("dial");
        ada_node
            .handle
            .open(ada.chain().id(), None)
            .await
            .expect("open");

        // Bob has only the DID (no invitation, no keys) and a relay.
        let did = ada.did();
        let chain = parse_identity_did(&did).expect("did");
        let mut bob = start(MemoryStore::new(), 2, fast()).await;
        bob.handle.dial(relay_address).await.expect("dial");
        bob.handle.open(chain, None).await.expect("open by ID");
        wait_for(
            &mut bob,
            |event| matches!(event, NodeEvent::Synced { chain: c } if *c == chain),
        )
        .await;
        assert!(bob.handle.is_synced(chain).await.expect("synced"));

        let replica = Chain::open(bob.store.clone(), &endra::identity::rules(), chain)
            .await
            .expect("replica");
        assert_eq!(
            replica.len(),
            ada.chain().len(),
            "every block of the identity"
        );
        let state = resolve(&replica).await.expect("resolve");
        assert_eq!(state.did(), did);
        assert_eq!(
            endra::identity::document(&state),
            ada.document(),
            "the document Ada's own device derives, with her current keys"
        );
    });
}

#[test]
fn a_stopped_node_closes_its_connections_and_refuses_further_calls() {
    run_local(async {
        let (mut relay, address) = start_relay(100, no_mailbox_relay()).await;
        let (store, chain) = new_chain(1, 1).await;
        let alice = start(store, 1, fast()).await;
        alice.handle.dial(address.clone()).await.expect("dial");
        let alice_id = alice.handle.peer_id();
        wait_for(
            &mut relay,
            |e| matches!(e, NodeEvent::Connection { peer, connected: true } if *peer == alice_id),
        )
        .await;
        alice.handle.stop().await.expect("stop");
        wait_for(
            &mut relay,
            |e| matches!(e, NodeEvent::Connection { peer, connected: false } if *peer == alice_id),
        )
        .await;
        assert!(matches!(
            alice.handle.open(chain, None).await,
            Err(endra::net::NetError::Stopped)
        ));
        assert!(matches!(
            alice.handle.stop().await,
            Err(endra::net::NetError::Stopped)
        ));
    });
}

#[test]
fn a_node_without_a_device_key_relays_but_refuses_to_write() {
    run_local(async {
        let (store, chain) = new_chain(1, 1).await;
        let config = fast();
        let swarm =
            endra::net::native_swarm(libp2p::identity::Keypair::generate_ed25519(), &config)
                .await
                .expect("swarm");
        let (node, handle, _events) =
            endra::net::Node::new(swarm, store, endra::identity::rules(), config);
        tokio::task::spawn_local(node.run());
        handle.open(chain, None).await.expect("open");
        assert_eq!(
            handle.append(chain, 2, vec![(b"x".to_vec(), vec![])]).await,
            Err(endra::net::NetError::NoDeviceKey)
        );
    });
}
