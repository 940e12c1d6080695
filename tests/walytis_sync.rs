//! Multi-node sync in one process: a deterministic simulated network drives the sans-IO sync
//! core of several nodes. Every scenario ends by asserting that all nodes hold the identical
//! DAG in the identical order.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::{BTreeSet, VecDeque};

use ed25519_dalek::SigningKey;
use endra::store::{BlockStore, MemoryStore, RedbStore};
use endra::walytis::sync::{
    Input, Message, Output, Peer, Sync, MAX_ORPHAN_BYTES, MAX_ORPHAN_BYTES_PER_PEER,
    ORPHAN_TIMEOUT_MS, SERVED_BYTES_PER_SECOND,
};
use endra::walytis::{Block, BlockDraft, BlockId, Chain, Query, MAX_BLOCK_BYTES};
use futures_executor::block_on;

struct Node<S: BlockStore> {
    sync: Option<Sync<S>>,
    key: SigningKey,
}

/// A simulated network of nodes that all sync one chain.
struct Sim<S: BlockStore> {
    nodes: Vec<Node<S>>,
    links: BTreeSet<(usize, usize)>,
    queue: VecDeque<(usize, usize, Message)>,
    now: u64,
    rng: common::Rng,
    /// Percentage of messages lost in transit.
    drop_percent: usize,
    delivered: usize,
}

impl<S: BlockStore> Sim<S> {
    fn new(genesis: &Block, stores: Vec<S>) -> Self {
        let nodes = stores
            .into_iter()
            .enumerate()
            .map(|(i, store)| Node {
                sync: Some(Sync::new(
                    block_on(Chain::from_genesis(
                        store,
                        &endra::identity::rules(),
                        genesis.clone(),
                    ))
                    .expect("genesis"),
                )),
                key: common::key(i as u8 + 1),
            })
            .collect();
        Sim {
            nodes,
            links: BTreeSet::new(),
            queue: VecDeque::new(),
            now: 1_000,
            rng: common::Rng::new(42),
            drop_percent: 0,
            delivered: 0,
        }
    }

