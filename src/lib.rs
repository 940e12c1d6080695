//! Endra: a peer-to-peer, end-to-end encrypted messaging stack.
//!
//! Layers (see the README's architecture section):
//! - [`walytis`]: the block DAG ("database blockchain") of each group — block model, canonical
//!   codec, validation, deterministic order, new-block notification.
//! - [`store`]: persistence behind the [`store::BlockStore`] trait, with memory, redb (native)
//!   and IndexedDB (browser) implementations.
//! - [`identity`]: device keys — tagged public keys, signing, the hybrid X25519 + ML-KEM-768
//!   KEM, sealing, epoch keys — and the passphrase-encrypted keystore.
//! - `net` (cargo feature `net`): the libp2p shell that syncs chains through relays.
//! - `wasm` (browser builds only): the JavaScript bindings shipped in the npm package.
//!
//! Identity documents (DIDs), offchain blocks, mutability and the messenger arrive in later
//! layers; the README says what is built today.

pub mod identity;
#[cfg(feature = "net")]
pub mod net;
pub mod store;
pub mod walytis;

#[cfg(target_arch = "wasm32")]
mod wasm;
