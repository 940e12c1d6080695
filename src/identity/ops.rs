//! Identity operations: what the blocks of an identity chain say.
//!
//! An identity (`did:endra:<chain-id>`) is a Walytis chain. Its blocks carry the topic
//! [`IDENTITY_TOPIC`] and one [`Op`] each, encoded as canonical CBOR arrays (`[tag, ...]`):
//! identity chains carry ops only (every replica refuses anything else), and an identity's
//! messages go to chains bound to it. Whether an op takes effect is decided by
//! [`super::state::IdentityState`], never by the op itself.

use crate::cbor::{CborError, Reader, Writer};
use crate::walytis::{BlockError, BlockId, ReadLink, WriteLink, MAX_PARENTS};

use super::keys::{
    verify, EpochKey, KeyError, PublicKey, SigningContext, SigningKeyPair, SIGNATURE_LEN,
};
use super::IdentityError;

/// The topic of blocks that carry an [`Op`].
pub const IDENTITY_TOPIC: &str = "endra/identity/1";
/// Bytes of an invitation's one-time ID and of an epoch ID.
pub const NONCE_ID_LEN: usize = 16;
/// Prefix of an invitation code.
pub const INVITATION_PREFIX: &str = "endra-invite:";
/// Most relay addresses an identity lists.
pub const MAX_RELAYS: usize = 16;
/// Most devices one member lists.
pub const MAX_DEVICES: usize = 64;

const INVITATION_CONTEXT: SigningContext = SigningContext::new("endra/identity/invitation/v1");
const ROTATION_CONTEXT: SigningContext = SigningContext::new("endra/identity/rotation/v1");
const RECOVERY_CONTEXT: SigningContext = SigningContext::new("endra/identity/recovery/v1");

/// An epoch's ID: random, chosen by the device that made the epoch.
pub type EpochId = [u8; NONCE_ID_LEN];

/// What an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A person: controlled by its devices (every device is a member with the admin role).
    Person,
    /// A group: controlled by its admins (persons), read and written by its members.
    Group,
}

/// A member's rights. In a person identity every device is an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// May invite, approve, remove others and change the relays.
    Admin,
    /// May read, write, rekey, change its own devices and leave.
    Member,
}

/// A device's public keys, named by its DID (`did:key` of its first signing key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The device DID.
    pub did: String,
    /// Its current Ed25519 signing key: the author key of its blocks.
    pub signing: PublicKey,
    /// Its current hybrid X25519 + ML-KEM-768 key: epoch keys are sealed to it.
    pub agreement: PublicKey,
}

/// A member as an op names it: a device (in a person identity) or a person with its devices
/// (in a group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// The member's DID: a device DID in a person identity, a person DID in a group.
    pub did: String,
    /// The member's devices (for a device member: itself).
    pub devices: Vec<DeviceEntry>,
}

/// Where a person stood in its own identity chain when a group recorded its devices: the
/// person chain's leaves the writer knew, and how many blocks they reach. Every replica of
/// the group checks it against the person chain (its admission rule, see `state`), and a
/// group takes a member's devices only from a newer anchor than the one it holds: the count
/// grows along the person chain, so anchors never go back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonAnchor {
    /// The person chain's leaves, sorted.
    pub leaves: Vec<BlockId>,
    /// The blocks they reach, themselves included.
    pub blocks: u64,
}

/// A one-time, expiring permission to join, signed by the inviting device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The identity chain to join.
    pub chain: BlockId,
    /// One-time ID: an identity honours each ID once.
    pub id: [u8; NONCE_ID_LEN],
    /// Milliseconds since the Unix epoch after which approvals are refused.
    pub expires: u64,
    /// The inviting device's DID.
    pub inviter: String,
    /// The role the joiner gets.
    pub role: Role,
    /// Relay multiaddrs where the chain can be found.
    pub relays: Vec<String>,
    /// The inviter's signature over everything above.
    pub sig: [u8; SIGNATURE_LEN],
}

/// A sealed copy of an epoch key for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The recipient device DID.
    pub device: String,
    /// The epoch key sealed to the device's agreement key (see [`epoch_aad`]).
    pub sealed: Vec<u8>,
}

