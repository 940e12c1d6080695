//! A store in the browser's IndexedDB.
//!
//! One database per store name. Each block is **one** record in the `blocks` object store;
//! its order, sequence, author and topic index keys are fields of that record, indexed by
//! IndexedDB itself, so appending a block is one `put` however many indexes it feeds. A
//! commit's records and the chain's state record are written in one `readwrite`
//! transaction, which IndexedDB applies entirely or not at all.

use indexed_db_futures::database::Database;
use indexed_db_futures::error::DomException;
use indexed_db_futures::index::Index as IdbIndex;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{Transaction, TransactionMode};
use indexed_db_futures::KeyRange;
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use super::{
    keys, BlockRecord, BlockStore, ChainState, Commit, Index, Scan, StoreError, StoredBlock, FORMAT,
};
use crate::offchain::store::{
    decode_leaves, encode_leaves, segment_index, segment_key, segment_keys, ContentRoot,
    ContentStore, Served, Staging,
};
use crate::walytis::BlockId;

/// Version 2 added the offchain content stores, version 3 the segment tails; older databases
/// are upgraded in place.
const VERSION: u32 = 3;
const BLOCKS: &str = "blocks";
const CHAINS: &str = "chains";
const SETTINGS: &str = "settings";
const META: &str = "meta";
/// Offchain content: segment trees by root, sealed segments by root and index, erased roots.
const CONTENT_TREES: &str = "content_trees";
const CONTENT_SEGMENTS: &str = "content_segments";
const CONTENT_ERASED: &str = "content_erased";
/// The last bytes of sealed segments longer than [`SEGMENT_HEAD_LEN`], by the segment's key.
const CONTENT_SEGMENT_TAILS: &str = "content_segment_tails";
/// The most bytes of a sealed segment kept in [`CONTENT_SEGMENTS`]; the rest goes to
/// [`CONTENT_SEGMENT_TAILS`]. Chromium writes a value whose serialised form passes 64 KiB
/// to a file of its own, which made a full segment (64 KiB and its tag) about 2.5 times
/// slower to write and twice as slow to read than one just under that; 256 bytes of margin
/// leave room for the serialisation's header. Segments written whole before version 3 have
/// no tail and are read as they are.
const SEGMENT_HEAD_LEN: usize = 64 * 1024 - 256;
const STORES: [&str; 8] = [
    BLOCKS,
    CHAINS,
    META,
    SETTINGS,
    CONTENT_TREES,
    CONTENT_SEGMENTS,
    CONTENT_ERASED,
    CONTENT_SEGMENT_TAILS,
];

// Fields of a block record and the indexes over them.
const ORDER_FIELD: &str = "o";
const SEQ_FIELD: &str = "s";
const AUTHOR_FIELD: &str = "a";
const TOPICS_FIELD: &str = "t";
const VALUE_FIELD: &str = "v";

/// A [`BlockStore`] in IndexedDB. Clones share the open database connection.
#[derive(Debug, Clone)]
pub struct IdbStore {
    db: std::rc::Rc<Database>,
    name: String,
    staging: Staging,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn bytes(value: &[u8]) -> JsValue {
    Uint8Array::from(value).into()
}

fn field(record: &JsValue, name: &str) -> Result<JsValue, StoreError> {
    Reflect::get(record, &JsValue::from_str(name))
        .map_err(|_| StoreError::Corrupt(format!("block record without field {name:?}")))
}

fn bytes_of(value: &JsValue, what: &str) -> Result<Vec<u8>, StoreError> {
    value
        .dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .ok_or_else(|| StoreError::Corrupt(format!("{what} is not a byte array")))
}

fn range(bounds: (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>)) -> KeyRange<JsValue> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let bound = |b: std::ops::Bound<Vec<u8>>| match b {
        Included(key) => Some((bytes(&key), false)),
        Excluded(key) => Some((bytes(&key), true)),
        Unbounded => None,
    };
    match (bound(bounds.0), bound(bounds.1)) {
        (Some((lo, lo_open)), Some((hi, hi_open))) => KeyRange::Bound(lo, lo_open, hi, hi_open),
        (Some((lo, open)), None) => KeyRange::LowerBound(lo, open),
        (None, Some((hi, open))) => KeyRange::UpperBound(hi, open),
        // Every scan has a chain prefix as its lower bound.
        (None, None) => KeyRange::LowerBound(bytes(&[]), false),
    }
}

