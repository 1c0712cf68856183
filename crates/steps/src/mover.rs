//! Moving a tenant's records between two locations through the migration ports: bulk copy
//! by key pages, catch-up from the change feed, comparison with repair, and waiting for
//! every live router to acknowledge a routing epoch. The steps in functions/ call these;
//! the rules of when they may run live in `lifecycle::migration`.

use lifecycle::migration::{Checkpoint, Fingerprint, MigrationRecord, Transform, VerifyMode};
use lifecycle::{StepError, TenantId};
use ports::Clock;
use ports::migrate::{ChangeFeed, Dataset, Migrations, Rec, RoutingStore};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which way records flow between a migration's locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Source to target (bulk copy, catch-up, repair).
    Forward,
    /// Target back to source (after the flip, before a rollback).
    Backward,
}

/// The two datasets of one system, oriented for copying `from` into `to`.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The system.
    pub system: String,
    /// Where records are read.
    pub from: Arc<dyn Dataset>,
    /// Where they are written.
    pub to: Arc<dyn Dataset>,
    /// The change feed of `from`.
    pub feed: Arc<dyn ChangeFeed>,
    /// The migration's transform.
    pub transform: Transform,
    /// The flow's direction.
    pub direction: Direction,
}

impl Pair {
    /// Converts a body read at `from` into what `to` stores.
    pub fn convert(&self, body: &[u8]) -> Result<Vec<u8>, StepError> {
        let r = match self.direction {
            Direction::Forward => self.transform.forward(body),
            Direction::Backward => self.transform.backward(body),
        };
        r.map_err(|e| {
            StepError::invalid(format!(
                "a record of {} cannot be transformed ({:?}): {e}",
                self.system, self.transform
            ))
        })
    }

    fn convert_rec(&self, r: &Rec) -> Result<Rec, StepError> {
        Ok(Rec {
            key: r.key.clone(),
            rev: r.rev,
            body: r.body.as_deref().map(|b| self.convert(b)).transpose()?,
        })
    }
}

/// Copies one page of the bulk copy after `cp.cursor`; true when the last key was passed.
/// Records the target already holds at the same or a newer revision (a killed run copied
/// them) are skipped, never overwritten. The bulk copy runs before dual-write, so it is
/// the target's only writer and may use the backend's exclusive batch path.
pub async fn copy_page(
    pair: &Pair,
    tenant: &TenantId,
    cp: &mut Checkpoint,
    page: usize,
) -> Result<bool, StepError> {
    if pair.transform == Transform::None
        && let Some(done) = pair
            .to
            .copy_page_from(tenant, pair.from.as_ref(), cp.cursor.as_deref(), page)
            .await?
    {
        cp.copied += done.copied;
        cp.skipped += done.listed as u64 - done.copied;
        if let Some(last) = done.last {
            cp.cursor = Some(last);
        }
        cp.bulk_done = done.listed < page;
        return Ok(cp.bulk_done);
    }
    let recs = pair.from.scan(tenant, cp.cursor.as_deref(), page).await?;
    let Some(last) = recs.last().map(|r| r.key.clone()) else {
        cp.bulk_done = true;
        return Ok(true);
    };
    let converted = recs
        .iter()
        .map(|r| pair.convert_rec(r))
        .collect::<Result<Vec<_>, _>>()?;
    let applied = pair.to.apply_many_exclusive(tenant, &converted).await?;
    cp.copied += applied;
    cp.skipped += converted.len() as u64 - applied;
    cp.cursor = Some(last);
    if recs.len() < page {
        cp.bulk_done = true;
    }
    Ok(cp.bulk_done)
}

/// What one catch-up call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaughtUp {
    /// Feed position applied up to.
    pub position: u64,
    /// Records written to the target.
    pub applied: u64,
    /// Changes still to apply when the call ended.
    pub lag: u64,
    /// Feed entries applied (a key written twice is one record, two entries).
    pub entries: u64,
    /// Feed entries that arrived while the call ran.
    pub arrived: u64,
    /// True when the call reached the head it found at its start.
    pub drained: bool,
}

