//! Chains bound to an identity: data chains (a group's chat, a person's notes) that only the
//! identity's current devices can write and read.
//!
//! Writing is enforced by every replica, the relay's mailbox included, through Walytis's
//! binding (see [`crate::walytis::binding`]): each block names the identity-chain leaves its
//! author knew, and is stored only if the identity at those leaves lists its author as a
//! current device and those leaves reach everything its parents' anchors reach. Reading is
//! enforced by encryption: contents are sealed under the identity's current epoch key, which
//! a removed device never gets. A removed device's blocks "into the past" are stored but not
//! shown ([`BoundChain::messages`]); acknowledging before a removal
//! ([`BoundChain::acknowledge`]) keeps its earlier messages shown.

use std::collections::HashSet;

use rand_core::CryptoRngCore;

use crate::store::{BlockStore, StoreError};
use crate::walytis::{
    Anchored, Author, Block, BlockDraft, BlockId, Chain, ChainError, Entry, Query,
};

use super::handle::Identity;
use super::state::{IdentityState, Rejection};
use super::IdentityError;

/// Topic of a bound chain's genesis (Walytis's [`crate::walytis::BOUND_TOPIC`]).
pub use crate::walytis::BOUND_TOPIC;

/// A chain bound to an identity, as one device of that identity sees it.
#[derive(Debug)]
pub struct BoundChain<S: BlockStore> {
    chain: Chain<S>,
}

impl<S: BlockStore + Clone> BoundChain<S> {
    /// Founds a chain bound to `identity`, in the identity's store, signed by this device.
    pub async fn create(
        identity: &Identity<S>,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, IdentityError> {
        if !identity.is_current_device() {
            return Err(IdentityError::NotAMember);
        }
        // A random nonce makes every founding a new chain.
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let genesis = BlockDraft {
            chain: None,
            parents: Vec::new(),
            height: 0,
            time,
            topics: vec![BOUND_TOPIC.to_owned()],
            body: Anchored::genesis_body(&identity.chain().id(), identity.chain().leaves(), &nonce),
        }
        .sign(identity.device().signing().as_dalek())
        .map_err(ChainError::from)?;
        Self::replica(identity, genesis).await
    }

    /// Opens a bound chain from its genesis (stored if the store lacks it): how a device
    /// starts its replica of a chain another device founded. Fails, storing nothing, if the
    /// chain is not bound to `identity` or its founder was not a current device of it.
    pub async fn replica(identity: &Identity<S>, genesis: Block) -> Result<Self, IdentityError> {
        check_founder(identity, &genesis).await?;
        let chain = Chain::from_genesis(
            identity.chain().store().clone(),
            identity.chain().rules(),
            genesis,
        )
        .await?;
        Ok(BoundChain { chain })
    }

    /// Opens a bound chain the identity's store holds, checking it like
    /// [`BoundChain::replica`].
    pub async fn open(identity: &Identity<S>, id: BlockId) -> Result<Self, IdentityError> {
        let chain = Chain::open(
            identity.chain().store().clone(),
            identity.chain().rules(),
            id,
        )
        .await?;
        let genesis = chain
            .block(&id)
            .await?
            .ok_or(ChainError::UnknownChain(id))?
            .block;
        check_founder(identity, &genesis).await?;
        Ok(BoundChain { chain })
    }
}

/// Checks that `genesis` founds a chain bound to `identity` and that its author was a
/// current device of the identity at the genesis's anchor. (Walytis admits any genesis — a
/// chain is whatever its genesis says — so whoever opens a bound chain checks its founder.)
async fn check_founder<S: BlockStore>(
    identity: &Identity<S>,
    genesis: &Block,
) -> Result<(), IdentityError> {
    let authority = identity.chain().id();
    let anchored = crate::walytis::binding::authority_of(genesis)
        .map_err(|e| IdentityError::Malformed(e.to_string()))?
        .filter(|anchored| anchored.authority == Some(authority))
        .ok_or_else(|| IdentityError::NotBound(identity.did()))?;
    let ancestry = identity
        .chain()
        .ancestry_of(&anchored.anchor)
        .await?
        .map_err(|missing| ChainError::AwaitingAuthority { authority, missing })?;
    let state = IdentityState::resolve(&ancestry)?;
    if state.signer(genesis.author().key_bytes()).is_none() {
        return Err(Rejection::Unauthorised.into());
    }
    Ok(())
}

impl<S: BlockStore> BoundChain<S> {
    /// The chain.
    pub fn chain(&self) -> &Chain<S> {
        &self.chain
    }

    /// The chain, to insert blocks from peers or hand to sync.
    pub fn chain_mut(&mut self) -> &mut Chain<S> {
        &mut self.chain
    }

