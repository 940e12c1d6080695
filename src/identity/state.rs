//! The state of an identity — members, devices, keys, epochs — derived from its chain.
//!
//! Every peer that holds an identity chain folds its blocks in chain order (height, then ID,
//! the order every replica computes alike) and so reaches the same state. A block takes
//! effect only if its author key belongs to a current device and the op is permitted to that
//! device's member.
//!
//! **Revocations are decided from the DAG, not from the order.** A device can choose its
//! parents: a block on old parents sorts early, so "whoever sorts first wins" would let a
//! removed device remove its remover, or a leaked old key rotate its device to a key of the
//! thief's, just by writing into the past. So revocations (removals, leaving, a device list
//! without some devices, rotations) are settled apart, in three steps:
//!
//! 1. *Discovery*: a fold in which nothing is ever revoked finds every revocation some
//!    device was entitled to write (an admin's removal, a device's own rotation) and what it
//!    targets: every key the removed devices ever had, or the rotated key.
//! 2. *Settlement*: a revocation `r` **kills** a block `o` when `o` is not in `r`'s past and
//!    `o` is by a key `r` targets, or by a key enrolled (approved, added, rotated to) by a
//!    block `r` kills. A revocation stands unless a standing revocation kills it and it does
//!    not kill that one back (grounded semantics over the kill relation; revocations caught
//!    in a longer cycle of kills all stand). So a removal made without seeing its target's
//!    revocation of its author — concurrent, or backdated, which no replica can tell apart —
//!    takes both down: the most a removed key can do is take its remover with it. Two
//!    rotations of one key that kill each other are an *equivocation*: the device is
//!    removed, and neither successor key is ever current.
//! 3. The *final fold* drops every block a standing revocation kills
//!    ([`Rejection::RevokedConcurrently`]) and applies the standing revocations, whatever
//!    order they sort in.
//!
//! Everything depends on the DAG alone, so every replica computes the same state whatever
//! order its blocks arrived in.
//!
//! The cost of deciding mutual removals symmetrically: a removed device that backdates its
//! retaliation takes its remover down, and with it what the remover wrote that the backdated
//! block does not have in its past (approvals included). A person's way back is its recovery
//! key ([`Op::Recover`]): a recovery is a revocation by no device's key, so no device
//! revocation can kill it, and it always stands — two by one key are an equivocation that
//! enrols neither's device.
//!
//! Discovery must find every revocation the final fold lets through, so it is the more
//! permissive of the two wherever they could differ: it checks invitations against every
//! key the inviter ever had, and does not check device lists' keys or anchors' order (it
//! applies rotations the settlement may drop).
//!
//! A block on old parents normally makes a device fold the chain again; the kinds a hostile
//! writer can make without end are folded where they are instead
//! ([`IdentityState::fold_side`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::walytis::{Block, BlockId, RuleRefusal};

use super::document::identity_did;
use super::keys::{AgreementKeyPair, EpochKey, PublicKey};
use super::ops::{
    epoch_aad, epoch_commitment, verify_recovery, verify_rotation, DeviceEntry, EpochId,
    Invitation, Kind, MemberEntry, Op, PersonAnchor, Policy, Role, IDENTITY_TOPIC,
};
use super::IdentityError;

/// Most join requests [`IdentityState::pending_requests`] lists: every invitation ever issued
/// admits requests on old parents, so an invitation's holder can write any number of them.
pub const MAX_PENDING_REQUESTS: usize = 64;
/// Most requests that present one invitation [`IdentityState::pending_requests`] lists (a
/// leaked invitation's holder beside the invitee, say: the admin chooses).
pub const MAX_REQUESTS_PER_INVITATION: usize = 4;

/// Why a block of an identity chain has no effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The body of an identity op does not parse.
    #[error("malformed identity op: {0}")]
    Malformed(String),
    /// The author key belongs to no current device.
    #[error("the author is not a device of this identity")]
    Unauthorised,
    /// The author key was revoked (device removed, key rotated) earlier in the chain.
    #[error("the author key was revoked by block {by}")]
    Revoked {
        /// The revoking block.
        by: BlockId,
    },
    /// The block was written by a key that a concurrent (or later) block revoked.
    #[error("written concurrently with the revocation of its key in block {by}")]
    RevokedConcurrently {
        /// The revoking block.
        by: BlockId,
    },
    /// The op is not allowed to its author or not possible in this state.
    #[error("not permitted: {0}")]
    NotPermitted(&'static str),
    /// The invitation's signature does not verify under its inviter's current key.
    #[error("forged invitation")]
    ForgedInvitation,
    /// The invitation was used before.
    #[error("invitation already used")]
    InvitationReplayed,
    /// The approval came after the invitation expired.
    #[error("invitation expired")]
    InvitationExpired,
    /// The chain's genesis founds no valid identity, so nothing more is admitted to it.
    #[error("the genesis founds no valid identity: {0}")]
    NotAnIdentity(String),
    /// A group block names a member's devices that its person chain, at the anchor the
    /// block gives, does not list as they are.
    #[error("not the person's own: {0}")]
    NotThePersons(&'static str),
}

impl RuleRefusal for Rejection {
    fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "MALFORMED_OP",
            Rejection::Unauthorised => "UNAUTHORISED",
            Rejection::Revoked { .. } => "REVOKED",
            Rejection::RevokedConcurrently { .. } => "REVOKED_CONCURRENTLY",
            Rejection::NotPermitted(_) => "NOT_PERMITTED",
            Rejection::ForgedInvitation => "INVITATION_FORGED",
            Rejection::InvitationReplayed => "INVITATION_USED",
            Rejection::InvitationExpired => "INVITATION_EXPIRED",
            Rejection::NotAnIdentity(_) => "IDENTITY_INVALID",
            Rejection::NotThePersons(_) => "NOT_THE_PERSONS",
        }
    }
}

/// A current member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its DID (a device DID in a person identity, a person DID in a group).
    pub did: String,
    /// Its role.
    pub role: Role,
    /// Its devices with their current keys.
    pub devices: Vec<DeviceEntry>,
    /// The block that added it.
    pub since: BlockId,
    /// For a group member: how many blocks of its own person chain the anchor its devices
    /// were last taken from reaches (see [`PersonAnchor`]); 0 if none was given.
    pub anchor_blocks: u64,
}

/// A change of membership or keys, for the timeline and for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The identity was created by this member.
    Founded {
        /// The founder's DID.
        member: String,
    },
    /// A member joined.
    Joined {
        /// Its DID.
        member: String,
        /// Its role.
        role: Role,
    },
    /// A member was removed or left.
    Removed {
        /// Its DID.
        member: String,
        /// Whether it left on its own.
        left: bool,
    },
    /// A member changed its device list.
    DevicesChanged {
        /// Its DID.
        member: String,
    },
    /// A device replaced its keys.
    Rotated {
        /// The device DID.
        device: String,
    },
    /// A new epoch key was made.
    Rekeyed {
        /// The epoch.
        epoch: EpochId,
    },
    /// An admin changed the policy for epoch keys.
    PolicyChanged {
        /// The new policy.
        policy: Policy,
    },
    /// The person was taken back with its recovery key ([`Op::Recover`]).
    Recovered {
        /// The device the recovery enrolled, if it enrolled one (an equivocated recovery
        /// key enrols none).
        device: Option<String>,
    },
    /// The founder named the identity's default chain ([`Op::DefaultChain`]).
    DefaultChainSet {
        /// The bound chain.
        chain: BlockId,
    },
}

/// A change and the block that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The block.
    pub block: BlockId,
    /// The change.
    pub change: Change,
}

/// A join request not yet approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The request block.
    pub block: BlockId,
    /// Its height: requests are listed in chain order.
    pub height: u64,
    /// The invitation it presents.
    pub invitation: Invitation,
    /// The would-be member.
    pub member: MemberEntry,
    /// For a group: where the joining person stood in its own chain.
    pub anchor: Option<PersonAnchor>,
}