impl IdbStore {
    /// Opens (creating if needed) the IndexedDB database `endra:<name>`. A database of that
    /// name written by something else gives [`StoreError::Foreign`].
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        let db_name = format!("endra:{name}");
        let db = Database::open(db_name.as_str())
            .with_version(VERSION)
            .with_on_upgrade_needed(|event, db| {
                let old = event.old_version() as u64;
                if old < 2 {
                    db.create_object_store(CONTENT_TREES).build()?;
                    db.create_object_store(CONTENT_SEGMENTS).build()?;
                    db.create_object_store(CONTENT_ERASED).build()?;
                }
                if old < 3 {
                    db.create_object_store(CONTENT_SEGMENT_TAILS).build()?;
                }
                if old != 0 {
                    return Ok(());
                }
                let blocks = db.create_object_store(BLOCKS).build()?;
                blocks
                    .create_index("order", ORDER_FIELD.into())
                    .with_unique(true)
                    .build()?;
                blocks
                    .create_index("seq", SEQ_FIELD.into())
                    .with_unique(true)
                    .build()?;
                blocks.create_index("author", AUTHOR_FIELD.into()).build()?;
                blocks
                    .create_index("topic", TOPICS_FIELD.into())
                    .with_multi_entry(true)
                    .build()?;
                db.create_object_store(CHAINS).build()?;
                db.create_object_store(SETTINGS).build()?;
                let meta = db.create_object_store(META).build()?;
                // Part of the upgrade transaction: the marker exists iff the schema does.
                drop(
                    meta.put(JsValue::from_str(FORMAT))
                        .with_key(JsValue::from_str("format"))
                        .primitive()?,
                );
                Ok(())
            })
            .await
            .map_err(|e| match e {
                // A database of that name at a higher version is not ours.
                indexed_db_futures::error::OpenDbError::Base(
                    indexed_db_futures::error::Error::DomException(ref d),
                ) if d.name() == "VersionError" => StoreError::Foreign { found: None },
                other => backend(other),
            })?;
        let names: Vec<String> = db.object_store_names().collect();
        if STORES.iter().any(|s| !names.iter().any(|n| n == s)) {
            return Err(StoreError::Foreign { found: None });
        }
        let found = {
            let tx = db.transaction(META).build().map_err(backend)?;
            let meta = tx.object_store(META).map_err(backend)?;
            let found: Option<JsValue> = meta
                .get(JsValue::from_str("format"))
                .primitive()
                .map_err(backend)?
                .await
                .map_err(backend)?;
            found.and_then(|v| v.as_string())
        };
        if found.as_deref() != Some(FORMAT) {
            return Err(StoreError::Foreign { found });
        }
        Ok(IdbStore {
            db: std::rc::Rc::new(db),
            name: name.to_owned(),
            staging: Staging::default(),
        })
    }

    /// The store's name (without the `endra:` prefix of the database name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the connection and deletes the database `endra:<name>`.
    pub async fn delete(name: &str) -> Result<(), StoreError> {
        Database::delete_by_name(&format!("endra:{name}"))
            .map_err(backend)?
            .await
            .map_err(backend)
    }

    /// The value under `key` in object store `store`, in a read-only transaction of its own.
    async fn get_one(&self, store: &str, key: JsValue) -> Result<Option<JsValue>, StoreError> {
        let tx = self.db.transaction(store).build().map_err(backend)?;
        let value = async {
            tx.object_store(store)
                .map_err(backend)?
                .get::<JsValue, _, _>(key)
                .primitive()
                .map_err(backend)?
                .await
                .map_err(backend)
        }
        .await;
        release(tx);
        value
    }

    async fn get_all(
        index: &IdbIndex<'_>,
        bounds: (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>),
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, StoreError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        if reverse {
            let cursor = index
                .open_cursor()
                .with_query::<JsValue, _>(range(bounds))
                .with_direction(indexed_db_futures::cursor::CursorDirection::Prev)
                .primitive()
                .map_err(backend)?
                .await
                .map_err(backend)?;
            if let Some(mut cursor) = cursor {
                while out.len() < limit as usize {
                    match cursor.next_record::<JsValue>().await.map_err(backend)? {
                        Some(record) => out.push(stored(&record)?),
                        None => break,
                    }
                }
            }
        } else {
            let records = index
                .get_all::<JsValue>()
                .with_query::<JsValue, _>(range(bounds))
                .with_limit(limit)
                .primitive()
                .map_err(backend)?
                .await
                .map_err(backend)?;
            for record in records {
                out.push(stored(&record.map_err(backend)?)?);
            }
        }
        Ok(out)
    }
}

