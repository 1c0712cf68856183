//! Subsets that keep references whole: the roots a request names (the first N records of
//! a class, or those dated within the last N days), everything they reference through
//! the catalog's `[[clone.references]]`, and optionally their dependants (records that
//! refer to a root or to another dependant, with everything those reference). A record
//! of a class that takes part in a reference is cloned only when it is in the subset, so
//! no cloned record points at one left behind.
//!
//! The subset is found in rounds over the source (`Closure::visit` per record, then
//! `Closure::end_round`), each round a scan of the classes involved, until one adds
//! nothing. Members and values are kept as keyed tags, never in the clear.

use super::anon::Anonymiser;
use super::body::{decode, for_each_match};
use crate::StepError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// The longest look back of `since_days`.
pub const MAX_DAYS: u32 = 36_500;

/// Rounds over the source a subset's search may take.
pub const MAX_ROUNDS: u32 = 64;

/// Records of one system whose keys start with a prefix (`system` or `system:prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// The system.
    pub system: String,
    /// The key prefix (every key when empty).
    pub prefix: String,
}

impl Class {
    /// Parses `system` or `system:prefix`.
    pub fn parse(s: &str) -> Result<Self, StepError> {
        let (system, prefix) = s.split_once(':').unwrap_or((s, ""));
        crate::SystemName::parse(system).map_err(|_| {
            StepError::invalid(format!(
                "{s:?} does not name a system (system or system:prefix)"
            ))
        })?;
        Ok(Self {
            system: system.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// True when record `key` of `system` is of this class.
    pub fn holds(&self, system: &str, key: &str) -> bool {
        self.system == system && key.starts_with(self.prefix.as_str())
    }
}

/// One reference between classes: the value at `field` of a record of `from` names the
/// record of `to` whose `to_field` holds the same value, or whose key is that value when
/// `to_field` is absent (compared without case or surrounding space, as the joins of
/// fakes are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The referring class, `system` or `system:prefix`.
    pub from: String,
    /// The pointer to the referring value (`*` matches every element).
    pub field: String,
    /// The referred class.
    pub to: String,
    /// The pointer to the value that identifies a referred record (its key when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_field: Option<String>,
}

/// What a request asks of a subset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subset {
    /// The roots' class, `system` or `system:prefix`.
    pub from: String,
    /// The first N records of the class, in key order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
    /// The records whose `date_field` lies within the last N days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_days: Option<u32>,
    /// The date field for `since_days` (`YYYY-MM-DD` or RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_field: Option<String>,
    /// Also every record that refers to a root or to another dependant (a customer's
    /// orders and sessions, and the order's embeddings, along with the customer), with
    /// what they reference; a record reached only as something referenced (a region)
    /// brings no dependants of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dependants: bool,
}

impl Subset {
    /// Checks the request's subset.
    pub fn validate(&self) -> Result<(), StepError> {
        Class::parse(&self.from)?;
        if self.since_days.is_some_and(|d| d > MAX_DAYS) {
            return Err(StepError::invalid(format!(
                "subset since_days is at most {MAX_DAYS} (a hundred years)"
            )));
        }
        match (self.first, self.since_days, &self.date_field) {
            (Some(0), _, _) => Err(StepError::invalid("subset first must be at least 1")),
            (Some(_), None, None) => Ok(()),
            (None, Some(_), Some(f)) if f.starts_with('/') => Ok(()),
            (None, Some(_), _) => Err(StepError::invalid(
                "subset since_days needs date_field, a JSON pointer such as /created_at",
            )),
            _ => Err(StepError::invalid(
                "a subset names its roots by first (N records) or by since_days with date_field, one of the two",
            )),
        }
    }
}

/// The references checked against each other and the catalog's systems.
pub fn validate_references(
    refs: &[Reference],
    has_system: &dyn Fn(&str) -> bool,
) -> Result<(), StepError> {
    for r in refs {
        for c in [&r.from, &r.to] {
            let class = Class::parse(c)
                .map_err(|e| StepError::Configuration(format!("[[clone.references]]: {e}")))?;
            if !has_system(&class.system) {
                return Err(StepError::Configuration(format!(
                    "[[clone.references]] names system {} that is not in the catalog",
                    class.system
                )));
            }
        }
        for f in std::iter::once(&r.field).chain(r.to_field.as_ref()) {
            if !f.starts_with('/') {
                return Err(StepError::Configuration(format!(
                    "[[clone.references]] field {f:?} is not a JSON pointer (it starts with '/')"
                )));
            }
        }
    }
    Ok(())
}

/// The subset found so far, as keyed tags (saved between calls, sealed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    /// Rounds ended.
    pub rounds: u32,
    /// Roots taken (for `first`).
    pub roots: u64,
    /// Tags of the members (system and key).
    pub members: HashSet<u64>,
    /// Per reference: tags of the values members refer to.
    pub wanted: Vec<HashSet<u64>>,
    /// Tags of the roots and dependants (the records whose referrers are dependants).
    pub down: HashSet<u64>,
    /// Per reference: tags of the values roots and dependants are referred to by.
    pub down_present: Vec<HashSet<u64>>,
    /// True when the round under way added something.
    pub grew: bool,
    /// True when a round added nothing: the subset is whole.
    pub done: bool,
}

