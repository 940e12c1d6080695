//! Authenticated, encrypted sessions between two persons' devices: a sans-IO handshake and
//! transport.
//!
//! Both sides prove control of a person DID (`did:endra:<chain>`) by signing a transcript
//! that contains a fresh challenge of the other side with a device key that the DID's
//! *current* state lists; then they talk over ChaCha20-Poly1305 frames under keys derived
//! from an ephemeral X25519 exchange and a hybrid X25519 + ML-KEM-768 encapsulation. No I/O
//! happens here: the caller moves the bytes (see `crate::net::session` for libp2p streams)
//! and supplies what it knows of identities through a [`Directory`].
//!
//! # Handshake
//!
//! Three messages, canonical CBOR arrays whose first item is a tag (as identity ops are):
//!
//! ```text
//! Hello  (initiator → responder)  [0, identity_I, device_I, key_I, nonce_I, ephemeral_I]
//! Reply  (responder → initiator)  [1, identity_R, device_R, key_R, nonce_R, ephemeral_R, sig_R]
//! Finish (initiator → responder)  [2, encapsulation, sig_I]
//! ```
//!
//! `identity` is the person DID, `device` the device's `did:key`, `key` the device's current
//! Ed25519 signing key ([`PublicKey::to_bytes`]), `nonce` 32 fresh random bytes, `ephemeral`
//! a fresh X25519 public key, `encapsulation` a hybrid [`Encapsulation`] to the responder
//! device's listed agreement key, `sig` an Ed25519 signature (64 bytes).
//!
//! # Transcript
//!
//! One running SHA-256 over `"endra/identity/session/v1" ‖ 0x00`, then every field in the
//! order sent, each as `u64 length (big-endian) ‖ bytes`, message tags included:
//!
//! ```text
//! h1 = after Hello's and Reply's fields up to ephemeral_R     sig_R = Sign_R(responder ctx, h1)
//! h2 = after sig_R, Finish's tag and the encapsulation        sig_I = Sign_I(initiator ctx, h2)
//! h3 = after sig_I                                            (the handshake hash)
//! ```
//!
//! The two signing contexts (`endra/identity/session/responder/v1`,
//! `…/initiator/v1`, see [`SigningContext`]) differ, so no signature can be reflected into
//! the other role. Each signature covers both parties' DIDs and keys, both nonces and both
//! ephemeral keys, so it is fresh (the other side's nonce) and bound to this exchange.
//!
//! # What is verified against what
//!
//! A party's claim `(identity, device, key)` is checked against the state the caller's
//! [`Directory`] returns for `identity`, in this order, each failure its own
//! [`SessionError`]: a well-formed `did:endra` DID ([`SessionError::InvalidDid`]); a state
//! for it ([`SessionError::UnknownIdentity`]); a person, not a group
//! ([`SessionError::NotAPerson`]: a group's state lists its members' devices, but no device
//! speaks for a group); the device not removed ([`SessionError::RemovedDevice`]); the device
//! a current device of this identity ([`SessionError::UnknownDevice`], also for a device of
//! another identity); `key` the device's current signing key ([`SessionError::RevokedKey`]
//! for a key the identity revoked, as by rotation; [`SessionError::KeyNotListed`] for any
//! other key); and the signature valid under that listed key over the transcript
//! ([`SessionError::BadSignature`], also what any altered field or a message from another
//! session comes to). The responder checks the initiator's claim on Hello (refusing before it
//! signs anything) and its signature on Finish; the initiator checks the responder's claim
//! and signature on Reply, and before it signs, whether it reached the identity it wanted
//! ([`SessionError::UnexpectedPeer`]). A [`ReplayGuard`] refuses a Hello seen before
//! ([`SessionError::Replayed`]); a replay it has forgotten still cannot finish, since the
//! old Finish signs the old transcript.
//!
//! # Keys
//!
//! ```text
//! dh  = X25519(ephemeral_I, ephemeral_R)        (a small-order result is refused)
//! kem = the hybrid KEM secret of `encapsulation` (keys::encapsulate / decapsulate)
//! prk = HKDF-SHA256-Extract(salt = h3, ikm = dh ‖ kem)
//! k_IR = HKDF-Expand(prk, "endra/identity/session/v1/initiator-to-responder", 32)
//! k_RI = HKDF-Expand(prk, "endra/identity/session/v1/responder-to-initiator", 32)
//! ```
//!
//! Why this shape: the ephemeral DH gives classical forward secrecy; the encapsulation to
//! the responder device's *listed* hybrid key (reusing [`encapsulate`], X-Wing-like) keeps
//! recorded traffic confidential against a future quantum adversary, and only the device
//! holding that key can derive the session keys, so the responder proves it holds its listed
//! agreement key too (implicitly: its first frame would not open otherwise). The
//! encapsulation rides in Finish rather than Hello because a person has several devices and
//! the initiator learns which one answers (and checks its keys) only from the Reply. The
//! initiator gets no extra key-confirmation message: the first frame does that.
//! Post-quantum *forward* secrecy would need an ephemeral ML-KEM key as well (1,184 more
//! bytes in Reply); rotation replaces a device's agreement key and so bounds the exposure.
//!
//! # Frames
//!
//! After the handshake each direction has its own key and a 64-bit counter starting at 0:
//!
//! ```text
//! frame = counter (8, big-endian) ‖ ChaCha20-Poly1305(key, nonce = 0x00000000 ‖ counter,
//!                                                     aad = counter, plaintext) with its tag
//! ```
//!
//! A receiver accepts exactly the next counter: a lower one is
//! [`SessionError::FrameReplayed`], a higher one [`SessionError::FrameOutOfOrder`], fewer
//! than 24 bytes [`SessionError::FrameTruncated`], a failing tag
//! [`SessionError::FrameTampered`]. A rejected frame changes nothing; a transport should
//! still end the session on any of them. Keys live in ciphers that zeroize on drop.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cbor::{CborError, Reader, Writer};
use crate::walytis::BlockId;

