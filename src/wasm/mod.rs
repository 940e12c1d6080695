//! JavaScript bindings: type conversion and promises only, no protocol logic.
//!
//! These raw classes (`WasmStore`, `WasmChain`) are wrapped by the hand-written
//! `pkg/index.js`, which is the API users import.

use std::rc::Rc;

#[cfg(feature = "net")]
mod identity;
#[cfg(feature = "net")]
mod node;
#[cfg(feature = "net")]
mod records;

use ed25519_dalek::SigningKey;
use futures_util::lock::Mutex;
use js_sys::{Array, Object, Reflect, Uint8Array};
use rand_core::OsRng;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::offchain::store::{Served, Staging};
use crate::offchain::{ContentRoot, ContentStore};
use crate::store::{
    BlockStore, ChainState, Commit, IdbStore, MemoryStore, Scan, StoreError, StoredBlock,
};
use crate::walytis::{Author, Block, BlockId, Chain, ChainError, Entry, Query};

/// Setting under which a store keeps this device's block-signing key.
///
/// Stored unencrypted until the identities layer lands (passphrase-derived or
/// non-extractable WebCrypto keys); the README says so.
const DEVICE_KEY: &str = "device-key";

/// The store behind a chain in the browser: IndexedDB or memory.
#[derive(Clone, Debug)]
enum AnyStore {
    Idb(IdbStore),
    Memory(MemoryStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Idb($store) => $call.await,
            AnyStore::Memory($store) => $call.await,
        }
    };
}

impl ContentStore for AnyStore {
    async fn put_tree(&self, root: &ContentRoot, leaves: &[[u8; 32]]) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_tree(root, leaves))
    }
    async fn tree(&self, root: &ContentRoot) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
        dispatch!(self, s => s.tree(root))
    }
    async fn put_segment(
        &self,
        root: &ContentRoot,
        index: u32,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.put_segment(root, index, sealed))
    }
    // Every method with a default is passed on too: the IndexedDB store overrides them.
    async fn put_segments(
        &self,
        root: &ContentRoot,
        segments: &[(u32, &[u8])],
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.put_segments(root, segments))
    }
    async fn segment_to_serve(&self, root: &ContentRoot, index: u32) -> Result<Served, StoreError> {
        dispatch!(self, s => s.segment_to_serve(root, index))
    }
    async fn put_single_segment(
        &self,
        root: &ContentRoot,
        leaves: &[[u8; 32]],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.put_single_segment(root, leaves, sealed))
    }
    fn staging(&self) -> &Staging {
        match self {
            AnyStore::Idb(s) => s.staging(),
            AnyStore::Memory(s) => s.staging(),
        }
    }
    async fn segment(&self, root: &ContentRoot, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.segment(root, index))
    }
    async fn held(&self, root: &ContentRoot) -> Result<Vec<u32>, StoreError> {
        dispatch!(self, s => s.held(root))
    }
    async fn erase(&self, root: &ContentRoot) -> Result<(), StoreError> {
        dispatch!(self, s => s.erase(root))
    }
    async fn segment_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.segment_count())
    }
    async fn is_erased(&self, root: &ContentRoot) -> Result<bool, StoreError> {
        dispatch!(self, s => s.is_erased(root))
    }
}

impl BlockStore for AnyStore {
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        dispatch!(self, s => s.commit(commit))
    }
    async fn chain_state(&self, chain: &BlockId) -> Result<Option<ChainState>, StoreError> {
        dispatch!(self, s => s.chain_state(chain))
    }
    async fn chains(&self) -> Result<Vec<BlockId>, StoreError> {
        dispatch!(self, s => s.chains())
    }
    async fn block(
        &self,
        chain: &BlockId,
        id: &BlockId,
    ) -> Result<Option<StoredBlock>, StoreError> {
        dispatch!(self, s => s.block(chain, id))
    }
    async fn scan(&self, chain: &BlockId, scan: Scan<'_>) -> Result<Vec<StoredBlock>, StoreError> {
        dispatch!(self, s => s.scan(chain, scan))
    }
    async fn heights(
        &self,
        chain: &BlockId,
        ids: &[BlockId],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        dispatch!(self, s => s.heights(chain, ids))
    }
    async fn since(
        &self,
        chain: &BlockId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, StoreError> {
        dispatch!(self, s => s.since(chain, after, limit))
    }
    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.setting(key))
    }
    async fn put_setting(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_setting(key, value))
    }
}

