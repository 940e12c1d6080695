//! Mutability, the sans-IO core: records that their authors edit and delete, with the whole
//! history kept.
//!
//! A **record** (a message, a document) is named by its first version's block ID. Every
//! version is a block of a bound chain carrying a [`VersionOp`]: create, edit or delete. An
//! edit or delete names the versions of the record its author saw (its *seen* heads, as
//! Automerge's heads), so the versions form a causal graph of their own inside the chain.
//!
//! [`Records`] folds the versions it is given into one [`RecordView`] per record. The view is
//! a function of the *set* of versions only — never of their arrival order, never of a
//! clock — so every replica that holds the same blocks shows the same current version, the
//! same conflicts and the same history. The rules:
//!
//! - only the record's author — any device of the same person, as the chain's identity says
//!   at the version's anchor — may edit; the author or an admin may delete; any other
//!   version is refused ([`Refusal`]) and changes nothing;
//! - a version's seen versions must come before it in the chain order (they are its
//!   ancestors); one that does not is refused, one whose seen versions have not arrived
//!   waits for them;
//! - the current version is the greatest head (a valid version no other valid version saw)
//!   by chain order (height, then ID); the other heads are conflicts;
//! - a delete is final: it wins over edits concurrent with it, and an edit that saw a delete
//!   is refused; a delete with `erase` also erases the content of every version.
//!
//! What the core does not do: check signatures, anchors or who is a device of whom (the
//! bound chain and the identity do that, and hand the results in as [`Version::person`] and
//! [`Version::admin`]), or hold content (the offchain layer does; a version carries the
//! [`Commitment`] to its content).

use std::collections::{BTreeMap, HashMap, HashSet};

mod log;

pub use log::{LogEvent, LogKind, RecordLog, LOG_PAGE};

use crate::cbor::{CborError, Reader, Writer};
use crate::offchain::{Commitment, ContentRoot, ContentStore, OffchainError};
use crate::walytis::store::StoreError;
use crate::walytis::{Author, BlockError, BlockId, Position, ReadLink, WriteLink};

/// The version-op format this build writes and reads.
pub const VERSION_OP_FORMAT: u64 = 1;

/// Most seen versions one edit or delete may name.
pub const MAX_SEEN: usize = 64;

/// A record's name: its first version's block ID.
pub type RecordId = BlockId;

