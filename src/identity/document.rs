//! DIDs and W3C DID documents.
//!
//! - An identity (person or group) is `did:endra:<chain-id>`, the chain ID in the multibase
//!   base32 spelling of CIDs. Its document is derived from the chain's [`IdentityState`].
//! - A device is `did:key:z…` of its first Ed25519 key (the W3C CCG `did:key` method): a
//!   name that stays when the device rotates its keys; its current keys are the ones the
//!   identity chain lists.
//!
//! Keys appear as `Multikey` verification methods whose `publicKeyMultibase` is base58btc
//! of the algorithm-tagged key bytes ([`PublicKey::to_bytes`]).

use serde_json::{json, Value};

use crate::walytis::BlockId;

use super::keys::PublicKey;
use super::ops::{Kind, Role};
use super::state::IdentityState;
use super::IdentityError;

/// The DID method prefix of identities.
pub const ENDRA_DID_PREFIX: &str = "did:endra:";
/// The DID method prefix of devices.
pub const KEY_DID_PREFIX: &str = "did:key:";

/// `did:endra:<chain-id>`.
pub fn identity_did(chain: &BlockId) -> String {
    format!("{ENDRA_DID_PREFIX}{chain}")
}

/// The chain ID of a `did:endra:` DID.
pub fn parse_identity_did(did: &str) -> Result<BlockId, IdentityError> {
    did.strip_prefix(ENDRA_DID_PREFIX)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| IdentityError::InvalidDid(did.chars().take(120).collect()))
}

/// Base58btc multibase of the tagged key bytes.
pub fn key_multibase(key: &PublicKey) -> String {
    format!("z{}", bs58::encode(key.to_bytes()).into_string())
}

/// The `did:key` of a signing key.
pub fn device_did(signing: &PublicKey) -> String {
    format!("{KEY_DID_PREFIX}{}", key_multibase(signing))
}

/// The W3C DID Core document of an identity, as JSON.
///
/// `controller` lists the devices of a person and the admins of a group;
/// `verificationMethod` every current device key (signing keys for `authentication` and
/// `assertionMethod`, hybrid keys for `keyAgreement`); `service` the relays. Members and
/// roles (not part of DID Core) are under `endra:members`.
pub fn document(state: &IdentityState) -> Value {
    let did = state.did();
    let mut methods = Vec::new();
    let mut signing = Vec::new();
    let mut agreement = Vec::new();
    for (member, device) in state.devices() {
        let controller = match state.kind() {
            Kind::Person => did.clone(),
            Kind::Group => member.did.clone(),
        };
        for (key, list) in [
            (&device.signing, &mut signing),
            (&device.agreement, &mut agreement),
        ] {
            let multibase = key_multibase(key);
            let id = format!("{did}#{}", &multibase[..multibase.len().min(48)]);
            methods.push(json!({
                "id": id,
                "type": "Multikey",
                "controller": controller,
                "publicKeyMultibase": multibase,
                "endra:device": device.did,
            }));
            list.push(Value::String(id));
        }
    }
    let controllers: Vec<&str> = match state.kind() {
        Kind::Person => state
            .devices()
            .map(|(_, device)| device.did.as_str())
            .collect(),
        Kind::Group => state
            .members()
            .values()
            .filter(|m| m.role == Role::Admin)
            .map(|m| m.did.as_str())
            .collect(),
    };
    let services: Vec<Value> = state
        .relays()
        .iter()
        .enumerate()
        .map(|(i, relay)| {
            json!({
                "id": format!("{did}#relay-{i}"),
                "type": "EndraRelay",
                "serviceEndpoint": relay,
            })
        })
        .collect();
    let members: Vec<Value> = state
        .members()
        .values()
        .map(|m| {
            json!({
                "id": m.did,
                "role": match m.role { Role::Admin => "admin", Role::Member => "member" },
                "devices": m.devices.iter().map(|d| d.did.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1"
        ],
        "id": did,
        "controller": controllers,
        "verificationMethod": methods,
        "authentication": signing.clone(),
        "assertionMethod": signing,
        "keyAgreement": agreement,
        "service": services,
        "endra:kind": match state.kind() { Kind::Person => "person", Kind::Group => "group" },
        "endra:name": state.name(),
        "endra:members": members,
    })
}