/// A JS `Error` with a stable `code` property.
fn error(code: &str, message: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&message.to_string());
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

fn store_code(e: &StoreError) -> &'static str {
    match e {
        StoreError::Foreign { .. } => "STORE_FOREIGN",
        StoreError::Corrupt(_) => "STORE_CORRUPT",
        StoreError::Conflict { .. } => "STORE_CONFLICT",
        StoreError::Backend(_) => "STORE_FAILED",
    }
}

fn chain_code(e: &ChainError) -> &'static str {
    match e {
        ChainError::InvalidBlock(_) | ChainError::NotGenesis(_) => "BLOCK_INVALID",
        ChainError::Store(e) => store_code(e),
        ChainError::UnknownChain(_) => "NOT_FOUND",
        ChainError::PendingFull => "PENDING_FULL",
        // The refusing rule's own code: REVOKED, NOT_A_WRITER, INVITATION_FORGED, ...
        ChainError::NotAdmitted(why) => why.code(),
        ChainError::Rules(_) => "UNKNOWN_RULE",
        ChainError::AwaitingAuthority { .. } => "AWAITING_AUTHORITY",
    }
}

impl From<ChainError> for JsFailure {
    fn from(e: ChainError) -> Self {
        JsFailure(error(chain_code(&e), e))
    }
}

impl From<StoreError> for JsFailure {
    fn from(e: StoreError) -> Self {
        JsFailure(error(store_code(&e), e))
    }
}

/// An error on its way to JavaScript: a JS `Error` with a `code`.
pub(crate) struct JsFailure(JsValue);

impl From<JsValue> for JsFailure {
    fn from(e: JsValue) -> Self {
        JsFailure(e)
    }
}

impl From<JsFailure> for JsValue {
    fn from(e: JsFailure) -> Self {
        e.0
    }
}

fn invalid(message: impl std::fmt::Display) -> JsFailure {
    JsFailure(error("INVALID_ARGUMENT", message))
}

fn parse_id(text: &str) -> Result<BlockId, JsFailure> {
    text.parse()
        .map_err(|e| invalid(format_args!("{text:?} is not a block ID: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_author(text: &str) -> Result<Author, JsFailure> {
    let bad = || {
        invalid(format_args!(
            "{text:?} is not an author key (64 hex digits)"
        ))
    };
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 34];
    key[..2].copy_from_slice(&[0xed, 0x01]);
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        key[2 + i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Author::from_tagged_bytes(&key).map_err(|_| bad())
}

fn strings(values: impl IntoIterator<Item = impl std::fmt::Display>) -> Array {
    values
        .into_iter()
        .map(|v| JsValue::from_str(&v.to_string()))
        .collect()
}

fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(object, &key.into(), &value.into());
}

/// The plain object JS receives for a block.
fn block_object(entry: &Entry) -> JsValue {
    let block = &entry.block;
    let object = Object::new();
    set(&object, "id", block.id().to_string());
    set(&object, "chain", block.chain_id().to_string());
    set(&object, "parents", strings(block.parents()));
    set(&object, "height", block.height() as f64);
    set(&object, "author", hex(block.author().key_bytes()));
    set(&object, "time", block.time() as f64);
    set(&object, "topics", strings(block.topics()));
    set(&object, "body", Uint8Array::from(block.body()));
    set(&object, "seq", entry.seq as f64);
    set(&object, "bytes", Uint8Array::from(block.bytes()));
    object.into()
}

fn string_array(value: &JsValue, what: &str) -> Result<Vec<String>, JsFailure> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| invalid(format_args!("{what} must be an array of strings")))?;
    array
        .iter()
        .map(|v| {
            v.as_string()
                .ok_or_else(|| invalid(format_args!("{what} must be an array of strings")))
        })
        .collect()
}