use super::device::DeviceKeys;
use super::document::parse_identity_did;
use super::keys::{encapsulate, verify, Encapsulation, KeyError, PublicKey, SigningContext};
use super::keys::{SIGNATURE_LEN, TAG_LEN, X25519_KEY_LEN};
use super::ops::Kind;
use super::state::IdentityState;

/// Bytes of each side's challenge nonce.
pub const CHALLENGE_LEN: usize = 32;
/// Most bytes of one frame (counter, ciphertext and tag) and of one handshake message.
pub const MAX_FRAME_LEN: usize = 64 * 1024;
/// Bytes a frame adds to its plaintext: the counter and the tag.
pub const FRAME_OVERHEAD: usize = COUNTER_LEN + TAG_LEN;
/// Most plaintext bytes one frame carries.
pub const MAX_PLAINTEXT_LEN: usize = MAX_FRAME_LEN - FRAME_OVERHEAD;
/// Hellos a default [`ReplayGuard`] remembers.
pub const REPLAY_MEMORY: usize = 4096;

const COUNTER_LEN: usize = 8;
const TRANSCRIPT_LABEL: &[u8] = b"endra/identity/session/v1\0";
const RESPONDER_CONTEXT: SigningContext =
    SigningContext::new("endra/identity/session/responder/v1");
const INITIATOR_CONTEXT: SigningContext =
    SigningContext::new("endra/identity/session/initiator/v1");
const INITIATOR_TO_RESPONDER: &[u8] = b"endra/identity/session/v1/initiator-to-responder";
const RESPONDER_TO_INITIATOR: &[u8] = b"endra/identity/session/v1/responder-to-initiator";
const HELLO: u64 = 0;
const REPLY: u64 = 1;
const FINISH: u64 = 2;
/// DIDs quoted in errors are cut to this many characters.
const QUOTE_LEN: usize = 120;