/// One identity operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The first block: what the identity is and who founded it.
    Genesis {
        /// Person or group.
        kind: Kind,
        /// A display name (not verified by anyone).
        name: String,
        /// Relay multiaddrs listed as the DID document's services.
        relays: Vec<String>,
        /// The founding member (a device, or a person with its devices); an admin.
        founder: MemberEntry,
        /// A person's account recovery key (an Ed25519 public key; see [`Op::Recover`]),
        /// whose secret the user keeps offline; `None` for groups, and for persons made
        /// without one.
        recovery: Option<PublicKey>,
        /// For a group: where the founding person stood in its own chain.
        anchor: Option<PersonAnchor>,
    },
    /// A would-be member asks to join; written by one of the joiner's own devices.
    Request {
        /// The invitation it holds.
        invitation: Invitation,
        /// Who joins, with the keys it proves by signing this block.
        member: MemberEntry,
        /// For a group: where the joining person stood in its own chain, whose devices at
        /// that point `member` must list (every replica checks it).
        anchor: Option<PersonAnchor>,
    },
    /// An admin lets the member of a request in.
    Approve {
        /// The request block.
        request: BlockId,
    },
    /// Removes a member (an admin, or the member itself leaving).
    Remove {
        /// The member's DID.
        member: String,
    },
    /// A group member's devices follow its person chain (the person added or removed a
    /// device): written by any current device of the group, checked by every replica
    /// against the person chain at `anchor`, which must be newer than the member's last.
    SetDevices {
        /// The member's DID.
        member: String,
        /// Its devices from now on: the person's current devices at `anchor`.
        devices: Vec<DeviceEntry>,
        /// Where the person stood in its own chain.
        anchor: PersonAnchor,
    },
    /// A device replaces its keys; the block is signed by the old key, the op by the new one.
    Rotate {
        /// The device DID.
        device: String,
        /// The new signing key.
        signing: PublicKey,
        /// The new agreement key.
        agreement: PublicKey,
        /// Signature of the new signing key over chain, device and both new keys.
        proof: [u8; SIGNATURE_LEN],
    },
    /// Epoch key copies: a new epoch if the ID is new, more recipients otherwise.
    Epoch {
        /// The epoch.
        epoch: EpochId,
        /// The key's commitment ([`epoch_commitment`]): the epoch's first op sets it, every
        /// later op for the epoch repeats it, and a recipient accepts only a copy that opens
        /// to the key it commits to — so no member can hand some devices another key under
        /// the same epoch.
        commitment: [u8; 32],
        /// Its key, sealed to devices.
        keys: Vec<SealedKey>,
    },
    /// Replaces the relay list.
    Relays {
        /// Relay multiaddrs.
        relays: Vec<String>,
    },
    /// Replaces the policy for epoch keys (admins only).
    Policy {
        /// The policy from now on.
        policy: Policy,
    },
    /// Takes a person back with its recovery key, the block's author: removes the listed
    /// members (devices), enrols a new device, and names the next recovery key — the one
    /// that signed is spent. A recovery outranks every device: no device can undo it, change
    /// the recovery key or remove the device it enrols, whatever parents it signs on (see
    /// `state`).
    Recover {
        /// The members (device DIDs) to remove: a recovering user removes every device it
        /// does not hold.
        remove: Vec<String>,
        /// The new device.
        device: DeviceEntry,
        /// The new device's signature over chain, device and keys: it holds its keys.
        proof: [u8; SIGNATURE_LEN],
        /// The next recovery key's public key.
        next: PublicKey,
    },
    /// Names the identity's default chain: a chain bound to it where its messages go (a
    /// person's notes, a group's chat), since identity chains carry ops only. Set once, by
    /// the founder when it creates the identity; later ones are refused.
    DefaultChain {
        /// The bound chain's ID.
        chain: BlockId,
    },
}

/// An identity's rules for its epoch keys, set by an admin with [`Op::Policy`] and followed
/// by every device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Make a new epoch before a write when the current one is older than this many ms (the
    /// schedule); `None`: new epochs only on removals, rotations and requests.
    pub rekey_every: Option<u64>,
    /// Keep only the newest this many epochs: older ones are *discarded* — never shared with
    /// new devices, not sealed again when a device rotates its keys, and refused when read
    /// (the current epoch is always kept). `None`: history stays readable.
    pub keep_epochs: Option<u32>,
}