fn byte_array(value: &JsValue, what: &str) -> Result<Vec<u8>, JsFailure> {
    value
        .dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .ok_or_else(|| invalid(format_args!("{what} must be a Uint8Array")))
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// A store handle for JavaScript.
#[wasm_bindgen]
pub struct WasmStore {
    store: AnyStore,
    name: String,
}

#[wasm_bindgen]
impl WasmStore {
    /// Opens the IndexedDB store `name`.
    #[wasm_bindgen(js_name = openIndexedDb)]
    pub async fn open_indexed_db(name: String) -> Result<WasmStore, JsValue> {
        let store = IdbStore::open(&name).await.map_err(JsFailure::from)?;
        Ok(WasmStore {
            store: AnyStore::Idb(store),
            name,
        })
    }

    /// A store in memory, gone when the page closes.
    pub fn memory() -> WasmStore {
        WasmStore {
            store: AnyStore::Memory(MemoryStore::new()),
            name: format!("memory-{}", now()),
        }
    }

    /// The store's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// IDs of the chains in the store.
    pub async fn chains(&self) -> Result<Array, JsValue> {
        let chains = self.store.chains().await.map_err(JsFailure::from)?;
        Ok(strings(chains))
    }
}

impl AnyStore {
    /// This device's signing key, made on first use.
    async fn device_key(&self) -> Result<SigningKey, JsFailure> {
        match self.setting(DEVICE_KEY).await? {
            Some(bytes) => {
                let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    JsFailure::from(StoreError::Corrupt("device key is not 32 bytes".into()))
                })?;
                Ok(SigningKey::from_bytes(&secret))
            }
            None => {
                let key = SigningKey::generate(&mut OsRng);
                self.put_setting(DEVICE_KEY, key.as_bytes()).await?;
                Ok(key)
            }
        }
    }
}

struct ChainHandle {
    chain: Mutex<Chain<AnyStore>>,
    key: SigningKey,
}

/// A chain handle for JavaScript.
#[wasm_bindgen]
pub struct WasmChain {
    inner: Rc<ChainHandle>,
    id: BlockId,
}

fn promise<F>(future: F) -> js_sys::Promise
where
    F: std::future::Future<Output = Result<JsValue, JsFailure>> + 'static,
{
    future_to_promise(async move { future.await.map_err(JsValue::from) })
}

#[wasm_bindgen]
impl WasmChain {
    /// Creates a chain in `store`, its genesis carrying `topics` and `body`.
    pub async fn create(
        store: &WasmStore,
        topics: JsValue,
        body: JsValue,
    ) -> Result<WasmChain, JsValue> {
        let topics = string_array(&topics, "topics")?;
        let body = if body.is_undefined() || body.is_null() {
            Vec::new()
        } else {
            byte_array(&body, "body")?
        };
        let store = store.store.clone();
        let key = store.device_key().await?;
        let chain = Chain::create(store, &crate::identity::rules(), &key, now(), topics, body)
            .await
            .map_err(JsFailure::from)?;
        Ok(Self::wrap(chain, key))
    }

    /// Starts a replica of someone else's chain from its encoded genesis block (or opens it
    /// if the store already holds it).
    #[wasm_bindgen(js_name = fromGenesis)]
    pub async fn from_genesis(store: &WasmStore, genesis: JsValue) -> Result<WasmChain, JsValue> {
        let bytes = byte_array(&genesis, "genesis")?;
        let genesis = Block::decode(&bytes).map_err(|e| JsFailure::from(ChainError::from(e)))?;
        let store = store.store.clone();
        let key = store.device_key().await?;
        let chain = Chain::from_genesis(store, &crate::identity::rules(), genesis)
            .await
            .map_err(JsFailure::from)?;
        Ok(Self::wrap(chain, key))
    }

    /// Opens a chain the store holds.
    pub async fn open(store: &WasmStore, id: String) -> Result<WasmChain, JsValue> {
        let id = parse_id(&id)?;
        let store = store.store.clone();
        let key = store.device_key().await?;
        let chain = Chain::open(store, &crate::identity::rules(), id)
            .await
            .map_err(JsFailure::from)?;
        Ok(Self::wrap(chain, key))
    }

