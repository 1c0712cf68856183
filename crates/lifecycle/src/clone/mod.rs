//! Cloning a tenant into another environment with its personal data anonymised the same
//! way in every system: the catalog's rules ([`rules`]), the keyed transforms
//! ([`anon`]), bodies as documents whatever the product ([`body`]), one record through
//! the clone ([`transform`]) and the scan that proves no original value arrived
//! ([`scan`]). Nothing here reads or writes a store; `steps::clone` moves the records.

pub mod anon;
pub mod body;
pub mod rules;
pub mod scan;
pub mod subset;
pub mod transform;

pub use rules::{Action, CloneSpec, Rule, Selector, VectorAction, VectorRule};

use crate::migration::HOME;
use crate::{Catalog, RequestId, StepError, SystemKind, SystemName, TenantId};
use serde::{Deserialize, Serialize};

/// The ledger chain clones are certified on.
pub const CLONE_CHAIN: &str = "tenant-clone";
/// The largest request accepted (bytes of JSON).
pub const MAX_REQUEST: usize = 16 << 10;

/// A clone to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// The tenant cloned.
    pub tenant_id: TenantId,
    /// The location written in each system (`staging` by default): another
    /// environment's bucket, database or schema, named in the catalog's `locations`.
    #[serde(default = "staging")]
    pub to: String,
    /// The clone's tenant id (default `<tenant>__<to>`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_tenant: Option<TenantId>,
    /// Classes of data to copy (from `[clone.classes]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync: Vec<String>,
    /// Systems to copy whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub systems: Vec<SystemName>,
    /// The clone key's name: the same name gives the same output, another name an
    /// unlinkable clone.
    #[serde(default = "default_key")]
    pub key: SystemName,
    /// The approval (a ticket id) that lets embeddings through where the catalog says
    /// `keep`; recorded on the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_approval: Option<crate::HoldId>,
    /// At most this many records per system (the first in key order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Only some roots and what they reference (`[[clone.references]]`), so references
    /// stay whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<subset::Subset>,
}

fn staging() -> String {
    "staging".into()
}

fn default_key() -> SystemName {
    SystemName::parse("default").unwrap_or_else(|_| unreachable!("a valid literal"))
}

impl CloneRequest {
    /// Validates a clone request.
    pub fn parse(raw: &serde_json::Value) -> Result<Self, StepError> {
        let text = raw.to_string();
        if text.len() > MAX_REQUEST {
            return Err(StepError::invalid(format!(
                "clone request of {} bytes is over the {MAX_REQUEST}-byte limit",
                text.len()
            )));
        }
        let r: Self = serde_json::from_value(raw.clone())
            .map_err(|e| StepError::invalid(format!("clone request: {e}")))?;
        SystemName::parse(&r.to)
            .map_err(|_| StepError::invalid(format!("location {:?} is not a name", r.to)))?;
        if r.to == HOME {
            return Err(StepError::invalid(
                "a clone never writes into the tenant's own location (home); name another with --to",
            ));
        }
        let target = r.target()?;
        if target.as_str().eq_ignore_ascii_case(r.tenant_id.as_str()) {
            return Err(StepError::invalid(
                "the clone's tenant id must differ from the tenant's own (not only in case)",
            ));
        }
        if r.limit == Some(0) {
            return Err(StepError::invalid("limit must be at least 1"));
        }
        if let Some(s) = &r.subset {
            s.validate()?;
            if r.limit.is_some() {
                return Err(StepError::invalid(
                    "limit and subset do not go together: a limit cuts references, a subset keeps them",
                ));
            }
        }
        Ok(r)
    }

    /// The clone's tenant id.
    pub fn target(&self) -> Result<TenantId, StepError> {
        match &self.as_tenant {
            Some(t) => Ok(t.clone()),
            None => TenantId::parse(&format!("{}__{}", self.tenant_id, self.to)),
        }
    }

    /// The clone's id: derived from what it asks, so a retried request is the same clone.
    pub fn id(&self) -> Result<RequestId, StepError> {
        let v = serde_json::to_value(self).map_err(|e| StepError::Internal(e.to_string()))?;
        let d = crate::erasure::json_digest(&v);
        RequestId::parse(&format!("cl-{}", &d[..24]))
    }

    /// What each system copies: the classes' selectors, the systems named whole, or
    /// (naming neither) every system a clone can copy.
    pub fn selectors(
        &self,
        catalog: &Catalog,
        spec: &CloneSpec,
    ) -> Result<Vec<Selector>, StepError> {
        let mut out = Vec::new();
        for c in &self.sync {
            out.extend(spec.class(c)?);
        }
        for s in &self.systems {
            out.push(Selector {
                system: s.to_string(),
                prefixes: Vec::new(),
            });
        }
        if self.sync.is_empty() && self.systems.is_empty() {
            out = catalog
                .systems
                .iter()
                .filter(|s| s.kind != SystemKind::Backups && s.migratable())
                .map(|s| Selector {
                    system: s.name.to_string(),
                    prefixes: Vec::new(),
                })
                .collect();
        }
        let out = rules::merge(out);
        if let Some(sub) = &self.subset {
            // Some selector of the class's system takes every key under its prefix.
            let covered = |c: &subset::Class| {
                out.iter()
                    .any(|s| s.system == c.system && s.selects(&c.prefix))
            };
            let root = subset::Class::parse(&sub.from)?;
            if !covered(&root) {
                return Err(StepError::invalid(format!(
                    "the subset's roots {} are not among what the clone copies",
                    sub.from
                )));
            }
            // A referring record the clone copies must find what it refers to there: a
            // referred class the clone leaves out (not selected, or embeddings dropped)
            // would leave it pointing at nothing.
            let copies_all = |c: &subset::Class| {
                let dropped = catalog
                    .system(&c.system)
                    .is_some_and(|s| s.kind == SystemKind::Vectors)
                    && spec.vector_rule(&c.system).action == VectorAction::Drop;
                !dropped && covered(c)
            };
            let touches = |c: &subset::Class| {
                out.iter().any(|s| {
                    s.system == c.system
                        && (s.prefixes.is_empty()
                            || s.prefixes.iter().any(|p| {
                                c.prefix.starts_with(p.as_str()) || p.starts_with(c.prefix.as_str())
                            }))
                })
            };
            for r in &spec.references {
                let (from, to) = (subset::Class::parse(&r.from)?, subset::Class::parse(&r.to)?);
                if touches(&from) && !copies_all(&to) {
                    return Err(StepError::invalid(format!(
                        "the subset follows {} {} to {}, which this clone does not copy (not selected, or embeddings dropped): add it, or leave {} out",
                        r.from, r.field, r.to, r.from
                    )));
                }
            }
        }
        for s in &out {
            let sys = catalog.system(&s.system).ok_or_else(|| {
                StepError::invalid(format!("system {} is not in the catalog", s.system))
            })?;
            if sys.kind == SystemKind::Backups || !sys.migratable() {
                return Err(StepError::invalid(format!(
                    "system {} cannot be cloned (a {:?} system without per-record copies)",
                    s.system, sys.kind
                )));
            }
            if sys.kind == SystemKind::Vectors
                && spec.vector_rule(&s.system).action == VectorAction::Keep
                && self.vector_approval.is_none()
            {
                return Err(StepError::invalid(format!(
                    "the catalog keeps {}'s embeddings only with an approval: pass vector_approval (--approve-vectors <ticket>)",
                    s.system
                )));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