/// Why a handshake or a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A handshake message does not parse.
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    /// A handshake message of another kind than the one due.
    #[error("expected a {expected} message")]
    UnexpectedMessage {
        /// The message due.
        expected: &'static str,
    },
    /// The claimed identity is not a `did:endra` DID.
    #[error("not a did:endra DID: {0}")]
    InvalidDid(String),
    /// The directory knows no identity with this DID.
    #[error("unknown identity {0}")]
    UnknownIdentity(String),
    /// The DID is a group's; sessions are between persons.
    #[error("{0} is a group, not a person")]
    NotAPerson(String),
    /// The peer authenticated as another identity than the one wanted.
    #[error("wanted to reach {expected}, reached {actual}")]
    UnexpectedPeer {
        /// The identity wanted.
        expected: String,
        /// The identity reached.
        actual: String,
    },
    /// The device is not a current device of the identity (never was, or another's).
    #[error("{device} is not a device of {identity}")]
    UnknownDevice {
        /// The claimed identity.
        identity: String,
        /// The claimed device.
        device: String,
    },
    /// The device was removed from the identity.
    #[error("{device} was removed from {identity}")]
    RemovedDevice {
        /// The identity.
        identity: String,
        /// The removed device.
        device: String,
    },
    /// The key presented was revoked by the identity (rotated out, say).
    #[error("the key presented for {device} was revoked by block {by}")]
    RevokedKey {
        /// The claimed device.
        device: String,
        /// The block that revoked the key.
        by: BlockId,
    },
    /// The key presented is not the device's current signing key, and never was revoked.
    #[error("the key presented is not the current key of {device}")]
    KeyNotListed {
        /// The claimed device.
        device: String,
    },
    /// The signature does not verify under the device's listed key over this transcript:
    /// a forged or altered message, or one from another session.
    #[error("the handshake signature does not verify")]
    BadSignature,
    /// A Hello the [`ReplayGuard`] saw before.
    #[error("a Hello replayed from an earlier handshake")]
    Replayed,
    /// The peer's ephemeral X25519 key has small order (no shared secret).
    #[error("weak ephemeral key")]
    WeakEphemeral,
    /// Key material or the encapsulation is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A frame shorter than the counter and the tag.
    #[error("frame of {len} bytes is truncated")]
    FrameTruncated {
        /// Its length.
        len: usize,
    },
    /// A frame whose counter was received before.
    #[error("frame {counter} replayed (next is {expected})")]
    FrameReplayed {
        /// The frame's counter.
        counter: u64,
        /// The counter due.
        expected: u64,
    },
    /// A frame that skips ahead.
    #[error("frame {counter} out of order (next is {expected})")]
    FrameOutOfOrder {
        /// The frame's counter.
        counter: u64,
        /// The counter due.
        expected: u64,
    },
    /// A frame whose authentication tag fails: altered, or under another key.
    #[error("frame failed authentication")]
    FrameTampered,
    /// A frame or plaintext over [`MAX_FRAME_LEN`] / [`MAX_PLAINTEXT_LEN`].
    #[error("{len} bytes exceed the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// This direction sent 2^64 − 1 frames: start a new session.
    #[error("the session's frame counter is exhausted")]
    Exhausted,
}

impl From<CborError> for SessionError {
    fn from(e: CborError) -> Self {
        SessionError::Malformed(e.to_string())
    }
}

fn quote(did: &str) -> String {
    did.chars().take(QUOTE_LEN).collect()
}

// ---------------------------------------------------------------------------------------------
// Who is who

/// What a device knows of identities: their current state (from its replicas of their
/// chains). The handshake asks it about the peer's claimed DID and nothing else.
pub trait Directory {
    /// The state of the identity with this `did:endra` DID, or `None` if unknown.
    fn state(&self, did: &str) -> Option<IdentityState>;
}

impl<F: Fn(&str) -> Option<IdentityState>> Directory for F {
    fn state(&self, did: &str) -> Option<IdentityState> {
        self(did)
    }
}

impl Directory for HashMap<String, IdentityState> {
    fn state(&self, did: &str) -> Option<IdentityState> {
        self.get(did).cloned()
    }
}

