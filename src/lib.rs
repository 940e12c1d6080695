//! Endra: a peer-to-peer, end-to-end encrypted messaging stack.
//!
//! Layers (see the README's architecture section):
//! - [`cbor`]: the strict canonical DAG-CBOR codec every wire and block format is written in.
//! - [`walytis`]: the block DAG ("database blockchain") of each group — block model, canonical
//!   codec, validation, deterministic order, new-block notification.
//! - [`store`]: persistence behind the [`store::BlockStore`] trait, with memory, redb (native)
//!   and IndexedDB (browser) implementations.
//! - [`identity`]: DIDs for devices, people and groups backed by chains: device keys, the
//!   hybrid X25519 + ML-KEM-768 KEM, epoch keys, the passphrase-encrypted keystore, chains
//!   bound to an identity, authenticated sessions.
//! - [`envelope`]: the versioned content envelope (kind, target, payload) inside every seal.
//! - [`offchain`]: private content kept out of the chain: commitments, verified segments,
//!   STREAM sealing, the content store port, fetching and serving content (sans-IO; the
//!   transfer over libp2p and the JS API are not built yet).
//! - [`mutability`]: records edited and deleted through version blocks, folded alike by
//!   every replica, with their whole history.
//! - [`client`]: one device's account in an identity and its bound chains, with the protocol
//!   steps every front end needs; the wasm bindings and native tools drive it.
//! - `net` (cargo feature `net`): the libp2p shell that syncs chains through relays.
//! - `wasm` (browser builds only): the JavaScript bindings shipped in the npm package.
//!
//! Offchain transfer over the network, the records' JS API and the messenger arrive in later
//! layers; the README says what is built today.

pub mod cbor;
pub mod client;
pub mod envelope;
pub mod identity;
pub mod mutability;
#[cfg(feature = "net")]
pub mod net;
pub mod offchain;
pub mod store;
pub mod walytis;

#[cfg(target_arch = "wasm32")]
mod wasm;
