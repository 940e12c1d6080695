//! Persistence of chains behind one trait, [`BlockStore`], with three implementations:
//! [`MemoryStore`], `RedbStore` (native, feature `redb`) and `IdbStore` (IndexedDB, browser).
//!
//! A store keeps, per chain: each block's bytes under its ID, and indexes by chain order
//! (height, then ID), by arrival sequence number, by topic and by author; and one state
//! record with the leaves and the next sequence number. [`BlockStore::commit`] writes a batch
//! of blocks, their index entries and the new state in **one transaction**: after a crash or
//! a closed tab a store holds either all of a commit or none of it, so no block is ever
//! stored without its parents and no index entry points at nothing.

use crate::walytis::{Author, BlockId, Position, BLOCK_ID_LEN};

mod memory;
pub use memory::MemoryStore;

#[cfg(all(feature = "redb", not(target_arch = "wasm32")))]
mod redb_store;
#[cfg(all(feature = "redb", not(target_arch = "wasm32")))]
pub use redb_store::RedbStore;

#[cfg(target_arch = "wasm32")]
mod idb;
#[cfg(target_arch = "wasm32")]
pub use idb::IdbStore;

/// Name written into every store so a database of another program, or of an incompatible
/// version of this one, is recognised instead of misread.
pub const FORMAT: &str = "endra-store/1";

/// What went wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database exists but was written by something else or by an incompatible version.
    #[error("not an Endra store (format {found:?}, expected {FORMAT:?})")]
    Foreign {
        /// The format marker found, if any.
        found: Option<String>,
    },
    /// Stored data is damaged: a record does not decode or does not match its key.
    #[error("store is corrupted: {0}")]
    Corrupt(String),
    /// Another writer (another tab, another handle) changed the chain since it was read.
    /// The caller reloads the chain state and retries.
    #[error("chain {chain} was changed by another writer")]
    Conflict {
        /// The chain concerned.
        chain: BlockId,
    },
    /// The underlying database failed (I/O, quota, browser refusal).
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// One block as written to a store, with the index fields its reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// The block's ID.
    pub id: BlockId,
    /// Arrival sequence number within its chain (0 for the genesis).
    pub seq: u64,
    /// The block's height.
    pub height: u64,
    /// The block's author.
    pub author: Author,
    /// The block's topics.
    pub topics: Vec<String>,
    /// The block's canonical bytes.
    pub bytes: Vec<u8>,
}

impl BlockRecord {
    /// The record's place in the chain order.
    pub fn position(&self) -> Position {
        Position {
            height: self.height,
            id: self.id,
        }
    }
}

/// A block read back from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// Arrival sequence number within its chain.
    pub seq: u64,
    /// The block's height.
    pub height: u64,
    /// The block's canonical bytes.
    pub bytes: Vec<u8>,
}

/// The per-chain state record: written by every commit, read when a chain is opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainState {
    /// Sequence number the next accepted block gets; also the number of blocks.
    pub next_seq: u64,
    /// The current leaves (blocks without children), sorted.
    pub leaves: Vec<BlockId>,
}

impl ChainState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.leaves.len() * BLOCK_ID_LEN);
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        for leaf in &self.leaves {
            out.extend_from_slice(leaf.as_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt(format!("chain state record of {} bytes", bytes.len()));
        let (seq, leaves) = bytes.split_at_checked(8).ok_or_else(bad)?;
        if leaves.len() % BLOCK_ID_LEN != 0 {
            return Err(bad());
        }
        let leaves = leaves
            .chunks_exact(BLOCK_ID_LEN)
            .map(keys::stored_id)
            .collect::<Result<Vec<_>, _>>()?;
        let next_seq = u64::from_be_bytes(seq.try_into().map_err(|_| bad())?);
        Ok(ChainState { next_seq, leaves })
    }
}

/// A batch of accepted blocks and the chain state after them, written atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The chain the blocks belong to.
    pub chain: BlockId,
    /// The state the writer read before making this commit; the store refuses the commit with
    /// [`StoreError::Conflict`] if the stored state differs (another writer got there first),
    /// or if it already holds one of the blocks (the writer did not know it had it).
    /// `None` when the chain is being created.
    pub expected: Option<ChainState>,
    /// The blocks, in sequence order.
    pub blocks: Vec<BlockRecord>,
    /// The chain state after the blocks.
    pub state: ChainState,
}

/// Which index [`BlockStore::scan`] walks. Each is ordered by [`Position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index<'a> {
    /// Every block of the chain.
    Order,
    /// Blocks carrying this topic.
    Topic(&'a str),
    /// Blocks signed by this author.
    Author(&'a Author),
}

/// A page request for [`BlockStore::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan<'a> {
    /// The index to walk.
    pub index: Index<'a>,
    /// Start strictly after (or, reversed, strictly before) this position.
    pub after: Option<Position>,
    /// Walk from the newest to the oldest.
    pub reverse: bool,
    /// Most blocks to return.
    pub limit: usize,
}

