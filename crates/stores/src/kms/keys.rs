//! Tenants' keys in AWS KMS: one symmetric key per tenant (alias `<prefix><tenant>`),
//! each backup's data key from GenerateDataKey under the tenant's encryption context.
//! Destroying disables the key at once and schedules its deletion (KMS waits 7-30
//! days), in every region that holds a replica of the tenant's backups.

use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState as KmsState};
use lifecycle::TenantId;
use lifecycle::erasure::Window;
use ports::StoreError;
use ports::backup::{DataKey, KeyState, TenantKeys};
use ports::retry::with_backoff;
use zeroize::Zeroizing;

/// Keys in KMS, in the primary region and the replica regions.
#[derive(Debug, Clone)]
pub struct KmsKeys {
    primary: Client,
    others: Vec<Client>,
    alias_prefix: String,
    pending_days: i32,
}

fn region(c: &Client) -> String {
    c.config()
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string())
}

impl KmsKeys {
    /// Keys reached with `primary`; `others` are the replica regions' clients.
    pub fn new(
        primary: Client,
        others: Vec<Client>,
        alias_prefix: &str,
        pending_days: u32,
    ) -> Self {
        Self {
            primary,
            others,
            alias_prefix: alias_prefix.to_owned(),
            pending_days: pending_days as i32,
        }
    }

    fn alias(&self, tenant: &TenantId) -> String {
        format!("{}{tenant}", self.alias_prefix)
    }

    /// The key's ARN and state in one region, `None` when there is no key.
    async fn describe(
        &self,
        c: &Client,
        tenant: &TenantId,
    ) -> Result<Option<(String, KmsState, Option<String>)>, StoreError> {
        match c.describe_key().key_id(self.alias(tenant)).send().await {
            Ok(out) => {
                let md = out
                    .key_metadata()
                    .ok_or_else(|| StoreError::Unavailable("DescribeKey: no metadata".into()))?;
                let deletion = md.deletion_date().map(|d| d.to_string());
                Ok(Some((
                    md.arn().unwrap_or_default().to_owned(),
                    md.key_state().cloned().unwrap_or(KmsState::Enabled),
                    deletion,
                )))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("DescribeKey", e)),
        }
    }

    fn destroyed_err(tenant: &TenantId, state: &KmsState) -> StoreError {
        StoreError::KeyDestroyed {
            tenant: tenant.to_string(),
            detail: format!("KMS key is {}", state.as_str()),
        }
    }

    fn context(tenant: &TenantId) -> (String, String) {
        ("tenant_id".to_owned(), tenant.to_string())
    }
}

fn usable(s: &KmsState) -> bool {
    matches!(s, KmsState::Enabled)
}

