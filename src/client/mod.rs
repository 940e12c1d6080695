//! The client layer: one device's [`Account`] in an identity — the identity and the chains
//! bound to it — with the protocol steps every front end needs, in one native place.
//!
//! Sans-IO like the layers below: an account reads and writes its store, never the network.
//! Every step that writes blocks queues them in the account's outbox, in the order peers
//! must receive them; the shell (the wasm bindings, a native tool) drains it with
//! [`Account::take_outbox`] and pushes each [`Publication`] to that chain's peers, in order.
//! Blocks from peers come in through [`Account::receive`], or straight into the store when a
//! node syncs the same store (the account then picks them up by itself).
//!
//! The steps that live here and nowhere else:
//! - a bound chain is refreshed before its identity, so that the identity holds every block
//!   the bound chain's blocks name ([`Account::write_to`], [`Account::messages_of`]);
//! - before a removal, every open bound chain is acknowledged, so that the removed device's
//!   messages this device holds stay shown ([`Account::remove`]);
//! - a rekey is published before the bound block anchored on it, so that no peer holds the
//!   block without its anchor;
//! - when the identity chain grows, bound blocks held for their anchor are judged again;
//! - this device's keys are kept sealed under the user's passphrase in the store
//!   ([`Keyring`]).
//!
//! - records on bound chains — private content posted, edited and deleted, every version
//!   kept ([`Account::post`], [`Account::edit`], [`Account::delete`],
//!   [`Account::records_of`], [`Account::content`]) — for stores that keep content too.
//!
//! The messenger plugs in here.

use std::collections::{BTreeMap, HashMap};

use rand_core::CryptoRngCore;

mod records;

pub use records::SegmentSource;

use crate::envelope::{Envelope, EnvelopeError};
use crate::identity::handle::person_in_store;
use crate::identity::{
    BoundChain, DeviceKeys, Founding, Identity, IdentityError, Invitation, KdfFloor, KdfParams,
    Keystore, MemberEntry, PersonAnchor, Policy, PublicKey, RecoveryKey,
};
use crate::mutability::MutabilityError;
use crate::offchain::{ContentStatus, OffchainError, TransferError};
use crate::store::{BlockStore, StoreError};
use crate::walytis::{Block, BlockId, ChainError, Entry, InsertReport};

/// Why an account step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Keys cannot be kept without a passphrase.
    #[error("a passphrase is required to keep identity keys")]
    PassphraseRequired,
    /// The identity names no default chain (it was made by an earlier build).
    #[error("the identity names no default chain")]
    NoDefaultChain,
    /// The chain is neither the account's identity chain nor a bound chain it opened.
    #[error("chain {0} is not open in this account")]
    ChainNotOpen(BlockId),
    /// Sealed content opened, but is not an envelope this build reads.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The identity layer refused or failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keys sealed in the store are another device's than the account's.
    #[error("this device's keys are not the ones sealed in the store")]
    KeysNotStored,
    /// No record of that ID in the chain (as this device holds it).
    #[error("no record {0} in this chain")]
    NoSuchRecord(BlockId),
    /// The record was deleted: it is edited and deleted no more.
    #[error("record {0} was deleted")]
    RecordDeleted(BlockId),
    /// Only the record's author (any device of the same person) edits it.
    #[error("only the author of record {0} edits it")]
    NotTheAuthor(BlockId),
    /// Only the record's author or an admin deletes it.
    #[error("only the author of record {0} or an admin deletes it")]
    NotPermitted(BlockId),
    /// The content is not all here (fetching, missing) or was erased.
    #[error("the content is not available here: {0:?}")]
    ContentUnavailable(ContentStatus),
    /// Content that cannot be sealed, or that does not verify or open.
    #[error(transparent)]
    Content(#[from] OffchainError),
    /// A content transfer step failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A version op that cannot be made or folded.
    #[error(transparent)]
    Mutability(#[from] MutabilityError),
}

/// Blocks one chain's peers must receive, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The chain the blocks belong to.
    pub chain: BlockId,
    /// The blocks, parents before children.
    pub blocks: Vec<Block>,
    /// Content pushed with its block, so that readers have it in the block's own hop:
    /// `(index in blocks, the content that block commits to)`, for content of at most
    /// [`crate::offchain::MAX_INLINE_LEN`] bytes. Peers that miss it fetch it like any
    /// content.
    pub inline: Vec<(usize, crate::offchain::InlineContent)>,
}