fn stored(record: &JsValue) -> Result<StoredBlock, StoreError> {
    let value = bytes_of(&field(record, VALUE_FIELD)?, "block record value")?;
    keys::parse_block_value(&value)
}

fn chain_state(value: Option<JsValue>) -> Result<Option<ChainState>, StoreError> {
    value
        .map(|v| bytes_of(&v, "chain state").and_then(|b| ChainState::decode(&b)))
        .transpose()
}

/// The IndexedDB value of a block: its record and the keys of the indexes it is in.
fn block_record(chain: &BlockId, record: &BlockRecord) -> Result<JsValue, StoreError> {
    let position = record.position();
    let value = Object::new();
    let set = |name: &str, v: JsValue| {
        Reflect::set(&value, &JsValue::from_str(name), &v).map_err(|_| backend("Reflect.set"))
    };
    set(
        ORDER_FIELD,
        bytes(&keys::index(chain, &Index::Order, &position)),
    )?;
    set(SEQ_FIELD, bytes(&keys::seq(chain, record.seq)))?;
    set(
        AUTHOR_FIELD,
        bytes(&keys::index(
            chain,
            &Index::Author(&record.author),
            &position,
        )),
    )?;
    let topics = Array::new();
    for topic in &record.topics {
        topics.push(&bytes(&keys::index(chain, &Index::Topic(topic), &position)));
    }
    set(TOPICS_FIELD, topics.into())?;
    set(VALUE_FIELD, bytes(&keys::block_value(record)))?;
    Ok(value.into())
}

/// Ends a read-only transaction. Dropped uncommitted, `indexed_db_futures` aborts it, and an
/// `abort()` costs Chromium about a third of a millisecond, more than a small read; a commit
/// is free. Its `complete` event is not awaited: the reads are done.
fn release(tx: Transaction<'_>) {
    // The first poll marks the transaction done and calls `commit()`; then the future is
    // dropped instead of waiting for `complete`.
    let _ = futures_util::FutureExt::now_or_never(tx.commit());
}

