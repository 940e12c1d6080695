//! Offchain content over `/endra/content/1`: this node serves its content store to peers
//! (never erased content), and fetches content from a chain's peers with the sans-IO
//! [`Fetch`], one tree or segment at a time, every answer verified before it is kept.
//!
//! A fetch asks one peer of the chain at a time — the relays it uses before other peers, the
//! tree first, then up to 16 segments in flight — and stays with it while it answers; a peer
//! that has nothing (or fails) is skipped for the round, one whose answer does not verify is
//! struck — never asked again — and another is asked. When every peer was tried the fetch
//! waits (1 s, doubling to 30 s) and starts a new round, for as long as it takes: content a
//! peer may yet bring is never given up by the node that wants it. Progress is reported as
//! [`NodeEvent::Content`].
//!
//! A relay's mailbox keeps content for when its writer is offline: a writer offers it
//! ([`ContentRequest::Offer`]: root and size only), and a mailbox that keeps the chain and
//! has room fetches it like any content. Those fetches are bounded, as anyone can offer:
//! so many at once, and one no piece of which arrives for a while is given up, its room
//! given back.

use std::collections::{HashMap, HashSet};

use libp2p::gossipsub::IdentTopic;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;

use super::handle::Reply;
use super::held::HeldRequests;
use super::logline::LogLine;
use super::{log, NetError, Node, NodeEvent, NodeStore};
use crate::offchain::commitment::erase_check;
use crate::offchain::store::{root_hex, STORE_BATCH};
use crate::offchain::transfer::sealed_size;
use crate::offchain::{
    erase_on_request, serve, Commitment, ContentRequest, ContentResponse, ContentRoot,
    ContentShape, ContentStatus, Fetch, InlineContent, TransferError, SEGMENT_LEN, TAG_LEN,
};
use crate::walytis::store::StoreError;
use crate::walytis::BlockId;

/// First wait after a round in which no peer had the content (ms); doubles up to
/// [`MAX_RETRY_MS`].
const FIRST_RETRY_MS: u64 = 1_000;
/// Longest wait between rounds (ms).
const MAX_RETRY_MS: u64 = 30_000;
/// Segment requests one fetch keeps in flight (1 MiB): a transfer is not one round trip
/// per 64 KiB.
const WINDOW: usize = 16;

/// Erase requests kept for contents whose tree had not come yet (see `Node::on_erase`).
pub(super) const MAX_ASKED_ERASURES: usize = 1024;

/// A tree or segment read for a peer, with where its answer goes.
pub(super) type ServedRead = futures::future::LocalBoxFuture<
    'static,
    (
        request_response::ResponseChannel<ContentResponse>,
        ContentResponse,
    ),
>;
/// The most reads served at once; beyond, a request waits for its read in turn.
const MAX_SERVING: usize = 64;
/// What one segment counts against a member's content store quota: a full sealed one.
const SEALED_SEGMENT_LEN: u64 = (SEGMENT_LEN + TAG_LEN) as u64;

/// The store setting in which a mailbox counts the sealed bytes of content it accepted.
const CONTENT_BYTES_SETTING: &str = "mailbox-content-bytes";

/// A request sent to the relays (an offer, an erase request), waiting for their answers.
pub(super) struct OfferWait {
    remaining: usize,
    accepted: usize,
    /// Who awaits the count (nobody, for an offer made again by the node itself).
    reply: Option<Reply<usize>>,
    /// The content offered, for an offer (not offered again while this one is in flight).
    offer: Option<(BlockId, ContentShape)>,
}

/// The store setting listing the contents this node offered that no relay has said it keeps
/// yet (see [`ContentRequest::Kept`]):
/// `chain ‖ root ‖ size (u64 big-endian)` each, offered again while relays come and go.
const PENDING_OFFERS_SETTING: &str = "pending-offers";
/// The most contents waiting to be offered again (the oldest go first).
const MAX_PENDING_OFFERS: usize = 4096;
/// The store setting listing the erase requests this node made (`chain ‖ root ‖ secret`
/// each): made again to every relay that connects later — one unreachable at the delete
/// keeps its copy otherwise.
const PENDING_ERASURES_SETTING: &str = "pending-erasures";
/// The most erase requests kept (the oldest go first).
const MAX_PENDING_ERASURES: usize = 1024;
/// First wait between rounds of offering again (ms); doubles while no relay accepts, up to
/// [`MAX_OFFER_RETRY_MS`], and starts over when a relay connects.
const FIRST_OFFER_RETRY_MS: u64 = 5_000;
const MAX_OFFER_RETRY_MS: u64 = 300_000;
/// How long after a post a content that went with its block is offered to the relays
/// (ms; see [`Node::offer_content_later`]): the offer must not race the push — a relay that
/// took it first would fetch the text from the writer and store it before passing the
/// message on.
const DEFERRED_OFFER_MS: u64 = 1_000;

/// One content this node is fetching.
pub(super) struct Fetching {
    chain: BlockId,
    fetch: Fetch,
    /// The requests in flight, with the peer asked.
    asked: HashMap<OutboundRequestId, (PeerId, ContentRequest)>,
    /// The peer that answered last: asked again first.
    current: Option<PeerId>,
    /// Peers that had nothing, or failed, this round.
    tried: HashSet<PeerId>,
    /// Who awaits the end (nobody, for a mailbox's own fetch).
    waiters: Vec<Reply<ContentStatus>>,
    /// When the next round starts (ms since start), while waiting between rounds.
    retry_at: Option<u64>,
    backoff: u64,
    /// For a mailbox's fetch of an offered content: the sealed bytes it reserved of the
    /// quota. `None` for this node's own fetches.
    reserved: Option<u64>,
    /// For a mailbox's fetch of an offered content: who offered it, told once it is kept
    /// ([`ContentRequest::Kept`]).
    offered_by: Option<PeerId>,
    /// When a piece last arrived, or the fetch started (ms since start).
    progressed_at: u64,
    /// Peers' requests for pieces this fetch has not stored yet: answered as the pieces
    /// arrive (see `Node::hold`).
    held: HeldRequests<ResponseChannel<ContentResponse>>,
}

