//! The rules of backups: tiers and their retention, which backups a prune deletes, which
//! backups a point-in-time restore replays, and which schema transform a restore applies.

use super::manifest::{BackupKind, Manifest};
use crate::StepError;
use crate::migration::Transform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How often a tier is backed up in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
}

impl Schedule {
    /// The EventBridge Scheduler expression of the schedule (UTC, 03:00).
    pub fn expression(self) -> &'static str {
        match self {
            Self::Daily => "cron(0 3 * * ? *)",
            Self::Weekly => "cron(0 3 ? * SUN *)",
            Self::Monthly => "cron(0 3 1 * ? *)",
        }
    }
}

/// A backup tier (scenarios.json's `backup_tiers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Its name: `platinum`, `gold`, `bronze`.
    pub name: String,
    /// How often a full backup runs.
    pub schedule: Schedule,
    /// Days a backup is kept.
    pub retention_days: u32,
    /// Whether each backup is copied to the second region.
    #[serde(default)]
    pub cross_region: bool,
    /// Seconds between incremental backups (the recovery point objective); 0: none.
    #[serde(default)]
    pub rpo_seconds: u64,
}

/// Where the key-encryption keys of tenants live.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeysBackend {
    /// A key per tenant in the embedded world.
    #[default]
    Local,
    /// A KMS key per tenant (alias `<alias_prefix><tenant>`), data keys by GenerateDataKey.
    Kms {
        /// Alias prefix, e.g. `alias/tenant-backup/`.
        #[serde(default = "default_alias_prefix")]
        alias_prefix: String,
        /// Days KMS waits before deleting a destroyed tenant's key (7 to 30).
        #[serde(default = "default_pending_days")]
        pending_window_days: u32,
    },
}

fn default_alias_prefix() -> String {
    "alias/tenant-backup/".into()
}
fn default_pending_days() -> u32 {
    7
}

/// Where backup chunks and manifests are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum ArchiveBackend {
    /// Files under a directory (default: `backups/` beside the world file).
    #[default]
    Directory,
    /// An S3 bucket (versioned; every version is deleted on erasure).
    S3 {
        /// The bucket.
        bucket: String,
        /// The bucket in the second region that cross-region tiers copy to.
        #[serde(default)]
        replica_bucket: Option<String>,
        /// The second region.
        #[serde(default)]
        replica_region: Option<String>,
    },
}

/// The catalog's `[backup]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSpec {
    /// Where backups are stored.
    #[serde(default)]
    pub archive: ArchiveBackend,
    /// Where tenants' keys live.
    #[serde(default)]
    pub keys: KeysBackend,
    /// The tiers (default: scenarios.json's three).
    #[serde(default = "default_tiers")]
    pub tiers: Vec<Tier>,
    /// Each tenant's tier; tenants not listed get `default_tier`.
    #[serde(default)]
    pub tenant_tiers: BTreeMap<String, String>,
    /// The tier of a tenant not listed.
    #[serde(default = "default_tier")]
    pub default_tier: String,
    /// Records per chunk.
    #[serde(default = "default_chunk_records")]
    pub chunk_records: usize,
}

fn default_tier() -> String {
    "bronze".into()
}
fn default_chunk_records() -> usize {
    2000
}

/// scenarios.json's tiers, with increments every 15 minutes for platinum and hourly for gold.
pub fn default_tiers() -> Vec<Tier> {
    vec![
        Tier {
            name: "platinum".into(),
            schedule: Schedule::Daily,
            retention_days: 365,
            cross_region: true,
            rpo_seconds: 900,
        },
        Tier {
            name: "gold".into(),
            schedule: Schedule::Weekly,
            retention_days: 90,
            cross_region: false,
            rpo_seconds: 3600,
        },
        Tier {
            name: "bronze".into(),
            schedule: Schedule::Monthly,
            retention_days: 30,
            cross_region: false,
            rpo_seconds: 0,
        },
    ]
}