/// An epoch: a group key and the devices it was sealed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// Its ID.
    pub id: EpochId,
    /// The block that began it.
    pub first: BlockId,
    /// Time the first block claims (ms since the Unix epoch; informational).
    pub time: u64,
    /// The commitment to its key that every copy must open to ([`Op::Epoch`]).
    pub commitment: [u8; 32],
    /// Copies for devices that were current when their op was folded (shared between
    /// copies of the state: admission keeps many views, see `crate::walytis::Admission`).
    keys: Arc<HashMap<String, Vec<Vec<u8>>>>,
    /// Every device a copy was addressed to, current or not: the ciphertext of each stays in
    /// the chain, where that device can open it.
    addressed: Arc<HashSet<String>>,
}

impl Epoch {
    /// Whether a sealed copy exists for this device.
    pub fn has_device(&self, device: &str) -> bool {
        self.keys.contains_key(device)
    }

    /// Devices the key was sealed to (and that were current then).
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Every device a copy was addressed to, whether the fold kept the copy or not.
    pub fn addressed(&self) -> impl Iterator<Item = &str> {
        self.addressed.iter().map(String::as_str)
    }
}

/// Everything known about an identity at the end of its chain.
#[derive(Debug, Clone)]
pub struct IdentityState {
    chain: BlockId,
    kind: Kind,
    name: String,
    relays: Vec<String>,
    policy: Policy,
    default_chain: Option<BlockId>,
    members: BTreeMap<String, Member>,
    /// Current signing key → (member DID, device DID).
    signers: HashMap<[u8; 32], (String, String)>,
    /// Device DID → member DID, for current devices.
    owners: HashMap<String, String>,
    /// Revoked signing keys → the revoking block.
    revoked: HashMap<[u8; 32], BlockId>,
    /// Keys rotated out → their device's DID: such a key is retired only with its device.
    rotated_out: HashMap<[u8; 32], String>,
    /// The person's current recovery key ([`Op::Recover`]), if it has one.
    recovery: Option<[u8; 32]>,
    /// Recovery keys spent → the recovery that spent each.
    spent_recovery: HashMap<[u8; 32], BlockId>,
    /// Keys whose blocks a standing revocation drops wherever they are written outside its
    /// past → the first such revocation in chain order (see [`IdentityState::fold_side`]).
    killed_keys: HashMap<[u8; 32], BlockId>,
    removed_devices: HashSet<String>,
    used_invitations: HashSet<[u8; 16]>,
    requests: BTreeMap<BlockId, PendingRequest>,
    epochs: Vec<Epoch>,
    epoch_index: HashMap<EpochId, usize>,
    rejected: BTreeMap<BlockId, Rejection>,
    changes: Vec<ChangeRecord>,
    blocks: usize,
    mode: Mode,
}

/// How the fold treats revocations (see the module docs).
#[derive(Debug, Clone)]
enum Mode {
    /// Apply every op as it comes: a local append, or a fold with no revocation in it.
    Append,
    /// Record revocations without applying them.
    Discover(Box<Found>),
    /// Drop what the settled revocations kill; apply the standing ones whatever their order.
    Settle(Arc<Settlement>),
}

/// What discovery records.
#[derive(Debug, Clone, Default)]
struct Found {
    /// Revocations in chain order.
    revocations: Vec<Candidate>,
    /// Block → the signing keys it enrolled (approved, added or rotated to).
    enrolled: HashMap<BlockId, Vec<[u8; 32]>>,
    /// Join requests: the joiner's blocks, which no revocation kills.
    requests: HashSet<BlockId>,
    /// Every signing key a device ever had → that device.
    device_of: HashMap<[u8; 32], String>,
}

/// A revocation some device was entitled to write.
#[derive(Debug, Clone)]
struct Candidate {
    block: BlockId,
    signer: Signer,
    target: Target,
    /// The recovery key that signed it, for a recovery.
    recovery: Option<[u8; 32]>,
}

/// What a revocation takes away.
#[derive(Debug, Clone)]
enum Target {
    /// Every key these devices ever had (a removal names devices, not keys, so a device that
    /// rotates concurrently with its removal is still removed).
    Devices(Vec<String>),
    /// One key (a rotation).
    Key([u8; 32]),
}

/// Who asks for an op: this device, before it writes (held to the rules that keep honest
/// writers out of trouble, such as not removing the last admin), or a peer's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Local,
    Peer,
}

/// The author of an op as the fold sees it.
#[derive(Debug, Clone)]
struct Signer {
    member: String,
    device: String,
    role: Role,
}

impl Signer {
    /// Who signs a recovery: the recovery key, no member and no device.
    fn recovery() -> Self {
        Signer {
            member: String::new(),
            device: String::new(),
            role: Role::Admin,
        }
    }
}

/// The settled revocations.
#[derive(Debug, Default)]
struct Settlement {
    /// Revocations that stand, with their authors as discovery saw them.
    standing: HashMap<BlockId, Signer>,
    /// Blocks dropped → a standing revocation that kills them.
    dead: HashMap<BlockId, BlockId>,
    /// Keys that two standing rotations replaced.
    equivocated: HashSet<[u8; 32]>,
    /// Recovery keys that signed two recoveries (every recovery stands: no device
    /// revocation can kill one).
    recovery_equivocated: HashSet<[u8; 32]>,
    /// Every key a standing revocation taints → the first such revocation in chain order.
    killed_keys: HashMap<[u8; 32], BlockId>,
}

impl IdentityState {
    /// Derives the state from all blocks of an identity chain in chain order, genesis first.
    pub fn resolve(blocks: &[Block]) -> Result<Self, IdentityError> {
        let mut discovered = fold(blocks, Mode::Discover(Box::default()))?;
        let Mode::Discover(found) = std::mem::replace(&mut discovered.mode, Mode::Append) else {
            return Ok(discovered);
        };
        if found.revocations.is_empty() {
            // Without revocations discovery is the fold itself.
            return Ok(discovered);
        }
        let settlement = Arc::new(settle(blocks, &found));
        let mut state = fold(blocks, Mode::Settle(Arc::clone(&settlement)))?;
        state.mode = Mode::Append;
        state.killed_keys = settlement.killed_keys.clone();
        Ok(state)
    }

