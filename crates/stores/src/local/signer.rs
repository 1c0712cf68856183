use super::{World, db_err};
use crate::{Signer, StoreError};
use async_trait::async_trait;
use lifecycle::certificate::local_key_id;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rusqlite::{OptionalExtension, params};

/// A P-256 key kept as PKCS#8 PEM in the embedded world, made on first use.
#[derive(Clone)]
pub struct LocalSigner {
    key: SigningKey,
    public: VerifyingKey,
    key_id: String,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl LocalSigner {
    /// Loads the world's signing key, creating it if the world has none.
    pub fn load_or_create(world: &World, now: &str) -> Result<Self, StoreError> {
        let conn = world.conn();
        let pem: Option<String> = conn
            .query_row(
                "SELECT pkcs8_pem FROM signing_keys ORDER BY created_at LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err("signing key", e))?;
        let key = match pem {
            Some(pem) => SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| StoreError::Corrupt(format!("stored signing key: {e}")))?,
            None => {
                let key = SigningKey::random(&mut rand_core::OsRng);
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| StoreError::Corrupt(format!("encode key: {e}")))?;
                let id = local_key_id(key.verifying_key())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                conn.execute(
                    "INSERT INTO signing_keys (key_id, pkcs8_pem, created_at) VALUES (?1, ?2, ?3)",
                    params![id, pem.as_str(), now],
                )
                .map_err(|e| db_err("signing key", e))?;
                key
            }
        };
        Self::from_key(key)
    }

    /// Wraps an existing key.
    pub fn from_key(key: SigningKey) -> Result<Self, StoreError> {
        let public = *key.verifying_key();
        let key_id = local_key_id(&public).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Self {
            key,
            public,
            key_id,
        })
    }
}

#[async_trait]
impl Signer for LocalSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn public_key(&self) -> &VerifyingKey {
        &self.public
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StoreError> {
        let sig: Signature = self.key.sign(message);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}
