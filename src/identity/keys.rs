//! Device key material: algorithm-tagged public keys, Ed25519 signing, the hybrid
//! X25519 + ML-KEM-768 KEM, sealing to a public key, and epoch keys.
//!
//! # Encodings
//!
//! Every key and every encapsulation starts with a tag, an unsigned varint in the multiformats
//! style (LEB128, minimal, at most 9 bytes), that names its algorithm and kind; the rest is of
//! a fixed length set by the tag:
//!
//! | tag | what | bytes after the tag |
//! | --- | --- | --- |
//! | `0xed` (multicodec `ed25519-pub`) | [`PublicKey::Ed25519`] | 32: the compressed point |
//! | `0x1300` (multicodec `ed25519-priv`) | [`SigningKeyPair`] secret | 32: the seed |
//! | [`HYBRID_PUBLIC_TAG`] | [`PublicKey::HybridX25519MlKem768`] | 32 X25519 + 1184 ML-KEM-768 encapsulation key |
//! | [`HYBRID_SECRET_TAG`] | [`AgreementKeyPair`] secret | 32 X25519 scalar + 64 ML-KEM-768 seed `d ‖ z` |
//! | [`HYBRID_ENCAPSULATION_TAG`] | [`Encapsulation`] | 32 ephemeral X25519 + 1088 ML-KEM-768 ciphertext |
//!
//! The hybrid tags lie in multicodec's private-use range (`0x300000..=0x3fffff`): no public
//! code exists for this combination, and a private one never collides with a registered one.
//!
//! # The hybrid KEM
//!
//! [`encapsulate`] runs X25519 (ephemeral-static) and ML-KEM-768 against the recipient's two
//! keys and combines the two shared secrets, in the manner of X-Wing, with
//!
//! ```text
//! HKDF-SHA256(salt = "", ikm = ss_x25519 ‖ ss_mlkem,
//!             info = "endra/identity/kem/x25519-mlkem768/v1" ‖ 0x00
//!                    ‖ ephemeral_x25519_public ‖ mlkem_ciphertext ‖ recipient.to_bytes())
//! ```
//!
//! Every piece of `info` has a fixed length, so the concatenation is unambiguous. Binding the
//! ephemeral key and the ciphertext makes the combined secret depend on the whole transcript
//! (as X-Wing binds `ct_X`), and binding the recipient's full public key ties it to the one
//! key pair it was made for. The result stays secret while either X25519 or ML-KEM-768 does.
//!
//! # Sealing
//!
//! [`seal`] is HPKE's base mode in spirit: anonymous to the recipient (sender authentication
//! is the signature layer's job), one-shot, with caller AAD. Format:
//!
//! ```text
//! 0x01 (version) ‖ Encapsulation::to_bytes() ‖ nonce (24) ‖ XChaCha20-Poly1305 ciphertext+tag
//! ```
//!
//! The AEAD key is `HKDF-SHA256(ikm = kem_secret, info = "endra/identity/seal/v1" ‖ 0x00)`,
//! and the AEAD's associated data is everything before the ciphertext, then the caller's AAD.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use ml_kem::kem::{Decapsulate, DecapsulationKey, Encapsulate, EncapsulationKey};
use ml_kem::{Ciphertext, EncodedSizeUser, KemCore, MlKem768, MlKem768Params, B32};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Multicodec `ed25519-pub`.
pub const ED25519_PUBLIC_TAG: u64 = 0xed;
/// Multicodec `ed25519-priv`.
pub const ED25519_SECRET_TAG: u64 = 0x1300;
/// Private-use tag of a [`PublicKey::HybridX25519MlKem768`].
pub const HYBRID_PUBLIC_TAG: u64 = 0x30_0768;
/// Private-use tag of an [`AgreementKeyPair`]'s secret bytes.
pub const HYBRID_SECRET_TAG: u64 = 0x30_1768;
/// Private-use tag of an [`Encapsulation`] to a hybrid X25519 + ML-KEM-768 key.
pub const HYBRID_ENCAPSULATION_TAG: u64 = 0x30_2768;

