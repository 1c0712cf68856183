//! The clone pipe: a tenant's records read from each selected system's [`Dataset`] in
//! key-ordered pages, anonymised by the catalog's rules under the clone key, written
//! under the clone's tenant id into another location; then a scan that reads the target
//! back and looks for every original value, a removal if it finds any, and a certificate
//! on `tenant-clone`. Progress lives in the archive beside the tenant's backups (counts,
//! keyed tags and sealed cursors, never a key or value in the clear), so a killed step
//! resumes where it stopped and erasing the tenant erases its clone bookkeeping too.
//!
//! [`Dataset`]: ports::migrate::Dataset

use crate::backup::{live, refuse_if_erased, seal};
use crate::certify::{Draft, certify};
use base64::Engine as _;
use lifecycle::clone::anon::Anonymiser;
use lifecycle::clone::scan::{Findings, Scanner};
use lifecycle::clone::subset::{Closure, Judge};
use lifecycle::clone::transform::{Outcome, Transformer};
use lifecycle::clone::{CLONE_CHAIN, CloneRequest, CloneSpec, Selector};
use lifecycle::{StepError, SystemKind, TenantId};
use ports::backup::Archive;
use ports::migrate::{Export, Rec, ScanExport};
use ports::{Claim, Services};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// What a per-system step of the clone machine is given: the clone and the system; the
/// rest is the previous pass's output, echoed by the loop (the archive's progress is
/// what counts).
#[derive(Debug, Deserialize)]
pub struct SystemCall {
    /// The tenant cloned.
    pub tenant_id: TenantId,
    /// The clone.
    pub clone_id: lifecycle::RequestId,
    /// The system.
    pub system: lifecycle::SystemName,
    #[serde(flatten)]
    _rest: serde_json::Map<String, serde_json::Value>,
}

impl SystemCall {
    /// A pass's output as the loop's next input: the clone named, the sealed cursor left
    /// in the archive.
    pub fn continuation<T: Serialize>(&self, out: &T) -> Result<serde_json::Value, StepError> {
        let mut v = serde_json::to_value(out).map_err(|e| StepError::Internal(e.to_string()))?;
        if let Some(m) = v.as_object_mut() {
            m.remove("cursor");
            m.insert("tenant_id".into(), self.tenant_id.to_string().into());
            m.insert("clone_id".into(), self.clone_id.to_string().into());
        }
        Ok(v)
    }
}

/// Records read per page.
const PAGE: usize = 500;

/// What `begin` fixed for the whole clone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The clone.
    pub clone_id: String,
    /// The request, as validated.
    pub request: CloneRequest,
    /// The clone's tenant id.
    pub target: TenantId,
    /// What each system copies.
    pub selectors: Vec<Selector>,
    /// Where each system's records live now.
    pub sources: BTreeMap<String, String>,
    /// The clone key's keeper reference and wrapped form.
    pub key_ref: String,
    /// The wrapped clone key, base64.
    pub wrapped_b64: String,
    /// Hex SHA-256 of the `[clone]` section the clone ran under.
    pub rules_sha256: String,
    /// When it began.
    pub created_at: String,
    /// The catalog's references when it began (what a subset follows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<lifecycle::clone::subset::Reference>,
}

/// What `begin` returns: the clone and the systems its Map copies and scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begun {
    /// The clone.
    pub clone_id: String,
    /// The tenant cloned.
    pub tenant_id: TenantId,
    /// The clone's tenant id.
    pub target: TenantId,
    /// The systems.
    pub systems: Vec<String>,
    /// True when the request asks for a subset: the machine selects it before copying.
    #[serde(default)]
    pub subset: bool,
}

/// Where the search for a subset stands (sealed in the archive): the closure so far and
/// the place in the round under way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubsetState {
    closure: Closure,
    /// The index of the system the round reads now.
    system: usize,
    /// The last key read there.
    cursor: Option<String>,
}

/// What a pass of the subset's search did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selected {
    /// Rounds over the source so far.
    pub rounds: u32,
    /// Records in the subset so far.
    pub members: u64,
    /// True when the subset is whole.
    pub done: bool,
}

/// One system's copy progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    /// The system.
    pub system: String,
    /// Records read at the source (selected or not).
    pub read: u64,
    /// Records written to the target.
    pub copied: u64,
    /// Records not selected.
    pub skipped: u64,
    /// Records left out by the embeddings rule.
    pub dropped: u64,
    /// Values anonymised.
    pub fields: u64,
    /// Pages done (also the number of tag files).
    pub pages: u64,
    /// The last key read, sealed under the clone key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// True when the system is copied.
    pub done: bool,
}

