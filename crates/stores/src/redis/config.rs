//! A Redis system's catalog settings.

use crate::config::{check_concurrency, check_prefix_separator, default_concurrency, settings};
use lifecycle::StepError;
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// `backend = "redis"`: a tenant's keys share one prefix, e.g. `tenant:{tenant_id}:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server URL with its logical database, e.g. `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Key prefix template; every key of the tenant starts with it.
    pub prefix: String,
    /// Render the tenant id as a hash tag (`tenant:{t1}:`), so on a cluster every key of
    /// a tenant, and the bookkeeping beside them, live in one slot.
    #[serde(default)]
    pub hash_tag: bool,
    /// Keys SCAN asks for per call.
    #[serde(default = "default_scan_count")]
    pub scan_count: usize,
    /// UNLINK (and copy) batches in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Servers or logical databases of the migration locations (location name to URL).
    #[serde(default)]
    pub locations: BTreeMap<String, String>,
}

fn default_scan_count() -> usize {
    1000
}

impl Config {
    /// Parses and checks a catalog entry.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        let c: Self = settings(spec)?;
        check_prefix_separator(&spec.name, "prefix", &c.prefix)?;
        if c.prefix.contains(['*', '?', '[', ']', '\\']) {
            return Err(StepError::Configuration(format!(
                "system {}: prefix {:?} may not hold the glob characters * ? [ ] \\",
                spec.name, c.prefix
            )));
        }
        if c.hash_tag
            && c.prefix
                .replace(TENANT_PLACEHOLDER, "")
                .contains(['{', '}'])
        {
            return Err(StepError::Configuration(format!(
                "system {}: with hash_tag the tenant id is the hash tag; remove the other braces from prefix {:?}",
                spec.name, c.prefix
            )));
        }
        if !(10..=100_000).contains(&c.scan_count) {
            return Err(StepError::Configuration(format!(
                "system {}: scan_count must be between 10 and 100000, got {}",
                spec.name, c.scan_count
            )));
        }
        check_concurrency(&spec.name, c.max_concurrency)?;
        let home = identity(spec.name.as_str(), &c.url)?;
        let mut seen = BTreeSet::from([home]);
        for (loc, url) in &c.locations {
            if loc.is_empty() || loc == lifecycle::migration::HOME {
                return Err(StepError::Configuration(format!(
                    "system {}: location {loc:?} is reserved; name locations like green or eu-west-1",
                    spec.name
                )));
            }
            if !seen.insert(identity(spec.name.as_str(), url)?) {
                return Err(StepError::Configuration(format!(
                    "system {}: location {loc} uses {url}, already the home URL or another location's; give each location its own database (redis://host:port/N) or server",
                    spec.name
                )));
            }
        }
        Ok(c)
    }
}

/// Two Redis systems on one database whose prefixes could cover each other's keys are
/// refused: erasing a tenant of one would erase keys of the other.
pub(crate) fn check_overlaps(specs: &[&SystemSpec]) -> Result<(), StepError> {
    let mut places = Vec::new();
    for spec in specs {
        let c = Config::parse(spec)?;
        let literal = c
            .prefix
            .split(TENANT_PLACEHOLDER)
            .next()
            .unwrap_or_default()
            .to_owned();
        for url in std::iter::once(&c.url).chain(c.locations.values()) {
            places.push((
                spec.name.to_string(),
                identity(spec.name.as_str(), url)?,
                literal.clone(),
            ));
        }
    }
    for (i, (a, da, pa)) in places.iter().enumerate() {
        for (b, db, pb) in &places[i + 1..] {
            if a != b && da == db && (pa.starts_with(pb.as_str()) || pb.starts_with(pa.as_str())) {
                return Err(StepError::Configuration(format!(
                    "systems {a} and {b} share Redis database {}:{}/{} with prefixes {pa:?} and {pb:?}, one covering the other: erasing a tenant of one would erase keys of the other; give each its own prefix or database",
                    da.0, da.1, da.2
                )));
            }
        }
    }
    Ok(())
}

/// Where a URL really leads, as (host, port, database): `redis://localhost:6379/015`
/// and `redis://127.0.0.1:6379/15?protocol=resp2` are the same database.
pub(crate) fn identity(name: &str, url: &str) -> Result<(String, u16, i64), StepError> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StepError::Configuration(format!(
            "system {name}: url {:?} must start with redis:// or rediss://",
            super::redact(url)
        )));
    }
    let info = url.into_connection_info().map_err(|e| {
        StepError::Configuration(format!(
            "system {name}: url {:?} is not a Redis URL: {e}",
            super::redact(url)
        ))
    })?;
    let (host, port) = match info.addr {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => (h, p),
        ConnectionAddr::Unix(p) => (p.display().to_string(), 0),
    };
    let host = host.to_ascii_lowercase();
    let host = if matches!(host.as_str(), "localhost" | "::1" | "[::1]") {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    Ok((host, port, info.redis.db))
}

#[cfg(test)]
mod tests {
    use super::Config;
    use lifecycle::Catalog;

    fn parse(extra: &str) -> Result<Config, lifecycle::StepError> {
        let text = format!(
            "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"cache\"\nkind = \"key-value\"\nbackend = \"redis\"\n{extra}"
        );
        Config::parse(&Catalog::from_toml(&text)?.systems[0])
    }

    #[test]
    fn parses_with_defaults() {
        let c = parse("url = \"redis://127.0.0.1:6379/0\"\nprefix = \"tenant:{tenant_id}:\"")
            .expect("valid");
        assert_eq!(
            (c.scan_count, c.max_concurrency, c.hash_tag),
            (1000, 8, false)
        );
    }

    #[test]
    fn refuses_malformed_entries_saying_what_to_change() {
        for (extra, says) in [
            (
                "url = \"redis://h/0\"\nprefix = \"tenant:\"",
                "must contain {tenant_id}",
            ),
            (
                "url = \"redis://h/0\"\nprefix = \"tenant:{tenant_id}\"",
                "with a separator",
            ),
            (
                "url = \"redis://h/0\"\nprefix = \"app:{tenant_id}-\"",
                "with a separator",
            ),
            (
                "url = \"redis://h/0\"\nprefix = \"t*:{tenant_id}:\"",
                "glob characters",
            ),
            (
                "url = \"http://h/0\"\nprefix = \"t:{tenant_id}:\"",
                "redis://",
            ),
            (
                "url = \"redis://h/0\"\nprefix = \"t:{tenant_id}:\"\nscan_count = 1",
                "scan_count",
            ),
            (
                "url = \"redis://h/0\"\nprefix = \"t:{tenant_id}:\"\npatern = \"x\"",
                "unknown field `patern`",
            ),
            ("prefix = \"t:{tenant_id}:\"", "missing field `url`"),
            (
                "url = \"redis://h/0\"\nprefix = \"t:{tenant_id}:\"\nlocations = { green = \"redis://h/0\" }",
                "own database",
            ),
            (
                "url = \"redis://127.0.0.1:6379/15\"\nprefix = \"t:{tenant_id}:\"\nlocations = { green = \"redis://localhost:6379/015?protocol=resp2\" }",
                "own database",
            ),
            (
                "url = \"redis://h/0\"\nprefix = \"{x}:{tenant_id}:\"\nhash_tag = true",
                "hash tag",
            ),
        ] {
            let e = parse(extra).expect_err(extra);
            assert_eq!(e.error_type(), "ConfigurationError", "{extra}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }
}
