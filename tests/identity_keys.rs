//! The identity key primitives: every encoding round-trips and rejects tampering with its own
//! error; signatures are domain-separated; the hybrid KEM agrees; sealing binds recipient, AAD
//! and ciphertext; epoch keys; the passphrase keystore.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use ed25519_dalek::{Signer, SigningKey};
use endra::identity::keys::{
    Encapsulation, ED25519_SECRET_TAG, HYBRID_ENCAPSULATION_TAG, HYBRID_PUBLIC_TAG,
    HYBRID_SECRET_TAG, ML_KEM_768_CIPHERTEXT_LEN, ML_KEM_768_PUBLIC_LEN, NONCE_LEN, SEALED_MIN_LEN,
    SEALED_VERSION,
};
use endra::identity::keystore::{HEADER_LEN, KEYSTORE_VERSION, MAX_M_COST_KIB, MIN_SEALED_LEN};
use endra::identity::{
    encapsulate, seal, verify, AgreementKeyPair, Algorithm, EpochKey, KdfFloor, KdfParams,
    KeyError, Keystore, KeystoreError, PublicKey, SigningContext, SigningKeyPair,
};
use proptest::prelude::*;
use rand_core::OsRng;

const CONTEXT: SigningContext = SigningContext::new("endra/test/v1");
const OTHER_CONTEXT: SigningContext = SigningContext::new("endra/test/v2");

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

fn hybrid_invalid() -> KeyError {
    KeyError::InvalidPoint {
        algorithm: Algorithm::HybridX25519MlKem768,
    }
}

// ---------------------------------------------------------------------------------------------
// Public keys

#[test]
fn ed25519_public_key_round_trips_with_multicodec_prefix() {
    let pair = SigningKeyPair::generate(&mut OsRng);
    let public = pair.public();
    assert_eq!(public.algorithm(), Algorithm::Ed25519);
    let bytes = public.to_bytes();
    assert_eq!(bytes.len(), 34);
    assert_eq!(&bytes[..2], &[0xed, 0x01]);
    assert_eq!(&bytes[2..], pair.as_dalek().verifying_key().as_bytes());
    assert_eq!(PublicKey::from_bytes(&bytes).unwrap(), public);
}

#[test]
fn hybrid_public_key_round_trips() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let public = pair.public();
    assert_eq!(public.algorithm(), Algorithm::HybridX25519MlKem768);
    let bytes = public.to_bytes();
    let tag = varint(HYBRID_PUBLIC_TAG);
    assert_eq!(&bytes[..tag.len()], &tag[..]);
    assert_eq!(bytes.len(), tag.len() + 32 + ML_KEM_768_PUBLIC_LEN);
    assert_eq!(PublicKey::from_bytes(&bytes).unwrap(), public);
    let PublicKey::HybridX25519MlKem768 { ml_kem, .. } = &public else {
        panic!("not hybrid")
    };
    assert_eq!(ml_kem.len(), ML_KEM_768_PUBLIC_LEN);
}

#[test]
fn public_key_tag_errors() {
    assert_eq!(PublicKey::from_bytes(&[]), Err(KeyError::Truncated));
    assert_eq!(PublicKey::from_bytes(&[0xed]), Err(KeyError::Truncated));
    assert_eq!(
        PublicKey::from_bytes(&[0x80, 0x80]),
        Err(KeyError::Truncated)
    );
    // 0xed spelled in three bytes instead of two.
    let mut overlong = vec![0xed, 0x81, 0x00];
    overlong.extend_from_slice(&[7; 32]);
    assert_eq!(
        PublicKey::from_bytes(&overlong),
        Err(KeyError::MalformedTag)
    );
    // Ten varint bytes: longer than multiformats allows.
    let mut long = vec![0xff; 9];
    long.push(0x01);
    assert_eq!(PublicKey::from_bytes(&long), Err(KeyError::MalformedTag));
    // x25519-pub (0xec) is a real multicodec, but not a key kind this version accepts.
    let mut x = varint(0xec);
    x.extend_from_slice(&[9; 32]);
    assert_eq!(
        PublicKey::from_bytes(&x),
        Err(KeyError::UnknownAlgorithm { tag: 0xec })
    );
    // Secret and encapsulation tags are not public-key tags.
    for tag in [
        ED25519_SECRET_TAG,
        HYBRID_SECRET_TAG,
        HYBRID_ENCAPSULATION_TAG,
    ] {
        let mut bytes = varint(tag);
        bytes.extend_from_slice(&[9; 32]);
        assert_eq!(
            PublicKey::from_bytes(&bytes),
            Err(KeyError::UnknownAlgorithm { tag })
        );
    }
}