impl Default for BackupSpec {
    fn default() -> Self {
        Self {
            archive: ArchiveBackend::default(),
            keys: KeysBackend::default(),
            tiers: default_tiers(),
            tenant_tiers: BTreeMap::new(),
            default_tier: default_tier(),
            chunk_records: default_chunk_records(),
        }
    }
}

impl BackupSpec {
    /// Checks tiers are unique and every named tier exists.
    pub fn validate(&self) -> Result<(), StepError> {
        let bad = |m: String| Err(StepError::Configuration(format!("[backup]: {m}")));
        let mut names: Vec<&str> = self.tiers.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return bad("a tier is listed twice".into());
        }
        if let Some(key) = self
            .tenant_tiers
            .keys()
            .find(|t| crate::TenantId::parse(t).is_err())
        {
            return bad(format!(
                "tenant_tiers names {key:?}, which is not a tenant id"
            ));
        }
        for (tenant, tier) in self
            .tenant_tiers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .chain([("default_tier", self.default_tier.as_str())])
        {
            if !names.contains(&tier) {
                return bad(format!(
                    "{tenant} names tier {tier:?}, which is not among the tiers ({})",
                    names.join(", ")
                ));
            }
        }
        if !(1..=100_000).contains(&self.chunk_records) {
            return bad("chunk_records must be 1..=100000".into());
        }
        if let KeysBackend::Kms {
            pending_window_days,
            ..
        } = self.keys
            && !(7..=30).contains(&pending_window_days)
        {
            return bad("keys.pending_window_days must be 7..=30 (what KMS allows)".into());
        }
        Ok(())
    }

    /// A tier by name.
    pub fn tier(&self, name: &str) -> Result<&Tier, StepError> {
        self.tiers.iter().find(|t| t.name == name).ok_or_else(|| {
            StepError::invalid(format!(
                "tier {name:?} is not in the catalog's [backup] tiers"
            ))
        })
    }

    /// The tenants the catalog assigns to `tier` (`tenant_tiers`), in order: what a
    /// scheduled run of the tier backs up. A tenant left to `default_tier` is not listed,
    /// since nothing names it.
    pub fn tenants_of(&self, tier: &str) -> Result<Vec<crate::TenantId>, StepError> {
        self.tier(tier)?;
        self.tenant_tiers
            .iter()
            .filter(|(_, t)| *t == tier)
            .map(|(tenant, _)| {
                crate::TenantId::parse(tenant)
                    .map_err(|e| StepError::Configuration(format!("[backup] tenant_tiers: {e}")))
            })
            .collect()
    }

    /// The tier of a tenant.
    pub fn tier_of(&self, tenant: &str) -> Result<&Tier, StepError> {
        self.tier(
            self.tenant_tiers
                .get(tenant)
                .map_or(self.default_tier.as_str(), String::as_str),
        )
    }
}

/// Parses an RFC 3339 instant.
pub fn instant(text: &str) -> Result<time::OffsetDateTime, StepError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| StepError::invalid(format!("{text:?} is not an RFC 3339 instant: {e}")))
}

/// Formats an instant as RFC 3339, UTC, with milliseconds (backups taken in the same
/// second must still order).
pub fn stamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// When a backup taken at `created` under `tier` expires.
pub fn expires_at(created: time::OffsetDateTime, tier: &Tier) -> String {
    stamp(created + time::Duration::days(i64::from(tier.retention_days)))
}

/// The backups a prune at `now` deletes: past retention, unless the tenant is under a
/// legal hold, and never a backup that a kept incremental still builds on.
pub fn prune_plan(manifests: &[Manifest], held: bool, now: time::OffsetDateTime) -> Vec<&Manifest> {
    if held {
        return Vec::new();
    }
    let expired = |m: &Manifest| instant(&m.expires_at).is_ok_and(|t| t <= now);
    let needed: std::collections::BTreeSet<&str> = manifests
        .iter()
        .filter(|m| !expired(m))
        .flat_map(|m| chain_of(manifests, m))
        .map(|m| m.backup_id.as_str())
        .collect();
    manifests
        .iter()
        .filter(|m| expired(m) && !needed.contains(m.backup_id.as_str()))
        .collect()
}