/// Length of an Ed25519 public key or seed.
pub const ED25519_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of an X25519 public key or scalar.
pub const X25519_KEY_LEN: usize = 32;
/// Length of an ML-KEM-768 encapsulation (public) key.
pub const ML_KEM_768_PUBLIC_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const ML_KEM_768_CIPHERTEXT_LEN: usize = 1088;
/// Length of an ML-KEM-768 seed `d ‖ z` (FIPS 203 key generation input).
pub const ML_KEM_768_SEED_LEN: usize = 64;
/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Version byte of [`seal`]'s output.
pub const SEALED_VERSION: u8 = 1;
/// Version byte of [`EpochKey::encrypt`]'s output.
pub const EPOCH_CIPHERTEXT_VERSION: u8 = 1;

/// Longest unsigned varint the multiformats spec allows (63 bits of payload).
const MAX_VARINT_LEN: usize = 9;
const KEM_LABEL: &[u8] = b"endra/identity/kem/x25519-mlkem768/v1\0";
const SEAL_LABEL: &[u8] = b"endra/identity/seal/v1\0";
/// HKDF label of an [`EpochKey::derive`]d key.
const DERIVE_LABEL: &[u8] = b"endra/identity/derived-key/v1\0";
/// HKDF label of an [`EpochKey::commitment`].
const COMMITMENT_LABEL: &[u8] = b"endra/identity/key-commitment/v1\0";
/// A clamped scalar (any would do) used to test X25519 public keys for small order.
const ORDER_PROBE: [u8; 32] = [0x42; 32];

/// Why key material, a signature or a ciphertext was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes end inside the algorithm tag.
    #[error("key bytes end inside the algorithm tag")]
    Truncated,
    /// The tag is not a minimal unsigned varint of at most 9 bytes.
    #[error("malformed algorithm tag")]
    MalformedTag,
    /// The tag names no algorithm known for this kind of object.
    #[error("unknown algorithm tag {tag:#x}")]
    UnknownAlgorithm {
        /// The tag read.
        tag: u64,
    },
    /// The bytes after the tag (or a signature, or a ciphertext) have the wrong length.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// The length the algorithm needs (for ciphertexts: the least it needs).
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// The bytes are not a valid key of their algorithm: an Ed25519 point that does not
    /// decompress or has small order, an X25519 point of small order, an ML-KEM key whose
    /// coefficients are not reduced modulo q (FIPS 203's input check).
    #[error("not a valid {algorithm} key")]
    InvalidPoint {
        /// The algorithm.
        algorithm: Algorithm,
    },
    /// A key of one algorithm was given where another is needed (say, sealing to an Ed25519
    /// key).
    #[error("expected a {expected} key, got a {actual} key")]
    WrongAlgorithm {
        /// The algorithm needed.
        expected: Algorithm,
        /// The algorithm given.
        actual: Algorithm,
    },
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Authenticated decryption failed: wrong key (wrong recipient, rotated key), changed
    /// ciphertext or changed associated data. Deliberately says no more.
    #[error("decryption failed")]
    DecryptionFailed,
    /// A ciphertext with a version byte this build does not know.
    #[error("unsupported ciphertext version {version}")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// The plaintext is beyond what XChaCha20-Poly1305 can encrypt (256 GiB).
    #[error("plaintext too long to encrypt")]
    PlaintextTooLong,
    /// A primitive failed where its inputs rule failure out (HKDF output length, ML-KEM's
    /// infallible operations). Not expected to happen.
    #[error("cryptographic backend failure")]
    Backend,
}

/// The algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 signatures.
    Ed25519,
    /// Hybrid X25519 + ML-KEM-768 key encapsulation.
    HybridX25519MlKem768,
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::HybridX25519MlKem768 => "X25519+ML-KEM-768",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Varint tags