#[test]
fn public_key_length_errors() {
    let ed = SigningKeyPair::generate(&mut OsRng).public().to_bytes();
    for cut in [ed.len() - 1, 2] {
        assert_eq!(
            PublicKey::from_bytes(&ed[..cut]),
            Err(KeyError::WrongLength {
                expected: 32,
                actual: cut - 2
            })
        );
    }
    let mut longer = ed.clone();
    longer.push(0);
    assert_eq!(
        PublicKey::from_bytes(&longer),
        Err(KeyError::WrongLength {
            expected: 32,
            actual: 33
        })
    );

    let hybrid = AgreementKeyPair::generate(&mut OsRng).public().to_bytes();
    let tag_len = varint(HYBRID_PUBLIC_TAG).len();
    let body = 32 + ML_KEM_768_PUBLIC_LEN;
    assert_eq!(
        PublicKey::from_bytes(&hybrid[..hybrid.len() - 1]),
        Err(KeyError::WrongLength {
            expected: body,
            actual: body - 1
        })
    );
    let mut longer = hybrid.clone();
    longer.push(0);
    assert_eq!(
        PublicKey::from_bytes(&longer),
        Err(KeyError::WrongLength {
            expected: body,
            actual: body + 1
        })
    );
    assert_eq!(hybrid.len(), tag_len + body);
}

#[test]
fn invalid_ed25519_points_are_rejected() {
    let invalid = Err(KeyError::InvalidPoint {
        algorithm: Algorithm::Ed25519,
    });
    // The identity point: decompresses, but has small order (a "weak" key).
    let mut identity = vec![0xed, 0x01, 1];
    identity.extend_from_slice(&[0; 31]);
    assert_eq!(PublicKey::from_bytes(&identity), invalid);
    // A y-coordinate with no matching x: find one.
    let not_on_curve = (2u8..=255)
        .map(|y| {
            let mut key = [0u8; 32];
            key[0] = y;
            key
        })
        .find(|key| ed25519_dalek::VerifyingKey::from_bytes(key).is_err())
        .expect("some small y is off the curve");
    let mut bytes = vec![0xed, 0x01];
    bytes.extend_from_slice(&not_on_curve);
    assert_eq!(PublicKey::from_bytes(&bytes), invalid);
}

#[test]
fn small_order_x25519_and_unreduced_ml_kem_keys_are_rejected() {
    let good = AgreementKeyPair::generate(&mut OsRng).public().to_bytes();
    let tag_len = varint(HYBRID_PUBLIC_TAG).len();
    // u = 0 and u = 1 have small order; so does p (non-canonical 0) and the order-8 point.
    let order8 = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ];
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut one = [0; 32];
    one[0] = 1;
    for x in [[0; 32], one, p, order8] {
        let mut bytes = good.clone();
        bytes[tag_len..tag_len + 32].copy_from_slice(&x);
        assert_eq!(PublicKey::from_bytes(&bytes), Err(hybrid_invalid()));
    }
    // ML-KEM: the first 12-bit coefficient set to 0xfff ≥ q = 3329 fails FIPS 203's check.
    let mut bytes = good.clone();
    bytes[tag_len + 32] = 0xff;
    bytes[tag_len + 33] |= 0x0f;
    assert_eq!(PublicKey::from_bytes(&bytes), Err(hybrid_invalid()));
}

