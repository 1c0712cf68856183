//! The `[clone]` section of the catalog: classes of data, anonymisation rules per system
//! and field, what happens to embeddings, and strict mode.

use super::anon::{EMAIL, FakeKind, PHONE};
use crate::{Catalog, StepError, SystemKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a rule does to the value it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Copied as it is (an explicit decision that the value is not personal).
    Keep,
    /// Replaced by `null`.
    Null,
    /// Letters and digits replaced, length and format kept.
    Mask,
    /// A keyed digest (`h_` and 32 hex digits); joinable.
    Hash,
    /// A realistic value of `kind`; joinable.
    Fake,
    /// A date moved by the tenant's constant offset.
    ShiftDate,
    /// E-mail addresses and phone numbers inside free text replaced by their fakes.
    RedactText,
}

impl Action {
    /// True when the original must not reach the target (everything but `keep`).
    pub fn anonymises(self) -> bool {
        self != Self::Keep
    }
}

/// One rule: the field `field` (an RFC 6901 JSON pointer into the record; `*` matches
/// every member or element; empty is the whole body) of the records of `system` whose
/// keys start with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The system.
    pub system: String,
    /// Records whose key starts so (every record when empty).
    #[serde(default)]
    pub prefix: String,
    /// The field.
    pub field: String,
    /// What is done to it.
    pub action: Action,
    /// For `fake`: what kind of value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FakeKind>,
}

/// What a clone does with a vector system's embeddings (they can leak their text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VectorAction {
    /// Not copied at all.
    Drop,
    /// Replaced by random unit vectors of the same dimension (shape kept for load tests).
    Random,
    /// Copied, only with an approval named in the request (recorded on the certificate).
    Keep,
}

/// A vector system's rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorRule {
    /// What happens to the embedding.
    pub action: VectorAction,
    /// Where the embedding is in a JSON body (vector envelopes need none).
    #[serde(default = "default_vector_field")]
    pub field: String,
}

fn default_vector_field() -> String {
    "/values".into()
}

/// The `[clone]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneSpec {
    /// Refuse a record holding a field no rule names that looks personal.
    #[serde(default = "yes")]
    pub strict: bool,
    /// Classes of data a request may name: each a list of `system` or `system:prefix`.
    #[serde(default)]
    pub classes: BTreeMap<String, Vec<String>>,
    /// Anonymisation rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Embeddings, per vector system (default: `drop`).
    #[serde(default)]
    pub vectors: BTreeMap<String, VectorRule>,
    /// References between classes, which a subset follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<super::subset::Reference>,
}

fn yes() -> bool {
    true
}

impl Default for CloneSpec {
    fn default() -> Self {
        Self {
            strict: true,
            classes: BTreeMap::new(),
            rules: Vec::new(),
            vectors: BTreeMap::new(),
            references: Vec::new(),
        }
    }
}

/// What one system of a clone copies: every record, or those under some prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// The system.
    pub system: String,
    /// Key prefixes copied (every key when empty).
    pub prefixes: Vec<String>,
}

impl Selector {
    /// True when the record `key` is copied.
    pub fn selects(&self, key: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }
}