    fn sync(&mut self, node: usize) -> &mut Sync<S> {
        self.nodes[node].sync.as_mut().expect("node is running")
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    fn handle(&mut self, node: usize, input: Input) {
        if self.nodes[node].sync.is_none() {
            return;
        }
        let now = self.now;
        let outputs = block_on(self.sync(node).handle(now, input)).expect("handle");
        self.route(node, outputs);
    }

    fn route(&mut self, from: usize, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send(to, message) => self.send(from, to as usize, message),
                Output::Publish(message) => {
                    for to in 0..self.nodes.len() {
                        if to != from && self.linked(from, to) {
                            self.send(from, to, message.clone());
                        }
                    }
                }
                Output::Disconnect(peer) => self.disconnect(from, peer as usize),
                Output::Refused(..) | Output::Awaiting(_) => {}
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, message: Message) {
        if self.linked(from, to) && self.rng.below(100) >= self.drop_percent {
            // Through the wire codec, as the network shell does.
            let message = Message::decode(&message.encode()).expect("wire round trip");
            self.queue.push_back((from, to, message));
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        if self.links.insert((a.min(b), a.max(b))) {
            self.handle(a, Input::Connected(b as Peer));
            self.handle(b, Input::Connected(a as Peer));
        }
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        if self.links.remove(&(a.min(b), a.max(b))) {
            self.handle(a, Input::Disconnected(b as Peer));
            self.handle(b, Input::Disconnected(a as Peer));
        }
    }

    fn connect_all(&mut self, nodes: &[usize]) {
        for (i, &a) in nodes.iter().enumerate() {
            for &b in &nodes[i + 1..] {
                self.connect(a, b);
            }
        }
    }

    fn write(&mut self, node: usize, count: usize) {
        let key = self.nodes[node].key.clone();
        let now = self.now;
        let items: Vec<_> = (0..count)
            .map(|i| (format!("{node}@{now}#{i}").into_bytes(), vec![]))
            .collect();
        // As the node does: the pushes go out before the blocks are stored.
        let (blocks, outputs) = block_on(self.sync(node).sign(&key, now, &items)).expect("sign");
        self.route(node, outputs);
        block_on(self.sync(node).store_signed(blocks)).expect("store");
    }

    /// Delivers queued messages, in a shuffled interleaving, until none are left.
    fn run(&mut self) {
        while !self.queue.is_empty() {
            // Pick any queued message: links do not keep order across peers.
            let i = self.rng.below(self.queue.len().min(8));
            let (from, to, message) = self.queue.remove(i).expect("queued");
            if !self.linked(from, to) {
                continue;
            }
            self.delivered += 1;
            self.now += 1;
            self.handle(to, Input::Received(from as Peer, message));
        }
    }

    /// One anti-entropy round: time passes, every node ticks, messages flow.
    fn tick(&mut self) {
        self.now += 1_000;
        for node in 0..self.nodes.len() {
            self.handle(node, Input::Tick);
        }
        self.run();
    }

    fn order(&mut self, node: usize) -> Vec<BlockId> {
        let chain = self.sync(node).chain();
        block_on(chain.blocks(Query {
            limit: usize::MAX,
            ..Query::default()
        }))
        .expect("order")
        .into_iter()
        .map(|e| e.block.id())
        .collect()
    }

    /// Asserts every running node in `nodes` has the same blocks in the same order.
    fn assert_converged(&mut self, nodes: &[usize], expected_len: u64) {
        let reference = self.order(nodes[0]);
        assert_eq!(
            reference.len() as u64,
            expected_len,
            "node {} holds every block",
            nodes[0]
        );
        let leaves = self.sync(nodes[0]).chain().leaves().to_vec();
        for &n in &nodes[1..] {
            assert_eq!(
                self.order(n),
                reference,
                "node {n} has the same DAG in the same order"
            );
            assert_eq!(
                self.sync(n).chain().leaves(),
                leaves.as_slice(),
                "node {n} has the same leaves"
            );
        }
    }

    fn converged(&mut self, nodes: &[usize]) -> bool {
        let reference = self.order(nodes[0]);
        nodes[1..].iter().all(|&n| self.order(n) == reference)
    }
}

fn genesis() -> Block {
    BlockDraft {
        chain: None,
        parents: vec![],
        height: 0,
        time: 0,
        topics: vec![],
        body: b"sim".to_vec(),
    }
    .sign(&common::key(200))
    .expect("genesis")
}

fn memory_sim(nodes: usize) -> Sim<MemoryStore> {
    Sim::new(&genesis(), (0..nodes).map(|_| MemoryStore::new()).collect())
}

#[test]
fn five_nodes_with_concurrent_writers_converge() {
    let mut sim = memory_sim(5);
    sim.connect_all(&[0, 1, 2, 3, 4]);
    sim.run();
    let mut written = 0;
    for round in 0..20 {
        // Every node writes before any message of the round is delivered: true concurrency.
        for node in 0..5 {
            let count = 1 + (round + node) % 3;
            sim.write(node, count);
            written += count;
        }
        sim.run();
    }
    sim.assert_converged(&[0, 1, 2, 3, 4], 1 + written as u64);
}

#[test]
fn a_late_joiner_gets_5000_existing_blocks() {
    let mut sim = memory_sim(2);
    for _ in 0..10 {
        sim.write(0, 500);
    }
    sim.run();
    let before = sim.delivered;
    sim.connect(0, 1);
    sim.run();
    sim.assert_converged(&[0, 1], 5001);
    // Batches of up to 512 blocks: a handful of round trips, not one per block.
    let messages = sim.delivered - before;
    assert!(messages < 60, "catch-up took {messages} messages");
}

#[test]
fn a_partition_heals() {
    let mut sim = memory_sim(4);
    sim.connect_all(&[0, 1, 2, 3]);
    sim.run();
    sim.disconnect(0, 2);
    sim.disconnect(0, 3);
    sim.disconnect(1, 2);
    sim.disconnect(1, 3);
    for _ in 0..5 {
        sim.write(0, 3);
        sim.write(1, 2);
        sim.write(2, 4);
        sim.write(3, 1);
        sim.run();
    }
    assert!(
        !sim.converged(&[0, 2]),
        "the two sides diverged during the partition"
    );
    sim.connect(1, 2);
    sim.run();
    for _ in 0..3 {
        sim.tick();
    }
    sim.assert_converged(&[0, 1, 2, 3], 1 + 5 * 10);
}

#[test]
fn thirty_percent_of_messages_lost_still_converges() {
    let mut sim = memory_sim(4);
    sim.drop_percent = 30;
    sim.connect_all(&[0, 1, 2, 3]);
    sim.run();
    for round in 0..15 {
        for node in 0..4 {
            sim.write(node, 1 + (round + node) % 2);
        }
        sim.run();
    }
    let mut ticks = 0;
    while !sim.converged(&[0, 1, 2, 3]) {
        sim.tick();
        ticks += 1;
        assert!(
            ticks < 60,
            "no convergence after {ticks} anti-entropy rounds"
        );
    }
    let written: usize = (0..15)
        .map(|r| (0..4).map(|n| 1 + (r + n) % 2).sum::<usize>())
        .sum();
    sim.drop_percent = 0;
    sim.assert_converged(&[0, 1, 2, 3], 1 + written as u64);
}

#[test]
fn a_node_restarted_from_its_redb_store_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("node{i}.redb")))
        .collect();
    let stores = paths
        .iter()
        .map(|p| RedbStore::open(p).expect("open"))
        .collect();
    let genesis = genesis();
    let mut sim = Sim::new(&genesis, stores);
    sim.connect_all(&[0, 1, 2]);
    sim.write(2, 10);
    sim.run();
    // Node 2 goes down; the others go on writing.
    sim.disconnect(0, 2);
    sim.disconnect(1, 2);
    sim.nodes[2].sync = None;
    sim.write(0, 7);
    sim.write(1, 5);
    sim.run();
    // Node 2 restarts from disk with what it had, then reconnects.
    let store = RedbStore::open(&paths[2]).expect("reopen");
    let chain = block_on(Chain::open(store, &endra::identity::rules(), genesis.id()))
        .expect("chain from disk");
    assert_eq!(chain.len(), 11, "the restarted node kept its blocks");
    sim.nodes[2].sync = Some(Sync::new(chain));
    sim.connect(2, 0);
    sim.run();
    sim.assert_converged(&[0, 1, 2], 1 + 10 + 7 + 5);
}

