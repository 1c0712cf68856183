//! Redis: a tenant's keys share one prefix (`tenant:{tenant_id}:`) in a logical database.
//! Erasure is SCAN + UNLINK batches in flight together and proves itself by a fresh SCAN
//! that finds nothing. Migration keeps, beside the tenant's keys and atomically with each
//! write (one Lua script), a revision per key, a sorted index of the keys for ordered
//! scans, and a Redis Stream as the change feed. A location is another logical database
//! or server. Every type moves with its expiry (see [`dataset`] for the encoding).

mod config;
pub(crate) use config::check_overlaps;
mod dataset;
pub(crate) mod discover;
mod tenant_store;

pub use config::Config;
pub use dataset::RedisDataset;
pub use tenant_store::RedisTenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER};
use lifecycle::{StepError, TenantId};
use ports::{StoreError, TenantStore};
use redis::aio::ConnectionManager;
use std::sync::Arc;

/// Where a tenant's keys and the migration bookkeeping beside them are named.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: String,
    hash_tag: bool,
}

/// The bookkeeping keys kept per tenant, outside the tenant's own prefix so they never
/// show up as the tenant's data, but in its hash slot.
pub(crate) const META: [&str; 4] = ["rev", "keys", "feed", "seq"];

impl Layout {
    /// The layout of a catalog entry.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            prefix: config.prefix.clone(),
            hash_tag: config.hash_tag,
        }
    }

    /// The tenant's prefix, e.g. `tenant:t1:` (`tenant:{t1}:` with hash tags).
    pub(crate) fn prefix(&self, t: &TenantId) -> String {
        if self.hash_tag {
            self.prefix
                .replace(TENANT_PLACEHOLDER, &format!("{{{}}}", t.as_str()))
        } else {
            lifecycle::catalog::locate(&self.prefix, t)
        }
    }

    /// The full name of the tenant's key `key`.
    pub(crate) fn data(&self, t: &TenantId, key: &str) -> String {
        format!("{}{key}", self.prefix(t))
    }

    /// A bookkeeping key of the tenant (`rev`, `keys`, `feed`, `seq`).
    pub(crate) fn meta(&self, t: &TenantId, what: &str) -> String {
        format!("~tenant-lifecycle:{}{what}", self.prefix(t))
    }

    /// The SCAN pattern of every key of the tenant: the prefix, glob characters escaped.
    pub(crate) fn pattern(&self, t: &TenantId) -> String {
        let mut p = String::new();
        for c in self.prefix(t).chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('*');
        p
    }
}

/// The URL without its user and password, for messages and findings.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The server part of a URL (`redis://h:p/3` is `redis://h:p`).
pub(crate) fn server_of(url: &str) -> String {
    let url = redact(url);
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url.as_str()));
    format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
}

/// Turns a client error into a [`StoreError`]: lost connections and a loading or busy
/// server are retried, the rest are not.
pub(crate) fn redis_err(op: &str, e: redis::RedisError) -> StoreError {
    use redis::ErrorKind;
    let msg = format!("redis {op}: {e}");
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return StoreError::Unavailable(msg);
    }
    match e.kind() {
        // A replica after a failover, a master away, a busy script: passing states.
        ErrorKind::BusyLoadingError
        | ErrorKind::TryAgain
        | ErrorKind::ClusterDown
        | ErrorKind::ReadOnly
        | ErrorKind::MasterDown => StoreError::Throttled(msg),
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => StoreError::Config(msg),
        _ if e
            .code()
            .is_some_and(|c| matches!(c, "BUSY" | "OOM" | "LOADING")) =>
        {
            StoreError::Throttled(msg)
        }
        // What the server refused (NOPERM, WRONGTYPE, a script error) is the catalog's or
        // the data's problem, not the ledger's, and retrying will not change it.
        _ => StoreError::Config(msg),
    }
}

/// Runs one command, retried with backoff after a lost connection or on a busy server.
pub(crate) async fn query<T: redis::FromRedisValue>(
    conn: &ConnectionManager,
    op: &str,
    cmd: &redis::Cmd,
) -> Result<T, StoreError> {
    ports::retry::with_backoff(|| {
        let mut c = conn.clone();
        async move { cmd.query_async(&mut c).await.map_err(|e| redis_err(op, e)) }
    })
    .await
}

/// A connection that reconnects by itself after a loss (the failed call is retried by
/// the caller's backoff).
pub(crate) async fn connect(url: &str) -> Result<ConnectionManager, StepError> {
    let client = redis::Client::open(url)
        .map_err(|e| StepError::Configuration(format!("redis url {:?}: {e}", redact(url))))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(6)
        .set_max_delay(2_000);
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| StepError::from(redis_err("connect", e)))
}

/// Opens a catalog entry of `backend = "redis"`.
pub async fn open(spec: &SystemSpec, _ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let layout = Layout::new(&config);
    let home = connect(&config.url).await?;
    let mut locations = std::collections::BTreeMap::new();
    for (loc, url) in &config.locations {
        locations.insert(loc.clone(), connect(url).await?);
    }
    let store = RedisTenantStore::new(
        home.clone(),
        spec.name.as_str(),
        spec.kind,
        layout.clone(),
        config.scan_count,
        config.max_concurrency,
    )
    .with_locations(locations.values().cloned().collect());
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        home,
        locations,
        layout,
        config,
        store: Arc::new(store),
    }))
}

struct Opened {
    name: String,
    home: ConnectionManager,
    locations: std::collections::BTreeMap<String, ConnectionManager>,
    layout: Layout,
    config: Config,
    store: Arc<RedisTenantStore>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("redis::Opened")
            .field("name", &self.name)
            .field("locations", &self.locations.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        let conn = if location == lifecycle::migration::HOME {
            self.home.clone()
        } else {
            self.locations.get(location).cloned().ok_or_else(|| {
                StepError::Configuration(format!(
                    "system {}: no database for location {location}; add `locations = {{ {location} = \"redis://host:port/N\" }}` to its catalog entry",
                    self.name
                ))
            })?
        };
        Ok(both(RedisDataset::new(
            conn,
            &self.name,
            location,
            self.layout.clone(),
            self.config.scan_count,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::{Config, Layout};
    use lifecycle::TenantId;

    fn layout(prefix: &str, hash_tag: bool) -> Layout {
        Layout::new(&Config {
            url: "redis://x/0".into(),
            prefix: prefix.into(),
            hash_tag,
            scan_count: 1000,
            max_concurrency: 8,
            locations: Default::default(),
        })
    }

    #[test]
    fn names_keys_meta_and_patterns() {
        let t = TenantId::parse("t1").expect("id");
        let l = layout("tenant:{tenant_id}:", false);
        assert_eq!(l.data(&t, "s/1"), "tenant:t1:s/1");
        assert_eq!(l.meta(&t, "rev"), "~tenant-lifecycle:tenant:t1:rev");
        assert_eq!(l.pattern(&t), "tenant:t1:*");
        let h = layout("tenant:{tenant_id}:", true);
        assert_eq!(h.data(&t, "k"), "tenant:{t1}:k");
        assert_eq!(h.meta(&t, "feed"), "~tenant-lifecycle:tenant:{t1}:feed");
        assert_eq!(h.pattern(&t), "tenant:{t1}:*");
    }
}
