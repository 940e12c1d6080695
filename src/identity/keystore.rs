//! Private keys at rest: an opaque secret bundle encrypted under a key derived from the
//! user's passphrase with Argon2id.
//!
//! # Format (version 1)
//!
//! ```text
//! offset  len  field
//!      0    1  version = 0x01 (Argon2id v1.3, 32-byte key, XChaCha20-Poly1305)
//!      1    4  m_cost, KiB, big-endian
//!      5    4  t_cost (passes), big-endian
//!      9    4  p_cost (lanes), big-endian
//!     13   16  salt (random)
//!     29   24  nonce (random)
//!     53    …  ciphertext ‖ 16-byte tag
//! ```
//!
//! The whole 53-byte header is the AEAD's associated data, so changing a parameter (to make
//! the next guess cheaper, say) fails authentication just as a wrong passphrase does.
//!
//! # Parameters and the floor
//!
//! [`KdfParams::DEFAULT`] is OWASP's browser-friendly choice, m = 19 MiB, t = 2, p = 1.
//! Opening refuses blobs whose parameters are below a [`KdfFloor`] (so a blob rewritten with
//! weak parameters, or written by a careless client, is not silently accepted) or above fixed
//! ceilings (so a hostile blob cannot make us allocate gigabytes or spin for minutes).
//! [`Keystore::open`] uses [`KdfFloor::RECOMMENDED`], which admits every configuration OWASP
//! lists; tests and deliberate migrations call [`Keystore::open_with_floor`] with a lower floor
//! such as [`KdfFloor::NONE`].
//!
//! The passphrase is used as the UTF-8 bytes given: callers that accept input from different
//! keyboards or platforms should normalise it (NFC) first.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// Version byte of the current format.
pub const KEYSTORE_VERSION: u8 = 1;
/// Length of the salt.
pub const SALT_LEN: usize = 16;
/// Length of the header (the AEAD's associated data).
pub const HEADER_LEN: usize = 1 + 12 + SALT_LEN + NONCE_LEN;
/// Shortest valid sealed keystore: a header and a tag (an empty bundle).
pub const MIN_SEALED_LEN: usize = HEADER_LEN + TAG_LEN;
/// Largest `m_cost` accepted when opening: 1 GiB, in KiB.
pub const MAX_M_COST_KIB: u32 = 1 << 20;
/// Largest `t_cost` accepted when opening.
pub const MAX_T_COST: u32 = 64;
/// Largest `p_cost` accepted when opening.
pub const MAX_P_COST: u32 = 16;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a sealed keystore could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// Authentication failed: the passphrase is wrong, or the blob (header included) was
    /// changed. The two cannot be told apart.
    #[error("wrong passphrase or damaged keystore")]
    WrongPassphrase,
    /// The blob is too short to hold a header and a tag, or its parameters are ones Argon2
    /// itself refuses.
    #[error("keystore is corrupt")]
    Corrupt,
    /// A version byte this build does not know.
    #[error("unsupported keystore version {version}")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// The blob's parameters are below the floor asked for.
    #[error("key derivation parameters {params:?} are below the accepted floor")]
    WeakParams {
        /// The blob's parameters.
        params: KdfParams,
    },
    /// The blob's parameters exceed [`MAX_M_COST_KIB`], [`MAX_T_COST`] or [`MAX_P_COST`].
    #[error("key derivation parameters {params:?} exceed the accepted ceiling")]
    ExcessiveParams {
        /// The blob's parameters.
        params: KdfParams,
    },
    /// Sealing with parameters Argon2 refuses (zero passes or lanes, less than 8 KiB of
    /// memory per lane) or above the ceilings (which [`Keystore::open`] would refuse).
    #[error("invalid key derivation parameters {params:?}")]
    InvalidParams {
        /// The parameters given.
        params: KdfParams,
    },
    /// The bundle is beyond what XChaCha20-Poly1305 can encrypt.
    #[error("secret bundle too large")]
    TooLarge,
}

/// Argon2id cost parameters, stored in each sealed keystore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub m_cost_kib: u32,
    /// Passes over the memory.
    pub t_cost: u32,
    /// Lanes (parallelism; the computation is single-threaded here either way).
    pub p_cost: u32,
}

impl KdfParams {
    /// What new keys are sealed with: 64 MiB, 3 passes, 1 lane. Identity keys live for
    /// years on disks that can be stolen, so they get well above OWASP's floor for online
    /// passwords ([`KdfParams::ONLINE_FLOOR`]); the unlock it costs is measured in the
    /// identity benches, natively and in the browser.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// OWASP's smallest recommendation for online passwords (19 MiB, 2 passes), what keys
    /// were sealed with before 2026-12: such stores still open (the floor admits them) and
    /// are sealed again with [`KdfParams::DEFAULT`] at their next unlock.
    pub const ONLINE_FLOOR: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// Whether these parameters cost less than `other` in memory or passes.
    pub fn weaker_than(&self, other: &KdfParams) -> bool {
        self.m_cost_kib < other.m_cost_kib || self.t_cost < other.t_cost
    }

    /// The cheapest parameters Argon2 accepts (8 KiB, 1 pass). For tests only: a blob sealed
    /// with them opens only with [`KdfFloor::NONE`].
    pub const INSECURE_TEST: KdfParams = KdfParams {
        m_cost_kib: 8,
        t_cost: 1,
        p_cost: 1,
    };

    fn exceeds_ceiling(&self) -> bool {
        self.m_cost_kib > MAX_M_COST_KIB || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST
    }