/// Applies changes from the feed after `from_seq` until the feed is drained or `deadline`
/// passes. Each changed key is re-read at the source, so a burst of writes to one key
/// costs one copy, and the copy is conditional on the revision.
pub async fn catch_up(
    pair: &Pair,
    tenant: &TenantId,
    from_seq: u64,
    deadline: Instant,
    page: usize,
) -> Result<CaughtUp, StepError> {
    // Everything acknowledged before this call must be on the feed before it is read.
    pair.feed.settle(tenant).await?;
    // One call catches up to the head it found, not to a head that a busy workload keeps
    // moving; what arrived since is reported as lag and taken by the next call.
    let goal = pair.feed.head(tenant).await?;
    let mut out = CaughtUp {
        position: from_seq,
        ..CaughtUp::default()
    };
    while out.position < goal {
        let changes = pair.feed.read(tenant, out.position, page).await?;
        let Some(last) = changes.last().map(|c| c.seq) else {
            break;
        };
        let keys: BTreeSet<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        let mut recs = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(r) = pair.from.read(tenant, k).await? {
                recs.push(pair.convert_rec(&r)?);
            }
        }
        out.applied += pair.to.apply_many(tenant, &recs).await?;
        out.position = last;
        if Instant::now() >= deadline {
            break;
        }
    }
    let head = pair.feed.head(tenant).await?;
    out.lag = head.saturating_sub(out.position);
    out.entries = out.position.saturating_sub(from_seq);
    out.arrived = head.saturating_sub(goal);
    out.drained = out.position >= goal;
    Ok(out)
}

/// What a comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Comparison {
    /// Fingerprint of the live source records, as the target should hold them.
    pub source: Fingerprint,
    /// Fingerprint of the live target records.
    pub target: Fingerprint,
    /// Keys that still differed after being re-read.
    pub differing: u64,
    /// Keys repaired (FULL only).
    pub repaired: u64,
}

impl Comparison {
    /// Whether `mode` considers the two sides equal.
    pub fn passes(&self, mode: VerifyMode) -> bool {
        match mode {
            VerifyMode::Count => self.source.count == self.target.count,
            VerifyMode::Hash | VerifyMode::Full => {
                self.source == self.target && self.differing == 0
            }
        }
    }
}

struct Cursor<'a> {
    ds: &'a dyn Dataset,
    buf: VecDeque<Rec>,
    after: Option<String>,
    done: bool,
    page: usize,
}

impl<'a> Cursor<'a> {
    fn new(ds: &'a dyn Dataset, page: usize) -> Self {
        Self {
            ds,
            buf: VecDeque::new(),
            after: None,
            done: false,
            page,
        }
    }

    async fn peek(&mut self, tenant: &TenantId) -> Result<Option<&Rec>, StepError> {
        if self.buf.is_empty() && !self.done {
            let recs = self
                .ds
                .scan(tenant, self.after.as_deref(), self.page)
                .await?;
            self.done = recs.len() < self.page;
            self.after = recs.last().map(|r| r.key.clone());
            self.buf.extend(recs);
        }
        Ok(self.buf.front())
    }

    fn pop(&mut self) -> Option<Rec> {
        self.buf.pop_front()
    }
}

/// How many times a differing key is re-read before it counts as differing: a dual-write
/// in flight between the two reads usually resolves itself within milliseconds, but a
/// writer descheduled between its source and target writes on a loaded host can take
/// longer, so the waits grow (5, 20, 80, 320 ms: under half a second per suspect key).
const RECHECKS: u32 = 5;

