//! The record log: what a replica has told its user about a chain's records, kept so that
//! record events resume after a restart.
//!
//! [`Records`] is a function of the versions a replica holds *now*; a user wants to hear of
//! each change once, in causal order, and to pick up where it stopped after a reload. The
//! log is the memory of what was told: an append-only list of [`LogEvent`]s numbered from 0
//! (`seq`), stored in pages of [`LOG_PAGE`] events. [`RecordLog::update`] compares a fresh
//! fold with what the log told and appends the difference, so the log heals itself: events
//! a crash kept from being written are appended by the next update, none twice.
//!
//! What can be told of a version, in the order an update appends them:
//! - `withdrawn`: a version told before is no longer shown (its author was removed and no
//!   current device built on its block, or the identity it was judged by changed);
//! - `created`, `edited`, `deleted`: a version became valid (again, after a withdrawal), in
//!   chain order, which is a causal order;
//! - `content`: a valid version's content is all here (verified), told once per version.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;

use super::{MutabilityError, RecordId, Records, VersionKind};
use crate::cbor::{Reader, Writer};
use crate::offchain::Commitment;
use crate::walytis::{BlockId, ReadLink, WriteLink};

/// Events per stored page: an update rewrites at most the last page and adds new ones.
pub const LOG_PAGE: usize = 256;

/// What an event tells of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// The record's first version became valid.
    Created,
    /// An edit became valid.
    Edited,
    /// A delete became valid; with `erase`, every version's content is gone.
    Deleted {
        /// Whether it erased the content of every version.
        erase: bool,
    },
    /// The version's content is all here, verified.
    ContentArrived,
    /// A version told before is no longer shown.
    Withdrawn,
}

impl LogKind {
    fn of(kind: VersionKind) -> Self {
        match kind {
            VersionKind::Create => LogKind::Created,
            VersionKind::Edit => LogKind::Edited,
            VersionKind::Delete { erase } => LogKind::Deleted { erase },
        }
    }

    fn code(self) -> u64 {
        match self {
            LogKind::Created => 1,
            LogKind::Edited => 2,
            LogKind::Deleted { erase: false } => 3,
            LogKind::Deleted { erase: true } => 4,
            LogKind::ContentArrived => 5,
            LogKind::Withdrawn => 6,
        }
    }

    fn from_code(code: u64) -> Result<Self, MutabilityError> {
        Ok(match code {
            1 => LogKind::Created,
            2 => LogKind::Edited,
            3 => LogKind::Deleted { erase: false },
            4 => LogKind::Deleted { erase: true },
            5 => LogKind::ContentArrived,
            6 => LogKind::Withdrawn,
            _ => return Err(MutabilityError::Shape("an unknown log event kind")),
        })
    }

    /// The name JavaScript sees (an erasing delete is `deleted` with `erase`).
    pub fn name(self) -> &'static str {
        match self {
            LogKind::Created => "created",
            LogKind::Edited => "edited",
            LogKind::Deleted { .. } => "deleted",
            LogKind::ContentArrived => "content",
            LogKind::Withdrawn => "withdrawn",
        }
    }
}

/// One thing told of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEvent {
    /// Its place in the log, from 0: pass the last one seen to resume after it.
    pub seq: u64,
    /// The record.
    pub record: RecordId,
    /// The version.
    pub version: BlockId,
    /// What is told.
    pub kind: LogKind,
}

/// What a replica has told of one chain's records (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct RecordLog {
    events: Vec<LogEvent>,
    /// Versions told valid and not withdrawn since.
    shown: HashSet<BlockId>,
    /// Versions whose content arrival was told.
    arrived: HashSet<BlockId>,
}

