//! Admission: a rule beyond Walytis's own checks that the blocks of a chain must meet.
//!
//! Walytis itself stores any well-formed, correctly signed block whose parents it holds. A
//! chain may carry a stricter rule — an identity chain admits only blocks by devices its own
//! history authorises — decided from the block and its *ancestry* alone. What a block's
//! parents reach is the same on every replica, whatever else that replica holds, so every
//! replica admits or refuses a block alike and the DAGs still converge. (A rule that also
//! looked at concurrent blocks could make two replicas disagree about a block, and then about
//! every descendant of it.)
//!
//! A rule keeps a *view*: what it derived from an ancestry-closed set of blocks. When a
//! block's parents are exactly the view's leaves — every local write, and nearly every block
//! of a catch-up, which arrives parents first — the block is checked against the view and
//! folded in. Otherwise the chain first rebuilds the view from the block's ancestry, which
//! costs a read of that ancestry and a fold of it.
//!
//! A writer that may sign on old parents (a removed device, in a chain that admits by
//! ancestry) can make every replica do that for each of its blocks, so a rule that can copy
//! its view ([`Admission::snapshot`]) gets *kept views*, up to [`KEPT_VIEWS`], the least
//! recently used dropped first: the view a rebuild or a resume replaced (the tip, usually),
//! the view at the parents of every block judged off the view, and one every [`KEPT_EVERY`]
//! blocks on the way of a resume. A block off the view is then judged from the nearest kept
//! view it descends from: the chain walks back from the block's parents until it meets kept
//! views' leaves, and if it met exactly one view's leaves and what lies between extends that
//! view block by block, folds just those in. So a flood of blocks on old parents costs each a
//! short walk and a short fold, on a chain that grows in a line (as identity chains do);
//! anything else falls back to the full rebuild.

use std::any::Any;
use std::collections::HashSet;

use super::binding::Writers;
use super::block::Block;
use super::id::BlockId;
use super::rules::Refused;

/// A chain's admission rule (see the module docs).
pub trait Admission: Send + Sync {
    /// Replaces the view with one derived from `ancestry`: every block a new block's parents
    /// reach, in chain order (height, then ID), genesis first.
    fn rebuild(&mut self, ancestry: &[Block]);
    /// Whether `block`, whose parents are the view's leaves, may be stored; if not, the
    /// rule's typed refusal.
    fn check(&self, block: &Block) -> Result<(), Refused>;
    /// Folds in a block [`Admission::check`] admitted.
    fn extend(&mut self, block: &Block);
    /// Who the view lets write the chains bound to this one (see [`super::binding`]);
    /// `None` for rules that name no writers, which authorise nobody.
    fn writers(&self) -> Option<&dyn Writers> {
        None
    }
    /// A copy of the rule at its current view, to be kept and resumed from (see the module
    /// docs); `None` for rules that cannot copy it, which are always rebuilt.
    fn snapshot(&self) -> Option<Box<dyn Admission>> {
        None
    }
    /// Another chain, and the anchor in it, whose view the check of `block` needs beside this
    /// rule's own (a group's block naming where a member stands in its person chain): the
    /// chain then judges it with [`Admission::check_referenced`], holding it while part of
    /// the anchor is missing, as a bound chain does.
    fn reference(&self, _block: &Block) -> Option<(BlockId, Vec<BlockId>)> {
        None
    }
    /// [`Admission::check`] for a block that names a [`Admission::reference`]: `view` is the
    /// referenced chain's own rule rebuilt from the anchor's ancestry (`None` if this replica
    /// knows no rule for it), `reached` how many blocks the anchor reaches.
    fn check_referenced(
        &self,
        block: &Block,
        _view: Option<&dyn Admission>,
        _reached: u64,
    ) -> Result<(), Refused> {
        self.check(block)
    }
    /// The rule as [`Any`], for rules that read another chain's view through
    /// [`Admission::check_referenced`].
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
}

/// Another chain's view at an anchor, for [`Admission::check_referenced`].
pub(super) struct ReferenceView {
    /// The chain.
    pub(super) chain: BlockId,
    /// The anchor, sorted.
    pub(super) anchor: Vec<BlockId>,
    /// The blocks it reaches.
    pub(super) reached: u64,
    /// The chain's rule at the anchor.
    pub(super) rule: Option<Box<dyn Admission>>,
}

/// Views kept to resume from.
pub const KEPT_VIEWS: usize = 128;
/// While a kept view is extended block by block, one more view is kept every this many.
pub const KEPT_EVERY: usize = 16;

/// A view kept to resume from.
struct KeptView {
    /// Its leaves, sorted.
    leaves: Vec<BlockId>,
    rule: Box<dyn Admission>,
}

/// A rule with the leaves of its view.
pub(super) struct Guard {
    rule: Box<dyn Admission>,
    /// The view's leaves, sorted; empty until the view is first built.
    leaves: Vec<BlockId>,
    /// Earlier views, the most recently used last.
    kept: Vec<KeptView>,
}

