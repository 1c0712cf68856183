//! Running migrations locally: the state machine in the simulator, optionally with a
//! workload of mixed reads, writes and deletes going through tenant-router the whole
//! time, which remembers every acknowledged write so nothing lost can go unnoticed.

use lifecycle::TenantId;
use ports::migrate::Locator;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stores::Deps;
use tenant_router::{Router, RouterOptions};

/// The last acknowledged body per (system, key); `None` after a delete.
pub type Acked = BTreeMap<(String, String), Option<Vec<u8>>>;

/// What a workload saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Operations that succeeded.
    pub ok: AtomicU64,
    /// Operations that failed (surfaced to the caller).
    pub failed: AtomicU64,
    /// Reads that returned something other than the last acknowledged value.
    pub stale: AtomicU64,
    /// The last acknowledged value per (system, key); `None` after a delete.
    pub acked: Mutex<Acked>,
}

/// Runs `workers` tasks of mixed reads, writes and deletes through `router` until `stop`.
/// Each worker owns its keys, so "last acknowledged" is well defined per key.
pub fn workload(
    router: Router,
    systems: Vec<String>,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Tally>, Vec<tokio::task::JoinHandle<()>>) {
    let tally = Arc::new(Tally::default());
    let handles = (0..workers)
        .map(|w| {
            let (router, systems, stop, tally) =
                (router.clone(), systems.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let mut i: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let sys = &systems[(i as usize) % systems.len()];
                    // Half the keys overlap the seeded ones, half are new.
                    let key = format!("rec/{:05}", (w as u64 * 7919 + i * 13) % 400);
                    let key = if (w + i as usize).is_multiple_of(2) {
                        key
                    } else {
                        format!("w{w}/{}", i % 150)
                    };
                    let own = key.starts_with(&format!("w{w}/"))
                        || (key.starts_with("rec/") && key_owner(&key, workers) == w);
                    let op = i % 10;
                    let r = if !own || op < 5 {
                        match router.get(sys, &key).await {
                            Ok(got) => {
                                if own {
                                    let want = tally
                                        .acked
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .get(&(sys.clone(), key.clone()))
                                        .cloned();
                                    if let Some(want) = want
                                        && want != got
                                    {
                                        tally.stale.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    } else if op == 9 {
                        let r = router.delete(sys, &key).await;
                        if r.is_ok() {
                            tally
                                .acked
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert((sys.clone(), key.clone()), None);
                        }
                        r
                    } else {
                        let body = json!({"system": sys, "w": w, "i": i})
                            .to_string()
                            .into_bytes();
                        let r = router.put(sys, &key, &body).await;
                        if r.is_ok() {
                            tally
                                .acked
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert((sys.clone(), key.clone()), Some(body));
                        }
                        r
                    };
                    match r {
                        Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => tally.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    // The embedded world answers without a real await point; yield as a
                    // network round trip would, so the router's refresh task gets to run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    (tally, handles)
}

fn key_owner(key: &str, workers: usize) -> usize {
    key.trim_start_matches("rec/").parse::<usize>().unwrap_or(0) % workers
}

/// Starts a router for `tenant` on `deps`, refreshing every 20 ms.
pub async fn router(deps: &Arc<Deps>, tenant: &str) -> anyhow::Result<Router> {
    Ok(Router::start(
        TenantId::parse(tenant)?,
        deps.routing()?.clone(),
        deps.clone(),
        RouterOptions {
            refresh: Duration::from_millis(20),
            ..RouterOptions::default()
        },
    )
    .await?)
}

/// How many acknowledged writes `location` does not hold now. A write acknowledged while
/// the migration ran is held in the target's schema (`transform` applied); one made after
/// the tenant settled there is held as written: either form counts as held.
pub async fn lost_writes(
    deps: &Deps,
    tenant: &str,
    location: &str,
    tally: &Tally,
    transform: lifecycle::migration::Transform,
) -> anyhow::Result<u64> {
    let t = TenantId::parse(tenant)?;
    let acked = tally
        .acked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut lost = 0;
    for ((sys, key), want) in acked {
        let have = deps
            .dataset(&sys, location)?
            .read(&t, &key)
            .await?
            .and_then(|r| r.body);
        let transform = transform.for_kind(ports::migrate::Locator::kind(deps, &sys)?);
        let held = match (&want, &have) {
            (None, None) => true,
            // A body the transform refuses was not written through it: compared as is.
            (Some(w), Some(h)) => h == w || transform.forward(w).is_ok_and(|f| f == *h),
            _ => false,
        };
        if !held {
            lost += 1;
        }
    }
    Ok(lost)
}

/// How to run a migration locally.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Fraction of real time Waits take (0: purely virtual).
    pub wait_scale: f64,
    /// Workload tasks going through tenant-router during the run (0: none).
    pub workers: usize,
    /// Print transitions as they happen.
    pub live: bool,
}

/// What a local migration run did.
#[derive(Debug)]
pub struct Report {
    /// The execution.
    pub exec: sim::Execution,
    /// Workload operations acknowledged.
    pub ops: u64,
    /// Workload operations that failed.
    pub failed: u64,
    /// Reads that missed an acknowledged write.
    pub stale: u64,
    /// Acknowledged writes not found where the tenant lives at the end.
    pub lost: u64,
    /// Writes held by a fence, and for how long each (microseconds).
    pub pauses_us: Vec<u64>,
    /// Where the tenant lives at the end.
    pub location: String,
}

/// Runs the migration state machine on the local handlers, with a workload if asked.
pub async fn run_local(
    deps: Arc<Deps>,
    request: serde_json::Value,
    opts: RunOptions,
) -> anyhow::Result<Report> {
    let req = lifecycle::migration::MigrationRequest::parse(&request, &deps.catalog)?;
    let tenant = req.tenant_id.to_string();
    let systems: Vec<String> = req.systems.iter().map(ToString::to_string).collect();
    let machine = crate::world::load_machine(
        crate::TENANT_MIGRATION_ASL,
        "statemachines/tenant-migration.asl.json",
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = if opts.workers > 0 {
        let r = router(&deps, &tenant).await?;
        let (tally, handles) = workload(r.clone(), systems, opts.workers, stop.clone());
        Some((r, tally, handles))
    } else {
        None
    };
    let mut sim = sim::Simulator::new(Arc::new(crate::registry::LocalFunctions::new(deps.clone())))
        .with_wait_scale(opts.wait_scale);
    if opts.live {
        sim = sim.with_observer(Arc::new(crate::world::PrintTransitions));
    }
    let name = format!("migrate-{tenant}");
    let exec = sim.run(&machine, &name, request).await;
    let tid = TenantId::parse(&tenant)?;
    let routing = deps.routing()?.get(&tid).await?;
    let location = routing.map_or(lifecycle::migration::HOME.to_owned(), |r| r.source);
    let transform = if location == req.to {
        req.transform
    } else {
        lifecycle::migration::Transform::None
    };
    let mut report = Report {
        exec,
        ops: 0,
        failed: 0,
        stale: 0,
        lost: 0,
        pauses_us: Vec::new(),
        location: location.clone(),
    };
    if let Some((r, tally, handles)) = load {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.await?;
        }
        r.shutdown().await?;
        report.ops = tally.ok.load(Ordering::SeqCst);
        report.failed = tally.failed.load(Ordering::SeqCst);
        report.stale = tally.stale.load(Ordering::SeqCst);
        report.lost = lost_writes(&deps, &tenant, &location, &tally, transform).await?;
        report.pauses_us = r.stats().pauses_us;
    }
    Ok(report)
}
