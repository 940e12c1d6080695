//! An identity as one of its devices sees and acts on it: the chain, the device's keys and
//! the derived state, kept in step.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rand_core::CryptoRngCore;

use crate::cbor::{Reader, Writer};
use crate::store::BlockStore;
use crate::walytis::{Block, BlockId, Chain, Entry, InsertReport, Query};

use super::device::DeviceKeys;
use super::document::{document, identity_did};
use super::keys::{seal, EpochKey, PublicKey};
use super::ops::{
    epoch_aad, epoch_commitment, recovery_proof, rotation_proof, DeviceEntry, EpochId, Invitation,
    Kind, MemberEntry, Op, PersonAnchor, Policy, Role, SealedKey, IDENTITY_TOPIC, NONCE_ID_LEN,
};
use super::recovery::RecoveryKey;
use super::state::IdentityState;
use super::IdentityError;

/// Sealed epoch-key copies per block: each is about 1.2 KB, a block body at most 64 KiB.
pub const KEYS_PER_BLOCK: usize = 48;

/// An identity chain, this device's keys and the state derived from the chain.
pub struct Identity<S: BlockStore> {
    chain: Chain<S>,
    device: DeviceKeys,
    state: IdentityState,
    /// The leaves of the blocks `state` was folded from, sorted.
    folded: Vec<BlockId>,
    /// Epoch keys this device opened: opening one costs a hybrid decapsulation (X25519 +
    /// ML-KEM-768), about 0.2 ms; using it, microseconds.
    opened: Mutex<HashMap<EpochId, EpochKey>>,
    /// Folds of the whole chain since this handle opened (see [`Identity::full_folds`]).
    full_folds: u64,
}

impl<S: BlockStore> std::fmt::Debug for Identity<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("did", &self.state.did())
            .field("device", &self.device.did())
            .finish()
    }
}

/// Everything needed to found an identity.
#[derive(Debug, Clone)]
pub struct Founding {
    /// Person or group.
    pub kind: Kind,
    /// A display name.
    pub name: String,
    /// Relay multiaddrs for the DID document.
    pub relays: Vec<String>,
    /// For a group: the founding person's DID and devices (this device among them). For a
    /// person: ignored (the founder is this device).
    pub founder: Option<MemberEntry>,
    /// For a person: the public half of its account [`super::RecoveryKey`], whose code the
    /// user keeps offline. `None` for a group (which refuses one) or a person without one.
    pub recovery: Option<PublicKey>,
    /// For a group: where the founding person stands in its own chain (see
    /// [`Identity::as_member`]).
    pub anchor: Option<PersonAnchor>,
}

