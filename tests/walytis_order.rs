//! Property tests: codec round trips, one order for every arrival order, and exactly-once,
//! parents-first delivery that resumes across restarts.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::HashSet;

use endra::store::MemoryStore;
use endra::walytis::{Block, BlockDraft, BlockId, Chain, Query};
use futures_executor::block_on;
use proptest::prelude::*;

fn order(chain: &Chain<MemoryStore>) -> Vec<BlockId> {
    block_on(chain.blocks(Query {
        limit: usize::MAX,
        ..Query::default()
    }))
    .expect("scan")
    .into_iter()
    .map(|e| e.block.id())
    .collect()
}

fn reference(genesis: &Block, blocks: &[Block]) -> Chain<MemoryStore> {
    let mut chain = block_on(Chain::from_genesis(
        MemoryStore::new(),
        &endra::identity::rules(),
        genesis.clone(),
    ))
    .expect("genesis");
    let report = block_on(chain.insert(blocks.iter().map(Block::bytes))).expect("insert");
    assert_eq!(report.accepted.len(), blocks.len());
    chain
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn codec_round_trips(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        topics in proptest::collection::btree_set("[a-z]{1,12}", 0..5),
        parents in proptest::collection::btree_set(any::<[u8; 8]>(), 1..6),
        height in 1u64..u64::MAX,
        time in any::<u64>(),
        seed in 1u8..255,
    ) {
        let key = common::key(seed);
        let parents: Vec<BlockId> = parents.iter().map(|p| BlockId::of(p)).collect();
        let draft = BlockDraft {
            chain: Some(BlockId::of(b"chain")),
            parents: parents.clone(),
            height,
            time,
            topics: topics.iter().cloned().collect(),
            body: body.clone(),
        };
        let block = draft.sign(&key).expect("sign");
        let decoded = Block::decode(block.bytes()).expect("decode");
        prop_assert_eq!(&decoded, &block);
        prop_assert_eq!(decoded.body(), body.as_slice());
        prop_assert_eq!(decoded.time(), time);
        prop_assert_eq!(decoded.height(), height);
        let mut sorted = parents;
        sorted.sort();
        prop_assert_eq!(decoded.parents(), sorted.as_slice());
        prop_assert_eq!(decoded.id(), BlockId::of(block.bytes()));
    }

    #[test]
    fn damaged_bytes_never_panic_and_never_pass_as_the_original(
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (_, blocks) = common::random_dag(seed, 2, 1);
        let mut bytes = blocks[0].bytes().to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        // Any single changed byte breaks the encoding or the signature.
        prop_assert!(Block::decode(&bytes).is_err());
    }

    #[test]
    fn order_is_the_same_for_every_arrival_order(
        seed in any::<u64>(),
        writers in 1usize..5,
        count in 1usize..60,
        shuffle in any::<u64>(),
        batch in 1usize..8,
    ) {
        let (genesis, blocks) = common::random_dag(seed, writers, count);
        let expected = reference(&genesis, &blocks);
        let mut shuffled = blocks.clone();
        common::Rng::new(shuffle).shuffle(&mut shuffled);
        let mut chain = block_on(Chain::from_genesis(MemoryStore::new(), &endra::identity::rules(), genesis)).expect("genesis");
        for part in shuffled.chunks(batch) {
            let report = block_on(chain.insert(part.iter().map(Block::bytes))).expect("insert");
            prop_assert!(report.rejected.is_empty());
        }
        prop_assert_eq!(chain.pending_len(), 0);
        prop_assert_eq!(order(&chain), order(&expected));
        prop_assert_eq!(chain.leaves(), expected.leaves());
        prop_assert_eq!(chain.len(), expected.len());
    }

    #[test]
    fn holds_block_agrees_with_contains_at_every_stage(
        seed in any::<u64>(),
        count in 1usize..40,
        shuffle in any::<u64>(),
        batch in 1usize..6,
    ) {
        // The shortcut (a block above every leaf is not held) must never call a held or
        // pending block new, nor a new one held, whatever arrived so far.
        let (genesis, blocks) = common::random_dag(seed, 3, count);
        let mut shuffled = blocks.clone();
        common::Rng::new(shuffle).shuffle(&mut shuffled);
        let store = MemoryStore::new();
        let id = genesis.id();
        let mut chain = block_on(Chain::from_genesis(store.clone(), &endra::identity::rules(), genesis)).expect("genesis");
        let mut seen = HashSet::new();
        for part in shuffled.chunks(batch) {
            block_on(chain.insert(part.iter().map(Block::bytes))).expect("insert");
            seen.extend(part.iter().map(Block::id));
            // This handle (its caches warm, blocks waiting for parents pending) and a fresh one
            // on the same store (every answer from the store; nothing pending).
            let mut fresh = block_on(Chain::open(store.clone(), &endra::identity::rules(), id)).expect("reopen");
            let stored = block_on(fresh.blocks(Query { limit: usize::MAX, ..Query::default() })).expect("scan");
            let stored: HashSet<BlockId> = stored.into_iter().map(|e| e.block.id()).collect();
            for block in &shuffled {
                let held = block_on(chain.holds_block(block.bytes())).expect("holds");
                prop_assert_eq!(held, seen.contains(&block.id()));
                prop_assert_eq!(held, block_on(chain.contains(&block.id())).expect("contains"));
                let held = block_on(fresh.holds_block(block.bytes())).expect("holds");
                prop_assert_eq!(held, stored.contains(&block.id()));
            }
        }
    }

    #[test]
    fn delivery_is_exactly_once_parents_first_and_resumes_after_restart(
        seed in any::<u64>(),
        count in 1usize..60,
        shuffle in any::<u64>(),
        batch in 1usize..8,
        restart_every in 1usize..6,
    ) {
        let (genesis, blocks) = common::random_dag(seed, 3, count);
        let mut shuffled = blocks.clone();
        common::Rng::new(shuffle).shuffle(&mut shuffled);
        let store = MemoryStore::new();
        let id = genesis.id();
        let mut chain = block_on(Chain::from_genesis(store.clone(), &endra::identity::rules(), genesis)).expect("genesis");
        // The subscriber keeps only its cursor across restarts, as an app would on disk.
        let mut cursor: Option<u64> = None;
        let mut delivered: Vec<Block> = Vec::new();
        let read = |chain: &Chain<MemoryStore>, cursor: &mut Option<u64>, out: &mut Vec<Block>| {
            loop {
                let page = block_on(chain.since(*cursor, 5)).expect("since");
                let Some(last) = page.last() else { break };
                *cursor = Some(last.seq);
                out.extend(page.into_iter().map(|e| e.block));
            }
        };
        for (i, part) in shuffled.chunks(batch).enumerate() {
            block_on(chain.insert(part.iter().map(Block::bytes))).expect("insert");
            read(&chain, &mut cursor, &mut delivered);
            if i % restart_every == 0 {
                // Restart: the pending set is lost with the process; offering the
                // remaining blocks again (as sync would) must still deliver each once.
                chain = block_on(Chain::open(store.clone(), &endra::identity::rules(), id)).expect("reopen");
                block_on(chain.insert(shuffled.iter().map(Block::bytes))).expect("re-offer");
            }
        }
        read(&chain, &mut cursor, &mut delivered);
        let mut seen = HashSet::new();
        for block in &delivered {
            for parent in block.parents() {
                prop_assert!(seen.contains(parent), "child delivered before its parent");
            }
            prop_assert!(seen.insert(block.id()), "block delivered twice");
        }
        prop_assert_eq!(seen.len(), blocks.len() + 1, "every block delivered");
    }
}
