//! Tenants' key-encryption keys in the embedded world: 32 random bytes per tenant that
//! wrap each backup's data key (AES-256-GCM). Destroying one overwrites it in place
//! (`secure_delete`) and truncates the write-ahead log, so no page keeps the old bytes.

use super::{World, db_err};
use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use lifecycle::TenantId;
use lifecycle::erasure::Window;
use ports::StoreError;
use ports::backup::{DataKey, KeyState, TenantKeys};
use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

/// Keys kept in the world's `tenant_keys` table.
#[derive(Debug, Clone)]
pub struct LocalKeys {
    world: World,
}

fn key_ref(tenant: &TenantId) -> String {
    format!("local:{tenant}")
}

/// What the certificate states of a destroyed local key: unreadable and gone at once.
fn destroyed_window(tenant: &TenantId, at: String) -> Window {
    Window {
        what: format!("backup key {}", key_ref(tenant)),
        region: "local".into(),
        closed_at: at.clone(),
        gone_by: at,
    }
}

fn aad(tenant: &TenantId) -> Vec<u8> {
    format!("tenant-key/v1\0{tenant}").into_bytes()
}

fn cipher(k: &[u8]) -> Result<LessSafeKey, StoreError> {
    UnboundKey::new(&AES_256_GCM, k)
        .map(LessSafeKey::new)
        .map_err(|e| StoreError::Unavailable(format!("key cipher: {e}")))
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, StoreError> {
    let mut b = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(&mut b[..])
        .map_err(|e| StoreError::Unavailable(format!("random: {e}")))?;
    Ok(b)
}

/// What the table holds for a tenant: its key, or when it was destroyed.
enum Row {
    Active(Zeroizing<Vec<u8>>),
    Destroyed(String),
}

impl LocalKeys {
    /// Keys in `world`.
    pub fn new(world: World) -> Self {
        Self { world }
    }

    fn row(&self, tenant: &TenantId) -> Result<Option<Row>, StoreError> {
        self.world
            .conn()
            .query_row(
                "SELECT kek, destroyed_at FROM tenant_keys WHERE tenant = ?1",
                [tenant.as_str()],
                |r| {
                    Ok((
                        r.get::<_, Option<Vec<u8>>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| db_err("keys", e))
            .map(|o| {
                o.map(|(k, d)| match (k, d) {
                    (_, Some(at)) => Row::Destroyed(at),
                    (Some(k), None) => Row::Active(Zeroizing::new(k)),
                    (None, None) => Row::Destroyed(String::new()),
                })
            })
    }

    fn destroyed(tenant: &TenantId, at: &str) -> StoreError {
        StoreError::KeyDestroyed {
            tenant: tenant.to_string(),
            detail: format!("local key destroyed at {at}"),
        }
    }
}

#[async_trait]
impl TenantKeys for LocalKeys {
    async fn data_key(&self, tenant: &TenantId) -> Result<DataKey, StoreError> {
        let kek = match self.row(tenant)? {
            Some(Row::Active(k)) => k,
            Some(Row::Destroyed(at)) => return Err(Self::destroyed(tenant, &at)),
            None => {
                let k = random::<32>()?;
                // Two processes may race to make the key: the first one wins, both use it.
                self.world
                    .conn()
                    .execute(
                        "INSERT OR IGNORE INTO tenant_keys (tenant, kek, created_at) VALUES (?1, ?2, ?3)",
                        params![tenant.as_str(), &k[..], ports::rfc3339(time::OffsetDateTime::now_utc())],
                    )
                    .map_err(|e| db_err("keys", e))?;
                match self.row(tenant)? {
                    Some(Row::Active(k)) => k,
                    Some(Row::Destroyed(at)) => return Err(Self::destroyed(tenant, &at)),
                    None => return Err(StoreError::Unavailable("key row vanished".into())),
                }
            }
        };
        let plaintext = random::<32>()?;
        let nonce = random::<NONCE_LEN>()?;
        let mut buf = plaintext.to_vec();
        cipher(&kek)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad(tenant)),
                &mut buf,
            )
            .map_err(|e| StoreError::Unavailable(format!("wrap: {e}")))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&buf);
        Ok(DataKey {
            plaintext,
            wrapped,
            key_ref: key_ref(tenant),
        })
    }

    async fn unwrap(
        &self,
        tenant: &TenantId,
        key_ref_: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        if key_ref_ != key_ref(tenant) {
            return Err(StoreError::Corrupt(format!(
                "data key wrapped by {key_ref_}, not {}",
                key_ref(tenant)
            )));
        }
        let kek = match self.row(tenant)? {
            Some(Row::Active(k)) => k,
            Some(Row::Destroyed(at)) => return Err(Self::destroyed(tenant, &at)),
            None => return Err(StoreError::NotFound(format!("no key for tenant {tenant}"))),
        };
        if wrapped.len() != NONCE_LEN + 32 + 16 {
            return Err(StoreError::Corrupt(
                "wrapped data key has the wrong length".into(),
            ));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = Zeroizing::new(wrapped[NONCE_LEN..].to_vec());
        let plain = cipher(&kek)?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tenant)),
                &mut buf,
            )
            .map_err(|_| {
                StoreError::Corrupt("wrapped data key does not open under the tenant's key".into())
            })?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(plain);
        Ok(out)
    }

    async fn destroy(&self, tenant: &TenantId) -> Result<Vec<Window>, StoreError> {
        let now = ports::rfc3339(time::OffsetDateTime::now_utc());
        let at = match self.row(tenant)? {
            Some(Row::Destroyed(at)) => at,
            _ => {
                let conn = self.world.conn();
                conn.execute_batch("PRAGMA secure_delete = ON")
                    .map_err(|e| db_err("keys", e))?;
                conn.execute(
                    "INSERT INTO tenant_keys (tenant, kek, created_at, destroyed_at) VALUES (?1, NULL, ?2, ?2)
                     ON CONFLICT (tenant) DO UPDATE SET kek = NULL, destroyed_at = ?2",
                    params![tenant.as_str(), now],
                )
                .map_err(|e| db_err("keys", e))?;
                // The old page may still sit in the WAL: checkpoint it away.
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
                now
            }
        };
        Ok(vec![destroyed_window(tenant, at)])
    }

    async fn state(&self, tenant: &TenantId) -> Result<KeyState, StoreError> {
        Ok(match self.row(tenant)? {
            None => KeyState::Absent,
            Some(Row::Active(_)) => KeyState::Active,
            Some(Row::Destroyed(at)) => KeyState::Destroyed(vec![destroyed_window(tenant, at)]),
        })
    }
}