/// What one closure needs to judge a record.
#[derive(Debug)]
pub struct Judge<'a> {
    /// The request's subset.
    pub subset: &'a Subset,
    /// The roots' class.
    pub root: Class,
    /// The catalog's references with their classes.
    pub refs: Vec<(&'a Reference, Class, Class)>,
    /// The keyed tags.
    pub anon: &'a Anonymiser,
    /// Dates on or after this (`YYYY-MM-DD`) make a root under `since_days`.
    pub since: Option<time::Date>,
    /// The day the look back counts from: a later date is no root.
    pub today: time::Date,
}

fn texts(v: &mut Value, pointer: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Every value but null refers: a string as itself, anything else as its JSON (the
    // same on both sides), so an object or a boolean is followed rather than ignored.
    fn push(x: &Value, out: &mut Vec<String>) {
        match x {
            Value::Null => {}
            Value::String(s) if s.trim().is_empty() => {}
            Value::String(s) => out.push(s.clone()),
            // A list of references refers to each of its elements.
            Value::Array(a) => a.iter().for_each(|e| push(e, out)),
            other => out.push(other.to_string()),
        }
    }
    for_each_match(v, pointer, &mut |x| push(x, &mut out));
    out
}

/// The values that identify record `key` (body `doc`) as the target of `r`.
fn identities(r: &Reference, key: &str, doc: &mut Value) -> Vec<String> {
    match &r.to_field {
        Some(f) => texts(doc, f),
        None => vec![key.to_owned()],
    }
}

fn date_of(s: &str) -> Option<time::Date> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.date());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt).ok()
}

impl<'a> Judge<'a> {
    /// The judge of `subset` under the catalog's `refs`, `today` being the clock's date.
    pub fn new(
        subset: &'a Subset,
        refs: &'a [Reference],
        anon: &'a Anonymiser,
        today: time::Date,
    ) -> Result<Self, StepError> {
        let refs = refs
            .iter()
            .map(|r| Ok((r, Class::parse(&r.from)?, Class::parse(&r.to)?)))
            .collect::<Result<Vec<_>, StepError>>()?;
        Ok(Self {
            root: Class::parse(&subset.from)?,
            subset,
            refs,
            anon,
            since: subset.since_days.map(|d| {
                today
                    .checked_sub(time::Duration::days(i64::from(d)))
                    .unwrap_or(time::Date::MIN)
            }),
            today,
        })
    }