/// A content a delete with `erase` erased, and the secret that lets a relay, which cannot
/// read it, check that the request comes from someone who can (see
/// [`crate::offchain::erase_secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The chain the content belongs to.
    pub chain: BlockId,
    /// The content.
    pub root: crate::offchain::ContentRoot,
    /// Its erase secret.
    pub secret: [u8; 32],
}

/// A message of a chain as this device shows it.
#[derive(Debug)]
pub struct Message {
    /// The block that carries it.
    pub block: Block,
    /// The `did:key` of the device that wrote it, if the identity knows its key.
    pub device: Option<String>,
    /// The content (see [`crate::envelope`]), or why this device cannot read it.
    pub content: Result<Envelope, ClientError>,
}

/// Where this device's identity keys are kept: sealed (Argon2id + XChaCha20-Poly1305) under
/// the user's passphrase, in a setting of the store. The store never holds them in the clear.
#[derive(Debug, Clone, Copy)]
pub struct Keyring {
    /// The KDF cost new keys are sealed with.
    pub params: KdfParams,
    /// The least KDF cost accepted when opening (a tampered store cannot lower it).
    pub floor: KdfFloor,
}

impl Keyring {
    /// Name of the store setting that holds the sealed keys.
    pub const SETTING: &'static str = "identity-device-keys";

    /// Name of the store setting that holds this device's keys in one identity once they
    /// rotated there (the device's other identities keep the keys they know).
    pub fn rotated_setting(chain: &BlockId) -> String {
        format!("{}/{chain}", Self::SETTING)
    }

    /// Name of the store setting that holds the next keys while a rotation in `chain` is
    /// written (empty otherwise; see [`Account::rotate_kept`]).
    pub fn next_setting(chain: &BlockId) -> String {
        format!("{}/{chain}/next", Self::SETTING)
    }

    /// The costs to use in applications.
    pub const RECOMMENDED: Keyring = Keyring {
        params: KdfParams::DEFAULT,
        floor: KdfFloor::RECOMMENDED,
    };