/// Appends `value` as a minimal unsigned LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Length of `value` as an unsigned varint.
const fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Reads a minimal unsigned varint of at most [`MAX_VARINT_LEN`] bytes; returns it and the rest.
fn take_varint(bytes: &[u8]) -> Result<(u64, &[u8]), KeyError> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if i >= MAX_VARINT_LEN {
            return Err(KeyError::MalformedTag);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of zero after others is an over-long spelling of a smaller number.
            if byte == 0 && i > 0 {
                return Err(KeyError::MalformedTag);
            }
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err(KeyError::Truncated)
}

fn tagged(tag: u64, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len + 4);
    put_varint(&mut out, tag);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

fn expect_len(body: &[u8], expected: usize) -> Result<(), KeyError> {
    if body.len() == expected {
        Ok(())
    } else {
        Err(KeyError::WrongLength {
            expected,
            actual: body.len(),
        })
    }
}

fn array32(bytes: &[u8]) -> Result<[u8; 32], KeyError> {
    bytes.try_into().map_err(|_| KeyError::WrongLength {
        expected: 32,
        actual: bytes.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// Public keys

/// An algorithm-tagged public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PublicKey {
    /// An Ed25519 verifying key (compressed Edwards point).
    Ed25519([u8; ED25519_KEY_LEN]),
    /// A hybrid key-encapsulation key.
    HybridX25519MlKem768 {
        /// The X25519 public key (Montgomery u-coordinate).
        x25519: [u8; X25519_KEY_LEN],
        /// The ML-KEM-768 encapsulation key, [`ML_KEM_768_PUBLIC_LEN`] bytes.
        ml_kem: Box<[u8]>,
    },
}

impl PublicKey {
    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
            PublicKey::HybridX25519MlKem768 { .. } => Algorithm::HybridX25519MlKem768,
        }
    }

    /// The canonical encoding: the varint tag, then the key bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(key) => tagged(ED25519_PUBLIC_TAG, &[key]),
            PublicKey::HybridX25519MlKem768 { x25519, ml_kem } => {
                tagged(HYBRID_PUBLIC_TAG, &[x25519, ml_kem])
            }
        }
    }

    /// Parses [`PublicKey::to_bytes`]'s encoding and checks that the key is valid for its
    /// algorithm (see [`KeyError::InvalidPoint`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (tag, body) = take_varint(bytes)?;
        match tag {
            ED25519_PUBLIC_TAG => {
                let key = array32(body)?;
                ed25519_verifying_key(&key)?;
                Ok(PublicKey::Ed25519(key))
            }
            HYBRID_PUBLIC_TAG => {
                expect_len(body, X25519_KEY_LEN + ML_KEM_768_PUBLIC_LEN)?;
                let (x, m) = body.split_at(X25519_KEY_LEN);
                let x25519 = array32(x)?;
                check_x25519_public(&x25519)?;
                ml_kem_public(m)?;
                Ok(PublicKey::HybridX25519MlKem768 {
                    x25519,
                    ml_kem: m.into(),
                })
            }
            tag => Err(KeyError::UnknownAlgorithm { tag }),
        }
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first: &[u8] = match self {
            PublicKey::Ed25519(key) => key,
            PublicKey::HybridX25519MlKem768 { x25519, .. } => x25519,
        };
        write!(f, "PublicKey::{:?}(", self.algorithm())?;
        for byte in &first[..8] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…)")
    }
}

fn ed25519_verifying_key(key: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let invalid = KeyError::InvalidPoint {
        algorithm: Algorithm::Ed25519,
    };
    let key = VerifyingKey::from_bytes(key).map_err(|_| invalid.clone())?;
    if key.is_weak() {
        return Err(invalid);
    }
    Ok(key)
}