    /// Folds in blocks this device just appended. They sort after every block already folded
    /// and descend from all of them (a local append names every leaf as parent), so no
    /// earlier block can become concurrent with them: no need to fold the chain again.
    pub fn extend_appended<'a>(&mut self, blocks: impl IntoIterator<Item = &'a Block>) {
        for block in blocks {
            self.apply(block);
        }
    }

    /// Drops what the state records of its history — the changes and the blocks without
    /// effect — which an admission view (see [`crate::walytis::Admission`]) never reads: it
    /// keeps dozens of copies of the state.
    pub(super) fn forget_history(&mut self) {
        self.changes = Vec::new();
        self.rejected = BTreeMap::new();
    }

    /// Folds in `block`, stored off the folded leaves (on old parents), when what a fresh
    /// fold of the whole chain would make of it is known without one; `false` when only a
    /// fresh fold can tell. Two kinds are known, and they are what a hostile writer can make
    /// without end, since every replica admits blocks whose own history authorises them:
    ///
    /// - a join request: its effect depends on no order (see `request`);
    /// - an op that neither revokes nor enrols (relays, policy, epoch copies, the default
    ///   chain) by a key some standing revocation already drops outside its past — a removed
    ///   device writing "into the past": the block is dropped, by that revocation, as a fresh
    ///   fold would drop it. Adding it changes no revocation and enrols nothing, so nothing
    ///   else changes.
    ///
    /// So such blocks cost a lookup each, not a fold of the chain.
    pub fn fold_side(&mut self, block: &Block) -> bool {
        let Ok(op) = block_op(block) else {
            return false;
        };
        let id = block.id();
        match op {
            Op::Request {
                invitation,
                member,
                anchor,
            } => {
                let key = *block.author().key_bytes();
                let place = (block.height(), block.time());
                let verdict = self.request(id, key, place, invitation, member, anchor);
                if let Err(rejection) = verdict {
                    self.rejected.insert(id, rejection);
                }
            }
            Op::Relays { .. } | Op::Policy { .. } | Op::Epoch { .. } | Op::DefaultChain { .. } => {
                let Some(by) = self.killed_keys.get(block.author().key_bytes()).copied() else {
                    return false;
                };
                self.rejected
                    .insert(id, Rejection::RevokedConcurrently { by });
            }
            _ => return false,
        }
        self.blocks += 1;
        true
    }

    /// The identity chain's ID.
    pub fn chain(&self) -> BlockId {
        self.chain
    }

    /// `did:endra:<chain-id>`.
    pub fn did(&self) -> String {
        identity_did(&self.chain)
    }

    /// Person or group.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The display name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Relay multiaddrs.
    pub fn relays(&self) -> &[String] {
        &self.relays
    }

    /// Current members by DID.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// One current member.
    pub fn member(&self, did: &str) -> Option<&Member> {
        self.members.get(did)
    }

    /// Every current device of every member.
    pub fn devices(&self) -> impl Iterator<Item = (&Member, &DeviceEntry)> {
        self.members
            .values()
            .flat_map(|m| m.devices.iter().map(move |d| (m, d)))
    }

    /// The current device with this DID and its member.
    pub fn device(&self, did: &str) -> Option<(&Member, &DeviceEntry)> {
        let member = self.members.get(self.owners.get(did)?)?;
        let device = member.devices.iter().find(|d| d.did == did)?;
        Some((member, device))
    }

    /// The (member DID, device DID) a current signing key belongs to.
    pub fn signer(&self, key: &[u8; 32]) -> Option<(&str, &str)> {
        self.signers.get(key).map(|(m, d)| (m.as_str(), d.as_str()))
    }

    /// Whether the block was folded in and took effect (data blocks included).
    pub fn is_accepted(&self, block: &BlockId) -> bool {
        !self.rejected.contains_key(block)
    }

    /// Why a block had no effect, if it had none.
    pub fn rejection(&self, block: &BlockId) -> Option<&Rejection> {
        self.rejected.get(block)
    }

    /// Every block without effect and why.
    pub fn rejected(&self) -> &BTreeMap<BlockId, Rejection> {
        &self.rejected
    }

    /// Membership and key changes in chain order.
    pub fn changes(&self) -> &[ChangeRecord] {
        &self.changes
    }

    /// Join requests waiting for an admin, in chain order: at most
    /// [`MAX_REQUESTS_PER_INVITATION`] per invitation and [`MAX_PENDING_REQUESTS`] in all
    /// (the first ones in chain order). An admin may approve any request still pending
    /// ([`IdentityState::pending_request`]), listed or not: which ones sort first is the
    /// writers' choice, and a flood of requests on old parents must not undo an approval.
    pub fn pending_requests(&self) -> impl Iterator<Item = &PendingRequest> {
        let mut all: Vec<&PendingRequest> = self.requests.values().collect();
        all.sort_unstable_by_key(|r| (r.height, r.block));
        let mut per_invitation: HashMap<[u8; 16], usize> = HashMap::new();
        all.into_iter()
            .filter(move |r| {
                let seen = per_invitation.entry(r.invitation.id).or_default();
                *seen += 1;
                *seen <= MAX_REQUESTS_PER_INVITATION
            })
            .take(MAX_PENDING_REQUESTS)
    }

    /// Why `request` is not a pending join request: the reason it was refused (its
    /// invitation used by an approval of another request, expired), or that it is none.
    pub fn not_pending(&self, request: &BlockId) -> Rejection {
        self.rejected
            .get(request)
            .cloned()
            .unwrap_or(Rejection::NotPermitted("no such pending request"))
    }

    /// A pending join request by its block.
    pub fn pending_request(&self, block: &BlockId) -> Option<&PendingRequest> {
        self.requests.get(block)
    }

    /// All epochs in chain order.
    pub fn epochs(&self) -> &[Epoch] {
        &self.epochs
    }

    /// Number of blocks folded.
    pub fn block_count(&self) -> usize {
        self.blocks
    }

    /// The epoch to write with: the last one in chain order whose key was addressed only to
    /// devices that are current now. A copy for any other device — one removed since, one
    /// removed concurrently (a rekey that had not seen the removal), one never admitted —
    /// stays in the chain, where that device can open it, so such an epoch is never written
    /// under again. `None` if no epoch qualifies: the next write makes a new one.
    pub fn current_epoch(&self) -> Option<&Epoch> {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.addressed.iter().all(|d| self.owners.contains_key(d)))
    }

    /// Whether a new epoch is due: none is usable, or a current device lacks the current one.
    pub fn needs_rekey(&self) -> bool {
        match self.current_epoch() {
            None => true,
            Some(epoch) => self.devices().any(|(_, d)| !epoch.has_device(&d.did)),
        }
    }

    /// Whether `device` was removed (its keys revoked for good).
    pub fn is_removed_device(&self, device: &str) -> bool {
        self.removed_devices.contains(device)
    }

    /// The block that revoked a signing key (its device removed, or the key rotated out),
    /// if it was revoked.
    pub fn revoked_by(&self, key: &[u8; 32]) -> Option<BlockId> {
        self.revoked.get(key).copied()
    }

    /// Whether a signing key is retired: it belonged to a device that was removed (by itself,
    /// by an admin, or with its member). A key merely rotated out of a current device is
    /// not. Blocks of bound chains by retired keys are hidden unless a current device built
    /// on them (see [`super::BoundChain::messages`]).
    pub fn is_retired(&self, key: &[u8; 32]) -> bool {
        match self.rotated_out.get(key) {
            Some(device) => self.removed_devices.contains(device),
            None => self.revoked.contains_key(key),
        }
    }

    /// Whether any signing key is retired (see [`IdentityState::is_retired`]): while none is,
    /// every block of a bound chain is shown.
    pub fn has_retired(&self) -> bool {
        !self.revoked.is_empty() || !self.removed_devices.is_empty()
    }

    /// An epoch, discarded or not.
    pub fn epoch(&self, epoch: &EpochId) -> Option<&Epoch> {
        self.epoch_index
            .get(epoch)
            .and_then(|&i| self.epochs.get(i))
    }

    /// The policy for epoch keys.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The person's current recovery key, if it has one ([`Op::Recover`]).
    pub fn recovery_key(&self) -> Option<PublicKey> {
        self.recovery.map(PublicKey::Ed25519)
    }

    /// The identity's default chain, where its messages go ([`Op::DefaultChain`]), once named.
    pub fn default_chain(&self) -> Option<BlockId> {
        self.default_chain
    }

    /// Whether the policy discarded `epoch`: it is older than the newest
    /// [`Policy::keep_epochs`] epochs and not the current one.
    pub fn is_discarded(&self, epoch: &EpochId) -> bool {
        let (Some(keep), Some(&index)) = (self.policy.keep_epochs, self.epoch_index.get(epoch))
        else {
            return false;
        };
        let kept = index.saturating_add(keep as usize) >= self.epochs.len();
        !kept && self.current_epoch().map(|e| &e.id) != Some(epoch)
    }

    /// The epochs the policy keeps, in chain order.
    pub fn kept_epochs(&self) -> impl Iterator<Item = &Epoch> {
        self.epochs.iter().filter(|e| !self.is_discarded(&e.id))
    }

    /// Opens `device`'s copy of an epoch key with its agreement key pair.
    pub fn epoch_key(
        &self,
        epoch: &EpochId,
        device: &str,
        keys: &AgreementKeyPair,
    ) -> Result<EpochKey, IdentityError> {
        if self.is_discarded(epoch) {
            return Err(IdentityError::EpochDiscarded);
        }
        let record = self.epoch(epoch).ok_or(IdentityError::NoEpochKey)?;
        let aad = epoch_aad(&self.chain, epoch, device);
        let mut forged = false;
        for sealed in record.keys.get(device).into_iter().flatten() {
            if let Ok(bytes) = keys.open(&aad, sealed) {
                let key = EpochKey::from_slice(&bytes)?;
                // A copy of another key than the one the epoch commits to: someone tried to
                // split the group. Another copy may still be genuine.
                if epoch_commitment(&self.chain, epoch, &key)? == record.commitment {
                    return Ok(key);
                }
                forged = true;
            }
        }
        Err(if forged {
            IdentityError::ForgedEpochKey
        } else {
            IdentityError::NoEpochKey
        })
    }

    /// Checks an op as the next block by `author` at `time` would be checked, without a
    /// block: how a local writer refuses what peers would reject.
    pub fn check(&self, author: &[u8; 32], time: u64, op: &Op) -> Result<(), Rejection> {
        self.clone().check_and_apply(author, time, op)
    }

    /// [`IdentityState::check`], keeping the op's effect (for checking a batch of ops).
    pub(crate) fn check_and_apply(
        &mut self,
        author: &[u8; 32],
        time: u64,
        op: &Op,
    ) -> Result<(), Rejection> {
        let placeholder = BlockId::of(&op.encode());
        if let Op::Request {
            invitation,
            member,
            anchor,
        } = op
        {
            // What the chain's admission rule will ask, with a typed answer.
            self.admits_request(*author, time, invitation, member, anchor.as_ref())?;
            // A local check: the request would sort after everything folded.
            return self.request(
                placeholder,
                *author,
                (u64::MAX, time),
                invitation.clone(),
                member.clone(),
                anchor.clone(),
            );
        }
        if let Op::Recover { .. } = op {
            self.admits_recovery(author)?;
            return self.recover(placeholder, *author, op.clone()).map(|_| ());
        }
        let signer = self.current_signer(author)?;
        self.apply_op(
            placeholder,
            *author,
            time,
            &signer,
            op.clone(),
            Writer::Local,
        )
        .map(|_| ())
    }

    /// The member, device and role of a current signing key; why not, for a revoked or an
    /// unknown key. The one authorship check of the fold, the admission rule and local writes.
    fn current_signer(&self, key: &[u8; 32]) -> Result<Signer, Rejection> {
        if let Some(by) = self.revoked.get(key) {
            return Err(Rejection::Revoked { by: *by });
        }
        let (member, device) = self.signers.get(key).ok_or(Rejection::Unauthorised)?;
        let role = self
            .members
            .get(member)
            .map(|m| m.role)
            .ok_or(Rejection::Unauthorised)?;
        Ok(Signer {
            member: member.clone(),
            device: device.clone(),
            role,
        })
    }

    /// Whether `block` may be stored on top of the blocks this state was folded from, its
    /// parents being their leaves: the identity chain's admission rule, which every replica
    /// applies before storing a block, the relay's mailbox included (see
    /// [`crate::walytis::Admission`]). It asks only who wrote the block: a current device
    /// (not a revoked key), or, for a join request, the joiner presenting an invitation by a
    /// current device that is genuine, unused and unexpired. Whether an op is *permitted*
    /// (only admins approve, say) is left to the fold, as is strong removal: a removed
    /// device's block written on pre-removal parents passes here, since its own history
    /// still lists the device, and is then dropped by the fold on every replica.
    pub fn admits(&self, block: &Block) -> Result<(), Rejection> {
        let key = *block.author().key_bytes();
        let op = block_op(block)?;
        if let Op::Request {
            invitation,
            member,
            anchor,
        } = &op
        {
            return self.admits_request(key, block.time(), invitation, member, anchor.as_ref());
        }
        if let Op::Recover { .. } = &op {
            return self.admits_recovery(&key);
        }
        self.current_signer(&key)?;
        if let Op::Genesis { .. } = op {
            return Err(Rejection::Malformed("a second genesis op".into()));
        }
        Ok(())
    }

    /// Whether the inviter signed `invitation` with `current`, its current key. Discovery
    /// (see the module docs) accepts any key the inviter ever had: it applies every rotation,
    /// the ones settlement drops included, and must find every revocation the final fold can
    /// let through — so it must admit at least the members the final fold admits.
    fn inviter_signed(&self, invitation: &Invitation, current: &PublicKey) -> bool {
        if invitation.verify(current) {
            return true;
        }
        let Mode::Discover(found) = &self.mode else {
            return false;
        };
        found
            .device_of
            .iter()
            .filter(|(_, device)| **device == invitation.inviter)
            .any(|(key, _)| invitation.verify(&PublicKey::Ed25519(*key)))
    }

    /// Whether `key` is the person's current recovery key (a spent one is `Revoked`, any
    /// other `Unauthorised`): what a recovery signed by it must be.
    pub fn check_recovery_key(&self, key: &PublicKey) -> Result<(), Rejection> {
        match key {
            PublicKey::Ed25519(key) => self.admits_recovery(key),
            _ => Err(Rejection::Unauthorised),
        }
    }

    /// Whether `key` is the person's current recovery key: a spent one is revoked.
    fn admits_recovery(&self, key: &[u8; 32]) -> Result<(), Rejection> {
        if self.recovery == Some(*key) {
            return Ok(());
        }
        Err(match self.spent_recovery.get(key) {
            Some(by) => Rejection::Revoked { by: *by },
            None => Rejection::Unauthorised,
        })
    }

    /// The person chain and anchor a group block's check needs (a join request, a device
    /// list: see [`PersonAnchor`]), if it needs one; `Err` if it needs one and its member's
    /// DID names no person chain.
    pub fn person_reference(
        &self,
        block: &Block,
    ) -> Result<Option<(BlockId, Vec<BlockId>)>, Rejection> {
        if self.kind != Kind::Group {
            return Ok(None);
        }
        let Ok(op) = block_op(block) else {
            return Ok(None);
        };
        let (did, anchor) = match &op {
            Op::Request {
                member,
                anchor: Some(anchor),
                ..
            } => (&member.did, anchor),
            Op::SetDevices { member, anchor, .. } => (member, anchor),
            _ => return Ok(None),
        };
        let chain = super::document::parse_identity_did(did)
            .map_err(|_| Rejection::NotThePersons("the member's DID names no person chain"))?;
        Ok(Some((chain, anchor.leaves.clone())))
    }

    /// [`IdentityState::admits`] for a group block that names where a member stands in its
    /// person chain (see [`IdentityState::person_reference`]): `person` is that chain's state
    /// at the anchor (`None` if it founds no valid identity) and `reached` how many blocks
    /// the anchor reaches. The member's devices must be exactly the person's current devices
    /// there, the count must be the anchor's, and a device list must come from an anchor
    /// newer than the one the member's devices came from.
    pub fn admits_with_person(
        &self,
        block: &Block,
        person: Option<&IdentityState>,
        reached: u64,
    ) -> Result<(), Rejection> {
        self.admits(block)?;
        let op = block_op(block)?;
        let (did, devices, anchor, newer) = match &op {
            Op::Request {
                member,
                anchor: Some(anchor),
                ..
            } => (&member.did, &member.devices, anchor, false),
            Op::SetDevices {
                member,
                devices,
                anchor,
            } => (member, devices, anchor, true),
            _ => return Ok(()),
        };
        let person = person
            .filter(|p| p.kind() == Kind::Person && p.did() == *did)
            .ok_or(Rejection::NotThePersons("the member's DID names no person"))?;
        if anchor.blocks != reached {
            return Err(Rejection::NotThePersons(
                "the anchor does not reach as many blocks as it says",
            ));
        }
        let current: Vec<&DeviceEntry> = person.devices().map(|(_, d)| d).collect();
        let same = current.len() == devices.len() && devices.iter().all(|d| current.contains(&d));
        if !same {
            return Err(Rejection::NotThePersons(
                "the devices are not the person's current devices at the anchor",
            ));
        }
        if newer {
            let behind = self
                .member(did)
                .is_some_and(|m| anchor.blocks <= m.anchor_blocks);
            if behind {
                return Err(Rejection::NotThePersons(
                    "the anchor is not newer than the one the member's devices came from",
                ));
            }
        }
        Ok(())
    }

    /// What every join request must be: signed by a device of the joiner, for this chain;
    /// for a group, with the joining person's anchor (checked against the person chain by
    /// the admission rule), for a person without one.
    fn request_fits(
        &self,
        author: [u8; 32],
        invitation: &Invitation,
        member: &MemberEntry,
        anchor: Option<&PersonAnchor>,
    ) -> Result<(), Rejection> {
        if anchor.is_some() != (self.kind == Kind::Group) {
            return Err(Rejection::NotPermitted(
                "a person joins a group with its anchor, a device a person without one",
            ));
        }
        let author = PublicKey::Ed25519(author);
        if !member.devices.iter().any(|d| d.signing == author) {
            return Err(Rejection::NotPermitted(
                "a request is signed by a device of the joiner",
            ));
        }
        if invitation.chain != self.chain {
            return Err(Rejection::NotPermitted(
                "the invitation is for another chain",
            ));
        }
        Ok(())
    }

    fn admits_request(
        &self,
        author: [u8; 32],
        time: u64,
        invitation: &Invitation,
        member: &MemberEntry,
        anchor: Option<&PersonAnchor>,
    ) -> Result<(), Rejection> {
        self.request_fits(author, invitation, member, anchor)?;
        if self.used_invitations.contains(&invitation.id) {
            return Err(Rejection::InvitationReplayed);
        }
        if time > invitation.expires {
            return Err(Rejection::InvitationExpired);
        }
        let (_, inviter) = self
            .device(&invitation.inviter)
            .ok_or(Rejection::NotPermitted(
                "the inviter is not a current device",
            ))?;
        if !invitation.verify(&inviter.signing) {
            return Err(Rejection::ForgedInvitation);
        }
        Ok(())
    }

    fn genesis(block: &Block) -> Result<Self, IdentityError> {
        let not_identity = |why: &str| IdentityError::NotAnIdentity(why.to_owned());
        if block.chain().is_some() {
            return Err(not_identity("the first block is not a genesis block"));
        }
        if !block.topics().iter().any(|t| t == IDENTITY_TOPIC) {
            return Err(not_identity("the genesis block carries no identity op"));
        }
        let Op::Genesis {
            kind,
            name,
            relays,
            founder,
            recovery,
            anchor,
        } = Op::decode(block.body())?
        else {
            return Err(not_identity("the genesis block is not a genesis op"));
        };
        let recovery = match (kind, recovery) {
            (_, None) => None,
            (Kind::Person, Some(PublicKey::Ed25519(key))) => Some(key),
            (Kind::Person, Some(_)) => return Err(not_identity("recovery keys are Ed25519")),
            (Kind::Group, Some(_)) => return Err(not_identity("only a person has a recovery key")),
        };
        let author = PublicKey::Ed25519(*block.author().key_bytes());
        if !founder.devices.iter().any(|d| d.signing == author) {
            return Err(not_identity("the genesis author is not a founding device"));
        }
        if kind == Kind::Person
            && (founder.devices.len() != 1 || founder.devices[0].did != founder.did)
        {
            return Err(not_identity("a person is founded by one device"));
        }
        let id = block.id();
        let mut state = IdentityState {
            chain: id,
            kind,
            name,
            relays,
            policy: Policy::default(),
            default_chain: None,
            members: BTreeMap::new(),
            signers: HashMap::new(),
            owners: HashMap::new(),
            revoked: HashMap::new(),
            rotated_out: HashMap::new(),
            recovery,
            spent_recovery: HashMap::new(),
            killed_keys: HashMap::new(),
            removed_devices: HashSet::new(),
            used_invitations: HashSet::new(),
            requests: BTreeMap::new(),
            epochs: Vec::new(),
            epoch_index: HashMap::new(),
            rejected: BTreeMap::new(),
            changes: Vec::new(),
            blocks: 1,
            mode: Mode::Append,
        };
        state
            .check_new_devices(&founder.devices)
            .map_err(|e| IdentityError::NotAnIdentity(e.to_string()))?;
        state.add_member(founder.clone(), Role::Admin, id, anchor.as_ref());
        state.changes.push(ChangeRecord {
            block: id,
            change: Change::Founded {
                member: founder.did,
            },
        });
        Ok(state)
    }

    fn apply(&mut self, block: &Block) {
        self.blocks += 1;
        let id = block.id();
        let key = *block.author().key_bytes();
        let op = match block_op(block) {
            Ok(op) => op,
            Err(rejection) => {
                self.rejected.insert(id, rejection);
                return;
            }
        };
        // A recovery is signed by the recovery key, not by a device.
        if let Op::Recover { .. } = op {
            let verdict = self.recover(id, key, op);
            self.record(id, verdict);
            return;
        }
        // A request comes from outside: its author proves only its own keys.
        if let Op::Request {
            invitation,
            member,
            anchor,
        } = op
        {
            if let Mode::Discover(found) = &mut self.mode {
                found.requests.insert(id);
            }
            let place = (block.height(), block.time());
            let verdict = self.request(id, key, place, invitation, member, anchor);
            if let Err(rejection) = verdict {
                self.rejected.insert(id, rejection);
            }
            return;
        }
        let signer = match &self.mode {
            Mode::Settle(settled) => {
                if let Some(by) = settled.dead.get(&id) {
                    self.rejected
                        .insert(id, Rejection::RevokedConcurrently { by: *by });
                    return;
                }
                // A standing revocation takes effect even if a revocation it stands against
                // sorted first and took its author's key.
                match settled.standing.get(&id) {
                    Some(signer) => Ok(signer.clone()),
                    None => self.current_signer(&key),
                }
            }
            Mode::Append | Mode::Discover(_) => self.current_signer(&key),
        };
        let signer = match signer {
            Ok(signer) => signer,
            Err(rejection) => {
                self.rejected.insert(id, rejection);
                return;
            }
        };
        let verdict = self.apply_op(id, key, block.time(), &signer, op, Writer::Peer);
        self.record(id, verdict);
    }

    /// Records what block `id` did: its changes, or why it did nothing.
    fn record(&mut self, id: BlockId, verdict: Result<Vec<Change>, Rejection>) {
        match verdict {
            Ok(changes) => self.changes.extend(
                changes
                    .into_iter()
                    .map(|change| ChangeRecord { block: id, change }),
            ),
            Err(rejection) => {
                self.rejected.insert(id, rejection);
            }
        }
    }

    /// A join request: pending unless its invitation was used (an approval of another
    /// request that presents it refuses this one too, whichever sorts first) or has expired
    /// at the block's time. Nothing else depends on where it sorts, so a request written on
    /// old parents is folded in where it arrives ([`IdentityState::fold_side`]).
    fn request(
        &mut self,
        id: BlockId,
        author: [u8; 32],
        (height, time): (u64, u64),
        invitation: Invitation,
        member: MemberEntry,
        anchor: Option<PersonAnchor>,
    ) -> Result<(), Rejection> {
        self.request_fits(author, &invitation, &member, anchor.as_ref())?;
        if self.used_invitations.contains(&invitation.id) {
            return Err(Rejection::InvitationReplayed);
        }
        if time > invitation.expires {
            return Err(Rejection::InvitationExpired);
        }
        self.requests.insert(
            id,
            PendingRequest {
                block: id,
                height,
                invitation,
                member,
                anchor,
            },
        );
        Ok(())
    }

    /// An [`Op::Recover`] signed by `key`. It is a revocation (of the devices it removes)
    /// that no device revocation can kill: it is by no device's key. So it always stands;
    /// two recoveries by one key (a spent key that leaked, used on old parents) are an
    /// equivocation that removes what both remove and enrols neither's device or next key.
    fn recover(&mut self, id: BlockId, key: [u8; 32], op: Op) -> Result<Vec<Change>, Rejection> {
        let Op::Recover {
            remove,
            device,
            proof,
            next,
        } = op
        else {
            return Err(Rejection::Malformed("not a recovery".into()));
        };
        if self.kind != Kind::Person {
            return Err(Rejection::NotPermitted("only a person recovers"));
        }
        let current = self.recovery == Some(key);
        let equivocated = match &self.mode {
            // Discovery meets the second of two recoveries by one key after the first spent
            // it; admission stored it, so its own history had the key current.
            Mode::Discover(_) => !current && self.spent_recovery.contains_key(&key),
            Mode::Settle(settled) => settled.recovery_equivocated.contains(&key),
            Mode::Append => false,
        };
        if !current && !equivocated {
            self.admits_recovery(&key)?;
        }
        if !verify_recovery(&self.chain, &device, &proof) {
            return Err(Rejection::NotPermitted(
                "the recovering device's proof does not verify",
            ));
        }
        let PublicKey::Ed25519(next_key) = next else {
            return Err(Rejection::NotPermitted("recovery keys are Ed25519"));
        };
        if next_key == key
            || self.spent_recovery.contains_key(&next_key)
            || self.signers.contains_key(&next_key)
            || self.revoked.contains_key(&next_key)
        {
            return Err(Rejection::NotPermitted("the next recovery key is fresh"));
        }
        self.check_new_devices(std::slice::from_ref(&device))?;
        let targets: Vec<String> = remove
            .into_iter()
            .filter(|m| self.members.contains_key(m))
            .collect();
        self.spent_recovery.entry(key).or_insert(id);
        let mut changes = Vec::new();
        if let Mode::Discover(found) = &mut self.mode {
            let devices = targets
                .iter()
                .filter_map(|m| self.members.get(m))
                .flat_map(|m| m.devices.iter().map(|d| d.did.clone()))
                .collect();
            found.revocations.push(Candidate {
                block: id,
                signer: Signer::recovery(),
                target: Target::Devices(devices),
                recovery: Some(key),
            });
        } else {
            for member in targets {
                if let Some(removed) = self.members.remove(&member) {
                    for device in &removed.devices {
                        self.revoke_device(device, id);
                    }
                    changes.push(Change::Removed {
                        member,
                        left: false,
                    });
                }
            }
        }
        if equivocated {
            self.recovery = None;
            changes.push(Change::Recovered { device: None });
            return Ok(changes);
        }
        let did = device.did.clone();
        self.add_member(
            MemberEntry {
                did: did.clone(),
                devices: vec![device],
            },
            Role::Admin,
            id,
            None,
        );
        self.recovery = Some(next_key);
        changes.push(Change::Recovered { device: Some(did) });
        Ok(changes)
    }

    fn apply_op(
        &mut self,
        id: BlockId,
        key: [u8; 32],
        time: u64,
        signer: &Signer,
        op: Op,
        writer: Writer,
    ) -> Result<Vec<Change>, Rejection> {
        let (author_member, author_device, author_role) =
            (signer.member.as_str(), signer.device.as_str(), signer.role);
        // In the final fold only settled revocations revoke (see the module docs).
        let settled = match &self.mode {
            Mode::Settle(settled) => Some(Arc::clone(settled)),
            Mode::Append | Mode::Discover(_) => None,
        };
        let standing = settled
            .as_ref()
            .is_some_and(|s| s.standing.contains_key(&id));
        let unsettled = settled.is_some() && !standing;
        match op {
            Op::Genesis { .. } => Err(Rejection::Malformed("a second genesis op".into())),
            Op::Request { .. } | Op::Recover { .. } => {
                Err(Rejection::Malformed("handled apart".into()))
            }
            Op::Approve { request } => {
                if author_role != Role::Admin {
                    return Err(Rejection::NotPermitted("only admins approve"));
                }
                let pending = self
                    .requests
                    .get(&request)
                    .cloned()
                    .ok_or_else(|| self.not_pending(&request))?;
                let invitation = &pending.invitation;
                if self.used_invitations.contains(&invitation.id) {
                    return Err(Rejection::InvitationReplayed);
                }
                if time > invitation.expires {
                    return Err(Rejection::InvitationExpired);
                }
                let (inviter_role, inviter_key) = self
                    .device(&invitation.inviter)
                    .map(|(m, d)| (m.role, d.signing.clone()))
                    .ok_or(Rejection::NotPermitted(
                        "the inviter is not a current device",
                    ))?;
                if inviter_role != Role::Admin {
                    return Err(Rejection::NotPermitted("only admins invite"));
                }
                if !self.inviter_signed(invitation, &inviter_key) {
                    return Err(Rejection::ForgedInvitation);
                }
                let joiner = pending.member.clone();
                if self.members.contains_key(&joiner.did) {
                    return Err(Rejection::NotPermitted("already a member"));
                }
                if self.kind == Kind::Person
                    && (joiner.devices.len() != 1 || joiner.devices[0].did != joiner.did)
                {
                    return Err(Rejection::NotPermitted("a device joins a person alone"));
                }
                self.check_new_devices(&joiner.devices)?;
                let role = match self.kind {
                    Kind::Person => Role::Admin,
                    Kind::Group => invitation.role,
                };
                self.used_invitations.insert(invitation.id);
                self.requests.remove(&request);
                // The invitation is used: the other requests that present it are refused
                // now, as those that sort after this approval are when they are folded.
                let replayed: Vec<BlockId> = self
                    .requests
                    .values()
                    .filter(|r| r.invitation.id == invitation.id)
                    .map(|r| r.block)
                    .collect();
                for block in replayed {
                    self.requests.remove(&block);
                    self.rejected.insert(block, Rejection::InvitationReplayed);
                }
                let did = joiner.did.clone();
                self.add_member(joiner, role, id, pending.anchor.as_ref());
                Ok(vec![Change::Joined { member: did, role }])
            }
            Op::Remove { member } => {
                let left = member == author_member;
                if !left && author_role != Role::Admin {
                    return Err(Rejection::NotPermitted("only admins remove others"));
                }
                let Some(target) = self.members.get(&member) else {
                    return Err(Rejection::NotPermitted("not a member"));
                };
                if let Mode::Discover(found) = &mut self.mode {
                    found.revocations.push(Candidate {
                        block: id,
                        signer: signer.clone(),
                        target: Target::Devices(
                            target.devices.iter().map(|d| d.did.clone()).collect(),
                        ),
                        recovery: None,
                    });
                    return Ok(vec![Change::Removed { member, left }]);
                }
                if unsettled {
                    return Err(Rejection::NotPermitted("an unsettled revocation"));
                }
                let admin_left = self
                    .members
                    .values()
                    .any(|m| m.did != member && m.role == Role::Admin);
                // A local writer may not orphan the identity. The fold does not ask: the last
                // two admins removing each other both go whatever the order, and a fold on
                // top of the state must give what a fold of the whole chain gives.
                if !admin_left && writer == Writer::Local {
                    return Err(Rejection::NotPermitted("the last admin cannot go"));
                }
                if let Some(removed) = self.members.remove(&member) {
                    for device in &removed.devices {
                        self.revoke_device(device, id);
                    }
                }
                Ok(vec![Change::Removed { member, left }])
            }
            Op::SetDevices {
                member,
                devices,
                anchor,
            } => {
                if self.kind == Kind::Person {
                    return Err(Rejection::NotPermitted(
                        "a person's devices join by invitation",
                    ));
                }
                // Any current device of the group may bring a member's devices up to date:
                // the admission rule checked them against the member's own chain.
                let (old, behind) = self
                    .members
                    .get(&member)
                    .map(|m| (m.devices.clone(), anchor.blocks <= m.anchor_blocks))
                    .ok_or(Rejection::NotPermitted("not a member"))?;
                // Anchors never go back. Discovery does not ask (it must find every
                // revocation the final fold lets through, and it applies device lists the
                // final fold may drop).
                if behind && !matches!(self.mode, Mode::Discover(_)) {
                    return Err(Rejection::NotPermitted(
                        "the member's anchor is not newer than the one its devices came from",
                    ));
                }
                let fresh: Vec<DeviceEntry> = devices
                    .iter()
                    .filter(|d| !old.iter().any(|o| o.did == d.did))
                    .cloned()
                    .collect();
                // Discovery applies every rotation, the ones settlement drops included, so
                // the keys it holds may not be the ones a listed device has in the end.
                if !matches!(self.mode, Mode::Discover(_)) {
                    for device in &devices {
                        if let Some(o) = old.iter().find(|o| o.did == device.did) {
                            if o != device {
                                return Err(Rejection::NotPermitted(
                                    "keys change only by rotation",
                                ));
                            }
                        }
                    }
                }
                self.check_new_devices(&fresh)?;
                let gone: Vec<DeviceEntry> = old
                    .iter()
                    .filter(|o| !devices.iter().any(|d| d.did == o.did))
                    .cloned()
                    .collect();
                for device in &fresh {
                    self.enrol(&member, device, id);
                }
                if let Mode::Discover(found) = &mut self.mode {
                    if !gone.is_empty() {
                        found.revocations.push(Candidate {
                            block: id,
                            signer: signer.clone(),
                            target: Target::Devices(gone.iter().map(|d| d.did.clone()).collect()),
                            recovery: None,
                        });
                    }
                    // Discovery revokes nothing: the gone devices stay listed, so that a
                    // later removal of the member still names them.
                    if let Some(m) = self.members.get_mut(&member) {
                        m.devices.extend(fresh);
                        m.anchor_blocks = m.anchor_blocks.max(anchor.blocks);
                    }
                    return Ok(vec![Change::DevicesChanged { member }]);
                }
                if unsettled && !gone.is_empty() {
                    return Err(Rejection::NotPermitted("an unsettled revocation"));
                }
                for device in &gone {
                    self.revoke_device(device, id);
                }
                if let Some(m) = self.members.get_mut(&member) {
                    m.devices = devices;
                    m.anchor_blocks = anchor.blocks;
                }
                Ok(vec![Change::DevicesChanged { member }])
            }
            Op::Rotate {
                device,
                signing,
                agreement,
                proof,
            } => {
                if device != author_device {
                    return Err(Rejection::NotPermitted(
                        "a device rotates only its own keys",
                    ));
                }
                let replacement = DeviceEntry {
                    did: device.clone(),
                    signing,
                    agreement,
                };
                self.check_keys(&replacement)?;
                if !verify_rotation(
                    &self.chain,
                    &device,
                    &replacement.signing,
                    &replacement.agreement,
                    &proof,
                ) {
                    return Err(Rejection::NotPermitted(
                        "the rotation proof does not verify",
                    ));
                }
                if let Mode::Discover(found) = &mut self.mode {
                    found.revocations.push(Candidate {
                        block: id,
                        signer: signer.clone(),
                        target: Target::Key(key),
                        recovery: None,
                    });
                } else {
                    if unsettled {
                        return Err(Rejection::NotPermitted("an unsettled revocation"));
                    }
                    self.signers.remove(&key);
                    self.revoked.insert(key, id);
                    self.rotated_out.insert(key, device.clone());
                    self.killed_keys.entry(key).or_insert(id);
                    let equivocated = settled
                        .as_ref()
                        .is_some_and(|s| s.equivocated.contains(&key));
                    if equivocated || !self.owners.contains_key(&device) {
                        // Two successors of one key (or a device removed meanwhile by a
                        // revocation this one stands against): no successor is current.
                        if let PublicKey::Ed25519(successor) = &replacement.signing {
                            self.revoked.insert(*successor, id);
                            self.rotated_out.insert(*successor, device.clone());
                        }
                        return Ok(self.drop_device(author_member, &device, id));
                    }
                }
                self.enrol(author_member, &replacement, id);
                if let Some(m) = self.members.get_mut(author_member) {
                    for d in &mut m.devices {
                        if d.did == device {
                            *d = replacement.clone();
                        }
                    }
                }
                Ok(vec![Change::Rotated { device }])
            }
            Op::Epoch {
                epoch,
                commitment,
                keys,
            } => {
                if keys.is_empty() {
                    return Err(Rejection::NotPermitted("an epoch op seals to someone"));
                }
                let mut changes = Vec::new();
                let index = match self.epoch_index.get(&epoch) {
                    Some(&index) => {
                        // More copies of the same key (history for a new device, a rotated
                        // agreement key): the commitment is the first op's.
                        if self.epochs.get(index).map(|e| e.commitment) != Some(commitment) {
                            return Err(Rejection::NotPermitted(
                                "an epoch's copies commit to the key its first op committed to",
                            ));
                        }
                        index
                    }
                    None => {
                        self.epochs.push(Epoch {
                            id: epoch,
                            first: id,
                            time,
                            commitment,
                            keys: Arc::default(),
                            addressed: Arc::default(),
                        });
                        self.epoch_index.insert(epoch, self.epochs.len() - 1);
                        changes.push(Change::Rekeyed { epoch });
                        self.epochs.len() - 1
                    }
                };
                let current: Vec<bool> = keys
                    .iter()
                    .map(|key| self.owners.contains_key(&key.device))
                    .collect();
                if let Some(record) = self.epochs.get_mut(index) {
                    for (key, current) in keys.into_iter().zip(current) {
                        Arc::make_mut(&mut record.addressed).insert(key.device.clone());
                        // A copy for a device that is not current is not kept, but it is in
                        // the chain: `addressed` remembers it (see `current_epoch`).
                        if current {
                            Arc::make_mut(&mut record.keys)
                                .entry(key.device)
                                .or_default()
                                .push(key.sealed);
                        }
                    }
                }
                Ok(changes)
            }
            Op::Relays { relays } => {
                if author_role != Role::Admin {
                    return Err(Rejection::NotPermitted("only admins change relays"));
                }
                self.relays = relays;
                Ok(Vec::new())
            }
            Op::Policy { policy } => {
                if author_role != Role::Admin {
                    return Err(Rejection::NotPermitted("only admins change the policy"));
                }
                if policy.keep_epochs == Some(0) || policy.rekey_every == Some(0) {
                    return Err(Rejection::NotPermitted(
                        "a policy keeps at least one epoch and rekeys after some time",
                    ));
                }
                self.policy = policy;
                Ok(vec![Change::PolicyChanged { policy }])
            }
            Op::DefaultChain { chain } => {
                if author_role != Role::Admin {
                    return Err(Rejection::NotPermitted(
                        "only admins name the default chain",
                    ));
                }
                if self.default_chain.is_some() {
                    return Err(Rejection::NotPermitted("the default chain is named once"));
                }
                self.default_chain = Some(chain);
                Ok(vec![Change::DefaultChainSet { chain }])
            }
        }
    }

    /// New devices must have keys of the right algorithms, never seen revoked or in use.
    fn check_new_devices(&self, devices: &[DeviceEntry]) -> Result<(), Rejection> {
        for device in devices {
            if self.removed_devices.contains(&device.did) || self.owners.contains_key(&device.did) {
                return Err(Rejection::NotPermitted("a removed or present device"));
            }
            self.check_keys(device)?;
        }
        Ok(())
    }

    fn check_keys(&self, device: &DeviceEntry) -> Result<(), Rejection> {
        let PublicKey::Ed25519(signing) = &device.signing else {
            return Err(Rejection::NotPermitted("signing keys are Ed25519"));
        };
        if !matches!(device.agreement, PublicKey::HybridX25519MlKem768 { .. }) {
            return Err(Rejection::NotPermitted(
                "agreement keys are hybrid X25519 + ML-KEM-768",
            ));
        }
        if self.revoked.contains_key(signing)
            || self.signers.contains_key(signing)
            || self.recovery == Some(*signing)
            || self.spent_recovery.contains_key(signing)
        {
            return Err(Rejection::NotPermitted("a revoked or used signing key"));
        }
        Ok(())
    }

    fn add_member(
        &mut self,
        entry: MemberEntry,
        role: Role,
        since: BlockId,
        anchor: Option<&PersonAnchor>,
    ) {
        for device in &entry.devices {
            self.enrol(&entry.did, device, since);
        }
        self.members.insert(
            entry.did.clone(),
            Member {
                did: entry.did,
                role,
                devices: entry.devices,
                since,
                anchor_blocks: anchor.map_or(0, |a| a.blocks),
            },
        );
    }

    /// Makes `device`'s signing key current, by block `by`.
    fn enrol(&mut self, member: &str, device: &DeviceEntry, by: BlockId) {
        if let PublicKey::Ed25519(key) = &device.signing {
            self.signers
                .insert(*key, (member.to_owned(), device.did.clone()));
            if let Mode::Discover(found) = &mut self.mode {
                found.enrolled.entry(by).or_default().push(*key);
                found.device_of.insert(*key, device.did.clone());
            }
        }
        self.owners.insert(device.did.clone(), member.to_owned());
    }

    fn revoke_device(&mut self, device: &DeviceEntry, by: BlockId) {
        if let PublicKey::Ed25519(key) = &device.signing {
            self.signers.remove(key);
            self.revoked.insert(*key, by);
            self.killed_keys.entry(*key).or_insert(by);
        }
        // Its keys rotated out earlier die with it too (a fresh fold's settlement says so).
        for (key, owner) in &self.rotated_out {
            if *owner == device.did {
                self.killed_keys.entry(*key).or_insert(by);
            }
        }
        self.owners.remove(&device.did);
        self.removed_devices.insert(device.did.clone());
    }

    /// Removes one device of `member` (an equivocating one): the member itself in a
    /// person, where every device is a member; the device from its person's list in a group.
    fn drop_device(&mut self, member: &str, device: &str, by: BlockId) -> Vec<Change> {
        let Some(entry) = self
            .members
            .get(member)
            .and_then(|m| m.devices.iter().find(|d| d.did == device))
            .cloned()
        else {
            return Vec::new();
        };
        self.revoke_device(&entry, by);
        let alone = self
            .members
            .get_mut(member)
            .map(|m| {
                m.devices.retain(|d| d.did != device);
                m.devices.is_empty()
            })
            .unwrap_or(false);
        if alone {
            self.members.remove(member);
            vec![Change::Removed {
                member: member.to_owned(),
                left: false,
            }]
        } else {
            vec![Change::DevicesChanged {
                member: member.to_owned(),
            }]
        }
    }
}