impl BlockStore for IdbStore {
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let chain = &commit.chain;
        // Another writer that read the same state wrote the same first `seq`, which the unique
        // `seq` index refuses, and `add` refuses a block already held: the database aborts the
        // transaction itself, so the writes go out with no read before them and the commit
        // costs one round trip. Only a commit with no blocks (or an unusual first `seq`) has
        // to read the state first.
        let first_seq = commit.expected.as_ref().map_or(0, |state| state.next_seq);
        let checked_by_index = commit
            .blocks
            .first()
            .is_some_and(|record| record.seq == first_seq);
        // Content staged for this commit lands with it (see `ContentStore::stage_single_segment`).
        let staged = self.staging.snapshot();
        let settings = self.staging.settings();
        let mut scope = vec![BLOCKS, CHAINS];
        if !staged.is_empty() {
            scope.extend([CONTENT_TREES, CONTENT_SEGMENTS, CONTENT_ERASED]);
        }
        // A text's segment has no tail: the store is in the scope only when one is written.
        if staged
            .iter()
            .any(|item| item.sealed.len() > SEGMENT_HEAD_LEN)
        {
            scope.push(CONTENT_SEGMENT_TAILS);
        }
        if !settings.is_empty() {
            scope.push(SETTINGS);
        }
        let tx = self
            .db
            .transaction(scope)
            .with_mode(TransactionMode::Readwrite)
            .build()
            .map_err(backend)?;
        let mut kept = Vec::new();
        let written = async {
            let chains = tx.object_store(CHAINS).map_err(backend)?;
            let blocks = tx.object_store(BLOCKS).map_err(backend)?;
            if !checked_by_index {
                let current: Option<JsValue> = chains
                    .get(bytes(chain.as_bytes()))
                    .primitive()
                    .map_err(backend)?
                    .await
                    .map_err(backend)?;
                if chain_state(current)? != commit.expected {
                    return Err(StoreError::Conflict { chain: *chain });
                }
            }
            for record in &commit.blocks {
                // Requests go out when built; the commit below waits for all of them.
                drop(
                    blocks
                        .add(block_record(chain, record)?)
                        .with_key(bytes(&keys::block(chain, &record.id)))
                        .primitive()
                        .map_err(backend)?,
                );
            }
            let state = bytes(&commit.state.encode());
            let key = bytes(chain.as_bytes());
            // A new chain's state is added: a second creator of the same chain conflicts.
            if commit.expected.is_none() {
                drop(
                    chains
                        .add(state)
                        .with_key(key)
                        .primitive()
                        .map_err(backend)?,
                );
            } else {
                drop(
                    chains
                        .put(state)
                        .with_key(key)
                        .primitive()
                        .map_err(backend)?,
                );
            }
            if !settings.is_empty() {
                let store = tx.object_store(SETTINGS).map_err(backend)?;
                for (key, value) in &settings {
                    drop(
                        store
                            .put(bytes(value))
                            .with_key(JsValue::from_str(key))
                            .primitive()
                            .map_err(backend)?,
                    );
                }
            }
            for item in &staged {
                // A read after the writes: if one of them failed (a conflict), the transaction
                // is aborting and the commit below says why; what was not put stays staged.
                let Ok(erased) = Self::erased_in(&tx, &item.root).await else {
                    break;
                };
                if !erased {
                    let leaves = encode_leaves(&item.leaves);
                    let key = segment_key(&item.root, 0);
                    let mut writes = vec![(CONTENT_TREES, &item.root[..], &leaves[..])];
                    writes.extend(segment_writes(&key, &item.sealed));
                    Self::put_all(&tx, &writes)?;
                }
                kept.push(item.clone());
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            let _ = tx.abort().await;
            return Err(e);
        }
        match tx.commit().await {
            Ok(()) => {
                self.staging.written(&kept);
                self.staging.settings_written(&settings);
                Ok(())
            }
            Err(indexed_db_futures::error::Error::DomException(DomException::ConstraintError(
                _,
            ))) => Err(StoreError::Conflict { chain: *chain }),
            Err(e) => Err(backend(e)),
        }
    }

    async fn chain_state(&self, chain: &BlockId) -> Result<Option<ChainState>, StoreError> {
        chain_state(self.get_one(CHAINS, bytes(chain.as_bytes())).await?)
    }

    async fn chains(&self) -> Result<Vec<BlockId>, StoreError> {
        let tx = self.db.transaction(CHAINS).build().map_err(backend)?;
        let keys = async {
            let chains = tx.object_store(CHAINS).map_err(backend)?;
            chains
                .get_all_keys::<JsValue>()
                .primitive()
                .map_err(backend)?
                .await
                .map_err(backend)
        }
        .await;
        release(tx);
        let mut out = Vec::new();
        for key in keys? {
            // IndexedDB hands binary keys back as ArrayBuffers.
            let key = Uint8Array::new(&key.map_err(backend)?).to_vec();
            out.push(keys::stored_id(&key)?);
        }
        Ok(out)
    }

    async fn block(
        &self,
        chain: &BlockId,
        id: &BlockId,
    ) -> Result<Option<StoredBlock>, StoreError> {
        let record = self.get_one(BLOCKS, bytes(&keys::block(chain, id))).await?;
        record.map(|r| stored(&r)).transpose()
    }