/// Whether `request` asks for a piece `fetch` may still bring.
fn brings(fetch: &Fetch, request: &ContentRequest) -> bool {
    if fetch.status() == ContentStatus::Erased {
        return false;
    }
    match (request, fetch.tree()) {
        (ContentRequest::Tree(_), tree) => tree.is_none(),
        (ContentRequest::Segment(..), None) => true,
        (ContentRequest::Segment(_, index), Some(_)) => {
            *index < fetch.shape().segments() && !fetch.is_held(*index)
        }
        _ => false,
    }
}

impl<S: NodeStore> Node<S> {
    /// Starts (or joins) the fetch of `commitment`'s content from `chain`'s peers; `reply`
    /// gets the final status (available), or why it cannot be had (erased, a store failure).
    pub(super) async fn fetch_content(
        &mut self,
        chain: BlockId,
        commitment: Commitment,
        reply: Reply<ContentStatus>,
    ) {
        self.fetch_shape(chain, commitment.shape(), Some(reply), None, None)
            .await;
    }

    /// Starts (or joins) the fetch of a content known by its shape, asking `first` first;
    /// `reserved`: a mailbox's fetch of an offer, and the quota it holds.
    async fn fetch_shape(
        &mut self,
        chain: BlockId,
        shape: ContentShape,
        reply: Option<Reply<ContentStatus>>,
        first: Option<PeerId>,
        reserved: Option<u64>,
    ) {
        let now = self.now();
        let root = shape.root;
        if let Some(fetching) = self.fetches.get_mut(&root) {
            // Someone asks for it now (a reader opening it, say): a fetch waiting out its
            // backoff starts a round at once, from the first wait again.
            if reply.is_some() && fetching.retry_at.is_some() {
                fetching.retry_at = None;
                fetching.tried.clear();
                fetching.backoff = FIRST_RETRY_MS;
                fetching.waiters.extend(reply);
                self.ask_next(root);
                return;
            }
            fetching.waiters.extend(reply);
            return;
        }
        let outcome = match Fetch::resume_shape(shape, &self.store).await {
            Err(e) => Err(e.into()),
            Ok(fetch) => match fetch.status() {
                ContentStatus::Available => Ok(ContentStatus::Available),
                ContentStatus::Erased => Err(TransferError::Erased.into()),
                // A member's own fetch: within its store's quota (a mailbox's offers have
                // reserved theirs).
                _ if reserved.is_none() && !self.config.mailbox => {
                    let segments = u64::from(fetch.segments_to_store());
                    match self.room_for(segments).await {
                        Ok(true) => {
                            self.start_fetch(chain, fetch, reply, first, reserved, now);
                            return;
                        }
                        Ok(false) => {
                            let needed = segments * SEALED_SEGMENT_LEN;
                            let quota = self.config.limits.content_store_bytes;
                            log_no_room(chain, &root, needed, quota);
                            Err(NetError::ContentQuota { quota, needed })
                        }
                        Err(e) => Err(TransferError::Store(e).into()),
                    }
                }
                _ => {
                    self.start_fetch(chain, fetch, reply, first, reserved, now);
                    return;
                }
            },
        };
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }

    /// Starts fetching what `fetch` lacks.
    fn start_fetch(
        &mut self,
        chain: BlockId,
        fetch: Fetch,
        reply: Option<Reply<ContentStatus>>,
        first: Option<PeerId>,
        reserved: Option<u64>,
        now: u64,
    ) {
        let root = fetch.shape().root;
        self.fetches.insert(
            root,
            Fetching {
                chain,
                fetch,
                asked: HashMap::new(),
                current: first,
                tried: HashSet::new(),
                waiters: reply.into_iter().collect(),
                retry_at: None,
                backoff: FIRST_RETRY_MS,
                reserved,
                offered_by: reserved.and(first),
                progressed_at: now,
                held: HeldRequests::default(),
            },
        );
        self.ask_next(root);
    }

    /// Whether `more` segments fit in a member's content store (see
    /// [`crate::net::Limits::content_store_bytes`]) beside those it keeps — counted again
    /// from the store — and those its fetches have yet to bring.
    async fn room_for(&self, more: u64) -> Result<bool, StoreError> {
        let kept = self.store.segment_count().await?;
        self.segments_kept.set(Some(kept));
        Ok(self.fits(kept, more))
    }

    /// Whether `more` segments fit in a member's quota beside `kept` and those its fetches
    /// have yet to bring.
    fn fits(&self, kept: u64, more: u64) -> bool {
        let coming: u64 = self
            .fetches
            .values()
            .filter(|f| f.reserved.is_none())
            .map(|f| u64::from(f.fetch.segments_to_store()))
            .sum();
        kept.saturating_add(coming)
            .saturating_add(more)
            .saturating_mul(SEALED_SEGMENT_LEN)
            <= self.config.limits.content_store_bytes
    }