/// One system's scan progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scanned {
    /// The system.
    pub system: String,
    /// What was found so far.
    pub findings: Findings,
    /// The last target key read, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// True when the system is scanned.
    pub done: bool,
}

/// What `finish` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The clone.
    pub clone_id: String,
    /// `cloned`, or `removed` after the scan found original values.
    pub outcome: String,
    /// Records in the target (0 once removed).
    pub records: u64,
    /// Hits of the scan.
    pub hits: u64,
    /// True while a removal still has records to remove (the machine loops).
    pub removing: bool,
    /// The certificate's position on `tenant-clone` (when certified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_seq: Option<u64>,
}

fn root(tenant: &TenantId, clone_id: &str) -> String {
    format!("tenants/{tenant}/clones/{clone_id}/")
}

fn key_path(tenant: &TenantId, name: &str) -> String {
    format!("tenants/{tenant}/clone-keys/{name}.json")
}

async fn get<T: DeserializeOwned>(a: &dyn Archive, key: &str) -> Result<Option<T>, StepError> {
    match a.get(key).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StepError::Internal(format!("clone state {key} is unreadable: {e}"))),
    }
}

async fn put<T: Serialize>(a: &dyn Archive, key: &str, v: &T) -> Result<(), StepError> {
    let b = serde_json::to_vec(v).map_err(|e| StepError::Internal(e.to_string()))?;
    Ok(a.put(key, b).await?)
}

fn corrupt(clone_id: &str, detail: String) -> StepError {
    StepError::CloneStateCorrupt {
        clone_id: clone_id.to_owned(),
        detail,
    }
}

/// Reads state sealed under the clone key and bound to its path, so a changed byte, or a
/// file moved from another place, is refused instead of steering the clone or its scan.
async fn get_sealed<T: DeserializeOwned>(
    a: &dyn Archive,
    key: &[u8; 32],
    clone_id: &str,
    path: &str,
) -> Result<Option<T>, StepError> {
    let Some(b) = a.get(path).await? else {
        return Ok(None);
    };
    let plain = open_at(key, clone_id, path, &b)?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|e| corrupt(clone_id, format!("{path}: {e}")))
}

async fn put_sealed<T: Serialize>(
    a: &dyn Archive,
    key: &[u8; 32],
    path: &str,
    v: &T,
) -> Result<(), StepError> {
    let b = serde_json::to_vec(v).map_err(|e| StepError::Internal(e.to_string()))?;
    Ok(a.put(path, seal_at(key, path, &b)?).await?)
}

/// `plain` sealed under the clone key for the archive path `path` (its AAD).
fn seal_at(key: &[u8; 32], path: &str, plain: &[u8]) -> Result<Vec<u8>, StepError> {
    seal::seal(key, path.as_bytes(), plain).map_err(|e| StepError::Internal(e.to_string()))
}

/// What [`seal_at`] sealed for `path`; anything else is `CloneStateCorrupt`.
fn open_at(
    key: &[u8; 32],
    clone_id: &str,
    path: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, StepError> {
    seal::open(key, path.as_bytes(), sealed).map_err(|_| {
        corrupt(
            clone_id,
            format!("{path} does not open under the clone key: altered or damaged"),
        )
    })
}

/// The plan as stored: the wrapped clone key in the clear (the tenant's key opens it),
/// the plan itself sealed under the clone key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPlan {
    key_ref: String,
    wrapped_b64: String,
    sealed_b64: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    key_ref: String,
    wrapped_b64: String,
}

/// The named clone key of a tenant, made on first use (a fresh data key wrapped by the
/// tenant's own key-encryption key, so erasing the tenant destroys it too).
async fn clone_key(
    svc: &dyn Services,
    tenant: &TenantId,
    name: &str,
) -> Result<(String, String), StepError> {
    let archive = svc.archive()?;
    let path = key_path(tenant, name);
    if let Some(k) = get::<StoredKey>(&**archive, &path).await? {
        return Ok((k.key_ref, k.wrapped_b64));
    }
    let dk = svc.keys()?.data_key(tenant).await?;
    let mine = StoredKey {
        key_ref: dk.key_ref.clone(),
        wrapped_b64: base64::engine::general_purpose::STANDARD.encode(&dk.wrapped),
    };
    // The first clone under a new name may be begun twice at once: the request log's
    // atomic claim picks one key (it holds the wrapped form, which only the tenant's own
    // key opens), and every process stores and uses that one.
    let text = serde_json::to_string(&mine).map_err(|e| StepError::Internal(e.to_string()))?;
    let claim = format!("clone-key:{tenant}:{name}");
    let stored = match svc
        .requests()
        .claim(&claim, &text, "", &svc.clock().now_rfc3339())
        .await?
    {
        Claim::New | Claim::Same => mine,
        Claim::Other(theirs) => serde_json::from_str::<StoredKey>(&theirs).map_err(|e| {
            StepError::Internal(format!("the claim of clone key {name} is unreadable: {e}"))
        })?,
    };
    put(&**archive, &path, &stored).await?;
    Ok((stored.key_ref, stored.wrapped_b64))
}