    async fn heights(
        &self,
        chain: &BlockId,
        ids: &[BlockId],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let tx = self.db.transaction(BLOCKS).build().map_err(backend)?;
        let heights = async {
            let blocks = tx.object_store(BLOCKS).map_err(backend)?;
            // Every request goes out before the first is awaited: one round of the event loop.
            let requests = ids
                .iter()
                .map(|id| {
                    blocks
                        .get::<JsValue, _, _>(bytes(&keys::block(chain, id)))
                        .primitive()
                        .map_err(backend)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut heights = Vec::with_capacity(ids.len());
            for request in requests {
                let record: Option<JsValue> = request.await.map_err(backend)?;
                heights.push(record.map(|r| stored(&r)).transpose()?.map(|b| b.height));
            }
            Ok(heights)
        }
        .await;
        release(tx);
        heights
    }

    async fn scan(&self, chain: &BlockId, scan: Scan<'_>) -> Result<Vec<StoredBlock>, StoreError> {
        let tx = self.db.transaction(BLOCKS).build().map_err(backend)?;
        let found = async {
            let blocks = tx.object_store(BLOCKS).map_err(backend)?;
            let index = blocks
                .index(match scan.index {
                    Index::Order => "order",
                    Index::Topic(_) => "topic",
                    Index::Author(_) => "author",
                })
                .map_err(backend)?;
            Self::get_all(&index, keys::range(chain, &scan), scan.reverse, scan.limit).await
        }
        .await;
        release(tx);
        found
    }

    async fn since(
        &self,
        chain: &BlockId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, StoreError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = match after {
            Some(seq) => Excluded(keys::seq(chain, seq)),
            None => Included(keys::seq(chain, 0)),
        };
        let end = keys::prefix_end(chain.as_bytes()).map_or(Unbounded, Excluded);
        let tx = self.db.transaction(BLOCKS).build().map_err(backend)?;
        let found = async {
            let blocks = tx.object_store(BLOCKS).map_err(backend)?;
            let index = blocks.index("seq").map_err(backend)?;
            Self::get_all(&index, (start, end), false, limit).await
        }
        .await;
        release(tx);
        found
    }

    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.get_one(SETTINGS, JsValue::from_str(key)).await?;
        value.map(|v| bytes_of(&v, "setting")).transpose()
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self
            .db
            .transaction(SETTINGS)
            .with_mode(TransactionMode::Readwrite)
            .build()
            .map_err(backend)?;
        let settings = tx.object_store(SETTINGS).map_err(backend)?;
        drop(
            settings
                .put(bytes(value))
                .with_key(JsValue::from_str(key))
                .primitive()
                .map_err(backend)?,
        );
        tx.commit().await.map_err(backend)
    }
}

/// The key range of every segment of `root`.
fn segments_of(root: &ContentRoot) -> KeyRange<JsValue> {
    KeyRange::Bound(
        bytes(&segment_key(root, 0)),
        false,
        bytes(&segment_key(root, u32::MAX)),
        false,
    )
}

/// The writes that keep sealed segment `sealed` under `key`: its head, and its tail if it is
/// longer than [`SEGMENT_HEAD_LEN`].
fn segment_writes<'a>(
    key: &'a [u8],
    sealed: &'a [u8],
) -> impl Iterator<Item = (&'static str, &'a [u8], &'a [u8])> {
    let (head, tail) = sealed.split_at(sealed.len().min(SEGMENT_HEAD_LEN));
    std::iter::once((CONTENT_SEGMENTS, key, head)).chain((!tail.is_empty()).then_some((
        CONTENT_SEGMENT_TAILS,
        key,
        tail,
    )))
}

/// A segment's head and tail records, as read, put back together.
fn joined_segment(head: JsValue, tail: Option<JsValue>) -> Result<Vec<u8>, StoreError> {
    let mut sealed = bytes_of(&head, "segment")?;
    if let Some(tail) = tail {
        if sealed.len() != SEGMENT_HEAD_LEN {
            return Err(StoreError::Corrupt(format!(
                "a segment head of {} bytes with a tail",
                sealed.len()
            )));
        }
        sealed.extend_from_slice(&bytes_of(&tail, "segment tail")?);
    }
    Ok(sealed)
}

/// Asks `tx` for `key` of object store `store`: the request goes out now, the future reads
/// its answer.
fn ask(
    tx: &Transaction<'_>,
    store: &str,
    key: JsValue,
) -> Result<impl std::future::Future<Output = Result<Option<JsValue>, StoreError>>, StoreError> {
    let request = tx
        .object_store(store)
        .map_err(backend)?
        .get::<JsValue, _, _>(key)
        .primitive()
        .map_err(backend)?;
    Ok(async move { request.await.map_err(backend) })
}

