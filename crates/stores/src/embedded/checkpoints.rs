use async_trait::async_trait;
use ports::Contended;
use ports::check_chain_name;
use ports::{CheckpointStore, StoreError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Environment variable naming the local checkpoint directory.
pub const ENV_CHECKPOINT_DIR: &str = "TENANT_CHECKPOINT_DIR";

/// The largest checkpoint file read.
const MAX_NOTE_BYTES: u64 = 1 << 20;

/// Checkpoints as write-once files, `<dir>/<chain>/<size, 20 digits>.checkpoint`, made
/// read-only. The directory is the operator's to place: anywhere but inside the world.
#[derive(Debug, Clone)]
pub struct DirectoryCheckpoints {
    dir: PathBuf,
}

impl DirectoryCheckpoints {
    /// Checkpoints kept in `dir` (created on first publish).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn chain_dir(&self, chain: &str) -> Result<PathBuf, StoreError> {
        check_chain_name(chain)?;
        Ok(self.dir.join(chain))
    }
}

fn io(what: &str, p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", p.display()))
}

fn read_capped(p: &Path) -> Result<String, StoreError> {
    use std::io::Read as _;
    let f = std::fs::File::open(p).map_err(|e| io("cannot read", p, e))?;
    let mut s = String::new();
    f.take(MAX_NOTE_BYTES)
        .read_to_string(&mut s)
        .map_err(|e| io("cannot read", p, e))?;
    Ok(s)
}

#[async_trait]
impl CheckpointStore for DirectoryCheckpoints {
    async fn publish(&self, chain: &str, size: u64, note: &str) -> Result<String, StoreError> {
        let dir = self.chain_dir(chain)?;
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        let path = dir.join(format!("{size:020}.checkpoint"));
        let mut tmp = tempfile::Builder::new()
            .prefix(".checkpoint")
            .tempfile_in(&dir)
            .map_err(|e| io("cannot write in", &dir, e))?;
        tmp.write_all(note.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| io("cannot write in", &dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = tmp
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o444));
        }
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(path.display().to_string()),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                if read_capped(&path)? == note {
                    Ok(path.display().to_string())
                } else {
                    Err(StoreError::conflict(
                        Contended::Checkpoint {
                            chain: chain.to_owned(),
                            size,
                        },
                        format!("a different one is already published at {}", path.display()),
                    ))
                }
            }
            Err(e) => Err(io("cannot publish", &path, e.error)),
        }
    }

    async fn latest(&self, chain: &str) -> Result<Option<String>, StoreError> {
        let dir = self.chain_dir(chain)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot list", &dir, e)),
        };
        let mut best: Option<(u64, PathBuf)> = None;
        for e in entries {
            let e = e.map_err(|e| io("cannot list", &dir, e))?;
            let name = e.file_name();
            let Some(size) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".checkpoint"))
                .filter(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok())
            else {
                continue;
            };
            if best.as_ref().is_none_or(|(s, _)| size > *s) {
                best = Some((size, e.path()));
            }
        }
        best.map(|(_, p)| read_capped(&p)).transpose()
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("cannot list", &self.dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| io("cannot list", &self.dir, e))?;
            if let Some(n) = e.file_name().to_str()
                && check_chain_name(n).is_ok()
                && e.path().is_dir()
            {
                out.push(n.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }
}