/// `m` and the backups it builds on, oldest (the full backup) first.
fn chain_of<'a>(all: &'a [Manifest], m: &'a Manifest) -> Vec<&'a Manifest> {
    let mut chain = vec![m];
    let mut cur = m;
    while let Some(base) = &cur.base {
        match all.iter().find(|b| &b.backup_id == base) {
            Some(b) if chain.len() <= all.len() => {
                chain.push(b);
                cur = b;
            }
            _ => break,
        }
    }
    chain.reverse();
    chain
}

/// What a restore replays: the last full backup at or before `to` and the incrementals
/// of its chain up to `to`, in order. `to = None`: the latest state backed up.
pub fn restore_chain(
    manifests: &[Manifest],
    to: Option<time::OffsetDateTime>,
) -> Result<Vec<&Manifest>, StepError> {
    let at = |m: &Manifest| instant(&m.created_at).ok();
    let within = |m: &Manifest| match (to, at(m)) {
        (None, Some(_)) => true,
        (Some(t), Some(c)) => c <= t,
        _ => false,
    };
    let mut sorted: Vec<&Manifest> = manifests.iter().filter(|m| within(m)).collect();
    sorted.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let latest = sorted.last().ok_or_else(|| {
        StepError::invalid(match to {
            Some(t) => format!(
                "no backup of the tenant was taken at or before {}",
                stamp(t)
            ),
            None => "the tenant has no backup".into(),
        })
    })?;
    let chain = chain_of(manifests, latest);
    match chain.first() {
        Some(first) if first.kind == BackupKind::Full => Ok(chain),
        _ => Err(StepError::invalid(format!(
            "backup {} builds on a backup that is gone (pruned or erased); no full backup starts its chain",
            latest.backup_id
        ))),
    }
}

