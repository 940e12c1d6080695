//! Bound chains: a chain whose writers another chain — its *authority* — decides.
//!
//! A chat chain of a group is bound to the group's identity chain: only devices that the
//! identity chain lists may write it. Every block of a bound chain names, in its body, the
//! authority's leaves its author knew (its *anchor*); a replica admits the block only if
//!
//! - the authority's admission rule, rebuilt from the anchor's ancestry, authorises the
//!   block's author ([`super::Writers::authorises`]), and
//! - the anchor reaches every block its parents' anchors name: anchors never go back, so once
//!   a block built on a removal is in a bound chain, nothing built on that block can be
//!   written by the removed device, even one that has not heard of its removal.
//!
//! Both are decided from the block's ancestry and the anchor's ancestry alone, the same on
//! every replica, so bound chains converge like any other. A replica that lacks part of the
//! anchor cannot decide yet: the block is held, not refused
//! ([`super::ChainError::AwaitingAuthority`]), and judged again once the authority block it
//! waits for is stored (`Chain::retry_awaiting`), or offered again by sync.
//!
//! The genesis of a bound chain carries [`BOUND_TOPIC`] and names its authority and anchor;
//! like an identity chain's genesis it is not itself checked — whoever opens a bound chain
//! checks who founded it (see `identity::BoundChain`).
//!
//! A removed device can still write *into the past*: on a bound-chain state older than its
//! removal, with an anchor older than its removal. Nothing in the two ancestries tells that
//! block from the device's honest last message, so it is stored. What keeps it out of sight:
//!
//! - a block may not build on a block whose author the block's own anchor shows *retired*
//!   ([`super::Writers::retired`]: removed for good, not merely rotated out), the genesis
//!   excepted. Writers who know of a removal leave such leaves out of their parents
//!   (`Chain` puts the leaves' own parents in their place), and every replica refuses a
//!   block that does not;
//! - readers show a retired author's block only if a block by a current author descends from
//!   it, that is, if a current device built on it before it heard of the removal (see
//!   `identity::BoundChain::messages`).
//!
//! The cost: a removed device's last messages that no current device had built on when the
//! removal reached it are hidden too, as concurrent blocks are by an identity chain's strong
//! removal.

use std::collections::{HashMap, HashSet};

use super::admission::Admission;
use super::block::{Author, Block, BlockError, MAX_PARENTS};
use super::id::BlockId;
use super::id::{ReadLink, WriteLink};
use super::rules::RuleRefusal;
use crate::cbor::{CborError, Reader, Writer};

/// The topic of a bound chain's genesis.
pub const BOUND_TOPIC: &str = "walytis/bound/1";

/// Stamps of recently checked blocks kept to check their children without a store read.
const STAMP_CACHE: usize = 1 << 14;
/// Authority views kept: blocks written between two authority changes share one.
const VIEW_CACHE: usize = 8;

/// Why a bound-chain block's body does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// Not the CBOR of a bound body.
    #[error("malformed bound-chain body: {0}")]
    Cbor(#[from] CborError),
    /// A link that does not name a block.
    #[error("malformed bound-chain body: {0}")]
    Link(#[from] BlockError),
    /// CBOR, but not the shape of a bound body.
    #[error("malformed bound-chain body: {0}")]
    Shape(&'static str),
    /// An anchor naming no block or more than a block may name as parents.
    #[error("an anchor of {0} blocks (1 to {MAX_PARENTS})")]
    AnchorSize(usize),
}

/// Who may write the chains bound to an authority, as the authority's rule sees it at one
/// anchor (see [`super::Admission::writers`]).
pub trait Writers {
    /// Whether `author` may write a chain bound to the authority.
    fn authorises(&self, author: &Author) -> bool;
    /// Whether `author` is removed for good (not merely a key rotated out): a bound-chain
    /// block anchored here may not build on its blocks.
    fn retired(&self, author: &Author) -> bool;
}

/// Why a block of a bound chain is refused (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BoundRefusal {
    /// The body is not a bound-chain body.
    #[error(transparent)]
    Malformed(#[from] BindingError),
    /// The anchor does not reach a block a parent's anchor names: anchors never go back.
    #[error("its anchor does not reach {0}, which a parent's anchor names: anchors never go back")]
    AnchorBehind(BlockId),
    /// A parent's author is removed at this block's anchor.
    #[error("it builds on {0}, whose author its anchor shows removed")]
    BuildsOnRetired(BlockId),
    /// The author may not write at the anchor.
    #[error("its author is not authorised by the authority at its anchor")]
    NotAWriter,
    /// The authority's rule names no writers.
    #[error("the authority chain has no rule that authorises writers")]
    NoWriters,
}

impl RuleRefusal for BoundRefusal {
    fn code(&self) -> &'static str {
        match self {
            BoundRefusal::Malformed(_) => "MALFORMED_BOUND_BLOCK",
            BoundRefusal::AnchorBehind(_) => "ANCHOR_BEHIND",
            BoundRefusal::BuildsOnRetired(_) => "BUILDS_ON_REMOVED",
            BoundRefusal::NotAWriter => "NOT_A_WRITER",
            BoundRefusal::NoWriters => "NO_WRITERS",
        }
    }
}

/// A bound-chain block's body, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored<'a> {
    /// The authority chain (named by the genesis only).
    pub authority: Option<BlockId>,
    /// The authority's leaves the author knew, sorted.
    pub anchor: Vec<BlockId>,
    /// What the application wrote.
    pub content: &'a [u8],
}