async fn unwrap_key(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
    key_ref: &str,
    wrapped_b64: &str,
) -> Result<zeroize::Zeroizing<[u8; 32]>, StepError> {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(wrapped_b64)
        .map_err(|e| corrupt(clone_id, format!("the wrapped clone key: {e}")))?;
    Ok(svc.keys()?.unwrap(tenant, key_ref, &wrapped).await?)
}

/// A begun clone: its plan (checked under the clone key), the anonymiser and the key.
struct Opened {
    plan: Plan,
    anon: Anonymiser,
    key: zeroize::Zeroizing<[u8; 32]>,
}

async fn open(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
) -> Result<Option<Opened>, StepError> {
    let archive = svc.archive()?;
    let path = format!("{}plan.json", root(tenant, clone_id));
    let Some(stored) = get::<StoredPlan>(&**archive, &path)
        .await
        .map_err(|e| corrupt(clone_id, e.to_string()))?
    else {
        return Ok(None);
    };
    let key = unwrap_key(svc, tenant, clone_id, &stored.key_ref, &stored.wrapped_b64).await?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&stored.sealed_b64)
        .map_err(|e| corrupt(clone_id, format!("{path}: {e}")))?;
    let plain = open_at(&key, clone_id, &path, &sealed)?;
    let plan: Plan =
        serde_json::from_slice(&plain).map_err(|e| corrupt(clone_id, format!("{path}: {e}")))?;
    if plan.clone_id != clone_id || &plan.request.tenant_id != tenant {
        return Err(corrupt(clone_id, format!("{path} names another clone")));
    }
    let anon = Anonymiser::new(key.clone(), tenant.as_str());
    Ok(Some(Opened { plan, anon, key }))
}

