//! Walytis: a DAG "database blockchain" per group.
//!
//! A chain is a set of signed, content-addressed [`Block`]s. Each block names as parents all
//! the leaves its author knew, so the blocks form a DAG rooted in the genesis block, whose ID
//! is the chain's ID. Every replica orders the DAG the same way — by height, then by ID
//! ([`Position`]) — whatever order the blocks arrived in; wall-clock time plays no part.
//!
//! Sans-IO: this module does no I/O of its own; persistence goes through its storage port,
//! [`store::BlockStore`] (adapters in [`crate::store`]), passed in; time and keys are
//! arguments. Walytis imports nothing from the other modules of this crate.

mod admission;
pub mod binding;
mod block;
mod chain;
mod id;
mod rules;
pub mod store;
pub mod sync;

pub use admission::Admission;
pub use binding::{Anchored, BindingError, BoundRefusal, Writers, BOUND_TOPIC};
pub use block::{
    Author, Block, BlockDraft, BlockError, Position, MAX_BLOCK_BYTES, MAX_BODY_BYTES, MAX_PARENTS,
    MAX_TOPICS, MAX_TOPIC_BYTES,
};
pub use chain::{
    Chain, ChainError, ChainRefusal, Entry, InsertReport, Judgement, Query, MAX_AWAITING,
    MAX_PENDING, MAX_PENDING_BYTES,
};
pub use id::{BlockId, IdError, BLOCK_ID_LEN};
pub(crate) use id::{ReadLink, WriteLink};
pub use rules::{ChainRule, Refused, RuleRefusal, Rules, RulesError, RESERVED_PREFIXES};