/// The transform that takes bodies written at schema `from` to schema `to`, or a refusal
/// when there is no path (before anything is written).
pub fn schema_path(system: &str, from: u32, to: u32) -> Result<Transform, StepError> {
    match (from, to) {
        (a, b) if a == b => Ok(Transform::None),
        (1, 2) => Ok(Transform::SchemaV1ToV2),
        _ => Err(StepError::invalid(format!(
            "system {system}: a backup at schema v{from} cannot be restored at v{to}: no migration path (known: v1 -> v2)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;
    use crate::backup::manifest::{FORMAT, WrappedKey};

    fn m(id: &str, kind: BackupKind, base: Option<&str>, at: &str, exp: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            backup_id: id.into(),
            tenant_id: TenantId::parse("t1").expect("id"),
            kind,
            base: base.map(Into::into),
            tier: "gold".into(),
            created_at: at.into(),
            expires_at: exp.into(),
            regions: vec!["local".into()],
            rpo_seconds: 0,
            key: WrappedKey {
                key_ref: "local:t1".into(),
                wrapped_b64: String::new(),
                alg: "AES-256-GCM".into(),
            },
            catalog_sha256: String::new(),
            systems: vec![],
            skipped: vec![],
            migration_version: None,
        }
    }

    fn set() -> Vec<Manifest> {
        use BackupKind::*;
        vec![
            m(
                "f1",
                Full,
                None,
                "2026-01-01T00:00:00.000Z",
                "2026-02-01T00:00:00.000Z",
            ),
            m(
                "i1",
                Incremental,
                Some("f1"),
                "2026-01-01T01:00:00.000Z",
                "2026-02-01T01:00:00.000Z",
            ),
            m(
                "i2",
                Incremental,
                Some("i1"),
                "2026-01-01T02:00:00.000Z",
                "2026-03-01T00:00:00.000Z",
            ),
            m(
                "f2",
                Full,
                None,
                "2026-01-02T00:00:00.000Z",
                "2026-02-02T00:00:00.000Z",
            ),
        ]
    }

    fn ids(v: &[&Manifest]) -> Vec<String> {
        v.iter().map(|m| m.backup_id.clone()).collect()
    }

    #[test]
    fn a_point_in_time_takes_the_last_full_backup_and_its_increments_up_to_then() {
        let all = set();
        let at = |s| Some(instant(s).expect("t"));
        assert_eq!(
            ids(&restore_chain(&all, at("2026-01-01T01:30:00Z")).expect("c")),
            ["f1", "i1"]
        );
        assert_eq!(
            ids(&restore_chain(&all, at("2026-01-01T02:00:00Z")).expect("c")),
            ["f1", "i1", "i2"]
        );
        assert_eq!(
            ids(&restore_chain(&all, at("2026-01-03T00:00:00Z")).expect("c")),
            ["f2"]
        );
        assert_eq!(ids(&restore_chain(&all, None).expect("c")), ["f2"]);
        assert!(restore_chain(&all, at("2025-12-31T00:00:00Z")).is_err());
        let orphan: Vec<Manifest> = all.into_iter().filter(|m| m.backup_id != "f1").collect();
        let e = restore_chain(&orphan, at("2026-01-01T02:30:00Z")).expect_err("orphan");
        assert!(e.to_string().contains("no full backup"), "{e}");
    }

    #[test]
    fn prune_deletes_what_expired_keeps_what_a_kept_increment_needs_and_nothing_under_hold() {
        let all = set();
        let now = instant("2026-02-15T00:00:00Z").expect("t");
        // f1 and i1 expired, but i2 (kept) builds on them; f2 expired and is alone.
        assert_eq!(ids(&prune_plan(&all, false, now)), ["f2"]);
        let later = instant("2026-03-02T00:00:00Z").expect("t");
        assert_eq!(
            ids(&prune_plan(&all, false, later)),
            ["f1", "i1", "i2", "f2"]
        );
        assert!(prune_plan(&all, true, later).is_empty());
    }

    #[test]
    fn schema_paths_are_known_or_refused() {
        assert_eq!(schema_path("pg", 1, 1).expect("same"), Transform::None);
        assert_eq!(
            schema_path("pg", 1, 2).expect("up"),
            Transform::SchemaV1ToV2
        );
        let e = schema_path("pg", 3, 2).expect_err("none");
        assert!(e.to_string().contains("no migration path"), "{e}");
    }

    #[test]
    fn the_spec_checks_its_tiers() {
        let mut s = BackupSpec::default();
        s.validate().expect("defaults");
        assert_eq!(s.tier_of("anyone").expect("t").name, "bronze");
        for (t, tier) in [("t_b", "gold"), ("t_a", "gold"), ("t_c", "platinum")] {
            s.tenant_tiers.insert(t.into(), tier.into());
        }
        s.validate().expect("listed tenants");
        let gold: Vec<String> = s
            .tenants_of("gold")
            .expect("gold")
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(gold, ["t_a", "t_b"]);
        assert!(
            s.tenants_of("bronze").expect("bronze").is_empty(),
            "defaults are not listed"
        );
        assert!(s.tenants_of("diamond").is_err());
        s.tenant_tiers.insert("../etc".into(), "gold".into());
        assert!(s.validate().is_err(), "a key that is no tenant id");
        s.tenant_tiers.remove("../etc");
        s.tenant_tiers.insert("t1".into(), "diamond".into());
        assert!(s.validate().is_err());
        assert_eq!(Schedule::Daily.expression(), "cron(0 3 * * ? *)");
        assert_eq!(
            stamp(instant("2026-01-02T03:04:05.678+01:00").expect("t")),
            "2026-01-02T02:04:05.678Z"
        );
    }
}