#[test]
fn writer_and_reader_never_online_together_meet_through_a_mailbox() {
    // Node 0 is the relay's mailbox: it keeps blocks and has no key of anyone's.
    let mut sim = memory_sim(3);
    sim.connect(1, 0);
    sim.write(1, 25);
    sim.run();
    sim.disconnect(1, 0);
    sim.connect(2, 0);
    sim.run();
    sim.assert_converged(&[0, 2], 26);
    sim.write(2, 3);
    sim.run();
    sim.disconnect(2, 0);
    sim.connect(1, 0);
    sim.run();
    sim.assert_converged(&[0, 1, 2], 29);
}

#[test]
fn a_malicious_peer_cannot_make_honest_nodes_store_anything_invalid() {
    let mut sim = memory_sim(3);
    let genesis_id = sim.order(0)[0];
    sim.connect_all(&[0, 1, 2]);
    sim.run();
    sim.write(0, 5);
    sim.run();
    let evil = 2;
    let honest_tip = sim.sync(0).chain().leaves()[0];
    let height = 6;
    // A forged block: signed by one key, claiming another author.
    let mut forged = BlockDraft {
        chain: Some(genesis_id),
        parents: vec![honest_tip],
        height,
        time: 0,
        topics: vec![],
        body: b"forged".to_vec(),
    }
    .sign(&common::key(99))
    .expect("sign")
    .bytes()
    .to_vec();
    let at = forged
        .windows(6)
        .position(|w| w == b"forged")
        .expect("body");
    forged[at] = b'F';
    // A block of another chain, an oversized blob, garbage.
    let foreign = BlockDraft {
        chain: Some(BlockId::of(b"elsewhere")),
        parents: vec![honest_tip],
        height,
        time: 0,
        topics: vec![],
        body: vec![],
    }
    .sign(&common::key(99))
    .expect("sign");
    let oversized = vec![0xa8; 200_000];
    for bad in [
        forged,
        foreign.bytes().to_vec(),
        oversized,
        b"garbage".to_vec(),
    ] {
        sim.handle(
            0,
            Input::Received(evil as Peer, Message::Push { block: bad.clone() }),
        );
        sim.handle(
            1,
            Input::Received(evil as Peer, Message::Blocks { blocks: vec![bad] }),
        );
    }
    // A flood of requests: only a bounded number is served.
    let mut served = 0;
    for _ in 0..1_000 {
        let now = sim.now;
        let outputs = block_on(sim.sync(0).handle(
            now,
            Input::Received(
                evil as Peer,
                Message::Want {
                    ids: vec![honest_tip],
                    known: vec![],
                },
            ),
        ))
        .expect("handle");
        served += outputs
            .iter()
            .filter(|o| matches!(o, Output::Send(_, Message::Blocks { .. })))
            .count();
    }
    assert!(
        served <= 50,
        "served {served} of 1000 requests in one second"
    );
    sim.run();
    assert!(
        !sim.linked(0, evil) && !sim.linked(1, evil),
        "the malicious peer was disconnected"
    );
    // Honest nodes stored nothing of it and still converge with each other.
    sim.write(1, 4);
    sim.run();
    sim.assert_converged(&[0, 1], 1 + 5 + 4);
}

/// A signed block of `chain` whose parent nobody has: it can only wait in the pending set.
fn orphan(chain: BlockId, n: u32, body: usize) -> Vec<u8> {
    BlockDraft {
        chain: Some(chain),
        parents: vec![BlockId::of(&n.to_le_bytes())],
        height: 3,
        time: u64::from(n),
        topics: vec![],
        body: vec![n as u8; body],
    }
    .sign(&common::key(77))
    .expect("orphan")
    .bytes()
    .to_vec()
}

