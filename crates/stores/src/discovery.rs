//! Discovery of undocumented systems: everything the credentials can see (every S3
//! bucket, DynamoDB table and log group of the account; every schema of the PostgreSQL
//! servers and every database of the Redis servers the catalog or its `[discovery]`
//! names) is scanned for the tenant's identifier, and each place that holds it and is
//! not a catalog system's is reported. The erasure's verification step runs it and
//! refuses a certificate on any find.

use crate::Deps;
use lifecycle::{DiscoverySpec, StepError, TenantId};
use serde::Serialize;

/// A place outside the catalog that holds the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Where: `s3://bucket/prefix`, `dynamodb://table`, `logs://group`,
    /// `postgres://host/schema.table`, `redis://host:port/db/pattern`.
    pub place: String,
    /// Records there that name the tenant (keys, items, events, rows).
    pub records: u64,
}

/// Where `text` names `tenant` as a whole identifier (not as part of a longer one: `t1`
/// is not in `t10`), if it does: the byte offset of the first such mention.
pub fn find_tenant(text: &str, tenant: &str) -> Option<usize> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(tenant).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + tenant.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// True when `text` names `tenant` as a whole identifier.
pub fn names_tenant(text: &str, tenant: &str) -> bool {
    find_tenant(text, tenant).is_some()
}

/// The text up to and including the tenant's identifier: the place a key belongs to
/// (`exports/t1/a.csv` is in `exports/t1`), cut where the whole identifier is, so
/// `x:t10:t1:note` is in `x:t10:t1`, not in `x:t1`, which would name t10's keys.
pub(crate) fn place_of(key: &str, tenant: &str) -> String {
    find_tenant(key, tenant).map_or_else(|| key.to_owned(), |i| key[..i + tenant.len()].to_owned())
}

/// The error that stops a scan which read its `max_per_place` in one place and had more
/// to read: a partial scan must not pass for a clean one.
pub(crate) fn capped(place: &str, cap: usize) -> ports::StoreError {
    ports::StoreError::Config(format!(
        "discovery read {cap} records of {place} and stopped before the end; raise [discovery].max_per_place so the whole place is scanned"
    ))
}

/// Counts findings by place, in place order.
pub(crate) fn tally(places: impl IntoIterator<Item = String>) -> Vec<Finding> {
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    for p in places {
        *by.entry(p).or_default() += 1;
    }
    by.into_iter()
        .map(|(place, records)| Finding { place, records })
        .collect()
}

/// Everything discovery scans, and what it knows the catalog covers.
#[derive(Debug, Default)]
// A build without some products never reads their fields.
#[allow(dead_code)]
struct Known {
    s3: Vec<(String, String)>,
    dynamodb: Vec<(String, String, String)>,
    tables: Vec<String>,
    groups: Vec<String>,
    streams: Vec<(String, String)>,
    postgres: Vec<(String, Vec<String>)>,
    redis: Vec<(String, String)>,
    s3vectors: Vec<(String, String)>,
}

// `t` renders the catalog's templates, which a build without those products never reads.
#[allow(unused_variables)]
fn known(deps: &Deps, spec: &DiscoverySpec, t: &TenantId) -> Known {
    use lifecycle::catalog::ControlBackend;
    let mut k = Known::default();
    for c in [&deps.catalog.ledger, &deps.catalog.legal_holds]
        .into_iter()
        .chain(deps.catalog.routing.iter())
        .chain(deps.catalog.migrations.iter())
    {
        if let ControlBackend::Dynamodb { table } = c {
            k.tables.push(table.clone());
        }
    }
    for s in &deps.catalog.systems {
        match s.backend.as_str() {
            #[cfg(feature = "s3")]
            "s3" => {
                if let Ok(c) = crate::s3::Config::parse(s) {
                    for b in std::iter::once(&c.bucket).chain(c.locations.values()) {
                        k.s3.push((b.clone(), lifecycle::catalog::locate(&c.prefix, t)));
                    }
                }
            }
            #[cfg(feature = "dynamodb")]
            "dynamodb" => {
                if let Ok(c) = crate::dynamodb::Config::parse(s) {
                    for table in std::iter::once(&c.table).chain(c.locations.values()) {
                        k.dynamodb.push((
                            table.clone(),
                            c.partition_key.clone(),
                            lifecycle::catalog::locate(&c.partition_value, t),
                        ));
                    }
                }
            }
            #[cfg(feature = "cloudwatch")]
            "cloudwatch" => {
                if let Ok(c) = crate::cloudwatch::Config::parse(s) {
                    k.groups.extend(
                        c.all_groups()
                            .iter()
                            .map(|g| lifecycle::catalog::locate(g, t)),
                    );
                    k.groups
                        .extend(c.shared_groups.iter().map(|g| g.group.clone()));
                    k.streams.extend(c.all_stream_groups().iter().map(|g| {
                        (
                            g.group.clone(),
                            lifecycle::catalog::locate(&g.stream_prefix, t),
                        )
                    }));
                }
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                if let Ok(c) = crate::postgres::Config::parse(s) {
                    k.postgres.push((c.url, vec![c.schema]));
                }
            }
            #[cfg(feature = "s3vectors")]
            "s3vectors" => {
                if let Ok(c) = crate::s3vectors::Config::parse(s) {
                    let layout = crate::s3vectors::Layout {
                        template: c.index.clone(),
                        dimension: c.dimension,
                        distance: c.distance,
                    };
                    if let (Ok(index), Ok(feed)) = (layout.index(t), layout.feed(t)) {
                        for b in std::iter::once(&c.vector_bucket).chain(c.locations.values()) {
                            k.s3vectors.push((b.clone(), index.clone()));
                            k.s3vectors.push((b.clone(), feed.clone()));
                        }
                    }
                }
            }
            #[cfg(feature = "redis")]
            "redis" => {
                if let Ok(c) = crate::redis::Config::parse(s) {
                    let layout = crate::redis::Layout::new(&c);
                    for url in std::iter::once(&c.url).chain(c.locations.values()) {
                        k.redis.push((url.clone(), layout.prefix(t)));
                    }
                }
            }
            _ => {}
        }
    }
    if !spec.catalog_servers {
        k.postgres.clear();
        k.redis.clear();
    }
    for url in &spec.postgres {
        if !k.postgres.iter().any(|(u, _)| u == url) {
            k.postgres.push((url.clone(), Vec::new()));
        }
    }
    for url in &spec.redis {
        k.redis.push((url.clone(), String::new()));
    }
    k
}