/// Rejects X25519 public keys of small order (on the curve or its twist): a clamped scalar is
/// a multiple of the cofactor, so the product is the identity exactly for those points.
fn check_x25519_public(key: &[u8; 32]) -> Result<(), KeyError> {
    let probe = x25519_dalek::StaticSecret::from(ORDER_PROBE);
    if probe
        .diffie_hellman(&x25519_dalek::PublicKey::from(*key))
        .was_contributory()
    {
        Ok(())
    } else {
        Err(KeyError::InvalidPoint {
            algorithm: Algorithm::HybridX25519MlKem768,
        })
    }
}

/// Parses an ML-KEM-768 encapsulation key with FIPS 203's modulus check: decoding reduces
/// each coefficient modulo q, so a key survives re-encoding unchanged exactly when it passes.
fn ml_kem_public(bytes: &[u8]) -> Result<EncapsulationKey<MlKem768Params>, KeyError> {
    let encoded =
        ml_kem::Encoded::<EncapsulationKey<MlKem768Params>>::try_from(bytes).map_err(|_| {
            KeyError::WrongLength {
                expected: ML_KEM_768_PUBLIC_LEN,
                actual: bytes.len(),
            }
        })?;
    let key = EncapsulationKey::<MlKem768Params>::from_bytes(&encoded);
    if key.as_bytes() != encoded {
        return Err(KeyError::InvalidPoint {
            algorithm: Algorithm::HybridX25519MlKem768,
        });
    }
    Ok(key)
}

// ---------------------------------------------------------------------------------------------
// Signing

/// A domain-separation label for signatures: what the signed bytes are for.
///
/// The signed message is `label ‖ 0x00 ‖ msg` (the same shape as Walytis block signatures,
/// `"endra/walytis/block/v1\0" ‖ block`). Labels are compile-time strings without NUL bytes,
/// so no (label, message) pair can be read as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigningContext(&'static str);

impl SigningContext {
    /// A label such as `"endra/identity/device-add/v1"`.
    ///
    /// # Panics
    ///
    /// If `label` is empty or contains a NUL byte; use it in a `const` so this is a compile
    /// error rather than a run-time one.
    pub const fn new(label: &'static str) -> Self {
        let bytes = label.as_bytes();
        assert!(!bytes.is_empty(), "signing context is empty");
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i] != 0, "signing context contains a NUL byte");
            i += 1;
        }
        SigningContext(label)
    }

    /// The label.
    pub fn label(&self) -> &'static str {
        self.0
    }

    fn message(&self, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 1 + msg.len());
        out.extend_from_slice(self.0.as_bytes());
        out.push(0);
        out.extend_from_slice(msg);
        out
    }
}

/// An Ed25519 key pair for signing. The secret is zeroized on drop.
pub struct SigningKeyPair(SigningKey);

impl SigningKeyPair {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        SigningKeyPair(SigningKey::generate(rng))
    }

    /// The key pair of a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKeyPair(SigningKey::from_bytes(seed))
    }

    /// The tagged public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::Ed25519(self.0.verifying_key().to_bytes())
    }

    /// The underlying `ed25519-dalek` key, for layers (Walytis blocks) that sign with it.
    pub fn as_dalek(&self) -> &SigningKey {
        &self.0
    }

    /// Signs `context.label() ‖ 0x00 ‖ msg`.
    pub fn sign(&self, context: SigningContext, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(&context.message(msg)).to_bytes()
    }

    /// The secret as tagged bytes (`ed25519-priv` tag, then the 32-byte seed).
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(tagged(ED25519_SECRET_TAG, &[self.0.as_bytes()]))
    }

    /// Parses [`SigningKeyPair::to_secret_bytes`]'s encoding.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (tag, body) = take_varint(bytes)?;
        if tag != ED25519_SECRET_TAG {
            return Err(KeyError::UnknownAlgorithm { tag });
        }
        let seed = Zeroizing::new(array32(body)?);
        Ok(SigningKeyPair(SigningKey::from_bytes(&seed)))
    }
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SigningKeyPair")
            .field(&self.public())
            .finish()
    }
}