/// Why a version op, or the work of the core, failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MutabilityError {
    /// Not the canonical CBOR of a version op.
    #[error("malformed version op: {0}")]
    Cbor(#[from] CborError),
    /// A link that is not a block ID.
    #[error("malformed version op: {0}")]
    Link(#[from] BlockError),
    /// The content commitment does not decode.
    #[error("malformed version op: {0}")]
    Content(#[from] OffchainError),
    /// A format newer (or other) than this build's.
    #[error("version op format {0}, this build reads format {VERSION_OP_FORMAT}")]
    UnsupportedFormat(u64),
    /// Fields that do not fit the kind (an edit without a record, a delete with content,
    /// seen versions out of order or too many).
    #[error("malformed version op: {0}")]
    Shape(&'static str),
    /// The content store failed while erasing.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a version does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionKind {
    /// The record's first version.
    Create,
    /// A new content for the record.
    Edit,
    /// The record's end; with `erase`, every version's content is erased too.
    Delete {
        /// Whether every honest replica drops the content of every version.
        erase: bool,
    },
}

impl VersionKind {
    fn code(self) -> u64 {
        match self {
            VersionKind::Create => 1,
            VersionKind::Edit => 2,
            VersionKind::Delete { erase: false } => 3,
            VersionKind::Delete { erase: true } => 4,
        }
    }

    fn from_code(code: u64) -> Result<Self, MutabilityError> {
        Ok(match code {
            1 => VersionKind::Create,
            2 => VersionKind::Edit,
            3 => VersionKind::Delete { erase: false },
            4 => VersionKind::Delete { erase: true },
            _ => return Err(MutabilityError::Shape("an unknown version kind")),
        })
    }
}

/// One version as its block carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionOp {
    /// What it does.
    pub kind: VersionKind,
    /// The record it changes; `None` for a create (the record is named by its own block).
    pub record: Option<RecordId>,
    /// The versions of the record its author saw (block IDs, ascending, no repeats); empty
    /// for a create.
    pub seen: Vec<BlockId>,
    /// The content it sets: a create's or an edit's, `None` for a delete.
    pub content: Option<Commitment>,
}

impl VersionOp {
    /// A record's first version.
    pub fn create(content: Commitment) -> Self {
        VersionOp {
            kind: VersionKind::Create,
            record: None,
            seen: Vec::new(),
            content: Some(content),
        }
    }

    /// An edit of `record` having seen `seen`.
    pub fn edit(record: RecordId, seen: Vec<BlockId>, content: Commitment) -> Self {
        VersionOp {
            kind: VersionKind::Edit,
            record: Some(record),
            seen: canonical(seen),
            content: Some(content),
        }
    }

    /// A delete of `record` having seen `seen`.
    pub fn delete(record: RecordId, seen: Vec<BlockId>, erase: bool) -> Self {
        VersionOp {
            kind: VersionKind::Delete { erase },
            record: Some(record),
            seen: canonical(seen),
            content: None,
        }
    }

    /// The canonical encoding: `[format, kind, record | null, [seen…], commitment | null]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + 40 * self.seen.len());
        w.array(5);
        w.uint(VERSION_OP_FORMAT);
        w.uint(self.kind.code());
        match &self.record {
            Some(record) => w.link(record),
            None => w.null(),
        }
        w.array(self.seen.len());
        for seen in &self.seen {
            w.link(seen);
        }
        match &self.content {
            Some(content) => w.bytes(&content.encode()),
            None => w.null(),
        }
        w.out
    }

    /// Reads a version op; only the canonical encoding of a well-formed op is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self, MutabilityError> {
        let mut r = Reader::new(bytes);
        let len = r.array()?;
        let format = r.uint()?;
        if format != VERSION_OP_FORMAT {
            return Err(MutabilityError::UnsupportedFormat(format));
        }
        if len != 5 {
            return Err(MutabilityError::Shape("a version op of 5 items"));
        }
        let kind = VersionKind::from_code(r.uint()?)?;
        let record = if r.null() { None } else { Some(r.link()?) };
        let count = r.array()?;
        if count > MAX_SEEN {
            return Err(MutabilityError::Shape("more seen versions than MAX_SEEN"));
        }
        let mut seen = Vec::with_capacity(count);
        for _ in 0..count {
            seen.push(r.link()?);
        }
        let content = if r.null() {
            None
        } else {
            Some(Commitment::decode(r.bytes()?)?)
        };
        r.finish()?;
        let op = VersionOp {
            kind,
            record,
            seen,
            content,
        };
        op.check_shape()?;
        Ok(op)
    }

    fn check_shape(&self) -> Result<(), MutabilityError> {
        let shape = |ok: bool, what| {
            if ok {
                Ok(())
            } else {
                Err(MutabilityError::Shape(what))
            }
        };
        match self.kind {
            VersionKind::Create => {
                shape(self.record.is_none(), "a create names no record")?;
                shape(self.seen.is_empty(), "a create saw no versions")?;
                shape(self.content.is_some(), "a create has content")?;
            }
            VersionKind::Edit | VersionKind::Delete { .. } => {
                shape(self.record.is_some(), "an edit or delete names its record")?;
                shape(!self.seen.is_empty(), "an edit or delete saw a version")?;
                shape(
                    self.content.is_some() == (self.kind == VersionKind::Edit),
                    "an edit has content, a delete none",
                )?;
            }
        }
        shape(
            self.seen.len() <= MAX_SEEN,
            "more seen versions than MAX_SEEN",
        )?;
        shape(
            self.seen.windows(2).all(|pair| pair[0] < pair[1]),
            "seen versions ascending, without repeats",
        )
    }
}

fn canonical(mut seen: Vec<BlockId>) -> Vec<BlockId> {
    seen.sort();
    seen.dedup();
    seen
}

/// A version as the core folds it: the op and what the chain and identity say of its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The block's place in the chain order (its ID is the version's ID).
    pub position: Position,
    /// The device that signed it.
    pub author: Author,
    /// The DID of the person whose device the author was at the block's anchor (in a
    /// person's own chains, that person): edits are allowed to the record creator's person.
    pub person: String,
    /// Whether the author could administer the chain's identity at the block's anchor:
    /// admins may delete any record.
    pub admin: bool,
    /// The block's time (informational: no rule reads it).
    pub time: u64,
    /// What it does.
    pub op: VersionOp,
}

