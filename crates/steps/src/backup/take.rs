//! Taking a backup: begin (the instant, the data key, each system's feed position),
//! export each system in resumable chunks, then finish (the manifest, its copies in
//! other regions, its certificate).

use super::{frame, get_json, hex_sha256, live, put_json, refuse_if_erased, seal};
use crate::certify::{Draft, certify};
use base64::Engine as _;
use lifecycle::backup::manifest::{
    self, ChunkRef, FORMAT, Manifest, Skipped, SystemPart, WrappedKey,
};
use lifecycle::backup::policy::{expires_at, stamp};
use lifecycle::backup::{BACKUP_CHAIN, BackupKind, BackupRequest};
use lifecycle::migration::Fingerprint;
use lifecycle::{StepError, SystemKind, TenantId};
use ports::Services;
use ports::backup::Archive;
use ports::migrate::{ChangeFeed, Dataset, Export, Rec, ScanExport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Instant;

/// What `begin` fixed for the whole backup, kept beside its chunks until the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pending {
    manifest: Manifest,
}

/// One system's progress, kept after every chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Progress {
    part: SystemPart,
    /// Feed position read up to (incremental backups).
    feed_cursor: u64,
    done: bool,
}

/// What `begin` returns: the backup id and the systems to export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begun {
    /// The backup.
    pub backup_id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Systems to export (one Map iteration each).
    pub systems: Vec<String>,
    /// Systems left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Backups that began before `before` and never finished (a run killed for good, with no
/// retry left): their ids. Their chunks can never be restored, since no manifest is
/// certified for them.
pub async fn abandoned(
    svc: &dyn Services,
    tenant: &TenantId,
    before: time::OffsetDateTime,
) -> Result<Vec<String>, StepError> {
    let archive = svc.archive()?;
    let keys = archive.list(&manifest::tenant_prefix(tenant)).await?;
    let mut out = Vec::new();
    for k in keys.iter().filter(|k| k.ends_with("/pending.json")) {
        let dir = k.trim_end_matches("pending.json");
        if keys
            .iter()
            .any(|o| o.starts_with(dir) && o.ends_with("/manifest.json"))
        {
            continue;
        }
        let p: Pending = get_json(&**archive, k).await?.ok_or_else(|| {
            StepError::Internal(format!("{k} was listed, then could not be read"))
        })?;
        if lifecycle::backup::policy::instant(&p.manifest.created_at)? < before {
            out.push(p.manifest.backup_id);
        }
    }
    Ok(out)
}

fn pending_key(tenant: &TenantId, id: &str) -> String {
    format!("{}pending.json", manifest::backup_prefix(tenant, id))
}

fn progress_key(tenant: &TenantId, id: &str, system: &str) -> String {
    format!(
        "{}{system}/progress.json",
        manifest::backup_prefix(tenant, id)
    )
}

