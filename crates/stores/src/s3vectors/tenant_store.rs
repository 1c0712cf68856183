//! The S3 Vectors erasure port: the tenant's index (and its feed index) in the home
//! vector bucket and every location's.

use super::body::{BODY_KEY, from_vector, to_vector};
use super::{Config, Distance, Layout, not_found};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_s3vectors::Client;
use aws_sdk_s3vectors::types::{
    DataType, DistanceMetric, GetOutputVector, MetadataConfiguration, PutInputVector,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lifecycle::{SystemKind, TenantId};
use ports::retry::with_backoff;
use ports::{ErasePass, StoreError, TenantStore};
use std::time::Instant;

/// The most vectors one ListVectors call returns.
const LIST_PAGE: i32 = 1000;

/// One catalog system in S3 Vectors, as erasure sees it (every location).
#[derive(Debug, Clone)]
pub struct S3VectorsTenantStore {
    client: Client,
    bucket: String,
    name: String,
    kind: SystemKind,
    layout: Layout,
    batch: usize,
    locations: Vec<(Client, String)>,
}

impl S3VectorsTenantStore {
    /// The system `name` of `config`; its locations' buckets are reached with `client`.
    pub fn new(client: Client, name: &str, kind: SystemKind, config: &Config) -> Self {
        Self {
            locations: config
                .locations
                .values()
                .map(|b| (client.clone(), b.clone()))
                .collect(),
            client,
            bucket: config.vector_bucket.clone(),
            name: name.to_owned(),
            kind,
            layout: Layout {
                template: config.index.clone(),
                dimension: config.dimension,
                distance: config.distance,
            },
            batch: config.batch_size,
        }
    }

    /// Replaces the locations' clients and buckets (a region location has its own client).
    pub(crate) fn with_location_clients(mut self, locations: Vec<(Client, String)>) -> Self {
        self.locations = locations;
        self
    }

    /// Sets how many keys one DeleteVectors carries (tests use small batches).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.clamp(1, 500);
        self
    }

    fn at_locations(&self) -> Vec<Self> {
        self.locations
            .iter()
            .map(|(c, b)| Self {
                client: c.clone(),
                bucket: b.clone(),
                locations: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    pub(super) fn op(&self, what: &str, index: &str) -> String {
        format!("s3vectors {what} {}/{index}", self.bucket)
    }

    /// Creates the index with the catalog's shape; one that exists already is kept.
    pub(super) async fn create_index(&self, index: &str) -> Result<(), StoreError> {
        let metric = match self.layout.distance {
            Distance::Cosine => DistanceMetric::Cosine,
            Distance::Euclidean => DistanceMetric::Euclidean,
        };
        let meta = MetadataConfiguration::builder()
            .non_filterable_metadata_keys(BODY_KEY)
            .build()
            .map_err(|e| StoreError::Config(format!("MetadataConfiguration: {e}")))?;
        with_backoff(|| async {
            match self
                .client
                .create_index()
                .vector_bucket_name(&self.bucket)
                .index_name(index)
                .data_type(DataType::Float32)
                .dimension(self.layout.dimension as i32)
                .distance_metric(metric.clone())
                .metadata_configuration(meta.clone())
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ConflictException") => Ok(()),
                Err(e) if not_found(&e) => Err(StoreError::Config(format!(
                    "vector bucket {} does not exist; create it (aws s3vectors create-vector-bucket) or fix the catalog's vector_bucket",
                    self.bucket
                ))),
                Err(e) => Err(sdk_error(&self.op("CreateIndex", index), e)),
            }
        })
        .await
    }

    /// One PutVectors; false when the index does not exist.
    pub(super) async fn put_once(
        &self,
        index: &str,
        vs: &[PutInputVector],
    ) -> Result<bool, StoreError> {
        with_backoff(|| async {
            match self
                .client
                .put_vectors()
                .vector_bucket_name(&self.bucket)
                .index_name(index)
                .set_vectors(Some(vs.to_vec()))
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if not_found(&e) => Ok(false),
                Err(e) => Err(sdk_error(&self.op("PutVectors", index), e)),
            }
        })
        .await
    }

    /// PutVectors in batches, creating the index (with the catalog's shape) on first use.
    pub(super) async fn put_all(
        &self,
        index: &str,
        vs: &[PutInputVector],
    ) -> Result<(), StoreError> {
        for chunk in vs.chunks(self.batch) {
            if self.put_once(index, chunk).await? {
                continue;
            }
            self.create_index(index).await?;
            if !self.put_once(index, chunk).await? {
                return Err(StoreError::Unavailable(format!(
                    "{}: the index was created but PutVectors still does not find it",
                    self.op("PutVectors", index)
                )));
            }
        }
        Ok(())
    }

    /// GetVectors (data and metadata) of `keys`, 100 a call; absent keys are left out.
    pub(super) async fn get_many(
        &self,
        index: &str,
        keys: &[String],
    ) -> Result<Vec<GetOutputVector>, StoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let got = with_backoff(|| async {
                match self
                    .client
                    .get_vectors()
                    .vector_bucket_name(&self.bucket)
                    .index_name(index)
                    .set_keys(Some(chunk.to_vec()))
                    .return_data(true)
                    .return_metadata(true)
                    .send()
                    .await
                {
                    Ok(o) => Ok(o.vectors().to_vec()),
                    Err(e) if not_found(&e) => Ok(Vec::new()),
                    Err(e) => Err(sdk_error(&self.op("GetVectors", index), e)),
                }
            })
            .await?;
            out.extend(got);
        }
        Ok(out)
    }

    /// The index's dimension and distance metric (`None` when there is no index).
    pub(super) async fn shape(&self, index: &str) -> Result<Option<(i32, String)>, StoreError> {
        with_backoff(|| async {
            match self
                .client
                .get_index()
                .vector_bucket_name(&self.bucket)
                .index_name(index)
                .send()
                .await
            {
                Ok(o) => Ok(o
                    .index()
                    .map(|i| (i.dimension(), i.distance_metric().as_str().to_owned()))),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(sdk_error(&self.op("GetIndex", index), e)),
            }
        })
        .await
    }

    /// Every key of the index, following next_token (none when there is no index).
    pub(super) async fn all_keys(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            match self.list_keys(index, token.as_deref()).await? {
                None => return Ok(all),
                Some((keys, next)) => {
                    let empty = keys.is_empty();
                    all.extend(keys);
                    match next {
                        Some(t) if !empty => token = Some(t),
                        _ => return Ok(all),
                    }
                }
            }
        }
    }

    /// The same store on another bucket (a location's), without locations of its own.
    pub(super) fn at(&self, client: Client, bucket: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            locations: Vec::new(),
            ..self.clone()
        }
    }

    /// The catalog's layout.
    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The vector bucket this store writes.
    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The keys of the first page of the index (`None` when there is no index).
    pub(super) async fn list_keys(
        &self,
        index: &str,
        token: Option<&str>,
    ) -> Result<Option<(Vec<String>, Option<String>)>, StoreError> {
        with_backoff(|| async {
            match self
                .client
                .list_vectors()
                .vector_bucket_name(&self.bucket)
                .index_name(index)
                .max_results(LIST_PAGE)
                .set_next_token(token.map(str::to_owned))
                .return_data(false)
                .return_metadata(false)
                .send()
                .await
            {
                Ok(out) => Ok(Some((
                    out.vectors().iter().map(|v| v.key().to_owned()).collect(),
                    out.next_token().map(str::to_owned),
                ))),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(sdk_error(&self.op("ListVectors", index), e)),
            }
        })
        .await
    }

    pub(super) async fn delete_keys(
        &self,
        index: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        with_backoff(|| async {
            match self
                .client
                .delete_vectors()
                .vector_bucket_name(&self.bucket)
                .index_name(index)
                .set_keys(Some(keys.to_vec()))
                .send()
                .await
            {
                Ok(_) => Ok(keys.len() as u64),
                Err(e) if not_found(&e) => Ok(0),
                Err(e) => Err(sdk_error(&self.op("DeleteVectors", index), e)),
            }
        })
        .await
    }

    pub(super) async fn delete_index(&self, index: &str) -> Result<(), StoreError> {
        with_backoff(|| async {
            match self
                .client
                .delete_index()
                .vector_bucket_name(&self.bucket)
                .index_name(index)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if not_found(&e) => Ok(()),
                Err(e) => Err(sdk_error(&self.op("DeleteIndex", index), e)),
            }
        })
        .await
    }

    /// Every vector of the index, following next_token (0 when there is no index).
    async fn count_index(&self, index: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut token = None;
        loop {
            match self.list_keys(index, token.as_deref()).await? {
                None => return Ok(n),
                Some((keys, next)) => {
                    n += keys.len() as u64;
                    match next {
                        Some(t) if !keys.is_empty() => token = Some(t),
                        _ => return Ok(n),
                    }
                }
            }
        }
    }

    /// One pass over this bucket: the tenant's index and feed index, each emptied in
    /// DeleteVectors batches from a fresh first page, then deleted. Past the deadline it
    /// stops after the batch in hand. Returns (erased, reached the end).
    async fn erase_pass(&self, t: &TenantId, deadline: Instant) -> Result<(u64, bool), StoreError> {
        let mut erased = 0;
        for index in [self.layout.index(t)?, self.layout.feed(t)?] {
            loop {
                // Always the first page: what was listed is deleted before listing again,
                // so no token is needed (and a token would skip nothing on real AWS).
                match self.list_keys(&index, None).await? {
                    None => break,
                    Some((keys, _)) if keys.is_empty() => {
                        self.delete_index(&index).await?;
                        break;
                    }
                    Some((keys, _)) => {
                        for chunk in keys.chunks(self.batch) {
                            erased += self.delete_keys(&index, chunk).await?;
                            if Instant::now() >= deadline {
                                return Ok((erased, false));
                            }
                        }
                    }
                }
            }
        }
        Ok((erased, true))
    }
}