impl RecordLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events it holds: the next event's `seq`.
    pub fn len(&self) -> u64 {
        self.events.len() as u64
    }

    /// Whether it told nothing yet.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events after `after` (every event if `None`), in order.
    pub fn since(&self, after: Option<u64>) -> &[LogEvent] {
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        self.events.get(start..).unwrap_or(&[])
    }

    /// The page index the next event goes to.
    pub fn open_page(&self) -> u64 {
        self.len() / LOG_PAGE as u64
    }

    /// Takes a stored page: its events that follow the log's (another handle of the same
    /// store may have appended them) are appended; the ones it holds already are checked to
    /// be the same. A page that does not decode, or does not follow, is an error.
    pub fn take_page(&mut self, index: u64, bytes: &[u8]) -> Result<(), MutabilityError> {
        let events = decode_page(bytes)?;
        let first = index.saturating_mul(LOG_PAGE as u64);
        for (offset, event) in events.into_iter().enumerate() {
            let seq = first + offset as u64;
            if event.seq != seq {
                return Err(MutabilityError::Shape("a log page out of sequence"));
            }
            match self.events.get(seq as usize) {
                Some(held) if *held == event => {}
                Some(_) => return Err(MutabilityError::Shape("a log page that disagrees")),
                None if seq == self.len() => self.apply(event),
                None => return Err(MutabilityError::Shape("a log page after a gap")),
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: LogEvent) {
        match event.kind {
            LogKind::Withdrawn => {
                self.shown.remove(&event.version);
            }
            LogKind::ContentArrived => {
                self.arrived.insert(event.version);
            }
            _ => {
                self.shown.insert(event.version);
            }
        }
        self.events.push(event);
    }

    fn push(&mut self, record: RecordId, version: BlockId, kind: LogKind) {
        let seq = self.len();
        self.apply(LogEvent {
            seq,
            record,
            version,
            kind,
        });
    }

    /// The valid versions whose content arrival is not told yet, in chain order: what the
    /// caller checks in its content store before [`RecordLog::update`].
    pub fn awaited_contents(&self, records: &Records) -> Vec<(BlockId, Commitment)> {
        records
            .valid_versions()
            .into_iter()
            .filter(|v| !v.erased && !self.arrived.contains(&v.id))
            .filter_map(|v| v.content.map(|content| (v.id, content)))
            .collect()
    }

    /// Appends what changed since the log was last told: versions no longer valid, versions
    /// newly valid (chain order), and contents now here (`arrived`: versions whose content
    /// the caller found all here, of those [`RecordLog::awaited_contents`] named). Returns
    /// the range of `seq`s appended.
    pub fn update(&mut self, records: &Records, arrived: &HashSet<BlockId>) -> Range<u64> {
        let start = self.len();
        let valid = records.valid_versions();
        let now: HashSet<BlockId> = valid.iter().map(|v| v.id).collect();
        let mut gone: Vec<(RecordId, BlockId)> = self
            .events
            .iter()
            .filter(|e| !matches!(e.kind, LogKind::Withdrawn | LogKind::ContentArrived))
            .filter(|e| self.shown.contains(&e.version) && !now.contains(&e.version))
            .map(|e| (e.record, e.version))
            .collect();
        gone.sort();
        gone.dedup();
        for (record, version) in gone {
            self.push(record, version, LogKind::Withdrawn);
        }
        let mut contents = VecDeque::new();
        for version in &valid {
            if !self.shown.contains(&version.id) {
                self.push(version.record, version.id, LogKind::of(version.kind));
            }
            if arrived.contains(&version.id)
                && !version.erased
                && version.content.is_some()
                && !self.arrived.contains(&version.id)
            {
                contents.push_back((version.record, version.id));
            }
        }
        for (record, version) in contents {
            self.push(record, version, LogKind::ContentArrived);
        }
        start..self.len()
    }

    /// The stored pages holding the events from `from` on: `(page index, bytes)`.
    pub fn pages_from(&self, from: u64) -> Vec<(u64, Vec<u8>)> {
        let first = from / LOG_PAGE as u64;
        self.events
            .chunks(LOG_PAGE)
            .enumerate()
            .skip(usize::try_from(first).unwrap_or(usize::MAX))
            .map(|(index, events)| (index as u64, encode_page(events)))
            .collect()
    }
}

/// A page: `[[seq, kind, record, version]…]`.
fn encode_page(events: &[LogEvent]) -> Vec<u8> {
    let mut w = Writer::with_capacity(8 + events.len() * 90);
    w.array(events.len());
    for event in events {
        w.array(4);
        w.uint(event.seq);
        w.uint(event.kind.code());
        w.link(&event.record);
        w.link(&event.version);
    }
    w.out
}

fn decode_page(bytes: &[u8]) -> Result<Vec<LogEvent>, MutabilityError> {
    let mut r = Reader::new(bytes);
    let count = r.array()?;
    if count > LOG_PAGE {
        return Err(MutabilityError::Shape(
            "a log page of more than LOG_PAGE events",
        ));
    }
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        if r.array()? != 4 {
            return Err(MutabilityError::Shape("a log event of 4 items"));
        }
        events.push(LogEvent {
            seq: r.uint()?,
            kind: LogKind::from_code(r.uint()?)?,
            record: r.link()?,
            version: r.link()?,
        });
    }
    r.finish()?;
    Ok(events)
}