/// Compares the two sides key by key (a merge of two ordered scans). Keys that differ are
/// re-read; those that still differ count, and with `repair` are rewritten from the source
/// (the source is the truth), and only those.
pub async fn compare(
    pair: &Pair,
    tenant: &TenantId,
    repair: bool,
    page: usize,
) -> Result<Comparison, StepError> {
    let mut out = Comparison::default();
    let mut suspects = Vec::new();
    let mut a = Cursor::new(&*pair.from, page);
    let mut b = Cursor::new(&*pair.to, page);
    loop {
        let ka = a.peek(tenant).await?.map(|r| r.key.clone());
        let kb = b.peek(tenant).await?.map(|r| r.key.clone());
        let (ra, rb) = match (&ka, &kb) {
            (None, None) => break,
            (Some(x), Some(y)) if x == y => (a.pop(), b.pop()),
            (Some(x), Some(y)) if x < y => (a.pop(), None),
            (Some(_), None) => (a.pop(), None),
            _ => (None, b.pop()),
        };
        let key = ra
            .as_ref()
            .or(rb.as_ref())
            .map(|r| r.key.clone())
            .unwrap_or_default();
        let want = match &ra {
            Some(r) => r.body.as_deref().map(|x| pair.convert(x)).transpose()?,
            None => None,
        };
        let have = rb.and_then(|r| r.body);
        if want == have {
            fold(&mut out, &key, want.as_deref(), have.as_deref());
        } else {
            suspects.push(key);
        }
    }
    for key in suspects {
        let mut agreed = false;
        for attempt in 0..RECHECKS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(5 << (2 * (attempt - 1)))).await;
            }
            let (want, have) = read_pair(pair, tenant, &key).await?;
            let (w, h) = (want.and_then(|r| r.body), have.and_then(|r| r.body));
            if w == h {
                fold(&mut out, &key, w.as_deref(), h.as_deref());
                agreed = true;
                break;
            }
        }
        if agreed {
            continue;
        }
        if repair {
            let (src, dst) = read_pair(pair, tenant, &key).await?;
            let fix = match src {
                Some(r) => r,
                // The source has no such record: the target's copy goes.
                None => Rec {
                    key: key.clone(),
                    rev: dst.as_ref().map_or(0, |d| d.rev),
                    body: None,
                },
            };
            pair.to.apply(tenant, &fix, true).await?;
            out.repaired += 1;
            let body = fix.body;
            fold(&mut out, &key, body.as_deref(), body.as_deref());
        } else {
            out.differing += 1;
            let (want, have) = read_pair(pair, tenant, &key).await?;
            fold(
                &mut out,
                &key,
                want.and_then(|r| r.body).as_deref(),
                have.and_then(|r| r.body).as_deref(),
            );
        }
    }
    Ok(out)
}

/// The source record converted for the target, and the target record.
async fn read_pair(
    pair: &Pair,
    tenant: &TenantId,
    key: &str,
) -> Result<(Option<Rec>, Option<Rec>), StepError> {
    let src = pair.from.read(tenant, key).await?;
    let src = src.map(|r| pair.convert_rec(&r)).transpose()?;
    let dst = pair.to.read(tenant, key).await?;
    Ok((src, dst))
}

fn fold(out: &mut Comparison, key: &str, want: Option<&[u8]>, have: Option<&[u8]>) {
    if let Some(w) = want {
        out.source.add(key, w);
    }
    if let Some(h) = have {
        out.target.add(key, h);
    }
}

pub use ports::migrate::{ROUTER_LIVENESS, unix_ms};

/// Waits until every live router has acknowledged `epoch` (so no write of an older epoch
/// is in flight anywhere). Returns how many routers acknowledged; `MigrationConflict`
/// if some did not within `timeout`.
pub async fn wait_for_acks(
    routing: &dyn RoutingStore,
    tenant: &TenantId,
    epoch: u64,
    timeout: Duration,
) -> Result<usize, StepError> {
    let start = Instant::now();
    loop {
        let now = unix_ms();
        let acks = routing.acks(tenant).await?;
        let live: Vec<_> = acks
            .iter()
            .filter(|a| {
                now.saturating_sub(a.at_ms) <= ROUTER_LIVENESS.as_millis() as u64
                    || a.epoch >= epoch
            })
            .collect();
        let behind = live.iter().filter(|a| a.epoch < epoch).count();
        if behind == 0 {
            return Ok(live.len());
        }
        if start.elapsed() >= timeout {
            return Err(StepError::MigrationConflict(format!(
                "{behind} router(s) did not acknowledge routing epoch {epoch} within {} ms",
                timeout.as_millis()
            )));
        }
        // Routers usually acknowledge within a millisecond: poll tightly at first (a timer
        // sleep rounds up to a whole millisecond), then back off.
        if start.elapsed() < Duration::from_millis(5) {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Writes the migration record back, conditional on the version it was read at.
pub async fn save(
    table: &dyn Migrations,
    rec: &mut MigrationRecord,
    clock: &dyn Clock,
) -> Result<(), StepError> {
    let expected = rec.version;
    rec.version += 1;
    rec.updated_at = clock.now_rfc3339();
    let r = table
        .put(rec, Some(expected))
        .await
        .map_err(StepError::from);
    if r.is_err() {
        rec.version = expected;
    }
    r
}
