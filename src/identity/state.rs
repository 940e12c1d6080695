//! The state of an identity — members, devices, keys, epochs — derived from its chain.
//!
//! Every peer that holds an identity chain folds its blocks in chain order (height, then ID,
//! the order every replica computes alike) and so reaches the same state. A block takes
//! effect only if its author key belongs to a current device at that point of the order and
//! the op is permitted to that device's member.
//!
//! **Strong removal.** A removed device could try to write "in the past": a block whose
//! parents predate its removal sorts before the removal and would pass the check above. So
//! the fold runs twice: the first pass finds every key revocation (removals, device-list
//! changes, rotations); the second drops any block by a revoked key that is not an ancestor
//! of the revoking block — i.e. written concurrently with or after it. Concurrent ops of a
//! removed member are lost, as in p2panda's strong-remove resolver; what every peer
//! computes is still identical, because it depends on the DAG alone. (The second pass uses
//! the first pass's revocations: a revocation that the second pass finds unauthorised still
//! drops the ops concurrent with it. That errs on the side of locking out.)

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::walytis::{Block, BlockId, RuleRefusal};

use super::document::identity_did;
use super::keys::{AgreementKeyPair, EpochKey, PublicKey};
use super::ops::{
    epoch_aad, verify_rotation, DeviceEntry, EpochId, Invitation, Kind, MemberEntry, Op, Policy,
    Role, IDENTITY_TOPIC,
};
use super::IdentityError;

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
}

/// A change of membership or keys, for the timeline and for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The identity was created by this member.
    Founded {
        /// The founder's DID.
        member: String,
    },
    /// Someone asked to join (see [`IdentityState::pending_requests`]).
    Requested {
        /// The requesting member's DID.
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
    /// The invitation it presents.
    pub invitation: Invitation,
    /// The would-be member.
    pub member: MemberEntry,
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
    keys: HashMap<String, Vec<Vec<u8>>>,
}

impl Epoch {
    /// Whether a sealed copy exists for this device.
    pub fn has_device(&self, device: &str) -> bool {
        self.keys.contains_key(device)
    }

    /// Devices the key was sealed to.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
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
    removed_devices: HashSet<String>,
    used_invitations: HashSet<[u8; 16]>,
    requests: BTreeMap<BlockId, PendingRequest>,
    epochs: Vec<Epoch>,
    epoch_index: HashMap<EpochId, usize>,
    rejected: BTreeMap<BlockId, Rejection>,
    changes: Vec<ChangeRecord>,
    /// (revoked key, revoking block) in chain order: the input of the strong-removal pass.
    revocations: Vec<([u8; 32], BlockId)>,
    blocks: usize,
}

/// Revocations with the ancestors of each revoking block, for the second pass.
struct StrongRule {
    /// Revoked key → the blocks that revoked it.
    by_key: HashMap<[u8; 32], Vec<BlockId>>,
    /// Revoking block → its ancestors (one set per block, however many keys it revoked).
    ancestors: HashMap<BlockId, HashSet<BlockId>>,
}

impl IdentityState {
    /// Derives the state from all blocks of an identity chain in chain order, genesis first.
    pub fn resolve(blocks: &[Block]) -> Result<Self, IdentityError> {
        let first = fold(blocks, None)?;
        if first.revocations.is_empty() {
            return Ok(first);
        }
        let rule = StrongRule::new(blocks, &first.revocations);
        fold(blocks, Some(&rule))
    }