fn fold(blocks: &[Block], mode: Mode) -> Result<IdentityState, IdentityError> {
    let (genesis, rest) = blocks
        .split_first()
        .ok_or_else(|| IdentityError::NotAnIdentity("no blocks".into()))?;
    let mut state = IdentityState::genesis(genesis)?;
    state.mode = mode;
    if let Mode::Discover(found) = &mut state.mode {
        // The founders' keys, enrolled by the genesis before discovery began.
        for (key, (_, device)) in &state.signers {
            found.device_of.insert(*key, device.clone());
        }
    }
    for block in rest {
        state.apply(block);
    }
    Ok(state)
}

/// Settles the revocations discovery found (step 2 of the module docs).
fn settle(blocks: &[Block], found: &Found) -> Settlement {
    let index: HashMap<BlockId, usize> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id(), i))
        .collect();
    let mut by_key: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, block) in blocks.iter().enumerate().skip(1) {
        if !found.requests.contains(&block.id()) {
            by_key
                .entry(*block.author().key_bytes())
                .or_default()
                .push(i);
        }
    }
    let mut keys_of: HashMap<&str, Vec<[u8; 32]>> = HashMap::new();
    for (key, device) in &found.device_of {
        keys_of.entry(device.as_str()).or_default().push(*key);
    }
    let enrolled: HashMap<usize, &[[u8; 32]]> = found
        .enrolled
        .iter()
        .filter_map(|(b, keys)| Some((*index.get(b)?, keys.as_slice())))
        .collect();
    // What each revocation kills: blocks outside its past by a key it targets, and by keys
    // that killed blocks enrolled.
    let (kills, tainted_keys): (Vec<HashSet<usize>>, Vec<HashSet<[u8; 32]>>) = found
        .revocations
        .iter()
        .map(|candidate| {
            let Some(&at) = index.get(&candidate.block) else {
                return (HashSet::new(), HashSet::new());
            };
            let past = ancestors(blocks, &index, at);
            let mut tainted: Vec<[u8; 32]> = match &candidate.target {
                Target::Key(key) => vec![*key],
                Target::Devices(devices) => devices
                    .iter()
                    .flat_map(|d| keys_of.get(d.as_str()).into_iter().flatten().copied())
                    .collect(),
            };
            let mut seen: HashSet<[u8; 32]> = tainted.iter().copied().collect();
            let mut killed = HashSet::new();
            while let Some(key) = tainted.pop() {
                for &i in by_key.get(&key).into_iter().flatten() {
                    if i != at && !past.contains(&i) && killed.insert(i) {
                        for more in enrolled.get(&i).into_iter().flat_map(|k| k.iter()) {
                            if seen.insert(*more) {
                                tainted.push(*more);
                            }
                        }
                    }
                }
            }
            (killed, seen)
        })
        .unzip();
    let position: HashMap<usize, usize> = found
        .revocations
        .iter()
        .enumerate()
        .filter_map(|(n, c)| Some((*index.get(&c.block)?, n)))
        .collect();
    // r attacks s when r kills s and s does not kill r back.
    let count = found.revocations.len();
    let mut attackers: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (r, killed) in kills.iter().enumerate() {
        for &i in killed {
            if let Some(&s) = position.get(&i) {
                let back = index
                    .get(&found.revocations[r].block)
                    .is_some_and(|at| kills[s].contains(at));
                if !back {
                    attackers[s].push(r);
                }
            }
        }
    }
    // The grounded labelling: in when every attacker is out, out when an attacker is in;
    // what stays undecided (a cycle of kills) stands too, which errs on locking out.
    #[derive(Clone, Copy, PartialEq)]
    enum Label {
        In,
        Out,
        Undecided,
    }
    let mut label = vec![Label::Undecided; count];
    let mut changed = true;
    while changed {
        changed = false;
        for s in 0..count {
            if label[s] != Label::Undecided {
                continue;
            }
            if attackers[s].iter().any(|&r| label[r] == Label::In) {
                label[s] = Label::Out;
                changed = true;
            } else if attackers[s].iter().all(|&r| label[r] == Label::Out) {
                label[s] = Label::In;
                changed = true;
            }
        }
    }
    let mut settlement = Settlement::default();
    let mut rotations: HashMap<[u8; 32], usize> = HashMap::new();
    for (n, candidate) in found.revocations.iter().enumerate() {
        if label[n] == Label::Out {
            continue;
        }
        settlement
            .standing
            .insert(candidate.block, candidate.signer.clone());
        if let Target::Key(key) = candidate.target {
            *rotations.entry(key).or_default() += 1;
        }
        for &i in &kills[n] {
            if let Some(block) = blocks.get(i) {
                settlement.dead.entry(block.id()).or_insert(candidate.block);
            }
        }
        for key in &tainted_keys[n] {
            settlement
                .killed_keys
                .entry(*key)
                .or_insert(candidate.block);
        }
    }
    settlement.equivocated = rotations
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(key, _)| key)
        .collect();
    // Two recoveries by one key are always concurrent (a spent key is refused after its
    // recovery): neither can be told to be the genuine one.
    let mut recoveries: HashMap<[u8; 32], usize> = HashMap::new();
    for (n, candidate) in found.revocations.iter().enumerate() {
        if let (Some(key), true) = (candidate.recovery, label[n] != Label::Out) {
            *recoveries.entry(key).or_default() += 1;
        }
    }
    settlement.recovery_equivocated = recoveries
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(key, _)| key)
        .collect();
    let standing = &settlement.standing;
    settlement
        .dead
        .retain(|block, _| !standing.contains_key(block));
    settlement
}

/// The positions of every ancestor of `blocks[at]` (parents sort before their children).
fn ancestors(blocks: &[Block], index: &HashMap<BlockId, usize>, at: usize) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = Vec::new();
    let parents_of = |i: usize| -> Vec<usize> {
        blocks
            .get(i)
            .map(|b| {
                b.parents()
                    .iter()
                    .filter_map(|p| index.get(p).copied())
                    .collect()
            })
            .unwrap_or_default()
    };
    stack.extend(parents_of(at));
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(parents_of(i));
        }
    }
    seen
}

/// The op a block of an identity chain carries. Identity chains carry ops only: a block
/// without the identity topic (data, which belongs on a bound chain) is malformed here.
fn block_op(block: &Block) -> Result<Op, Rejection> {
    if !block.topics().iter().any(|t| t == IDENTITY_TOPIC) {
        return Err(Rejection::Malformed(
            "identity chains carry identity ops only (data goes to a bound chain)".into(),
        ));
    }
    Op::decode(block.body()).map_err(|e| Rejection::Malformed(e.to_string()))
}