impl Directory for BTreeMap<String, IdentityState> {
    fn state(&self, did: &str) -> Option<IdentityState> {
        self.get(did).cloned()
    }
}

impl Directory for [IdentityState] {
    fn state(&self, did: &str) -> Option<IdentityState> {
        self.iter().find(|s| s.did() == did).cloned()
    }
}

/// This side of a session: its person DID and this device's keys.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    identity: &'a str,
    device: &'a DeviceKeys,
}

impl<'a> Local<'a> {
    /// `identity` is the person DID (`did:endra:…`) that lists `device` as a current device.
    pub fn new(identity: &'a str, device: &'a DeviceKeys) -> Self {
        Local { identity, device }
    }

    /// The person DID.
    pub fn identity(&self) -> &str {
        self.identity
    }

    /// This device's keys.
    pub fn device(&self) -> &DeviceKeys {
        self.device
    }
}

/// The other side, authenticated: a person DID and one of its current devices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The person DID (`did:endra:…`).
    pub identity: String,
    /// The device DID (`did:key:…`).
    pub device: String,
}

/// Remembers the nonces of recent Hellos so a responder refuses one it saw before
/// ([`SessionError::Replayed`]). Bounded: the oldest are forgotten first.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    seen: HashSet<[u8; CHALLENGE_LEN]>,
    order: VecDeque<[u8; CHALLENGE_LEN]>,
    capacity: usize,
}

impl ReplayGuard {
    /// A guard remembering the last `capacity` Hellos (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ReplayGuard {
            seen: HashSet::with_capacity(capacity.min(REPLAY_MEMORY)),
            order: VecDeque::with_capacity(capacity.min(REPLAY_MEMORY)),
            capacity,
        }
    }

    fn check(&mut self, nonce: &[u8; CHALLENGE_LEN]) -> Result<(), SessionError> {
        if !self.seen.insert(*nonce) {
            return Err(SessionError::Replayed);
        }
        self.order.push_back(*nonce);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        Ok(())
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(REPLAY_MEMORY)
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

/// What Hello and Reply both carry.
#[derive(Debug, Clone)]
struct Claim {
    identity: String,
    device: String,
    key: PublicKey,
    nonce: [u8; CHALLENGE_LEN],
    ephemeral: [u8; X25519_KEY_LEN],
}

impl Claim {
    fn own(
        local: &Local<'_>,
        ephemeral: [u8; X25519_KEY_LEN],
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let mut nonce = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut nonce);
        Claim {
            identity: local.identity.to_owned(),
            device: local.device.did().to_owned(),
            key: local.device.signing().public(),
            nonce,
            ephemeral,
        }
    }

    fn write(&self, w: &mut Writer) {
        w.text(&self.identity);
        w.text(&self.device);
        w.bytes(&self.key.to_bytes());
        w.bytes(&self.nonce);
        w.bytes(&self.ephemeral);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, SessionError> {
        let identity = r.text()?.to_owned();
        let device = r.text()?.to_owned();
        let key = PublicKey::from_bytes(r.bytes()?)
            .map_err(|e| SessionError::Malformed(format!("signing key: {e}")))?;
        let nonce = fixed(r.bytes()?, "nonce")?;
        let ephemeral = fixed(r.bytes()?, "ephemeral key")?;
        Ok(Claim {
            identity,
            device,
            key,
            nonce,
            ephemeral,
        })
    }

    fn absorb_into(&self, tag: u64, transcript: &mut Transcript) {
        transcript.absorb(&[tag as u8]);
        transcript.absorb(self.identity.as_bytes());
        transcript.absorb(self.device.as_bytes());
        transcript.absorb(&self.key.to_bytes());
        transcript.absorb(&self.nonce);
        transcript.absorb(&self.ephemeral);
    }

    /// Checks the claim against the identity's current state; returns the listed signing and
    /// agreement keys.
    fn verify<D: Directory + ?Sized>(
        &self,
        directory: &D,
    ) -> Result<(PublicKey, PublicKey), SessionError> {
        parse_identity_did(&self.identity)
            .map_err(|_| SessionError::InvalidDid(quote(&self.identity)))?;
        let state = directory
            .state(&self.identity)
            .filter(|s| s.did() == self.identity)
            .ok_or_else(|| SessionError::UnknownIdentity(quote(&self.identity)))?;
        if state.kind() != Kind::Person {
            return Err(SessionError::NotAPerson(quote(&self.identity)));
        }
        if state.is_removed_device(&self.device) {
            return Err(SessionError::RemovedDevice {
                identity: quote(&self.identity),
                device: quote(&self.device),
            });
        }
        let (_, entry) = state
            .device(&self.device)
            .ok_or_else(|| SessionError::UnknownDevice {
                identity: quote(&self.identity),
                device: quote(&self.device),
            })?;
        if entry.signing != self.key {
            let revoked = match &self.key {
                PublicKey::Ed25519(key) => state.revoked_by(key),
                _ => None,
            };
            return Err(match revoked {
                Some(by) => SessionError::RevokedKey {
                    device: quote(&self.device),
                    by,
                },
                None => SessionError::KeyNotListed {
                    device: quote(&self.device),
                },
            });
        }
        Ok((entry.signing.clone(), entry.agreement.clone()))
    }

    fn peer(&self) -> PeerIdentity {
        PeerIdentity {
            identity: self.identity.clone(),
            device: self.device.clone(),
        }
    }
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], SessionError> {
    bytes
        .try_into()
        .map_err(|_| SessionError::Malformed(format!("{what}: expected {N} bytes")))
}

/// Opens a message: its array length and tag.
fn open_message<'b>(
    bytes: &'b [u8],
    tag: u64,
    items: usize,
    name: &'static str,
) -> Result<Reader<'b>, SessionError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(SessionError::TooLong {
            len: bytes.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let mut r = Reader::new(bytes);
    let len = r.array()?;
    if len == 0 || r.uint()? != tag {
        return Err(SessionError::UnexpectedMessage { expected: name });
    }
    if len != items {
        return Err(SessionError::Malformed(format!(
            "{name}: expected {items} items"
        )));
    }
    Ok(r)
}