/// Checks `sig` over `context.label() ‖ 0x00 ‖ msg` with `verify_strict` (no small-order keys
/// or signature points, canonical `S`).
pub fn verify(
    public: &PublicKey,
    context: SigningContext,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), KeyError> {
    let PublicKey::Ed25519(key) = public else {
        return Err(KeyError::WrongAlgorithm {
            expected: Algorithm::Ed25519,
            actual: public.algorithm(),
        });
    };
    let key = ed25519_verifying_key(key)?;
    let sig: &[u8; SIGNATURE_LEN] = sig.try_into().map_err(|_| KeyError::WrongLength {
        expected: SIGNATURE_LEN,
        actual: sig.len(),
    })?;
    key.verify_strict(&context.message(msg), &Signature::from_bytes(sig))
        .map_err(|_| KeyError::BadSignature)
}

// ---------------------------------------------------------------------------------------------
// Key agreement

/// A 32-byte secret shared through the hybrid KEM. Zeroized on drop; `Debug` hides it.
pub struct SharedSecret(Zeroizing<[u8; 32]>);

impl SharedSecret {
    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl ZeroizeOnDrop for SharedSecret {}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(…)")
    }
}

/// What the sender of a hybrid encapsulation transmits: an ephemeral X25519 public key and an
/// ML-KEM-768 ciphertext.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Encapsulation {
    x25519: [u8; X25519_KEY_LEN],
    ml_kem: Box<[u8]>,
}

impl Encapsulation {
    /// Length of [`Encapsulation::to_bytes`]'s output.
    pub const ENCODED_LEN: usize =
        varint_len(HYBRID_ENCAPSULATION_TAG) + X25519_KEY_LEN + ML_KEM_768_CIPHERTEXT_LEN;

    /// The ephemeral X25519 public key.
    pub fn ephemeral_x25519(&self) -> &[u8; X25519_KEY_LEN] {
        &self.x25519
    }

    /// The ML-KEM-768 ciphertext.
    pub fn ml_kem_ciphertext(&self) -> &[u8] {
        &self.ml_kem
    }

    /// The encoding: [`HYBRID_ENCAPSULATION_TAG`], the ephemeral key, the ciphertext.
    pub fn to_bytes(&self) -> Vec<u8> {
        tagged(HYBRID_ENCAPSULATION_TAG, &[&self.x25519, &self.ml_kem])
    }

    /// Parses [`Encapsulation::to_bytes`]'s encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (tag, body) = take_varint(bytes)?;
        if tag != HYBRID_ENCAPSULATION_TAG {
            return Err(KeyError::UnknownAlgorithm { tag });
        }
        expect_len(body, X25519_KEY_LEN + ML_KEM_768_CIPHERTEXT_LEN)?;
        let (x, m) = body.split_at(X25519_KEY_LEN);
        Ok(Encapsulation {
            x25519: array32(x)?,
            ml_kem: m.into(),
        })
    }
}

impl std::fmt::Debug for Encapsulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encapsulation(")?;
        for byte in &self.x25519[..8] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…)")
    }
}

/// HKDF-SHA256 with an empty salt, 32 bytes out, `info` the concatenation of `info`.
fn hkdf32(ikm: &[u8], info: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, ikm)
        .expand_multi_info(info, &mut okm[..])
        .map_err(|_| KeyError::Backend)?;
    Ok(okm)
}

/// The X-Wing-like combiner described in the module docs.
fn combine(
    x25519_ss: &[u8; 32],
    ml_kem_ss: &[u8],
    encapsulation: &Encapsulation,
    recipient: &[u8],
) -> Result<SharedSecret, KeyError> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(x25519_ss);
    ikm[32..].copy_from_slice(ml_kem_ss);
    let okm = hkdf32(
        &ikm[..],
        &[
            KEM_LABEL,
            &encapsulation.x25519,
            &encapsulation.ml_kem,
            recipient,
        ],
    )?;
    Ok(SharedSecret(okm))
}

