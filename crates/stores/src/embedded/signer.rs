use super::{World, db_err};
use async_trait::async_trait;
use lifecycle::certificate::local_key_id;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use ports::{Signer, StoreError};
use rusqlite::{OptionalExtension, params};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Environment variable naming the local signing key's file.
pub const ENV_KEY_FILE: &str = "TENANT_SIGNING_KEY_FILE";

/// The largest key file read.
const MAX_KEY_BYTES: u64 = 16 * 1024;

/// A P-256 key kept as PKCS#8 PEM in its own file (mode 0600), never inside the data it
/// signs: whoever can read the world cannot forge with it.
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

/// Where the key of `world` lives: `TENANT_SIGNING_KEY_FILE`, else `signing-key.pem`
/// beside the world file.
pub fn key_file_for(world: &Path) -> PathBuf {
    match std::env::var_os(ENV_KEY_FILE) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => world
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("signing-key.pem"),
    }
}

fn read_key(path: &Path) -> Result<SigningKey, StoreError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| {
        StoreError::Config(format!("cannot read signing key {}: {e}", path.display()))
    })?;
    let mut pem = String::new();
    f.take(MAX_KEY_BYTES)
        .read_to_string(&mut pem)
        .map_err(|e| {
            StoreError::Config(format!("cannot read signing key {}: {e}", path.display()))
        })?;
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| {
        StoreError::Corrupt(format!("{} is not a P-256 PKCS#8 key: {e}", path.display()))
    })
}

/// Writes `pem` to `path` only if nothing is there, atomically: a temporary file (0600)
/// in the same directory, then a hard link that fails if the name exists. Two processes
/// creating a key at once both end up reading the one that won.
fn create_no_clobber(path: &Path, pem: &str) -> Result<bool, StoreError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
    let mut tmp = private_tempfile(dir)
        .map_err(|e| StoreError::Config(format!("cannot write a key in {}: {e}", dir.display())))?;
    tmp.write_all(pem.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| StoreError::Config(format!("cannot write a key in {}: {e}", dir.display())))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StoreError::Config(format!(
            "cannot create signing key {}: {}",
            path.display(),
            e.error
        ))),
    }
}

/// A temporary file readable by its owner only.
fn private_tempfile(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(".signing-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        b.permissions(std::fs::Permissions::from_mode(0o600));
    }
    b.tempfile_in(dir)
}

impl LocalSigner {
    /// Loads the world's signing key, creating it atomically if there is none. A key an
    /// older version kept inside the world file is moved out to the key file first.
    pub fn load_or_create(world: &World, _now: &str) -> Result<Self, StoreError> {
        let path = key_file_for(world.path());
        if !path.exists() {
            let pem = match legacy_key(world)? {
                Some(pem) => pem,
                None => SigningKey::random(&mut rand_core::OsRng)
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| StoreError::Corrupt(format!("encode key: {e}")))?
                    .to_string(),
            };
            create_no_clobber(&path, &pem)?;
        }
        let key = read_key(&path)?;
        // The private key has left the data file for good.
        world
            .conn()
            .execute("DELETE FROM signing_keys", [])
            .map_err(|e| db_err("signing key", e))?;
        Self::from_key(key)
    }

    /// Loads an existing key file; never creates one (read-only commands use this).
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Config(format!(
                "no signing key at {}: nothing was signed in this world yet",
                path.display()
            )));
        }
        Self::from_key(read_key(path)?)
    }

    /// Replaces the key file with a new key, keeping the old one as
    /// `<file>.<old key id>.retired` (0600) for the record. Returns the new signer.
    pub fn rotate(path: &Path) -> Result<(Self, Self), StoreError> {
        let old = Self::load(path)?;
        let retired = path.with_extension(format!("{}.retired", old.key_id.replace(':', "-")));
        std::fs::copy(path, &retired).map_err(|e| {
            StoreError::Config(format!(
                "cannot keep the old key as {}: {e}",
                retired.display()
            ))
        })?;
        let key = SigningKey::random(&mut rand_core::OsRng);
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| StoreError::Corrupt(format!("encode key: {e}")))?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut tmp = private_tempfile(dir).map_err(|e| {
            StoreError::Config(format!("cannot write a key in {}: {e}", dir.display()))
        })?;
        tmp.write_all(pem.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| StoreError::Config(format!("cannot write a key: {e}")))?;
        tmp.persist(path).map_err(|e| {
            StoreError::Config(format!("cannot replace {}: {}", path.display(), e.error))
        })?;
        Ok((old, Self::from_key(key)?))
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

/// The key an older version stored in the world itself (the oldest row), if any.
fn legacy_key(world: &World) -> Result<Option<String>, StoreError> {
    world
        .conn()
        .query_row(
            "SELECT pkcs8_pem FROM signing_keys ORDER BY rowid LIMIT 1",
            params![],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| db_err("signing key", e))
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
