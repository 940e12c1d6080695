//! The admission rule of identity chains: only blocks by devices that the block's own
//! history authorises are stored, by every replica (see [`crate::walytis::Admission`] and
//! [`IdentityState::admits`]). Identity registers it with Walytis as [`IdentityChains`]; a
//! replica gets it, with Walytis's own kinds, from [`rules`].

use crate::walytis::{Admission, Author, Block, BlockId, ChainRule, Refused, Rules, Writers};

use super::ops::IDENTITY_TOPIC;
use super::state::{IdentityState, Rejection};

/// The kinds of chain an Endra replica knows: Walytis's own and identity chains. Every chain
/// opener — a page, a node, the relay's mailbox — takes these.
pub fn rules() -> Rules {
    Rules::walytis().with(IdentityChains)
}

/// The kind of chain whose genesis carries [`IDENTITY_TOPIC`]: held to the identity rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityChains;

impl ChainRule for IdentityChains {
    fn topic(&self) -> &'static str {
        IDENTITY_TOPIC
    }

    fn admission(&self, genesis: &Block) -> Box<dyn Admission> {
        let mut rule = IdentityRule {
            view: Err(Rejection::NotAnIdentity(String::new())),
        };
        rule.rebuild(std::slice::from_ref(genesis));
        Box::new(rule)
    }
}

/// The identity state of an ancestry, or why its genesis founds no valid identity (then
/// nothing more is admitted: the chain claims to be an identity and is not one).
struct IdentityRule {
    view: Result<IdentityState, Rejection>,
}

impl Admission for IdentityRule {
    fn rebuild(&mut self, ancestry: &[Block]) {
        self.view =
            IdentityState::resolve(ancestry).map_err(|e| Rejection::NotAnIdentity(e.to_string()));
        if let Ok(state) = &mut self.view {
            state.forget_history();
        }
    }

    fn check(&self, block: &Block) -> Result<(), Refused> {
        match &self.view {
            // A group block that names a member's person chain is judged with that chain's
            // view (`check_referenced`); reaching here, its member names none.
            Ok(state) => match state.person_reference(block) {
                Ok(None) => state.admits(block).map_err(Refused::new),
                Ok(Some(_)) => Err(Refused::new(Rejection::NotThePersons(
                    "judged without the person's chain",
                ))),
                Err(why) => Err(Refused::new(why)),
            },
            Err(why) => Err(Refused::new(why.clone())),
        }
    }

    fn reference(&self, block: &Block) -> Option<(BlockId, Vec<BlockId>)> {
        match &self.view {
            Ok(state) => state.person_reference(block).ok().flatten(),
            Err(_) => None,
        }
    }

    fn check_referenced(
        &self,
        block: &Block,
        view: Option<&dyn Admission>,
        reached: u64,
    ) -> Result<(), Refused> {
        let person = view
            .and_then(|rule| rule.as_any())
            .and_then(|any| any.downcast_ref::<IdentityRule>())
            .and_then(|rule| rule.view.as_ref().ok());
        match &self.view {
            Ok(state) => state
                .admits_with_person(block, person, reached)
                .map_err(Refused::new),
            Err(why) => Err(Refused::new(why.clone())),
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn extend(&mut self, block: &Block) {
        if let Ok(state) = &mut self.view {
            state.extend_appended([block]);
            state.forget_history();
        }
    }

    fn writers(&self) -> Option<&dyn Writers> {
        Some(self)
    }

    fn snapshot(&self) -> Option<Box<dyn Admission>> {
        Some(Box::new(IdentityRule {
            view: self.view.clone(),
        }))
    }
}

impl Writers for IdentityRule {
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