async fn store_plan(svc: &dyn Services, plan: &Plan) -> Result<(), StepError> {
    let path = format!("{}plan.json", root(&plan.request.tenant_id, &plan.clone_id));
    let key = unwrap_key(
        svc,
        &plan.request.tenant_id,
        &plan.clone_id,
        &plan.key_ref,
        &plan.wrapped_b64,
    )
    .await?;
    let b = serde_json::to_vec(plan).map_err(|e| StepError::Internal(e.to_string()))?;
    let sealed = seal_at(&key, &path, &b)?;
    let stored = StoredPlan {
        key_ref: plan.key_ref.clone(),
        wrapped_b64: plan.wrapped_b64.clone(),
        sealed_b64: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    put(&**svc.archive()?, &path, &stored).await
}

fn rules_digest(spec: &CloneSpec) -> Result<String, StepError> {
    Ok(lifecycle::erasure::json_digest(
        &serde_json::to_value(spec).map_err(|e| StepError::Internal(e.to_string()))?,
    ))
}

/// Validates the request, claims its id, refuses a target that holds the clone's tenant
/// already, makes or finds the clone key and records the plan; writes no record.
pub async fn begin(svc: &dyn Services, req: &CloneRequest) -> Result<Begun, StepError> {
    let tenant = &req.tenant_id;
    refuse_if_erased(svc, tenant).await?;
    let catalog = svc.catalog();
    let spec = catalog.clone_spec();
    let selectors = req.selectors(catalog, &spec)?;
    let target = req.target()?;
    // A clone takes an id no tenant has: records under a real (or erased) tenant's id
    // would join that tenant's counts, exports and erasures.
    if let Err(StepError::TenantErased { .. }) = refuse_if_erased(svc, &target).await {
        return Err(StepError::invalid(format!(
            "tenant {target} was erased; a clone takes an id no tenant has had"
        )));
    }
    for s in &selectors {
        let (location, _) = live(svc, &target, &s.system).await?;
        if location != req.to
            && !svc
                .dataset(&s.system, &location)?
                .scan(&target, None, 1)
                .await?
                .is_empty()
        {
            return Err(StepError::invalid(format!(
                "tenant {target} exists (it has records in {}); a clone takes an id no tenant has",
                s.system
            )));
        }
    }
    let clone_id = req.id()?.to_string();
    let mut sources = BTreeMap::new();
    for s in &selectors {
        let (location, _) = live(svc, tenant, &s.system).await?;
        if location == req.to {
            return Err(StepError::invalid(format!(
                "system {} of tenant {tenant} lives at {}; clone it elsewhere",
                s.system, req.to
            )));
        }
        svc.dataset(&s.system, &location)?;
        svc.dataset(&s.system, &req.to)?;
        sources.insert(s.system.clone(), location);
    }
    let digest = lifecycle::erasure::json_digest(
        &serde_json::to_value(req).map_err(|e| StepError::Internal(e.to_string()))?,
    );
    let claim = svc
        .requests()
        .claim(&clone_id, &digest, "", &svc.clock().now_rfc3339())
        .await?;
    match claim {
        Claim::Other(claimed) => {
            return Err(StepError::RequestConflict {
                request_id: clone_id,
                claimed,
            });
        }
        Claim::Same => {
            if let Some(o) = open(svc, tenant, &clone_id).await? {
                return Ok(begun(&o.plan));
            }
        }
        Claim::New => {}
    }
    // The target tenant at the location belongs to one clone: two clones begun at once
    // under other keys would both find it empty and interleave their records.
    let owner = format!("clone-target:{}:{target}", req.to);
    if let Claim::Other(other) = svc
        .requests()
        .claim(&owner, &clone_id, "", &svc.clock().now_rfc3339())
        .await?
    {
        return Err(StepError::invalid(format!(
            "location {} already receives another clone as tenant {target} (claimed by {other}); choose another --as or --to",
            req.to
        )));
    }
    for s in &selectors {
        let ds = svc.dataset(&s.system, &req.to)?;
        ds.provision(&target).await?;
        if !ds.scan(&target, None, 1).await?.is_empty() {
            return Err(StepError::invalid(format!(
                "location {} of system {} already holds tenant {target}; a clone never writes over data: choose another --as or --to",
                req.to, s.system
            )));
        }
    }
    let (key_ref, wrapped_b64) = clone_key(svc, tenant, req.key.as_str()).await?;
    let plan = Plan {
        clone_id: clone_id.clone(),
        request: req.clone(),
        target,
        selectors,
        sources,
        key_ref,
        wrapped_b64,
        rules_sha256: rules_digest(&spec)?,
        created_at: svc.clock().now_rfc3339(),
        references: if req.subset.is_some() {
            spec.references.clone()
        } else {
            Vec::new()
        },
    };
    store_plan(svc, &plan).await?;
    tracing::info!(clone_id, tenant = %tenant, systems = plan.selectors.len(), "clone begun");
    Ok(begun(&plan))
}

fn begun(p: &Plan) -> Begun {
    Begun {
        clone_id: p.clone_id.clone(),
        tenant_id: p.request.tenant_id.clone(),
        target: p.target.clone(),
        systems: p.selectors.iter().map(|s| s.system.clone()).collect(),
        subset: p.request.subset.is_some(),
    }
}

/// The plan of a begun clone.
pub async fn plan(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
) -> Result<Plan, StepError> {
    Ok(opened(svc, tenant, clone_id).await?.plan)
}

async fn opened(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
) -> Result<Opened, StepError> {
    open(svc, tenant, clone_id).await?.ok_or_else(|| {
        StepError::invalid(format!(
            "clone {clone_id} of tenant {tenant} was never begun"
        ))
    })
}

fn seal_cursor(key: &[u8; 32], aad: &str, cursor: &str) -> Result<String, StepError> {
    let sealed = seal::seal(key, aad.as_bytes(), cursor.as_bytes())
        .map_err(|e| StepError::Internal(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
}

fn open_cursor(key: &[u8; 32], aad: &str, sealed: &str) -> Result<String, StepError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|e| StepError::Internal(format!("clone cursor: {e}")))?;
    let plain = seal::open(key, aad.as_bytes(), &bytes)
        .map_err(|e| StepError::Internal(format!("clone cursor: {e}")))?;
    String::from_utf8(plain).map_err(|e| StepError::Internal(e.to_string()))
}

fn system_kind(svc: &dyn Services, system: &str) -> Result<SystemKind, StepError> {
    svc.catalog()
        .system(system)
        .map(|s| s.kind)
        .ok_or_else(|| StepError::invalid(format!("system {system} is not in the catalog")))
}

/// One source page, transformed: what to write, its tags, and its counts.
struct Batch {
    out: Vec<Rec>,
    /// The page's tags, sorted, deduplicated, as little-endian bytes.
    tags: Vec<u8>,
    listed: usize,
    last: Option<String>,
    read: u64,
    skipped: u64,
    dropped: u64,
    fields: u64,
}

/// Transforms one page of source records, those `picked` (selected, and in the subset
/// when there is one); `limit_base` is how many records the clone holds (or dropped)
/// before this page, for the request's limit.
fn transform_page(
    tr: &Transformer<'_>,
    plan: &Plan,
    system: &str,
    kind: SystemKind,
    recs: Vec<Rec>,
    limit_base: u64,
    picked: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Batch, StepError> {
    let mut b = Batch {
        out: Vec::new(),
        tags: Vec::new(),
        listed: recs.len(),
        last: recs.last().map(|r| r.key.clone()),
        read: 0,
        skipped: 0,
        dropped: 0,
        fields: 0,
    };
    let mut tags = Vec::new();
    for r in &recs {
        b.read += 1;
        let Some(body) = &r.body else { continue };
        if !picked(&r.key) {
            b.skipped += 1;
            continue;
        }
        if plan
            .request
            .limit
            .is_some_and(|l| limit_base + b.dropped + b.out.len() as u64 >= l)
        {
            b.skipped += 1;
            continue;
        }
        match tr.record(system, kind, &r.key, body, &mut tags)? {
            Outcome::Copy { key, body, fields } => {
                b.fields += fields;
                b.out.push(Rec {
                    key,
                    rev: r.rev.max(1),
                    body: Some(body),
                });
            }
            Outcome::Dropped => b.dropped += 1,
        }
    }
    tags.sort_unstable();
    tags.dedup();
    b.tags = tags.iter().flat_map(|t| t.to_le_bytes()).collect();
    Ok(b)
}

/// Copies pages of one system into the target until it is done or `deadline` passes.
pub async fn copy_step(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
    system: &str,
    deadline: Instant,
) -> Result<Copied, StepError> {
    let Opened { plan, anon, key } = opened(svc, tenant, clone_id).await?;
    let sel = plan
        .selectors
        .iter()
        .find(|s| s.system == system)
        .ok_or_else(|| StepError::invalid(format!("clone {clone_id} does not cover {system}")))?;
    let kind = system_kind(svc, system)?;
    let archive = svc.archive()?;
    let base = format!("{}{system}/", root(tenant, clone_id));
    let progress = format!("{base}copy.json");
    let mut p: Copied = get_sealed(&**archive, &key, clone_id, &progress)
        .await?
        .unwrap_or_else(|| Copied {
            system: system.to_owned(),
            ..Copied::default()
        });
    let catalog = svc.catalog();
    let spec = catalog.clone_spec();
    let tr = Transformer {
        spec: &spec,
        anon: &anon,
        source: tenant,
        target: &plan.target,
    };
    let location = plan.sources.get(system).cloned().unwrap_or_default();
    let source = svc.dataset(system, &location)?;
    let target = svc.dataset(system, &plan.request.to)?;
    let aad = format!("{clone_id}/{system}/copy");
    let mut cursor = match &p.cursor {
        Some(c) => Some(open_cursor(&key, &aad, c)?),
        None => None,
    };
    // A page is read and transformed while the page before it is written (target,
    // tags, progress), so the transforms' CPU time overlaps the writes' round trips. A
    // page's counts join the progress only with the write that records it.
    let subset = subset_of(svc, &plan, &anon, &key).await?;
    // A record is copied when the selector takes it and, in a subset, when the subset
    // holds it (or its class takes part in no reference).
    let picked = |k: &str| {
        sel.selects(k)
            && subset.as_ref().is_none_or(|(j, c)| {
                !j.governs(system, k) || c.members.contains(&j.member(system, k))
            })
    };
    // One export per call: PostgreSQL streams the pages from one COPY, which costs the
    // server less than a keyset query per page (the CPU the transforms run beside).
    let mut export: Option<Box<dyn Export + '_>> = None;
    if !p.done {
        export = Some(
            match source.export(tenant, cursor.as_deref(), PAGE).await? {
                Some(e) => e,
                None => Box::new(ScanExport::new(&*source, tenant, cursor.as_deref(), PAGE)),
            },
        );
    }
    let page = |recs: Vec<Rec>, limit_base: u64| {
        transform_page(&tr, &plan, system, kind, recs, limit_base, &picked)
    };
    let mut next = match export.as_mut() {
        Some(e) => Some(page(e.next_page().await?, p.copied + p.dropped)?),
        None => None,
    };
    while let Some(b) = next.take() {
        let mut q = p.clone();
        q.read += b.read;
        q.skipped += b.skipped;
        q.dropped += b.dropped;
        q.fields += b.fields;
        q.copied += b.out.len() as u64;
        let path = format!("{base}tags-{:08}.bin", q.pages);
        q.pages += 1;
        cursor = b.last.clone().or(cursor);
        q.done = b.listed < PAGE;
        q.cursor = match &cursor {
            Some(c) => Some(seal_cursor(&key, &aad, c)?),
            None => None,
        };
        let tags = seal_at(&key, &path, &b.tags)?;
        let read_ahead = !q.done && Instant::now() < deadline;
        // The write runs as a task of its own, so on a multi-threaded runtime the next
        // page's transforms (CPU) run beside it rather than between its round trips.
        let write = {
            let (target, to, out) = (target.clone(), plan.target.clone(), b.out);
            let (archive, key, progress, q) =
                (archive.clone(), key.clone(), progress.clone(), q.clone());
            tokio::spawn(async move {
                target.apply_many(&to, &out).await?;
                archive.put(&path, tags).await?;
                put_sealed(&*archive, &key, &progress, &q).await
            })
        };
        let ahead = match export.as_mut().filter(|_| read_ahead) {
            Some(e) => match e.next_page().await {
                Ok(recs) => page(recs, q.copied + q.dropped).map(Some),
                Err(err) => Err(err.into()),
            },
            None => Ok(None),
        };
        write
            .await
            .map_err(|e| StepError::Internal(format!("a clone page's write: {e}")))??;
        p = q;
        crate::progress::records("clone", system, p.read);
        next = ahead?;
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(p)
}

/// The day a subset's `since_days` counts back from: the clone's own beginning, so every
/// round and every retry judge the same roots.
fn plan_day(plan: &Plan) -> Result<time::Date, StepError> {
    time::OffsetDateTime::parse(
        &plan.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| t.date())
    .map_err(|e| StepError::Internal(format!("clone plan date {}: {e}", plan.created_at)))
}

fn subset_path(plan: &Plan) -> String {
    format!(
        "{}subset.json",
        root(&plan.request.tenant_id, &plan.clone_id)
    )
}

/// The whole subset of a clone that asks for one (its judge and closure); `None` for a
/// clone of everything selected.
async fn subset_of<'a>(
    svc: &dyn Services,
    plan: &'a Plan,
    anon: &'a Anonymiser,
    key: &[u8; 32],
) -> Result<Option<(Judge<'a>, Closure)>, StepError> {
    let Some(sub) = &plan.request.subset else {
        return Ok(None);
    };
    let st: SubsetState = get_sealed(&**svc.archive()?, key, &plan.clone_id, &subset_path(plan))
        .await?
        .filter(|s: &SubsetState| s.closure.done)
        .ok_or_else(|| {
            StepError::VerificationIncomplete(format!(
                "clone {}: its subset is not selected yet (select-subset runs before the copy)",
                plan.clone_id
            ))
        })?;
    // The references are the plan's, so a catalog changed mid-clone cannot move them.
    let judge = Judge::new(sub, &plan.references, anon, plan_day(plan)?)?;
    Ok(Some((judge, st.closure)))
}

/// Searches the subset of a clone (rounds over the source until one adds nothing) until
/// it is whole or `deadline` passes; a clone without a subset is whole at once.
pub async fn subset_step(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
    deadline: Instant,
) -> Result<Selected, StepError> {
    let Opened { plan, anon, key } = opened(svc, tenant, clone_id).await?;
    let Some(sub) = &plan.request.subset else {
        return Ok(Selected {
            done: true,
            ..Selected::default()
        });
    };
    let archive = svc.archive()?;
    let path = subset_path(&plan);
    let mut st: SubsetState = get_sealed(&**archive, &key, clone_id, &path)
        .await?
        .unwrap_or_default();
    let judge = Judge::new(sub, &plan.references, &anon, plan_day(&plan)?)?;
    // Only what the clone copies takes part: a record it would not copy cannot hold a
    // reference of the clone, nor be the record one points at.
    let systems: Vec<&Selector> = judge
        .systems()
        .iter()
        .filter_map(|s| plan.selectors.iter().find(|x| &x.system == s))
        .collect();
    let mut saved = Instant::now();
    while !st.closure.done {
        let Some(sel) = systems.get(st.system) else {
            judge.end_round(&mut st.closure)?;
            (st.system, st.cursor) = (0, None);
            put_sealed(&**archive, &key, &path, &st).await?;
            saved = Instant::now();
            continue;
        };
        let location = plan.sources.get(&sel.system).cloned().unwrap_or_default();
        let source = svc.dataset(&sel.system, &location)?;
        let recs = source.scan(tenant, st.cursor.as_deref(), PAGE).await?;
        for r in &recs {
            if let Some(b) = &r.body
                && sel.selects(&r.key)
            {
                judge.visit(&mut st.closure, &sel.system, &r.key, b);
            }
        }
        if recs.len() < PAGE {
            (st.system, st.cursor) = (st.system + 1, None);
        } else {
            st.cursor = recs.last().map(|r| r.key.clone());
        }
        crate::progress::records("subset", &sel.system, st.closure.members.len() as u64);
        // The closure is saved every few seconds, not every page: a killed pass repeats
        // at most those seconds, and visiting a record twice changes nothing.
        if Instant::now() >= deadline || saved.elapsed().as_secs() >= 2 {
            put_sealed(&**archive, &key, &path, &st).await?;
            saved = Instant::now();
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    Ok(Selected {
        rounds: st.closure.rounds,
        members: st.closure.members.len() as u64,
        done: st.closure.done,
    })
}

async fn originals(
    svc: &dyn Services,
    plan: &Plan,
    key: &[u8; 32],
) -> Result<HashSet<u64>, StepError> {
    let archive = svc.archive()?;
    let mut out = HashSet::new();
    for k in archive
        .list(&root(&plan.request.tenant_id, &plan.clone_id))
        .await?
    {
        if !k.ends_with(".bin") {
            continue;
        }
        let sealed = archive.get(&k).await?.unwrap_or_default();
        let b = open_at(key, &plan.clone_id, &k, &sealed)?;
        out.extend(
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
        );
    }
    Ok(out)
}

/// Scans one system of the target until done or `deadline`: it reads what was written.
pub async fn scan_step(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
    system: &str,
    deadline: Instant,
) -> Result<Scanned, StepError> {
    let Opened { plan, anon, key } = opened(svc, tenant, clone_id).await?;
    let archive = svc.archive()?;
    let path = format!("{}{system}/scan.json", root(tenant, clone_id));
    let mut p: Scanned = get_sealed(&**archive, &key, clone_id, &path)
        .await?
        .unwrap_or_else(|| Scanned {
            system: system.to_owned(),
            ..Scanned::default()
        });
    let catalog = svc.catalog();
    let spec = catalog.clone_spec();
    let tags = originals(svc, &plan, &key).await?;
    let scanner = Scanner {
        spec: &spec,
        anon: &anon,
        originals: &tags,
    };
    let target = svc.dataset(system, &plan.request.to)?;
    let aad = format!("{clone_id}/{system}/scan");
    let mut cursor = match &p.cursor {
        Some(c) => Some(open_cursor(&key, &aad, c)?),
        None => None,
    };
    let (from, to) = (plan.target.as_str(), tenant.as_str());
    while !p.done {
        let recs = target.scan(&plan.target, cursor.as_deref(), PAGE).await?;
        for r in &recs {
            if let Some(b) = &r.body {
                let hint = r.key.replace(from, to);
                p.findings.add(&scanner.record(system, &hint, &r.key, b));
            }
        }
        cursor = recs.last().map(|r| r.key.clone());
        p.done = recs.len() < PAGE;
        p.cursor = match &cursor {
            Some(c) => Some(seal_cursor(&key, &aad, c)?),
            None => None,
        };
        put_sealed(&**archive, &key, &path, &p).await?;
        crate::progress::records("scan", system, p.findings.scanned);
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(p)
}

/// Certifies a clean clone; after a scan with hits, removes the clone (tombstones over
/// every record it wrote, looping on `removing` until the deadline allows), certifies
/// the removal and fails with `PersonalDataFound`.
pub async fn finish(
    svc: &dyn Services,
    tenant: &TenantId,
    clone_id: &str,
    deadline: Instant,
) -> Result<Finished, StepError> {
    let Opened { plan, key, .. } = opened(svc, tenant, clone_id).await?;
    let archive = svc.archive()?;
    let mut systems = Vec::new();
    let mut total = Findings::default();
    let mut records = 0;
    for s in &plan.selectors {
        let base = format!("{}{}/", root(tenant, clone_id), s.system);
        let c: Copied =
            get_sealed::<Copied>(&**archive, &key, clone_id, &format!("{base}copy.json"))
                .await?
                .filter(|c| c.done)
                .ok_or_else(|| {
                    StepError::VerificationIncomplete(format!(
                        "clone {clone_id}: {} is not copied yet",
                        s.system
                    ))
                })?;
        let sc: Scanned =
            get_sealed::<Scanned>(&**archive, &key, clone_id, &format!("{base}scan.json"))
                .await?
                .filter(|c| c.done)
                .ok_or_else(|| {
                    StepError::VerificationIncomplete(format!(
                        "clone {clone_id}: {} is not scanned yet",
                        s.system
                    ))
                })?;
        total.add(&sc.findings);
        records += c.copied;
        systems.push((c, sc));
    }
    let hits = total.hits();
    if hits > 0 {
        for s in &plan.selectors {
            let target = svc.dataset(&s.system, &plan.request.to)?;
            let mut after: Option<String> = None;
            loop {
                let page: Vec<Rec> = target.scan(&plan.target, after.as_deref(), PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                let full = page.len() == PAGE;
                let dead: Vec<Rec> = page
                    .into_iter()
                    .filter(|r| r.body.is_some())
                    .map(|r| Rec {
                        key: r.key,
                        rev: r.rev + 1,
                        body: None,
                    })
                    .collect();
                target.apply_many(&plan.target, &dead).await?;
                if !full {
                    break;
                }
                if Instant::now() >= deadline {
                    // Removal is idempotent: the next call starts over and finds only
                    // tombstones where it has been.
                    return Ok(Finished {
                        clone_id: clone_id.to_owned(),
                        outcome: "removing".into(),
                        records: 0,
                        hits,
                        removing: true,
                        certificate_seq: None,
                    });
                }
            }
        }
    }
    let outcome = if hits > 0 { "removed" } else { "cloned" };
    let mut details = serde_json::json!({
        "clone_id": clone_id,
        "target_tenant": plan.target,
        "to": plan.request.to,
        "key": plan.request.key,
        "rules_sha256": plan.rules_sha256,
        "strict": svc.catalog().clone_spec().strict,
        "vector_approval": plan.request.vector_approval,
        // The ledger cannot be erased: the roots' key prefix (which could name someone)
        // goes on it as a digest, beside the system.
        "subset": plan.request.subset.as_ref().map(|s| {
            let (system, prefix) = lifecycle::clone::subset::Class::parse(&s.from)
                .map_or_else(|_| (String::new(), s.from.clone()), |c| (c.system, c.prefix));
            serde_json::json!({
                "system": system,
                "prefix_sha256": lifecycle::erasure::json_digest(&serde_json::json!(prefix)),
                "first": s.first, "since_days": s.since_days, "date_field": s.date_field,
                "dependants": s.dependants,
            })
        }),
        "scan": {"scanned": total.scanned, "originals": total.originals, "emails": total.emails, "phones": total.phones},
        "systems": systems.iter().map(|(c, s)| serde_json::json!({
            "system": c.system, "read": c.read, "copied": c.copied, "skipped": c.skipped,
            "dropped": c.dropped, "fields_anonymised": c.fields, "scanned": s.findings.scanned,
            "hits": s.findings.hits(),
        })).collect::<Vec<_>>(),
        "created_at": plan.created_at,
    });
    if let Some(m) = details.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    let draft = Draft {
        kind: CLONE_CHAIN.into(),
        outcome: outcome.into(),
        request_id: clone_id.to_owned(),
        tenant_id: tenant.to_string(),
        details,
        unique: true,
    };
    let signer = svc.signer().await?;
    let done = certify(&**svc.ledger(), &*signer, &**svc.clock(), &draft).await?;
    if hits > 0 {
        return Err(StepError::PersonalDataFound {
            clone_id: clone_id.to_owned(),
            hits,
        });
    }
    Ok(Finished {
        clone_id: clone_id.to_owned(),
        outcome: outcome.into(),
        records,
        hits,
        removing: false,
        certificate_seq: Some(done.entry.seq),
    })
}
