//! The manifest: everything a restore needs to find, check and decrypt one backup, and
//! nothing personal (keys of records never appear in it, only counts and digests).

use crate::TenantId;
use crate::migration::Fingerprint;
use serde::{Deserialize, Serialize};

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// A full copy of the tenant, or the changes since the previous backup of its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// Every current record of every system.
    Full,
    /// The records changed since `base` (deletions as tombstones), read from the feeds.
    Incremental,
}

/// The tenant's data key, wrapped: only the tenant's key-encryption key opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    /// Which key-encryption key wrapped it (a KMS key ARN, or `local:<tenant>`).
    pub key_ref: String,
    /// The wrapped data key, standard base64.
    pub wrapped_b64: String,
    /// The chunk cipher: always `AES-256-GCM`.
    pub alg: String,
}

/// One sealed chunk: up to a page of records, framed, zstd-compressed, then encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRef {
    /// Position within the system's chunks, from 0; bound into the cipher's AAD.
    pub index: u32,
    /// Records in the chunk (tombstones included).
    pub records: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
}

/// What the backup holds of one catalog system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemPart {
    /// The catalog system.
    pub system: String,
    /// The location read (the tenant's live location at the time).
    pub location: String,
    /// The schema version the bodies are written in.
    pub schema_version: u32,
    /// Records with a body.
    pub records: u64,
    /// Deletions carried (incremental backups only).
    #[serde(default)]
    pub tombstones: u64,
    /// Fingerprint of the records with a body, as migration's verify computes it.
    pub fingerprint: Fingerprint,
    /// Feed position this backup starts after (0 for a full backup).
    #[serde(default)]
    pub feed_from: u64,
    /// Feed position at the backup's instant: the next incremental starts after it.
    pub feed_position: u64,
    /// The sealed chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

/// A system the backup could not cover, and why (said, never silently skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// The catalog system.
    pub system: String,
    /// Why it is not in the backup.
    pub reason: String,
}

/// One backup of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The backup's id (also the ledger request id of its certificate).
    pub backup_id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Full or incremental.
    pub kind: BackupKind,
    /// For an incremental backup, the backup it follows.
    #[serde(default)]
    pub base: Option<String>,
    /// The tenant's tier when it was taken.
    pub tier: String,
    /// The backup's instant (RFC 3339, UTC, milliseconds): feeds were read up to here.
    pub created_at: String,
    /// When retention ends (prune deletes it after, unless a legal hold covers it).
    pub expires_at: String,
    /// Regions holding a copy.
    pub regions: Vec<String>,
    /// The recovery point objective of the tier, in seconds (the increment interval).
    pub rpo_seconds: u64,
    /// The backup's data key, wrapped by the tenant's key-encryption key.
    pub key: WrappedKey,
    /// Digest of the catalog it was taken under.
    pub catalog_sha256: String,
    /// What each system contributed.
    pub systems: Vec<SystemPart>,
    /// Systems left out, with the reason.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// The version of the tenant's migration record when it was taken: an incremental on
    /// a base of another version is taken in full (a migration's copies and rollbacks
    /// write through `apply`, which no change feed records). Left out when the tenant
    /// never migrated, so manifests from before keep their digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_version: Option<u64>,
}

impl Manifest {
    /// Hex SHA-256 of the manifest's RFC 8785 form: what its certificate binds.
    pub fn digest(&self) -> String {
        serde_json::to_value(self)
            .map(|v| crate::erasure::json_digest(&v))
            .unwrap_or_default()
    }

    /// Records with a body, over every system.
    pub fn records(&self) -> u64 {
        self.systems.iter().map(|s| s.records).sum()
    }

    /// Bytes stored, over every chunk.
    pub fn bytes(&self) -> u64 {
        self.systems
            .iter()
            .flat_map(|s| &s.chunks)
            .map(|c| c.bytes)
            .sum()
    }

    /// The part of one system.
    pub fn part(&self, system: &str) -> Option<&SystemPart> {
        self.systems.iter().find(|s| s.system == system)
    }

