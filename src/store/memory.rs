//! A store in memory: for tests, benches and pages that keep nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    keys, BlockRecord, BlockStore, ChainState, Commit, Index, Scan, StoreError, StoredBlock,
};
use crate::offchain::store::{
    segment_index, segment_key, ContentRoot, ContentStore, Served, Staging,
};
use crate::walytis::BlockId;

/// A [`BlockStore`] in memory. Clones share the same data, like two handles on one database.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Tables>>,
    staging: Staging,
}

#[derive(Debug, Default)]
struct Tables {
    blocks: HashMap<Vec<u8>, StoredBlock>,
    order: BTreeMap<Vec<u8>, BlockId>,
    topics: BTreeMap<Vec<u8>, BlockId>,
    authors: BTreeMap<Vec<u8>, BlockId>,
    seqs: BTreeMap<Vec<u8>, BlockId>,
    chains: BTreeMap<BlockId, ChainState>,
    settings: HashMap<String, Vec<u8>>,
    content: Content,
}

/// Offchain content (see [`ContentStore`]).
#[derive(Debug, Default)]
struct Content {
    trees: HashMap<ContentRoot, Vec<[u8; 32]>>,
    segments: BTreeMap<[u8; 36], Vec<u8>>,
    erased: HashSet<ContentRoot>,
    /// Segments read to be served to peers (see [`MemoryStore::segments_served`]).
    served: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many segments this store has handed out to be served to peers: what a test
    /// counts to tell which peer a content was fetched from.
    pub fn segments_served(&self) -> u64 {
        self.tables().content.served
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a half-applied commit (commits are
        // applied after all checks), so the data behind a poisoned lock is still whole.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Tables {
    fn get(&self, chain: &BlockId, id: &BlockId) -> Option<StoredBlock> {
        self.blocks.get(&keys::block(chain, id)).cloned()
    }

    fn index(&self, index: &Index<'_>) -> &BTreeMap<Vec<u8>, BlockId> {
        match index {
            Index::Order => &self.order,
            Index::Topic(_) => &self.topics,
            Index::Author(_) => &self.authors,
        }
    }
}

impl BlockStore for MemoryStore {
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut t = self.tables();
        let held = |record: &BlockRecord| {
            t.blocks
                .contains_key(&keys::block(&commit.chain, &record.id))
        };
        if t.chains.get(&commit.chain) != commit.expected.as_ref() || commit.blocks.iter().any(held)
        {
            return Err(StoreError::Conflict {
                chain: commit.chain,
            });
        }
        let chain = &commit.chain;
        for record in &commit.blocks {
            let position = record.position();
            t.blocks.insert(
                keys::block(chain, &record.id),
                StoredBlock {
                    seq: record.seq,
                    height: record.height,
                    bytes: record.bytes.clone(),
                },
            );
            t.order
                .insert(keys::index(chain, &Index::Order, &position), record.id);
            for topic in &record.topics {
                t.topics.insert(
                    keys::index(chain, &Index::Topic(topic), &position),
                    record.id,
                );
            }
            t.authors.insert(
                keys::index(chain, &Index::Author(&record.author), &position),
                record.id,
            );
            t.seqs.insert(keys::seq(chain, record.seq), record.id);
        }
        t.chains.insert(commit.chain, commit.state.clone());
        // Content staged for this commit lands with it (see `ContentStore::stage_single_segment`).
        let staged = self.staging.snapshot();
        for item in &staged {
            if !t.content.erased.contains(&item.root) {
                t.content.trees.insert(item.root, item.leaves.clone());
                t.content
                    .segments
                    .insert(segment_key(&item.root, 0), item.sealed.clone());
            }
        }
        let settings = self.staging.settings();
        for (key, value) in &settings {
            t.settings.insert(key.clone(), value.clone());
        }
        drop(t);
        self.staging.written(&staged);
        self.staging.settings_written(&settings);
        Ok(())
    }

    async fn chain_state(&self, chain: &BlockId) -> Result<Option<ChainState>, StoreError> {
        Ok(self.tables().chains.get(chain).cloned())
    }

    async fn chains(&self) -> Result<Vec<BlockId>, StoreError> {
        Ok(self.tables().chains.keys().copied().collect())
    }

    async fn block(
        &self,
        chain: &BlockId,
        id: &BlockId,
    ) -> Result<Option<StoredBlock>, StoreError> {
        Ok(self.tables().get(chain, id))
    }

    async fn scan(&self, chain: &BlockId, scan: Scan<'_>) -> Result<Vec<StoredBlock>, StoreError> {
        let t = self.tables();
        let range = t.index(&scan.index).range(keys::range(chain, &scan));
        let ids: Vec<BlockId> = if scan.reverse {
            range.rev().take(scan.limit).map(|(_, id)| *id).collect()
        } else {
            range.take(scan.limit).map(|(_, id)| *id).collect()
        };
        ids.iter()
            .map(|id| {
                t.get(chain, id)
                    .ok_or_else(|| StoreError::Corrupt(format!("index names missing block {id}")))
            })
            .collect()
    }

    async fn since(
        &self,
        chain: &BlockId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, StoreError> {
        let t = self.tables();
        let start = keys::seq(chain, after.map_or(0, |seq| seq.saturating_add(1)));
        let end = keys::prefix_end(chain.as_bytes()).unwrap_or_default();
        if after == Some(u64::MAX) {
            return Ok(Vec::new());
        }
        t.seqs
            .range(start..end)
            .take(limit)
            .map(|(_, id)| {
                t.get(chain, id).ok_or_else(|| {
                    StoreError::Corrupt(format!("sequence names missing block {id}"))
                })
            })
            .collect()
    }

    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tables().settings.get(key).cloned())
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.tables()
            .settings
            .insert(key.to_owned(), value.to_vec());
        Ok(())
    }
}

