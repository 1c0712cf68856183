use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode;
use ports::Contended;
use ports::check_chain_name;
use ports::retry::with_backoff;
use ports::{CheckpointStore, StoreError};

/// Checkpoints as S3 objects `<prefix><chain>/<size, 20 digits>.checkpoint` in a bucket
/// with Object Lock: each is written once (`If-None-Match: *`) and locked in compliance
/// mode for `retention_days`, so not even the account's root can change or delete it.
#[derive(Debug, Clone)]
pub struct S3Checkpoints {
    client: Client,
    bucket: String,
    prefix: String,
    retention_days: u32,
}

impl S3Checkpoints {
    /// Checkpoints in `bucket` under `prefix`.
    pub fn new(client: Client, bucket: &str, prefix: &str, retention_days: u32) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            retention_days,
        }
    }

    fn chain_prefix(&self, chain: &str) -> Result<String, StoreError> {
        check_chain_name(chain)?;
        Ok(format!("{}{chain}/", self.prefix))
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_error("GetObject", e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("GetObject {key}: {e}")))?
            .into_bytes();
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("checkpoint {key} is not UTF-8")))
    }

    async fn keys(&self, prefix: &str, delimiter: bool) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = with_backoff(|| async {
                let mut req = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone());
                if delimiter {
                    req = req.delimiter("/");
                }
                req.send().await.map_err(|e| sdk_error("ListObjectsV2", e))
            })
            .await?;
            if delimiter {
                out.extend(
                    page.common_prefixes()
                        .iter()
                        .filter_map(|p| p.prefix().map(str::to_owned)),
                );
            } else {
                out.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_owned)),
                );
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl CheckpointStore for S3Checkpoints {
    async fn publish(&self, chain: &str, size: u64, note: &str) -> Result<String, StoreError> {
        let key = format!("{}{size:020}.checkpoint", self.chain_prefix(chain)?);
        let until = time::OffsetDateTime::now_utc()
            + time::Duration::days(i64::from(self.retention_days.max(1)));
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("text/plain; charset=utf-8")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(until.unix_timestamp()))
            .body(ByteStream::from(note.as_bytes().to_vec()))
            .send()
            .await;
        let location = format!("s3://{}/{key}", self.bucket);
        match sent {
            Ok(_) => Ok(location),
            Err(e)
                if e.raw_response()
                    .is_some_and(|r| r.status().as_u16() == 412 || r.status().as_u16() == 409) =>
            {
                match self.get(&key).await? {
                    Some(existing) if existing == note => Ok(location),
                    _ => Err(StoreError::conflict_from(
                        Contended::Checkpoint {
                            chain: chain.to_owned(),
                            size,
                        },
                        format!("a different one is already published at {location}"),
                        e,
                    )),
                }
            }
            Err(e) => Err(sdk_error("PutObject", e)),
        }
    }

    async fn latest(&self, chain: &str) -> Result<Option<String>, StoreError> {
        let prefix = self.chain_prefix(chain)?;
        let mut keys = self.keys(&prefix, false).await?;
        keys.retain(|k| k.ends_with(".checkpoint"));
        // Sizes are zero-padded, so the last key is the largest.
        match keys.iter().max() {
            Some(k) => self.get(k).await,
            None => Ok(None),
        }
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self
            .keys(&self.prefix, true)
            .await?
            .into_iter()
            .filter_map(|p| {
                p.strip_prefix(&self.prefix)
                    .and_then(|c| c.strip_suffix('/'))
                    .map(str::to_owned)
            })
            .filter(|c| check_chain_name(c).is_ok())
            .collect();
        out.sort();
        Ok(out)
    }
}