    fn wrap(chain: Chain<AnyStore>, key: SigningKey) -> WasmChain {
        WasmChain {
            id: chain.id(),
            inner: Rc::new(ChainHandle {
                chain: Mutex::new(chain),
                key,
            }),
        }
    }

    /// The chain ID.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.id.to_string()
    }

    /// Appends blocks `[{ body, topics }]` in one transaction; resolves to the new blocks.
    #[wasm_bindgen(js_name = addBlocks)]
    pub fn add_blocks(&self, items: Array) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut drafts = Vec::with_capacity(items.length() as usize);
            for item in items.iter() {
                let body = byte_array(&Reflect::get(&item, &"body".into())?, "body")?;
                let topics = string_array(&Reflect::get(&item, &"topics".into())?, "topics")?;
                drafts.push((body, topics));
            }
            let mut chain = inner.chain.lock().await;
            let entries = chain.append(&inner.key, now(), drafts).await?;
            Ok(entries.iter().map(block_object).collect::<Array>().into())
        })
    }

    /// Offers encoded blocks received from elsewhere; resolves to
    /// `{ accepted: Block[], waiting: string[], duplicates: string[], rejected: [{ id, code, message }] }`.
    pub fn insert(&self, items: Array) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let bytes = items
                .iter()
                .map(|item| byte_array(&item, "block"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut chain = inner.chain.lock().await;
            chain.refresh().await?;
            let report = chain.insert(bytes).await?;
            let result = Object::new();
            let accepted: Array = report.accepted.iter().map(block_object).collect();
            set(&result, "accepted", accepted);
            set(
                &result,
                "waiting",
                strings(report.waiting.iter().map(|(id, _)| id)),
            );
            set(&result, "duplicates", strings(&report.duplicates));
            let rejected: Array = report
                .rejected
                .iter()
                .map(|(id, e)| {
                    let object = Object::new();
                    set(&object, "id", id.to_string());
                    set(&object, "code", chain_code(e));
                    set(&object, "message", e.to_string());
                    JsValue::from(object)
                })
                .collect();
            set(&result, "rejected", rejected);
            Ok(result.into())
        })
    }

    /// One block by ID, `undefined` if absent.
    pub fn block(&self, id: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let id = parse_id(&id)?;
            let chain = inner.chain.lock().await;
            Ok(match chain.block(&id).await? {
                Some(entry) => block_object(&entry),
                None => JsValue::UNDEFINED,
            })
        })
    }

    /// A page of blocks in chain order; `from` is the ID of the last block of the previous page.
    pub fn blocks(
        &self,
        from: Option<String>,
        limit: u32,
        reverse: bool,
        topic: Option<String>,
        author: Option<String>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let chain = inner.chain.lock().await;
            let after = match from {
                Some(from) => {
                    let id = parse_id(&from)?;
                    let entry = chain.block(&id).await?.ok_or_else(|| {
                        JsFailure(error(
                            "NOT_FOUND",
                            format_args!("no block {id} in this chain"),
                        ))
                    })?;
                    Some(entry.block.position())
                }
                None => None,
            };
            let author = author.as_deref().map(parse_author).transpose()?;
            let query = Query {
                topic: topic.as_deref(),
                author: author.as_ref(),
                after,
                reverse,
                limit: limit as usize,
            };
            let entries = chain.blocks(query).await?;
            Ok(entries.iter().map(block_object).collect::<Array>().into())
        })
    }

    /// The current leaves.
    pub fn leaves(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut chain = inner.chain.lock().await;
            chain.refresh().await?;
            Ok(strings(chain.leaves()).into())
        })
    }

    /// The number of blocks, the genesis included.
    pub fn count(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut chain = inner.chain.lock().await;
            chain.refresh().await?;
            Ok(JsValue::from(chain.len() as f64))
        })
    }

    /// Blocks with a sequence number above `seq` (-1: from the start), ascending, at most `limit`.
    pub fn since(&self, seq: f64, limit: u32) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let after = if seq < 0.0 { None } else { Some(seq as u64) };
            let chain = inner.chain.lock().await;
            let entries = chain.since(after, limit as usize).await?;
            Ok(entries.iter().map(block_object).collect::<Array>().into())
        })
    }
}