#[test]
fn debug_output_hides_secrets() {
    let signing = SigningKeyPair::generate(&mut OsRng);
    let agreement = AgreementKeyPair::generate(&mut OsRng);
    let epoch = EpochKey::generate(&mut OsRng);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let signing_secret = signing.to_secret_bytes();
    let agreement_secret = agreement.to_secret_bytes();
    let texts = [
        format!("{signing:?}"),
        format!("{agreement:?}"),
        format!("{epoch:?}"),
    ];
    for text in &texts {
        assert!(!text.contains(&hex(&signing_secret[2..10])), "{text}");
        assert!(!text.contains(&hex(&agreement_secret[6..14])), "{text}");
        assert!(!text.contains(&hex(&epoch.as_bytes()[..8])), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Secret keys

#[test]
fn signing_secret_round_trips() {
    let pair = SigningKeyPair::generate(&mut OsRng);
    let bytes = pair.to_secret_bytes();
    assert_eq!(&bytes[..2], &varint(ED25519_SECRET_TAG)[..]);
    assert_eq!(bytes.len(), 34);
    let restored = SigningKeyPair::from_secret_bytes(&bytes).unwrap();
    assert_eq!(restored.public(), pair.public());
    assert_eq!(restored.sign(CONTEXT, b"m"), pair.sign(CONTEXT, b"m"));

    assert_eq!(
        SigningKeyPair::from_secret_bytes(&bytes[..33]).unwrap_err(),
        KeyError::WrongLength {
            expected: 32,
            actual: 31
        }
    );
    let agreement = AgreementKeyPair::generate(&mut OsRng).to_secret_bytes();
    assert_eq!(
        SigningKeyPair::from_secret_bytes(&agreement).unwrap_err(),
        KeyError::UnknownAlgorithm {
            tag: HYBRID_SECRET_TAG
        }
    );
}

#[test]
fn agreement_secret_round_trips_and_still_decapsulates() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let bytes = pair.to_secret_bytes();
    let tag = varint(HYBRID_SECRET_TAG);
    assert_eq!(&bytes[..tag.len()], &tag[..]);
    assert_eq!(bytes.len(), tag.len() + 32 + 64);
    let restored = AgreementKeyPair::from_secret_bytes(&bytes).unwrap();
    assert_eq!(restored.public(), pair.public());
    assert_eq!(restored.to_secret_bytes(), bytes);

    let (encapsulation, secret) = encapsulate(&pair.public(), &mut OsRng).unwrap();
    assert_eq!(
        restored.decapsulate(&encapsulation).unwrap().as_bytes(),
        secret.as_bytes()
    );

    for cut in [bytes.len() - 1, tag.len()] {
        assert_eq!(
            AgreementKeyPair::from_secret_bytes(&bytes[..cut]).unwrap_err(),
            KeyError::WrongLength {
                expected: 96,
                actual: cut - tag.len()
            }
        );
    }
    let signing = SigningKeyPair::generate(&mut OsRng).to_secret_bytes();
    assert_eq!(
        AgreementKeyPair::from_secret_bytes(&signing).unwrap_err(),
        KeyError::UnknownAlgorithm {
            tag: ED25519_SECRET_TAG
        }
    );
    // A public key is not a secret key.
    assert_eq!(
        AgreementKeyPair::from_secret_bytes(&pair.public().to_bytes()).unwrap_err(),
        KeyError::UnknownAlgorithm {
            tag: HYBRID_PUBLIC_TAG
        }
    );
}

#[test]
fn the_ml_kem_key_is_derived_from_the_stored_seed() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let mut bytes = pair.to_secret_bytes().to_vec();
    let last = bytes.len() - 1;
    // Changing the seed's `d` half changes the ML-KEM public key; the X25519 half stays.
    let d_at = last - 40;
    bytes[d_at] ^= 1;
    let other = AgreementKeyPair::from_secret_bytes(&bytes).unwrap();
    let (
        PublicKey::HybridX25519MlKem768 {
            x25519: x_a,
            ml_kem: m_a,
        },
        PublicKey::HybridX25519MlKem768 {
            x25519: x_b,
            ml_kem: m_b,
        },
    ) = (pair.public(), other.public())
    else {
        panic!("not hybrid")
    };
    assert_eq!(x_a, x_b);
    assert_ne!(m_a, m_b);
}

// ---------------------------------------------------------------------------------------------
// Signatures

#[test]
fn signatures_verify_and_are_domain_separated() {
    let pair = SigningKeyPair::generate(&mut OsRng);
    let public = pair.public();
    let sig = pair.sign(CONTEXT, b"hello");
    assert_eq!(verify(&public, CONTEXT, b"hello", &sig), Ok(()));
    // The signed bytes are `label ‖ 0x00 ‖ msg`.
    let dalek: &SigningKey = pair.as_dalek();
    assert_eq!(dalek.sign(b"endra/test/v1\0hello").to_bytes(), sig);

    assert_eq!(
        verify(&public, OTHER_CONTEXT, b"hello", &sig),
        Err(KeyError::BadSignature)
    );
    assert_eq!(
        verify(&public, CONTEXT, b"hellO", &sig),
        Err(KeyError::BadSignature)
    );
    let other = SigningKeyPair::generate(&mut OsRng).public();
    assert_eq!(
        verify(&other, CONTEXT, b"hello", &sig),
        Err(KeyError::BadSignature)
    );
    for i in [0, 31, 32, 63] {
        let mut bad = sig;
        bad[i] ^= 0x01;
        assert_eq!(
            verify(&public, CONTEXT, b"hello", &bad),
            Err(KeyError::BadSignature),
            "byte {i}"
        );
    }
    assert_eq!(
        verify(&public, CONTEXT, b"hello", &sig[..63]),
        Err(KeyError::WrongLength {
            expected: 64,
            actual: 63
        })
    );
    let hybrid = AgreementKeyPair::generate(&mut OsRng).public();
    assert_eq!(
        verify(&hybrid, CONTEXT, b"hello", &sig),
        Err(KeyError::WrongAlgorithm {
            expected: Algorithm::Ed25519,
            actual: Algorithm::HybridX25519MlKem768
        })
    );
}

#[test]
fn verify_strict_refuses_a_non_canonical_s() {
    let pair = SigningKeyPair::generate(&mut OsRng);
    let mut sig = pair.sign(CONTEXT, b"m");
    // S + ℓ: the same point equation, but S is not reduced.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(
        verify(&pair.public(), CONTEXT, b"m", &sig),
        Err(KeyError::BadSignature)
    );
}