fn close_message(r: &Reader<'_>, name: &str) -> Result<(), SessionError> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(SessionError::Malformed(format!("{name}: trailing bytes")))
    }
}

// ---------------------------------------------------------------------------------------------
// Transcript and keys

#[derive(Clone)]
struct Transcript(Sha256);

impl Transcript {
    fn new() -> Self {
        let mut hash = Sha256::new();
        hash.update(TRANSCRIPT_LABEL);
        Transcript(hash)
    }

    fn absorb(&mut self, field: &[u8]) {
        self.0.update((field.len() as u64).to_be_bytes());
        self.0.update(field);
    }

    fn hash(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }
}

/// `(initiator → responder, responder → initiator)` ciphers.
fn session_keys(
    dh: &[u8; 32],
    kem: &[u8; 32],
    transcript: &[u8; 32],
) -> Result<(ChaCha20Poly1305, ChaCha20Poly1305), SessionError> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(dh);
    ikm[32..].copy_from_slice(kem);
    let hkdf = Hkdf::<Sha256>::new(Some(transcript), &ikm[..]);
    let mut forward = Zeroizing::new([0u8; 32]);
    let mut backward = Zeroizing::new([0u8; 32]);
    hkdf.expand(INITIATOR_TO_RESPONDER, &mut forward[..])
        .map_err(|_| KeyError::Backend)?;
    hkdf.expand(RESPONDER_TO_INITIATOR, &mut backward[..])
        .map_err(|_| KeyError::Backend)?;
    Ok((
        ChaCha20Poly1305::new((&*forward).into()),
        ChaCha20Poly1305::new((&*backward).into()),
    ))
}

