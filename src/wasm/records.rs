//! Records on bound chains for JavaScript (see [`crate::client::Account::post`]): posting,
//! editing and deleting private content, listing records with their history, and reading a
//! content — fetched from the chain's peers (the relay included) when this device lacks it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use futures_util::lock::{Mutex, MutexGuard};
use js_sys::{Array, Object, Uint8Array};
use rand_core::OsRng;
use wasm_bindgen::prelude::*;

use super::identity::{flush, WasmBoundChain};
use super::{byte_array, hex, invalid, now, parse_id, promise, set, AnyStore, JsFailure};
use crate::client::{Account, ClientError, SegmentSource};
use crate::mutability::{LogEvent, LogKind, RecordView, Records, VersionKind};
use crate::net::{NetError, NodeHandle};
use crate::offchain::store::root_hex;
use crate::offchain::{Commitment, ContentRoot, ContentStatus, OffchainError, MAX_INLINE_LEN};
use crate::walytis::BlockId;

/// The most segments [`WasmBoundChain::segments`] opens in one call (4 MiB): what a page
/// reads back is bounded in wasm memory whatever it asks for (`pkg/record.js` asks 16).
const SEGMENTS_PER_CALL: u32 = 64;

fn kind_name(kind: VersionKind) -> &'static str {
    match kind {
        VersionKind::Create => "created",
        VersionKind::Edit => "edited",
        VersionKind::Delete { .. } => "deleted",
    }
}

/// The plain object JS receives for a record event.
fn event_object(event: &LogEvent) -> JsValue {
    let o = Object::new();
    set(&o, "seq", event.seq as f64);
    set(&o, "kind", event.kind.name());
    set(&o, "record", event.record.to_string());
    set(&o, "version", event.version.to_string());
    if event.kind == (LogKind::Deleted { erase: true }) {
        set(&o, "erase", true);
    }
    o.into()
}

/// `status`, and `done`/`total` while fetching, on `object`.
fn set_status(object: &Object, status: ContentStatus) {
    let name = match status {
        ContentStatus::Available => "available",
        ContentStatus::Fetching { done, total } => {
            set(object, "done", done as f64);
            set(object, "total", total as f64);
            "fetching"
        }
        ContentStatus::Missing => "missing",
        ContentStatus::Erased => "erased",
    };
    set(object, "status", name);
}

fn ids(list: &[BlockId]) -> Array {
    list.iter()
        .map(|id| JsValue::from(id.to_string()))
        .collect()
}

/// The plain object JS receives for a record.
fn record_object(view: &RecordView, status: Option<ContentStatus>) -> JsValue {
    let o = Object::new();
    set(&o, "id", view.id.to_string());
    set(&o, "author", view.author.clone());
    set(
        &o,
        "current",
        view.current
            .map_or(JsValue::NULL, |id| id.to_string().into()),
    );
    set(
        &o,
        "deleted",
        view.deleted
            .map_or(JsValue::NULL, |id| id.to_string().into()),
    );
    set(&o, "erased", view.erased);
    set(&o, "conflicts", ids(&view.conflicts));
    if let Some(content) = &view.content {
        set(&o, "root", root_hex(&content.root));
        set(&o, "type", content.media_type.clone());
        set(&o, "size", content.size as f64);
    }
    match status {
        Some(status) => set_status(&o, status),
        None => set(&o, "status", if view.erased { "erased" } else { "none" }),
    }
    let history: Array = view
        .history
        .iter()
        .map(|entry| {
            let h = Object::new();
            set(&h, "id", entry.id.to_string());
            set(&h, "device", hex(entry.author.key_bytes()));
            set(&h, "kind", kind_name(entry.kind));
            set(&h, "time", entry.time as f64);
            set(&h, "erased", entry.erased);
            if let Some(content) = &entry.content {
                set(&h, "root", root_hex(&content.root));
                set(&h, "type", content.media_type.clone());
                set(&h, "size", content.size as f64);
            }
            JsValue::from(h)
        })
        .collect();
    set(&o, "history", history);
    let refused: Array = view
        .refused
        .iter()
        .map(|(id, why)| {
            let r = Object::new();
            set(&r, "id", id.to_string());
            set(&r, "reason", why.to_string());
            JsValue::from(r)
        })
        .collect();
    set(&o, "refused", refused);
    o.into()
}