/// The associated data a sealed epoch key is bound to.
pub fn epoch_aad(chain: &BlockId, epoch: &EpochId, device: &str) -> Vec<u8> {
    [
        b"endra/identity/epoch/v1\0".as_slice(),
        chain.as_bytes(),
        epoch,
        device.as_bytes(),
    ]
    .concat()
}

/// What an epoch key commits to: a key derived from it (HKDF-SHA256) over the chain and
/// the epoch, so that the key is bound to its epoch and one commitment fits one key.
pub fn epoch_commitment(
    chain: &BlockId,
    epoch: &EpochId,
    key: &EpochKey,
) -> Result<[u8; 32], KeyError> {
    key.commitment(&[chain.as_bytes(), epoch.as_slice()].concat())
}

/// The message a [`Op::Rotate`] proof signs.
pub fn rotation_message(
    chain: &BlockId,
    device: &str,
    signing: &PublicKey,
    agreement: &PublicKey,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(1400);
    w.array(4);
    w.link(chain);
    w.text(device);
    w.bytes(&signing.to_bytes());
    w.bytes(&agreement.to_bytes());
    w.out
}

/// Signs a rotation to `new` keys.
pub fn rotation_proof(
    chain: &BlockId,
    device: &str,
    new: &SigningKeyPair,
    agreement: &PublicKey,
) -> [u8; SIGNATURE_LEN] {
    new.sign(
        ROTATION_CONTEXT,
        &rotation_message(chain, device, &new.public(), agreement),
    )
}

/// Signs a recovering device's keys (see [`Op::Recover`]).
pub fn recovery_proof(
    chain: &BlockId,
    device: &DeviceEntry,
    new: &SigningKeyPair,
) -> [u8; SIGNATURE_LEN] {
    new.sign(
        RECOVERY_CONTEXT,
        &rotation_message(chain, &device.did, &device.signing, &device.agreement),
    )
}

/// Checks a [`Op::Recover`] proof.
pub fn verify_recovery(chain: &BlockId, device: &DeviceEntry, proof: &[u8]) -> bool {
    verify(
        &device.signing,
        RECOVERY_CONTEXT,
        &rotation_message(chain, &device.did, &device.signing, &device.agreement),
        proof,
    )
    .is_ok()
}

/// Checks a [`Op::Rotate`] proof.
pub fn verify_rotation(
    chain: &BlockId,
    device: &str,
    signing: &PublicKey,
    agreement: &PublicKey,
    proof: &[u8],
) -> bool {
    verify(
        signing,
        ROTATION_CONTEXT,
        &rotation_message(chain, device, signing, agreement),
        proof,
    )
    .is_ok()
}

