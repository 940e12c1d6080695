//! Endra: a peer-to-peer, end-to-end encrypted messaging stack.
//!
//! Layers (see the README's architecture section):
//! - [`walytis`]: the block DAG ("database blockchain") of each group — block model, canonical
//!   codec, validation, deterministic order, new-block notification.
//! - [`store`]: persistence behind the [`store::BlockStore`] trait, with memory, redb (native)
//!   and IndexedDB (browser) implementations.
//! - `wasm` (browser builds only): the JavaScript bindings shipped in the npm package.
//!
//! Identities, offchain blocks, mutability, the messenger and the network arrive in later
//! layers; the README says what is built today.

#[cfg(feature = "net")]
pub mod net;
pub mod store;
pub mod walytis;

#[cfg(target_arch = "wasm32")]
mod wasm;
