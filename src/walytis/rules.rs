//! Rules: the kinds of chain that the layers above Walytis define, registered in a value that
//! every chain opener takes.
//!
//! Walytis knows one kind of its own, the bound chain ([`super::binding`]). A layer above
//! (identities, for example) defines more: a [`ChainRule`] names the versioned genesis topic
//! that claims it (`endra/identity/1`) and makes the [`super::Admission`] rule its blocks are
//! held to. [`Rules`] is the set a replica knows; [`super::Chain::create`],
//! [`super::Chain::from_genesis`] and [`super::Chain::open`] take it as a required argument,
//! so no replica can forget a rule.
//!
//! Fail closed: topics under the reserved namespaces ([`RESERVED_PREFIXES`]) on a genesis are
//! claims. A genesis whose claim no registered rule knows — another layer's kind, or a newer
//! version of a known one — is refused ([`RulesError::Unclaimed`]) rather than stored with
//! no rule and its blocks misjudged. A genesis may make one claim at most.

use std::fmt;
use std::sync::Arc;

use super::admission::Admission;
use super::binding::BOUND_TOPIC;
use super::block::Block;

/// Topic prefixes reserved for rule claims on a genesis block.
pub const RESERVED_PREFIXES: [&str; 2] = ["walytis/", "endra/"];

/// Why a rule refused a block, typed by the rule that refused it; [`RuleRefusal::code`] is a
/// stable name for it (the JS API's error code).
pub trait RuleRefusal: std::error::Error + Send + Sync + 'static {
    /// A stable, upper-case name for this refusal, such as `REVOKED`.
    fn code(&self) -> &'static str;
}

/// A refusal by a chain's rule: the rule's own typed refusal behind a cheap, cloneable handle.
/// [`Refused::downcast_ref`] gets the rule's type back.
#[derive(Clone)]
pub struct Refused(Arc<dyn RuleRefusal>);

impl Refused {
    /// Wraps a rule's refusal.
    pub fn new(refusal: impl RuleRefusal) -> Self {
        Refused(Arc::new(refusal))
    }

    /// The refusal's stable code.
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// The rule's refusal, if it is a `T`.
    pub fn downcast_ref<T: RuleRefusal>(&self) -> Option<&T> {
        let refusal: &(dyn std::error::Error + 'static) = &*self.0;
        refusal.downcast_ref::<T>()
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Refused({}: {})", self.code(), self.0)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl PartialEq for Refused {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Refused {}

/// A kind of chain defined above Walytis: the genesis topic that claims it and its rule.
pub trait ChainRule: Send + Sync {
    /// The versioned topic a genesis carries to be held to this rule; it must start with one
    /// of [`RESERVED_PREFIXES`].
    fn topic(&self) -> &'static str;
    /// The admission rule for the chain that starts with `genesis` (which claims
    /// [`ChainRule::topic`]), its view built at the genesis alone.
    fn admission(&self, genesis: &Block) -> Box<dyn Admission>;
}

/// Why a genesis cannot be opened under a set of [`Rules`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The genesis claims a reserved topic that no registered rule knows: another layer's
    /// kind of chain, or a newer version of a known one.
    #[error("no registered rule claims the genesis topic {0:?} (a newer version, or another layer's chain)")]
    Unclaimed(String),
    /// The genesis claims more than one reserved topic.
    #[error("the genesis claims two rules, {0:?} and {1:?}")]
    Ambiguous(String, String),
}

/// The kinds of chain a replica knows (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Rules {
    rules: Arc<[Arc<dyn ChainRule>]>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.topics()).finish()
    }
}

/// What a genesis claims under a set of rules.
pub(super) enum Claim {
    /// Nothing: a plain chain, held to Walytis's own checks only.
    Plain,
    /// A bound chain (see [`super::binding`]).
    Bound,
    /// A chain held to a registered rule.
    Ruled(Box<dyn Admission>),
}