impl IdbStore {
    /// Asks `tx` for segment `key`'s head and tail at once (one round trip); the future
    /// puts them back together.
    fn segment_in(
        tx: &Transaction<'_>,
        key: &[u8],
    ) -> Result<impl std::future::Future<Output = Result<Option<Vec<u8>>, StoreError>>, StoreError>
    {
        let head = ask(tx, CONTENT_SEGMENTS, bytes(key))?;
        let tail = ask(tx, CONTENT_SEGMENT_TAILS, bytes(key))?;
        Ok(async move {
            let head = head.await?;
            let tail = tail.await?;
            head.map(|head| joined_segment(head, tail)).transpose()
        })
    }

    /// A read-write transaction over `stores`.
    fn writing<'a>(&'a self, stores: &[&str]) -> Result<Transaction<'a>, StoreError> {
        self.db
            .transaction(stores.to_vec())
            .with_mode(TransactionMode::Readwrite)
            .build()
            .map_err(backend)
    }

    /// Whether `root` is marked erased, read in `tx`.
    async fn erased_in(tx: &Transaction<'_>, root: &ContentRoot) -> Result<bool, StoreError> {
        let found: Option<JsValue> = tx
            .object_store(CONTENT_ERASED)
            .map_err(backend)?
            .get(bytes(root))
            .primitive()
            .map_err(backend)?
            .await
            .map_err(backend)?;
        Ok(found.is_some())
    }

    /// Issues `writes` (`(object store, key, value)`) in `tx`; its commit waits for them.
    fn put_all(tx: &Transaction<'_>, writes: &[(&str, &[u8], &[u8])]) -> Result<(), StoreError> {
        for (store, key, value) in writes {
            drop(
                tx.object_store(store)
                    .map_err(backend)?
                    .put(bytes(value))
                    .with_key(bytes(key))
                    .primitive()
                    .map_err(backend)?,
            );
        }
        Ok(())
    }

    /// Puts `writes` (`(object store, key, value)`) in one transaction unless `root` was
    /// erased; whether they were put.
    async fn put_unless_erased(
        &self,
        root: &ContentRoot,
        writes: &[(&str, &[u8], &[u8])],
    ) -> Result<bool, StoreError> {
        let mut stores: Vec<&str> = writes.iter().map(|(store, _, _)| *store).collect();
        stores.push(CONTENT_ERASED);
        stores.sort_unstable();
        stores.dedup();
        let tx = self.writing(&stores)?;
        let written = async {
            if Self::erased_in(&tx, root).await? {
                return Ok(false);
            }
            Self::put_all(&tx, writes)?;
            Ok(true)
        }
        .await;
        match written {
            Ok(kept) => {
                tx.commit().await.map_err(backend)?;
                Ok(kept)
            }
            Err(e) => {
                let _ = tx.abort().await;
                Err(e)
            }
        }
    }
}

impl ContentStore for IdbStore {
    async fn put_tree(&self, root: &ContentRoot, leaves: &[[u8; 32]]) -> Result<(), StoreError> {
        let leaves = encode_leaves(leaves);
        self.put_unless_erased(root, &[(CONTENT_TREES, &root[..], &leaves)])
            .await
            .map(drop)
    }