/// Persistence of chains. Implementations are cheap handles onto one database.
///
/// Futures are not `Send`: the browser implementation lives on the page's single thread.
#[allow(async_fn_in_trait)]
pub trait BlockStore {
    /// Writes a commit atomically (see [`Commit`]).
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError>;
    /// The state of a chain, `None` if the store does not hold it.
    async fn chain_state(&self, chain: &BlockId) -> Result<Option<ChainState>, StoreError>;
    /// Every chain the store holds.
    async fn chains(&self) -> Result<Vec<BlockId>, StoreError>;
    /// One block by ID.
    async fn block(&self, chain: &BlockId, id: &BlockId)
        -> Result<Option<StoredBlock>, StoreError>;
    /// A page of blocks along an index.
    async fn scan(&self, chain: &BlockId, scan: Scan<'_>) -> Result<Vec<StoredBlock>, StoreError>;
    /// Heights of several blocks (`None` where absent), in the order asked. Stores with
    /// costly round trips (IndexedDB) answer all in one transaction.
    async fn heights(
        &self,
        chain: &BlockId,
        ids: &[BlockId],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let mut heights = Vec::with_capacity(ids.len());
        for id in ids {
            heights.push(self.block(chain, id).await?.map(|b| b.height));
        }
        Ok(heights)
    }
    /// Blocks with a sequence number above `after` (all if `None`), ascending, at most `limit`.
    async fn since(
        &self,
        chain: &BlockId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, StoreError>;
    /// A small value the application keeps beside its chains (a device key, settings).
    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a setting.
    async fn put_setting(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// Binary keys shared by the key-value backends. Big-endian integers make byte order equal
/// numeric order, so ranges over these keys walk the chain order.
pub(crate) mod keys {
    use super::*;

    /// `chain ‖ id`
    pub(crate) fn block(chain: &BlockId, id: &BlockId) -> Vec<u8> {
        let mut key = Vec::with_capacity(2 * BLOCK_ID_LEN);
        key.extend_from_slice(chain.as_bytes());
        key.extend_from_slice(id.as_bytes());
        key
    }

    /// The part of an index key after its prefix: `height ‖ id`.
    pub(crate) fn push_position(key: &mut Vec<u8>, position: &Position) {
        key.extend_from_slice(&position.height.to_be_bytes());
        key.extend_from_slice(position.id.as_bytes());
    }

    /// Prefix of an index's keys: `chain`, then `len ‖ topic` or `author`.
    pub(crate) fn index_prefix(chain: &BlockId, index: &Index<'_>) -> Vec<u8> {
        let mut key =
            Vec::with_capacity(BLOCK_ID_LEN + 2 + 44 + super::super::walytis::MAX_TOPIC_BYTES);
        key.extend_from_slice(chain.as_bytes());
        match index {
            Index::Order => {}
            Index::Topic(topic) => {
                // Topics are at most 128 bytes; the length keeps "ab" apart from "a" + "b…".
                key.push(topic.len().min(255) as u8);
                key.extend_from_slice(topic.as_bytes());
            }
            Index::Author(author) => key.extend_from_slice(author.key_bytes()),
        }
        key
    }

    /// Full index key of a block.
    pub(crate) fn index(chain: &BlockId, index: &Index<'_>, position: &Position) -> Vec<u8> {
        let mut key = index_prefix(chain, index);
        push_position(&mut key, position);
        key
    }

    /// The key range a scan walks: lower and upper bound.
    pub(crate) fn range(
        chain: &BlockId,
        scan: &Scan<'_>,
    ) -> (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>) {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let prefix = index_prefix(chain, &scan.index);
        let end = prefix_end(&prefix).map_or(Unbounded, Excluded);
        let after = scan.after.map(|position| {
            let mut key = prefix.clone();
            push_position(&mut key, &position);
            Excluded(key)
        });
        match (scan.reverse, after) {
            (false, Some(after)) => (after, end),
            (true, Some(after)) => (Included(prefix), after),
            (_, None) => (Included(prefix), end),
        }
    }

    /// `chain ‖ seq`
    pub(crate) fn seq(chain: &BlockId, seq: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(BLOCK_ID_LEN + 8);
        key.extend_from_slice(chain.as_bytes());
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// The smallest key greater than every key starting with `prefix`, `None` if none is.
    pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
        let mut end = prefix.to_vec();
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return Some(end);
            }
        }
        None
    }

    /// A block ID read back from the store; a malformed one means a damaged record.
    pub(crate) fn stored_id(bytes: &[u8]) -> Result<BlockId, StoreError> {
        BlockId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("stored block ID: {e}")))
    }

    /// The block ID at the end of an index key.
    #[cfg_attr(not(feature = "redb"), allow(dead_code))]
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn id_suffix(key: &[u8]) -> Result<BlockId, StoreError> {
        key.len()
            .checked_sub(BLOCK_ID_LEN)
            .and_then(|start| BlockId::from_bytes(&key[start..]).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("index key of {} bytes", key.len())))
    }

    /// `seq ‖ height ‖ bytes`, the value of a block record in the key-value backends.
    pub(crate) fn block_value(record: &BlockRecord) -> Vec<u8> {
        let mut value = Vec::with_capacity(16 + record.bytes.len());
        value.extend_from_slice(&record.seq.to_be_bytes());
        value.extend_from_slice(&record.height.to_be_bytes());
        value.extend_from_slice(&record.bytes);
        value
    }

    /// Reverses [`block_value`].
    pub(crate) fn parse_block_value(value: &[u8]) -> Result<StoredBlock, StoreError> {
        if value.len() < 16 {
            return Err(StoreError::Corrupt(format!(
                "block record of {} bytes",
                value.len()
            )));
        }
        let (seq, rest) = value.split_at(8);
        let (height, bytes) = rest.split_at(8);
        let number = |b: &[u8]| {
            b.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("block record header".into()))
        };
        Ok(StoredBlock {
            seq: number(seq)?,
            height: number(height)?,
            bytes: bytes.to_vec(),
        })
    }
}
