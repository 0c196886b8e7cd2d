//! Actions and resource kinds, and the small bitmask sets of them.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// What an access does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `r`: look at metadata and listings.
    Read,
    /// `w`: change something that exists.
    Write,
    /// `c`: create something.
    Create,
    /// `d`: delete something.
    Delete,
    /// `x`: manage tokens, keys and members.
    Control,
    /// `v`: read a plaintext secret value.
    Reveal,
}

impl Action {
    /// Every action, in canonical order.
    pub const ALL: [Action; 6] = [
        Action::Read,
        Action::Write,
        Action::Create,
        Action::Delete,
        Action::Control,
        Action::Reveal,
    ];
    const LETTERS: &[u8; 6] = b"rwcdxv";
    const NAMES: [&str; 6] = ["read", "write", "create", "delete", "control", "reveal"];

    /// The action's letter in an action set's text (`r`, `w`, `c`, `d`, `x`, `v`).
    pub const fn letter(self) -> char {
        Self::LETTERS[self as usize] as char
    }

    /// The action's name (`read`, `write`, …).
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The action written as `letter`, if any.
    pub fn from_letter(letter: u8) -> Option<Action> {
        let i = Self::LETTERS.iter().position(|&l| l == letter)?;
        Some(Self::ALL[i])
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let i = Self::NAMES.iter().position(|&n| n == s);
        i.map(|i| Self::ALL[i])
            .ok_or_else(|| ParseError::near("unknown action", s))
    }
}

/// A set of actions; its text is its letters in canonical order (`rwcdxv`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    /// No action.
    pub const NONE: ActionSet = ActionSet(0);
    /// Every action.
    pub const ALL: ActionSet = ActionSet(0b11_1111);

    /// Whether `action` is in the set.
    pub const fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// The set with `action` added.
    pub const fn with(self, action: Action) -> Self {
        Self(self.0 | action.bit())
    }

    /// Actions in either set.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Actions in both sets.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |&a| self.contains(a))
    }
}

impl From<Action> for ActionSet {
    fn from(action: Action) -> Self {
        Self(action.bit())
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Display for ActionSet {
    /// The letters in canonical order (empty for [`ActionSet::NONE`], which has no text form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter()
            .try_for_each(|a| fmt::Write::write_char(f, a.letter()))
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActionSet(\"{self}\")")
    }
}

impl FromStr for ActionSet {
    type Err = ParseError;
    /// Accepts only non-empty letters in canonical order, each once.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut set = Self::NONE;
        for &letter in s.as_bytes() {
            let action = Action::from_letter(letter)
                .ok_or_else(|| ParseError::near("unknown action letter", s))?;
            // Canonical order means each letter's bit is above every bit already set.
            if set.0 >= action.bit() {
                return Err(ParseError::near(
                    "action letters not in the order rwcdxv",
                    s,
                ));
            }
            set = set.with(action);
        }
        if set.is_empty() {
            return Err(ParseError::new("empty action set"));
        }
        Ok(set)
    }
}

impl Serialize for ActionSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ActionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A kind of object an access touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// The apps of an org.
    Apps,
    /// The audit log.
    Audit,
    /// Signing and encryption keys.
    Keys,
    /// Orgs themselves.
    Orgs,
    /// Secrets.
    Secrets,
    /// Tokens.
    Tokens,
    /// Third parties (dischargers) registered in an org. Appended: kinds keep their
    /// positions, so canonical texts written before stay canonical.
    ThirdParties,
}

impl Resource {
    /// Every resource kind, in canonical order.
    pub const ALL: [Resource; 7] = [
        Resource::Apps,
        Resource::Audit,
        Resource::Keys,
        Resource::Orgs,
        Resource::Secrets,
        Resource::Tokens,
        Resource::ThirdParties,
    ];
    const NAMES: [&str; 7] = [
        "apps",
        "audit",
        "keys",
        "orgs",
        "secrets",
        "tokens",
        "third-parties",
    ];

    /// The resource kind's name (`apps`, `secrets`, …).
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Resource {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let i = Self::NAMES.iter().position(|&n| n == s);
        i.map(|i| Self::ALL[i])
            .ok_or_else(|| ParseError::near("unknown resource", s))
    }
}

/// A set of resource kinds; its text is their names, comma-separated, in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResourceSet(u8);

impl ResourceSet {
    /// No resource kind.
    pub const NONE: ResourceSet = ResourceSet(0);
    /// Every resource kind.
    pub const ALL: ResourceSet = ResourceSet(0b111_1111);

    /// Whether `resource` is in the set.
    pub const fn contains(self, resource: Resource) -> bool {
        self.0 & resource.bit() != 0
    }

    /// The set with `resource` added.
    pub const fn with(self, resource: Resource) -> Self {
        Self(self.0 | resource.bit())
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The resource kinds in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Resource> {
        Resource::ALL.into_iter().filter(move |&r| self.contains(r))
    }
}

impl From<Resource> for ResourceSet {
    fn from(resource: Resource) -> Self {
        Self(resource.bit())
    }
}

impl FromIterator<Resource> for ResourceSet {
    fn from_iter<I: IntoIterator<Item = Resource>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Display for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.name())?;
        }
        Ok(())
    }
}

impl FromStr for ResourceSet {
    type Err = ParseError;
    /// Accepts only a non-empty list in canonical order, each kind once.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut set = Self::NONE;
        for item in s.split(',') {
            let r: Resource = item.parse()?;
            if set.0 >= r.bit() {
                return Err(ParseError::near(
                    "resources not in canonical order or repeated",
                    s,
                ));
            }
            set = set.with(r);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_sets_are_canonical_letters() {
        let rw: ActionSet = [Action::Write, Action::Read].into_iter().collect();
        assert_eq!(rw.to_string(), "rw");
        assert_eq!("rw".parse(), Ok(rw));
        assert_eq!(ActionSet::ALL.to_string(), "rwcdxv");
        for bad in ["", "wr", "rr", "R", "rwz", " r", "r,w"] {
            assert!(bad.parse::<ActionSet>().is_err(), "{bad:?}");
        }
        assert_eq!(serde_json::to_string(&rw).unwrap(), "\"rw\"");
        assert!(serde_json::from_str::<ActionSet>("\"wr\"").is_err());
    }

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.to_string().parse(), Ok(a));
            assert_eq!(Action::from_letter(a.letter() as u8), Some(a));
        }
        for r in Resource::ALL {
            assert_eq!(r.to_string().parse(), Ok(r));
        }
        assert_eq!(
            serde_json::to_string(&Action::Reveal).unwrap(),
            "\"reveal\""
        );
        assert!("Read".parse::<Action>().is_err());
    }

    #[test]
    fn resource_sets_are_canonical() {
        assert_eq!(
            ResourceSet::ALL.to_string(),
            "apps,audit,keys,orgs,secrets,tokens,third-parties"
        );
        for bad in [
            "",
            "tokens,secrets",
            "secrets,secrets",
            "secrets,",
            "Secrets",
        ] {
            assert!(bad.parse::<ResourceSet>().is_err(), "{bad:?}");
        }
    }
}
