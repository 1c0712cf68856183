//! The object store a Distributed Map reads its items from (`ItemReader`) and writes its
//! results to (`ResultWriter`): the smallest S3 port the simulator needs. `tenantctl`
//! implements it on the AWS SDK (AWS or moto); [`MemoryObjects`] keeps objects in memory
//! for tests and for callers that have no S3.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One object as `ListObjectsV2` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its ETag, quoted as S3 returns it.
    pub etag: String,
    /// Last modified, seconds since the Unix epoch.
    pub last_modified: i64,
    /// Size in bytes.
    pub size: u64,
    /// Storage class (`STANDARD`, ...).
    pub storage_class: String,
}

/// The S3 calls a Distributed Map makes. Errors are messages; the simulator turns them
/// into `States.ItemReaderFailed` or `States.ResultWriterFailed`.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Every object of `bucket` whose key starts with `prefix`, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, String>;
    /// The body of one object.
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String>;
    /// Writes one object.
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String>;
}

/// Objects in memory, by bucket and key.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryObjects {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object.
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((bucket.to_owned(), key.to_owned()), body.into());
    }

    /// An object's body, if present.
    pub fn body(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Every key of a bucket under a prefix.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect()
    }
}

#[async_trait]
impl ObjectStore for MemoryObjects {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, String> {
        let g = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        Ok(g.iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, k), body)| ObjectInfo {
                key: k.clone(),
                etag: format!("\"{}\"", hex::encode(md5::Md5::digest(body))),
                last_modified: 0,
                size: body.len() as u64,
                storage_class: "STANDARD".into(),
            })
            .collect())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        self.body(bucket, key)
            .ok_or_else(|| format!("NoSuchKey: s3://{bucket}/{key} does not exist"))
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        self.insert(bucket, key, body);
        Ok(())
    }
}

use md5::Digest as _;