fn ephemeral_dh(
    secret: x25519_dalek::EphemeralSecret,
    peer: &[u8; X25519_KEY_LEN],
) -> Result<x25519_dalek::SharedSecret, SessionError> {
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
    if shared.was_contributory() {
        Ok(shared)
    } else {
        Err(SessionError::WeakEphemeral)
    }
}

// ---------------------------------------------------------------------------------------------
// Initiator

/// The side that opens a session: sends Hello, checks the Reply, sends Finish.
pub struct Initiator<'a> {
    local: Local<'a>,
    expected: Option<String>,
    ephemeral: x25519_dalek::EphemeralSecret,
    transcript: Transcript,
}

impl std::fmt::Debug for Initiator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("identity", &self.local.identity)
            .field("expected", &self.expected)
            .finish()
    }
}

impl<'a> Initiator<'a> {
    /// Starts a handshake; returns the initiator and the Hello to send.
    pub fn new(local: Local<'a>, rng: &mut impl CryptoRngCore) -> (Self, Vec<u8>) {
        let ephemeral = x25519_dalek::EphemeralSecret::random_from_rng(&mut *rng);
        let public = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
        let claim = Claim::own(&local, public, rng);
        let mut transcript = Transcript::new();
        claim.absorb_into(HELLO, &mut transcript);
        let mut w = Writer::with_capacity(256);
        w.array(6);
        w.uint(HELLO);
        claim.write(&mut w);
        let initiator = Initiator {
            local,
            expected: None,
            ephemeral,
            transcript,
        };
        (initiator, w.out)
    }

    /// Refuses (with [`SessionError::UnexpectedPeer`]) a responder that is not this
    /// identity, before anything is signed for it.
    pub fn expect_identity(mut self, did: &str) -> Self {
        self.expected = Some(did.to_owned());
        self
    }

    /// Checks the responder's Reply against `directory`; returns the session and the Finish
    /// to send.
    pub fn on_reply<D: Directory + ?Sized>(
        mut self,
        reply: &[u8],
        directory: &D,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Session, Vec<u8>), SessionError> {
        let mut r = open_message(reply, REPLY, 7, "Reply")?;
        let claim = Claim::read(&mut r)?;
        let sig = r.bytes()?;
        close_message(&r, "Reply")?;

        let (signing, agreement) = claim.verify(directory)?;
        claim.absorb_into(REPLY, &mut self.transcript);
        verify(&signing, RESPONDER_CONTEXT, &self.transcript.hash(), sig)
            .map_err(|_| SessionError::BadSignature)?;
        if let Some(expected) = self.expected.filter(|e| *e != claim.identity) {
            return Err(SessionError::UnexpectedPeer {
                expected: quote(&expected),
                actual: quote(&claim.identity),
            });
        }
        let dh = ephemeral_dh(self.ephemeral, &claim.ephemeral)?;
        self.transcript.absorb(sig);

        let (encapsulation, kem) = encapsulate(&agreement, rng)?;
        let encapsulation = encapsulation.to_bytes();
        self.transcript.absorb(&[FINISH as u8]);
        self.transcript.absorb(&encapsulation);
        let own_sig = self
            .local
            .device
            .signing()
            .sign(INITIATOR_CONTEXT, &self.transcript.hash());
        self.transcript.absorb(&own_sig);
        let hash = self.transcript.hash();

        let (send, receive) = session_keys(dh.as_bytes(), kem.as_bytes(), &hash)?;
        let mut w = Writer::with_capacity(encapsulation.len() + SIGNATURE_LEN + 16);
        w.array(3);
        w.uint(FINISH);
        w.bytes(&encapsulation);
        w.bytes(&own_sig);
        Ok((Session::new(claim.peer(), send, receive, hash), w.out))
    }
}

// ---------------------------------------------------------------------------------------------
// Responder

/// The side that answers: checks the Hello, sends Reply, checks the Finish.
pub struct Responder<'a> {
    local: Local<'a>,
    peer: PeerIdentity,
    peer_key: PublicKey,
    dh: x25519_dalek::SharedSecret,
    transcript: Transcript,
}

