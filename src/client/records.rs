//! Records on bound chains: private content posted, edited and deleted, with every version
//! kept (see [`crate::mutability`] for the rules, [`crate::offchain`] for the content).
//!
//! A version is a bound block whose sealed envelope ([`ContentKind::Version`]) carries a
//! [`VersionOp`]; its content is sealed in segments under a key derived from the same epoch
//! and kept in the account's content store, never in the chain. Peers fetch it with
//! [`crate::offchain::Fetch`] and check every segment against the commitment the block
//! signs. What kind a block is, which record it changes and what it says are all inside the
//! seal: a relay or an outsider reads none of it, nor tells them apart by length (the
//! envelope is padded inside the seal, see [`crate::envelope`]).

use std::collections::HashMap;

use futures_util::StreamExt;
use rand_core::CryptoRngCore;

use super::{queue_inline, Account, ClientError, Erasure};
use crate::envelope::{ContentKind, Envelope};
use crate::identity::{EpochId, IdentityError, IdentityState, Kind, Role};
use crate::mutability::{
    erase_contents, LogEvent, RecordId, RecordLog, RecordView, Records, Version, VersionOp,
};
use crate::offchain::store::STORE_BATCH;
use crate::offchain::{
    erase_secret, segments_of, Commitment, ContentReader, ContentStatus, ContentStore,
    ContentWriter, Fetch, InlineContent, OffchainError, SegmentTree, MAX_CONTENT_LEN,
    MAX_INLINE_LEN,
};
use crate::store::BlockStore;
use crate::walytis::{Anchored, Author, BlockId, Position};

/// Segment reads a whole-content read keeps in flight (1 MiB).
const READ_AHEAD: usize = 16;

/// Content read segment by segment (see [`Account::post_from`]): a file, a `Blob`.
#[allow(async_fn_in_trait)]
pub trait SegmentSource {
    /// The content's length in bytes.
    fn size(&self) -> u64;
    /// Plaintext segment `index`: the bytes from `index` × [`crate::offchain::SEGMENT_LEN`], that many or,
    /// for the last segment, the rest. Asked twice for each segment: the same bytes both
    /// times.
    async fn segment(&mut self, index: u32) -> Result<Vec<u8>, ClientError>;
}

