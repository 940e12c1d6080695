//! Identity: device keys and how they are kept.
//!
//! This is the key layer under the coming DID documents (`did:endra:<chain-cid>`, see the
//! design's §3). It is sans-IO and pure Rust, the same natively and in the browser; every
//! random value comes from an RNG passed in.
//!
//! - [`keys`]: algorithm-tagged [`PublicKey`]s; Ed25519 signing with domain separation
//!   ([`SigningKeyPair`], [`verify`]); the hybrid X25519 + ML-KEM-768 KEM
//!   ([`AgreementKeyPair`], [`encapsulate`]) so that recorded traffic stays safe against a
//!   future quantum adversary; [`seal`]ing a message (an epoch key, typically) to a device; and
//!   symmetric [`EpochKey`]s for group content.
//! - [`keystore`]: private keys at rest, encrypted under an Argon2id passphrase key.

pub mod keys;
pub mod keystore;

pub use keys::{
    encapsulate, seal, verify, AgreementKeyPair, Algorithm, Encapsulation, EpochKey, KeyError,
    PublicKey, SharedSecret, SigningContext, SigningKeyPair,
};
pub use keystore::{KdfFloor, KdfParams, Keystore, KeystoreError};