impl Invitation {
    /// Makes and signs an invitation.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain: BlockId,
        id: [u8; NONCE_ID_LEN],
        expires: u64,
        inviter: String,
        role: Role,
        relays: Vec<String>,
        key: &SigningKeyPair,
    ) -> Self {
        let mut invitation = Invitation {
            chain,
            id,
            expires,
            inviter,
            role,
            relays,
            sig: [0; SIGNATURE_LEN],
        };
        invitation.sig = key.sign(INVITATION_CONTEXT, &invitation.signed_bytes());
        invitation
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        self.write_fields(&mut w);
        w.out
    }

    fn write_fields(&self, w: &mut Writer) {
        w.array(6);
        w.link(&self.chain);
        w.bytes(&self.id);
        w.uint(self.expires);
        w.text(&self.inviter);
        w.uint(role_code(self.role));
        write_strings(w, &self.relays);
    }

    /// Checks the signature against the inviter's key.
    pub fn verify(&self, inviter_key: &PublicKey) -> bool {
        verify(
            inviter_key,
            INVITATION_CONTEXT,
            &self.signed_bytes(),
            &self.sig,
        )
        .is_ok()
    }

    fn write(&self, w: &mut Writer) {
        w.array(2);
        self.write_fields(w);
        w.bytes(&self.sig);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, IdentityError> {
        expect_array(r, 2)?;
        expect_array(r, 6)?;
        let chain = r.link()?;
        let id = fixed(r.bytes()?)?;
        let expires = r.uint()?;
        let inviter = r.text()?.to_owned();
        let role = role_from(r.uint()?)?;
        let relays = read_strings(r, MAX_RELAYS)?;
        let sig = fixed(r.bytes()?)?;
        Ok(Invitation {
            chain,
            id,
            expires,
            inviter,
            role,
            relays,
            sig,
        })
    }

    /// The invitation as a short copyable string: [`INVITATION_PREFIX`] then base58.
    pub fn to_code(&self) -> String {
        let mut w = Writer::with_capacity(256);
        self.write(&mut w);
        format!("{INVITATION_PREFIX}{}", bs58::encode(&w.out).into_string())
    }

    /// Parses [`Invitation::to_code`]'s string (surrounding whitespace allowed).
    pub fn from_code(code: &str) -> Result<Self, IdentityError> {
        let body =
            code.trim()
                .strip_prefix(INVITATION_PREFIX)
                .ok_or(IdentityError::InvalidInvitation(
                    "missing the endra-invite: prefix",
                ))?;
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| IdentityError::InvalidInvitation("not base58"))?;
        let mut r = Reader::new(&bytes);
        let invitation = Self::read(&mut r)?;
        if !r.is_empty() {
            return Err(IdentityError::InvalidInvitation("trailing bytes"));
        }
        Ok(invitation)
    }
}