    /// The systems a closure reads, in a fixed order.
    pub fn systems(&self) -> Vec<String> {
        let mut out: Vec<String> = std::iter::once(&self.root)
            .chain(self.refs.iter().flat_map(|(_, f, t)| [f, t]))
            .map(|c| c.system.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// True when record `key` of `system` is of a class the subset governs: cloned only
    /// when a member.
    pub fn governs(&self, system: &str, key: &str) -> bool {
        self.root.holds(system, key)
            || self
                .refs
                .iter()
                .any(|(_, f, t)| f.holds(system, key) || t.holds(system, key))
    }

    /// The member tag of a record.
    pub fn member(&self, system: &str, key: &str) -> u64 {
        // Exact, not normalised: keys that differ only in case are two records.
        self.anon
            .exact_tag("subset-member", &format!("{system}\0{key}"))
    }

    /// The tag of a referring or identifying value (case and surrounding space ignored),
    /// in a domain of its own: nothing like the scan's tags of originals.
    fn value(&self, v: &str) -> u64 {
        self.anon.tag_in("subset-value", v)
    }

    fn is_root(&self, c: &Closure, system: &str, key: &str, doc: &mut Value) -> bool {
        if c.rounds > 0 || !self.root.holds(system, key) {
            return false;
        }
        match (self.subset.first, self.since, &self.subset.date_field) {
            (Some(n), _, _) => c.roots < n,
            (None, Some(since), Some(f)) => texts(doc, f)
                .iter()
                .filter_map(|s| date_of(s))
                .any(|d| d >= since && d <= self.today),
            _ => false,
        }
    }

    /// Looks at one record of the round under way (`body` as stored at the source).
    pub fn visit(&self, c: &mut Closure, system: &str, key: &str, body: &[u8]) {
        if c.wanted.len() != self.refs.len() {
            c.wanted = vec![HashSet::new(); self.refs.len()];
            c.down_present = vec![HashSet::new(); self.refs.len()];
        }
        if !self.governs(system, key) {
            return;
        }
        let mut doc = decode(body).value;
        let id = self.member(system, key);
        let mut down = c.down.contains(&id);
        if !down && self.is_root(c, system, key, &mut doc) {
            c.roots += 1;
            down = true;
        }
        if !down && self.subset.dependants {
            down = self.refs.iter().enumerate().any(|(i, (r, from, _))| {
                from.holds(system, key)
                    && texts(&mut doc, &r.field)
                        .iter()
                        .any(|v| c.down_present[i].contains(&self.value(v)))
            });
        }
        if down {
            c.grew |= c.down.insert(id);
            for (i, (r, _, to)) in self.refs.iter().enumerate() {
                if to.holds(system, key) {
                    for v in identities(r, key, &mut doc) {
                        c.grew |= c.down_present[i].insert(self.value(&v));
                    }
                }
            }
        }
        let mut member = down || c.members.contains(&id);
        if !member {
            member = self.refs.iter().enumerate().any(|(i, (r, _, to))| {
                to.holds(system, key)
                    && identities(r, key, &mut doc)
                        .iter()
                        .any(|v| c.wanted[i].contains(&self.value(v)))
            });
        }
        if !member {
            return;
        }
        c.grew |= c.members.insert(id);
        for (i, (r, from, _)) in self.refs.iter().enumerate() {
            if from.holds(system, key) {
                for v in texts(&mut doc, &r.field) {
                    c.grew |= c.wanted[i].insert(self.value(&v));
                }
            }
        }
    }

    /// Ends a round: the subset is whole when the round added nothing. A search that
    /// keeps growing past [`MAX_ROUNDS`] (a reference chain that long, or a live source
    /// adding dependants as fast as they are found) is refused.
    pub fn end_round(&self, c: &mut Closure) -> Result<(), StepError> {
        if c.rounds == 0 && c.roots == 0 {
            return Err(StepError::invalid(format!(
                "the subset from {} matched no record (check the prefix, the date field and its days)",
                self.subset.from
            )));
        }
        c.done = !c.grew;
        c.grew = false;
        c.rounds += 1;
        if !c.done && c.rounds >= MAX_ROUNDS {
            return Err(StepError::invalid(format!(
                "the subset from {} still grew after {MAX_ROUNDS} rounds over the source; name fewer roots, or a reference chain that ends",
                self.subset.from
            )));
        }
        Ok(())
    }

    /// Classes the subset reaches that the clone must copy for no reference to dangle:
    /// the referred class of every reference whose referring class takes part.
    pub fn referred(&self) -> Vec<&Class> {
        self.refs.iter().map(|(_, _, to)| to).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anon() -> Anonymiser {
        Anonymiser::new(zeroize::Zeroizing::new([9; 32]), "t")
    }

    fn refs() -> Vec<Reference> {
        vec![
            Reference {
                from: "pg:orders/".into(),
                field: "/customer_email".into(),
                to: "pg:customers/".into(),
                to_field: Some("/email".into()),
            },
            Reference {
                from: "redis:session:".into(),
                field: "/user_email".into(),
                to: "pg:customers/".into(),
                to_field: Some("/email".into()),
            },
            Reference {
                from: "pg:customers/".into(),
                field: "/region".into(),
                to: "pg:regions/".into(),
                to_field: Some("/code".into()),
            },
            Reference {
                from: "vec".into(),
                field: "/metadata/doc".into(),
                to: "pg:orders/".into(),
                to_field: None,
            },
        ]
    }

    /// 10 customers in 3 regions, 20 orders (two per customer), 10 sessions, one config.
    fn world() -> Vec<(&'static str, String, Value)> {
        let mut w = Vec::new();
        for r in 0..3 {
            w.push((
                "pg",
                format!("regions/{r}"),
                json!({"code": format!("R{r}")}),
            ));
        }
        for i in 0..10 {
            w.push((
                "pg",
                format!("customers/{i:02}"),
                json!({"email": format!("C{i}@x.example"), "region": format!("R{}", i % 3), "joined": format!("2026-11-{:02}", 1 + i)}),
            ));
            w.push((
                "redis",
                format!("session:{i:02}"),
                json!({"user_email": format!("c{i}@x.example")}),
            ));
        }
        for i in 0..20 {
            w.push((
                "pg",
                format!("orders/{i:02}"),
                json!({"customer_email": format!("c{}@x.example", i % 10)}),
            ));
        }
        w.push(("pg", "config/main".into(), json!({"plan": "gold"})));
        // Dated after the clone's day: never a root by date.
        w.push((
            "pg",
            "customers/10".into(),
            json!({"email": "c10@x.example", "region": "R1", "joined": "2027-01-01"}),
        ));
        for i in [0, 1, 10, 15] {
            w.push((
                "vec",
                format!("v-{i:02}"),
                json!({"metadata": {"doc": format!("orders/{i:02}")}}),
            ));
        }
        w.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        w
    }

    fn close(s: &Subset) -> Vec<String> {
        let (a, refs) = (anon(), refs());
        let today = time::macros::date!(2026 - 12 - 01);
        let j = Judge::new(s, &refs, &a, today).expect("judge");
        let mut c = Closure::default();
        let w = world();
        while !c.done {
            for (sys, key, v) in &w {
                j.visit(&mut c, sys, key, v.to_string().as_bytes());
            }
            j.end_round(&mut c).expect("converges");
            assert!(c.rounds < 10, "the closure converges");
        }
        w.iter()
            .filter(|(sys, key, _)| !j.governs(sys, key) || c.members.contains(&j.member(sys, key)))
            .map(|(sys, key, _)| format!("{sys}:{key}"))
            .collect()
    }

    #[test]
    fn the_first_orders_bring_their_customers_and_regions_and_nothing_else() {
        let got = close(&Subset {
            from: "pg:orders/".into(),
            first: Some(2),
            since_days: None,
            date_field: None,
            dependants: false,
        });
        assert_eq!(
            got,
            [
                "pg:config/main",
                "pg:customers/00",
                "pg:customers/01",
                "pg:orders/00",
                "pg:orders/01",
                "pg:regions/0",
                "pg:regions/1",
            ]
        );
    }

    #[test]
    fn dependants_bring_a_customers_orders_and_sessions_across_systems() {
        let got = close(&Subset {
            from: "pg:customers/".into(),
            first: Some(1),
            since_days: None,
            date_field: None,
            dependants: true,
        });
        assert_eq!(
            got,
            [
                "pg:config/main",
                "pg:customers/00",
                "pg:orders/00",
                "pg:orders/10",
                "pg:regions/0",
                "redis:session:00",
                "vec:v-00",
                "vec:v-10",
            ]
        );
    }

    #[test]
    fn roots_by_date_and_requests_checked() {
        let got = close(&Subset {
            from: "pg:customers/".into(),
            first: None,
            since_days: Some(22),
            date_field: Some("/joined".into()),
            dependants: false,
        });
        // Joined 2026-11-09 and 2026-11-10 are within 22 days of 2026-12-01.
        assert_eq!(
            got,
            [
                "pg:config/main",
                "pg:customers/08",
                "pg:customers/09",
                "pg:regions/0",
                "pg:regions/2"
            ]
        );
        let bad = |v: Value| {
            serde_json::from_value::<Subset>(v)
                .map_err(|e| e.to_string())
                .and_then(|s| s.validate().map_err(|e| e.to_string()))
        };
        assert!(bad(json!({"from": "pg:orders/", "first": 0})).is_err());
        assert!(
            bad(json!({"from": "pg:orders/", "since_days": 4_294_967_295u32, "date_field": "/d"}))
                .is_err()
        );
        assert!(
            bad(json!({"from": "pg:orders/", "since_days": 36_500, "date_field": "/d"})).is_ok()
        );
        assert!(bad(json!({"from": "pg:orders/"})).is_err());
        assert!(bad(json!({"from": "pg:orders/", "since_days": 3})).is_err());
        assert!(
            bad(json!({"from": "pg:orders/", "first": 3, "since_days": 3, "date_field": "/d"}))
                .is_err()
        );
        assert!(bad(json!({"from": "../x", "first": 3})).is_err());
        assert!(bad(json!({"from": "pg", "first": 3, "extra": 1})).is_err());
        assert!(bad(json!({"from": "pg:orders/", "first": 3})).is_ok());
    }
}