/// Encapsulates a fresh shared secret to `recipient`, a hybrid X25519 + ML-KEM-768 key.
pub fn encapsulate(
    recipient: &PublicKey,
    rng: &mut impl CryptoRngCore,
) -> Result<(Encapsulation, SharedSecret), KeyError> {
    let PublicKey::HybridX25519MlKem768 { x25519, ml_kem } = recipient else {
        return Err(KeyError::WrongAlgorithm {
            expected: Algorithm::HybridX25519MlKem768,
            actual: recipient.algorithm(),
        });
    };
    let ek = ml_kem_public(ml_kem)?;

    let ephemeral = x25519_dalek::EphemeralSecret::random_from_rng(&mut *rng);
    let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral);
    let x25519_ss = ephemeral.diffie_hellman(&x25519_dalek::PublicKey::from(*x25519));
    if !x25519_ss.was_contributory() {
        return Err(KeyError::InvalidPoint {
            algorithm: Algorithm::HybridX25519MlKem768,
        });
    }

    let (ciphertext, mut ml_kem_ss) = ek.encapsulate(rng).map_err(|()| KeyError::Backend)?;
    let encapsulation = Encapsulation {
        x25519: ephemeral_public.to_bytes(),
        ml_kem: ciphertext.as_slice().into(),
    };
    let secret = combine(
        x25519_ss.as_bytes(),
        &ml_kem_ss,
        &encapsulation,
        &recipient.to_bytes(),
    );
    ml_kem_ss.as_mut_slice().zeroize();
    Ok((encapsulation, secret?))
}

/// A hybrid X25519 + ML-KEM-768 key pair for receiving encapsulated secrets and sealed
/// messages. Secrets are zeroized on drop.
pub struct AgreementKeyPair {
    x25519: x25519_dalek::StaticSecret,
    /// `d ‖ z`, FIPS 203's key generation seed, from which `ml_kem` is derived.
    ml_kem_seed: Zeroizing<[u8; ML_KEM_768_SEED_LEN]>,
    ml_kem: DecapsulationKey<MlKem768Params>,
    public: PublicKey,
}