#[test]
#[should_panic(expected = "NUL")]
fn signing_context_with_nul_is_refused() {
    let label: &'static str = Box::leak(String::from("a\0b").into_boxed_str());
    let _ = SigningContext::new(label);
}

// ---------------------------------------------------------------------------------------------
// Hybrid KEM

#[test]
fn kem_agrees_and_each_encapsulation_is_fresh() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let (e1, s1) = encapsulate(&pair.public(), &mut OsRng).unwrap();
    let (e2, s2) = encapsulate(&pair.public(), &mut OsRng).unwrap();
    assert_eq!(pair.decapsulate(&e1).unwrap().as_bytes(), s1.as_bytes());
    assert_eq!(pair.decapsulate(&e2).unwrap().as_bytes(), s2.as_bytes());
    assert_ne!(s1.as_bytes(), s2.as_bytes());
    assert_ne!(e1, e2);
    assert_ne!(e1.ephemeral_x25519(), e2.ephemeral_x25519());
    assert_eq!(e1.ml_kem_ciphertext().len(), ML_KEM_768_CIPHERTEXT_LEN);

    // Another key pair derives something else from the same encapsulation.
    let other = AgreementKeyPair::generate(&mut OsRng);
    assert_ne!(other.decapsulate(&e1).unwrap().as_bytes(), s1.as_bytes());
}

#[test]
fn kem_secret_depends_on_both_halves() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let (encapsulation, secret) = encapsulate(&pair.public(), &mut OsRng).unwrap();
    let bytes = encapsulation.to_bytes();
    let tag_len = varint(HYBRID_ENCAPSULATION_TAG).len();
    // A changed ML-KEM ciphertext: implicit rejection, an unrelated secret.
    let mut ct = bytes.clone();
    ct[tag_len + 32 + 500] ^= 0x40;
    let changed = Encapsulation::from_bytes(&ct).unwrap();
    assert_ne!(
        pair.decapsulate(&changed).unwrap().as_bytes(),
        secret.as_bytes()
    );
    // A changed ephemeral X25519 key (still of large order).
    let mut eph = bytes.clone();
    eph[tag_len + 3] ^= 0x01;
    let changed = Encapsulation::from_bytes(&eph).unwrap();
    match pair.decapsulate(&changed) {
        Ok(s) => assert_ne!(s.as_bytes(), secret.as_bytes()),
        Err(e) => assert_eq!(e, hybrid_invalid()),
    }
    // A small-order ephemeral key is refused outright.
    let mut zero = bytes.clone();
    zero[tag_len..tag_len + 32].fill(0);
    let changed = Encapsulation::from_bytes(&zero).unwrap();
    assert_eq!(pair.decapsulate(&changed).unwrap_err(), hybrid_invalid());
}

#[test]
fn encapsulation_round_trips_and_rejects_bad_bytes() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let (encapsulation, _) = encapsulate(&pair.public(), &mut OsRng).unwrap();
    let bytes = encapsulation.to_bytes();
    assert_eq!(bytes.len(), Encapsulation::ENCODED_LEN);
    assert_eq!(Encapsulation::from_bytes(&bytes).unwrap(), encapsulation);
    let body = 32 + ML_KEM_768_CIPHERTEXT_LEN;
    assert_eq!(
        Encapsulation::from_bytes(&bytes[..bytes.len() - 1]),
        Err(KeyError::WrongLength {
            expected: body,
            actual: body - 1
        })
    );
    assert_eq!(
        Encapsulation::from_bytes(&pair.public().to_bytes()),
        Err(KeyError::UnknownAlgorithm {
            tag: HYBRID_PUBLIC_TAG
        })
    );
    assert_eq!(Encapsulation::from_bytes(&[]), Err(KeyError::Truncated));
}

#[test]
fn encapsulating_to_a_signing_key_is_refused() {
    let ed = SigningKeyPair::generate(&mut OsRng).public();
    let wrong = KeyError::WrongAlgorithm {
        expected: Algorithm::HybridX25519MlKem768,
        actual: Algorithm::Ed25519,
    };
    assert_eq!(encapsulate(&ed, &mut OsRng).unwrap_err(), wrong);
    assert_eq!(seal(&ed, b"", b"x", &mut OsRng).unwrap_err(), wrong);
}

// ---------------------------------------------------------------------------------------------
// Sealing

