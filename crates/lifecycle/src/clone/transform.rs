//! One record through the clone: strict mode's check, the rules, the embedding's fate,
//! the tenant id rewritten, and the tags of every original value the scan must never
//! find in the target.

use super::anon::{Anonymiser, EMAIL, FakeKind, MIN_TRACKED, PHONE, is_fake_email, is_fake_phone};
use super::body::{Doc, Shape, covers, decode, encode, for_each_match, leaves};
use super::rules::{Action, CloneSpec, Rule, VectorAction, looks_personal};
use crate::{StepError, SystemKind, TenantId};
use serde_json::Value;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written to the target as `key` with `body`.
    Copy {
        /// The target key.
        key: String,
        /// The target body.
        body: Vec<u8>,
        /// Values anonymised.
        fields: u64,
    },
    /// Not copied: the system's embeddings are dropped.
    Dropped,
}

/// The clone's record transformer.
#[derive(Debug)]
pub struct Transformer<'a> {
    /// The rules.
    pub spec: &'a CloneSpec,
    /// The keyed transforms.
    pub anon: &'a Anonymiser,
    /// The tenant cloned.
    pub source: &'a TenantId,
    /// The tenant id the clone has.
    pub target: &'a TenantId,
}

/// The pointer with every array index replaced by `*` (what an error may name).
fn general(path: &str) -> String {
    path.split('/')
        .map(|s| if s.parse::<usize>().is_ok() { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

impl Transformer<'_> {
    /// Transforms record `key` of `system` (of `kind`); `originals` receives the tags of
    /// the values that must not reach the target.
    pub fn record(
        &self,
        system: &str,
        kind: SystemKind,
        key: &str,
        body: &[u8],
        originals: &mut Vec<u64>,
    ) -> Result<Outcome, StepError> {
        let vrule = (kind == SystemKind::Vectors).then(|| self.spec.vector_rule(system));
        if vrule
            .as_ref()
            .is_some_and(|r| r.action == VectorAction::Drop)
        {
            return Ok(Outcome::Dropped);
        }
        let rules = self.spec.rules_for(system, key);
        let new_key = self.key(key, originals);
        let mut doc = decode(body);
        if doc.shape == Shape::Opaque {
            return self.opaque(system, &rules, new_key, body);
        }
        let vector_field = match (&vrule, &doc.shape) {
            (Some(_), Shape::Vector) => Some("/values".to_owned()),
            (Some(r), _) => Some(r.field.clone()),
            (None, _) => None,
        };
        if self.spec.strict {
            self.check_strict(system, &rules, vector_field.as_deref(), &doc)?;
        }
        let mut fields = 0;
        for r in &rules {
            if r.action == Action::Keep {
                continue;
            }
            for_each_match(&mut doc.value, &r.field, &mut |v| {
                self.apply(r, v, &new_key, originals, &mut fields);
            });
        }
        if let (Some(r), Some(field)) = (&vrule, &vector_field)
            && r.action == VectorAction::Random
        {
            let anon = self.anon;
            for_each_match(&mut doc.value, field, &mut |v| {
                if let Value::Array(a) = v {
                    let ints = a.iter().all(Value::is_i64);
                    let fresh = anon.unit_vector(key, a.len());
                    *a = fresh
                        .into_iter()
                        .map(|x| {
                            if ints {
                                Value::from((f64::from(x) * 1000.0).round() as i64)
                            } else {
                                serde_json::Number::from_f64(f64::from(x))
                                    .map_or(Value::Null, Value::Number)
                            }
                        })
                        .collect();
                    fields += 1;
                }
            });
        }
        self.rename(&mut doc.value);
        let body = encode(&doc).ok_or_else(|| {
            StepError::Internal(format!("a record of {system} could not be encoded back"))
        })?;
        Ok(Outcome::Copy {
            key: new_key,
            body,
            fields,
        })
    }

    /// The target key: the tenant id rewritten, e-mail addresses replaced by their fakes.
    fn key(&self, key: &str, originals: &mut Vec<u64>) -> String {
        if !key.contains('@') {
            return key.replace(self.source.as_str(), self.target.as_str());
        }
        for m in EMAIL.find_iter(key) {
            if !is_fake_email(m.as_str()) {
                originals.push(self.anon.tag(m.as_str()));
            }
        }
        let k = EMAIL.replace_all(key, |c: &regex::Captures<'_>| {
            self.anon.fake(super::anon::FakeKind::Email, &c[0])
        });
        k.replace(self.source.as_str(), self.target.as_str())
    }

    fn opaque(
        &self,
        system: &str,
        rules: &[&Rule],
        key: String,
        body: &[u8],
    ) -> Result<Outcome, StepError> {
        match rules.iter().find(|r| r.field.is_empty()).map(|r| r.action) {
            Some(Action::Keep) => Ok(Outcome::Copy {
                key,
                body: body.to_vec(),
                fields: 0,
            }),
            Some(Action::Null) => Ok(Outcome::Copy {
                key,
                body: Vec::new(),
                fields: 1,
            }),
            None if !self.spec.strict => Ok(Outcome::Copy {
                key,
                body: body.to_vec(),
                fields: 0,
            }),
            _ => Err(StepError::UnruledPersonalData {
                system: system.to_owned(),
                field: "(a binary body: give its prefix a whole-body rule, field = \"\", action keep or null)".into(),
            }),
        }
    }

    fn check_strict(
        &self,
        system: &str,
        rules: &[&Rule],
        vector_field: Option<&str>,
        doc: &Doc,
    ) -> Result<(), StepError> {
        for (path, leaf) in leaves(&doc.value) {
            if rules.iter().any(|r| covers(&r.field, &path))
                || vector_field.is_some_and(|f| covers(f, &path))
            {
                continue;
            }
            let text = match leaf {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            };
            // Booleans and nulls name no one; numbers are judged by their field's name.
            if matches!(leaf, Value::Bool(_) | Value::Null) {
                continue;
            }
            if looks_personal(&path, text) {
                return Err(StepError::UnruledPersonalData {
                    system: system.to_owned(),
                    field: if path.is_empty() {
                        "(the whole body)".into()
                    } else {
                        general(&path)
                    },
                });
            }
        }
        Ok(())
    }

    fn apply(&self, r: &Rule, v: &mut Value, at: &str, originals: &mut Vec<u64>, fields: &mut u64) {
        match v {
            Value::Object(m) => m
                .values_mut()
                .for_each(|x| self.apply(r, x, at, originals, fields)),
            Value::Array(a) => a
                .iter_mut()
                .for_each(|x| self.apply(r, x, at, originals, fields)),
            Value::Null => {}
            Value::Bool(_) => {
                if r.action == Action::Null {
                    *v = Value::Null;
                    *fields += 1;
                }
            }
            Value::Number(n) => {
                let text = n.to_string();
                *fields += 1;
                let kind = r.kind.unwrap_or(FakeKind::Name);
                let (new, tag) = match r.action {
                    Action::Keep | Action::RedactText => {
                        self.track(&text, r.action, kind, None, at, originals);
                        return;
                    }
                    Action::Null => (Value::Null, None),
                    Action::Mask | Action::ShiftDate => {
                        let m = self.anon.mask(&text);
                        let n = serde_json::from_str::<serde_json::Number>(&m)
                            .map_or(Value::String(m), Value::Number);
                        (n, None)
                    }
                    Action::Hash => (Value::String(self.anon.hash(&text)), None),
                    Action::Fake => {
                        let (f, t) = self.anon.fake_tagged(kind, &text);
                        (Value::String(f), Some(t))
                    }
                };
                self.track(&text, r.action, kind, tag, at, originals);
                *v = new;
            }
            Value::String(s) => {
                *fields += 1;
                let kind = r.kind.unwrap_or(FakeKind::Name);
                let (new, tag) = match r.action {
                    Action::Keep => return,
                    Action::Null => (Value::Null, None),
                    Action::Mask => (Value::String(self.anon.mask(s)), None),
                    Action::Hash => (Value::String(self.anon.hash(s)), None),
                    Action::Fake => {
                        let (f, t) = self.anon.fake_tagged(kind, s);
                        (Value::String(f), Some(t))
                    }
                    Action::ShiftDate => (
                        Value::String(self.anon.shift_date(s).unwrap_or_else(|| self.anon.mask(s))),
                        None,
                    ),
                    Action::RedactText => (Value::String(self.anon.redact_text(s)), None),
                };
                self.track(s, r.action, kind, tag, at, originals);
                *v = new;
            }
        }
    }

    /// Tags what must not reach the target: a value that names someone anywhere in the
    /// clone (`tag`, when the transform already made it), and in its own record `at`
    /// (the target key) an anonymised value nothing else covers there.
    fn track(
        &self,
        original: &str,
        action: Action,
        kind: FakeKind,
        tag: Option<u64>,
        at: &str,
        originals: &mut Vec<u64>,
    ) {
        let alnum = original.chars().any(char::is_alphanumeric);
        match action {
            Action::Keep => {}
            // A shifted date or a mask lands among the originals by chance (dates are
            // dense, PINs short), and alone names no one: only their own record counts.
            Action::Mask | Action::ShiftDate => {
                if alnum {
                    originals.push(self.anon.tag_in(at, original));
                }
            }
            // Free text is kept apart from what it mentions: only those are originals.
            Action::RedactText => {
                for m in EMAIL.find_iter(original) {
                    if !is_fake_email(m.as_str()) {
                        originals.push(self.anon.tag(m.as_str()));
                    }
                }
                for m in PHONE.find_iter(original) {
                    if !is_fake_phone(m.as_str()) {
                        originals.push(self.anon.tag(m.as_str()));
                    }
                }
            }
            Action::Null | Action::Hash | Action::Fake => {
                let long = original.trim().chars().count() >= MIN_TRACKED;
                if long {
                    originals.push(tag.unwrap_or_else(|| self.anon.tag(original)));
                }
                // The scan forgives a generator's output where a fake rule applies, after
                // it has looked for the record's own original: a real value that looks
                // like a fake (a real "Grace Hopper"), or one too short to look for
                // everywhere, is tagged in its own record.
                if alnum
                    && (!long || (action == Action::Fake && Anonymiser::is_fake(kind, original)))
                {
                    originals.push(self.anon.tag_in(at, original));
                }
            }
        }
    }

    /// The source tenant's id, wherever it appears in a string or a member name.
    fn rename(&self, v: &mut Value) {
        let (from, to) = (self.source.as_str(), self.target.as_str());
        match v {
            Value::String(s) if s.contains(from) => *s = s.replace(from, to),
            Value::Array(a) => a.iter_mut().for_each(|x| self.rename(x)),
            // Member names rarely hold the id: the object is rebuilt only when one does.
            Value::Object(m) if !m.keys().any(|k| k.contains(from)) => {
                m.values_mut().for_each(|x| self.rename(x));
            }
            Value::Object(m) => {
                let old = std::mem::take(m);
                for (k, mut x) in old {
                    self.rename(&mut x);
                    m.insert(k.replace(from, to), x);
                }
            }
            _ => {}
        }
    }
}