impl AgreementKeyPair {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut x25519 = Zeroizing::new([0u8; X25519_KEY_LEN]);
        rng.fill_bytes(&mut x25519[..]);
        let mut seed = Zeroizing::new([0u8; ML_KEM_768_SEED_LEN]);
        rng.fill_bytes(&mut seed[..]);
        Self::from_parts(&x25519, seed)
    }

    fn from_parts(
        x25519: &[u8; X25519_KEY_LEN],
        ml_kem_seed: Zeroizing<[u8; ML_KEM_768_SEED_LEN]>,
    ) -> Self {
        let x25519 = x25519_dalek::StaticSecret::from(*x25519);
        let mut d = Zeroizing::new([0u8; 32]);
        let mut z = Zeroizing::new([0u8; 32]);
        d.copy_from_slice(&ml_kem_seed[..32]);
        z.copy_from_slice(&ml_kem_seed[32..]);
        let mut d = B32::from(*d);
        let mut z = B32::from(*z);
        let (ml_kem, ek) = MlKem768::generate_deterministic(&d, &z);
        d.as_mut_slice().zeroize();
        z.as_mut_slice().zeroize();
        let public = PublicKey::HybridX25519MlKem768 {
            x25519: x25519_dalek::PublicKey::from(&x25519).to_bytes(),
            ml_kem: ek.as_bytes().as_slice().into(),
        };
        AgreementKeyPair {
            x25519,
            ml_kem_seed,
            ml_kem,
            public,
        }
    }

    /// The tagged public key ([`PublicKey::HybridX25519MlKem768`]).
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// Recovers the secret [`encapsulate`] made for this key pair.
    ///
    /// ML-KEM rejects implicitly: a changed ciphertext yields an unrelated secret rather than
    /// an error, so tampering shows up when that secret fails to decrypt something.
    pub fn decapsulate(&self, encapsulation: &Encapsulation) -> Result<SharedSecret, KeyError> {
        let x25519_ss = self
            .x25519
            .diffie_hellman(&x25519_dalek::PublicKey::from(encapsulation.x25519));
        if !x25519_ss.was_contributory() {
            return Err(KeyError::InvalidPoint {
                algorithm: Algorithm::HybridX25519MlKem768,
            });
        }
        let ciphertext =
            Ciphertext::<MlKem768>::try_from(&encapsulation.ml_kem[..]).map_err(|_| {
                KeyError::WrongLength {
                    expected: ML_KEM_768_CIPHERTEXT_LEN,
                    actual: encapsulation.ml_kem.len(),
                }
            })?;
        let mut ml_kem_ss = self
            .ml_kem
            .decapsulate(&ciphertext)
            .map_err(|()| KeyError::Backend)?;
        let secret = combine(
            x25519_ss.as_bytes(),
            &ml_kem_ss,
            encapsulation,
            &self.public.to_bytes(),
        );
        ml_kem_ss.as_mut_slice().zeroize();
        secret
    }

    /// Opens what [`seal`] sealed to this key pair's public key with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (&version, rest) = sealed.split_first().ok_or(KeyError::WrongLength {
            expected: SEALED_MIN_LEN,
            actual: 0,
        })?;
        if version != SEALED_VERSION {
            return Err(KeyError::UnsupportedVersion { version });
        }
        let (tag, after_tag) = take_varint(rest)?;
        if tag != HYBRID_ENCAPSULATION_TAG {
            return Err(KeyError::UnknownAlgorithm { tag });
        }
        let encapsulation_end =
            sealed.len() - after_tag.len() + X25519_KEY_LEN + ML_KEM_768_CIPHERTEXT_LEN;
        let header_len = encapsulation_end + NONCE_LEN;
        if sealed.len() < header_len + TAG_LEN {
            return Err(KeyError::WrongLength {
                expected: header_len + TAG_LEN,
                actual: sealed.len(),
            });
        }
        let encapsulation = Encapsulation::from_bytes(&sealed[1..encapsulation_end])?;
        let nonce = XNonce::from_slice(&sealed[encapsulation_end..header_len]);
        let secret = self.decapsulate(&encapsulation)?;
        let key = hkdf32(secret.as_bytes(), &[SEAL_LABEL])?;
        let aead_aad = [&sealed[..header_len], aad].concat();
        XChaCha20Poly1305::new((&*key).into())
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[header_len..],
                    aad: &aead_aad,
                },
            )
            .map_err(|_| KeyError::DecryptionFailed)
    }

    /// The secret as tagged bytes: [`HYBRID_SECRET_TAG`], the X25519 scalar, the ML-KEM-768
    /// seed `d ‖ z`. Keep them only encrypted (see [`crate::identity::keystore`]).
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(tagged(
            HYBRID_SECRET_TAG,
            &[self.x25519.as_bytes(), &self.ml_kem_seed[..]],
        ))
    }

    /// Parses [`AgreementKeyPair::to_secret_bytes`]'s encoding.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let (tag, body) = take_varint(bytes)?;
        if tag != HYBRID_SECRET_TAG {
            return Err(KeyError::UnknownAlgorithm { tag });
        }
        expect_len(body, X25519_KEY_LEN + ML_KEM_768_SEED_LEN)?;
        let (x, seed) = body.split_at(X25519_KEY_LEN);
        let x = Zeroizing::new(array32(x)?);
        let mut ml_kem_seed = Zeroizing::new([0u8; ML_KEM_768_SEED_LEN]);
        ml_kem_seed.copy_from_slice(seed);
        Ok(Self::from_parts(&x, ml_kem_seed))
    }
}

