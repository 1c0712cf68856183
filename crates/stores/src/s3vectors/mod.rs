//! Amazon S3 Vectors: one index per tenant (`index = "emb-{tenant_id}"`) in a vector
//! bucket, so a tenant's vectors are exactly one index's. Erasure deletes the index's
//! vectors in DeleteVectors batches (so a pass stops at its deadline after the batch in
//! hand), then the emptied index itself; it proves itself by a pass that finds no index.
//! A migration location is the same index name in another vector bucket (in the region a
//! location is named after, if it is). Bodies are the vector envelope shared with the
//! pgvector product (see [`body`]). Migration keeps revisions and tombstones in reserved
//! metadata keys and the change feed in a second index per tenant; S3 Vectors has no
//! transactions, so read [`dataset`]'s note on concurrent writers before migrating.
//!
//! Index names allow only a-z, 0-9, '-' and '.', tenant ids also '_' and upper case, so a
//! tenant id is written with every other character as `.` and two hex digits (`t_1` is
//! `t.5f1`): one name per tenant, never another's, and `.fe..` can be no tenant's.

pub mod body;
mod config;
pub mod dataset;
pub(crate) mod discover;
mod tenant_store;

pub use config::{Config, Distance};
pub use dataset::S3VectorsDataset;
pub use tenant_store::S3VectorsTenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER};
use lifecycle::{StepError, TenantId};
use ports::{StoreError, TenantStore};
use std::sync::Arc;

/// The suffix of a tenant's change-feed index (kept by migration; erased with the tenant).
pub(crate) const FEED_SUFFIX: &str = ".feed";

/// How a tenant's indexes are named and shaped.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) template: String,
    pub(crate) dimension: u32,
    pub(crate) distance: Distance,
}

impl Layout {
    /// The tenant id as index names allow it: every character outside `a-z 0-9 -` as `.`
    /// and two hex digits, so no two tenants share a name.
    pub(crate) fn escape(t: &TenantId) -> String {
        let mut enc = String::new();
        for b in t.as_str().bytes() {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
                enc.push(char::from(b));
            } else {
                enc.push_str(&format!(".{b:02x}"));
            }
        }
        enc
    }

    /// The tenant's index name, or a configuration error when it would be too long.
    pub(crate) fn index(&self, t: &TenantId) -> Result<String, StoreError> {
        let enc = Self::escape(t);
        let name = self.template.replace(TENANT_PLACEHOLDER, &enc);
        if name.len() + FEED_SUFFIX.len() > 63 {
            return Err(StoreError::Config(format!(
                "tenant {t}: index name {name:?} (and its feed's) would exceed S3 Vectors' 63 characters; shorten the catalog's index template"
            )));
        }
        Ok(name)
    }

    /// The tenant's change-feed index name.
    pub(crate) fn feed(&self, t: &TenantId) -> Result<String, StoreError> {
        Ok(format!("{}{FEED_SUFFIX}", self.index(t)?))
    }
}

/// True when the service said the index (or bucket) does not exist.
pub(crate) fn not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.code() == Some("NotFoundException")
}

/// A client for a location's bucket: in the location's region when it is named after one.
pub(crate) fn client_for(sdk: &aws_config::SdkConfig, location: &str) -> aws_sdk_s3vectors::Client {
    match crate::aws::region_of(location) {
        Some(r) => aws_sdk_s3vectors::Client::from_conf(
            aws_sdk_s3vectors::config::Builder::from(sdk)
                .region(r)
                .build(),
        ),
        None => aws_sdk_s3vectors::Client::new(sdk),
    }
}

/// Opens a catalog entry of `backend = "s3vectors"`.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let sdk = ctx.aws().await?.clone();
    let locations: Vec<(String, aws_sdk_s3vectors::Client, String)> = config
        .locations
        .iter()
        .map(|(loc, bucket)| (loc.clone(), client_for(&sdk, loc), bucket.clone()))
        .collect();
    let home = aws_sdk_s3vectors::Client::new(&sdk);
    let store = S3VectorsTenantStore::new(home.clone(), spec.name.as_str(), spec.kind, &config)
        .with_location_clients(
            locations
                .iter()
                .map(|(_, c, b)| (c.clone(), b.clone()))
                .collect(),
        );
    // One dataset per location, made once, so this process's writes share one lock.
    let mut datasets = std::collections::BTreeMap::new();
    datasets.insert(
        lifecycle::migration::HOME.to_owned(),
        both(S3VectorsDataset::new(
            store.at(home, &config.vector_bucket),
            lifecycle::migration::HOME,
        )),
    );
    for (loc, client, bucket) in locations {
        let ds = S3VectorsDataset::new(store.at(client, &bucket), &loc);
        datasets.insert(loc, both(ds));
    }
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        store: Arc::new(store),
        datasets,
    }))
}

#[derive(Debug)]
struct Opened {
    name: String,
    store: Arc<S3VectorsTenantStore>,
    datasets: std::collections::BTreeMap<String, DatasetPorts>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        self.datasets.get(location).cloned().ok_or_else(|| {
            StepError::Configuration(format!(
                "system {}: no vector bucket for location {location}; add `locations = {{ {location} = \"<vector bucket>\" }}` to its catalog entry",
                self.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Distance, Layout};
    use lifecycle::TenantId;

    #[test]
    fn one_index_per_tenant_and_none_is_anothers() {
        let l = Layout {
            template: "emb-{tenant_id}".into(),
            dimension: 3,
            distance: Distance::Cosine,
        };
        let name = |s: &str| l.index(&TenantId::parse(s).expect("id")).expect("name");
        assert_eq!(name("t1"), "emb-t1");
        assert_eq!(name("t-1"), "emb-t-1");
        assert_eq!(name("t_1"), "emb-t.5f1");
        assert_eq!(name("T1"), "emb-.541");
        assert_ne!(name("t_1"), name("t-1"));
        let t = TenantId::parse("a").expect("id");
        assert_eq!(l.feed(&t).expect("feed"), "emb-a.feed");
        assert!(
            l.index(&TenantId::parse(&"x".repeat(60)).expect("id"))
                .is_err()
        );
    }
}