#[async_trait]
impl TenantStore for S3VectorsTenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    /// PutVectors of one vector at home, creating the tenant's index on first use.
    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let v = to_vector(key, body, self.layout.dimension)?;
        self.put_all(&self.layout.index(tenant)?, &[v]).await
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let index = self.layout.index(tenant)?;
        self.delete_keys(&index, &[key.to_owned()]).await.map(drop)
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let index = self.layout.index(tenant)?;
        let out = with_backoff(|| async {
            match self
                .client
                .get_vectors()
                .vector_bucket_name(&self.bucket)
                .index_name(&index)
                .keys(key)
                .return_data(true)
                .return_metadata(true)
                .send()
                .await
            {
                Ok(out) => Ok(Some(out)),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(sdk_error(&self.op("GetVectors", &index), e)),
            }
        })
        .await?;
        match out
            .as_ref()
            .and_then(|o| o.vectors().iter().find(|v| v.key() == key))
        {
            None => Ok(None),
            Some(v) => from_vector(v.data(), v.metadata()),
        }
    }

    /// The vectors of the tenant's index and feed index, in every location.
    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut n = 0;
        for store in std::iter::once(self.clone()).chain(self.at_locations()) {
            n += store.count_index(&store.layout.index(tenant)?).await?;
            n += store.count_index(&store.layout.feed(tenant)?).await?;
        }
        Ok(n)
    }

    /// Locations first, home last; complete only when a pass finds no index left.
    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        ports::erase_locations_then(self.at_locations(), tenant, deadline, || {
            ports::erase_until_clean(deadline, || self.erase_pass(tenant, deadline))
        })
        .await
    }
}