impl std::fmt::Debug for Responder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("identity", &self.local.identity)
            .field("claimed_peer", &self.peer)
            .finish()
    }
}

impl<'a> Responder<'a> {
    /// Checks a Hello (its nonce against `replay`, its claim against `directory`); returns
    /// the responder and the Reply to send.
    pub fn new<D: Directory + ?Sized>(
        local: Local<'a>,
        hello: &[u8],
        directory: &D,
        replay: &mut ReplayGuard,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Self, Vec<u8>), SessionError> {
        let mut r = open_message(hello, HELLO, 6, "Hello")?;
        let peer = Claim::read(&mut r)?;
        close_message(&r, "Hello")?;
        replay.check(&peer.nonce)?;
        let (peer_key, _) = peer.verify(directory)?;

        let ephemeral = x25519_dalek::EphemeralSecret::random_from_rng(&mut *rng);
        let public = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
        let dh = ephemeral_dh(ephemeral, &peer.ephemeral)?;
        let own = Claim::own(&local, public, rng);
        let mut transcript = Transcript::new();
        peer.absorb_into(HELLO, &mut transcript);
        own.absorb_into(REPLY, &mut transcript);
        let sig = local
            .device
            .signing()
            .sign(RESPONDER_CONTEXT, &transcript.hash());
        transcript.absorb(&sig);

        let mut w = Writer::with_capacity(256);
        w.array(7);
        w.uint(REPLY);
        own.write(&mut w);
        w.bytes(&sig);
        let responder = Responder {
            local,
            peer: peer.peer(),
            peer_key,
            dh,
            transcript,
        };
        Ok((responder, w.out))
    }

    /// Who the initiator claims to be: its claim checks against the directory, but it is not
    /// authenticated until [`Responder::on_finish`] succeeds.
    pub fn claimed_peer(&self) -> &PeerIdentity {
        &self.peer
    }

    /// Checks the initiator's Finish; returns the session.
    pub fn on_finish(mut self, finish: &[u8]) -> Result<Session, SessionError> {
        let mut r = open_message(finish, FINISH, 3, "Finish")?;
        let encapsulation = r.bytes()?;
        let sig = r.bytes()?;
        close_message(&r, "Finish")?;

        self.transcript.absorb(&[FINISH as u8]);
        self.transcript.absorb(encapsulation);
        verify(
            &self.peer_key,
            INITIATOR_CONTEXT,
            &self.transcript.hash(),
            sig,
        )
        .map_err(|_| SessionError::BadSignature)?;
        self.transcript.absorb(sig);
        let hash = self.transcript.hash();

        let encapsulation = Encapsulation::from_bytes(encapsulation)?;
        let kem = self.local.device.agreement().decapsulate(&encapsulation)?;
        let (receive, send) = session_keys(self.dh.as_bytes(), kem.as_bytes(), &hash)?;
        Ok(Session::new(self.peer, send, receive, hash))
    }
}

// ---------------------------------------------------------------------------------------------
// Session

/// An established session: the authenticated peer and one key and counter per direction.
pub struct Session {
    peer: PeerIdentity,
    hash: [u8; 32],
    send: ChaCha20Poly1305,
    receive: ChaCha20Poly1305,
    sent: u64,
    received: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish()
    }
}

fn frame_nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce.into()
}

impl Session {
    fn new(
        peer: PeerIdentity,
        send: ChaCha20Poly1305,
        receive: ChaCha20Poly1305,
        hash: [u8; 32],
    ) -> Self {
        Session {
            peer,
            hash,
            send,
            receive,
            sent: 0,
            received: 0,
        }
    }

    /// The peer, authenticated by the handshake.
    pub fn peer(&self) -> &PeerIdentity {
        &self.peer
    }