    /// This device's keys: opened with `passphrase` if the store holds them, otherwise made,
    /// sealed with it and stored. A wrong passphrase fails and changes nothing.
    pub async fn unlock<S: BlockStore>(
        &self,
        store: &S,
        passphrase: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<DeviceKeys, ClientError> {
        if passphrase.is_empty() {
            return Err(ClientError::PassphraseRequired);
        }
        match store.setting(Self::SETTING).await? {
            Some(sealed) => {
                self.open_kept(store, Self::SETTING, &sealed, passphrase, rng)
                    .await
            }
            None => {
                let keys = DeviceKeys::generate(rng);
                let sealed = keys.seal(passphrase, self.params, rng)?;
                store.put_setting(Self::SETTING, &sealed).await?;
                Ok(keys)
            }
        }
    }

    /// This device's keys in the identity `chain`: the ones it rotated to there, or else
    /// the device's keys ([`Keyring::unlock`]).
    pub async fn unlock_for<S: BlockStore>(
        &self,
        store: &S,
        chain: &BlockId,
        passphrase: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<DeviceKeys, ClientError> {
        if passphrase.is_empty() {
            return Err(ClientError::PassphraseRequired);
        }
        let setting = Self::rotated_setting(chain);
        match store.setting(&setting).await? {
            Some(sealed) => {
                self.open_kept(store, &setting, &sealed, passphrase, rng)
                    .await
            }
            None => self.unlock(store, passphrase, rng).await,
        }
    }

    /// Opens keys kept in `setting`; keys sealed with weaker parameters than this keyring's
    /// (an older build's) are sealed again with them, now that the passphrase is at hand.
    async fn open_kept<S: BlockStore>(
        &self,
        store: &S,
        setting: &str,
        sealed: &[u8],
        passphrase: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<DeviceKeys, ClientError> {
        let keys = DeviceKeys::open(passphrase, sealed, self.floor)?;
        let params = Keystore::params(sealed).map_err(IdentityError::from)?;
        if params.weaker_than(&self.params) {
            let stronger = keys.seal(passphrase, self.params, rng)?;
            store.put_setting(setting, &stronger).await?;
        }
        Ok(keys)
    }
}

/// One device's account in an identity (a person, or a group it belongs to) and the chains
/// bound to that identity it has opened. Every block it writes is queued for publication.
#[derive(Debug)]
pub struct Account<S: BlockStore> {
    identity: Identity<S>,
    bound: BTreeMap<BlockId, BoundChain<S>>,
    outbox: Vec<Publication>,
    /// Erase requests for the relays (see [`Account::take_erasures`]).
    erasures: Vec<Erasure>,
    /// The last fold of each bound chain's records, with the lengths of that chain and of
    /// the identity chain it was made at (see [`Account::records_of`]).
    folded: HashMap<BlockId, ((u64, u64), crate::mutability::Records)>,
    /// What this store has told of each bound chain's records (see
    /// [`Account::record_events`]), read from the store on first use.
    logs: HashMap<BlockId, crate::mutability::RecordLog>,
}

/// One identity op between [`Account::begin`] (pick up what arrived) and queueing the
/// blocks it appended; what it stored is queued even when it fails part way.
macro_rules! identity_step {
    ($account:ident, $identity:ident => $op:expr) => {{
        let before = $account.begin().await?;
        let $identity = &mut $account.identity;
        let result = $op.await;
        $account.queue_identity_since(before).await?;
        Ok(result?)
    }};
}

impl<S: BlockStore + Clone> Account<S> {
    /// Founds an identity (see [`Identity::create`]); its first blocks are queued.
    pub async fn create(
        store: S,
        keys: DeviceKeys,
        founding: Founding,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, ClientError> {
        let identity = Identity::create(store, keys, founding, time, rng).await?;
        let mut account = Self::wrap(identity);
        account.queue_identity_since(0).await?;
        // Identity chains carry ops only: the identity's messages go to its default chain.
        let chain = account.create_chain(time, rng).await?;
        account.name_default_chain(chain, time).await?;
        Ok(account)
    }

    /// Opens an identity whose chain the store holds.
    pub async fn open(store: S, chain: BlockId, keys: DeviceKeys) -> Result<Self, ClientError> {
        Ok(Self::wrap(Identity::open(store, chain, keys).await?))
    }

    /// Starts a replica of an identity from its genesis, to join it.
    pub async fn replica(store: S, genesis: Block, keys: DeviceKeys) -> Result<Self, ClientError> {
        Ok(Self::wrap(Identity::replica(store, genesis, keys).await?))
    }

    fn wrap(identity: Identity<S>) -> Self {
        Account {
            identity,
            bound: BTreeMap::new(),
            outbox: Vec::new(),
            erasures: Vec::new(),
            folded: HashMap::new(),
            logs: HashMap::new(),
        }
    }

    /// The identity as this device sees it.
    pub fn identity(&self) -> &Identity<S> {
        &self.identity
    }

    /// The identity chain's ID.
    pub fn chain(&self) -> BlockId {
        self.identity.chain().id()
    }

    /// A bound chain this account opened.
    pub fn bound_chain(&self, chain: &BlockId) -> Option<&BoundChain<S>> {
        self.bound.get(chain)
    }

    /// The IDs of the bound chains this account opened.
    pub fn bound_chains(&self) -> impl Iterator<Item = &BlockId> {
        self.bound.keys()
    }

    /// This person as a member of a group: its DID, its current devices and where it stands
    /// in its own chain (see [`Identity::as_member`]).
    pub fn as_member(&self) -> (MemberEntry, PersonAnchor) {
        self.identity.as_member()
    }

    /// What peers must receive, in order, since the last call. The shell pushes each
    /// publication to its chain's peers; what it fails to push stays stored and reaches them
    /// through sync.
    pub fn take_outbox(&mut self) -> Vec<Publication> {
        std::mem::take(&mut self.outbox)
    }

    /// Erase requests since the last call, one for each content a delete with `erase` of
    /// this device erased: the shell sends each to the relays
    /// (`crate::net::NodeHandle::erase_content`), which drop the content's bytes.
    pub fn take_erasures(&mut self) -> Vec<Erasure> {
        std::mem::take(&mut self.erasures)
    }

    /// Picks up blocks another handle on the same store wrote (a node syncing it): every
    /// open bound chain first, then the identity (see the module docs).
    pub async fn refresh(&mut self) -> Result<(), ClientError> {
        for bound in self.bound.values_mut() {
            bound
                .chain_mut()
                .refresh()
                .await
                .map_err(IdentityError::from)?;
        }
        self.identity.refresh().await?;
        Ok(())
    }

    /// Offers blocks from a peer to the identity chain or an open bound chain. When the
    /// identity grows, bound blocks held for their anchor are judged again; the report says
    /// what this call stored of the offered chain only.
    pub async fn receive<B: AsRef<[u8]>>(
        &mut self,
        chain: &BlockId,
        blocks: impl IntoIterator<Item = B>,
    ) -> Result<InsertReport, ClientError> {
        if *chain == self.chain() {
            let report = self.identity.insert(blocks).await?;
            if !report.accepted.is_empty() {
                for bound in self.bound.values_mut() {
                    if bound.chain().has_awaiting() {
                        bound
                            .chain_mut()
                            .retry_awaiting()
                            .await
                            .map_err(IdentityError::from)?;
                    }
                }
            }
            return Ok(report);
        }
        let bound = self
            .bound
            .get_mut(chain)
            .ok_or(ClientError::ChainNotOpen(*chain))?;
        Ok(bound
            .chain_mut()
            .insert(blocks)
            .await
            .map_err(IdentityError::from)?)
    }

    /// Before an identity step: picks up what arrived; returns the chain's length.
    async fn begin(&mut self) -> Result<u64, ClientError> {
        self.refresh().await?;
        Ok(self.identity.chain().len())
    }

    /// After an identity step: queues the identity blocks appended since `before`.
    async fn queue_identity_since(&mut self, before: u64) -> Result<(), ClientError> {
        queue_identity(&self.identity, &mut self.outbox, before).await
    }

    /// Writes a join request with an invitation (see [`Identity::request_join`]): `as_person`
    /// is `None` for a device joining a person, the person ([`Account::as_member`] of its
    /// account) joining a group.
    pub async fn request_join(
        &mut self,
        invitation: Invitation,
        as_person: Option<(MemberEntry, PersonAnchor)>,
        time: u64,
    ) -> Result<BlockId, ClientError> {
        identity_step!(self, identity => identity.request_join(invitation, as_person, time))
    }

    /// Brings every member of this group whose person chain the store holds up to date
    /// with it (see [`Account::follow_member`]); returns how many it updated. The shell calls
    /// it when a member's person chain grows: a device removed from a person then loses the
    /// person's groups as soon as any member's device holds the removal.
    pub async fn follow_members(
        &mut self,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<usize, ClientError> {
        self.refresh().await?;
        if self.identity.state().kind() != crate::identity::Kind::Group
            || !self.identity.is_current_device()
        {
            return Ok(0);
        }
        let store = self.identity.chain().store().clone();
        let dids: Vec<String> = self.identity.state().members().keys().cloned().collect();
        let mut updated = 0;
        for did in dids {
            let Some(person) = person_in_store(&store, &did).await? else {
                continue;
            };
            // A device that leaves is removed: its messages this device holds are
            // acknowledged first, as for a removal (see `Account::remove`).
            if self.identity.member_update(&person) == Some(true) {
                self.acknowledge_all(time).await?;
            }
            if self.follow_member(&person, time, rng).await? {
                updated += 1;
            }
        }
        Ok(updated)
    }

    /// Brings a group member's devices up to date with its person (`person`:
    /// [`Account::as_member`] of an account on that person, see [`Identity::follow_member`]);
    /// returns whether it wrote.
    pub async fn follow_member(
        &mut self,
        person: &(MemberEntry, PersonAnchor),
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<bool, ClientError> {
        identity_step!(self, identity => identity.follow_member(person, time, rng))
    }

    /// Approves a pending join request.
    pub async fn approve(
        &mut self,
        request: BlockId,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), ClientError> {
        identity_step!(self, identity => identity.approve(request, time, rng))
    }

    /// Removes a member (a device of a person, a person of a group) and rekeys. Every open
    /// bound chain is acknowledged first, and its acknowledgement queued before the removal:
    /// the removed member's messages this device holds stay shown to everyone.
    pub async fn remove(
        &mut self,
        member: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), ClientError> {
        let before = self.begin().await?;
        self.acknowledge_all(time).await?;
        let result = self.identity.remove(member, time, rng).await;
        self.queue_identity_since(before).await?;
        Ok(result?)
    }

    /// Acknowledges every open bound chain and queues the acknowledgements: before a device
    /// is removed, so that its messages this device holds stay shown.
    async fn acknowledge_all(&mut self, time: u64) -> Result<(), ClientError> {
        for bound in self.bound.values_mut() {
            if let Some(ack) = bound.acknowledge(&self.identity, time).await? {
                queue(&mut self.outbox, bound.chain().id(), vec![ack]);
            }
        }
        Ok(())
    }

    /// Leaves: removes this device's member.
    pub async fn leave(&mut self, time: u64) -> Result<(), ClientError> {
        identity_step!(self, identity => identity.leave(time))
    }

    /// Rotates this device's keys and keeps the new ones, sealed under `passphrase`, in the
    /// store: they are saved as pending before the rotation is written and replace the old
    /// ones after it, so whenever the page dies the store holds keys that
    /// [`Account::open_sealed`] opens the identity with. A wrong passphrase fails before
    /// anything is written.
    pub async fn rotate_kept(
        &mut self,
        keyring: &Keyring,
        passphrase: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), ClientError> {
        let store = self.identity.chain().store().clone();
        let chain = self.identity.chain().id();
        let stored = keyring.unlock_for(&store, &chain, passphrase, rng).await?;
        if stored.did() != self.identity.device().did() {
            return Err(ClientError::KeysNotStored);
        }
        let next = self.identity.device().rotated(rng);
        let sealed = next.seal(passphrase, keyring.params, rng)?;
        let pending = Keyring::next_setting(&chain);
        store.put_setting(&pending, &sealed).await?;
        let rotated: Result<(), ClientError> =
            identity_step!(self, identity => identity.rotate_to(next, time, rng));
        rotated?;
        store
            .put_setting(&Keyring::rotated_setting(&chain), &sealed)
            .await?;
        store.put_setting(&pending, &[]).await?;
        Ok(())
    }

    /// Opens an identity with this device's keys sealed in the store, finishing a rotation
    /// that [`Account::rotate_kept`] began: if the chain holds it, the new keys are the
    /// device's from now on; if not, they are dropped.
    pub async fn open_sealed(
        store: S,
        chain: BlockId,
        keyring: &Keyring,
        passphrase: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, ClientError> {
        let keys = keyring.unlock_for(&store, &chain, passphrase, rng).await?;
        let account = Self::open(store.clone(), chain, keys).await?;
        let pending = Keyring::next_setting(&chain);
        let pending_keys = store.setting(&pending).await?;
        let Some(sealed) = pending_keys.filter(|s| !s.is_empty()) else {
            return Ok(account);
        };
        let next = DeviceKeys::open(passphrase, &sealed, keyring.floor)?;
        let PublicKey::Ed25519(key) = next.signing().public() else {
            return Ok(account);
        };
        let state = account.identity.state();
        let written = state.signer(&key).is_some() || state.revoked_by(&key).is_some();
        if written {
            store
                .put_setting(&Keyring::rotated_setting(&chain), &sealed)
                .await?;
        }
        store.put_setting(&pending, &[]).await?;
        if written {
            return Self::open(store, chain, next).await;
        }
        Ok(account)
    }

    /// Takes back the person whose chain the store holds with its recovery key, on this
    /// device: fresh device keys for this identity, sealed under `passphrase` and kept as
    /// pending before the recovery is written (see [`Account::rotate_kept`]: a reopen with
    /// [`Account::open_sealed`] finishes or drops them), every current device removed, and
    /// `next` named as the recovery key from now on (see [`Identity::recover`]). The
    /// passphrase must open the keys this store already keeps, if it keeps any.
    #[allow(clippy::too_many_arguments)]
    pub async fn recover_kept(
        store: S,
        chain: BlockId,
        keyring: &Keyring,
        passphrase: &str,
        recovery: &RecoveryKey,
        next: PublicKey,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, ClientError> {
        // The passphrase is checked against what the store keeps before anything is written.
        keyring.unlock(&store, passphrase, rng).await?;
        // Fresh keys: this browser may once have been a device of this person (removed since),
        // and a removed device never comes back.
        let fresh = DeviceKeys::generate(rng);
        let sealed = fresh.seal(passphrase, keyring.params, rng)?;
        let mut account = Self::open(store.clone(), chain, fresh).await?;
        // A spent or foreign key fails here, before any key is kept.
        account
            .identity
            .state()
            .check_recovery_key(&recovery.public())
            .map_err(IdentityError::from)?;
        let pending = Keyring::next_setting(&chain);
        store.put_setting(&pending, &sealed).await?;
        let recovered: Result<(), ClientError> =
            identity_step!(account, identity => identity.recover(recovery, next, time, rng));
        recovered?;
        store
            .put_setting(&Keyring::rotated_setting(&chain), &sealed)
            .await?;
        store.put_setting(&pending, &[]).await?;
        Ok(account)
    }

    /// Rotates this device's keys in memory only (see [`Account::rotate_kept`] to keep them).
    pub async fn rotate(
        &mut self,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), ClientError> {
        identity_step!(self, identity => identity.rotate(time, rng))
    }

    /// Sets the policy for epoch keys.
    pub async fn set_policy(&mut self, policy: Policy, time: u64) -> Result<(), ClientError> {
        identity_step!(self, identity => identity.set_policy(policy, time))
    }

    /// Makes a new epoch if one is due (someone left, a device lacks the key, or the policy's
    /// schedule says so). Returns whether it did.
    pub async fn rekey_if_due(
        &mut self,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<bool, ClientError> {
        identity_step!(self, identity => {
            let every = identity.state().policy().rekey_every;
            identity.rekey_if_due(time, every, rng)
        })
    }

    async fn name_default_chain(&mut self, chain: BlockId, time: u64) -> Result<(), ClientError> {
        identity_step!(self, identity => identity.name_default_chain(chain, time))
    }

    /// The identity's default chain (see [`crate::identity::Op::DefaultChain`]), if named.
    pub fn default_chain(&self) -> Option<BlockId> {
        self.identity.default_chain()
    }

    /// Writes content to the identity's default chain (see [`Account::write_to`]). Fails with
    /// `NotAMember` once this device was removed, and with
    /// [`ClientError::NoDefaultChain`] for an identity that names none.
    pub async fn write(
        &mut self,
        content: &Envelope,
        topics: Vec<String>,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        self.refresh().await?;
        if !self.identity.is_current_device() {
            return Err(IdentityError::NotAMember.into());
        }
        let chain = self.default_chain().ok_or(ClientError::NoDefaultChain)?;
        self.open_chain(chain).await?;
        self.write_to(&chain, content, topics, time, rng).await
    }

    /// The messages of the identity's default chain, in chain order; none while its genesis
    /// has not reached this store yet (a device that just joined).
    pub async fn messages(&mut self) -> Result<Vec<Message>, ClientError> {
        self.refresh().await?;
        let Some(chain) = self.default_chain() else {
            return Ok(Vec::new());
        };
        match self.open_chain(chain).await {
            Err(ClientError::Identity(IdentityError::Chain(ChainError::UnknownChain(_)))) => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
            Ok(_) => self.messages_of(&chain).await,
        }
    }

    /// Founds a chain bound to this identity and opens it; its genesis is queued.
    pub async fn create_chain(
        &mut self,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        self.refresh().await?;
        let bound = BoundChain::create(&self.identity, time, rng).await?;
        let id = bound.chain().id();
        let genesis = bound
            .chain()
            .block(&id)
            .await
            .map_err(IdentityError::from)?
            .ok_or_else(|| StoreError::Corrupt(format!("genesis {id} is not stored")))?;
        queue(&mut self.outbox, id, vec![genesis]);
        self.bound.insert(id, bound);
        Ok(id)
    }

    /// Opens a chain bound to this identity that the store holds (see [`BoundChain::open`]);
    /// opening it again is a no-op.
    pub async fn open_chain(&mut self, chain: BlockId) -> Result<BlockId, ClientError> {
        if !self.bound.contains_key(&chain) {
            self.refresh().await?;
            let bound = BoundChain::open(&self.identity, chain).await?;
            self.bound.insert(chain, bound);
        }
        Ok(chain)
    }

    /// Starts a replica of a chain bound to this identity from its genesis (a peer sent it).
    pub async fn join_chain(&mut self, genesis: Block) -> Result<BlockId, ClientError> {
        let chain = genesis.id();
        if !self.bound.contains_key(&chain) {
            self.refresh().await?;
            let bound = BoundChain::replica(&self.identity, genesis).await?;
            self.bound.insert(chain, bound);
        }
        Ok(chain)
    }

    /// Closes a bound chain: it is no longer acknowledged before removals or refreshed.
    pub fn close_chain(&mut self, chain: &BlockId) -> bool {
        self.bound.remove(chain).is_some()
    }

    /// Writes content to an open bound chain, sealed under the identity's current epoch
    /// (rekeying first if due). A rekey is queued before the block that is anchored on it.
    pub async fn write_to(
        &mut self,
        chain: &BlockId,
        content: &Envelope,
        topics: Vec<String>,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlockId, ClientError> {
        let before = self.begin().await?;
        self.write_refreshed(chain, content, topics, time, rng, before)
            .await
    }

    /// [`Account::write_to`] right after a step that picked up what arrived (`before`: the
    /// identity chain's length then), without reading the identity again.
    pub(crate) async fn write_refreshed(
        &mut self,
        chain: &BlockId,
        content: &Envelope,
        topics: Vec<String>,
        time: u64,
        rng: &mut impl CryptoRngCore,
        before: u64,
    ) -> Result<BlockId, ClientError> {
        let bound = self
            .bound
            .get_mut(chain)
            .ok_or(ClientError::ChainNotOpen(*chain))?;
        let result = bound
            .write(&mut self.identity, &content.encode(), topics, time, rng)
            .await;
        queue_identity(&self.identity, &mut self.outbox, before).await?;
        let entry = result?;
        let id = entry.block.id();
        queue(&mut self.outbox, *chain, vec![entry]);
        Ok(id)
    }

    /// The messages of an open bound chain the identity shows (see
    /// [`BoundChain::messages`]), in chain order.
    pub async fn messages_of(&mut self, chain: &BlockId) -> Result<Vec<Message>, ClientError> {
        self.refresh().await?;
        self.messages_as_read(chain).await
    }

    /// [`Account::messages_of`] without reading the chains' states again first.
    async fn messages_as_read(&mut self, chain: &BlockId) -> Result<Vec<Message>, ClientError> {
        let bound = self
            .bound
            .get(chain)
            .ok_or(ClientError::ChainNotOpen(*chain))?;
        let identity = &self.identity;
        Ok(bound
            .messages(identity)
            .await?
            .into_iter()
            .map(|(block, content)| message(identity, block, content))
            .collect())
    }
}

/// Queues blocks of `chain`, merging with the last publication if it is for the same chain.
fn queue(outbox: &mut Vec<Publication>, chain: BlockId, entries: Vec<Entry>) {
    if entries.is_empty() {
        return;
    }
    let blocks = entries.into_iter().map(|e| e.block);
    match outbox.last_mut() {
        Some(last) if last.chain == chain => last.blocks.extend(blocks),
        _ => outbox.push(Publication {
            chain,
            blocks: blocks.collect(),
            inline: Vec::new(),
        }),
    }
}

/// Attaches `content`, the content block `id` of `chain` commits to, to the queued
/// publication of that block.
fn queue_inline(
    outbox: &mut [Publication],
    chain: BlockId,
    id: BlockId,
    content: crate::offchain::InlineContent,
) {
    for publication in outbox.iter_mut().rev().filter(|p| p.chain == chain) {
        if let Some(index) = publication.blocks.iter().position(|b| b.id() == id) {
            publication.inline.push((index, content));
            return;
        }
    }
}

/// Queues the identity blocks stored since the chain had `before` blocks.
async fn queue_identity<S: BlockStore>(
    identity: &Identity<S>,
    outbox: &mut Vec<Publication>,
    before: u64,
) -> Result<(), ClientError> {
    let chain = identity.chain();
    if chain.len() == before {
        return Ok(());
    }
    // Sequence numbers start at 0 for the genesis: the new blocks are those from `before`.
    let fresh = chain
        .since(before.checked_sub(1), usize::MAX)
        .await
        .map_err(IdentityError::from)?;
    queue(outbox, chain.id(), fresh);
    Ok(())
}

fn message<S: BlockStore>(
    identity: &Identity<S>,
    block: Block,
    content: Result<Vec<u8>, IdentityError>,
) -> Message {
    let device = identity
        .state()
        .signer(block.author().key_bytes())
        .map(|(_, device)| device.to_owned());
    Message {
        block,
        device,
        content: content
            .map_err(ClientError::from)
            .and_then(|plaintext| Ok(Envelope::decode(&plaintext)?)),
    }
}