impl Op {
    /// Canonical CBOR.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(512);
        match self {
            Op::Genesis {
                kind,
                name,
                relays,
                founder,
                recovery,
                anchor,
            } => {
                w.array(7);
                w.uint(0);
                w.uint(match kind {
                    Kind::Person => 0,
                    Kind::Group => 1,
                });
                w.text(name);
                write_strings(&mut w, relays);
                write_member(&mut w, founder);
                match recovery {
                    Some(key) => w.bytes(&key.to_bytes()),
                    None => w.null(),
                }
                write_anchor(&mut w, anchor.as_ref());
            }
            Op::Request {
                invitation,
                member,
                anchor,
            } => {
                w.array(4);
                w.uint(1);
                invitation.write(&mut w);
                write_member(&mut w, member);
                write_anchor(&mut w, anchor.as_ref());
            }
            Op::Approve { request } => {
                w.array(2);
                w.uint(2);
                w.link(request);
            }
            Op::Remove { member } => {
                w.array(2);
                w.uint(3);
                w.text(member);
            }
            Op::SetDevices {
                member,
                devices,
                anchor,
            } => {
                w.array(4);
                w.uint(4);
                w.text(member);
                write_devices(&mut w, devices);
                write_anchor(&mut w, Some(anchor));
            }
            Op::Rotate {
                device,
                signing,
                agreement,
                proof,
            } => {
                w.array(5);
                w.uint(5);
                w.text(device);
                w.bytes(&signing.to_bytes());
                w.bytes(&agreement.to_bytes());
                w.bytes(proof);
            }
            Op::Epoch {
                epoch,
                commitment,
                keys,
            } => {
                w.array(4);
                w.uint(6);
                w.bytes(epoch);
                w.bytes(commitment);
                w.array(keys.len());
                for key in keys {
                    w.array(2);
                    w.text(&key.device);
                    w.bytes(&key.sealed);
                }
            }
            Op::Relays { relays } => {
                w.array(2);
                w.uint(7);
                write_strings(&mut w, relays);
            }
            Op::Policy { policy } => {
                w.array(3);
                w.uint(8);
                match policy.rekey_every {
                    Some(ms) => w.uint(ms),
                    None => w.null(),
                }
                match policy.keep_epochs {
                    Some(count) => w.uint(u64::from(count)),
                    None => w.null(),
                }
            }
            Op::DefaultChain { chain } => {
                w.array(2);
                w.uint(9);
                w.link(chain);
            }
            Op::Recover {
                remove,
                device,
                proof,
                next,
            } => {
                w.array(5);
                w.uint(10);
                write_strings(&mut w, remove);
                write_devices(&mut w, std::slice::from_ref(device));
                w.bytes(proof);
                w.bytes(&next.to_bytes());
            }
        }
        w.out
    }

    /// Parses [`Op::encode`]'s bytes; anything else is [`IdentityError::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::new(bytes);
        let len = r.array()?;
        let tag = r.uint()?;
        let (expected, op) = match tag {
            0 => {
                let kind = match r.uint()? {
                    0 => Kind::Person,
                    1 => Kind::Group,
                    _ => return Err(IdentityError::Malformed("unknown identity kind".into())),
                };
                let name = r.text()?.to_owned();
                let relays = read_strings(&mut r, MAX_RELAYS)?;
                let founder = read_member(&mut r)?;
                let recovery = if r.null() {
                    None
                } else {
                    Some(PublicKey::from_bytes(r.bytes()?)?)
                };
                let anchor = read_anchor(&mut r)?;
                (
                    7,
                    Op::Genesis {
                        kind,
                        name,
                        relays,
                        founder,
                        recovery,
                        anchor,
                    },
                )
            }
            1 => {
                let invitation = Invitation::read(&mut r)?;
                let member = read_member(&mut r)?;
                let anchor = read_anchor(&mut r)?;
                (
                    4,
                    Op::Request {
                        invitation,
                        member,
                        anchor,
                    },
                )
            }
            2 => (2, Op::Approve { request: r.link()? }),
            3 => (
                2,
                Op::Remove {
                    member: r.text()?.to_owned(),
                },
            ),
            4 => {
                let member = r.text()?.to_owned();
                let devices = read_devices(&mut r)?;
                let anchor = read_anchor(&mut r)?.ok_or_else(|| {
                    IdentityError::Malformed("a device list needs its anchor".into())
                })?;
                (
                    4,
                    Op::SetDevices {
                        member,
                        devices,
                        anchor,
                    },
                )
            }
            5 => {
                let device = r.text()?.to_owned();
                let signing = PublicKey::from_bytes(r.bytes()?)?;
                let agreement = PublicKey::from_bytes(r.bytes()?)?;
                let proof = fixed(r.bytes()?)?;
                (
                    5,
                    Op::Rotate {
                        device,
                        signing,
                        agreement,
                        proof,
                    },
                )
            }
            6 => {
                let epoch = fixed(r.bytes()?)?;
                let commitment = fixed(r.bytes()?)?;
                let count = r.array()?;
                let mut keys = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    expect_array(&mut r, 2)?;
                    let device = r.text()?.to_owned();
                    let sealed = r.bytes()?.to_vec();
                    keys.push(SealedKey { device, sealed });
                }
                (
                    4,
                    Op::Epoch {
                        epoch,
                        commitment,
                        keys,
                    },
                )
            }
            7 => (
                2,
                Op::Relays {
                    relays: read_strings(&mut r, MAX_RELAYS)?,
                },
            ),
            8 => {
                let rekey_every = if r.null() { None } else { Some(r.uint()?) };
                let keep_epochs = if r.null() {
                    None
                } else {
                    Some(
                        u32::try_from(r.uint()?)
                            .map_err(|_| IdentityError::Malformed("epochs to keep".into()))?,
                    )
                };
                (
                    3,
                    Op::Policy {
                        policy: Policy {
                            rekey_every,
                            keep_epochs,
                        },
                    },
                )
            }
            9 => (2, Op::DefaultChain { chain: r.link()? }),
            10 => {
                let remove = read_strings(&mut r, MAX_DEVICES)?;
                let mut devices = read_devices(&mut r)?;
                let device = match (devices.pop(), devices.is_empty()) {
                    (Some(device), true) => device,
                    _ => {
                        return Err(IdentityError::Malformed(
                            "a recovery enrols one device".into(),
                        ))
                    }
                };
                let proof = fixed(r.bytes()?)?;
                let next = PublicKey::from_bytes(r.bytes()?)?;
                (
                    5,
                    Op::Recover {
                        remove,
                        device,
                        proof,
                        next,
                    },
                )
            }
            other => return Err(IdentityError::Malformed(format!("unknown op {other}"))),
        };
        if len != expected || !r.is_empty() {
            return Err(IdentityError::Malformed("wrong op length".into()));
        }
        Ok(op)
    }
}

