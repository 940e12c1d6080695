//! Account recovery keys: an Ed25519 key made when a person is created, shown once to the user
//! to keep offline (like Signal's recovery key or a Keybase paper key) and never used day to
//! day. Its public half is in the person's genesis; signing an [`super::Op::Recover`] with it
//! takes the person back from lost or stolen devices, and outranks every device in doing so
//! (see `state`). Each recovery spends the key and names the next one.
//!
//! The code a user writes down is [`RECOVERY_PREFIX`] then base58 of the 32-byte secret and a
//! 4-byte checksum (the first bytes of its SHA-256), so a mistyped character is caught before
//! anything is signed.

use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keys::{PublicKey, SigningKeyPair};
use super::IdentityError;

/// Prefix of a recovery code.
pub const RECOVERY_PREFIX: &str = "endra-recovery:";
/// Bytes of the checksum after the secret.
const CHECKSUM_LEN: usize = 4;

/// A person's recovery key. The secret is zeroized on drop and never printed.
pub struct RecoveryKey(SigningKeyPair);

impl RecoveryKey {
    /// A fresh recovery key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        RecoveryKey(SigningKeyPair::generate(rng))
    }

    /// The public key a genesis or a recovery names.
    pub fn public(&self) -> PublicKey {
        self.0.public()
    }

    /// The key pair, to sign a recovery with.
    pub fn signing(&self) -> &SigningKeyPair {
        &self.0
    }

    /// The code the user keeps: [`RECOVERY_PREFIX`], then base58 of the secret and a checksum.
    pub fn to_code(&self) -> Zeroizing<String> {
        let secret = self.0.as_dalek().to_bytes();
        let mut bytes = Zeroizing::new(Vec::with_capacity(32 + CHECKSUM_LEN));
        bytes.extend_from_slice(&secret);
        bytes.extend_from_slice(&checksum(&secret));
        Zeroizing::new(format!(
            "{RECOVERY_PREFIX}{}",
            bs58::encode(&*bytes).into_string()
        ))
    }

    /// Parses [`RecoveryKey::to_code`]'s string (surrounding whitespace allowed).
    pub fn from_code(code: &str) -> Result<Self, IdentityError> {
        let body =
            code.trim()
                .strip_prefix(RECOVERY_PREFIX)
                .ok_or(IdentityError::InvalidRecoveryKey(
                    "missing the endra-recovery: prefix",
                ))?;
        let bytes = Zeroizing::new(
            bs58::decode(body)
                .into_vec()
                .map_err(|_| IdentityError::InvalidRecoveryKey("not base58"))?,
        );
        if bytes.len() != 32 + CHECKSUM_LEN {
            return Err(IdentityError::InvalidRecoveryKey("wrong length"));
        }
        let (secret, sum) = bytes.split_at(32);
        if checksum(secret) != sum {
            return Err(IdentityError::InvalidRecoveryKey(
                "the checksum does not match: a character is wrong",
            ));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(secret);
        Ok(RecoveryKey(SigningKeyPair::from_seed(&seed)))
    }
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RecoveryKey").field(&self.public()).finish()
    }
}

fn checksum(secret: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::digest(secret);
    let mut sum = [0u8; CHECKSUM_LEN];
    sum.copy_from_slice(&digest[..CHECKSUM_LEN]);
    sum
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rand_core::OsRng;

    use super::*;

    #[test]
    fn codes_round_trip_and_a_typo_is_caught() {
        let key = RecoveryKey::generate(&mut OsRng);
        let code = key.to_code();
        assert!(code.starts_with(RECOVERY_PREFIX));
        let back = RecoveryKey::from_code(&format!("  {}\n", &*code)).unwrap();
        assert_eq!(back.public(), key.public());
        assert!(!format!("{key:?}").contains(&code[RECOVERY_PREFIX.len()..]));

        // One character changed anywhere in the body: refused, never another key.
        let body = &code[RECOVERY_PREFIX.len()..];
        for at in 0..body.len() {
            let mut chars: Vec<char> = body.chars().collect();
            chars[at] = if chars[at] == '2' { '3' } else { '2' };
            let typo: String = chars.into_iter().collect();
            assert!(RecoveryKey::from_code(&format!("{RECOVERY_PREFIX}{typo}")).is_err());
        }
        for bad in ["", "endra-recovery:", "recovery:abc", "endra-recovery:0OIl"] {
            assert!(matches!(
                RecoveryKey::from_code(bad),
                Err(IdentityError::InvalidRecoveryKey(_))
            ));
        }
    }
}