impl Guard {
    /// A guard whose view must be built before its first check.
    pub(super) fn unbuilt(rule: Box<dyn Admission>) -> Self {
        Guard {
            rule,
            leaves: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// A guard whose view is the genesis block alone.
    pub(super) fn at_genesis(mut rule: Box<dyn Admission>, genesis: &Block) -> Self {
        rule.rebuild(std::slice::from_ref(genesis));
        Guard {
            rule,
            leaves: vec![genesis.id()],
            kept: Vec::new(),
        }
    }

    /// Whether `id` is a leaf of the view or of a kept one: a walk back from a block's
    /// parents stops there.
    pub(super) fn stops_at(&self, id: &BlockId) -> bool {
        self.leaves.contains(id) || self.kept.iter().any(|view| view.leaves.contains(id))
    }

    /// Keeps the current view, if the rule can copy it.
    fn keep_current(&mut self) {
        if self.leaves.is_empty() {
            return;
        }
        if let Some(at) = self.kept.iter().position(|v| v.leaves == self.leaves) {
            // Already kept: now the most recently used.
            let view = self.kept.remove(at);
            self.kept.push(view);
            return;
        }
        if let Some(rule) = self.rule.snapshot() {
            if self.kept.len() >= KEPT_VIEWS {
                self.kept.remove(0);
            }
            self.kept.push(KeptView {
                leaves: self.leaves.clone(),
                rule,
            });
        }
    }

    /// Moves the view to `parents` from the view whose leaves are exactly `stops` (where a
    /// walk back from `parents` stopped: see [`Guard::stops_at`]) through `fresh`, the blocks
    /// the walk read, in chain order. Works when that view is the current one or a kept one
    /// and `fresh` extends it block by block; `false` otherwise (rebuild instead).
    pub(super) fn resume(
        &mut self,
        stops: &HashSet<BlockId>,
        fresh: &[Block],
        parents: &[BlockId],
    ) -> bool {
        let mut from: Vec<BlockId> = stops.iter().copied().collect();
        from.sort_unstable();
        if from.is_empty() || !extends(&from, fresh) {
            return false;
        }
        if from != self.leaves {
            let Some(at) = self.kept.iter().rposition(|view| view.leaves == from) else {
                return false;
            };
            let Some(rule) = self.kept[at].rule.snapshot() else {
                return false;
            };
            self.keep_current();
            self.rule = rule;
            self.leaves = from;
        }
        for (n, block) in fresh.iter().enumerate() {
            self.rule.extend(block);
            self.leaves = vec![block.id()];
            if (n + 1) % KEPT_EVERY == 0 {
                self.keep_current();
            }
        }
        let mut wanted = parents.to_vec();
        wanted.sort_unstable();
        if self.leaves != wanted {
            return false;
        }
        // The next block on old parents is as likely near these as anywhere.
        self.keep_current();
        true
    }

    /// Whether the view covers exactly the ancestry of `block`.
    pub(super) fn fits(&self, block: &Block) -> bool {
        // A block's parents are sorted and unique (Walytis checks it), as are the leaves.
        !self.leaves.is_empty() && block.parents() == self.leaves.as_slice()
    }

    /// Rebuilds the view from `ancestry` (see [`Admission::rebuild`]), whose leaves are
    /// `leaves`; the view it replaces, and the new one, are kept.
    pub(super) fn rebuild(&mut self, ancestry: &[Block], leaves: &[BlockId]) {
        self.keep_current();
        self.rule.rebuild(ancestry);
        self.leaves = leaves.to_vec();
        self.leaves.sort_unstable();
        self.keep_current();
    }

    /// Folds in a block that [`Guard::fits`] and was admitted already (stored by another
    /// handle applying the same rule).
    pub(super) fn extend(&mut self, block: &Block) {
        self.rule.extend(block);
        self.leaves = vec![block.id()];
    }

    /// The chain and anchor whose view `block`'s check needs (see [`Admission::reference`]).
    pub(super) fn reference(&self, block: &Block) -> Option<(BlockId, Vec<BlockId>)> {
        self.rule.reference(block)
    }

    /// Checks a block that [`Guard::fits`] without folding it in (`reference`: the view its
    /// check needs, if it names one).
    pub(super) fn check(
        &self,
        block: &Block,
        reference: Option<&ReferenceView>,
    ) -> Result<(), Refused> {
        match reference {
            Some(view) => self
                .rule
                .check_referenced(block, view.rule.as_deref(), view.reached),
            None => self.rule.check(block),
        }
    }

    /// Checks a block that [`Guard::fits`] and, if admitted, folds it in.
    pub(super) fn admit(
        &mut self,
        block: &Block,
        reference: Option<&ReferenceView>,
    ) -> Result<(), Refused> {
        self.check(block, reference)?;
        self.extend(block);
        Ok(())
    }
}

/// Whether `fresh` (chain order) extends a view with `leaves` block by block: each block's
/// parents are exactly the leaves before it.
fn extends(leaves: &[BlockId], fresh: &[Block]) -> bool {
    let mut leaves = leaves.to_vec();
    for block in fresh {
        if block.parents() != leaves.as_slice() {
            return false;
        }
        leaves = vec![block.id()];
    }
    true
}