impl<'a> Anchored<'a> {
    /// The body of a bound chain's genesis.
    pub fn genesis_body(authority: &BlockId, anchor: &[BlockId], content: &[u8]) -> Vec<u8> {
        let mut w = Writer::with_capacity(content.len() + 64 * (anchor.len() + 1));
        w.array(3);
        w.link(authority);
        write_anchor(&mut w, anchor);
        w.bytes(content);
        w.out
    }

    /// The body of a later block of a bound chain.
    pub fn body(anchor: &[BlockId], content: &[u8]) -> Vec<u8> {
        let mut w = Writer::with_capacity(content.len() + 64 * anchor.len());
        w.array(2);
        write_anchor(&mut w, anchor);
        w.bytes(content);
        w.out
    }

    /// Parses a bound-chain block's body.
    pub fn parse(block: &'a Block) -> Result<Self, BindingError> {
        Self::parse_body(block.body(), block.chain().is_none())
    }

    /// Parses the body of a bound chain's genesis (`genesis`) or of a later block.
    pub fn parse_body(body: &'a [u8], genesis: bool) -> Result<Self, BindingError> {
        let mut r = Reader::new(body);
        let expected = if genesis { 3 } else { 2 };
        if r.array()? != expected {
            return Err(BindingError::Shape("not an array of the right length"));
        }
        let authority = if genesis { Some(r.link()?) } else { None };
        let count = r.array()?;
        if count == 0 || count > MAX_PARENTS {
            return Err(BindingError::AnchorSize(count));
        }
        let mut anchor = Vec::with_capacity(count);
        for _ in 0..count {
            anchor.push(r.link()?);
        }
        if anchor.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BindingError::Shape("anchor not sorted and unique"));
        }
        let content = r.bytes()?;
        if !r.is_empty() {
            return Err(BindingError::Shape("trailing bytes"));
        }
        Ok(Anchored {
            authority,
            anchor,
            content,
        })
    }
}

fn write_anchor(w: &mut Writer, anchor: &[BlockId]) {
    let mut sorted = anchor.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    w.array(sorted.len());
    for id in &sorted {
        w.link(id);
    }
}

/// The authority a bound chain's genesis names, `None` for chains that are not bound.
/// A genesis that claims to be bound and does not parse is an error.
pub fn authority_of(genesis: &Block) -> Result<Option<Anchored<'_>>, BindingError> {
    if !genesis.topics().iter().any(|t| t == BOUND_TOPIC) {
        return Ok(None);
    }
    Anchored::parse(genesis).map(Some)
}

/// The authority at one anchor: its admission rule's view and every block the anchor reaches.
pub(super) struct AuthorityView {
    anchor: Vec<BlockId>,
    reached: HashSet<BlockId>,
    rule: Option<Box<dyn Admission>>,
}

impl AuthorityView {
    /// A view of the authority's `ancestry` (chain order, genesis first) at `anchor`, judged
    /// by `rule` (the authority's own admission rule; `None` if it has none, and then it
    /// authorises nobody).
    pub(super) fn new(
        anchor: Vec<BlockId>,
        ancestry: &[Block],
        mut rule: Option<Box<dyn Admission>>,
    ) -> Self {
        if let Some(rule) = &mut rule {
            rule.rebuild(ancestry);
        }
        AuthorityView {
            anchor,
            reached: ancestry.iter().map(Block::id).collect(),
            rule,
        }
    }

    /// Who may write at this view, if the authority's rule names writers.
    fn writers(&self) -> Option<&dyn Writers> {
        self.rule.as_ref().and_then(|rule| rule.writers())
    }

    /// Whether the authority at this view shows `author` retired (see the module docs).
    pub(super) fn retired(&self, author: &Author) -> bool {
        self.writers()
            .is_some_and(|writers| writers.retired(author))
    }
}

/// Where an admitted bound-chain block stands: what its children's checks need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    /// The authority's leaves its author knew.
    pub(super) anchor: Vec<BlockId>,
    /// Who wrote it.
    pub(super) author: Author,
}

/// What a chain bound to an authority remembers to check its blocks.
pub(super) struct Binding {
    /// The authority chain's ID.
    pub(super) authority: BlockId,
    /// The genesis, exempt from the retired-parent rule: every chain starts from it.
    genesis: BlockId,
    stamps: HashMap<BlockId, Stamp>,
    views: Vec<AuthorityView>,
}