/// The commitment of `id`: a record's current version, or (`version`) the version `id`.
fn commitment_of(records: &Records, id: &BlockId, version: bool) -> Result<Commitment, JsFailure> {
    if !version {
        if let Some(view) = records.record(id) {
            return match (view.content, view.erased) {
                (Some(content), _) => Ok(content),
                (None, true) => Err(ClientError::ContentUnavailable(ContentStatus::Erased).into()),
                (None, false) => Err(ClientError::RecordDeleted(*id).into()),
            };
        }
    }
    // Only the version's own record is folded, not every record of the chain.
    let entry = records
        .version(id)
        .and_then(|v| records.record(&v.record()))
        .and_then(|view| view.history.into_iter().find(|h| h.id == *id))
        .ok_or(ClientError::NoSuchRecord(*id))?;
    let status = if entry.erased {
        ContentStatus::Erased
    } else {
        ContentStatus::Missing
    };
    entry
        .content
        .ok_or_else(|| ClientError::ContentUnavailable(status).into())
}

/// Where `content` stands here, the store read only for contents not seen all here before
/// (see `WasmBoundChain::available`).
async fn status_of(
    account: &Account<AnyStore>,
    available: &RefCell<HashSet<ContentRoot>>,
    content: &Commitment,
) -> Result<ContentStatus, JsFailure> {
    if available.borrow().contains(&content.root) {
        return Ok(ContentStatus::Available);
    }
    let status = account.fetch(content).await?.status();
    if status == ContentStatus::Available {
        available.borrow_mut().insert(content.root);
    }
    Ok(status)
}

/// A content JavaScript reads a segment at a time (see [`WasmBoundChain::post_from`]).
struct JsSource {
    read: js_sys::Function,
    size: u64,
}

impl JsSource {
    fn new(read: js_sys::Function, size: f64) -> Result<Self, JsFailure> {
        if !(size.is_finite() && size >= 0.0 && size.fract() == 0.0) {
            return Err(invalid("size must be a whole number of bytes"));
        }
        Ok(JsSource {
            read,
            size: size as u64,
        })
    }
}

impl SegmentSource for JsSource {
    fn size(&self) -> u64 {
        self.size
    }

    async fn segment(&mut self, index: u32) -> Result<Vec<u8>, ClientError> {
        let read = |e: JsValue| {
            ClientError::Content(OffchainError::Malformed(format!(
                "reading segment {index}: {}",
                e.as_string()
                    .or_else(|| js_sys::Error::from(e).message().as_string())
                    .unwrap_or_default()
            )))
        };
        let pending = self
            .read
            .call1(&JsValue::NULL, &index.into())
            .map_err(read)?;
        let bytes = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&pending))
            .await
            .map_err(read)?;
        let bytes = bytes
            .dyn_into::<Uint8Array>()
            .map_err(|_| read(JsValue::from_str("not a Uint8Array")))?;
        Ok(bytes.to_vec())
    }
}

/// After a post or an edit: what the account wrote pushed to the chain's peers (also when it
/// failed part way), then the version's content offered to the relays; the written version's
/// ID. With `posted`, the record as a listing shows it instead (see
/// [`Account::posted_record`]): a post need not list the chain to show what it posted.
async fn written(
    node: &NodeHandle,
    chain: BlockId,
    mut account: MutexGuard<'_, Account<AnyStore>>,
    written: Result<BlockId, ClientError>,
    posted: bool,
) -> Result<JsValue, JsFailure> {
    flush(&mut account, node).await?;
    let version = written?;
    // Read from the version's block alone: folding the chain here would take the page's
    // time (and the machine's) while the message is on its way.
    let (content, shown) = match posted {
        true => {
            let view = account.posted_record(&chain, &version).await?;
            (view.content.clone(), Some(view))
        }
        false => (account.version_content(&chain, &version).await?, None),
    };
    drop(account);
    match content {
        // It went to the relays with its block (see `Publication::inline`): the offer, for
        // the one that missed that push, waits a moment so as not to race it, and is kept
        // in the store meanwhile (a page closed right after the post loses nothing).
        Some(content) if content.size <= MAX_INLINE_LEN => {
            node.offer_content_later(chain, content.shape()).await?;
        }
        Some(content) => {
            node.offer_content(chain, content.shape()).await?;
        }
        None => {}
    }
    Ok(match shown {
        Some(view) => record_object(&view, Some(ContentStatus::Available)),
        None => version.to_string().into(),
    })
}