impl Rules {
    /// Walytis's own kinds only: plain and bound chains. Any other claim is refused.
    pub fn walytis() -> Self {
        Rules {
            rules: Arc::from(Vec::new()),
        }
    }

    /// These rules and `rule`. A rule whose topic is registered already replaces it.
    pub fn with(self, rule: impl ChainRule + 'static) -> Self {
        let mut rules: Vec<Arc<dyn ChainRule>> = self
            .rules
            .iter()
            .filter(|known| known.topic() != rule.topic())
            .cloned()
            .collect();
        rules.push(Arc::new(rule));
        Rules {
            rules: Arc::from(rules),
        }
    }

    /// The topics of the registered rules, Walytis's own first.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(BOUND_TOPIC).chain(self.rules.iter().map(|rule| rule.topic()))
    }

    /// What `genesis` claims, and the rule it is held to.
    pub(super) fn claim(&self, genesis: &Block) -> Result<Claim, RulesError> {
        let mut claimed: Option<&str> = None;
        for topic in genesis.topics() {
            if !RESERVED_PREFIXES.iter().any(|p| topic.starts_with(p)) {
                continue;
            }
            if let Some(first) = claimed {
                return Err(RulesError::Ambiguous(first.to_owned(), topic.clone()));
            }
            claimed = Some(topic);
        }
        let Some(topic) = claimed else {
            return Ok(Claim::Plain);
        };
        if topic == BOUND_TOPIC {
            return Ok(Claim::Bound);
        }
        match self.rules.iter().find(|rule| rule.topic() == topic) {
            Some(rule) => Ok(Claim::Ruled(rule.admission(genesis))),
            None => Err(RulesError::Unclaimed(topic.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::walytis::block::BlockDraft;

    struct Nobody;
    impl Admission for Nobody {
        fn rebuild(&mut self, _: &[Block]) {}
        fn check(&self, _: &Block) -> Result<(), Refused> {
            Ok(())
        }
        fn extend(&mut self, _: &Block) {}
    }
    struct Kind(&'static str);
    impl ChainRule for Kind {
        fn topic(&self) -> &'static str {
            self.0
        }
        fn admission(&self, _: &Block) -> Box<dyn Admission> {
            Box::new(Nobody)
        }
    }

    fn genesis(topics: &[&str]) -> Block {
        BlockDraft {
            chain: None,
            parents: vec![],
            height: 0,
            time: 0,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            body: b"g".to_vec(),
        }
        .sign(&SigningKey::from_bytes(&[3; 32]))
        .unwrap()
    }

    #[test]
    fn claims_are_decided_by_registered_topics_and_unknown_ones_fail_closed() {
        let rules = Rules::walytis().with(Kind("endra/test/1"));
        assert!(matches!(
            rules.claim(&genesis(&["chat", "x/y"])),
            Ok(Claim::Plain)
        ));
        assert!(matches!(
            rules.claim(&genesis(&["endra/test/1", "chat"])),
            Ok(Claim::Ruled(_))
        ));
        assert!(matches!(
            rules.claim(&genesis(&[BOUND_TOPIC])),
            Ok(Claim::Bound)
        ));
        // A newer version, another layer's kind, Walytis's own namespace: all refused.
        for topic in ["endra/test/2", "endra/other/1", "walytis/unknown/1"] {
            assert!(
                matches!(rules.claim(&genesis(&[topic])), Err(RulesError::Unclaimed(t)) if t == topic),
                "{topic}"
            );
        }
        assert!(matches!(
            Rules::walytis().claim(&genesis(&["endra/test/1"])),
            Err(RulesError::Unclaimed(_))
        ));
        assert!(matches!(
            rules.claim(&genesis(&[BOUND_TOPIC, "endra/test/1"])),
            Err(RulesError::Ambiguous(..))
        ));
        assert_eq!(
            rules.topics().collect::<Vec<_>>(),
            [BOUND_TOPIC, "endra/test/1"]
        );
    }
}