    /// Folds in blocks this device just appended. They sort after every block already folded
    /// and descend from all of them (a local append names every leaf as parent), so no
    /// earlier block can become concurrent with them: no need to fold the chain again.
    pub fn extend_appended<'a>(&mut self, blocks: impl IntoIterator<Item = &'a Block>) {
        for block in blocks {
            self.apply(block, None);
        }
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

    /// Join requests waiting for an admin.
    pub fn pending_requests(&self) -> impl Iterator<Item = &PendingRequest> {
        self.requests.values()
    }

    /// All epochs in chain order.
    pub fn epochs(&self) -> &[Epoch] {
        &self.epochs
    }

    /// Number of blocks folded.
    pub fn block_count(&self) -> usize {
        self.blocks
    }

    /// The epoch to write with: the last one in chain order none of whose recipients has
    /// since been removed. `None` if every epoch reached a removed device.
    pub fn current_epoch(&self) -> Option<&Epoch> {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.devices().all(|d| !self.removed_devices.contains(d)))
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
        for sealed in record.keys.get(device).into_iter().flatten() {
            if let Ok(bytes) = keys.open(&aad, sealed) {
                return Ok(EpochKey::from_slice(&bytes)?);
            }
        }
        Err(IdentityError::NoEpochKey)
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
        if let Op::Request { invitation, member } = op {
            // What the chain's admission rule will ask, with a typed answer.
            self.admits_request(*author, time, invitation, member)?;
            return self.request(placeholder, *author, invitation.clone(), member.clone());
        }
        let (member, device) = self.current_signer(author)?.clone();
        self.apply_op(placeholder, *author, time, &member, &device, op.clone())
            .map(|_| ())
    }

    /// The (member DID, device DID) of a current signing key; why not, for a revoked or an
    /// unknown key. The one authorship check of the fold, the admission rule and local writes.
    fn current_signer(&self, key: &[u8; 32]) -> Result<&(String, String), Rejection> {
        if let Some(by) = self.revoked.get(key) {
            return Err(Rejection::Revoked { by: *by });
        }
        self.signers.get(key).ok_or(Rejection::Unauthorised)
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
        if let Op::Request { invitation, member } = &op {
            return self.admits_request(key, block.time(), invitation, member);
        }
        self.current_signer(&key)?;
        if let Op::Genesis { .. } = op {
            return Err(Rejection::Malformed("a second genesis op".into()));
        }
        Ok(())
    }

    /// What every join request must be: signed by a device of the joiner, for this chain.
    fn request_fits(
        &self,
        author: [u8; 32],
        invitation: &Invitation,
        member: &MemberEntry,
    ) -> Result<(), Rejection> {
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
    ) -> Result<(), Rejection> {
        self.request_fits(author, invitation, member)?;
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
        } = Op::decode(block.body())?
        else {
            return Err(not_identity("the genesis block is not a genesis op"));
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
            removed_devices: HashSet::new(),
            used_invitations: HashSet::new(),
            requests: BTreeMap::new(),
            epochs: Vec::new(),
            epoch_index: HashMap::new(),
            rejected: BTreeMap::new(),
            changes: Vec::new(),
            revocations: Vec::new(),
            blocks: 1,
        };
        state
            .check_new_devices(&founder.devices)
            .map_err(|e| IdentityError::NotAnIdentity(e.to_string()))?;
        state.add_member(founder.clone(), Role::Admin, id);
        state.changes.push(ChangeRecord {
            block: id,
            change: Change::Founded {
                member: founder.did,
            },
        });
        Ok(state)
    }

    fn apply(&mut self, block: &Block, strong: Option<&StrongRule>) {
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
        // A request comes from outside: its author proves only its own keys.
        if let Op::Request { invitation, member } = op {
            let verdict = self.request(id, key, invitation, member);
            if let Err(rejection) = verdict {
                self.rejected.insert(id, rejection);
            }
            return;
        }
        let (member, device) = match self.current_signer(&key) {
            Ok(signer) => signer.clone(),
            Err(rejection) => {
                self.rejected.insert(id, rejection);
                return;
            }
        };
        if let Some(by) = strong.and_then(|rule| rule.revoked_concurrently(&key, &id)) {
            self.rejected
                .insert(id, Rejection::RevokedConcurrently { by });
            return;
        }
        match self.apply_op(id, key, block.time(), &member, &device, op) {
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

    fn request(
        &mut self,
        id: BlockId,
        author: [u8; 32],
        invitation: Invitation,
        member: MemberEntry,
    ) -> Result<(), Rejection> {
        self.request_fits(author, &invitation, &member)?;
        self.changes.push(ChangeRecord {
            block: id,
            change: Change::Requested {
                member: member.did.clone(),
            },
        });
        self.requests.insert(
            id,
            PendingRequest {
                block: id,
                invitation,
                member,
            },
        );
        Ok(())
    }

    fn apply_op(
        &mut self,
        id: BlockId,
        key: [u8; 32],
        time: u64,
        author_member: &str,
        author_device: &str,
        op: Op,
    ) -> Result<Vec<Change>, Rejection> {
        let author_role = self
            .members
            .get(author_member)
            .map(|m| m.role)
            .ok_or(Rejection::Unauthorised)?;
        match op {
            Op::Genesis { .. } => Err(Rejection::Malformed("a second genesis op".into())),
            Op::Request { .. } => Err(Rejection::Malformed("request handled apart".into())),
            Op::Approve { request } => {
                if author_role != Role::Admin {
                    return Err(Rejection::NotPermitted("only admins approve"));
                }
                let pending = self
                    .requests
                    .get(&request)
                    .cloned()
                    .ok_or(Rejection::NotPermitted("no such pending request"))?;
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
                if !invitation.verify(&inviter_key) {
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
                let did = joiner.did.clone();
                self.add_member(joiner, role, id);
                Ok(vec![Change::Joined { member: did, role }])
            }
            Op::Remove { member } => {
                let left = member == author_member;
                if !left && author_role != Role::Admin {
                    return Err(Rejection::NotPermitted("only admins remove others"));
                }
                if !self.members.contains_key(&member) {
                    return Err(Rejection::NotPermitted("not a member"));
                }
                let admin_left = self
                    .members
                    .values()
                    .any(|m| m.did != member && m.role == Role::Admin);
                if !admin_left {
                    return Err(Rejection::NotPermitted("the last admin cannot go"));
                }
                if let Some(removed) = self.members.remove(&member) {
                    for device in &removed.devices {
                        self.revoke_device(device, id);
                    }
                }
                Ok(vec![Change::Removed { member, left }])
            }
            Op::SetDevices { member, devices } => {
                if self.kind == Kind::Person {
                    return Err(Rejection::NotPermitted(
                        "a person's devices join by invitation",
                    ));
                }
                if member != author_member {
                    return Err(Rejection::NotPermitted(
                        "a member sets only its own devices",
                    ));
                }
                let old = self
                    .members
                    .get(&member)
                    .map(|m| m.devices.clone())
                    .ok_or(Rejection::Unauthorised)?;
                let fresh: Vec<DeviceEntry> = devices
                    .iter()
                    .filter(|d| !old.iter().any(|o| o.did == d.did))
                    .cloned()
                    .collect();
                for device in &devices {
                    if let Some(o) = old.iter().find(|o| o.did == device.did) {
                        if o != device {
                            return Err(Rejection::NotPermitted("keys change only by rotation"));
                        }
                    }
                }
                self.check_new_devices(&fresh)?;
                for gone in old
                    .iter()
                    .filter(|o| !devices.iter().any(|d| d.did == o.did))
                {
                    self.revoke_device(gone, id);
                }
                for device in &fresh {
                    self.enrol(&member, device);
                }
                if let Some(m) = self.members.get_mut(&member) {
                    m.devices = devices;
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
                self.signers.remove(&key);
                self.revoked.insert(key, id);
                self.rotated_out.insert(key, device.clone());
                self.revocations.push((key, id));
                self.enrol(author_member, &replacement);
                if let Some(m) = self.members.get_mut(author_member) {
                    for d in &mut m.devices {
                        if d.did == device {
                            *d = replacement.clone();
                        }
                    }
                }
                Ok(vec![Change::Rotated { device }])
            }
            Op::Epoch { epoch, keys } => {
                if keys.is_empty() {
                    return Err(Rejection::NotPermitted("an epoch op seals to someone"));
                }
                let mut changes = Vec::new();
                let index = match self.epoch_index.get(&epoch) {
                    Some(&index) => index,
                    None => {
                        self.epochs.push(Epoch {
                            id: epoch,
                            first: id,
                            time,
                            keys: HashMap::new(),
                        });
                        self.epoch_index.insert(epoch, self.epochs.len() - 1);
                        changes.push(Change::Rekeyed { epoch });
                        self.epochs.len() - 1
                    }
                };
                for key in keys {
                    // Copies for devices that are not current are ignored.
                    if self.owners.contains_key(&key.device) {
                        if let Some(record) = self.epochs.get_mut(index) {
                            record.keys.entry(key.device).or_default().push(key.sealed);
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
        if self.revoked.contains_key(signing) || self.signers.contains_key(signing) {
            return Err(Rejection::NotPermitted("a revoked or used signing key"));
        }
        Ok(())
    }

    fn add_member(&mut self, entry: MemberEntry, role: Role, since: BlockId) {
        for device in &entry.devices {
            self.enrol(&entry.did, device);
        }
        self.members.insert(
            entry.did.clone(),
            Member {
                did: entry.did,
                role,
                devices: entry.devices,
                since,
            },
        );
    }

    fn enrol(&mut self, member: &str, device: &DeviceEntry) {
        if let PublicKey::Ed25519(key) = &device.signing {
            self.signers
                .insert(*key, (member.to_owned(), device.did.clone()));
        }
        self.owners.insert(device.did.clone(), member.to_owned());
    }

    fn revoke_device(&mut self, device: &DeviceEntry, by: BlockId) {
        if let PublicKey::Ed25519(key) = &device.signing {
            self.signers.remove(key);
            self.revoked.insert(*key, by);
            self.revocations.push((*key, by));
        }
        self.owners.remove(&device.did);
        self.removed_devices.insert(device.did.clone());
    }
}

fn fold(blocks: &[Block], strong: Option<&StrongRule>) -> Result<IdentityState, IdentityError> {
    let (genesis, rest) = blocks
        .split_first()
        .ok_or_else(|| IdentityError::NotAnIdentity("no blocks".into()))?;
    let mut state = IdentityState::genesis(genesis)?;
    for block in rest {
        state.apply(block, strong);
    }
    Ok(state)
}

impl StrongRule {
    fn new(blocks: &[Block], revocations: &[([u8; 32], BlockId)]) -> Self {
        let parents: HashMap<BlockId, &[BlockId]> =
            blocks.iter().map(|b| (b.id(), b.parents())).collect();
        let mut rule = StrongRule {
            by_key: HashMap::new(),
            ancestors: HashMap::new(),
        };
        for (key, by) in revocations {
            rule.ancestors
                .entry(*by)
                .or_insert_with(|| ancestors_of(&parents, by));
            rule.by_key.entry(*key).or_default().push(*by);
        }
        rule
    }

    /// The revocation of `key` that `block` is not an ancestor of, if any.
    fn revoked_concurrently(&self, key: &[u8; 32], block: &BlockId) -> Option<BlockId> {
        self.by_key
            .get(key)?
            .iter()
            .copied()
            .find(|by| by != block && !self.ancestors.get(by).is_some_and(|a| a.contains(block)))
    }
}

fn ancestors_of(parents: &HashMap<BlockId, &[BlockId]>, block: &BlockId) -> HashSet<BlockId> {
    let mut seen = HashSet::new();
    let mut stack: Vec<BlockId> = parents.get(block).map(|p| p.to_vec()).unwrap_or_default();
    while let Some(id) = stack.pop() {
        if seen.insert(id) {
            if let Some(more) = parents.get(&id) {
                stack.extend_from_slice(more);
            }
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