#[async_trait]
impl TenantKeys for KmsKeys {
    async fn data_key(&self, tenant: &TenantId) -> Result<DataKey, StoreError> {
        let arn = match self.describe(&self.primary, tenant).await? {
            Some((arn, s, _)) if usable(&s) => arn,
            Some((_, s, _)) => return Err(Self::destroyed_err(tenant, &s)),
            None => {
                let made = with_backoff(|| async {
                    self.primary
                        .create_key()
                        .description(format!("tenant-lifecycle backup key of {tenant}"))
                        .tags(
                            aws_sdk_kms::types::Tag::builder()
                                .tag_key("tenant_id")
                                .tag_value(tenant.as_str())
                                .build()
                                .map_err(|e| StoreError::Config(e.to_string()))?,
                        )
                        .send()
                        .await
                        .map_err(|e| sdk_error("CreateKey", e))
                })
                .await?;
                let id = made
                    .key_metadata()
                    .map(|m| m.key_id().to_owned())
                    .unwrap_or_default();
                match self
                    .primary
                    .create_alias()
                    .alias_name(self.alias(tenant))
                    .target_key_id(&id)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    // Another process made the tenant's key first: use that one.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) =>
                    {
                        let _ = self
                            .primary
                            .schedule_key_deletion()
                            .key_id(&id)
                            .pending_window_in_days(7)
                            .send()
                            .await;
                    }
                    Err(e) => return Err(sdk_error("CreateAlias", e)),
                }
                match self.describe(&self.primary, tenant).await? {
                    Some((arn, s, _)) if usable(&s) => arn,
                    Some((_, s, _)) => return Err(Self::destroyed_err(tenant, &s)),
                    None => {
                        return Err(StoreError::Unavailable(
                            "the tenant's new KMS key has no alias".into(),
                        ));
                    }
                }
            }
        };
        let (k, v) = Self::context(tenant);
        let out = with_backoff(|| async {
            self.primary
                .generate_data_key()
                .key_id(&arn)
                .key_spec(DataKeySpec::Aes256)
                .encryption_context(k.clone(), v.clone())
                .send()
                .await
                .map_err(|e| sdk_error("GenerateDataKey", e))
        })
        .await?;
        let plain = out
            .plaintext()
            .ok_or_else(|| StoreError::Unavailable("GenerateDataKey: no plaintext".into()))?;
        if plain.as_ref().len() != 32 {
            return Err(StoreError::Unavailable(
                "GenerateDataKey: not a 256-bit key".into(),
            ));
        }
        let mut plaintext = Zeroizing::new([0u8; 32]);
        plaintext.copy_from_slice(plain.as_ref());
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        Ok(DataKey {
            plaintext,
            wrapped,
            key_ref: arn,
        })
    }

    async fn unwrap(
        &self,
        tenant: &TenantId,
        key_ref: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let (k, v) = Self::context(tenant);
        let res = self
            .primary
            .decrypt()
            .key_id(key_ref)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .encryption_context(k, v)
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_disabled_exception()
                        || s.is_kms_invalid_state_exception()
                        || s.is_not_found_exception()
                }) =>
            {
                return Err(StoreError::KeyDestroyed {
                    tenant: tenant.to_string(),
                    detail: format!("KMS key {key_ref} no longer decrypts"),
                });
            }
            Err(e) => return Err(sdk_error("Decrypt", e)),
        };
        let plain = out
            .plaintext()
            .ok_or_else(|| StoreError::Unavailable("Decrypt: no plaintext".into()))?;
        if plain.as_ref().len() != 32 {
            return Err(StoreError::Corrupt(
                "a wrapped data key is not 256 bits".into(),
            ));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(plain.as_ref());
        Ok(key)
    }

    async fn destroy(&self, tenant: &TenantId) -> Result<Vec<Window>, StoreError> {
        let mut out = Vec::new();
        for c in std::iter::once(&self.primary).chain(self.others.iter()) {
            let Some((arn, state, deletion)) = self.describe(c, tenant).await? else {
                continue;
            };
            let now = ports::rfc3339(time::OffsetDateTime::now_utc());
            let deletion = if state == KmsState::PendingDeletion {
                deletion.unwrap_or_default()
            } else {
                // The bare key id: every KMS (and moto) takes it for these two calls.
                let id = arn.rsplit('/').next().unwrap_or(&arn).to_owned();
                if usable(&state) {
                    c.disable_key()
                        .key_id(&id)
                        .send()
                        .await
                        .map_err(|e| sdk_error("DisableKey", e))?;
                }
                let s = c
                    .schedule_key_deletion()
                    .key_id(&id)
                    .pending_window_in_days(self.pending_days)
                    .send()
                    .await
                    .map_err(|e| sdk_error("ScheduleKeyDeletion", e))?;
                s.deletion_date().map(|d| d.to_string()).unwrap_or_else(|| {
                    ports::rfc3339(
                        time::OffsetDateTime::now_utc()
                            + time::Duration::days(i64::from(self.pending_days)),
                    )
                })
            };
            out.push(Window {
                what: format!("backup key {arn}"),
                region: region(c),
                closed_at: now,
                gone_by: deletion,
            });
        }
        Ok(out)
    }

    async fn state(&self, tenant: &TenantId) -> Result<KeyState, StoreError> {
        Ok(match self.describe(&self.primary, tenant).await? {
            None => KeyState::Absent,
            Some((_, s, _)) if usable(&s) => KeyState::Active,
            Some((arn, _, deletion)) => KeyState::Destroyed(vec![Window {
                what: format!("backup key {arn}"),
                region: region(&self.primary),
                closed_at: String::new(),
                gone_by: deletion.unwrap_or_default(),
            }]),
        })
    }
}
