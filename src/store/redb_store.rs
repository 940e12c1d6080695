//! A store on disk with redb, for native nodes, the relay and tests.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

use super::{keys, BlockStore, ChainState, Commit, Index, Scan, StoreError, StoredBlock, FORMAT};
use crate::offchain::store::{
    decode_leaves, encode_leaves, segment_index, segment_key, segment_keys, ContentRoot,
    ContentStore, Staging,
};
use crate::walytis::BlockId;

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const ORDER: TableDefinition<&[u8], ()> = TableDefinition::new("order");
const TOPICS: TableDefinition<&[u8], ()> = TableDefinition::new("topics");
const AUTHORS: TableDefinition<&[u8], ()> = TableDefinition::new("authors");
const SEQS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("seqs");
const CHAINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("chains");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
/// Offchain content: segment trees by root, sealed segments by root and index, erased roots.
const CONTENT_TREES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("content_trees");
const CONTENT_SEGMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("content_segments");
const CONTENT_ERASED: TableDefinition<&[u8], ()> = TableDefinition::new("content_erased");

/// A [`BlockStore`] in a redb file. Clones share the open database.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    staging: Staging,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl RedbStore {
    /// Opens the store at `path`, creating it if absent. A file that is not a redb database
    /// gives [`StoreError::Corrupt`]; a redb database of another program gives
    /// [`StoreError::Foreign`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path.as_ref()).map_err(|e| match e {
            // redb reports a file that is not a database as invalid data.
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() != std::io::ErrorKind::InvalidData =>
            {
                StoreError::Backend(io.to_string())
            }
            other => StoreError::Corrupt(other.to_string()),
        })?;
        let tx = db.begin_write().map_err(backend)?;
        {
            let other_tables = tx
                .list_tables()
                .map_err(backend)?
                .any(|table| table.name() != META.name());
            let mut meta = tx.open_table(META).map_err(backend)?;
            let found = meta
                .get("format")
                .map_err(backend)?
                .map(|v| v.value().to_owned());
            match found {
                Some(format) if format == FORMAT => {}
                None if !other_tables => {
                    meta.insert("format", FORMAT).map_err(backend)?;
                }
                found => return Err(StoreError::Foreign { found }),
            }
            // Create every table now so readers never meet a missing one.
            tx.open_table(BLOCKS).map_err(backend)?;
            tx.open_table(ORDER).map_err(backend)?;
            tx.open_table(TOPICS).map_err(backend)?;
            tx.open_table(AUTHORS).map_err(backend)?;
            tx.open_table(SEQS).map_err(backend)?;
            tx.open_table(CHAINS).map_err(backend)?;
            tx.open_table(SETTINGS).map_err(backend)?;
            tx.open_table(CONTENT_TREES).map_err(backend)?;
            tx.open_table(CONTENT_SEGMENTS).map_err(backend)?;
            tx.open_table(CONTENT_ERASED).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(RedbStore {
            db: Arc::new(db),
            staging: Staging::default(),
        })
    }

    fn read_block(
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        chain: &BlockId,
        id: &BlockId,
    ) -> Result<Option<StoredBlock>, StoreError> {
        match table
            .get(keys::block(chain, id).as_slice())
            .map_err(backend)?
        {
            Some(value) => keys::parse_block_value(value.value()).map(Some),
            None => Ok(None),
        }
    }

    fn present(
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        chain: &BlockId,
        id: &BlockId,
    ) -> Result<StoredBlock, StoreError> {
        Self::read_block(table, chain, id)?
            .ok_or_else(|| StoreError::Corrupt(format!("index names missing block {id}")))
    }
}

fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl BlockStore for RedbStore {
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let chain = &commit.chain;
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut chains = tx.open_table(CHAINS).map_err(backend)?;
            let current = chains
                .get(chain.as_bytes().as_slice())
                .map_err(backend)?
                .map(|v| ChainState::decode(v.value()))
                .transpose()?;
            if current != commit.expected {
                // Dropping the transaction without commit discards it.
                return Err(StoreError::Conflict { chain: *chain });
            }
            let mut blocks = tx.open_table(BLOCKS).map_err(backend)?;
            for record in &commit.blocks {
                let key = keys::block(chain, &record.id);
                if blocks.get(key.as_slice()).map_err(backend)?.is_some() {
                    return Err(StoreError::Conflict { chain: *chain });
                }
            }
            let mut order = tx.open_table(ORDER).map_err(backend)?;
            let mut topics = tx.open_table(TOPICS).map_err(backend)?;
            let mut authors = tx.open_table(AUTHORS).map_err(backend)?;
            let mut seqs = tx.open_table(SEQS).map_err(backend)?;
            for record in &commit.blocks {
                let position = record.position();
                blocks
                    .insert(
                        keys::block(chain, &record.id).as_slice(),
                        keys::block_value(record).as_slice(),
                    )
                    .map_err(backend)?;
                order
                    .insert(keys::index(chain, &Index::Order, &position).as_slice(), ())
                    .map_err(backend)?;
                for topic in &record.topics {
                    topics
                        .insert(
                            keys::index(chain, &Index::Topic(topic), &position).as_slice(),
                            (),
                        )
                        .map_err(backend)?;
                }
                authors
                    .insert(
                        keys::index(chain, &Index::Author(&record.author), &position).as_slice(),
                        (),
                    )
                    .map_err(backend)?;
                seqs.insert(
                    keys::seq(chain, record.seq).as_slice(),
                    record.id.as_bytes().as_slice(),
                )
                .map_err(backend)?;
            }
            chains
                .insert(
                    chain.as_bytes().as_slice(),
                    commit.state.encode().as_slice(),
                )
                .map_err(backend)?;
        }
        // Content staged for this commit lands with it (see `ContentStore::stage_single_segment`).
        let staged = self.staging.snapshot();
        let settings = self.staging.settings();
        if !settings.is_empty() {
            let mut table = tx.open_table(SETTINGS).map_err(backend)?;
            for (key, value) in &settings {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(backend)?;
            }
        }
        if !staged.is_empty() {
            let erased = tx.open_table(CONTENT_ERASED).map_err(backend)?;
            let mut trees = tx.open_table(CONTENT_TREES).map_err(backend)?;
            let mut segments = tx.open_table(CONTENT_SEGMENTS).map_err(backend)?;
            for item in &staged {
                if erased.get(item.root.as_slice()).map_err(backend)?.is_some() {
                    continue;
                }
                trees
                    .insert(item.root.as_slice(), encode_leaves(&item.leaves).as_slice())
                    .map_err(backend)?;
                segments
                    .insert(
                        segment_key(&item.root, 0).as_slice(),
                        item.sealed.as_slice(),
                    )
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        self.staging.written(&staged);
        self.staging.settings_written(&settings);
        Ok(())
    }

    async fn chain_state(&self, chain: &BlockId) -> Result<Option<ChainState>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let chains = tx.open_table(CHAINS).map_err(backend)?;
        let state = chains.get(chain.as_bytes().as_slice()).map_err(backend)?;
        state.map(|v| ChainState::decode(v.value())).transpose()
    }

    async fn chains(&self) -> Result<Vec<BlockId>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let chains = tx.open_table(CHAINS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in chains.iter().map_err(backend)? {
            let (key, _) = entry.map_err(backend)?;
            out.push(keys::stored_id(key.value())?);
        }
        Ok(out)
    }

    async fn block(
        &self,
        chain: &BlockId,
        id: &BlockId,
    ) -> Result<Option<StoredBlock>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let blocks = tx.open_table(BLOCKS).map_err(backend)?;
        Self::read_block(&blocks, chain, id)
    }

    async fn scan(&self, chain: &BlockId, scan: Scan<'_>) -> Result<Vec<StoredBlock>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx
            .open_table(match scan.index {
                Index::Order => ORDER,
                Index::Topic(_) => TOPICS,
                Index::Author(_) => AUTHORS,
            })
            .map_err(backend)?;
        let blocks = tx.open_table(BLOCKS).map_err(backend)?;
        let (start, end) = keys::range(chain, &scan);
        let range = table
            .range::<&[u8]>((as_slice_bound(&start), as_slice_bound(&end)))
            .map_err(backend)?;
        let mut ids = Vec::new();
        let mut push = |entry: Result<
            (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, ()>),
            redb::StorageError,
        >| {
            let (key, _) = entry.map_err(backend)?;
            ids.push(keys::id_suffix(key.value())?);
            Ok::<(), StoreError>(())
        };
        if scan.reverse {
            for entry in range.rev().take(scan.limit) {
                push(entry)?;
            }
        } else {
            for entry in range.take(scan.limit) {
                push(entry)?;
            }
        }
        ids.iter()
            .map(|id| Self::present(&blocks, chain, id))
            .collect()
    }

    async fn since(
        &self,
        chain: &BlockId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, StoreError> {
        let start = match after {
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(seq) => seq + 1,
            None => 0,
        };
        let tx = self.db.begin_read().map_err(backend)?;
        let seqs = tx.open_table(SEQS).map_err(backend)?;
        let blocks = tx.open_table(BLOCKS).map_err(backend)?;
        let start = keys::seq(chain, start);
        let end = keys::prefix_end(chain.as_bytes()).unwrap_or_default();
        let mut out = Vec::new();
        for entry in seqs
            .range::<&[u8]>(start.as_slice()..end.as_slice())
            .map_err(backend)?
            .take(limit)
        {
            let (_, id) = entry.map_err(backend)?;
            let id = keys::stored_id(id.value())?;
            out.push(Self::present(&blocks, chain, &id)?);
        }
        Ok(out)
    }

    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let settings = tx.open_table(SETTINGS).map_err(backend)?;
        let value = settings.get(key).map_err(backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        tx.open_table(SETTINGS)
            .map_err(backend)?
            .insert(key, value)
            .map_err(backend)?;
        tx.commit().map_err(backend)
    }
}