impl Version {
    /// The version's ID: its block's.
    pub fn id(&self) -> BlockId {
        self.position.id
    }

    /// The record it belongs to.
    pub fn record(&self) -> RecordId {
        self.op.record.unwrap_or(self.position.id)
    }
}

/// Why a version changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// An edit by a device of another person than the record's author.
    #[error("only the record's author edits it")]
    NotTheAuthor,
    /// A delete by neither the author nor an admin.
    #[error("only the record's author or an admin deletes it")]
    NotPermitted,
    /// An edit that saw the record deleted.
    #[error("the record was deleted")]
    Deleted,
    /// A seen version that does not come before it in the chain order, or is not a version of
    /// the record.
    #[error("a seen version that is not an earlier version of the record")]
    SeenOutOfPlace,
}

/// Where a version stands in its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Applied.
    Valid,
    /// Refused, changing nothing.
    Refused(Refusal),
    /// Some of its seen versions (or the record's create) have not arrived.
    Waiting,
}

/// One entry of a record's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The version's block ID.
    pub id: BlockId,
    /// The device that wrote it.
    pub author: Author,
    /// What it did.
    pub kind: VersionKind,
    /// Its block's time (informational).
    pub time: u64,
    /// Its content, `None` for a delete or once erased.
    pub content: Option<Commitment>,
    /// Whether its content was erased.
    pub erased: bool,
}

/// A record as every replica holding the same versions sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// The record's name.
    pub id: RecordId,
    /// The DID of the person who created it.
    pub author: String,
    /// The current version (`None` once deleted).
    pub current: Option<BlockId>,
    /// The current content (`None` once deleted).
    pub content: Option<Commitment>,
    /// Other heads: edits concurrent with the current version, ascending chain order.
    pub conflicts: Vec<BlockId>,
    /// The delete that ended it (the greatest valid one by chain order), if any.
    pub deleted: Option<BlockId>,
    /// Whether a delete erased the content of every version.
    pub erased: bool,
    /// Every valid version, in chain order (a causal order).
    pub history: Vec<HistoryEntry>,
    /// Versions refused, in chain order, with why.
    pub refused: Vec<(BlockId, Refusal)>,
    /// Versions waiting for seen versions that have not arrived.
    pub waiting: Vec<BlockId>,
}

impl RecordView {
    /// The content roots a replica must erase (every version's, once erased).
    pub fn erased_roots(&self, records: &Records) -> Vec<ContentRoot> {
        if !self.erased {
            return Vec::new();
        }
        records
            .versions_of(&self.id)
            .filter_map(|v| v.op.content.as_ref().map(|c| c.root))
            .collect()
    }
}

/// A change a replica tells its user about, once per version, in causal order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEvent {
    /// The record.
    pub record: RecordId,
    /// The version that became valid.
    pub version: BlockId,
    /// What it did.
    pub kind: VersionKind,
}

/// A valid version, as [`Records::valid_versions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidVersion {
    /// The version's block ID.
    pub id: BlockId,
    /// Its record.
    pub record: RecordId,
    /// Its block's place in the chain order.
    pub position: Position,
    /// What it does.
    pub kind: VersionKind,
    /// The content it sets (a create's or an edit's).
    pub content: Option<Commitment>,
    /// Whether its record was erased (its content is gone).
    pub erased: bool,
}

/// Whether [`Records::insert`] took a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Taken; these versions (it, and any that waited for it) became valid, in causal order.
    New(Vec<RecordEvent>),
    /// Already held: nothing changed.
    Duplicate,
}

/// The fold of every version a replica holds, by record.
#[derive(Debug, Clone, Default)]
pub struct Records {
    versions: HashMap<BlockId, Version>,
    /// Versions by record, in chain order.
    by_record: HashMap<RecordId, BTreeMap<Position, BlockId>>,
    /// Versions already announced as valid.
    announced: HashSet<BlockId>,
}

