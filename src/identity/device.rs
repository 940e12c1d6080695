//! A device's own key pairs, made and kept on the device.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::cbor::{Reader, Writer};

use super::document::device_did;
use super::keys::{AgreementKeyPair, SigningKeyPair};
use super::keystore::{KdfParams, Keystore};
use super::ops::DeviceEntry;
use super::IdentityError;

/// A device's DID and its current signing and agreement key pairs.
pub struct DeviceKeys {
    did: String,
    signing: SigningKeyPair,
    agreement: AgreementKeyPair,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("did", &self.did)
            .finish()
    }
}

impl DeviceKeys {
    /// Fresh keys; the DID is the `did:key` of the signing key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let signing = SigningKeyPair::generate(rng);
        let agreement = AgreementKeyPair::generate(rng);
        DeviceKeys {
            did: device_did(&signing.public()),
            signing,
            agreement,
        }
    }

    /// New key pairs under the same device DID (for [`super::ops::Op::Rotate`]).
    pub fn rotated(&self, rng: &mut impl CryptoRngCore) -> Self {
        DeviceKeys {
            did: self.did.clone(),
            signing: SigningKeyPair::generate(rng),
            agreement: AgreementKeyPair::generate(rng),
        }
    }

    /// The device DID.
    pub fn did(&self) -> &str {
        &self.did
    }

    /// The signing key pair (author of the device's blocks).
    pub fn signing(&self) -> &SigningKeyPair {
        &self.signing
    }

    /// The agreement key pair (opens sealed epoch keys).
    pub fn agreement(&self) -> &AgreementKeyPair {
        &self.agreement
    }

    /// The public half, as ops list it.
    pub fn entry(&self) -> DeviceEntry {
        DeviceEntry {
            did: self.did.clone(),
            signing: self.signing.public(),
            agreement: self.agreement.public(),
        }
    }

    /// The raw Ed25519 public key bytes (a block's author).
    pub fn author(&self) -> [u8; 32] {
        self.signing.as_dalek().verifying_key().to_bytes()
    }

    /// The secrets, unencrypted: keep them only inside [`DeviceKeys::seal`].
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let signing = self.signing.to_secret_bytes();
        let agreement = self.agreement.to_secret_bytes();
        let mut w = Writer::with_capacity(64 + signing.len() + agreement.len() + self.did.len());
        w.array(3);
        w.text(&self.did);
        w.bytes(&signing);
        w.bytes(&agreement);
        Zeroizing::new(std::mem::take(&mut w.out))
    }

    /// Parses [`DeviceKeys::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::new(bytes);
        if r.array()? != 3 {
            return Err(IdentityError::Malformed("device keys".into()));
        }
        let did = r.text()?.to_owned();
        let signing = SigningKeyPair::from_secret_bytes(r.bytes()?)?;
        let agreement = AgreementKeyPair::from_secret_bytes(r.bytes()?)?;
        if !r.is_empty() {
            return Err(IdentityError::Malformed(
                "device keys: trailing bytes".into(),
            ));
        }
        Ok(DeviceKeys {
            did,
            signing,
            agreement,
        })
    }

    /// The secrets encrypted under a passphrase (Argon2id, see [`Keystore`]).
    pub fn seal(
        &self,
        passphrase: &str,
        params: KdfParams,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, IdentityError> {
        Ok(Keystore::seal_with_params(
            passphrase,
            &self.to_secret_bytes(),
            params,
            rng,
        )?)
    }

    /// Opens [`DeviceKeys::seal`]'s bytes; a wrong passphrase is
    /// [`super::KeystoreError::WrongPassphrase`].
    pub fn open(
        passphrase: &str,
        sealed: &[u8],
        floor: super::KdfFloor,
    ) -> Result<Self, IdentityError> {
        let secrets = Keystore::open_with_floor(passphrase, sealed, floor)?;
        Self::from_secret_bytes(&secrets)
    }
}