/// Every complete backup of the tenant (a manifest is written last), oldest first.
pub async fn list(svc: &dyn Services, tenant: &TenantId) -> Result<Vec<Manifest>, StepError> {
    let archive = svc.archive()?;
    let mut out = Vec::new();
    for key in archive.list(&manifest::tenant_prefix(tenant)).await? {
        if !key.ends_with("/manifest.json") {
            continue;
        }
        let bytes = archive.get(&key).await?.unwrap_or_default();
        let m = Manifest::parse(&bytes).map_err(|e| StepError::BackupCorrupt {
            backup_id: key.clone(),
            detail: e.to_string(),
        })?;
        if m.tenant_id != *tenant {
            return Err(StepError::BackupCorrupt {
                backup_id: m.backup_id,
                detail: format!("its manifest names tenant {}", m.tenant_id),
            });
        }
        out.push(m);
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(out)
}

/// Every tenant that holds a backup in the archive (`tenants/<t>/backups/...`), in order:
/// what a prune of all tenants covers, whether or not the catalog lists the tenant's tier.
pub async fn tenants_with_backups(svc: &dyn Services) -> Result<Vec<TenantId>, StepError> {
    let mut out: Vec<TenantId> = svc
        .archive()?
        .list("tenants/")
        .await?
        .iter()
        .filter_map(|k| {
            let mut parts = k.strip_prefix("tenants/")?.split('/');
            let tenant = parts.next()?;
            (parts.next()? == "backups").then(|| TenantId::parse(tenant).ok())?
        })
        .collect();
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out.dedup();
    Ok(out)
}

/// Fixes the backup's instant, data key and feed positions, and lists what to export.
pub async fn begin(svc: &dyn Services, req: &BackupRequest) -> Result<Begun, StepError> {
    let tenant = &req.tenant_id;
    refuse_if_erased(svc, tenant).await?;
    let catalog = svc.catalog();
    let spec = catalog.backup();
    let tier = match &req.tier {
        Some(t) => spec.tier(t)?,
        None => spec.tier_of(tenant.as_str())?,
    }
    .clone();
    let archive = svc.archive()?;
    let base = match req.kind {
        BackupKind::Full => None,
        // With nothing to build on (a tenant new to its tier, whose increments are due
        // before its first full backup), the first backup is taken in full.
        BackupKind::Incremental => list(svc, tenant).await?.pop(),
    };
    let migration = match svc.migrations() {
        Ok(m) => m.get(tenant).await?,
        Err(_) => None,
    };
    let migration_version = migration.as_ref().map(|r| r.version);
    let mut moved: Option<String> = None;
    if req.kind == BackupKind::Incremental {
        match &base {
            _ if migration.as_ref().is_some_and(|r| !r.phase.is_terminal()) => {
                moved = Some("(a migration is running)".into());
            }
            Some(b) if b.migration_version != migration_version => {
                moved = Some(format!("(the tenant migrated since base {})", b.backup_id));
            }
            None => moved = Some("(no earlier backup)".into()),
            // A prune may delete an expired base at any moment, which would orphan this.
            Some(b) if lifecycle::backup::policy::instant(&b.expires_at)? <= svc.clock().now() => {
                moved = Some(format!("(base {} expired)", b.backup_id));
            }
            Some(_) => {}
        }
    }
    let now = svc.clock().now();
    let backup_id = manifest::backup_id(tenant, now);
    let mut parts = Vec::new();
    let mut skipped = Vec::new();
    for spec in &catalog.systems {
        let name = spec.name.as_str();
        if spec.kind == SystemKind::Backups {
            continue;
        }
        let (location, schema_version) = live(svc, tenant, name).await?;
        let feed = match (svc.dataset(name, &location), svc.feed(name, &location)) {
            (Ok(_), Ok(f)) => f,
            (Err(e), _) | (_, Err(e)) => {
                skipped.push(Skipped {
                    system: name.to_owned(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        feed.settle(tenant).await?;
        let position = feed.head(tenant).await?;
        let feed_from = match &base {
            None => 0,
            Some(b) => match b.part(name) {
                Some(p) if p.location == location => p.feed_position,
                // A system new since the base, or moved by a migration: the feed here does
                // not hold what changed since the base (a migration's bulk copy is not on
                // the target's feed), so this backup is taken in full instead.
                _ => {
                    moved.get_or_insert_with(|| name.to_owned());
                    0
                }
            },
        };
        parts.push(SystemPart {
            system: name.to_owned(),
            location,
            schema_version,
            records: 0,
            tombstones: 0,
            fingerprint: Fingerprint::default(),
            feed_from,
            feed_position: position,
            chunks: Vec::new(),
        });
    }
    let (kind, base) = match &moved {
        Some(why) => {
            tracing::info!(%tenant, why, base = ?base.as_ref().map(|b| &b.backup_id), "incremental taken in full");
            for p in &mut parts {
                p.feed_from = 0;
            }
            (BackupKind::Full, None)
        }
        None => (req.kind, base),
    };
    let key = svc.keys()?.data_key(tenant).await?;
    let mut regions = vec![archive.region().to_owned()];
    if tier.cross_region {
        regions.extend(svc.replicas().iter().map(|r| r.region().to_owned()));
    }
    let m = Manifest {
        format: FORMAT,
        backup_id: backup_id.clone(),
        tenant_id: tenant.clone(),
        kind,
        base: base.map(|b| b.backup_id),
        tier: tier.name.clone(),
        created_at: stamp(now),
        expires_at: expires_at(now, &tier),
        regions,
        rpo_seconds: tier.rpo_seconds,
        key: WrappedKey {
            key_ref: key.key_ref.clone(),
            wrapped_b64: base64::engine::general_purpose::STANDARD.encode(&key.wrapped),
            alg: "AES-256-GCM".into(),
        },
        catalog_sha256: catalog.digest(),
        systems: parts,
        skipped: skipped.clone(),
        migration_version,
    };
    put_json(
        &**archive,
        &pending_key(tenant, &backup_id),
        &Pending {
            manifest: m.clone(),
        },
    )
    .await?;
    tracing::info!(backup_id, tenant = %tenant, systems = m.systems.len(), skipped = skipped.len(), "backup begun");
    Ok(Begun {
        backup_id,
        tenant_id: tenant.clone(),
        systems: m.systems.iter().map(|p| p.system.clone()).collect(),
        skipped,
    })
}

async fn pending(
    archive: &dyn Archive,
    tenant: &TenantId,
    id: &str,
) -> Result<Manifest, StepError> {
    let p: Pending = get_json(archive, &pending_key(tenant, id))
        .await?
        .ok_or_else(|| {
            StepError::invalid(format!(
                "backup {id} of tenant {tenant} was never begun (or is finished)"
            ))
        })?;
    Ok(p.manifest)
}

/// The data key of a manifest, unwrapped.
pub(super) async fn data_key(
    svc: &dyn Services,
    m: &Manifest,
) -> Result<zeroize::Zeroizing<[u8; 32]>, StepError> {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(&m.key.wrapped_b64)
        .map_err(|e| StepError::BackupCorrupt {
            backup_id: m.backup_id.clone(),
            detail: format!("wrapped key: {e}"),
        })?;
    Ok(svc
        .keys()?
        .unwrap(&m.tenant_id, &m.key.key_ref, &wrapped)
        .await?)
}

/// What one export call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    /// The system.
    pub system: String,
    /// Records with a body so far.
    pub records: u64,
    /// Chunks so far.
    pub chunks: u64,
    /// True when the system is fully exported.
    pub done: bool,
}

/// Exports chunks of one system until it is done or `deadline` passes.
pub async fn export_step(
    svc: &dyn Services,
    tenant: &TenantId,
    backup_id: &str,
    system: &str,
    deadline: Instant,
) -> Result<Exported, StepError> {
    let archive = svc.archive()?;
    let m = pending(&**archive, tenant, backup_id).await?;
    let start = m.part(system).ok_or_else(|| {
        StepError::invalid(format!("backup {backup_id} does not cover system {system}"))
    })?;
    let pkey = progress_key(tenant, backup_id, system);
    let mut p: Progress = match get_json(&**archive, &pkey).await? {
        Some(p) => p,
        None => Progress {
            feed_cursor: start.feed_from,
            part: start.clone(),
            done: false,
        },
    };
    let key = data_key(svc, &m).await?;
    let dataset = svc.dataset(system, &p.part.location)?;
    let feed = svc.feed(system, &p.part.location)?;
    let page = svc.catalog().backup().chunk_records;
    // Resuming a full backup: the cursor is the last key of the last recorded chunk,
    // read back from the chunk itself, so no key is ever stored in the clear.
    let mut cursor: Option<String> = None;
    if m.kind == BackupKind::Full
        && let Some(last) = p.part.chunks.last()
    {
        let recs = read_chunk(svc, &m, &key, system, last).await?;
        cursor = recs.last().map(|r| r.key.clone());
    }
    let mut source = match m.kind {
        BackupKind::Full if !p.done => Source::Full(
            match dataset.export(tenant, cursor.as_deref(), page).await? {
                Some(e) => e,
                None => Box::new(ScanExport::new(&*dataset, tenant, cursor.as_deref(), page)),
            },
        ),
        _ => Source::Feed {
            feed: &*feed,
            dataset: &*dataset,
            cursor: p.feed_cursor,
            upto: p.part.feed_position,
        },
    };
    let mut next = if p.done {
        Page::default()
    } else {
        source.next(tenant, page).await?
    };
    // Each turn writes one chunk while the next page is read and the progress of the
    // chunks before it is saved: the three round trips overlap, and a saved progress
    // only ever names chunks already written.
    let saved_as = |p: &Progress| (p.part.chunks.len(), p.done);
    let mut saved = saved_as(&p);
    while !p.done {
        let here = std::mem::take(&mut next);
        if here.recs.is_empty() {
            p.done = true;
            break;
        }
        let index = u32::try_from(p.part.chunks.len())
            .map_err(|_| StepError::Internal("too many chunks".into()))?;
        let plain = frame::encode(&here.recs).map_err(|e| StepError::Internal(e.to_string()))?;
        let aad = manifest::chunk_aad(tenant, backup_id, system, index);
        let sealed =
            seal::seal(&key, &aad, &plain).map_err(|e| StepError::Internal(e.to_string()))?;
        let digest = hex_sha256(&sealed);
        let bytes = sealed.len() as u64;
        let last = ends_export(m.kind, here.recs.len(), page);
        // Past the deadline the call ends after this chunk: no page is read ahead, since
        // it would be thrown away (and a bulk export cut off mid-stream).
        let read_ahead = !last && Instant::now() < deadline;
        let snapshot = (saved != saved_as(&p)).then(|| p.clone());
        let snapshot_as = saved_as(&p);
        let ckey = manifest::chunk_key(tenant, backup_id, system, index);
        let (put, save, read) = tokio::join!(
            archive.put(&ckey, sealed),
            async {
                match &snapshot {
                    Some(s) => put_json(&**archive, &pkey, s).await,
                    None => Ok(()),
                }
            },
            async {
                if read_ahead {
                    source.next(tenant, page).await
                } else {
                    Ok(Page::default())
                }
            },
        );
        put?;
        save?;
        saved = snapshot_as;
        for r in &here.recs {
            match &r.body {
                Some(b) => {
                    p.part.fingerprint.add(&r.key, b);
                    p.part.records += 1;
                }
                None => p.part.tombstones += 1,
            }
        }
        p.part.chunks.push(ChunkRef {
            index,
            records: here.recs.len() as u64,
            bytes,
            sha256: digest,
        });
        p.feed_cursor = here.feed_cursor.unwrap_or(p.feed_cursor);
        p.done = last;
        next = read?;
        crate::progress::records("backup", system, p.part.records + p.part.tombstones);
        if !read_ahead || Instant::now() >= deadline {
            break;
        }
    }
    if saved != saved_as(&p) {
        put_json(&**archive, &pkey, &p).await?;
    }
    Ok(Exported {
        system: system.to_owned(),
        records: p.part.records,
        chunks: p.part.chunks.len() as u64,
        done: p.done,
    })
}

/// One page read for a chunk, with the feed position it reads up to (incremental).
#[derive(Debug, Default)]
struct Page {
    recs: Vec<Rec>,
    feed_cursor: Option<u64>,
}

/// Where an export's pages come from: the dataset (a full backup) or its change feed up
/// to the backup's instant (an incremental one).
enum Source<'a> {
    Full(Box<dyn Export + 'a>),
    Feed {
        feed: &'a dyn ChangeFeed,
        dataset: &'a dyn Dataset,
        cursor: u64,
        upto: u64,
    },
}

impl Source<'_> {
    async fn next(&mut self, tenant: &TenantId, page: usize) -> Result<Page, StepError> {
        match self {
            Self::Full(e) => Ok(Page {
                recs: e.next_page().await?,
                feed_cursor: None,
            }),
            Self::Feed {
                feed,
                dataset,
                cursor,
                upto,
            } => {
                let changes: Vec<_> = feed
                    .read(tenant, *cursor, page)
                    .await?
                    .into_iter()
                    .take_while(|c| c.seq <= *upto)
                    .collect();
                let Some(last) = changes.last().map(|c| c.seq) else {
                    return Ok(Page::default());
                };
                *cursor = last;
                let keys: BTreeSet<String> = changes.into_iter().map(|c| c.key).collect();
                let mut recs = Vec::with_capacity(keys.len());
                for k in keys {
                    recs.push(dataset.read(tenant, &k).await?.unwrap_or(Rec {
                        key: k,
                        rev: 0,
                        body: None,
                    }));
                }
                Ok(Page {
                    recs,
                    feed_cursor: Some(last),
                })
            }
        }
    }
}

/// True when a page ends the export: a full export's short page is its last.
fn ends_export(kind: BackupKind, len: usize, page: usize) -> bool {
    kind == BackupKind::Full && len < page
}

/// Reads, checks and opens one chunk.
pub(super) async fn read_chunk(
    svc: &dyn Services,
    m: &Manifest,
    key: &[u8; 32],
    system: &str,
    c: &ChunkRef,
) -> Result<Vec<Rec>, StepError> {
    let corrupt = |d: String| StepError::BackupCorrupt {
        backup_id: m.backup_id.clone(),
        detail: format!("{system} chunk {}: {d}", c.index),
    };
    let sealed = svc
        .archive()?
        .get(&manifest::chunk_key(
            &m.tenant_id,
            &m.backup_id,
            system,
            c.index,
        ))
        .await?
        .ok_or_else(|| corrupt("missing".into()))?;
    if hex_sha256(&sealed) != c.sha256 {
        return Err(corrupt("its SHA-256 differs from the manifest's".into()));
    }
    let aad = manifest::chunk_aad(&m.tenant_id, &m.backup_id, system, c.index);
    let plain = seal::open(key, &aad, &sealed).map_err(|e| corrupt(e.to_string()))?;
    let recs = frame::decode(&plain).map_err(|e| corrupt(e.to_string()))?;
    if recs.len() as u64 != c.records {
        return Err(corrupt(format!(
            "{} records, the manifest says {}",
            recs.len(),
            c.records
        )));
    }
    Ok(recs)
}

/// What `finish` recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The backup.
    pub backup_id: String,
    /// Hex SHA-256 of the manifest (what the certificate binds).
    pub manifest_sha256: String,
    /// Records with a body.
    pub records: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Regions holding it.
    pub regions: Vec<String>,
    /// The certificate's position on `tenant-backup`.
    pub certificate_seq: u64,
}

/// Writes the manifest (the backup exists from here on), copies the backup to the other
/// regions its tier asks for, and certifies it on `tenant-backup`.
pub async fn finish(
    svc: &dyn Services,
    tenant: &TenantId,
    backup_id: &str,
) -> Result<Finished, StepError> {
    let archive = svc.archive()?;
    let mkey = manifest::manifest_key(tenant, backup_id);
    let m = match get_json::<Manifest>(&**archive, &mkey).await? {
        // Retried after the manifest was written: finish the copies and the certificate.
        Some(m) => m,
        None => {
            let mut m = pending(&**archive, tenant, backup_id).await?;
            for part in &mut m.systems {
                let p: Progress = get_json::<Progress>(
                    &**archive,
                    &progress_key(tenant, backup_id, &part.system),
                )
                .await?
                .filter(|p| p.done)
                .ok_or_else(|| {
                    StepError::VerificationIncomplete(format!(
                        "backup {backup_id}: system {} is not exported yet",
                        part.system
                    ))
                })?;
                *part = p.part;
            }
            archive.put(&mkey, m.to_json()).await?;
            m
        }
    };
    let prefix = manifest::backup_prefix(tenant, backup_id);
    for r in svc.replicas() {
        if m.regions.iter().any(|g| g == r.region()) {
            r.copy_from(&**archive, &prefix).await?;
        }
    }
    let digest = m.digest();
    let draft = Draft {
        kind: BACKUP_CHAIN.into(),
        outcome: "backed-up".into(),
        request_id: backup_id.to_owned(),
        tenant_id: tenant.to_string(),
        details: serde_json::json!({
            "backup_id": backup_id,
            "manifest_sha256": digest,
            "kind": m.kind,
            "base": m.base,
            "tier": m.tier,
            "created_at": m.created_at,
            "expires_at": m.expires_at,
            "regions": m.regions,
            "records": m.records(),
            "bytes": m.bytes(),
            "systems": m.systems.iter().map(|p| serde_json::json!({
                "system": p.system, "records": p.records, "tombstones": p.tombstones,
                "schema_version": p.schema_version, "fingerprint": p.fingerprint,
                "chunks": p.chunks.len(),
            })).collect::<Vec<_>>(),
            "skipped": m.skipped,
        }),
        unique: true,
    };
    let signer = svc.signer().await?;
    let done = certify(&**svc.ledger(), &*signer, &**svc.clock(), &draft).await?;
    tracing::info!(
        backup_id,
        records = m.records(),
        bytes = m.bytes(),
        seq = done.entry.seq,
        "backup certified"
    );
    Ok(Finished {
        backup_id: backup_id.to_owned(),
        manifest_sha256: digest,
        records: m.records(),
        bytes: m.bytes(),
        regions: m.regions.clone(),
        certificate_seq: done.entry.seq,
    })
}