#[test]
fn orphans_are_bounded_per_peer_and_per_chain_and_expire() {
    let mut sim = memory_sim(4);
    let chain = sim.order(0)[0];
    sim.connect_all(&[0, 1, 2, 3]);
    sim.run();
    let (evil, forwarder) = (2, 3);
    // Orphans in the evil peer's own answers: held up to its share, then it is struck out.
    let mut n = 0;
    while sim.linked(0, evil) && n < 1_000 {
        let blocks = (0..10).map(|i| orphan(chain, n + i, 60_000)).collect();
        n += 10;
        sim.handle(0, Input::Received(evil as Peer, Message::Blocks { blocks }));
        let held = sim.sync(0).chain().pending_bytes();
        assert!(held <= MAX_ORPHAN_BYTES_PER_PEER, "{held} bytes held");
    }
    assert!(
        !sim.linked(0, evil),
        "a peer whose orphans pile up is disconnected"
    );
    assert!(n < 200, "disconnected after {n} orphans");
    // Orphans by gossip from a peer that may only forward them: bounded, nobody struck.
    for i in 0..400 {
        let block = orphan(chain, 10_000 + i, 60_000);
        sim.handle(
            0,
            Input::Received(forwarder as Peer, Message::Push { block }),
        );
        let held = sim.sync(0).chain().pending_bytes();
        assert!(held <= 2 * MAX_ORPHAN_BYTES_PER_PEER, "{held} bytes held");
    }
    sim.run();
    assert!(sim.linked(0, forwarder), "a gossip forwarder is not struck");
    // Honest writes still arrive everywhere.
    sim.write(1, 3);
    sim.run();
    sim.assert_converged(&[0, 1, 3], 4);
    // Orphans that never resolve are dropped.
    sim.now += ORPHAN_TIMEOUT_MS;
    sim.tick();
    assert_eq!(
        sim.sync(0).chain().pending_bytes(),
        0,
        "expired orphans dropped"
    );
    assert!(sim.linked(0, forwarder));
    // Many flooding peers: the chain's total holds, and a light peer's orphan survives
    // because the heaviest peer's oldest go first.
    let light = orphan(chain, 99_999, 100);
    let light_id = BlockId::of(&light);
    sim.handle(0, Input::Received(50, Message::Push { block: light }));
    for peer in 10..40u32 {
        for i in 0..50 {
            let block = orphan(chain, 20_000 + peer * 100 + i, 60_000);
            sim.handle(
                0,
                Input::Received(Peer::from(peer), Message::Push { block }),
            );
            let held = sim.sync(0).chain().pending_bytes();
            assert!(held <= MAX_ORPHAN_BYTES, "{held} bytes held");
        }
    }
    assert!(
        sim.sync(0).chain().pending_size(&light_id).is_some(),
        "the light peer's orphan is still waiting for its parent"
    );
}

#[test]
fn bytes_served_to_one_peer_are_budgeted_per_second() {
    let mut sim = memory_sim(2);
    let key = common::key(1);
    for round in 0..30 {
        let items: Vec<_> = (0..10)
            .map(|i| (vec![(round * 10 + i) as u8; 60_000], vec![]))
            .collect();
        let now = sim.now;
        let (blocks, _) = block_on(sim.sync(0).sign(&key, now, &items)).expect("sign");
        block_on(sim.sync(0).store_signed(blocks)).expect("store");
    }
    let tip = sim.sync(0).chain().leaves()[0];
    let want = || Message::Want {
        ids: vec![tip],
        known: vec![],
    };
    let served_in = |sim: &mut Sim<MemoryStore>, wants: usize| {
        let mut served = 0;
        for _ in 0..wants {
            let now = sim.now;
            let outputs =
                block_on(sim.sync(0).handle(now, Input::Received(9, want()))).expect("handle");
            for output in outputs {
                if let Output::Send(_, Message::Blocks { blocks }) = output {
                    served += blocks.iter().map(Vec::len).sum::<usize>();
                }
            }
        }
        served
    };
    // 18 MB of history, asked for 40 times within one millisecond.
    let served = served_in(&mut sim, 40);
    assert!(
        served <= SERVED_BYTES_PER_SECOND + MAX_BLOCK_BYTES,
        "{served} bytes served in one second"
    );
    assert!(
        served >= SERVED_BYTES_PER_SECOND - MAX_BLOCK_BYTES,
        "the budget is used: {served} bytes"
    );
    // A second later the peer is served again.
    sim.now += 1_000;
    assert!(served_in(&mut sim, 1) > 0, "served again after a second");
}
