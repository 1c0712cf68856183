//! AWS KMS: the certificate signer (an asymmetric ECC_NIST_P256 key, ECDSA_SHA_256) and
//! tenants' backup keys ([`KmsKeys`]).

mod keys;
pub use keys::KmsKeys;

use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use lifecycle::certificate::{local_key_id, public_key_from_der};
use p256::ecdsa::VerifyingKey;
use ports::retry::with_backoff;
use ports::{Signer, StoreError};
use sha2::{Digest, Sha256};

/// KMS signs a RAW message of at most this many bytes; longer ones are sent as a digest.
const MAX_RAW: usize = 4096;

/// Signs with a KMS key; its public key is fetched once at start.
#[derive(Debug, Clone)]
pub struct KmsSigner {
    client: Client,
    kms_key: String,
    public: VerifyingKey,
    key_id: String,
}

impl KmsSigner {
    /// Connects to the KMS key `kms_key` (id, ARN or alias) and reads its public key.
    pub async fn connect(client: Client, kms_key: &str) -> Result<Self, StoreError> {
        let out = with_backoff(|| async {
            client
                .get_public_key()
                .key_id(kms_key)
                .send()
                .await
                .map_err(|e| sdk_error("GetPublicKey", e))
        })
        .await?;
        let der = out.public_key().ok_or_else(|| {
            StoreError::Config(format!("KMS key {kms_key} returned no public key"))
        })?;
        let public = public_key_from_der(der.as_ref()).map_err(|e| {
            StoreError::Config(format!(
                "KMS key {kms_key} is not an ECC_NIST_P256 key: {e}"
            ))
        })?;
        let key_id = local_key_id(&public).map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Self {
            client,
            kms_key: kms_key.to_owned(),
            public,
            key_id,
        })
    }
}

#[async_trait]
impl Signer for KmsSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn public_key(&self) -> &VerifyingKey {
        &self.public
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StoreError> {
        // RAW up to 4 KiB (KMS hashes it); beyond that, our own SHA-256 as a DIGEST, which
        // yields the same signature over the same message.
        let (payload, kind) = if message.len() <= MAX_RAW {
            (message.to_vec(), MessageType::Raw)
        } else {
            (Sha256::digest(message).to_vec(), MessageType::Digest)
        };
        let out = with_backoff(|| async {
            self.client
                .sign()
                .key_id(&self.kms_key)
                .message(Blob::new(payload.clone()))
                .message_type(kind.clone())
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send()
                .await
                .map_err(|e| sdk_error("Sign", e))
        })
        .await?;
        out.signature
            .map(|b| b.into_inner())
            .ok_or_else(|| StoreError::Unavailable("KMS Sign returned no signature".into()))
    }
}