    /// Offers `shape`'s content of `chain` to every relay this node uses and is connected to;
    /// `reply` gets how many accepted it (they then fetch it from this node).
    pub(super) async fn offer_content(
        &mut self,
        chain: BlockId,
        shape: ContentShape,
        reply: Reply<usize>,
    ) {
        // Listed until a relay says it keeps it (`ContentRequest::Kept`), not only until one
        // accepts it: an accepting relay may yet give the fetch up — this node stopped
        // meanwhile, say — and this node, or the next one over this store, offers it again.
        self.add_pending_offer((chain, shape)).await;
        self.ask_relays(&ContentRequest::Offer(chain, shape), Some(reply));
    }

    /// Offers `shape`'s content of `chain` to the relays [`DEFERRED_OFFER_MS`] from now. It
    /// is kept in the store's list of offers to make at once, so a node that stops before
    /// then (a page closed right after a post) loses nothing: the next node over the store
    /// offers it when it reaches a relay.
    pub(super) async fn offer_content_later(&mut self, chain: BlockId, shape: ContentShape) {
        self.add_pending_offer((chain, shape)).await;
        let due = self.now() + DEFERRED_OFFER_MS;
        self.deferred_offers.push((due, chain, shape));
    }

    /// Makes the deferred offers whose time has come (see [`Node::offer_content_later`]).
    pub(super) fn offer_deferred(&mut self) {
        let now = self.now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred_offers)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.deferred_offers = later;
        for (_, chain, shape) in due {
            // Listed since the post (`offer_content_later`), until a relay keeps it.
            self.ask_relays(&ContentRequest::Offer(chain, shape), None);
        }
    }

    /// Sends `request` (an offer, an erase request) to every relay this node uses and is
    /// connected to; `reply` gets how many answered [`ContentResponse::Accepted`]. Offers
    /// come here listed already, to be made again until a relay keeps the content (see
    /// [`Node::offer_again`]): the list is not read again for each one.
    pub(super) fn ask_relays(&mut self, request: &ContentRequest, reply: Option<Reply<usize>>) {
        let offer = match request {
            ContentRequest::Offer(chain, shape) => Some((*chain, *shape)),
            _ => None,
        };
        let relays: Vec<PeerId> = self
            .relays
            .keys()
            .filter(|relay| self.swarm.is_connected(relay))
            .copied()
            .collect();
        if relays.is_empty() {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(0));
            }
            return;
        }
        let key = self.next_offer;
        self.next_offer += 1;
        for relay in &relays {
            let id = self
                .swarm
                .behaviour_mut()
                .content
                .send_request(relay, request.clone());
            self.offers.insert(id, key);
        }
        self.offer_waits.insert(
            key,
            OfferWait {
                remaining: relays.len(),
                accepted: 0,
                reply,
                offer,
            },
        );
    }

    /// A relay's answer to an offer: accepted, or refused (or the request failed). The offer
    /// stays listed either way, until a relay keeps the content.
    fn on_offer_answer(&mut self, key: u64, accepted: bool) {
        let Some(wait) = self.offer_waits.get_mut(&key) else {
            return;
        };
        wait.remaining -= 1;
        wait.accepted += usize::from(accepted);
        if wait.remaining == 0 {
            if let Some(wait) = self.offer_waits.remove(&key) {
                if let Some(reply) = wait.reply {
                    let _ = reply.send(Ok(wait.accepted));
                }
            }
        }
    }

    /// Adds `offer` to the contents offered until a relay keeps them (a write only if it is
    /// not listed yet).
    async fn add_pending_offer(&mut self, offer: (BlockId, ContentShape)) {
        let mut list = self.pending_offers().await;
        if list.iter().any(|(_, shape)| shape.root == offer.1.root) {
            return;
        }
        list.push(offer);
        if list.len() > MAX_PENDING_OFFERS {
            list.remove(0);
        }
        self.put_pending_offers(&list).await;
    }

    /// Drops `root` from the contents offered until a relay keeps them.
    async fn drop_pending_offer(&mut self, root: &ContentRoot) {
        let mut list = self.pending_offers().await;
        let before = list.len();
        list.retain(|(_, shape)| shape.root != *root);
        if list.len() != before {
            self.put_pending_offers(&list).await;
        }
    }

    async fn put_pending_offers(&mut self, list: &[(BlockId, ContentShape)]) {
        let entries = list
            .iter()
            .map(|(chain, shape)| (*chain, shape.root, shape.size.to_be_bytes().to_vec()));
        self.put_content_list(PENDING_OFFERS_SETTING, entries).await;
    }

    /// The contents offered that no relay has said it keeps yet (a damaged entry is skipped).
    pub(super) async fn pending_offers(&self) -> Vec<(BlockId, ContentShape)> {
        self.content_list(PENDING_OFFERS_SETTING, 8)
            .await
            .into_iter()
            .filter_map(|(chain, root, size)| {
                let size = u64::from_be_bytes(size.try_into().ok()?);
                Some((chain, ContentShape { root, size }))
            })
            .collect()
    }

    /// A list kept in the store setting `key`, of `chain ‖ root ‖ tail` entries with tails of
    /// `tail` bytes (a damaged entry is skipped; a failed read is logged, and reads as empty).
    async fn content_list(&self, key: &str, tail: usize) -> Vec<(BlockId, ContentRoot, Vec<u8>)> {
        let bytes = match self.store.setting(key).await {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(e) => {
                log(LogLine::warn("content_store_failed").field("error", e));
                return Vec::new();
            }
        };
        bytes
            .chunks_exact(crate::walytis::BLOCK_ID_LEN + 32 + tail)
            .filter_map(|entry| {
                let (chain, rest) = entry.split_at(crate::walytis::BLOCK_ID_LEN);
                let (root, tail) = rest.split_at(32);
                Some((
                    BlockId::from_bytes(chain).ok()?,
                    root.try_into().ok()?,
                    tail.to_vec(),
                ))
            })
            .collect()
    }

    /// Writes the list kept in the store setting `key` (see [`Node::content_list`]); a
    /// failure is logged.
    async fn put_content_list(
        &self,
        key: &str,
        entries: impl Iterator<Item = (BlockId, ContentRoot, Vec<u8>)>,
    ) {
        let bytes: Vec<u8> = entries
            .flat_map(|(chain, root, tail)| [chain.as_bytes().as_slice(), &root, &tail].concat())
            .collect();
        if let Err(e) = self.store.put_setting(key, &bytes).await {
            log(LogLine::warn("content_store_failed").field("error", e));
        }
    }

    /// Offers again, to the relays connected now, the contents no relay has said it keeps yet
    /// (posted while none was reachable, refused, or accepted and not kept yet — the relay
    /// still fetching, or given up): on a tick once the wait is over, and
    /// at once when a relay connects (`now`). Erased ones are dropped from the list.
    pub(super) async fn offer_again(&mut self, now: bool) {
        let at = self.now();
        if now {
            self.offer_retry_ms = FIRST_OFFER_RETRY_MS;
        } else if at < self.offer_retry_at {
            return;
        }
        self.offer_retry_at = at + self.offer_retry_ms;
        self.offer_retry_ms = (self.offer_retry_ms * 2).min(MAX_OFFER_RETRY_MS);
        let pending = self.pending_offers().await;
        let in_flight: HashSet<ContentRoot> = self
            .offer_waits
            .values()
            .filter_map(|w| w.offer.map(|(_, shape)| shape.root))
            .collect();
        for (chain, shape) in pending {
            // In flight, or deferred and not due yet (it would race its push).
            let deferred = self
                .deferred_offers
                .iter()
                .any(|(_, _, s)| s.root == shape.root);
            if in_flight.contains(&shape.root) || deferred {
                continue;
            }
            if matches!(self.store.is_erased(&shape.root).await, Ok(true)) {
                self.drop_pending_offer(&shape.root).await;
                continue;
            }
            if !self
                .relays
                .keys()
                .any(|relay| self.swarm.is_connected(relay))
            {
                return;
            }
            self.ask_relays(&ContentRequest::Offer(chain, shape), None);
        }
    }

    /// Adds an erase request to those made again to relays that connect later.
    pub(super) async fn keep_pending_erasure(
        &mut self,
        chain: BlockId,
        root: ContentRoot,
        secret: [u8; 32],
    ) {
        let mut list = self.pending_erasures().await;
        if list.iter().any(|(_, r, _)| *r == root) {
            return;
        }
        list.push((chain, root, secret));
        if list.len() > MAX_PENDING_ERASURES {
            list.remove(0);
        }
        let entries = list
            .iter()
            .map(|(chain, root, secret)| (*chain, *root, secret.to_vec()));
        self.put_content_list(PENDING_ERASURES_SETTING, entries)
            .await;
    }

    /// The erase requests this node made (a damaged entry is skipped).
    async fn pending_erasures(&self) -> Vec<(BlockId, ContentRoot, [u8; 32])> {
        self.content_list(PENDING_ERASURES_SETTING, 32)
            .await
            .into_iter()
            .filter_map(|(chain, root, secret)| Some((chain, root, secret.try_into().ok()?)))
            .collect()
    }

    /// Makes this node's erase requests again to `relay`, which just connected: it may have
    /// been unreachable when a content was deleted, and still keep a copy. Once per relay
    /// and content in a run (a relay that answered is not asked again).
    pub(super) async fn erase_again(&mut self, relay: PeerId) {
        for (chain, root, secret) in self.pending_erasures().await {
            if self.erase_answered.contains(&(root, relay)) {
                continue;
            }
            let request = ContentRequest::Erase(chain, root, secret);
            let id = self
                .swarm
                .behaviour_mut()
                .content
                .send_request(&relay, request);
            self.erase_asks.insert(id, (root, relay));
        }
    }

    /// A peer offers this node a content of `chain`: a mailbox keeps it if it keeps the
    /// chain and the content fits its quota, fetching it from the offerer first.
    async fn on_offer(
        &mut self,
        peer: PeerId,
        chain: BlockId,
        shape: ContentShape,
    ) -> ContentResponse {
        if !self.config.mailbox || !self.chains.contains_key(&chain) {
            return ContentResponse::Refused;
        }
        if let Some(fetching) = self.fetches.get_mut(&shape.root) {
            // Told when it is kept: the latest to offer it (a writer's page reloaded under a
            // new peer ID, say); an earlier one hears it when it offers again.
            if fetching.reserved.is_some() {
                fetching.offered_by = Some(peer);
            }
            return ContentResponse::Accepted;
        }
        let offered = self
            .fetches
            .values()
            .filter(|f| f.reserved.is_some())
            .count();
        if offered >= self.config.limits.mailbox_fetches {
            log(LogLine::warn("mailbox_fetches_full")
                .field("chain", chain)
                .field("fetches", offered));
            return ContentResponse::Refused;
        }
        match Fetch::resume_shape(shape, &self.store)
            .await
            .map(|f| f.status())
        {
            Ok(ContentStatus::Available) => {
                // Kept already (offered again after a reload, or a text that came inline).
                self.tell_kept(peer, chain, shape.root);
                return ContentResponse::Accepted;
            }
            Ok(ContentStatus::Erased) | Err(_) => return ContentResponse::Refused,
            Ok(_) => {}
        }
        let Ok(used) = self.content_bytes_used().await else {
            return ContentResponse::Refused;
        };
        let size = sealed_size(&shape);
        let quota = self.config.limits.mailbox_content_bytes;
        if used.saturating_add(size) > quota {
            log_mailbox_full(chain, used, size);
            return ContentResponse::Refused;
        }
        // Reserved when accepted, given back if nothing of it ever arrives.
        if self.set_content_bytes_used(used + size).await.is_err() {
            return ContentResponse::Refused;
        }
        self.fetch_shape(chain, shape, None, Some(peer), Some(size))
            .await;
        ContentResponse::Accepted
    }

    /// Keeps the content that came inline with an admitted block of `chain` (see
    /// [`super::protocol::GossipFrame::Inline`]), named by its sealed bytes: staged, so that
    /// it lands in the same store transaction as the block that carries it (see
    /// [`crate::offchain::ContentStore::stage_single_segment`]) and whoever sees the block
    /// sees its content. A mailbox keeps it only within its quota, and counts it once, in
    /// the same transaction. Returns its root: call [`Node::kept_inline`] once the block was
    /// stored.
    pub(super) async fn keep_inline(
        &mut self,
        chain: BlockId,
        content: &InlineContent,
    ) -> Option<ContentRoot> {
        let (root, leaves) = content.named()?;
        let sealed = &content.sealed;
        if self.config.mailbox {
            let size = sealed.len() as u64;
            // Counted once: a copy held already is not put (nor counted) again, nor is an
            // erased one (which the commit would not keep).
            let fresh = match self.store.held(&root).await {
                Ok(held) if held.is_empty() => self.store.is_erased(&root).await.map(|e| !e),
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            match fresh {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    log(LogLine::warn("content_store_failed").field("error", e));
                    return None;
                }
            }
            let used = self.content_bytes_used().await.ok()?;
            if used.saturating_add(size) > self.config.limits.mailbox_content_bytes {
                log_mailbox_full(chain, used, size);
                return None;
            }
            self.stage_content_bytes_used(used + size);
        } else if !self.inline_fits().await {
            let quota = self.config.limits.content_store_bytes;
            log_no_room(chain, &root, SEALED_SEGMENT_LEN, quota);
            return None;
        }
        self.store.stage_single_segment(&root, &leaves, sealed);
        Some(root)
    }

    /// Whether a member's content store has room for one more segment, pushed inline: from
    /// the count as last read and counted on since — not a store read on each message's
    /// path. It is read again after each batch a fetch stores and on each tick (this
    /// device's own posts are written by other handles).
    async fn inline_fits(&self) -> bool {
        let kept = match self.segments_kept.get() {
            Some(kept) => kept,
            None => match self.store.segment_count().await {
                Ok(kept) => kept,
                Err(e) => {
                    log(LogLine::warn("content_store_failed").field("error", e));
                    return false;
                }
            },
        };
        let fits = self.fits(kept, 1);
        self.segments_kept
            .set(Some(if fits { kept + 1 } else { kept }));
        fits
    }

    /// After the block that carried a content inline was stored: what no commit took is
    /// written now; the content is reported (and erased, if that was asked before it came).
    pub(super) async fn kept_inline(&mut self, chain: BlockId, root: ContentRoot) {
        if let Err(e) = self.store.flush_staged().await {
            // Read again from the store next time: the count staged may not be written.
            self.content_used.set(None);
            log(LogLine::warn("content_store_failed").field("error", e));
        }
        match self.store.held(&root).await {
            Ok(held) if !held.is_empty() => {
                let _ = self.events.unbounded_send(NodeEvent::Content {
                    chain,
                    root,
                    status: ContentStatus::Available,
                });
                self.erase_if_asked(root).await;
            }
            // Erased here: refused for good.
            Ok(_) => {}
            Err(e) => log(LogLine::warn("content_store_failed").field("error", e)),
        }
    }

    /// A member asks this node to erase a content (see [`ContentRequest::Erase`]): erased if
    /// the secret matches the tree held; a fetch of it ends, a mailbox gets its room back. A
    /// content being fetched whose tree has not come yet is erased when it comes, if the
    /// secret matches then (a request that raced the content's own arrival).
    async fn on_erase(
        &mut self,
        chain: BlockId,
        root: ContentRoot,
        secret: [u8; 32],
    ) -> Result<ContentResponse, TransferError> {
        let response = self.erase(chain, root, secret).await?;
        if response == ContentResponse::NotHeld && self.fetches.contains_key(&root) {
            if self.asked_erasures.len() >= MAX_ASKED_ERASURES {
                self.asked_erasures.clear();
            }
            self.asked_erasures.insert(root, (chain, secret));
        }
        Ok(response)
    }

    /// A content this node was asked to erase before it held its tree is erased now, if the
    /// secret matches (call once its tree is stored).
    pub(super) async fn erase_if_asked(&mut self, root: ContentRoot) {
        if let Some((chain, secret)) = self.asked_erasures.remove(&root) {
            if let Err(e) = self.erase(chain, root, secret).await {
                log(LogLine::warn("content_erase_failed").field("error", e));
            }
        }
    }

    async fn erase(
        &mut self,
        chain: BlockId,
        root: ContentRoot,
        secret: [u8; 32],
    ) -> Result<ContentResponse, TransferError> {
        // What a mailbox gives back of its quota, counted only for the right secret (anyone
        // can send a wrong one): every segment but the last is a full one, so at most one is
        // read.
        let tree = self.store.tree(&root).await?.unwrap_or_default();
        let permitted = tree.last() == Some(&erase_check(&secret));
        let mut held_bytes = 0u64;
        if self.config.mailbox && permitted {
            let last = tree.len().saturating_sub(2) as u32;
            for index in self.store.held(&root).await? {
                held_bytes += if index < last {
                    SEALED_SEGMENT_LEN
                } else {
                    let segment = self.store.segment(&root, index).await?;
                    segment.map_or(0, |s| s.len() as u64)
                };
            }
        }
        let response = erase_on_request(&root, &secret, &self.store).await?;
        if response == ContentResponse::Accepted {
            let reserved = self.fetches.get(&root).and_then(|f| f.reserved);
            self.finish_fetch(root, Err(TransferError::Erased.into()));
            if self.config.mailbox {
                // An offered fetch cut short gives back what it reserved; a kept content
                // what it holds.
                let give_back = reserved.unwrap_or(0).max(held_bytes);
                let used = self.content_bytes_used().await?;
                self.set_content_bytes_used(used.saturating_sub(give_back))
                    .await?;
            }
            let _ = self.events.unbounded_send(NodeEvent::Content {
                chain,
                root,
                status: ContentStatus::Erased,
            });
        }
        Ok(response)
    }

    /// Sealed bytes of offered content the mailbox has accepted (read from the store once;
    /// this node is its only writer).
    async fn content_bytes_used(&self) -> Result<u64, StoreError> {
        if let Some(used) = self.content_used.get() {
            return Ok(used);
        }
        let used = match self.store.setting(CONTENT_BYTES_SETTING).await? {
            Some(bytes) => bytes.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX),
            None => 0,
        };
        self.content_used.set(Some(used));
        Ok(used)
    }

    /// Stages the quota counter to be written with the content staged beside it (see
    /// [`crate::offchain::store::Staging::stage_setting`]).
    fn stage_content_bytes_used(&self, used: u64) {
        self.store
            .staging()
            .stage_setting(CONTENT_BYTES_SETTING, &used.to_be_bytes());
        self.content_used.set(Some(used));
    }

    async fn set_content_bytes_used(&self, used: u64) -> Result<(), StoreError> {
        // Forgotten first: a failed write leaves the store's value the one to read again.
        self.content_used.set(None);
        self.store
            .put_setting(CONTENT_BYTES_SETTING, &used.to_be_bytes())
            .await?;
        self.content_used.set(Some(used));
        Ok(())
    }

    /// A mailbox gives up offered contents no piece of which arrived for
    /// [`crate::net::Limits::mailbox_fetch_patience`], giving back the quota of those it got
    /// nothing of (on every tick).
    pub(super) async fn expire_offered_fetches(&mut self) {
        let now = self.now();
        let patience = self.config.limits.mailbox_fetch_patience.as_millis() as u64;
        let stale: Vec<(ContentRoot, u64, bool)> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.asked.is_empty() && now.saturating_sub(f.progressed_at) > patience)
            .filter_map(|(root, f)| {
                let nothing = f.fetch.status() == ContentStatus::Missing;
                f.reserved.map(|size| (*root, size, nothing))
            })
            .collect();
        for (root, size, nothing) in stale {
            self.finish_fetch(root, Ok(ContentStatus::Missing));
            log(LogLine::warn("mailbox_content_abandoned").field("root", root_hex(&root)));
            if nothing {
                if let Ok(used) = self.content_bytes_used().await {
                    let _ = self.set_content_bytes_used(used.saturating_sub(size)).await;
                }
            }
        }
    }

    /// Fills the fetch's window of requests to a peer of its chain (the tree alone first),
    /// finishes it once complete, or waits for the next round.
    fn ask_next(&mut self, root: ContentRoot) {
        let now = self.now();
        let Some(fetching) = self.fetches.get(&root) else {
            return;
        };
        if fetching.retry_at.is_some_and(|at| at > now) {
            return;
        }
        if fetching.fetch.next_request().is_none() {
            if fetching.asked.is_empty() {
                let status = fetching.fetch.status();
                self.finish_fetch(root, Ok(status));
            }
            return;
        }
        let requests: Vec<ContentRequest> = if fetching.fetch.tree().is_none() {
            let tree_asked = fetching
                .asked
                .values()
                .any(|(_, r)| matches!(r, ContentRequest::Tree(_)));
            if tree_asked {
                Vec::new()
            } else {
                vec![ContentRequest::Tree(root)]
            }
        } else {
            let in_flight: HashSet<u32> = fetching
                .asked
                .values()
                .filter_map(|(_, r)| match r {
                    ContentRequest::Segment(_, index) => Some(*index),
                    _ => None,
                })
                .collect();
            fetching
                .fetch
                .missing()
                .filter(|index| !in_flight.contains(index))
                .take(WINDOW.saturating_sub(fetching.asked.len()))
                .map(|index| ContentRequest::Segment(root, index))
                .collect()
        };
        if requests.is_empty() {
            return;
        }
        let topic = IdentTopic::new(fetching.chain.to_string()).hash();
        let mut candidates: Vec<PeerId> = self
            .topic_peers(&topic)
            .into_iter()
            .filter(|peer| !fetching.tried.contains(peer) && !self.content_struck.contains(peer))
            .collect();
        // The relays this node uses first: a relay's mailbox serves every member, and holds
        // a reader's requests while it is itself fetching. A member asked first would upload
        // each content once per reader — and a browser reaches another browser only through
        // a circuit over that same relay.
        candidates.sort_by_key(|peer| !self.relays.contains_key(peer));
        let peer = fetching
            .current
            .filter(|current| candidates.contains(current))
            .or_else(|| candidates.first().copied());
        let Some(fetching) = self.fetches.get_mut(&root) else {
            return;
        };
        match peer {
            Some(peer) => {
                fetching.retry_at = None;
                for request in requests {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .content
                        .send_request(&peer, request.clone());
                    fetching.asked.insert(id, (peer, request));
                    self.content_asks.insert(id, root);
                }
            }
            None if fetching.asked.is_empty() => {
                // Every peer was tried: wait, then a new round.
                fetching.tried.clear();
                fetching.retry_at = Some(now + fetching.backoff);
                fetching.backoff = (fetching.backoff * 2).min(MAX_RETRY_MS);
            }
            // Answers are on their way: they decide what comes next.
            None => {}
        }
    }

    fn finish_fetch(&mut self, root: ContentRoot, outcome: Result<ContentStatus, NetError>) {
        let Some(fetching) = self.fetches.remove(&root) else {
            return;
        };
        // Whatever it brought, requests waiting for it are answered from the store now.
        for (request, channel) in fetching.held.into_requests() {
            self.serve_later(request, channel);
        }
        for id in fetching.asked.keys() {
            self.content_asks.remove(id);
        }
        let _ = self.events.unbounded_send(NodeEvent::ContentFetched {
            chain: fetching.chain,
            root,
            bytes: fetching.fetch.fetched_bytes(),
        });
        if let (Some(writer), Ok(ContentStatus::Available)) = (fetching.offered_by, &outcome) {
            self.tell_kept(writer, fetching.chain, root);
        }
        for waiter in fetching.waiters {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// Tells `writer`, who offered this mailbox `root`, that it is kept here now; the answer
    /// is not awaited (a writer gone offline misses nothing it needs).
    fn tell_kept(&mut self, writer: PeerId, chain: BlockId, root: ContentRoot) {
        let request = ContentRequest::Kept(chain, root);
        let _ = self
            .swarm
            .behaviour_mut()
            .content
            .send_request(&writer, request);
    }

    /// A peer says it keeps a content this node offered: believed from this node's relays
    /// alone (anyone could say it, and a writer that took a stranger's word would think its
    /// content safe with nobody).
    async fn on_kept(
        &mut self,
        peer: PeerId,
        chain: BlockId,
        root: ContentRoot,
    ) -> ContentResponse {
        if !self.relays.contains_key(&peer) {
            log(LogLine::warn("content_kept_refused")
                .field("peer", peer)
                .field("root", root_hex(&root)));
            return ContentResponse::Refused;
        }
        self.drop_pending_offer(&root).await;
        let _ = self.events.unbounded_send(NodeEvent::ContentKept {
            chain,
            root,
            relay: peer,
        });
        ContentResponse::Accepted
    }

    /// Holds a peer's request for a piece of a content this node is fetching and has not
    /// stored yet, to answer it when the piece comes (see [`HeldRequests`]); gives it back to
    /// answer from the store at once when there is nothing to wait for.
    fn hold(
        &mut self,
        peer: PeerId,
        request: ContentRequest,
        channel: ResponseChannel<ContentResponse>,
    ) -> Option<(ContentRequest, ResponseChannel<ContentResponse>)> {
        let now = self.now();
        match self.fetches.get_mut(request.root()) {
            Some(fetching) => {
                let brings = brings(&fetching.fetch, &request);
                let awaited = fetching.asked.values().map(|(asked, _)| *asked);
                fetching
                    .held
                    .hold(peer, request, channel, now, awaited, brings)
            }
            None => Some((request, channel)),
        }
    }

    /// Answers the held requests of `root`'s fetch whose piece is stored now, and those that
    /// waited [`HOLD_MS`](super::held::HOLD_MS) (from the store: "not held").
    fn release_held(&mut self, root: ContentRoot) {
        let now = self.now();
        let Some(fetching) = self.fetches.get_mut(&root) else {
            return;
        };
        let fetch = &fetching.fetch;
        let ready = fetching.held.release(now, |request| brings(fetch, request));
        for (request, channel) in ready {
            self.serve_later(request, channel);
        }
    }

    /// When a fetch's next round is due, a held request's wait ends or a deferred offer
    /// is due, whichever comes first (ms since start): the node wakes then.
    pub(super) fn next_content_wake(&self) -> Option<u64> {
        let offers = self.deferred_offers.iter().map(|(at, _, _)| *at);
        self.fetches
            .values()
            .flat_map(|f| {
                let retry = f.asked.is_empty().then_some(f.retry_at).flatten();
                retry.into_iter().chain(f.held.next_expiry())
            })
            .chain(offers)
            .min()
    }

    /// Answers the held requests that waited [`HOLD_MS`](super::held::HOLD_MS) (on every
    /// tick).
    pub(super) fn release_expired_held(&mut self) {
        let holding: Vec<ContentRoot> = self
            .fetches
            .iter()
            .filter(|(_, f)| !f.held.is_empty())
            .map(|(root, _)| *root)
            .collect();
        for root in holding {
            self.release_held(root);
        }
    }

    /// Answers `request` from the store beside the node's other work (see `Node::serving`).
    fn serve_later(&mut self, request: ContentRequest, channel: ResponseChannel<ContentResponse>) {
        let store = self.store.clone();
        self.serving.push(Box::pin(async move {
            (channel, served(&request, &store).await)
        }));
    }

    /// Fetches waiting between rounds whose time has come ask again (on every tick).
    pub(super) fn retry_fetches(&mut self) {
        let now = self.now();
        let due: Vec<ContentRoot> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.asked.is_empty() && f.retry_at.is_none_or(|at| at <= now))
            .map(|(root, _)| *root)
            .collect();
        for root in due {
            if let Some(fetching) = self.fetches.get_mut(&root) {
                fetching.retry_at = None;
            }
            self.ask_next(root);
        }
    }

    pub(super) async fn on_content(
        &mut self,
        event: request_response::Event<ContentRequest, ContentResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // Reads go on beside the node's other work, many at a time (a browser's
                // IndexedDB answers each read in about a millisecond: one after the other,
                // a peer fetching 16 segments at once got one per read).
                if matches!(
                    request,
                    ContentRequest::Tree(_) | ContentRequest::Segment(..)
                ) {
                    let Some((request, channel)) = self.hold(peer, request, channel) else {
                        return;
                    };
                    if self.serving.len() < MAX_SERVING {
                        self.serve_later(request, channel);
                        return;
                    }
                    let response = served(&request, &self.store).await;
                    let content = &mut self.swarm.behaviour_mut().content;
                    let _ = content.send_response(channel, response);
                    return;
                }
                let response = match request {
                    ContentRequest::Offer(chain, shape) => {
                        Ok(self.on_offer(peer, chain, shape).await)
                    }
                    // Only a relay's mailbox takes erase requests: it cannot read a delete. A
                    // member's device applies the deletes it reads, by the record's rules —
                    // a removed device, which still derives old contents' secrets, must not
                    // erase history there (`serve` refuses the request).
                    ContentRequest::Erase(chain, root, secret) if self.config.mailbox => {
                        self.on_erase(chain, root, secret).await
                    }
                    ContentRequest::Kept(chain, root) => Ok(self.on_kept(peer, chain, root).await),
                    request => Ok(served(&request, &self.store).await),
                };
                let response = match response {
                    Ok(response) => response,
                    Err(e) => {
                        log(LogLine::warn("content_serve_failed").field("error", e));
                        ContentResponse::NotHeld
                    }
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .content
                    .send_response(channel, response);
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.on_content_response(peer, request_id, Some(response))
                    .await
            }
            request_response::Event::OutboundFailure {
                peer, request_id, ..
            } => self.on_content_response(peer, request_id, None).await,
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A peer's answer (`None`: the request failed) to a fetch's request.
    async fn on_content_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: Option<ContentResponse>,
    ) {
        if let Some(key) = self.offers.remove(&request_id) {
            let accepted = matches!(response, Some(ContentResponse::Accepted));
            self.on_offer_answer(key, accepted);
            return;
        }
        if let Some((root, relay)) = self.erase_asks.remove(&request_id) {
            if response.is_some() {
                self.erase_answered.insert((root, relay));
            }
            return;
        }
        let Some(root) = self.content_asks.remove(&request_id) else {
            return;
        };
        let now = self.now();
        let Some(fetching) = self.fetches.get_mut(&root) else {
            return;
        };
        let Some((_, request)) = fetching.asked.remove(&request_id) else {
            return;
        };
        let tree = matches!(request, ContentRequest::Tree(_));
        let accepted = match response {
            Some(response) => fetching.fetch.take(&request, response, &self.store).await,
            None => Ok(false),
        };
        // Verified segments are kept several to a transaction: once STORE_BATCH are here, or
        // when no other answer is due.
        let unstored = fetching.fetch.unstored();
        let store_now = unstored >= STORE_BATCH || (unstored > 0 && fetching.asked.is_empty());
        // (Whatever this answer was: a fetch whose last answer was false must not end with
        // verified segments unstored.)
        let stored = match store_now {
            true => {
                // Counted from the store again (see `Node::inline_fits`).
                self.segments_kept.set(None);
                fetching.fetch.store_verified(&self.store).await
            }
            false => Ok(()),
        };
        let accepted = stored.and(accepted);
        if (store_now && accepted.is_ok()) || (tree && matches!(accepted, Ok(true))) {
            let event = NodeEvent::Content {
                chain: fetching.chain,
                root,
                status: fetching.fetch.status(),
            };
            let _ = self.events.unbounded_send(event);
        }
        match accepted {
            Ok(true) => {
                fetching.current = Some(peer);
                fetching.backoff = FIRST_RETRY_MS;
                fetching.progressed_at = now;
                if self.asked_erasures.contains_key(&root) {
                    // Its tree is here now: the secret can be checked.
                    self.erase_if_asked(root).await;
                    if !self.fetches.contains_key(&root) {
                        return;
                    }
                }
            }
            Ok(false) => {
                fetching.tried.insert(peer);
            }
            Err(TransferError::Content(e)) => {
                fetching.tried.insert(peer);
                self.content_struck.insert(peer);
                log(LogLine::warn("content_refused")
                    .field("peer", peer)
                    .field("error", e));
            }
            Err(e) => {
                self.finish_fetch(root, Err(e.into()));
                return;
            }
        }
        // Peers waiting for what just arrived get it.
        self.release_held(root);
        self.ask_next(root);
    }
}

/// [`serve`], a failure of the store answered as "not held" (and logged).
async fn served<S: NodeStore>(request: &ContentRequest, store: &S) -> ContentResponse {
    match serve(request, store).await {
        Ok(response) => response,
        Err(e) => {
            log(LogLine::warn("content_serve_failed").field("error", e));
            ContentResponse::NotHeld
        }
    }
}

/// A member's content store has no room for a content (see `Limits::content_store_bytes`).
fn log_no_room(chain: BlockId, root: &ContentRoot, needed: u64, quota: u64) {
    log(LogLine::warn("content_quota_reached")
        .field("chain", chain)
        .field("root", root_hex(root))
        .field("needed", needed)
        .field("quota", quota));
}

/// A relay's mailbox has no room for a content offered or pushed to it.
fn log_mailbox_full(chain: BlockId, used: u64, offered: u64) {
    log(LogLine::warn("mailbox_content_quota_reached")
        .field("chain", chain)
        .field("used", used)
        .field("offered", offered));
}