/// The commitment of record `id`'s current content (or of version `id`), once all here:
/// fetched from the chain's peers first if not (not under the account's lock: a transfer can
/// take a while).
async fn here(
    inner: &Rc<Mutex<Account<AnyStore>>>,
    node: &NodeHandle,
    chain: BlockId,
    available: &RefCell<HashSet<ContentRoot>>,
    id: &str,
    version: bool,
) -> Result<Commitment, JsFailure> {
    let id = parse_id(id)?;
    let (commitment, status) = {
        let mut account = inner.lock().await;
        let records = account.records_of(&chain).await?;
        let commitment = commitment_of(&records, &id, version)?;
        let status = status_of(&account, available, &commitment).await?;
        (commitment, status)
    };
    if status != ContentStatus::Available {
        node.fetch_content(chain, commitment.clone()).await?;
    }
    Ok(commitment)
}

#[wasm_bindgen]
impl WasmBoundChain {
    /// Posts a record: `body` sealed into the content store, its commitment in a block pushed
    /// to the chain's peers, the content offered to the relays; resolves to the record as
    /// `records()` lists it.
    pub fn post(&self, body: JsValue, media_type: String) -> js_sys::Promise {
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        promise(async move {
            let body = byte_array(&body, "content")?;
            let mut account = inner.lock().await;
            let posted = account
                .post(&chain, &body, &media_type, now(), &mut OsRng)
                .await;
            written(&node, chain, account, posted, true).await
        })
    }

    /// Posts a record whose content JavaScript hands over a segment at a time, never whole
    /// (a `Blob`): `read(index)` resolves to the plaintext of segment `index` (64 KiB, the
    /// last one the rest of `size` bytes), and is asked twice for each (see
    /// [`Account::post_from`]).
    #[wasm_bindgen(js_name = postFrom)]
    pub fn post_from(
        &self,
        read: js_sys::Function,
        size: f64,
        media_type: String,
    ) -> js_sys::Promise {
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        promise(async move {
            let mut source = JsSource::new(read, size)?;
            let mut account = inner.lock().await;
            let posted = account
                .post_from(&chain, &mut source, &media_type, now(), &mut OsRng)
                .await;
            written(&node, chain, account, posted, true).await
        })
    }

    /// [`WasmBoundChain::edit`] with the content handed over as by
    /// [`WasmBoundChain::post_from`].
    #[wasm_bindgen(js_name = editFrom)]
    pub fn edit_from(
        &self,
        record: String,
        read: js_sys::Function,
        size: f64,
        media_type: String,
    ) -> js_sys::Promise {
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        promise(async move {
            let record = parse_id(&record)?;
            let mut source = JsSource::new(read, size)?;
            let mut account = inner.lock().await;
            let edited = account
                .edit_from(&chain, &record, &mut source, &media_type, now(), &mut OsRng)
                .await;
            written(&node, chain, account, edited, false).await
        })
    }

    /// Edits a record this person wrote; resolves to the new version's ID.
    pub fn edit(&self, record: String, body: JsValue, media_type: String) -> js_sys::Promise {
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        promise(async move {
            let record = parse_id(&record)?;
            let body = byte_array(&body, "content")?;
            let mut account = inner.lock().await;
            let edited = account
                .edit(&chain, &record, &body, &media_type, now(), &mut OsRng)
                .await;
            written(&node, chain, account, edited, false).await
        })
    }

    /// Deletes a record (its author, or an admin); with `erase`, every version's content too,
    /// here and on the relays this node reaches (resolves once they answered).
    pub fn delete(&self, record: String, erase: bool) -> js_sys::Promise {
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        promise(async move {
            let record = parse_id(&record)?;
            let mut account = inner.lock().await;
            let deleted = account
                .delete(&chain, &record, erase, now(), &mut OsRng)
                .await;
            flush(&mut account, &node).await?;
            let erasures = account.take_erasures();
            drop(account);
            let deleted = deleted?;
            // The relays that keep the contents drop them too (those reachable now).
            for erasure in erasures {
                node.erase_content(erasure.chain, erasure.root, erasure.secret)
                    .await?;
            }
            Ok(deleted.to_string().into())
        })
    }