impl std::fmt::Debug for AgreementKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AgreementKeyPair")
            .field(&self.public)
            .finish()
    }
}

/// Shortest possible output of [`seal`] (empty plaintext).
pub const SEALED_MIN_LEN: usize = 1 + Encapsulation::ENCODED_LEN + NONCE_LEN + TAG_LEN;

/// Encrypts `plaintext` to `recipient` (a hybrid key) so only its key pair can
/// [`AgreementKeyPair::open`] it, with the same `aad`. Format in the module docs.
pub fn seal(
    recipient: &PublicKey,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, KeyError> {
    let (encapsulation, secret) = encapsulate(recipient, rng)?;
    let key = hkdf32(secret.as_bytes(), &[SEAL_LABEL])?;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);

    let mut out = Vec::with_capacity(SEALED_MIN_LEN + plaintext.len());
    out.push(SEALED_VERSION);
    out.extend_from_slice(&encapsulation.to_bytes());
    out.extend_from_slice(&nonce);
    let aead_aad = [&out[..], aad].concat();
    let ciphertext = XChaCha20Poly1305::new((&*key).into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aead_aad,
            },
        )
        .map_err(|_| KeyError::PlaintextTooLong)?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Epoch keys

/// A symmetric group key for one epoch (XChaCha20-Poly1305). Zeroized on drop.
///
/// Ciphertext format: `0x01 (version) ‖ nonce (24, random) ‖ ciphertext+tag`; the AEAD's
/// associated data is the version byte, then the caller's AAD.
pub struct EpochKey(Zeroizing<[u8; 32]>);

impl EpochKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *key);
        EpochKey(key)
    }

    /// A key from its bytes (say, just opened from a sealed message).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EpochKey(Zeroizing::new(bytes))
    }

    /// A key from a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        Ok(EpochKey(Zeroizing::new(array32(bytes)?)))
    }

    /// The key bytes (to [`seal`] them to each device).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key for one purpose derived from this one (HKDF-SHA256, the key as input keying
    /// material, `context` as info): what offchain content is sealed under, one per content.
    pub fn derive(&self, context: &[u8]) -> Result<EpochKey, KeyError> {
        Ok(EpochKey(hkdf32(&*self.0, &[DERIVE_LABEL, context])?))
    }

    /// A 32-byte commitment to this key within `context` (HKDF-SHA256 with the key as input
    /// keying material): binding, and revealing nothing of the key.
    pub fn commitment(&self, context: &[u8]) -> Result<[u8; 32], KeyError> {
        Ok(*hkdf32(&*self.0, &[COMMITMENT_LABEL, context])?)
    }

    /// Encrypts `plaintext` under this key with a random nonce.
    pub fn encrypt(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let aead_aad = [&[EPOCH_CIPHERTEXT_VERSION][..], aad].concat();
        let ciphertext = XChaCha20Poly1305::new((&*self.0).into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aead_aad,
                },
            )
            .map_err(|_| KeyError::PlaintextTooLong)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(EPOCH_CIPHERTEXT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts what [`EpochKey::encrypt`] produced with the same key and `aad`.
    pub fn decrypt(&self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (&version, rest) = ciphertext.split_first().ok_or(KeyError::WrongLength {
            expected: 1 + NONCE_LEN + TAG_LEN,
            actual: 0,
        })?;
        if version != EPOCH_CIPHERTEXT_VERSION {
            return Err(KeyError::UnsupportedVersion { version });
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::WrongLength {
                expected: 1 + NONCE_LEN + TAG_LEN,
                actual: ciphertext.len(),
            });
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let aead_aad = [&[version][..], aad].concat();
        XChaCha20Poly1305::new((&*self.0).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aead_aad,
                },
            )
            .map_err(|_| KeyError::DecryptionFailed)
    }
}

impl ZeroizeOnDrop for EpochKey {}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochKey(…)")
    }
}
