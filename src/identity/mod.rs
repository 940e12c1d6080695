//! Identity: DIDs for devices, people and groups, backed by Walytis chains.
//!
//! Sans-IO and pure Rust, the same natively and in the browser; every random value comes
//! from an RNG passed in, every time from the caller.
//!
//! - [`keys`]: algorithm-tagged [`PublicKey`]s; Ed25519 signing with domain separation; the
//!   hybrid X25519 + ML-KEM-768 KEM so that recorded traffic stays safe against a future
//!   quantum adversary; [`seal`]ing an epoch key to a device; symmetric [`EpochKey`]s.
//! - [`keystore`]: private keys at rest, encrypted under an Argon2id passphrase key.
//! - [`recovery`]: a person's account [`RecoveryKey`], kept offline by the user.
//! - [`device`]: a device's own key pairs ([`DeviceKeys`]) and its `did:key`.
//! - [`ops`]: what identity-chain blocks say: genesis, join request and approval, removal,
//!   device lists, key rotation, epoch keys, relays; one-time expiring [`Invitation`]s.
//! - [`state`]: the [`IdentityState`] every peer derives alike from the chain, with strong
//!   removal (a removed device's concurrent blocks are dropped too).
//! - [`rules`]: the chain rules every replica, the relay included, opens chains with; the
//!   identity rule ([`IdentityChains`]) checks before storing a block of an identity chain
//!   that the block's own history authorises its author.
//! - [`document`](mod@document): `did:endra:<chain-id>` and its W3C DID document.
//! - [`handle`]: [`Identity`], one device's read-write view of an identity.
//! - [`session`]: authenticated, encrypted sessions between two persons' devices: a
//!   three-message handshake in which each proves its DID with a key its current document
//!   lists, then ChaCha20-Poly1305 frames ([`Initiator`], [`Responder`], [`Session`]).

mod admission;
pub mod bound;
pub mod device;
pub mod document;
pub mod handle;
pub mod keys;
pub mod keystore;
pub mod ops;
pub mod recovery;
pub mod session;
pub mod state;

pub use admission::{rules, IdentityChains};
pub use bound::BoundChain;
pub use device::DeviceKeys;
pub use document::{device_did, document, identity_did, parse_identity_did};
pub use handle::{Founding, Identity};
pub use keys::{
    encapsulate, seal, verify, AgreementKeyPair, Algorithm, Encapsulation, EpochKey, KeyError,
    PublicKey, SharedSecret, SigningContext, SigningKeyPair,
};
pub use keystore::{KdfFloor, KdfParams, Keystore, KeystoreError};
pub use ops::{
    DeviceEntry, EpochId, Invitation, Kind, MemberEntry, Op, PersonAnchor, Policy, Role,
    IDENTITY_TOPIC,
};
pub use recovery::RecoveryKey;
pub use session::{
    Directory, Initiator, Local, PeerIdentity, ReplayGuard, Responder, Session, SessionError,
};
pub use state::{Change, ChangeRecord, IdentityState, Member, PendingRequest, Rejection};

use crate::walytis::ChainError;

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// An op, a sealed key bundle or a data block does not parse.
    #[error("malformed: {0}")]
    Malformed(String),
    /// An invitation code does not parse or does not fit.
    #[error("invalid invitation: {0}")]
    InvalidInvitation(&'static str),
    /// The chain is not an identity chain.
    #[error("not an identity chain: {0}")]
    NotAnIdentity(String),
    /// A recovery code does not parse (see [`RecoveryKey::from_code`]).
    #[error("invalid recovery key: {0}")]
    InvalidRecoveryKey(&'static str),
    /// A string is not a `did:endra:` DID.
    #[error("not a did:endra DID: {0}")]
    InvalidDid(String),
    /// The chain is not bound to this identity (see [`BoundChain`]).
    #[error("the chain is not bound to {0}")]
    NotBound(String),
    /// This device is not (or no longer) a device of the identity.
    #[error("this device is not a current device of the identity")]
    NotAMember,
    /// No epoch key sealed to this device can be opened (never shared, or removed).
    #[error("no epoch key for this device")]
    NoEpochKey,
    /// The only copies of an epoch key sealed to this device open to another key than the
    /// one the epoch commits to: a member tried to hand this device a key of its own.
    #[error("the epoch key sealed to this device is not the key its epoch commits to")]
    ForgedEpochKey,
    /// The identity's policy discarded the epoch the data was written in.
    #[error("the policy discarded this epoch's key")]
    EpochDiscarded,
    /// The op would be rejected by every peer.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// Key material or a ciphertext is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The keystore could not be opened.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The chain or its store failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
}
