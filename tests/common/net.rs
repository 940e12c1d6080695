//! Helpers for tests and benches of the libp2p shell: nodes over TCP on 127.0.0.1.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use endra::net::{native_swarm, Node, NodeConfig, NodeEvent, NodeHandle};
use endra::store::MemoryStore;
use endra::walytis::{BlockId, Chain};
use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use libp2p::{identity, Multiaddr};

/// How long a wait for a node's event may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running node, its event stream and its store.
pub struct Running {
    pub handle: NodeHandle,
    pub events: UnboundedReceiver<NodeEvent>,
    pub store: MemoryStore,
}

/// Runs `test` on a current-thread runtime with a local task set (nodes are `!Send`).
pub fn run_local<F: Future>(test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, test)
}

/// A new chain in a new memory store, created by device `seed`.
pub async fn new_chain(seed: u8, time: u64) -> (MemoryStore, BlockId) {
    let store = MemoryStore::new();
    let chain = Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &super::key(seed),
        time,
        vec![],
        b"g".to_vec(),
    )
    .await
    .expect("create")
    .id();
    (store, chain)
}

pub async fn start(store: MemoryStore, seed: u8, config: NodeConfig) -> Running {
    start_with_rules(store, seed, config, endra::identity::rules()).await
}

/// [`start`] with other rules than Endra's.
pub async fn start_with_rules(
    store: MemoryStore,
    seed: u8,
    config: NodeConfig,
    rules: endra::walytis::Rules,
) -> Running {
    let swarm = native_swarm(identity::Keypair::generate_ed25519(), &config)
        .await
        .expect("swarm");
    let (node, handle, events) = Node::new(swarm, store.clone(), rules, config);
    let node = node.with_device_key(super::key(seed));
    tokio::task::spawn_local(node.run());
    Running {
        handle,
        events,
        store,
    }
}

pub async fn listening(node: &mut Running) -> Multiaddr {
    node.handle
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .expect("listen");
    loop {
        if let Some(NodeEvent::Listening(address)) = node.events.next().await {
            return address.with_p2p(node.handle.peer_id()).expect("p2p");
        }
    }
}

/// A relay node (`config` should set `relay_server`) listening on a free TCP port and
/// announcing that address, so it can hold circuit reservations. Returns it with the address.
pub async fn start_relay(seed: u8, config: NodeConfig) -> (Running, Multiaddr) {
    let mut relay = start(MemoryStore::new(), seed, config).await;
    let address = listening(&mut relay).await;
    relay.handle.add_external_address(address.clone());
    (relay, address)
}

/// The IDs of `chain`'s blocks in `store`, in chain order.
pub async fn order(store: &MemoryStore, chain: BlockId) -> Vec<BlockId> {
    let chain = Chain::open(store.clone(), &endra::identity::rules(), chain)
        .await
        .expect("open");
    let query = endra::walytis::Query {
        limit: usize::MAX,
        ..endra::walytis::Query::default()
    };
    let blocks = chain.blocks(query).await.expect("order");
    blocks.into_iter().map(|e| e.block.id()).collect()
}

/// Waits until the node reports `count` blocks on `chain`.
pub async fn count_reaches(node: &mut Running, chain: BlockId, count: u64) {
    let wait = async {
        loop {
            match node.events.next().await {
                Some(NodeEvent::Changed {
                    chain: c, count: n, ..
                }) if c == chain && n >= count => return,
                Some(_) => {}
                None => panic!("node stopped"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("chain did not reach {count} blocks"));
}

/// Waits for an event matching `wanted`; returns it.
pub async fn wait_for(node: &mut Running, wanted: impl Fn(&NodeEvent) -> bool) -> NodeEvent {
    let wait = async {
        loop {
            match node.events.next().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => {}
                None => panic!("node stopped"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("event did not come")
}