impl<S: BlockStore + ContentStore + Clone> Account<S> {
    /// Posts a new record to an open bound chain: `content` sealed under the identity's
    /// current epoch into the content store, its commitment in a version block (queued like
    /// any write). Returns the record's ID.
    pub async fn post(
        &mut self,
        chain: &BlockId,
        content: &[u8],
        media_type: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<RecordId, ClientError> {
        let (commitment, inline) = self
            .store_content(chain, content, media_type, time, rng)
            .await?;
        self.content_version(chain, VersionOp::create(commitment), inline, time, rng)
            .await
    }

    /// Edits a record this device's person wrote: the new content becomes its current
    /// version, having seen every current head (so it also resolves conflicts).
    pub async fn edit(
        &mut self,
        chain: &BlockId,
        record: &RecordId,
        content: &[u8],
        media_type: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        let view = self.own_record(chain, record).await?;
        let (commitment, inline) = self
            .store_content(chain, content, media_type, time, rng)
            .await?;
        let op = VersionOp::edit(*record, heads(&view), commitment);
        self.content_version(chain, op, inline, time, rng).await
    }

    /// Deletes a record (its author's person, or an admin). With `erase`, every replica also
    /// drops the content of every version and refuses to serve it again; the history keeps
    /// who did what, and says "erased". The relays, which cannot read the delete, are asked
    /// with the contents' erase secrets ([`Account::take_erasures`]).
    pub async fn delete(
        &mut self,
        chain: &BlockId,
        record: &RecordId,
        erase: bool,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        let view = self.live_record(chain, record).await?;
        if view.author != self.person() && !self.is_admin() {
            return Err(ClientError::NotPermitted(*record));
        }
        let op = VersionOp::delete(*record, heads(&view), erase);
        let id = self
            .write_version(chain, op, None, false, time, rng)
            .await?;
        if erase {
            // Each version's content, for the relays; a version under an epoch whose key this
            // device never had cannot be asked for (the members' devices still drop it).
            for content in view.history.iter().filter_map(|h| h.content.as_ref()) {
                let secret = self.identity.with_epoch_key(&content.epoch, |key| {
                    erase_secret(key, chain, &content.nonce)
                        .map_err(|e| IdentityError::Malformed(e.to_string()))
                });
                if let Ok(secret) = secret {
                    self.erasures.push(Erasure {
                        chain: *chain,
                        root: content.root,
                        secret,
                    });
                }
            }
            self.records_of(chain).await?;
        }
        Ok(id)
    }

    /// Every version of an open bound chain that this device can read, folded into records
    /// (see [`Records`]). Content of erased records is erased from the store on the way.
    /// Folded again only when the chain or the identity grew since the last fold: what the
    /// fold reads is their blocks and the store's keys, which come with identity blocks. When
    /// only the chain grew and the identity retires no key, the blocks that arrived since are
    /// folded into the last fold (every block is shown then, so the new ones are all that
    /// changed); otherwise every block is folded again.
    pub async fn records_of(&mut self, chain: &BlockId) -> Result<Records, ClientError> {
        self.refresh().await?;
        let lengths = (
            self.bound
                .get(chain)
                .ok_or(ClientError::ChainNotOpen(*chain))?
                .chain()
                .len(),
            self.identity.chain().len(),
        );
        if let Some((at, records)) = self.folded.get(chain) {
            if *at == lengths {
                return Ok(records.clone());
            }
        }
        let records = match self.folded.remove(chain) {
            Some((at, mut records))
                if at.1 == lengths.1
                    && at.0 < lengths.0
                    && !self.identity.state().has_retired() =>
            {
                self.fold_since(chain, &mut records, at.0).await?;
                records
            }
            _ => self.fold_records(chain).await?,
        };
        erase_contents(&records, self.identity.chain().store()).await?;
        self.folded.insert(*chain, (lengths, records.clone()));
        Ok(records)
    }

    /// [`Account::records_of`], folded from every block.
    async fn fold_records(&mut self, chain: &BlockId) -> Result<Records, ClientError> {
        let messages = self.messages_as_read(chain).await?;
        let mut caches = FoldCaches::default();
        let mut records = Records::new();
        for message in messages {
            self.fold_message(&mut records, &mut caches, &message.block, message.content)
                .await?;
        }
        Ok(records)
    }

    /// Folds into `records` the blocks of `chain` that arrived after the first `folded` (by
    /// arrival number: a chain's are 0, 1, 2…), as [`Account::fold_records`] reads them.
    async fn fold_since(
        &self,
        chain: &BlockId,
        records: &mut Records,
        folded: u64,
    ) -> Result<(), ClientError> {
        let bound = self
            .bound
            .get(chain)
            .ok_or(ClientError::ChainNotOpen(*chain))?;
        let entries = bound
            .chain()
            .since(folded.checked_sub(1), usize::MAX)
            .await
            .map_err(IdentityError::from)?;
        let mut caches = FoldCaches::default();
        for entry in entries {
            if entry.block.id() == *chain {
                continue;
            }
            let content = match Anchored::parse(&entry.block) {
                // An acknowledgement: no content, nothing to fold.
                Ok(anchored) if anchored.content.is_empty() => continue,
                Ok(anchored) => self
                    .identity
                    .open_sealed(chain, anchored.content)
                    .map_err(ClientError::from)
                    .and_then(|plaintext| Ok(Envelope::decode(&plaintext)?)),
                Err(e) => Err(IdentityError::Malformed(e.to_string()).into()),
            };
            self.fold_message(records, &mut caches, &entry.block, content)
                .await?;
        }
        Ok(())
    }

    /// Folds one message into `records` if it is a version this device reads, its author's
    /// person and admin taken from the identity at the block's anchor.
    async fn fold_message(
        &self,
        records: &mut Records,
        caches: &mut FoldCaches,
        block: &crate::walytis::Block,
        content: Result<Envelope, ClientError>,
    ) -> Result<(), ClientError> {
        let Ok(envelope) = content else {
            return Ok(());
        };
        if envelope.kind != ContentKind::Version {
            return Ok(());
        }
        // A version that does not decode is a newer client's or a broken one: not shown.
        let Ok(op) = VersionOp::decode(&envelope.payload) else {
            return Ok(());
        };
        let anchor = Anchored::parse(block)
            .map_err(|e| IdentityError::Malformed(e.to_string()))?
            .anchor;
        let author = block.author();
        let key = (anchor, author);
        if !caches.authority.contains_key(&key) {
            if !caches.states.contains_key(&key.0) {
                let state = self.state_at(&key.0).await?;
                caches.states.insert(key.0.clone(), state);
            }
            let found = caches
                .states
                .get(&key.0)
                .and_then(Option::as_ref)
                .and_then(|state| person_and_admin(state, &author));
            caches.authority.insert(key.clone(), found);
        }
        let Some(Some((person, admin))) = caches.authority.get(&key) else {
            return Ok(());
        };
        records.insert(Version {
            position: Position {
                height: block.height(),
                id: block.id(),
            },
            author,
            person: person.clone(),
            admin: *admin,
            time: block.time(),
            op,
        });
        Ok(())
    }

    /// The record events of an open bound chain after `since` (all if `None`), each once:
    /// `created`, `edited`, `deleted` as versions become valid, in chain order (a causal
    /// order); `content` once a valid version's content is all here; `withdrawn` when a
    /// version told before is no longer shown (see [`crate::mutability::RecordLog`]). What
    /// was told is kept in the store (settings `record-log/<chain>/<page>`), so a reader that
    /// passes the last `seq` it saw resumes after a restart with nothing missed or repeated.
    /// Each call brings the log up to date: it folds the chain if it grew and checks the
    /// contents not yet told (a status read each), then stores what it appended.
    pub async fn record_events(
        &mut self,
        chain: &BlockId,
        since: Option<u64>,
    ) -> Result<Vec<LogEvent>, ClientError> {
        let records = self.records_of(chain).await?;
        let store = self.identity.chain().store();
        // Pages another handle of this store appended (another tab), or all on first use. A
        // log that disagrees with the store (another tab appended other events under the same
        // numbers) is read again whole: the store's is the one readers resumed from.
        let held = self.logs.remove(chain).unwrap_or_default();
        let mut log = match read_log_pages(store, chain, held).await {
            Ok(log) => log,
            Err(ClientError::Mutability(_)) => {
                read_log_pages(store, chain, RecordLog::new()).await?
            }
            Err(other) => return Err(other),
        };
        let mut arrived = std::collections::HashSet::new();
        for (version, content) in log.awaited_contents(&records) {
            if self.fetch(&content).await?.status() == ContentStatus::Available {
                arrived.insert(version);
            }
        }
        let appended = log.update(&records, &arrived);
        if !appended.is_empty() {
            for (index, bytes) in log.pages_from(appended.start) {
                // On failure the log is read again from the store next time: what was not
                // stored is appended again then, under the same numbers.
                store
                    .put_setting(&log_page_setting(chain, index), &bytes)
                    .await?;
            }
        }
        let events = log.since(since).to_vec();
        self.logs.insert(*chain, log);
        Ok(events)
    }

    /// The version op a block of an open bound chain carries, opened from that block alone
    /// (no fold): `None` if the block is not held or is no version this device reads.
    async fn version_op(
        &self,
        chain: &BlockId,
        id: &BlockId,
    ) -> Result<Option<(crate::walytis::Block, VersionOp)>, ClientError> {
        let bound = self
            .bound
            .get(chain)
            .ok_or(ClientError::ChainNotOpen(*chain))?;
        let entry = bound.chain().block(id).await.map_err(IdentityError::from)?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let Ok(anchored) = Anchored::parse(&entry.block) else {
            return Ok(None);
        };
        let Ok(plaintext) = self.identity.open_sealed(chain, anchored.content) else {
            return Ok(None);
        };
        let op = Envelope::decode(&plaintext)
            .ok()
            .filter(|envelope| envelope.kind == ContentKind::Version)
            .and_then(|envelope| VersionOp::decode(&envelope.payload).ok());
        Ok(op.map(|op| (entry.block, op)))
    }

    /// The content a version sets (a post's or an edit's), read from its block alone: what
    /// this device offers the relays right after writing it, without folding the chain.
    pub async fn version_content(
        &self,
        chain: &BlockId,
        version: &BlockId,
    ) -> Result<Option<Commitment>, ClientError> {
        Ok(self
            .version_op(chain, version)
            .await?
            .and_then(|(_, op)| op.content))
    }

    /// A record this device has just posted, as a listing shows it (its create alone: nobody
    /// can have changed it yet), read from its block without folding the chain.
    pub async fn posted_record(
        &self,
        chain: &BlockId,
        record: &RecordId,
    ) -> Result<RecordView, ClientError> {
        let missing = || ClientError::NoSuchRecord(*record);
        let (block, op) = self.version_op(chain, record).await?.ok_or_else(missing)?;
        let author = block.author();
        let (person, admin) =
            person_and_admin(self.identity.state(), &author).ok_or_else(missing)?;
        let mut records = Records::new();
        records.insert(Version {
            position: Position {
                height: block.height(),
                id: block.id(),
            },
            author,
            person,
            admin,
            time: block.time(),
            op,
        });
        records.record(record).ok_or_else(missing)
    }

    /// One record of an open bound chain, `None` if this device holds no create of it.
    pub async fn record_of(
        &mut self,
        chain: &BlockId,
        record: &RecordId,
    ) -> Result<Option<RecordView>, ClientError> {
        Ok(self.records_of(chain).await?.record(record))
    }

    /// The fetch of a content, resumed from what the store holds: its status, and what to ask
    /// peers for next.
    pub async fn fetch(&self, commitment: &Commitment) -> Result<Fetch, ClientError> {
        Ok(Fetch::resume(commitment.clone(), self.identity.chain().store()).await?)
    }

    /// A content of a bound chain, opened: every segment checked against the commitment and
    /// decrypted. Fails with [`ClientError::ContentUnavailable`] while it is not all here (or
    /// once erased).
    pub async fn content(
        &self,
        chain: &BlockId,
        commitment: &Commitment,
    ) -> Result<Vec<u8>, ClientError> {
        let fetch = self.fetch(commitment).await?;
        let tree = match (fetch.status(), fetch.tree()) {
            (ContentStatus::Available, Some(tree)) => tree.clone(),
            (status, _) => return Err(ClientError::ContentUnavailable(status)),
        };
        let mut content = Vec::with_capacity(usize::try_from(commitment.size).unwrap_or(0));
        let all = 0..commitment.segments();
        let whole = self
            .open_segments(chain, commitment, tree, all, |segment| {
                content.extend_from_slice(&segment)
            })
            .await?;
        match whole {
            true => Ok(content),
            false => Err(ClientError::ContentUnavailable(ContentStatus::Missing)),
        }
    }

    /// Opens segments `range` of a content whose verified tree is `tree`, handing each to
    /// `each` in order; `false` if one is not in the store. Several reads in flight
    /// ([`READ_AHEAD`]): a store such as IndexedDB answers them in one round trip rather than
    /// one each.
    async fn open_segments(
        &self,
        chain: &BlockId,
        commitment: &Commitment,
        tree: SegmentTree,
        range: std::ops::Range<u32>,
        mut each: impl FnMut(Vec<u8>),
    ) -> Result<bool, ClientError> {
        let reader = self.reader(chain, commitment, tree)?;
        let store = self.identity.chain().store();
        let root = commitment.root;
        let mut reads = futures_util::stream::iter(range)
            .map(|index| async move { (index, store.segment(&root, index).await) })
            .buffered(READ_AHEAD);
        while let Some((index, sealed)) = reads.next().await {
            match sealed? {
                Some(sealed) => each(reader.open_stored(index, &sealed)?),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// One segment of a content, opened (at most 64 KiB): see
    /// [`Account::content_segments`].
    pub async fn content_segment(
        &self,
        chain: &BlockId,
        commitment: &Commitment,
        index: u32,
    ) -> Result<Vec<u8>, ClientError> {
        let mut segments = self
            .content_segments(chain, commitment, index..index.saturating_add(1))
            .await?;
        segments
            .pop()
            .ok_or(ClientError::ContentUnavailable(ContentStatus::Missing))
    }

    /// Segments `range` of a content (those of it the content has), opened, each at most
    /// 64 KiB: how a reader reads a large content in pieces without holding it whole, with
    /// several store reads in flight. Segments that are here open even while others
    /// are still to come; if one is not, this fails with
    /// [`ClientError::ContentUnavailable`] and where the content stands. Reads the tree and
    /// the segments asked for, not the list of what is held: a stream of n segments is n
    /// reads, not n².
    pub async fn content_segments(
        &self,
        chain: &BlockId,
        commitment: &Commitment,
        range: std::ops::Range<u32>,
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let store = self.identity.chain().store();
        let root = commitment.root;
        let tree = if store.is_erased(&root).await? {
            None
        } else {
            match store.tree(&root).await? {
                Some(leaves) => SegmentTree::verified(commitment, leaves).ok(),
                None => None,
            }
        };
        let Some(tree) = tree else {
            return Err(self.not_here(commitment).await);
        };
        let range = range.start..range.end.min(commitment.segments());
        let mut opened = Vec::with_capacity(range.len());
        let all_here = self
            .open_segments(chain, commitment, tree, range, |segment| {
                opened.push(segment)
            })
            .await?;
        match all_here {
            true => Ok(opened),
            false => Err(self.not_here(commitment).await),
        }
    }

    /// Why a content's piece is not here, as [`Account::content`] says it.
    async fn not_here(&self, commitment: &Commitment) -> ClientError {
        match self.fetch(commitment).await {
            Ok(fetch) => ClientError::ContentUnavailable(match fetch.status() {
                ContentStatus::Available => ContentStatus::Missing,
                status => status,
            }),
            Err(e) => e,
        }
    }

    /// A reader of a content whose verified tree is here.
    fn reader(
        &self,
        chain: &BlockId,
        commitment: &Commitment,
        tree: SegmentTree,
    ) -> Result<ContentReader, ClientError> {
        Ok(self.identity.with_epoch_key(&commitment.epoch, |key| {
            ContentReader::new(key, chain, commitment.clone(), tree)
                .map_err(|e| IdentityError::Malformed(e.to_string()))
        })?)
    }

    /// Seals `content` for `chain` under the epoch this device writes under now, keeps its
    /// tree and segments in the store, and returns its commitment.
    async fn store_content(
        &mut self,
        chain: &BlockId,
        content: &[u8],
        media_type: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Commitment, Option<InlineContent>), ClientError> {
        let epoch = self.epoch_to_write(chain, time, rng).await?;
        let (commitment, tree, sealed): (Commitment, SegmentTree, Vec<Vec<u8>>) =
            self.identity.with_epoch_key(&epoch, |key| {
                ContentWriter::seal_all(key, epoch, chain, media_type, content, rng)
                    .map_err(|e| IdentityError::Malformed(e.to_string()))
            })?;
        let store = self.identity.chain().store();
        if let ([_, erase_check], [segment]) = (tree.leaves(), &sealed[..]) {
            // Small content lands in the transaction of the block that commits to it (the
            // next commit: see `ContentStore::stage_single_segment`), and travels with it
            // (see `Publication::inline`).
            store.stage_single_segment(&commitment.root, tree.leaves(), segment);
            let inline = (commitment.size <= MAX_INLINE_LEN).then(|| InlineContent {
                sealed: segment.clone(),
                erase_check: *erase_check,
            });
            return Ok((commitment, inline));
        }
        store.put_tree(&commitment.root, tree.leaves()).await?;
        for (batch, segments) in sealed.chunks(STORE_BATCH).enumerate() {
            let first = batch * STORE_BATCH;
            let writes = segments
                .iter()
                .enumerate()
                .map(|(i, segment)| {
                    u32::try_from(first + i)
                        .map(|index| (index, segment.as_slice()))
                        .map_err(|_| OffchainError::Shape("too many segments"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            store.put_segments(&commitment.root, &writes).await?;
        }
        Ok((commitment, None))
    }

    /// The epoch to seal new content of an open bound chain under (rekeying first if due; a
    /// rekey is queued before the version anchored on it).
    async fn epoch_to_write(
        &mut self,
        chain: &BlockId,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<EpochId, ClientError> {
        if !self.bound.contains_key(chain) {
            return Err(ClientError::ChainNotOpen(*chain));
        }
        let before = self.begin().await?;
        let epoch = self.identity.writing_epoch(time, rng).await;
        self.queue_identity_since(before).await?;
        Ok(epoch?)
    }

    /// Posts a new record whose content is read from `source` segment by segment, never held
    /// whole (a large file): read twice, once to seal it for its root, once to seal it again
    /// and store it under that root. Content of one segment goes the way of
    /// [`Account::post`]. Fails with [`OffchainError::TooLarge`] before reading anything
    /// when the source is over the limit, and with [`OffchainError::Shape`] if the source
    /// gave other bytes the second time (no version is written then; what was stored of it
    /// is named by nothing).
    pub async fn post_from(
        &mut self,
        chain: &BlockId,
        source: &mut impl SegmentSource,
        media_type: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<RecordId, ClientError> {
        let (commitment, inline) = self
            .store_content_from(chain, source, media_type, time, rng)
            .await?;
        self.content_version(chain, VersionOp::create(commitment), inline, time, rng)
            .await
    }

    /// [`Account::edit`] with the new content read from `source` as by
    /// [`Account::post_from`].
    pub async fn edit_from(
        &mut self,
        chain: &BlockId,
        record: &RecordId,
        source: &mut impl SegmentSource,
        media_type: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        let view = self.own_record(chain, record).await?;
        let (commitment, inline) = self
            .store_content_from(chain, source, media_type, time, rng)
            .await?;
        let op = VersionOp::edit(*record, heads(&view), commitment);
        self.content_version(chain, op, inline, time, rng).await
    }

    /// [`Account::store_content`] for content read from `source` (see
    /// [`Account::post_from`]).
    async fn store_content_from(
        &mut self,
        chain: &BlockId,
        source: &mut impl SegmentSource,
        media_type: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Commitment, Option<InlineContent>), ClientError> {
        let size = source.size();
        if size > MAX_CONTENT_LEN {
            return Err(OffchainError::TooLarge {
                size,
                limit: MAX_CONTENT_LEN,
            }
            .into());
        }
        let segments = u32::try_from(segments_of(size))
            .map_err(|_| OffchainError::Shape("too many segments"))?;
        if segments == 1 {
            let content = source.segment(0).await?;
            return self
                .store_content(chain, &content, media_type, time, rng)
                .await;
        }
        let epoch = self.epoch_to_write(chain, time, rng).await?;
        let mut first = self.identity.with_epoch_key(&epoch, |key| {
            ContentWriter::new(key, epoch, chain, media_type, rng)
                .map_err(|e| IdentityError::Malformed(e.to_string()))
        })?;
        let mut second = first.again();
        for index in 0..segments {
            first.seal(&source.segment(index).await?, index + 1 == segments)?;
        }
        let (commitment, tree) = first.finish()?;
        let store = self.identity.chain().store();
        store.put_tree(&commitment.root, tree.leaves()).await?;
        let mut batch: Vec<(u32, Vec<u8>)> = Vec::with_capacity(STORE_BATCH);
        for index in 0..segments {
            let sealed = second.seal(&source.segment(index).await?, index + 1 == segments)?;
            tree.check(index, &sealed)
                .map_err(|_| OffchainError::Shape("the content changed while it was read"))?;
            batch.push((index, sealed));
            if batch.len() == STORE_BATCH || index + 1 == segments {
                let writes: Vec<(u32, &[u8])> =
                    batch.iter().map(|(i, s)| (*i, s.as_slice())).collect();
                store.put_segments(&commitment.root, &writes).await?;
                batch.clear();
            }
        }
        Ok((commitment, None))
    }

    /// A record this device's person wrote, live: what an edit starts from.
    async fn own_record(
        &mut self,
        chain: &BlockId,
        record: &RecordId,
    ) -> Result<RecordView, ClientError> {
        let view = self.live_record(chain, record).await?;
        if view.author != self.person() {
            return Err(ClientError::NotTheAuthor(*record));
        }
        Ok(view)
    }

    /// Writes the version of a content just stored (see `store_content`), then keeps what of
    /// it no commit took.
    async fn content_version(
        &mut self,
        chain: &BlockId,
        op: VersionOp,
        inline: Option<InlineContent>,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        let written = self.write_version(chain, op, inline, true, time, rng).await;
        self.flush_staged().await?;
        written
    }

    /// Content staged for a version whose block was not stored (a failed write) is kept now.
    async fn flush_staged(&self) -> Result<(), ClientError> {
        Ok(self.identity.chain().store().flush_staged().await?)
    }

    /// Writes a version block; `inline`: its content, pushed with it; `after_content`: right
    /// after `store_content`.
    async fn write_version(
        &mut self,
        chain: &BlockId,
        op: VersionOp,
        inline: Option<InlineContent>,
        after_content: bool,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        let envelope = Envelope {
            kind: ContentKind::Version,
            target: op.record,
            payload: op.encode(),
        };
        let id = if after_content {
            // Right after `store_content`, which picked up what arrived: not read again.
            let before = self.identity.chain().len();
            self.write_refreshed(chain, &envelope, Vec::new(), time, rng, before)
                .await?
        } else {
            self.write_to(chain, &envelope, Vec::new(), time, rng)
                .await?
        };
        if let Some(content) = inline {
            queue_inline(&mut self.outbox, *chain, id, content);
        }
        Ok(id)
    }

    /// A record that exists and is not deleted.
    async fn live_record(
        &mut self,
        chain: &BlockId,
        record: &RecordId,
    ) -> Result<RecordView, ClientError> {
        let view = self
            .record_of(chain, record)
            .await?
            .ok_or(ClientError::NoSuchRecord(*record))?;
        if view.deleted.is_some() {
            return Err(ClientError::RecordDeleted(*record));
        }
        Ok(view)
    }

    /// The identity's state at `anchor` (the identity leaves a bound block names), `None` if
    /// this store lacks some of it.
    async fn state_at(&self, anchor: &[BlockId]) -> Result<Option<IdentityState>, ClientError> {
        let ancestry = self
            .identity
            .chain()
            .ancestry_of(anchor)
            .await
            .map_err(IdentityError::from)?;
        match ancestry {
            Ok(blocks) => Ok(Some(IdentityState::resolve(&blocks)?)),
            Err(_missing) => Ok(None),
        }
    }

    /// The DID of the person this device writes as.
    fn person(&self) -> String {
        let state = self.identity.state();
        let me = Author::of(self.identity.device().signing().as_dalek());
        person_and_admin(state, &me).map_or_else(|| state.did(), |(person, _)| person)
    }

    /// Whether this device's member administers the identity now.
    fn is_admin(&self) -> bool {
        let me = Author::of(self.identity.device().signing().as_dalek());
        person_and_admin(self.identity.state(), &me).is_some_and(|(_, admin)| admin)
    }
}

/// `log` with the pages of `chain`'s record log the store holds beyond it.
async fn read_log_pages<S: BlockStore>(
    store: &S,
    chain: &BlockId,
    mut log: RecordLog,
) -> Result<RecordLog, ClientError> {
    let mut page = log.open_page();
    while let Some(bytes) = store.setting(&log_page_setting(chain, page)).await? {
        log.take_page(page, &bytes)?;
        page += 1;
    }
    Ok(log)
}

/// The store setting holding page `index` of a chain's record log.
fn log_page_setting(chain: &BlockId, index: u64) -> String {
    format!("record-log/{chain}/{index}")
}

/// A version author's person DID and whether its member is an admin.
type Authority = (String, bool);

/// What one fold looks up once: the identity's state at each anchor, and each author's
/// person and admin there.
#[derive(Default)]
struct FoldCaches {
    authority: HashMap<(Vec<BlockId>, Author), Option<Authority>>,
    states: HashMap<Vec<BlockId>, Option<IdentityState>>,
}

/// The person a device key writes as in `state` (the identity itself for a person's own
/// chains, the member for a group) and whether its member is an admin.
fn person_and_admin(state: &IdentityState, author: &Author) -> Option<Authority> {
    let (member, _device) = state.signer(author.key_bytes())?;
    let admin = state.member(member)?.role == Role::Admin;
    let person = match state.kind() {
        Kind::Person => state.did(),
        Kind::Group => member.to_owned(),
    };
    Some((person, admin))
}

/// The versions an edit or delete names as seen: every head of the record.
fn heads(view: &RecordView) -> Vec<BlockId> {
    view.current
        .into_iter()
        .chain(view.conflicts.iter().copied())
        .collect()
}