impl Records {
    /// An empty fold.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one version, in any order and any number of times.
    pub fn insert(&mut self, version: Version) -> Inserted {
        let id = version.id();
        if self.versions.contains_key(&id) {
            return Inserted::Duplicate;
        }
        let record = version.record();
        self.by_record
            .entry(record)
            .or_default()
            .insert(version.position, id);
        self.versions.insert(id, version);
        let valid: Vec<RecordEvent> = self
            .standings(&record)
            .into_iter()
            .filter(|(_, standing)| *standing == Standing::Valid)
            .map(|(version, _)| RecordEvent {
                record,
                version: version.id(),
                kind: version.op.kind,
            })
            .collect();
        let events = valid
            .into_iter()
            .filter(|event| self.announced.insert(event.version))
            .collect();
        Inserted::New(events)
    }

    /// How many versions it holds.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether it holds no version.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// A version by ID.
    pub fn version(&self, id: &BlockId) -> Option<&Version> {
        self.versions.get(id)
    }

    /// The records whose create is held, in chain order.
    pub fn records(&self) -> Vec<RecordId> {
        let mut creates: Vec<Position> = self
            .versions
            .values()
            .filter(|v| v.op.kind == VersionKind::Create)
            .map(|v| v.position)
            .collect();
        creates.sort();
        creates.into_iter().map(|p| p.id).collect()
    }

    /// The versions naming `record` (its create included), in chain order.
    pub fn versions_of(&self, record: &RecordId) -> impl Iterator<Item = &Version> {
        self.by_record
            .get(record)
            .into_iter()
            .flat_map(|versions| versions.values())
            .filter_map(|id| self.versions.get(id))
    }

    /// Every valid version of every record, in chain order (a causal order).
    pub fn valid_versions(&self) -> Vec<ValidVersion> {
        let mut out = Vec::new();
        for record in self.by_record.keys() {
            let standings = self.standings(record);
            let erased = standings.iter().any(|(v, s)| {
                *s == Standing::Valid && v.op.kind == VersionKind::Delete { erase: true }
            });
            out.extend(
                standings
                    .into_iter()
                    .filter(|(_, s)| *s == Standing::Valid)
                    .map(|(v, _)| ValidVersion {
                        id: v.id(),
                        record: *record,
                        position: v.position,
                        kind: v.op.kind,
                        content: v.op.content.clone(),
                        erased,
                    }),
            );
        }
        out.sort_by_key(|v| v.position);
        out
    }

    /// Each version of `record` with its standing, in chain order.
    fn standings(&self, record: &RecordId) -> Vec<(&Version, Standing)> {
        let create = self
            .versions
            .get(record)
            .filter(|v| v.op.kind == VersionKind::Create);
        // Per valid version: the valid versions it saw, transitively.
        let mut closures: HashMap<BlockId, HashSet<BlockId>> = HashMap::new();
        let mut standing: HashMap<BlockId, Standing> = HashMap::new();
        let mut deletes: HashSet<BlockId> = HashSet::new();
        let mut out = Vec::new();
        for version in self.versions_of(record) {
            let id = version.id();
            let judged = match create {
                None => Standing::Waiting,
                Some(create) if id == create.id() => Standing::Valid,
                Some(create) => judge(
                    version,
                    create,
                    &standing,
                    &closures,
                    &deletes,
                    &self.versions,
                ),
            };
            if judged == Standing::Valid {
                let mut closure = HashSet::new();
                for seen in &version.op.seen {
                    // Refused versions an author names add nothing.
                    if standing.get(seen) == Some(&Standing::Valid) {
                        closure.insert(*seen);
                        if let Some(more) = closures.get(seen) {
                            closure.extend(more.iter().copied());
                        }
                    }
                }
                closures.insert(id, closure);
                if matches!(version.op.kind, VersionKind::Delete { .. }) {
                    deletes.insert(id);
                }
            }
            standing.insert(id, judged);
            out.push((version, judged));
        }
        out
    }