#[test]
fn seal_open_round_trip() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let sealed = seal(
        &pair.public(),
        b"chain+epoch",
        b"epoch key bytes",
        &mut OsRng,
    )
    .unwrap();
    assert_eq!(sealed[0], SEALED_VERSION);
    assert_eq!(sealed.len(), SEALED_MIN_LEN + b"epoch key bytes".len());
    assert_eq!(
        pair.open(b"chain+epoch", &sealed).unwrap(),
        b"epoch key bytes"
    );
    // Empty plaintext and empty AAD work too.
    let empty = seal(&pair.public(), b"", b"", &mut OsRng).unwrap();
    assert_eq!(empty.len(), SEALED_MIN_LEN);
    assert_eq!(pair.open(b"", &empty).unwrap(), b"");
    // Two seals of the same message differ.
    let again = seal(
        &pair.public(),
        b"chain+epoch",
        b"epoch key bytes",
        &mut OsRng,
    )
    .unwrap();
    assert_ne!(sealed, again);
}

#[test]
fn wrong_recipient_and_rotated_keys_cannot_open() {
    let old = AgreementKeyPair::generate(&mut OsRng);
    let sealed = seal(&old.public(), b"aad", b"secret", &mut OsRng).unwrap();
    let stranger = AgreementKeyPair::generate(&mut OsRng);
    assert_eq!(
        stranger.open(b"aad", &sealed),
        Err(KeyError::DecryptionFailed)
    );
    // Rotation: the device's new key pair cannot open what was sealed to the old one, and
    // the old one cannot open what is sealed to the new.
    let rotated = AgreementKeyPair::generate(&mut OsRng);
    assert_eq!(
        rotated.open(b"aad", &sealed),
        Err(KeyError::DecryptionFailed)
    );
    let fresh = seal(&rotated.public(), b"aad", b"new epoch", &mut OsRng).unwrap();
    assert_eq!(old.open(b"aad", &fresh), Err(KeyError::DecryptionFailed));
    assert_eq!(rotated.open(b"aad", &fresh).unwrap(), b"new epoch");
}

#[test]
fn modified_aad_fails() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let sealed = seal(&pair.public(), b"aad", b"secret", &mut OsRng).unwrap();
    for aad in [&b"aaD"[..], b"", b"aad\0", b"aa"] {
        assert_eq!(pair.open(aad, &sealed), Err(KeyError::DecryptionFailed));
    }
}

#[test]
fn every_modified_region_of_a_sealed_message_fails() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let sealed = seal(&pair.public(), b"aad", b"some secret", &mut OsRng).unwrap();
    let tag_len = varint(HYBRID_ENCAPSULATION_TAG).len();
    let ephemeral = 1 + tag_len;
    let ciphertext = ephemeral + 32;
    let nonce = ciphertext + ML_KEM_768_CIPHERTEXT_LEN;
    let body = nonce + NONCE_LEN;
    for at in [
        ephemeral,
        ephemeral + 31,
        ciphertext,
        ciphertext + 700,
        nonce - 1,
        nonce,
        nonce + 23,
        body,
        sealed.len() - 1,
    ] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x02;
        let err = pair.open(b"aad", &bad).unwrap_err();
        assert!(
            err == KeyError::DecryptionFailed || err == hybrid_invalid(),
            "byte {at}: {err:?}"
        );
    }
    let mut bad = sealed.clone();
    bad[0] = 2;
    assert_eq!(
        pair.open(b"aad", &bad),
        Err(KeyError::UnsupportedVersion { version: 2 })
    );
    let mut bad = sealed.clone();
    bad[1] ^= 0x01;
    assert!(matches!(
        pair.open(b"aad", &bad),
        Err(KeyError::UnknownAlgorithm { .. })
    ));
}

#[test]
fn truncated_sealed_messages_fail() {
    let pair = AgreementKeyPair::generate(&mut OsRng);
    let sealed = seal(&pair.public(), b"", b"abc", &mut OsRng).unwrap();
    assert!(matches!(
        pair.open(b"", &[]),
        Err(KeyError::WrongLength { actual: 0, .. })
    ));
    assert_eq!(pair.open(b"", &sealed[..1]), Err(KeyError::Truncated));
    for cut in [10, SEALED_MIN_LEN - 1] {
        assert_eq!(
            pair.open(b"", &sealed[..cut]),
            Err(KeyError::WrongLength {
                expected: SEALED_MIN_LEN,
                actual: cut
            })
        );
    }
    // Long enough to parse, but the tag is cut: authentication fails.
    assert_eq!(
        pair.open(b"", &sealed[..sealed.len() - 1]),
        Err(KeyError::DecryptionFailed)
    );
}

// ---------------------------------------------------------------------------------------------
// Epoch keys