impl ContentStore for MemoryStore {
    async fn put_tree(&self, root: &ContentRoot, leaves: &[[u8; 32]]) -> Result<(), StoreError> {
        let mut t = self.tables();
        if !t.content.erased.contains(root) {
            t.content.trees.insert(*root, leaves.to_vec());
        }
        Ok(())
    }

    async fn tree(&self, root: &ContentRoot) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
        Ok(self.tables().content.trees.get(root).cloned())
    }

    async fn put_segment(
        &self,
        root: &ContentRoot,
        index: u32,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let mut t = self.tables();
        if t.content.erased.contains(root) {
            return Ok(false);
        }
        t.content
            .segments
            .insert(segment_key(root, index), sealed.to_vec());
        Ok(true)
    }

    async fn put_single_segment(
        &self,
        root: &ContentRoot,
        leaves: &[[u8; 32]],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let mut t = self.tables();
        if t.content.erased.contains(root) {
            return Ok(false);
        }
        t.content.trees.insert(*root, leaves.to_vec());
        t.content
            .segments
            .insert(segment_key(root, 0), sealed.to_vec());
        Ok(true)
    }

    fn staging(&self) -> &Staging {
        &self.staging
    }

    async fn segment(&self, root: &ContentRoot, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tables()
            .content
            .segments
            .get(&segment_key(root, index))
            .cloned())
    }

    async fn segment_to_serve(&self, root: &ContentRoot, index: u32) -> Result<Served, StoreError> {
        let mut t = self.tables();
        if t.content.erased.contains(root) {
            return Ok(Served::Erased);
        }
        let found = t.content.segments.get(&segment_key(root, index)).cloned();
        Ok(match found {
            Some(sealed) => {
                t.content.served += 1;
                Served::Segment(sealed)
            }
            None => Served::NotHeld,
        })
    }

    async fn held(&self, root: &ContentRoot) -> Result<Vec<u32>, StoreError> {
        let t = self.tables();
        let range = segment_key(root, 0)..=segment_key(root, u32::MAX);
        t.content
            .segments
            .range(range)
            .map(|(key, _)| segment_index(key))
            .collect()
    }

    async fn segment_count(&self) -> Result<u64, StoreError> {
        Ok(self.tables().content.segments.len() as u64)
    }

    async fn erase(&self, root: &ContentRoot) -> Result<(), StoreError> {
        let mut t = self.tables();
        t.content.trees.remove(root);
        let range = segment_key(root, 0)..=segment_key(root, u32::MAX);
        let keys: Vec<[u8; 36]> = t.content.segments.range(range).map(|(k, _)| *k).collect();
        for key in keys {
            t.content.segments.remove(&key);
        }
        t.content.erased.insert(*root);
        Ok(())
    }

    async fn is_erased(&self, root: &ContentRoot) -> Result<bool, StoreError> {
        Ok(self.tables().content.erased.contains(root))
    }
}