impl CloneSpec {
    /// Checks the section against the catalog's systems.
    pub fn validate(&self, catalog: &Catalog) -> Result<(), StepError> {
        let bad = |m: String| Err(StepError::Configuration(format!("[clone]: {m}")));
        let system = |name: &str| catalog.system(name);
        for r in &self.rules {
            if system(&r.system).is_none() {
                return bad(format!(
                    "a rule names system {} that is not in the catalog",
                    r.system
                ));
            }
            if !(r.field.is_empty() || r.field.starts_with('/')) {
                return bad(format!(
                    "rule field {:?} of {} is not a JSON pointer (it starts with '/', or is empty for the whole record)",
                    r.field, r.system
                ));
            }
            if (r.action == Action::Fake) != r.kind.is_some() {
                return bad(format!(
                    "rule {} {}: `kind` (name, email, phone, address) goes with action fake and only with it",
                    r.system, r.field
                ));
            }
        }
        for (class, members) in &self.classes {
            crate::SystemName::parse(class).map_err(|_| {
                StepError::Configuration(format!("[clone]: class {class:?} is not a name"))
            })?;
            for m in members {
                let name = m.split_once(':').map_or(m.as_str(), |(s, _)| s);
                if system(name).is_none() {
                    return bad(format!(
                        "class {class} names system {name} that is not in the catalog"
                    ));
                }
            }
        }
        super::subset::validate_references(&self.references, &|n| system(n).is_some())?;
        for name in self.vectors.keys() {
            match system(name) {
                Some(s) if s.kind == SystemKind::Vectors => {}
                _ => {
                    return bad(format!(
                        "[clone.vectors] names {name}, which is not a vector system"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The selectors of a class.
    pub fn class(&self, class: &str) -> Result<Vec<Selector>, StepError> {
        let members = self.classes.get(class).ok_or_else(|| {
            StepError::invalid(format!(
                "no class {class:?} in the catalog's [clone.classes] (it has: {})",
                self.classes.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(members
            .iter()
            .map(|m| match m.split_once(':') {
                Some((s, p)) => Selector {
                    system: s.to_owned(),
                    prefixes: vec![p.to_owned()],
                },
                None => Selector {
                    system: m.clone(),
                    prefixes: Vec::new(),
                },
            })
            .collect())
    }

    /// The rules that apply to record `key` of `system`; of two rules on one field, the
    /// one with the longer prefix.
    pub fn rules_for<'a>(&'a self, system: &str, key: &str) -> Vec<&'a Rule> {
        let mut out: Vec<&Rule> = Vec::new();
        for r in self
            .rules
            .iter()
            .filter(|r| r.system == system && key.starts_with(r.prefix.as_str()))
        {
            match out.iter_mut().find(|o| o.field == r.field) {
                Some(o) if o.prefix.len() < r.prefix.len() => *o = r,
                Some(_) => {}
                None => out.push(r),
            }
        }
        out
    }

    /// The vector rule of `system` (drop when the catalog says nothing).
    pub fn vector_rule(&self, system: &str) -> VectorRule {
        self.vectors.get(system).cloned().unwrap_or(VectorRule {
            action: VectorAction::Drop,
            field: default_vector_field(),
        })
    }
}

/// Merges selectors of one system (an empty prefix list wins: the whole system).
pub fn merge(selectors: Vec<Selector>) -> Vec<Selector> {
    let mut out: Vec<Selector> = Vec::new();
    for s in selectors {
        match out.iter_mut().find(|o| o.system == s.system) {
            Some(o) if o.prefixes.is_empty() || s.prefixes.is_empty() => o.prefixes.clear(),
            Some(o) => {
                for p in s.prefixes {
                    if !o.prefixes.contains(&p) {
                        o.prefixes.push(p);
                    }
                }
            }
            None => out.push(s),
        }
    }
    out
}

/// Field names that name personal data.
const PERSONAL_NAMES: &[&str] = &[
    "email",
    "e_mail",
    "mail",
    "phone",
    "mobile",
    "tel",
    "name",
    "firstname",
    "lastname",
    "surname",
    "fullname",
    "address",
    "street",
    "zip",
    "postcode",
    "postal",
    "city",
    "ssn",
    "dob",
    "birth",
    "birthday",
    "birthdate",
    "ip",
    "passport",
    "iban",
    "card",
    "owner",
    "contact",
    "customer",
    "user",
    "username",
    "person",
    "national",
    "tax",
];

/// True when a field (its last pointer segment) or its value looks personal: a name
/// that says so, or a value that is an e-mail address or a phone number.
pub fn looks_personal(field: &str, value: Option<&str>) -> bool {
    let last = field.rsplit('/').next().unwrap_or(field);
    let personal = |w: &str| PERSONAL_NAMES.iter().any(|n| n.eq_ignore_ascii_case(w));
    // Every record of a clone passes here, so the common case allocates nothing: a
    // joined form ("first_name" -> "firstname") is built only for names with separators.
    let named = last
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| !w.is_empty() && personal(w))
        || (last.contains(|c: char| !c.is_ascii_alphanumeric())
            && personal(
                &last
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>(),
            ));
    named
        || value.is_some_and(|v| {
            EMAIL.is_match(v)
                || PHONE
                    .find(v)
                    .is_some_and(|m| !super::anon::is_fake_phone(m.as_str()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_fields_are_seen_by_name_or_value() {
        assert!(looks_personal("/contact_email", Some("x")));
        assert!(looks_personal("/customer/firstName", None) || looks_personal("/first_name", None));
        assert!(looks_personal("/notes", Some("reach me at a@b.example")));
        assert!(looks_personal("/notes", Some("call +44 20 7946 0958")));
        assert!(!looks_personal("/pages", Some("12")));
        assert!(!looks_personal("/title", Some("Contract 17")));
        assert!(!looks_personal("/date", Some("2025-01-18")));
    }

    #[test]
    fn the_longer_prefix_wins_and_selectors_merge() {
        let spec: CloneSpec = toml::from_str(
            r#"
[[rules]]
system = "pg"
field = "/a"
action = "hash"
[[rules]]
system = "pg"
prefix = "docs/"
field = "/a"
action = "mask"
"#,
        )
        .expect("spec");
        let r = spec.rules_for("pg", "docs/1");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].action, Action::Mask);
        assert_eq!(spec.rules_for("pg", "other")[0].action, Action::Hash);
        let m = merge(vec![
            Selector {
                system: "a".into(),
                prefixes: vec!["x/".into()],
            },
            Selector {
                system: "a".into(),
                prefixes: vec!["y/".into()],
            },
            Selector {
                system: "b".into(),
                prefixes: vec!["x/".into()],
            },
            Selector {
                system: "b".into(),
                prefixes: vec![],
            },
        ]);
        assert_eq!(m[0].prefixes, ["x/", "y/"]);
        assert!(m[1].prefixes.is_empty());
    }
}