impl Binding {
    pub(super) fn new(authority: BlockId, genesis: &Block, anchor: Vec<BlockId>) -> Self {
        let stamp = Stamp {
            anchor,
            author: genesis.author(),
        };
        Binding {
            authority,
            genesis: genesis.id(),
            stamps: HashMap::from([(genesis.id(), stamp)]),
            views: Vec::new(),
        }
    }

    /// The stamp of an admitted block, if remembered.
    pub(super) fn stamp_of(&self, id: &BlockId) -> Option<&Stamp> {
        self.stamps.get(id)
    }

    /// The view at `anchor`, if kept.
    pub(super) fn view(&self, anchor: &[BlockId]) -> Option<&AuthorityView> {
        self.views.iter().find(|view| view.anchor == anchor)
    }

    /// Keeps a view, forgetting the oldest beyond [`VIEW_CACHE`].
    pub(super) fn keep_view(&mut self, view: AuthorityView) {
        if self.views.len() >= VIEW_CACHE {
            self.views.remove(0);
        }
        self.views.push(view);
    }

    /// Whether `id`, with `stamp`, is a leaf that a block anchored at `view` must not build
    /// on: its author is retired there, and it is not the genesis.
    pub(super) fn is_dead(&self, view: &AuthorityView, id: &BlockId, stamp: &Stamp) -> bool {
        *id != self.genesis && view.retired(&stamp.author)
    }

    /// Remembers the stamp of an admitted block.
    pub(super) fn remember(&mut self, id: BlockId, stamp: Stamp) {
        if self.stamps.len() >= STAMP_CACHE {
            self.stamps.clear();
        }
        self.stamps.insert(id, stamp);
    }

    /// Whether a block with its anchor's `view`, by `author`, whose parents are `parents`
    /// (ID and stamp) may be stored; if not, why.
    pub(super) fn judge(
        &self,
        view: &AuthorityView,
        author: &Author,
        parents: &[(BlockId, Stamp)],
    ) -> Result<(), BoundRefusal> {
        if let Some(behind) = parents
            .iter()
            .flat_map(|(_, stamp)| &stamp.anchor)
            .find(|id| !view.reached.contains(*id))
        {
            return Err(BoundRefusal::AnchorBehind(*behind));
        }
        if let Some((parent, _)) = parents
            .iter()
            .find(|(id, stamp)| self.is_dead(view, id, stamp))
        {
            return Err(BoundRefusal::BuildsOnRetired(*parent));
        }
        match view.writers() {
            Some(writers) if writers.authorises(author) => Ok(()),
            Some(_) => Err(BoundRefusal::NotAWriter),
            None => Err(BoundRefusal::NoWriters),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::walytis::block::BlockDraft;

    fn block(genesis: bool, body: Vec<u8>) -> Block {
        BlockDraft {
            chain: (!genesis).then(|| BlockId::of(b"chain")),
            parents: if genesis {
                vec![]
            } else {
                vec![BlockId::of(b"parent")]
            },
            height: u64::from(!genesis),
            time: 0,
            topics: vec![BOUND_TOPIC.into()],
            body,
        }
        .sign(&SigningKey::from_bytes(&[1; 32]))
        .unwrap()
    }

    #[test]
    fn bodies_round_trip_and_anything_else_is_a_typed_error() {
        let (a, b, authority) = (BlockId::of(b"a"), BlockId::of(b"b"), BlockId::of(b"id"));
        let genesis = block(
            true,
            Anchored::genesis_body(&authority, &[b, a, b], b"nonce"),
        );
        let parsed = Anchored::parse(&genesis).unwrap();
        assert_eq!(parsed.authority, Some(authority));
        let mut sorted = vec![a, b];
        sorted.sort_unstable();
        assert_eq!(
            parsed.anchor, sorted,
            "sorted and deduplicated when written"
        );
        assert_eq!(parsed.content, b"nonce");
        let later = block(false, Anchored::body(&[a], b"hello"));
        let parsed = Anchored::parse(&later).unwrap();
        assert_eq!((parsed.authority, parsed.content), (None, &b"hello"[..]));

        // A genesis body on a later block and the reverse, an empty anchor, an unsorted
        // anchor, trailing bytes, plain garbage.
        let mut unsorted = Writer::with_capacity(128);
        unsorted.array(2);
        unsorted.array(2);
        unsorted.link(&sorted[1]);
        unsorted.link(&sorted[0]);
        unsorted.bytes(b"x");
        let mut empty = Writer::with_capacity(16);
        empty.array(2);
        empty.array(0);
        empty.bytes(b"x");
        let mut trailing = Anchored::body(&[a], b"x");
        trailing.push(0);
        for (bad, genesis) in [
            (Anchored::genesis_body(&authority, &[a], b"x"), false),
            (Anchored::body(&[a], b"x"), true),
            (unsorted.out, false),
            (empty.out.clone(), false),
            (trailing, false),
            (b"garbage".to_vec(), false),
        ] {
            assert!(Anchored::parse(&block(genesis, bad)).is_err());
        }
        assert!(matches!(
            Anchored::parse(&block(false, empty.out.clone())),
            Err(BindingError::AnchorSize(0))
        ));
    }
}