    /// Writes `plaintext` sealed under the identity's current epoch (rekeying the identity
    /// first if due), anchored at the identity's current leaves. Refresh this chain before
    /// the identity: a block of this chain names identity blocks that the identity handle
    /// must hold too, or the write is refused for going back behind a parent's anchor.
    pub async fn write(
        &mut self,
        identity: &mut Identity<S>,
        plaintext: &[u8],
        topics: Vec<String>,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Entry, IdentityError> {
        if self.chain.authority() != Some(identity.chain().id()) {
            return Err(IdentityError::NotBound(identity.did()));
        }
        let sealed = identity
            .seal(&self.chain.id(), plaintext, time, rng)
            .await?;
        let body = Anchored::body(identity.chain().leaves(), &sealed);
        let key = identity.device().signing().as_dalek();
        let mut entries = self.chain.append(key, time, vec![(body, topics)]).await?;
        entries
            .pop()
            .ok_or(IdentityError::Malformed("nothing written".into()))
    }

    /// Acknowledges the leaves: writes a block with no content on every leaf this device may
    /// build on, unless they are all its own (or the genesis). Call it before removing a
    /// device: the removed device's messages this device holds then stay shown (see
    /// [`BoundChain::messages`]). Returns the block, if one was written.
    pub async fn acknowledge(
        &mut self,
        identity: &Identity<S>,
        time: u64,
    ) -> Result<Option<Entry>, IdentityError> {
        if self.chain.authority() != Some(identity.chain().id()) {
            return Err(IdentityError::NotBound(identity.did()));
        }
        if !identity.is_current_device() {
            return Err(IdentityError::NotAMember);
        }
        let me = Author::of(identity.device().signing().as_dalek());
        let mut all_mine = true;
        for leaf in self.chain.leaves() {
            if *leaf == self.chain.id() {
                continue;
            }
            let block = self
                .chain
                .block(leaf)
                .await?
                .ok_or_else(|| {
                    ChainError::from(StoreError::Corrupt(format!("leaf {leaf} is not stored")))
                })?
                .block;
            all_mine &= block.author() == me;
        }
        if all_mine {
            return Ok(None);
        }
        let body = Anchored::body(identity.chain().leaves(), &[]);
        let key = identity.device().signing().as_dalek();
        let mut entries = self
            .chain
            .append(key, time, vec![(body, Vec::new())])
            .await?;
        Ok(entries.pop())
    }

    /// Decrypts a block of this chain, if this device holds the epoch key it was sealed
    /// under.
    pub fn read(&self, identity: &Identity<S>, block: &Block) -> Result<Vec<u8>, IdentityError> {
        let anchored =
            Anchored::parse(block).map_err(|e| IdentityError::Malformed(e.to_string()))?;
        identity.open_sealed(&self.chain.id(), anchored.content)
    }

    /// Every message (block after the genesis, acknowledgements aside) in chain order that the
    /// identity, as this device knows it now, shows, each with its content or why this device
    /// cannot read it.
    ///
    /// A block by a retired device (one removed from the identity) is shown only if a block
    /// by a current device descends from it: a current device built on it before it heard
    /// of the removal. A removed device's blocks "into the past" are stored by every replica
    /// (nothing in the chain tells them from its honest last messages) but shown by none, and
    /// so are its last messages that nobody had built on when the removal reached them (see
    /// [`crate::walytis::binding`]).
    pub async fn messages(
        &self,
        identity: &Identity<S>,
    ) -> Result<Vec<(Block, Result<Vec<u8>, IdentityError>)>, IdentityError> {
        let entries = self
            .chain
            .blocks(Query {
                limit: usize::MAX,
                ..Query::default()
            })
            .await?;
        // Children come after their parents in chain order: one pass from the end marks
        // every block some current device's block descends from.
        let state = identity.state();
        let mut vouched = HashSet::new();
        let mut shown = vec![false; entries.len()];
        for (entry, shown) in entries.iter().zip(&mut shown).rev() {
            let block = &entry.block;
            if vouched.contains(&block.id()) || !state.is_retired(block.author().key_bytes()) {
                *shown = true;
                vouched.extend(block.parents().iter().copied());
            }
        }
        let chain = self.chain.id();
        let mut messages = Vec::new();
        for (entry, shown) in entries.into_iter().zip(shown) {
            if !shown || entry.block.id() == chain {
                continue;
            }
            // One parse per block: it tells acknowledgements (no content; every message is
            // sealed, so it has some) and gives the sealed content.
            let content = match Anchored::parse(&entry.block) {
                Ok(anchored) if anchored.content.is_empty() => continue,
                Ok(anchored) => identity.open_sealed(&chain, anchored.content),
                Err(e) => Err(IdentityError::Malformed(e.to_string())),
            };
            messages.push((entry.block, content));
        }
        Ok(messages)
    }
}