    /// Parses a stored manifest strictly (size cap, duplicate keys, unknown fields).
    pub fn parse(text: &[u8]) -> Result<Self, crate::StepError> {
        if text.len() > MAX_MANIFEST {
            return Err(crate::StepError::invalid(format!(
                "a manifest of {} bytes is over the {MAX_MANIFEST}-byte limit",
                text.len()
            )));
        }
        let v = crate::json::parse_strict_bytes(text)
            .map_err(|e| crate::StepError::invalid(format!("backup manifest: {e}")))?;
        let m: Manifest = serde_json::from_value(v)
            .map_err(|e| crate::StepError::invalid(format!("backup manifest: {e}")))?;
        if m.format != FORMAT {
            return Err(crate::StepError::invalid(format!(
                "manifest format {} is not {FORMAT}, the one this build reads",
                m.format
            )));
        }
        Ok(m)
    }

    /// The manifest's stored text.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// The largest manifest read (a backup of 10,000 chunks per system fits many times).
pub const MAX_MANIFEST: usize = 64 << 20;

/// Where a backup's objects live in an archive: `tenants/<tenant>/backups/<id>/`.
pub fn backup_prefix(tenant: &TenantId, backup_id: &str) -> String {
    format!("{}{backup_id}/", tenant_prefix(tenant))
}

/// Where all of a tenant's backups live.
pub fn tenant_prefix(tenant: &TenantId) -> String {
    format!("tenants/{tenant}/backups/")
}

/// The object key of a backup's manifest.
pub fn manifest_key(tenant: &TenantId, backup_id: &str) -> String {
    format!("{}manifest.json", backup_prefix(tenant, backup_id))
}

/// The object key of one chunk.
pub fn chunk_key(tenant: &TenantId, backup_id: &str, system: &str, index: u32) -> String {
    format!(
        "{}{system}/{index:08}.chunk",
        backup_prefix(tenant, backup_id)
    )
}

/// What a chunk's cipher authenticates besides its bytes: which tenant, backup, system
/// and position it belongs to, so a chunk moved anywhere else fails to decrypt.
pub fn chunk_aad(tenant: &TenantId, backup_id: &str, system: &str, index: u32) -> Vec<u8> {
    format!("tenant-backup/v1\0{tenant}\0{backup_id}\0{system}\0{index}").into_bytes()
}

/// The longest backup id: a request id (an execution name), 80 characters.
const MAX_ID: usize = 80;
/// Characters of a long tenant's id kept in its backup ids (`bl-...`).
const LONG_PREFIX: usize = 24;
/// Hex characters of the SHA-256 of a long tenant's id in its backup ids: 128 bits, so no
/// two tenants can be made to share one.
const LONG_DIGEST: usize = 32;

/// A backup id: `bk-<yyyymmddThhmmssmmm>-<tenant>`, so the tenant can be read back from the
/// id alone (`restore <backup_id>`). Where that is over 80 characters (a tenant id over 58),
/// `bl-<stamp>-<first 24 characters of the tenant>-<32 hex of its SHA-256>`: a restore then
/// names the tenant, and [`names_tenant`] checks it against the id.
pub fn backup_id(tenant: &TenantId, created_at: time::OffsetDateTime) -> String {
    let t = created_at.to_offset(time::UtcOffset::UTC);
    let stamp = format!(
        "{:04}{:02}{:02}t{:02}{:02}{:02}{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
    let full = format!("bk-{stamp}-{tenant}");
    if full.len() <= MAX_ID {
        return full;
    }
    // Tenant ids are ASCII, so any byte index is a character boundary.
    let head = &tenant.as_str()[..LONG_PREFIX];
    format!("bl-{stamp}-{head}-{}", long_digest(tenant))
}

fn long_digest(tenant: &TenantId) -> String {
    use sha2::Digest as _;
    let mut h = hex::encode(sha2::Sha256::digest(tenant.as_str().as_bytes()));
    h.truncate(LONG_DIGEST);
    h
}

/// The stamp and the rest of a backup id, if it is shaped like one of `kind` (`bk`, `bl`).
fn split_id<'a>(backup_id: &'a str, kind: &str) -> Option<&'a str> {
    let rest = backup_id.strip_prefix(kind)?.strip_prefix('-')?;
    let (stamp, tail) = rest.split_once('-')?;
    // Bytes, not string slices: an id is untrusted input and may hold any character.
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (b.len() == 18 && b[8] == b't' && digits(0..8) && digits(9..18)).then_some(tail)
}