    /// Every record this device can read, in chain order, each with its current content's
    /// status here and its whole history. A current content not all here is fetched in the
    /// background (the node keeps asking the chain's peers, with backoff, until it is; one
    /// fetch per content however often this is called): `progress` events follow it. One
    /// larger than `max_fetch` bytes is not fetched (`tooLarge` on its record); one whose
    /// last fetch found no room in the store's quota is `waitingForRoom` (asked again each
    /// listing: erasures may have made room). One this device posted that no relay keeps
    /// yet is `waitingForRelay` (see `NodeHandle::unkept_offers`).
    pub fn records(&self, max_fetch: f64) -> js_sys::Promise {
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        let (fetching, available) = (self.fetching.clone(), self.available.clone());
        let no_room = self.no_room.clone();
        promise(async move {
            let mut account = inner.lock().await;
            let records = account.records_of(&chain).await?;
            // This device's contents no relay keeps yet (a node stopped meanwhile: none).
            let unkept: HashSet<_> = node
                .unkept_offers()
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
            let list = Array::new();
            for record in records.records() {
                let Some(view) = records.record(&record) else {
                    continue;
                };
                let status = match &view.content {
                    Some(content) => Some(status_of(&account, &available, content).await?),
                    None => None,
                };
                let too_large = view
                    .content
                    .as_ref()
                    .is_some_and(|content| content.size as f64 > max_fetch);
                let wanted = !too_large
                    && matches!(
                        status,
                        Some(ContentStatus::Missing | ContentStatus::Fetching { .. })
                    );
                if let (Some(content), true) = (&view.content, wanted) {
                    // One background fetch per content, however often this is listed.
                    if fetching.borrow_mut().insert(content.root) {
                        let (node, fetching, content) =
                            (node.clone(), fetching.clone(), content.clone());
                        let no_room = no_room.clone();
                        wasm_bindgen_futures::spawn_local(async move {
                            // Its end shows in the next listing and in `progress` events.
                            let root = content.root;
                            let fetched = node.fetch_content(chain, content).await;
                            if matches!(fetched, Err(NetError::ContentQuota { .. })) {
                                no_room.borrow_mut().insert(root);
                            } else {
                                no_room.borrow_mut().remove(&root);
                            }
                            fetching.borrow_mut().remove(&root);
                        });
                    }
                }
                let object = record_object(&view, status);
                if too_large && status != Some(ContentStatus::Available) {
                    set(&Object::from(object.clone()), "tooLarge", true);
                }
                let waiting = view
                    .content
                    .as_ref()
                    .is_some_and(|content| no_room.borrow().contains(&content.root));
                if waiting && wanted {
                    set(&Object::from(object.clone()), "waitingForRoom", true);
                }
                if view
                    .content
                    .as_ref()
                    .is_some_and(|content| unkept.contains(&content.root))
                {
                    set(&Object::from(object.clone()), "waitingForRelay", true);
                }
                list.push(&object);
            }
            Ok(list.into())
        })
    }

    /// The record events after `since` (every one when `since` is negative), each once, in
    /// order: `[{ seq, kind, record, version, erase? }]` (see
    /// [`Account::record_events`]); kept in the store, so the numbers resume after a reload.
    #[wasm_bindgen(js_name = recordEvents)]
    pub fn record_events(&self, since: f64) -> js_sys::Promise {
        let (inner, chain) = (self.inner.clone(), self.chain);
        promise(async move {
            let since = (since >= 0.0).then_some(since as u64);
            let events = inner.lock().await.record_events(&chain, since).await?;
            Ok(events.iter().map(event_object).collect::<Array>().into())
        })
    }

    /// Makes sure the content of record `id`'s current version (with `version`, of the
    /// version `id`) is here, fetching it from the chain's peers first when this device
    /// lacks it: `{ commitment, segments, size }`, the commitment's bytes for
    /// [`WasmBoundChain::segments`].
    pub fn prepare(&self, id: String, version: bool) -> js_sys::Promise {
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        let available = self.available.clone();
        promise(async move {
            let commitment = here(&inner, &node, chain, &available, &id, version).await?;
            let prepared = Object::new();
            set(
                &prepared,
                "commitment",
                Uint8Array::from(&commitment.encode()[..]),
            );
            set(&prepared, "segments", commitment.segments());
            set(&prepared, "size", commitment.size as f64);
            Ok(prepared.into())
        })
    }

    /// Up to `count` segments (at most [`SEGMENTS_PER_CALL`]) of a prepared content from
    /// `from` on, opened, each at most 64 KiB: a large content is read a few segments at a
    /// time, never held whole in wasm memory (which never shrinks once grown).
    pub fn segments(&self, commitment: JsValue, from: u32, count: u32) -> js_sys::Promise {
        let (inner, chain) = (self.inner.clone(), self.chain);
        let count = count.min(SEGMENTS_PER_CALL);
        promise(async move {
            let commitment = Commitment::decode(&byte_array(&commitment, "commitment")?)
                .map_err(ClientError::from)?;
            let segments = inner
                .lock()
                .await
                .content_segments(&chain, &commitment, from..from.saturating_add(count))
                .await?;
            Ok(segments
                .iter()
                .map(|segment| Uint8Array::from(&segment[..]))
                .collect::<Array>()
                .into())
        })
    }
}