    fn argon2(&self) -> Result<Argon2<'static>, KeystoreError> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| KeystoreError::InvalidParams { params: *self })?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::DEFAULT
    }
}

/// The least key-derivation work [`Keystore::open_with_floor`] accepts.
///
/// Argon2's cost against a guessing attacker grows with memory × passes, and OWASP's list of
/// equivalent settings (47 MiB × 1 … 7 MiB × 5) trades one for the other; so the floor is a
/// memory minimum plus a minimum product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfFloor {
    /// Least `m_cost`, in KiB.
    pub min_m_cost_kib: u32,
    /// Least `m_cost_kib × t_cost`.
    pub min_work: u64,
}

impl KdfFloor {
    /// Admits each of OWASP's Argon2id settings (the smallest is 7 MiB × 5 passes = 35,840),
    /// [`KdfParams::ONLINE_FLOOR`] (38,912) and [`KdfParams::DEFAULT`]; refuses anything
    /// cheaper.
    pub const RECOMMENDED: KdfFloor = KdfFloor {
        min_m_cost_kib: 7 * 1024,
        min_work: 7 * 1024 * 5,
    };

    /// Admits any parameters. For tests, and for reading a legacy blob in order to re-seal it
    /// with stronger parameters.
    pub const NONE: KdfFloor = KdfFloor {
        min_m_cost_kib: 0,
        min_work: 0,
    };

    /// Whether `params` meet this floor.
    pub fn admits(&self, params: &KdfParams) -> bool {
        params.m_cost_kib >= self.min_m_cost_kib
            && u64::from(params.m_cost_kib) * u64::from(params.t_cost) >= self.min_work
    }
}

impl Default for KdfFloor {
    fn default() -> Self {
        KdfFloor::RECOMMENDED
    }
}

/// Seals and opens passphrase-protected secret bundles (format in the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Keystore;

impl Keystore {
    /// Encrypts `secrets` under `passphrase` with [`KdfParams::DEFAULT`].
    pub fn seal(
        passphrase: &str,
        secrets: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, KeystoreError> {
        Self::seal_with_params(passphrase, secrets, KdfParams::DEFAULT, rng)
    }

    /// Encrypts `secrets` under `passphrase` with the given Argon2id parameters.
    pub fn seal_with_params(
        passphrase: &str,
        secrets: &[u8],
        params: KdfParams,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, KeystoreError> {
        if params.exceeds_ceiling() {
            return Err(KeystoreError::InvalidParams { params });
        }
        let mut header = Vec::with_capacity(HEADER_LEN + secrets.len() + TAG_LEN);
        header.push(KEYSTORE_VERSION);
        header.extend_from_slice(&params.m_cost_kib.to_be_bytes());
        header.extend_from_slice(&params.t_cost.to_be_bytes());
        header.extend_from_slice(&params.p_cost.to_be_bytes());
        let mut salt_nonce = [0u8; SALT_LEN + NONCE_LEN];
        rng.fill_bytes(&mut salt_nonce);
        header.extend_from_slice(&salt_nonce);

        let (salt, nonce) = salt_nonce.split_at(SALT_LEN);
        let key = derive_key(passphrase, salt, &params)?;
        let ciphertext = XChaCha20Poly1305::new((&*key).into())
            .encrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: secrets,
                    aad: &header,
                },
            )
            .map_err(|_| KeystoreError::TooLarge)?;
        header.extend_from_slice(&ciphertext);
        Ok(header)
    }

    /// Decrypts a sealed bundle, refusing parameters below [`KdfFloor::RECOMMENDED`].
    pub fn open(passphrase: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        Self::open_with_floor(passphrase, sealed, KdfFloor::RECOMMENDED)
    }

    /// Decrypts a sealed bundle, refusing parameters below `floor` or above the ceilings.
    pub fn open_with_floor(
        passphrase: &str,
        sealed: &[u8],
        floor: KdfFloor,
    ) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        let params = Self::params(sealed)?;
        if params.exceeds_ceiling() {
            return Err(KeystoreError::ExcessiveParams { params });
        }
        if !floor.admits(&params) {
            return Err(KeystoreError::WeakParams { params });
        }
        let (header, ciphertext) = sealed.split_at(HEADER_LEN);
        let salt = &header[13..13 + SALT_LEN];
        let nonce = &header[13 + SALT_LEN..];
        let key = derive_key(passphrase, salt, &params).map_err(|_| KeystoreError::Corrupt)?;
        XChaCha20Poly1305::new((&*key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: header,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeystoreError::WrongPassphrase)
    }

    /// Reads a sealed bundle's version and parameters without deriving anything (to decide,
    /// say, whether to re-seal it with stronger ones).
    pub fn params(sealed: &[u8]) -> Result<KdfParams, KeystoreError> {
        let (&version, _) = sealed.split_first().ok_or(KeystoreError::Corrupt)?;
        if version != KEYSTORE_VERSION {
            return Err(KeystoreError::UnsupportedVersion { version });
        }
        if sealed.len() < MIN_SEALED_LEN {
            return Err(KeystoreError::Corrupt);
        }
        let word = |at: usize| {
            let mut bytes = [0u8; 4];
            bytes.copy_from_slice(&sealed[at..at + 4]);
            u32::from_be_bytes(bytes)
        };
        Ok(KdfParams {
            m_cost_kib: word(1),
            t_cost: word(5),
            p_cost: word(9),
        })
    }
}

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let mut key = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
        .map_err(|_| KeystoreError::InvalidParams { params: *params })?;
    Ok(key)
}
