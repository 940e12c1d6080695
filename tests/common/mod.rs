//! Helpers shared by the native and browser test suites.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

#[cfg(not(target_arch = "wasm32"))]
pub mod client;
pub mod conformance;
pub mod content_conformance;
#[cfg(not(target_arch = "wasm32"))]
pub mod identity;
#[cfg(all(feature = "net", not(target_arch = "wasm32")))]
pub mod net;

use ed25519_dalek::SigningKey;
use endra::walytis::{Block, BlockDraft, BlockId};

/// A deterministic device key.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A small deterministic PRNG (xorshift64*), so tests need no `rand` and replay exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// A random but valid DAG: `writers` authors each append on top of the leaves of their own,
/// partial view; views merge from time to time. Returns the genesis and the other blocks in
/// creation order (parents before children).
pub fn random_dag(seed: u64, writers: usize, blocks: usize) -> (Block, Vec<Block>) {
    let mut rng = Rng::new(seed);
    let keys: Vec<SigningKey> = (0..writers).map(|w| key(w as u8 + 1)).collect();
    let genesis = BlockDraft {
        chain: None,
        parents: vec![],
        height: 0,
        time: 0,
        topics: vec!["genesis".into()],
        body: seed.to_be_bytes().to_vec(),
    }
    .sign(&keys[0])
    .expect("genesis signs");
    let chain = genesis.id();
    let mut heights = std::collections::HashMap::from([(chain, 0u64)]);
    // Each writer's known leaves.
    let mut views: Vec<Vec<BlockId>> = vec![vec![chain]; writers];
    let mut all = Vec::with_capacity(blocks);
    for i in 0..blocks {
        let w = rng.below(writers);
        if rng.below(4) == 0 {
            // Merge another writer's view into this one (a sync).
            let other = rng.below(writers);
            let merged: Vec<BlockId> = views[other].clone();
            let view = &mut views[w];
            view.extend(merged);
            view.sort();
            view.dedup();
            // Drop leaves that are ancestors of others: keep it simple by keeping all; the
            // parents of a block just need to be known, sorted and unique.
        }
        let parents = views[w].clone();
        let height = parents.iter().map(|p| heights[p] + 1).max().unwrap_or(1);
        let topics = vec![format!("t{}", i % 3)];
        let block = BlockDraft {
            chain: Some(chain),
            parents,
            height,
            time: i as u64,
            topics,
            body: format!("block {i} by {w}").into_bytes(),
        }
        .sign(&keys[w])
        .expect("block signs");
        heights.insert(block.id(), height);
        views[w] = vec![block.id()];
        all.push(block);
    }
    (genesis, all)
}

/// The genesis topic of [`FounderOnly`] chains.
pub const FOUNDER_ONLY_TOPIC: &str = "endra/test-founder-only/1";

/// A kind of chain only its founder may write (`strict`, honest replicas), or anyone (how a
/// hostile node with a laxer rule sees it: it signs and publishes blocks every honest replica
/// refuses). Counts how often a chain rebuilt the rule's view.
pub struct FounderOnly {
    strict: bool,
    rebuilds: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FounderOnly {
    pub fn new(strict: bool) -> Self {
        FounderOnly {
            strict,
            rebuilds: Default::default(),
        }
    }

    /// The rebuild counter shared by every chain opened under this rule.
    pub fn rebuilds(&self) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        self.rebuilds.clone()
    }
}

struct FounderOnlyAdmission {
    strict: bool,
    founder: endra::walytis::Author,
    rebuilds: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, thiserror::Error)]
#[error("only the founder writes this chain")]
pub struct NotTheFounder;

impl endra::walytis::RuleRefusal for NotTheFounder {
    fn code(&self) -> &'static str {
        "NOT_THE_FOUNDER"
    }
}

impl endra::walytis::Admission for FounderOnlyAdmission {
    fn rebuild(&mut self, _: &[Block]) {
        self.rebuilds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn check(&self, block: &Block) -> Result<(), endra::walytis::Refused> {
        if self.strict && block.author() != self.founder {
            return Err(endra::walytis::Refused::new(NotTheFounder));
        }
        Ok(())
    }
    fn extend(&mut self, _: &Block) {}
}

impl endra::walytis::ChainRule for FounderOnly {
    fn topic(&self) -> &'static str {
        FOUNDER_ONLY_TOPIC
    }
    fn admission(&self, genesis: &Block) -> Box<dyn endra::walytis::Admission> {
        Box::new(FounderOnlyAdmission {
            strict: self.strict,
            founder: genesis.author(),
            rebuilds: self.rebuilds.clone(),
        })
    }
}