/// A write to one of the content tables.
type ContentWrite<'a> = (
    TableDefinition<'static, &'static [u8], &'static [u8]>,
    &'a [u8],
    &'a [u8],
);

impl RedbStore {
    /// Puts `writes` (`(table, key, value)`) in one transaction unless `root` was erased;
    /// whether they were put. `durability`: whether the commit waits for the disk.
    fn put_unless_erased(
        &self,
        root: &ContentRoot,
        writes: &[ContentWrite<'_>],
        durability: redb::Durability,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin_write().map_err(backend)?;
        tx.set_durability(durability);
        let kept = {
            let erased = tx.open_table(CONTENT_ERASED).map_err(backend)?;
            if erased.get(root.as_slice()).map_err(backend)?.is_some() {
                false
            } else {
                for (table, key, value) in writes {
                    tx.open_table(*table)
                        .map_err(backend)?
                        .insert(*key, *value)
                        .map_err(backend)?;
                }
                true
            }
        };
        tx.commit().map_err(backend)?;
        Ok(kept)
    }
}

impl ContentStore for RedbStore {
    async fn put_tree(&self, root: &ContentRoot, leaves: &[[u8; 32]]) -> Result<(), StoreError> {
        let leaves = encode_leaves(leaves);
        self.put_unless_erased(
            root,
            &[(CONTENT_TREES, root, &leaves)],
            redb::Durability::Immediate,
        )
        .map(drop)
    }

    async fn tree(&self, root: &ContentRoot) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(CONTENT_TREES).map_err(backend)?;
        match table.get(root.as_slice()).map_err(backend)? {
            Some(value) => decode_leaves(value.value()).map(Some),
            None => Ok(None),
        }
    }

    async fn put_single_segment(
        &self,
        root: &ContentRoot,
        leaves: &[[u8; 32]],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let key = segment_key(root, 0);
        let leaves = encode_leaves(leaves);
        self.put_unless_erased(
            root,
            &[
                (CONTENT_TREES, root, &leaves),
                (CONTENT_SEGMENTS, &key, sealed),
            ],
            redb::Durability::Immediate,
        )
    }

    async fn put_segment(
        &self,
        root: &ContentRoot,
        index: u32,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        // A segment is verified bytes any peer can serve again: one lost in a crash is fetched
        // again, so it does not pay a disk sync per 64 KiB (the next durable commit — a block,
        // a tree, an erasure — persists it).
        let key = segment_key(root, index);
        self.put_unless_erased(
            root,
            &[(CONTENT_SEGMENTS, &key, sealed)],
            redb::Durability::Eventual,
        )
    }

    async fn put_segments(
        &self,
        root: &ContentRoot,
        segments: &[(u32, &[u8])],
    ) -> Result<bool, StoreError> {
        // Not synced to the disk, as `put_segment`.
        let keys = segment_keys(root, segments);
        let writes: Vec<ContentWrite<'_>> = keys
            .iter()
            .zip(segments)
            .map(|(key, (_, sealed))| (CONTENT_SEGMENTS, &key[..], *sealed))
            .collect();
        self.put_unless_erased(root, &writes, redb::Durability::Eventual)
    }

    fn staging(&self) -> &Staging {
        &self.staging
    }

    async fn segment(&self, root: &ContentRoot, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(CONTENT_SEGMENTS).map_err(backend)?;
        Ok(table
            .get(segment_key(root, index).as_slice())
            .map_err(backend)?
            .map(|v| v.value().to_vec()))
    }

    async fn held(&self, root: &ContentRoot) -> Result<Vec<u32>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(CONTENT_SEGMENTS).map_err(backend)?;
        let (start, end) = (segment_key(root, 0), segment_key(root, u32::MAX));
        let mut held = Vec::new();
        for item in table
            .range(start.as_slice()..=end.as_slice())
            .map_err(backend)?
        {
            let (key, _) = item.map_err(backend)?;
            held.push(segment_index(key.value())?);
        }
        Ok(held)
    }

    async fn segment_count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(CONTENT_SEGMENTS).map_err(backend)?;
        // Kept in the tree's root: no walk.
        table.len().map_err(backend)
    }

    async fn erase(&self, root: &ContentRoot) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            tx.open_table(CONTENT_TREES)
                .map_err(backend)?
                .remove(root.as_slice())
                .map_err(backend)?;
            let (start, end) = (segment_key(root, 0), segment_key(root, u32::MAX));
            tx.open_table(CONTENT_SEGMENTS)
                .map_err(backend)?
                .retain_in(start.as_slice()..=end.as_slice(), |_, _| false)
                .map_err(backend)?;
            tx.open_table(CONTENT_ERASED)
                .map_err(backend)?
                .insert(root.as_slice(), ())
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }

    async fn is_erased(&self, root: &ContentRoot) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(CONTENT_ERASED).map_err(backend)?;
        Ok(table.get(root.as_slice()).map_err(backend)?.is_some())
    }
}
