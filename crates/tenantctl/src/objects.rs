//! The simulator's S3 port ([`sim::ObjectStore`]) on the AWS SDK, so a Distributed Map's
//! ItemReader and ResultWriter reach the same S3 (AWS or moto) as the catalog's systems.
//! The embedded world has no buckets: there the simulator runs without one and says so.

use async_trait::async_trait;
use sim::{ObjectInfo, ObjectStore};

/// S3 through the SDK.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    /// The store on `cfg` (path-style when an endpoint is set, as for moto).
    pub fn new(cfg: &aws_config::SdkConfig) -> Self {
        Self {
            client: stores::s3::client(cfg),
        }
    }
}

fn msg(e: impl std::error::Error) -> String {
    // The SDK error's Display is terse; its sources name the service error.
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, String> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| format!("ListObjectsV2 s3://{bucket}/{prefix}: {}", msg(e)))?;
            for o in page.contents() {
                out.push(ObjectInfo {
                    key: o.key().unwrap_or_default().to_owned(),
                    etag: o.e_tag().unwrap_or_default().to_owned(),
                    last_modified: o.last_modified().map_or(0, |t| t.secs()),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    storage_class: o
                        .storage_class()
                        .map_or("STANDARD".to_owned(), |c| c.as_str().to_owned()),
                });
            }
        }
        Ok(out)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let o = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("GetObject s3://{bucket}/{key}: {}", msg(e)))?;
        let body = o
            .body
            .collect()
            .await
            .map_err(|e| format!("GetObject s3://{bucket}/{key}: reading the body: {e}"))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| format!("PutObject s3://{bucket}/{key}: {}", msg(e)))?;
        Ok(())
    }
}
