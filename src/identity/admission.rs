//! The admission rule of identity chains: only blocks by devices that the block's own
//! history authorises are stored, by every replica (see [`crate::walytis::Admission`] and
//! [`IdentityState::admits`]).

use crate::walytis::{Admission, Author, Block};

use super::ops::IDENTITY_TOPIC;
use super::state::IdentityState;

/// The rule for chains whose genesis carries the identity topic; `None` for other chains.
pub fn admission_rule(genesis: &Block) -> Option<Box<dyn Admission>> {
    if !genesis.topics().iter().any(|t| t == IDENTITY_TOPIC) {
        return None;
    }
    let mut rule = IdentityRule {
        view: Err(String::new()),
    };
    rule.rebuild(std::slice::from_ref(genesis));
    Some(Box::new(rule))
}

/// The identity state of an ancestry, or why its genesis founds no valid identity (then
/// nothing more is admitted: the chain claims to be an identity and is not one).
struct IdentityRule {
    view: Result<IdentityState, String>,
}

impl Admission for IdentityRule {
    fn rebuild(&mut self, ancestry: &[Block]) {
        self.view = IdentityState::resolve(ancestry).map_err(|e| e.to_string());
    }

    fn check(&self, block: &Block) -> Result<(), String> {
        match &self.view {
            Ok(state) => state
                .admits(block)
                .map_err(|rejection| rejection.to_string()),
            Err(why) => Err(format!("the genesis founds no valid identity: {why}")),
        }
    }

    fn extend(&mut self, block: &Block) {
        if let Ok(state) = &mut self.view {
            state.extend_appended([block]);
        }
    }

    /// Every current device of every member may write the identity's bound chains.
    fn authorises(&self, author: &Author) -> bool {
        matches!(&self.view, Ok(state) if state.signer(author.key_bytes()).is_some())
    }

    /// A removed device's keys, or a removed member's, are retired; a rotated-out key of a
    /// current device is not.
    fn retired(&self, author: &Author) -> bool {
        matches!(&self.view, Ok(state) if state.is_retired(author.key_bytes()))
    }
}