/// The tenant a backup id names, if it is shaped like one and holds the whole tenant id
/// (`bk-`); `None` for the ids of long tenants (`bl-`), which [`names_tenant`] checks.
pub fn tenant_of(backup_id: &str) -> Option<TenantId> {
    TenantId::parse(split_id(backup_id, "bk")?).ok()
}

/// Whether the backup id is one of `tenant`'s backups' ids.
pub fn names_tenant(backup_id: &str, tenant: &TenantId) -> bool {
    if let Some(t) = tenant_of(backup_id) {
        return t == *tenant;
    }
    split_id(backup_id, "bl").is_some_and(|tail| {
        tenant.as_str().len() > LONG_PREFIX
            && tail
                == format!(
                    "{}-{}",
                    &tenant.as_str()[..LONG_PREFIX],
                    long_digest(tenant)
                )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ids_name_their_tenant_and_sort_by_time() {
        let t = TenantId::parse("tenant_004_departed-customer").expect("id");
        let a = backup_id(&t, time::macros::datetime!(2026-01-02 03:04:05.006 UTC));
        assert_eq!(a, "bk-20260102t030405006-tenant_004_departed-customer");
        assert_eq!(tenant_of(&a), Some(t.clone()));
        let b = backup_id(&t, time::macros::datetime!(2026-01-02 03:04:05.007 UTC));
        assert!(a < b);
        crate::RequestId::parse(&a).expect("a backup id is a request id");
        for bad in [
            "bk-x-t",
            "bk-20260102\u{e9}12345678-t1",
            "bk-2026010zt030405006-t1",
            "t",
            "bk-20260102t030405006-",
            "bk-20260102t030405006-a/b",
        ] {
            assert_eq!(tenant_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_long_tenant_gets_a_backup_id_a_request_id_can_hold_and_that_names_only_it() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.006 UTC);
        for n in [58, 59, 80, 128] {
            let t = TenantId::parse(&format!("t{}", "x".repeat(n - 1))).expect("id");
            let id = backup_id(&t, at);
            assert!(id.len() <= 80, "{n}: {id} is {} characters", id.len());
            crate::RequestId::parse(&id).expect("a request id");
            assert!(names_tenant(&id, &t), "{n}: {id}");
            let other = TenantId::parse(&format!("u{}", "x".repeat(n - 1))).expect("id");
            assert!(!names_tenant(&id, &other), "{n}");
            let twin = TenantId::parse(&format!("t{}y", "x".repeat(n - 2))).expect("id");
            assert!(!names_tenant(&id, &twin), "{n}: same prefix, other tenant");
            if n <= 58 {
                assert_eq!(tenant_of(&id), Some(t));
            } else {
                assert_eq!(tenant_of(&id), None, "the id alone cannot say the tenant");
            }
        }
    }

    #[test]
    fn keys_stay_under_the_tenants_prefix_and_aad_binds_position() {
        let t = TenantId::parse("t1").expect("id");
        assert_eq!(
            chunk_key(&t, "bk-1", "pg", 3),
            "tenants/t1/backups/bk-1/pg/00000003.chunk"
        );
        assert_ne!(
            chunk_aad(&t, "bk-1", "pg", 3),
            chunk_aad(&t, "bk-1", "pg", 4)
        );
        assert_ne!(
            chunk_aad(&t, "bk-1", "pg", 3),
            chunk_aad(&t, "bk-2", "pg", 3)
        );
    }
}