    /// The handshake hash `h3`: the same on both sides, unique to this session (for channel
    /// binding, or a code both people compare).
    pub fn handshake_hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Encrypts the next frame to the peer.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SessionError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(SessionError::TooLong {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_LEN,
            });
        }
        let counter = self.sent;
        if counter == u64::MAX {
            return Err(SessionError::Exhausted);
        }
        let header = counter.to_be_bytes();
        let ciphertext = self
            .send
            .encrypt(
                &frame_nonce(counter),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .map_err(|_| SessionError::TooLong {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_LEN,
            })?;
        self.sent += 1;
        let mut frame = Vec::with_capacity(COUNTER_LEN + ciphertext.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&ciphertext);
        Ok(frame)
    }

    /// Decrypts the next frame from the peer. A rejected frame changes nothing.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, SessionError> {
        if frame.len() > MAX_FRAME_LEN {
            return Err(SessionError::TooLong {
                len: frame.len(),
                max: MAX_FRAME_LEN,
            });
        }
        if frame.len() < FRAME_OVERHEAD {
            return Err(SessionError::FrameTruncated { len: frame.len() });
        }
        let (header, ciphertext) = frame.split_at(COUNTER_LEN);
        let mut counter = [0u8; COUNTER_LEN];
        counter.copy_from_slice(header);
        let counter = u64::from_be_bytes(counter);
        let expected = self.received;
        if counter < expected {
            return Err(SessionError::FrameReplayed { counter, expected });
        }
        if counter > expected {
            return Err(SessionError::FrameOutOfOrder { counter, expected });
        }
        let plaintext = self
            .receive
            .decrypt(
                &frame_nonce(counter),
                Payload {
                    msg: ciphertext,
                    aad: header,
                },
            )
            .map_err(|_| SessionError::FrameTampered)?;
        self.received += 1;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transcript_frames_every_field() {
        // "ab" ‖ "c" and "a" ‖ "bc" must not hash alike.
        let mut one = Transcript::new();
        one.absorb(b"ab");
        one.absorb(b"c");
        let mut two = Transcript::new();
        two.absorb(b"a");
        two.absorb(b"bc");
        assert_ne!(one.hash(), two.hash());
    }

    #[test]
    fn the_replay_guard_forgets_the_oldest() {
        let mut guard = ReplayGuard::new(2);
        for n in 0..3u8 {
            guard.check(&[n; CHALLENGE_LEN]).unwrap();
        }
        assert_eq!(
            guard.check(&[2; CHALLENGE_LEN]),
            Err(SessionError::Replayed)
        );
        // The first fell out of the window.
        assert_eq!(guard.check(&[0; CHALLENGE_LEN]), Ok(()));
    }

    #[test]
    fn frames_travel_one_way_under_each_key() {
        let dh = [1u8; 32];
        let kem = [2u8; 32];
        let hash = [3u8; 32];
        let peer = PeerIdentity {
            identity: "did:endra:x".into(),
            device: "did:key:y".into(),
        };
        let (a_send, a_receive) = session_keys(&dh, &kem, &hash).unwrap();
        let (b_receive, b_send) = session_keys(&dh, &kem, &hash).unwrap();
        let mut a = Session::new(peer.clone(), a_send, a_receive, hash);
        let mut b = Session::new(peer, b_send, b_receive, hash);
        let frame = a.seal(b"hi").unwrap();
        assert_eq!(frame.len(), 2 + FRAME_OVERHEAD);
        // A frame does not open in the direction it was sent from.
        assert_eq!(a.open(&frame), Err(SessionError::FrameTampered));
        assert_eq!(b.open(&frame).unwrap(), b"hi");
        let back = b.seal(b"ho").unwrap();
        assert_eq!(a.open(&back).unwrap(), b"ho");
        assert_eq!(
            a.seal(&vec![0; MAX_PLAINTEXT_LEN + 1]),
            Err(SessionError::TooLong {
                len: MAX_PLAINTEXT_LEN + 1,
                max: MAX_PLAINTEXT_LEN
            })
        );
        assert_eq!(
            a.seal(&vec![0; MAX_PLAINTEXT_LEN]).unwrap().len(),
            MAX_FRAME_LEN
        );
    }
}
