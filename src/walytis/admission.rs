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
//! costs a read of that ancestry and a fold of it: cheap for the small chains that carry
//! rules, and no more than what a new block's parents reach.

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
}

/// A rule with the leaves of its view.
pub(super) struct Guard {
    rule: Box<dyn Admission>,
    /// The view's leaves, sorted; empty until the view is first built.
    leaves: Vec<BlockId>,
}

impl Guard {
    /// A guard whose view must be built before its first check.
    pub(super) fn unbuilt(rule: Box<dyn Admission>) -> Self {
        Guard {
            rule,
            leaves: Vec::new(),
        }
    }

    /// A guard whose view is the genesis block alone.
    pub(super) fn at_genesis(mut rule: Box<dyn Admission>, genesis: &Block) -> Self {
        rule.rebuild(std::slice::from_ref(genesis));
        Guard {
            rule,
            leaves: vec![genesis.id()],
        }
    }

    /// Whether the view covers exactly the ancestry of `block`.
    pub(super) fn fits(&self, block: &Block) -> bool {
        // A block's parents are sorted and unique (Walytis checks it), as are the leaves.
        !self.leaves.is_empty() && block.parents() == self.leaves.as_slice()
    }

    /// Rebuilds the view from `ancestry` (see [`Admission::rebuild`]), whose leaves are
    /// `leaves`.
    pub(super) fn rebuild(&mut self, ancestry: &[Block], leaves: &[BlockId]) {
        self.rule.rebuild(ancestry);
        self.leaves = leaves.to_vec();
        self.leaves.sort_unstable();
    }

    /// Forgets the view: the next check rebuilds it.
    pub(super) fn invalidate(&mut self) {
        self.leaves.clear();
    }

    /// Checks a block that [`Guard::fits`] without folding it in.
    pub(super) fn check(&self, block: &Block) -> Result<(), Refused> {
        self.rule.check(block)
    }

    /// Checks a block that [`Guard::fits`] and, if admitted, folds it in.
    pub(super) fn admit(&mut self, block: &Block) -> Result<(), Refused> {
        self.rule.check(block)?;
        self.rule.extend(block);
        self.leaves = vec![block.id()];
        Ok(())
    }
}