    async fn tree(&self, root: &ContentRoot) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
        let value = self.get_one(CONTENT_TREES, bytes(root)).await?;
        value
            .map(|v| bytes_of(&v, "segment tree").and_then(|b| decode_leaves(&b)))
            .transpose()
    }

    async fn put_segment(
        &self,
        root: &ContentRoot,
        index: u32,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let key = segment_key(root, index);
        let writes: Vec<_> = segment_writes(&key, sealed).collect();
        self.put_unless_erased(root, &writes).await
    }

    async fn put_segments(
        &self,
        root: &ContentRoot,
        segments: &[(u32, &[u8])],
    ) -> Result<bool, StoreError> {
        let keys = segment_keys(root, segments);
        let writes: Vec<(&str, &[u8], &[u8])> = keys
            .iter()
            .zip(segments)
            .flat_map(|(key, (_, sealed))| segment_writes(key, sealed))
            .collect();
        self.put_unless_erased(root, &writes).await
    }

    async fn put_single_segment(
        &self,
        root: &ContentRoot,
        leaves: &[[u8; 32]],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let key = segment_key(root, 0);
        let leaves = encode_leaves(leaves);
        let mut writes = vec![(CONTENT_TREES, &root[..], &leaves[..])];
        writes.extend(segment_writes(&key, sealed));
        self.put_unless_erased(root, &writes).await
    }

    fn staging(&self) -> &Staging {
        &self.staging
    }

    async fn segment(&self, root: &ContentRoot, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self
            .db
            .transaction([CONTENT_SEGMENTS, CONTENT_SEGMENT_TAILS])
            .build()
            .map_err(backend)?;
        let found = async { Self::segment_in(&tx, &segment_key(root, index))?.await }.await;
        release(tx);
        found
    }

    async fn segment_to_serve(&self, root: &ContentRoot, index: u32) -> Result<Served, StoreError> {
        let tx = self
            .db
            .transaction([CONTENT_ERASED, CONTENT_SEGMENTS, CONTENT_SEGMENT_TAILS])
            .build()
            .map_err(backend)?;
        let found = async {
            // All asked at once: one round trip.
            let erased = ask(&tx, CONTENT_ERASED, bytes(root))?;
            let segment = Self::segment_in(&tx, &segment_key(root, index))?;
            Ok(match (erased.await?, segment.await?) {
                (Some(_), _) => Served::Erased,
                (None, Some(sealed)) => Served::Segment(sealed),
                (None, None) => Served::NotHeld,
            })
        }
        .await;
        release(tx);
        found
    }

    async fn held(&self, root: &ContentRoot) -> Result<Vec<u32>, StoreError> {
        let tx = self
            .db
            .transaction(CONTENT_SEGMENTS)
            .build()
            .map_err(backend)?;
        let keys = async {
            tx.object_store(CONTENT_SEGMENTS)
                .map_err(backend)?
                .get_all_keys::<JsValue>()
                .with_query::<JsValue, _>(segments_of(root))
                .primitive()
                .map_err(backend)?
                .await
                .map_err(backend)
        }
        .await;
        release(tx);
        let mut held = Vec::new();
        for key in keys? {
            let key = Uint8Array::new(&key.map_err(backend)?).to_vec();
            held.push(segment_index(&key)?);
        }
        Ok(held)
    }

    async fn erase(&self, root: &ContentRoot) -> Result<(), StoreError> {
        let tx = self.writing(&[
            CONTENT_TREES,
            CONTENT_SEGMENTS,
            CONTENT_SEGMENT_TAILS,
            CONTENT_ERASED,
        ])?;
        let written = (|| {
            drop(
                tx.object_store(CONTENT_TREES)
                    .map_err(backend)?
                    .delete(bytes(root))
                    .primitive()
                    .map_err(backend)?,
            );
            for store in [CONTENT_SEGMENTS, CONTENT_SEGMENT_TAILS] {
                drop(
                    tx.object_store(store)
                        .map_err(backend)?
                        .delete::<JsValue, _>(segments_of(root))
                        .primitive()
                        .map_err(backend)?,
                );
            }
            drop(
                tx.object_store(CONTENT_ERASED)
                    .map_err(backend)?
                    .put(JsValue::TRUE)
                    .with_key(bytes(root))
                    .primitive()
                    .map_err(backend)?,
            );
            Ok::<(), StoreError>(())
        })();
        if let Err(e) = written {
            let _ = tx.abort().await;
            return Err(e);
        }
        tx.commit().await.map_err(backend)
    }

    async fn is_erased(&self, root: &ContentRoot) -> Result<bool, StoreError> {
        Ok(self.get_one(CONTENT_ERASED, bytes(root)).await?.is_some())
    }

    async fn segment_count(&self) -> Result<u64, StoreError> {
        let tx = self
            .db
            .transaction(CONTENT_SEGMENTS)
            .build()
            .map_err(backend)?;
        let count = async {
            tx.object_store(CONTENT_SEGMENTS)
                .map_err(backend)?
                .count()
                .primitive()
                .map_err(backend)?
                .await
                .map_err(backend)
        }
        .await;
        release(tx);
        Ok(u64::from(count?))
    }
}