/// Scans everything the catalog's `[discovery]` reaches for `tenant`; a catalog without
/// one scans the PostgreSQL and Redis servers its systems use.
pub async fn discover(deps: &Deps, tenant: &TenantId) -> Result<Vec<Finding>, StepError> {
    let spec = deps.catalog.discovery.clone().unwrap_or(DiscoverySpec {
        on_verify: false,
        aws: false,
        catalog_servers: true,
        postgres: Vec::new(),
        redis: Vec::new(),
        sample_bodies: 0,
        max_per_place: 100_000,
    });
    let k = known(deps, &spec, tenant);
    let mut found = Vec::new();
    if spec.aws {
        #[cfg(feature = "aws")]
        {
            let aws = deps.aws_config().ok_or_else(|| {
                StepError::Configuration("discovery.aws needs AWS credentials".into())
            })?;
            #[cfg(feature = "s3")]
            found.extend(crate::s3::discover::scan(aws, tenant, &k.s3, &spec).await?);
            #[cfg(feature = "dynamodb")]
            found.extend(
                crate::dynamodb::discover::scan(aws, tenant, &k.dynamodb, &k.tables, &spec).await?,
            );
            #[cfg(feature = "cloudwatch")]
            found.extend(
                crate::cloudwatch::discover::scan(aws, tenant, &k.groups, &k.streams, &spec)
                    .await?,
            );
            #[cfg(feature = "s3vectors")]
            found.extend(crate::s3vectors::discover::scan(aws, tenant, &k.s3vectors, &spec).await?);
        }
        #[cfg(not(feature = "aws"))]
        return Err(StepError::Configuration(
            "discovery.aws: this build has no AWS products".into(),
        ));
    }
    #[cfg(feature = "postgres")]
    for (url, schemas) in &k.postgres {
        found.extend(crate::postgres::discover::scan(url, tenant, schemas, &spec).await?);
    }
    #[cfg(feature = "redis")]
    {
        let mut servers: Vec<String> = k
            .redis
            .iter()
            .map(|(u, _)| crate::redis::server_of(u))
            .collect();
        servers.sort();
        servers.dedup();
        for server in servers {
            found.extend(crate::redis::discover::scan(&server, tenant, &k.redis, &spec).await?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::{names_tenant, place_of, tally};

    #[test]
    fn a_tenant_is_named_only_as_a_whole_identifier() {
        assert!(names_tenant("user of t1 logged in", "t1"));
        assert!(names_tenant("{\"tenant_id\":\"t1\"}", "t1"));
        assert!(names_tenant("t1", "t1"));
        assert!(!names_tenant("user of t10 logged in", "t1"));
        assert!(!names_tenant("xt1", "t1"));
        assert!(!names_tenant("t1_b", "t1"));
        assert!(names_tenant("t10 and then t1.", "t1"));
    }

    #[test]
    fn findings_are_counted_by_place() {
        assert_eq!(place_of("exports/t1/a.csv", "t1"), "exports/t1");
        assert_eq!(place_of("x:t10:t1:note", "t1"), "x:t10:t1");
        let f = tally(["b".to_owned(), "a".to_owned(), "b".to_owned()]);
        assert_eq!(
            f.iter()
                .map(|f| (f.place.as_str(), f.records))
                .collect::<Vec<_>>(),
            [("a", 1), ("b", 2)]
        );
    }
}