#[test]
fn epoch_key_round_trip_and_failures() {
    let key = EpochKey::generate(&mut OsRng);
    let ct = key.encrypt(b"chain|block", b"message", &mut OsRng).unwrap();
    assert_eq!(ct[0], 1);
    assert_eq!(ct.len(), 1 + 24 + 7 + 16);
    assert_eq!(key.decrypt(b"chain|block", &ct).unwrap(), b"message");
    assert_ne!(
        ct,
        key.encrypt(b"chain|block", b"message", &mut OsRng).unwrap()
    );

    let other = EpochKey::generate(&mut OsRng);
    assert_eq!(
        other.decrypt(b"chain|block", &ct),
        Err(KeyError::DecryptionFailed)
    );
    assert_eq!(
        key.decrypt(b"chain|blocK", &ct),
        Err(KeyError::DecryptionFailed)
    );
    for at in [1, 24, 25, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[at] ^= 0x80;
        assert_eq!(
            key.decrypt(b"chain|block", &bad),
            Err(KeyError::DecryptionFailed),
            "byte {at}"
        );
    }
    let mut bad = ct.clone();
    bad[0] = 9;
    assert_eq!(
        key.decrypt(b"chain|block", &bad),
        Err(KeyError::UnsupportedVersion { version: 9 })
    );
    assert!(matches!(
        key.decrypt(b"chain|block", &ct[..40]),
        Err(KeyError::WrongLength { actual: 40, .. })
    ));
    assert!(matches!(
        key.decrypt(b"", &[]),
        Err(KeyError::WrongLength { actual: 0, .. })
    ));

    // An epoch key travels sealed to each device and comes back whole.
    let device = AgreementKeyPair::generate(&mut OsRng);
    let sealed = seal(&device.public(), b"epoch 7", key.as_bytes(), &mut OsRng).unwrap();
    let opened = EpochKey::from_slice(&device.open(b"epoch 7", &sealed).unwrap()).unwrap();
    assert_eq!(opened.decrypt(b"chain|block", &ct).unwrap(), b"message");
    assert!(matches!(
        EpochKey::from_slice(&[0; 31]),
        Err(KeyError::WrongLength {
            expected: 32,
            actual: 31
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// Keystore

fn bundle() -> (Vec<u8>, SigningKeyPair, AgreementKeyPair) {
    let signing = SigningKeyPair::generate(&mut OsRng);
    let agreement = AgreementKeyPair::generate(&mut OsRng);
    let mut secrets = signing.to_secret_bytes().to_vec();
    secrets.extend_from_slice(&agreement.to_secret_bytes());
    (secrets, signing, agreement)
}

const CHEAP: KdfParams = KdfParams::INSECURE_TEST;

#[test]
fn keystore_round_trip_with_default_params() {
    let (secrets, signing, agreement) = bundle();
    let sealed = Keystore::seal("correct horse battery staple", &secrets, &mut OsRng).unwrap();
    assert_eq!(sealed[0], KEYSTORE_VERSION);
    assert_eq!(sealed.len(), MIN_SEALED_LEN + secrets.len());
    assert_eq!(Keystore::params(&sealed).unwrap(), KdfParams::DEFAULT);
    let opened = Keystore::open("correct horse battery staple", &sealed).unwrap();
    assert_eq!(&opened[..], &secrets[..]);
    // The keys come back.
    let restored = SigningKeyPair::from_secret_bytes(&opened[..34]).unwrap();
    assert_eq!(restored.public(), signing.public());
    let restored = AgreementKeyPair::from_secret_bytes(&opened[34..]).unwrap();
    assert_eq!(restored.public(), agreement.public());
    assert_eq!(
        Keystore::open("correct horse battery stapler", &sealed),
        Err(KeystoreError::WrongPassphrase)
    );
}

#[test]
fn sealed_keystore_contains_no_window_of_the_secret() {
    let (secrets, _, _) = bundle();
    let sealed = Keystore::seal_with_params("pw", &secrets, CHEAP, &mut OsRng).unwrap();
    for window in secrets.windows(16) {
        assert!(
            !sealed.windows(16).any(|w| w == window),
            "a 16-byte run of the secret appears in the sealed bytes"
        );
    }
}

#[test]
fn keystore_failures_have_their_own_errors() {
    let (secrets, _, _) = bundle();
    let sealed = Keystore::seal_with_params("pw", &secrets, CHEAP, &mut OsRng).unwrap();
    let open = |bytes: &[u8], pw: &str| Keystore::open_with_floor(pw, bytes, KdfFloor::NONE);
    assert_eq!(&open(&sealed, "pw").unwrap()[..], &secrets[..]);
    assert_eq!(open(&sealed, "pW"), Err(KeystoreError::WrongPassphrase));
    assert_eq!(open(&sealed, ""), Err(KeystoreError::WrongPassphrase));

    for cut in [0, 1, 13, HEADER_LEN, MIN_SEALED_LEN - 1] {
        assert_eq!(
            open(&sealed[..cut], "pw"),
            Err(KeystoreError::Corrupt),
            "cut {cut}"
        );
    }
    // Long enough to parse: a cut tag or body fails authentication.
    assert_eq!(
        open(&sealed[..sealed.len() - 1], "pw"),
        Err(KeystoreError::WrongPassphrase)
    );

    let mut bad = sealed.clone();
    bad[0] = 2;
    assert_eq!(
        open(&bad, "pw"),
        Err(KeystoreError::UnsupportedVersion { version: 2 })
    );
    // Every header byte is authenticated: parameters (m_cost 8 → 10 KiB, t_cost 1 → 3), salt,
    // nonce; and so is the body.
    for at in [4, 8, 13, 28, 29, 52, HEADER_LEN, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x02;
        assert_eq!(
            open(&bad, "pw"),
            Err(KeystoreError::WrongPassphrase),
            "byte {at}"
        );
    }
    // p_cost = 0: Argon2 refuses to run, the blob is corrupt.
    let mut bad = sealed.clone();
    bad[12] = 0;
    assert_eq!(open(&bad, "pw"), Err(KeystoreError::Corrupt));
}

#[test]
fn keystore_refuses_downgraded_and_excessive_params() {
    let sealed = Keystore::seal_with_params("pw", b"s", CHEAP, &mut OsRng).unwrap();
    assert_eq!(
        Keystore::open("pw", &sealed),
        Err(KeystoreError::WeakParams { params: CHEAP })
    );
    // Raising m_cost to 64 GiB is refused before anything is allocated.
    let mut huge = sealed.clone();
    huge[1..5].copy_from_slice(&(64u32 << 20).to_be_bytes());
    assert!(matches!(
        Keystore::open_with_floor("pw", &huge, KdfFloor::NONE),
        Err(KeystoreError::ExcessiveParams { .. })
    ));
    let mut slow = sealed.clone();
    slow[5..9].copy_from_slice(&1000u32.to_be_bytes());
    assert!(matches!(
        Keystore::open("pw", &slow),
        Err(KeystoreError::ExcessiveParams { .. })
    ));

    let zero_lanes = KdfParams { p_cost: 0, ..CHEAP };
    assert_eq!(
        Keystore::seal_with_params("pw", b"s", zero_lanes, &mut OsRng),
        Err(KeystoreError::InvalidParams { params: zero_lanes })
    );
    let too_big = KdfParams {
        m_cost_kib: MAX_M_COST_KIB + 1,
        ..KdfParams::DEFAULT
    };
    assert_eq!(
        Keystore::seal_with_params("pw", b"s", too_big, &mut OsRng),
        Err(KeystoreError::InvalidParams { params: too_big })
    );
}

#[test]
fn recommended_floor_admits_owasp_settings_only() {
    let floor = KdfFloor::RECOMMENDED;
    for (m_mib, t) in [(47, 1), (19, 2), (12, 3), (9, 4), (7, 5)] {
        let params = KdfParams {
            m_cost_kib: m_mib * 1024,
            t_cost: t,
            p_cost: 1,
        };
        assert!(floor.admits(&params), "{params:?}");
    }
    assert!(floor.admits(&KdfParams::DEFAULT));
    for (m_kib, t) in [(19 * 1024, 1), (6 * 1024, 10), (7 * 1024, 4), (8, 1)] {
        let params = KdfParams {
            m_cost_kib: m_kib,
            t_cost: t,
            p_cost: 1,
        };
        assert!(!floor.admits(&params), "{params:?}");
    }
    assert!(KdfFloor::NONE.admits(&CHEAP));
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let _ = PublicKey::from_bytes(&bytes);
        let _ = Encapsulation::from_bytes(&bytes);
        let _ = SigningKeyPair::from_secret_bytes(&bytes);
        let _ = AgreementKeyPair::from_secret_bytes(&bytes);
        let _ = Keystore::params(&bytes);
        let key = EpochKey::from_bytes([7; 32]);
        prop_assert!(key.decrypt(b"", &bytes).is_err());
    }

    #[test]
    fn seal_and_epoch_encryption_round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let pair = AgreementKeyPair::generate(&mut OsRng);
        let sealed = seal(&pair.public(), &aad, &plaintext, &mut OsRng).unwrap();
        prop_assert_eq!(pair.open(&aad, &sealed).unwrap(), plaintext.clone());
        let mut other_aad = aad.clone();
        other_aad.push(0);
        prop_assert_eq!(pair.open(&other_aad, &sealed), Err(KeyError::DecryptionFailed));

        let key = EpochKey::generate(&mut OsRng);
        let ct = key.encrypt(&aad, &plaintext, &mut OsRng).unwrap();
        prop_assert_eq!(key.decrypt(&aad, &ct).unwrap(), plaintext);
    }

    #[test]
    fn a_flipped_bit_anywhere_breaks_a_sealed_message(bit in 0usize..(SEALED_MIN_LEN + 8) * 8) {
        let pair = AgreementKeyPair::generate(&mut OsRng);
        let mut sealed = seal(&pair.public(), b"aad", b"8 bytes!", &mut OsRng).unwrap();
        sealed[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(pair.open(b"aad", &sealed).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// The formats are the documented ones, recomputed here from the primitives.

#[test]
fn kem_combiner_and_seal_format_match_the_docs() {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use ml_kem::kem::Decapsulate;
    use ml_kem::{KemCore, MlKem768, B32};

    let pair = AgreementKeyPair::generate(&mut OsRng);
    let secret = pair.to_secret_bytes();
    let tag_len = varint(HYBRID_SECRET_TAG).len();
    let scalar: [u8; 32] = secret[tag_len..tag_len + 32].try_into().unwrap();
    let d: [u8; 32] = secret[tag_len + 32..tag_len + 64].try_into().unwrap();
    let z: [u8; 32] = secret[tag_len + 64..].try_into().unwrap();

    let (encapsulation, shared) = encapsulate(&pair.public(), &mut OsRng).unwrap();
    let x_ss = x25519_dalek::StaticSecret::from(scalar).diffie_hellman(
        &x25519_dalek::PublicKey::from(*encapsulation.ephemeral_x25519()),
    );
    let (dk, _) = MlKem768::generate_deterministic(&B32::from(d), &B32::from(z));
    let ct = ml_kem::Ciphertext::<MlKem768>::try_from(encapsulation.ml_kem_ciphertext()).unwrap();
    let m_ss = dk.decapsulate(&ct).unwrap();
    let mut ikm = x_ss.as_bytes().to_vec();
    ikm.extend_from_slice(&m_ss);
    let mut expected = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(None, &ikm)
        .expand_multi_info(
            &[
                b"endra/identity/kem/x25519-mlkem768/v1\0",
                encapsulation.ephemeral_x25519(),
                encapsulation.ml_kem_ciphertext(),
                &pair.public().to_bytes(),
            ],
            &mut expected,
        )
        .unwrap();
    assert_eq!(shared.as_bytes(), &expected);

    // seal: version ‖ encapsulation ‖ nonce ‖ AEAD(key = HKDF(ss, label), aad = header ‖ aad).
    let sealed = seal(&pair.public(), b"aad", b"plain", &mut OsRng).unwrap();
    let enc_end = 1 + Encapsulation::ENCODED_LEN;
    let header_len = enc_end + NONCE_LEN;
    let encapsulation = Encapsulation::from_bytes(&sealed[1..enc_end]).unwrap();
    let shared = pair.decapsulate(&encapsulation).unwrap();
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(None, shared.as_bytes())
        .expand(b"endra/identity/seal/v1\0", &mut key)
        .unwrap();
    let mut aad = sealed[..header_len].to_vec();
    aad.extend_from_slice(b"aad");
    let plain = chacha20poly1305::XChaCha20Poly1305::new(&key.into())
        .decrypt(
            chacha20poly1305::XNonce::from_slice(&sealed[enc_end..header_len]),
            Payload {
                msg: &sealed[header_len..],
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(plain, b"plain");
}

#[test]
fn keystore_format_matches_the_docs() {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};

    let params = KdfParams {
        m_cost_kib: 64,
        t_cost: 2,
        p_cost: 1,
    };
    let sealed = Keystore::seal_with_params("pässword", b"bundle", params, &mut OsRng).unwrap();
    assert_eq!(sealed[0], 1);
    assert_eq!(&sealed[1..5], &64u32.to_be_bytes());
    assert_eq!(&sealed[5..9], &2u32.to_be_bytes());
    assert_eq!(&sealed[9..13], &1u32.to_be_bytes());
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(64, 2, 1, Some(32)).unwrap(),
    );
    let mut key = [0u8; 32];
    argon
        .hash_password_into("pässword".as_bytes(), &sealed[13..29], &mut key)
        .unwrap();
    let plain = chacha20poly1305::XChaCha20Poly1305::new(&key.into())
        .decrypt(
            chacha20poly1305::XNonce::from_slice(&sealed[29..HEADER_LEN]),
            Payload {
                msg: &sealed[HEADER_LEN..],
                aad: &sealed[..HEADER_LEN],
            },
        )
        .unwrap();
    assert_eq!(plain, b"bundle");
}
