//! Persistence of chains: the adapters of Walytis's storage port ([`BlockStore`], defined in
//! [`crate::walytis::store`] and re-exported here) — [`MemoryStore`], `RedbStore` (native,
//! feature `redb`) and `IdbStore` (IndexedDB, browser) — and the key layout the key-value
//! backends share.

pub use crate::walytis::store::{
    BlockRecord, BlockStore, ChainState, Commit, Index, Scan, StoreError, StoredBlock, FORMAT,
};
use crate::walytis::{BlockId, Position, BLOCK_ID_LEN};

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
