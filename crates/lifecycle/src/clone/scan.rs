//! The scan of a clone's target: it reads what was written (not what the clone meant to
//! write) and looks for every original value the clone tagged, and for e-mail addresses
//! and phone numbers that are not fakes.

use super::anon::{Anonymiser, EMAIL, FakeKind, MIN_TRACKED, PHONE, is_fake_email, is_fake_phone};
use super::body::{Shape, covers, decode, leaves};
use super::rules::{Action, CloneSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// What the scan found in one system (counts only: a finding is never shown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// Records read.
    pub scanned: u64,
    /// Original values found.
    pub originals: u64,
    /// E-mail addresses found that are not fakes.
    pub emails: u64,
    /// Phone numbers found in redacted text that are not fakes.
    pub phones: u64,
}

impl Findings {
    /// Hits of every kind.
    pub fn hits(&self) -> u64 {
        self.originals + self.emails + self.phones
    }

    /// Adds another system's or page's findings.
    pub fn add(&mut self, o: &Findings) {
        self.scanned += o.scanned;
        self.originals += o.originals;
        self.emails += o.emails;
        self.phones += o.phones;
    }
}

/// The scanner of one clone's target.
#[derive(Debug)]
pub struct Scanner<'a> {
    /// The rules (to know which values were masked or kept).
    pub spec: &'a CloneSpec,
    /// The clone's keyed tags.
    pub anon: &'a Anonymiser,
    /// Tags of every original value, over every system of the clone.
    pub originals: &'a HashSet<u64>,
}

impl Scanner<'_> {
    fn hit(&self, token: &str) -> bool {
        token.chars().count() >= MIN_TRACKED && self.originals.contains(&self.anon.tag(token))
    }

    /// Looks at one record of the target (its key as written and its body).
    pub fn record(&self, system: &str, source_key_hint: &str, key: &str, body: &[u8]) -> Findings {
        let mut f = Findings {
            scanned: 1,
            ..Findings::default()
        };
        self.text(key, None, &mut f);
        let doc = decode(body);
        let value = match doc.shape {
            // Bytes the clone could not read are looked at as text where they are text.
            Shape::Opaque => Value::String(String::from_utf8_lossy(body).into_owned()),
            _ => doc.value,
        };
        let rules = self.spec.rules_for(system, source_key_hint);
        for (path, leaf) in leaves(&value) {
            let rule = rules
                .iter()
                .filter(|r| covers(&r.field, &path))
                .max_by_key(|r| r.field.len());
            let action = rule.map(|r| r.action);
            // Borrowed for strings: the scan reads every leaf of the target.
            let text: std::borrow::Cow<'_, str> = match leaf {
                Value::String(s) => s.as_str().into(),
                Value::Number(n) => n.to_string().into(),
                _ => continue,
            };
            if self.originals.contains(&self.anon.tag_in(key, &text)) {
                // The value this very record held at the source, left through.
                f.originals += 1;
                continue;
            }
            // A fake may equal some original (a real "Grace Hopper"); it is a fake here.
            if let Some(r) = rule.filter(|r| r.action == Action::Fake)
                && Anonymiser::is_fake(r.kind.unwrap_or(FakeKind::Name), &text)
            {
                continue;
            }
            match leaf {
                Value::String(s) => self.text(s, action, &mut f),
                Value::Number(_) if self.hit(&text) => f.originals += 1,
                _ => {}
            }
        }
        f
    }

    fn text(&self, s: &str, action: Option<Action>, f: &mut Findings) {
        if self.hit(s) {
            f.originals += 1;
            return;
        }
        let words: Vec<&str> = s
            .split(|c: char| c.is_whitespace() || ",;:()[]{}<>\"'".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        // Single words, and runs of two and three (a name inside a sentence).
        'outer: for n in 1..=3 {
            for w in words.windows(n) {
                let joined = w.join(" ");
                let trimmed = joined.trim_end_matches(['.', '!', '?']);
                if self.hit(&joined) || (trimmed.len() < joined.len() && self.hit(trimmed)) {
                    f.originals += 1;
                    break 'outer;
                }
            }
        }
        if matches!(action, Some(Action::Keep | Action::Mask)) {
            return;
        }
        f.emails += EMAIL
            .find_iter(s)
            .filter(|m| !is_fake_email(m.as_str()))
            .count() as u64;
        if action == Some(Action::RedactText) {
            f.phones += PHONE
                .find_iter(s)
                .filter(|m| !is_fake_phone(m.as_str()))
                .count() as u64;
        }
    }
}