    /// The record as every replica holding these versions sees it; `None` until its create
    /// arrives.
    pub fn record(&self, id: &RecordId) -> Option<RecordView> {
        let create = self
            .versions
            .get(id)
            .filter(|v| v.op.kind == VersionKind::Create)?;
        let standings = self.standings(id);
        let valid: Vec<&Version> = standings
            .iter()
            .filter(|(_, s)| *s == Standing::Valid)
            .map(|(v, _)| *v)
            .collect();
        let seen_by_some: HashSet<BlockId> = valid
            .iter()
            .flat_map(|v| v.op.seen.iter().copied())
            .collect();
        let deleted = valid
            .iter()
            .rev()
            .find(|v| matches!(v.op.kind, VersionKind::Delete { .. }))
            .map(|v| v.id());
        let erased = valid
            .iter()
            .any(|v| v.op.kind == VersionKind::Delete { erase: true });
        // Heads: valid versions no valid version names as seen. Naming is enough: a version
        // a head saw transitively was named by the version in between.
        let heads: Vec<&Version> = valid
            .iter()
            .filter(|v| !seen_by_some.contains(&v.id()))
            .filter(|v| !matches!(v.op.kind, VersionKind::Delete { .. }))
            .copied()
            .collect();
        let (current, conflicts) = match (deleted, heads.split_last()) {
            (None, Some((last, rest))) => (Some(*last), rest.iter().map(|v| v.id()).collect()),
            _ => (None, Vec::new()),
        };
        Some(RecordView {
            id: *id,
            author: create.person.clone(),
            current: current.map(Version::id),
            content: current.and_then(|v| v.op.content.clone()),
            conflicts,
            deleted,
            erased,
            history: valid
                .iter()
                .map(|v| HistoryEntry {
                    id: v.id(),
                    author: v.author,
                    kind: v.op.kind,
                    time: v.time,
                    content: if erased { None } else { v.op.content.clone() },
                    erased: erased && v.op.content.is_some(),
                })
                .collect(),
            refused: standings
                .iter()
                .filter_map(|(v, s)| match s {
                    Standing::Refused(why) => Some((v.id(), *why)),
                    _ => None,
                })
                .collect(),
            waiting: standings
                .iter()
                .filter(|(_, s)| *s == Standing::Waiting)
                .map(|(v, _)| v.id())
                .collect(),
        })
    }
}

/// The standing of a non-create version, its earlier versions judged.
fn judge(
    version: &Version,
    create: &Version,
    standing: &HashMap<BlockId, Standing>,
    closures: &HashMap<BlockId, HashSet<BlockId>>,
    deletes: &HashSet<BlockId>,
    versions: &HashMap<BlockId, Version>,
) -> Standing {
    let record = create.id();
    for seen in &version.op.seen {
        match versions.get(seen) {
            // Not arrived: it may yet, and it must come first.
            None => return Standing::Waiting,
            Some(earlier) if earlier.record() != record || earlier.position >= version.position => {
                return Standing::Refused(Refusal::SeenOutOfPlace);
            }
            Some(_) => {}
        }
        if standing.get(seen) == Some(&Standing::Waiting) {
            return Standing::Waiting;
        }
    }
    let same_person = version.person == create.person;
    match version.op.kind {
        VersionKind::Create => Standing::Refused(Refusal::SeenOutOfPlace),
        VersionKind::Edit if !same_person => Standing::Refused(Refusal::NotTheAuthor),
        VersionKind::Edit => {
            let saw_delete = version.op.seen.iter().any(|seen| {
                deletes.contains(seen)
                    || closures
                        .get(seen)
                        .is_some_and(|closure| closure.iter().any(|c| deletes.contains(c)))
            });
            if saw_delete {
                Standing::Refused(Refusal::Deleted)
            } else {
                Standing::Valid
            }
        }
        VersionKind::Delete { .. } if !same_person && !version.admin => {
            Standing::Refused(Refusal::NotPermitted)
        }
        VersionKind::Delete { .. } => Standing::Valid,
    }
}

/// Erases from `store` the content of every version of every erased record: what a replica
/// does after folding a delete with `erase`. Returns how many contents it erased.
pub async fn erase_contents<S: ContentStore>(
    records: &Records,
    store: &S,
) -> Result<usize, MutabilityError> {
    // Only records with an erasing delete can be erased: the others are not folded here.
    let mut candidates: Vec<RecordId> = records
        .versions
        .values()
        .filter(|v| v.op.kind == VersionKind::Delete { erase: true })
        .map(Version::record)
        .collect();
    candidates.sort();
    candidates.dedup();
    let mut erased = 0;
    for record in candidates {
        let Some(view) = records.record(&record) else {
            continue;
        };
        for root in view.erased_roots(records) {
            if !store.is_erased(&root).await? {
                store.erase(&root).await?;
                erased += 1;
            }
        }
    }
    Ok(erased)
}