impl<S: BlockStore> Identity<S> {
    /// Founds an identity: the genesis block and a first epoch key for the founder's devices.
    pub async fn create(
        store: S,
        device: DeviceKeys,
        founding: Founding,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, IdentityError> {
        let founder = match founding.kind {
            Kind::Person => MemberEntry {
                did: device.did().to_owned(),
                devices: vec![device.entry()],
            },
            Kind::Group => founding.founder.ok_or(IdentityError::Malformed(
                "a group needs its founding person".into(),
            ))?,
        };
        let genesis = Op::Genesis {
            kind: founding.kind,
            name: founding.name,
            relays: founding.relays,
            founder,
            recovery: founding.recovery,
            anchor: founding.anchor,
        };
        let chain = Chain::create(
            store,
            &super::rules(),
            device.signing().as_dalek(),
            time,
            vec![IDENTITY_TOPIC.to_owned()],
            genesis.encode(),
        )
        .await?;
        let mut identity = Self::open_chain(chain, device).await?;
        identity.rekey(time, rng).await?;
        Ok(identity)
    }

    /// Opens an identity whose chain the store holds.
    pub async fn open(store: S, chain: BlockId, device: DeviceKeys) -> Result<Self, IdentityError> {
        Self::open_chain(Chain::open(store, &super::rules(), chain).await?, device).await
    }

    /// Starts a replica of someone else's identity from its genesis block, to request to
    /// join it (see [`Identity::request_join`]) or just to resolve it.
    pub async fn replica(
        store: S,
        genesis: Block,
        device: DeviceKeys,
    ) -> Result<Self, IdentityError> {
        Self::open_chain(
            Chain::from_genesis(store, &super::rules(), genesis).await?,
            device,
        )
        .await
    }

    async fn open_chain(chain: Chain<S>, device: DeviceKeys) -> Result<Self, IdentityError> {
        let (state, folded) = fold_all(&chain).await?;
        Ok(Identity {
            chain,
            device,
            state,
            folded,
            opened: Mutex::default(),
            full_folds: 1,
        })
    }

    /// Brings the state up to date with `fresh`, blocks just stored (in arrival order). A
    /// block whose parents are exactly the folded leaves descends from every folded block
    /// and sorts after all of them, so folding it in on top gives what a fold of the whole
    /// chain gives — a revocation in it has no concurrent block to drop. That is the common
    /// case (a peer writing on top of everything this device has). A block on old parents
    /// whose effect is known without a fold — a join request, or a removed device's op that
    /// settlement already drops — is folded in where it is ([`IdentityState::fold_side`]),
    /// so a flood of them costs a lookup each. If `fresh` is not every block stored since the
    /// last fold (another handle on the store wrote too), or another block sits elsewhere,
    /// the whole chain is folded again.
    async fn fold_in(&mut self, fresh: &[Entry]) -> Result<(), IdentityError> {
        let first = self.state.block_count() as u64;
        let all_new = self.chain.len() == first + fresh.len() as u64
            && fresh
                .iter()
                .zip(first..)
                .all(|(entry, seq)| entry.seq == seq);
        if all_new {
            // Folded in place: if a block needs a fresh fold after all, the fold below
            // replaces whatever this loop did.
            let state = &mut self.state;
            let mut leaves = self.folded.clone();
            let folded = fresh.iter().all(|entry| {
                let block = &entry.block;
                if block.parents() == leaves.as_slice() {
                    state.extend_appended([block]);
                } else if !state.fold_side(block) {
                    return false;
                }
                leaves.retain(|leaf| !block.parents().contains(leaf));
                leaves.push(block.id());
                leaves.sort_unstable();
                true
            });
            if folded {
                self.folded = leaves;
                return Ok(());
            }
        }
        (self.state, self.folded) = fold_all(&self.chain).await?;
        self.full_folds += 1;
        Ok(())
    }

    /// How many times this handle folded the whole chain (once when it opened): blocks on
    /// top of what it holds, and the blocks [`IdentityState::fold_side`] knows, cost none.
    pub fn full_folds(&self) -> u64 {
        self.full_folds
    }

    /// The derived state.
    pub fn state(&self) -> &IdentityState {
        &self.state
    }

    /// The chain underneath.
    pub fn chain(&self) -> &Chain<S> {
        &self.chain
    }

    /// The chain underneath, mutably (for sync).
    pub fn chain_mut(&mut self) -> &mut Chain<S> {
        &mut self.chain
    }

    /// This device's keys.
    pub fn device(&self) -> &DeviceKeys {
        &self.device
    }

    /// `did:endra:<chain-id>`.
    pub fn did(&self) -> String {
        identity_did(&self.chain.id())
    }

    /// The W3C DID document.
    pub fn document(&self) -> serde_json::Value {
        document(&self.state)
    }

    /// Whether this device is currently one of the identity's devices.
    pub fn is_current_device(&self) -> bool {
        self.state.device(self.device.did()).is_some()
    }

    /// Re-derives the state from the chain if blocks arrived through another handle (a
    /// node syncing the same store); a no-op when the state already covers every block.
    pub async fn refresh(&mut self) -> Result<(), IdentityError> {
        self.chain.refresh().await?;
        let folded = self.state.block_count() as u64;
        if self.chain.len() != folded {
            // Sequence numbers count from 0: the blocks from `folded` on are the new ones.
            let fresh = self.chain.since(folded.checked_sub(1), usize::MAX).await?;
            self.fold_in(&fresh).await?;
        }
        Ok(())
    }

    /// Every block of the identity chain, in chain order.
    pub async fn blocks(&self) -> Result<Vec<Block>, IdentityError> {
        all_blocks(&self.chain).await
    }

    /// Offers blocks from a peer, then re-derives the state.
    pub async fn insert<B: AsRef<[u8]>>(
        &mut self,
        blocks: impl IntoIterator<Item = B>,
    ) -> Result<InsertReport, IdentityError> {
        let report = self.chain.insert(blocks).await?;
        if !report.accepted.is_empty() {
            self.fold_in(&report.accepted).await?;
        }
        Ok(report)
    }

    /// Appends ops after checking each as peers will, so nothing peers reject is written.
    async fn submit(&mut self, ops: Vec<Op>, time: u64) -> Result<Vec<Entry>, IdentityError> {
        let author = self.device.author();
        // Each op is checked against the state the batch's earlier ops make.
        let mut scratch = self.state.clone();
        for op in &ops {
            scratch.check_and_apply(&author, time, op)?;
        }
        let items = ops
            .iter()
            .map(|op| (op.encode(), vec![IDENTITY_TOPIC.to_owned()]))
            .collect();
        self.append(items, time).await
    }

    /// Appends blocks and folds them in; only if another handle on the same store wrote in
    /// between is the whole chain folded again.
    async fn append(
        &mut self,
        items: Vec<(Vec<u8>, Vec<String>)>,
        time: u64,
    ) -> Result<Vec<Entry>, IdentityError> {
        let entries = self
            .chain
            .append(self.device.signing().as_dalek(), time, items)
            .await?;
        self.fold_in(&entries).await?;
        Ok(entries)
    }

    /// A one-time invitation, valid until `expires` (ms since the Unix epoch). Only admins'
    /// invitations are honoured. Nothing is written: the code is the whole invitation.
    pub fn invite(
        &self,
        role: Role,
        expires: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Invitation, IdentityError> {
        let (member, _) = self
            .state
            .device(self.device.did())
            .ok_or(IdentityError::NotAMember)?;
        if member.role != Role::Admin {
            return Err(IdentityError::Rejected(
                super::state::Rejection::NotPermitted("only admins invite"),
            ));
        }
        let mut id = [0u8; NONCE_ID_LEN];
        rng.fill_bytes(&mut id);
        Ok(Invitation::new(
            self.chain.id(),
            id,
            expires,
            self.device.did().to_owned(),
            role,
            self.state.relays().to_vec(),
            self.device.signing(),
        ))
    }

    /// Asks to join with an invitation: writes a request block signed by this device, which
    /// proves it holds the keys it names. `member` is `None` for a device joining a person,
    /// or, for a group, the joining person with its devices (this one among them) and where
    /// it stands in its own chain ([`Identity::as_member`] of the person), which every
    /// replica of the group checks against that chain.
    pub async fn request_join(
        &mut self,
        invitation: Invitation,
        member: Option<(MemberEntry, PersonAnchor)>,
        time: u64,
    ) -> Result<BlockId, IdentityError> {
        if invitation.chain != self.chain.id() {
            return Err(IdentityError::InvalidInvitation(
                "it is for another identity",
            ));
        }
        if time > invitation.expires {
            return Err(IdentityError::InvalidInvitation("it has expired"));
        }
        let (member, anchor) = match member {
            Some((member, anchor)) => (member, Some(anchor)),
            None => (
                MemberEntry {
                    did: self.device.did().to_owned(),
                    devices: vec![self.device.entry()],
                },
                None,
            ),
        };
        let request = Op::Request {
            invitation,
            member,
            anchor,
        };
        let entries = self.submit(vec![request], time).await?;
        entries
            .first()
            .map(|e| e.block.id())
            .ok_or(IdentityError::Malformed("nothing written".into()))
    }

    /// Approves a pending request and shares epoch keys with the new devices: every epoch
    /// for a person's new device (its history), the current one for a group member.
    pub async fn approve(
        &mut self,
        request: BlockId,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), IdentityError> {
        let pending = self
            .state
            .pending_request(&request)
            .cloned()
            .ok_or_else(|| IdentityError::Rejected(self.state.not_pending(&request)))?;
        let epochs: Vec<EpochId> = match self.state.kind() {
            Kind::Person => self.state.kept_epochs().map(|e| e.id).collect(),
            Kind::Group => self
                .state
                .current_epoch()
                .map(|e| e.id)
                .into_iter()
                .collect(),
        };
        let mut ops = vec![Op::Approve { request }];
        for epoch in epochs {
            let key = self
                .state
                .epoch_key(&epoch, self.device.did(), self.device.agreement())?;
            ops.extend(self.seal_epoch(epoch, &key, &pending.member.devices, rng)?);
        }
        self.submit(ops, time).await?;
        Ok(())
    }

    /// Removes a member (a device of a person, a person of a group) and makes a new epoch
    /// for everyone else, so the removed can read nothing written afterwards.
    pub async fn remove(
        &mut self,
        member: &str,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), IdentityError> {
        let remaining: Vec<DeviceEntry> = self
            .state
            .devices()
            .filter(|(m, _)| m.did != member)
            .map(|(_, d)| d.clone())
            .collect();
        let mut ops = vec![Op::Remove {
            member: member.to_owned(),
        }];
        ops.extend(self.new_epoch(&remaining, rng)?);
        self.submit(ops, time).await?;
        Ok(())
    }

    /// Leaves: removes this device's member. The others make the next epoch.
    pub async fn leave(&mut self, time: u64) -> Result<(), IdentityError> {
        let (member, _) = self
            .state
            .device(self.device.did())
            .ok_or(IdentityError::NotAMember)?;
        let member = member.did.clone();
        self.submit(vec![Op::Remove { member }], time).await?;
        Ok(())
    }

    /// Brings a group member's devices up to date with its person chain — `person` is
    /// [`Identity::as_member`] of a handle on that chain, whatever device holds it — if the
    /// person's anchor is newer than the one the group took them from and the devices
    /// differ; devices the person dropped lose access through a new epoch. Any current device
    /// of the group may do it, so a phone removed from a person loses the person's groups as
    /// soon as any member's device has seen the removal. Returns whether it wrote.
    pub async fn follow_member(
        &mut self,
        person: &(MemberEntry, PersonAnchor),
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<bool, IdentityError> {
        let Some(gone) = self.member_update(person) else {
            return Ok(false);
        };
        let (entry, anchor) = person;
        let mut ops = vec![Op::SetDevices {
            member: entry.did.clone(),
            devices: entry.devices.clone(),
            anchor: anchor.clone(),
        }];
        if gone {
            let mut remaining: Vec<DeviceEntry> = self
                .state
                .devices()
                .filter(|(m, _)| m.did != entry.did)
                .map(|(_, d)| d.clone())
                .collect();
            remaining.extend(entry.devices.iter().cloned());
            ops.extend(self.new_epoch(&remaining, rng)?);
        }
        self.submit(ops, time).await?;
        Ok(true)
    }

    /// Whether [`Identity::follow_member`] would write for `person`: `None` if not (not a
    /// member, the same devices, an anchor no newer, or this device not current), else
    /// whether a device of the member leaves.
    pub fn member_update(&self, person: &(MemberEntry, PersonAnchor)) -> Option<bool> {
        let (entry, anchor) = person;
        let member = self.state.member(&entry.did)?;
        let same = member.devices.len() == entry.devices.len()
            && member.devices.iter().all(|d| entry.devices.contains(d));
        if same || anchor.blocks <= member.anchor_blocks || !self.is_current_device() {
            return None;
        }
        Some(
            member
                .devices
                .iter()
                .any(|d| !entry.devices.iter().any(|e| e.did == d.did)),
        )
    }

    /// This person as a member of a group: its DID, its current devices, and where it stands
    /// in its own chain (the leaves this device holds and how many blocks they reach).
    pub fn as_member(&self) -> (MemberEntry, PersonAnchor) {
        let entry = MemberEntry {
            did: self.did(),
            devices: self.state.devices().map(|(_, d)| d.clone()).collect(),
        };
        let anchor = PersonAnchor {
            leaves: self.folded.clone(),
            blocks: self.state.block_count() as u64,
        };
        (entry, anchor)
    }

    /// Replaces this device's keys: the rotation is signed by the old key and proven by the
    /// new one. Then, signed by the new key, every epoch key this device held is sealed
    /// again to its new agreement key (its history stays readable) and a new epoch follows.
    pub async fn rotate(
        &mut self,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), IdentityError> {
        let next = self.device.rotated(rng);
        self.rotate_to(next, time, rng).await
    }

    /// [`Identity::rotate`] to keys the caller made (from [`DeviceKeys::rotated`]) and kept
    /// safe first, so that a crash between writing the rotation and saving them loses
    /// nothing (see [`crate::client::Account::rotate_kept`]).
    pub async fn rotate_to(
        &mut self,
        next: DeviceKeys,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), IdentityError> {
        let rotate = Op::Rotate {
            device: self.device.did().to_owned(),
            signing: next.signing().public(),
            agreement: next.agreement().public(),
            proof: rotation_proof(
                &self.chain.id(),
                self.device.did(),
                next.signing(),
                &next.agreement().public(),
            ),
        };
        // Discarded epochs are not sealed again: with the old agreement key gone, they are
        // gone for this device.
        let mut held = Vec::new();
        for epoch in self.state.kept_epochs() {
            if let Ok(key) =
                self.state
                    .epoch_key(&epoch.id, self.device.did(), self.device.agreement())
            {
                held.push((epoch.id, key));
            }
        }
        self.submit(vec![rotate], time).await?;
        self.device = next;
        // The old agreement key is gone: what the new one cannot open must not stay readable.
        self.opened
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let me = [self.device.entry()];
        let mut ops = Vec::new();
        for (epoch, key) in &held {
            ops.extend(self.seal_epoch(*epoch, key, &me, rng)?);
        }
        let devices: Vec<DeviceEntry> = self.state.devices().map(|(_, d)| d.clone()).collect();
        ops.extend(self.new_epoch(&devices, rng)?);
        self.submit(ops, time).await?;
        Ok(())
    }

    /// Takes the person back with its recovery key, on this device (which need not be a
    /// device of the person yet: a fresh replica holding the chain): every current device
    /// is removed, this one enrolled, `next` named as the recovery key from now on, and a
    /// new epoch made for this device. What the removed devices wrote stays; what they wrote
    /// concurrently with the recovery, or on parents from before it, is dropped, and
    /// nothing any of them writes afterwards is admitted. This device reads the messages
    /// written from now on; history stays with the devices that had it.
    pub async fn recover(
        &mut self,
        recovery: &RecoveryKey,
        next: PublicKey,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), IdentityError> {
        let device = self.device.entry();
        let op = Op::Recover {
            remove: self.state.members().keys().cloned().collect(),
            proof: recovery_proof(&self.chain.id(), &device, self.device.signing()),
            device,
            next,
        };
        let PublicKey::Ed25519(key) = recovery.public() else {
            return Err(IdentityError::InvalidRecoveryKey("not an Ed25519 key"));
        };
        self.state.check(&key, time, &op)?;
        let entries = self
            .chain
            .append(
                recovery.signing().as_dalek(),
                time,
                vec![(op.encode(), vec![IDENTITY_TOPIC.to_owned()])],
            )
            .await?;
        self.fold_in(&entries).await?;
        self.rekey(time, rng).await
    }

    /// Sets the policy for epoch keys (admins only): the rekey schedule, and how many epochs
    /// stay readable.
    pub async fn set_policy(&mut self, policy: Policy, time: u64) -> Result<(), IdentityError> {
        self.submit(vec![Op::Policy { policy }], time).await?;
        Ok(())
    }

    /// Makes a new epoch key and seals it to every current device.
    pub async fn rekey(
        &mut self,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), IdentityError> {
        let devices: Vec<DeviceEntry> = self.state.devices().map(|(_, d)| d.clone()).collect();
        let ops = self.new_epoch(&devices, rng)?;
        self.submit(ops, time).await?;
        Ok(())
    }

    /// Rekeys if the state says a new epoch is due (a member left, a device lacks the key)
    /// or the current epoch is older than `max_age` ms. Returns whether it did.
    pub async fn rekey_if_due(
        &mut self,
        time: u64,
        max_age: Option<u64>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<bool, IdentityError> {
        let old = match (self.state.current_epoch(), max_age) {
            (Some(epoch), Some(age)) => time.saturating_sub(epoch.time) > age,
            _ => false,
        };
        if self.is_current_device() && (self.state.needs_rekey() || old) {
            self.rekey(time, rng).await?;
            return Ok(true);
        }
        Ok(false)
    }

    fn new_epoch(
        &self,
        devices: &[DeviceEntry],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<Op>, IdentityError> {
        let mut epoch = [0u8; NONCE_ID_LEN];
        rng.fill_bytes(&mut epoch);
        let key = EpochKey::generate(rng);
        self.seal_epoch(epoch, &key, devices, rng)
    }

    fn seal_epoch(
        &self,
        epoch: EpochId,
        key: &EpochKey,
        devices: &[DeviceEntry],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<Op>, IdentityError> {
        let chain = self.chain.id();
        let commitment = epoch_commitment(&chain, &epoch, key)?;
        let mut sealed = Vec::with_capacity(devices.len());
        for device in devices {
            let aad = epoch_aad(&chain, &epoch, &device.did);
            sealed.push(SealedKey {
                device: device.did.clone(),
                sealed: seal(&device.agreement, &aad, key.as_bytes(), rng)?,
            });
        }
        Ok(sealed
            .chunks(KEYS_PER_BLOCK)
            .map(|keys| Op::Epoch {
                epoch,
                commitment,
                keys: keys.to_vec(),
            })
            .collect())
    }

    /// Names the identity's default chain ([`Op::DefaultChain`]): a chain bound to this
    /// identity where its messages go. Named once; every replica refuses a second.
    pub async fn name_default_chain(
        &mut self,
        chain: BlockId,
        time: u64,
    ) -> Result<(), IdentityError> {
        self.submit(vec![Op::DefaultChain { chain }], time).await?;
        Ok(())
    }

    /// The identity's default chain, once named.
    pub fn default_chain(&self) -> Option<BlockId> {
        self.state.default_chain()
    }

    /// The epoch this device writes under now, rekeying first if due or if this device holds
    /// no genuine copy of the current epoch's key. Fails with `NotAMember` once removed.
    pub(crate) async fn writing_epoch(
        &mut self,
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<EpochId, IdentityError> {
        if !self.is_current_device() {
            return Err(IdentityError::NotAMember);
        }
        self.rekey_if_due(time, self.state.policy().rekey_every, rng)
            .await?;
        let epoch = self
            .state
            .current_epoch()
            .map(|e| e.id)
            .ok_or(IdentityError::NoEpochKey)?;
        let usable = self.with_epoch_key(&epoch, |_| Ok(()));
        if let Err(IdentityError::NoEpochKey | IdentityError::ForgedEpochKey) = usable {
            // Every peer sees this epoch as current, but this device got no genuine copy of
            // its key (a member sealed it another key, or none): a new epoch heals the group.
            self.rekey(time, rng).await?;
            return self
                .state
                .current_epoch()
                .map(|e| e.id)
                .ok_or(IdentityError::NoEpochKey);
        }
        Ok(epoch)
    }

    /// Encrypts `plaintext` for a block of `chain` (this identity's chain or one bound to
    /// it) under the current epoch, rekeying first if due: `[epoch ID, ciphertext]`, the
    /// chain and epoch bound in as associated data.
    pub(crate) async fn seal(
        &mut self,
        chain: &BlockId,
        plaintext: &[u8],
        time: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, IdentityError> {
        let epoch = self.writing_epoch(time, rng).await?;
        let ciphertext = self.with_epoch_key(&epoch, |key| {
            Ok(key.encrypt(&data_aad(chain, &epoch), plaintext, rng)?)
        })?;
        let mut w = Writer::with_capacity(ciphertext.len() + 32);
        w.array(2);
        w.bytes(&epoch);
        w.bytes(&ciphertext);
        Ok(w.out)
    }

    /// Decrypts what [`Identity::seal`] made for `chain`, if this device holds its epoch key.
    pub(crate) fn open_sealed(
        &self,
        chain: &BlockId,
        sealed: &[u8],
    ) -> Result<Vec<u8>, IdentityError> {
        let mut r = Reader::new(sealed);
        if r.array()? != 2 {
            return Err(IdentityError::Malformed(
                "not an encrypted data block".into(),
            ));
        }
        let epoch: EpochId = r
            .bytes()?
            .try_into()
            .map_err(|_| IdentityError::Malformed("epoch ID".into()))?;
        let ciphertext = r.bytes()?;
        self.with_epoch_key(&epoch, |key| {
            Ok(key.decrypt(&data_aad(chain, &epoch), ciphertext)?)
        })
    }

    /// Runs `use_key` with this device's key of `epoch`, opened once and then kept. The state
    /// still decides each time whether the epoch exists, is kept and is sealed to this device
    /// (a policy may discard it later; a refold may drop the block that made it or sealed it
    /// here); a rotation empties the cache.
    pub(crate) fn with_epoch_key<T>(
        &self,
        epoch: &EpochId,
        use_key: impl FnOnce(&EpochKey) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        // A panic elsewhere while the map was held leaves it whole: every change is one call.
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if self.state.is_discarded(epoch) {
            opened.remove(epoch);
            return Err(IdentityError::EpochDiscarded);
        }
        let device = self.device.did();
        if !self
            .state
            .epoch(epoch)
            .is_some_and(|record| record.has_device(device))
        {
            return Err(IdentityError::NoEpochKey);
        }
        if let Some(key) = opened.get(epoch) {
            return use_key(key);
        }
        let key = self
            .state
            .epoch_key(epoch, device, self.device.agreement())?;
        let result = use_key(&key);
        opened.insert(*epoch, key);
        result
    }
}

fn data_aad(chain: &BlockId, epoch: &EpochId) -> Vec<u8> {
    [
        b"endra/identity/data/v1\0".as_slice(),
        chain.as_bytes(),
        epoch,
    ]
    .concat()
}

async fn all_blocks<S: BlockStore>(chain: &Chain<S>) -> Result<Vec<Block>, IdentityError> {
    let entries = chain
        .blocks(Query {
            limit: usize::MAX,
            ..Query::default()
        })
        .await?;
    Ok(entries.into_iter().map(|e| e.block).collect())
}

/// The person `did` as a member of a group, from its chain in `store` as it stands there
/// (every block the store holds; see [`Identity::as_member`]): `None` if the store lacks the
/// chain or it is not a person's.
pub async fn person_in_store<S: BlockStore + Clone>(
    store: &S,
    did: &str,
) -> Result<Option<(MemberEntry, PersonAnchor)>, IdentityError> {
    let Ok(chain) = super::document::parse_identity_did(did) else {
        return Ok(None);
    };
    let chain = match Chain::open(store.clone(), &super::rules(), chain).await {
        Ok(chain) => chain,
        Err(crate::walytis::ChainError::UnknownChain(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (state, leaves) = fold_all(&chain).await?;
    if state.kind() != Kind::Person {
        return Ok(None);
    }
    let entry = MemberEntry {
        did: state.did(),
        devices: state.devices().map(|(_, d)| d.clone()).collect(),
    };
    let anchor = PersonAnchor {
        leaves,
        blocks: state.block_count() as u64,
    };
    Ok(Some((entry, anchor)))
}

/// Reads the whole chain and folds it.
pub async fn resolve<S: BlockStore>(chain: &Chain<S>) -> Result<IdentityState, IdentityError> {
    IdentityState::resolve(&all_blocks(chain).await?)
}

/// Reads the whole chain and folds it; with the leaves of what it read.
async fn fold_all<S: BlockStore>(
    chain: &Chain<S>,
) -> Result<(IdentityState, Vec<BlockId>), IdentityError> {
    let blocks = all_blocks(chain).await?;
    let parents: std::collections::HashSet<&BlockId> =
        blocks.iter().flat_map(|b| b.parents()).collect();
    let mut leaves: Vec<BlockId> = blocks
        .iter()
        .map(Block::id)
        .filter(|id| !parents.contains(id))
        .collect();
    leaves.sort_unstable();
    Ok((IdentityState::resolve(&blocks)?, leaves))
}