fn role_code(role: Role) -> u64 {
    match role {
        Role::Admin => 0,
        Role::Member => 1,
    }
}

fn role_from(code: u64) -> Result<Role, IdentityError> {
    match code {
        0 => Ok(Role::Admin),
        1 => Ok(Role::Member),
        _ => Err(IdentityError::Malformed("unknown role".into())),
    }
}

fn expect_array(r: &mut Reader<'_>, len: usize) -> Result<(), IdentityError> {
    if r.array()? == len {
        Ok(())
    } else {
        Err(IdentityError::Malformed(format!("expected {len} items")))
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], IdentityError> {
    bytes
        .try_into()
        .map_err(|_| IdentityError::Malformed(format!("expected {N} bytes")))
}

fn write_strings(w: &mut Writer, items: &[String]) {
    w.array(items.len());
    for item in items {
        w.text(item);
    }
}

fn read_strings(r: &mut Reader<'_>, max: usize) -> Result<Vec<String>, IdentityError> {
    let len = r.array()?;
    if len > max {
        return Err(IdentityError::Malformed(format!("more than {max} items")));
    }
    (0..len).map(|_| Ok(r.text()?.to_owned())).collect()
}

fn write_devices(w: &mut Writer, devices: &[DeviceEntry]) {
    w.array(devices.len());
    for device in devices {
        w.array(3);
        w.text(&device.did);
        w.bytes(&device.signing.to_bytes());
        w.bytes(&device.agreement.to_bytes());
    }
}

fn read_devices(r: &mut Reader<'_>) -> Result<Vec<DeviceEntry>, IdentityError> {
    let len = r.array()?;
    if len == 0 || len > MAX_DEVICES {
        return Err(IdentityError::Malformed(format!(
            "a member lists 1 to {MAX_DEVICES} devices"
        )));
    }
    let mut devices = Vec::with_capacity(len);
    for _ in 0..len {
        expect_array(r, 3)?;
        let did = r.text()?.to_owned();
        let signing = PublicKey::from_bytes(r.bytes()?)?;
        let agreement = PublicKey::from_bytes(r.bytes()?)?;
        devices.push(DeviceEntry {
            did,
            signing,
            agreement,
        });
    }
    Ok(devices)
}

fn write_anchor(w: &mut Writer, anchor: Option<&PersonAnchor>) {
    let Some(anchor) = anchor else {
        w.null();
        return;
    };
    w.array(2);
    w.array(anchor.leaves.len());
    for leaf in &anchor.leaves {
        w.link(leaf);
    }
    w.uint(anchor.blocks);
}

fn read_anchor(r: &mut Reader<'_>) -> Result<Option<PersonAnchor>, IdentityError> {
    if r.null() {
        return Ok(None);
    }
    expect_array(r, 2)?;
    let count = r.array()?;
    if count == 0 || count > MAX_PARENTS {
        return Err(IdentityError::Malformed(format!(
            "an anchor names 1 to {MAX_PARENTS} blocks"
        )));
    }
    let mut leaves = Vec::with_capacity(count);
    for _ in 0..count {
        leaves.push(r.link()?);
    }
    if leaves.windows(2).any(|w| w[0] >= w[1]) {
        return Err(IdentityError::Malformed(
            "an anchor's blocks are sorted and unique".into(),
        ));
    }
    let blocks = r.uint()?;
    Ok(Some(PersonAnchor { leaves, blocks }))
}

fn write_member(w: &mut Writer, member: &MemberEntry) {
    w.array(2);
    w.text(&member.did);
    write_devices(w, &member.devices);
}

fn read_member(r: &mut Reader<'_>) -> Result<MemberEntry, IdentityError> {
    expect_array(r, 2)?;
    let did = r.text()?.to_owned();
    let devices = read_devices(r)?;
    Ok(MemberEntry { did, devices })
}

impl From<BlockError> for IdentityError {
    fn from(e: BlockError) -> Self {
        IdentityError::Malformed(e.to_string())
    }
}

impl From<CborError> for IdentityError {
    fn from(e: CborError) -> Self {
        IdentityError::Malformed(e.to_string())
    }
}
