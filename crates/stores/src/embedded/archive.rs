//! A backup archive in a local directory: one file per object, written to a temporary
//! file and renamed into place so a reader never sees half an object.

use async_trait::async_trait;
use ports::backup::Archive;
use ports::{ErasePass, StoreError};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Objects under `root`, keys mapped to relative paths.
#[derive(Debug, Clone)]
pub struct DirectoryArchive {
    root: PathBuf,
}

fn io(op: &str, p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("backup archive {op} {}: {e}", p.display()))
}

impl DirectoryArchive {
    /// The archive rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where it is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a key; keys are made by the backup pipe, and anything that could
    /// leave the root (`..`, `.`, empty segments, backslashes) is refused.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let ok = !key.is_empty()
            && key.split('/').all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if !ok {
            return Err(StoreError::Config(format!(
                "backup archive key {key:?} is not a safe path"
            )));
        }
        Ok(self.root.join(key))
    }

    fn files(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("list", &dir, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| io("list", &dir, e))?;
                let p = ent.path();
                let rel = p
                    .strip_prefix(&self.root)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?
                    .to_string_lossy()
                    .replace('\\', "/");
                let ft = ent.file_type().map_err(|e| io("list", &p, e))?;
                if ft.is_dir() {
                    // Only descend where the prefix can still match.
                    let d = format!("{rel}/");
                    if d.starts_with(prefix) || prefix.starts_with(&d) {
                        stack.push(p);
                    }
                } else if rel.starts_with(prefix) && !rel.ends_with(".tmp") {
                    out.push(rel);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl Archive for DirectoryArchive {
    fn region(&self) -> &str {
        "local"
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("mkdir", dir, e))?;
        }
        // One temporary file per write, not per process: two threads writing one key
        // would otherwise rename each other's file away.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{}.{n}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("delete", &path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.files(prefix)
    }

    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        Ok(self.files(prefix)?.len() as u64)
    }

    async fn delete_prefix(
        &self,
        prefix: &str,
        _deadline: Instant,
    ) -> Result<ErasePass, StoreError> {
        ports::backup::check_prefix(prefix)?;
        let files = self.files(prefix)?;
        let mut erased = 0;
        for f in &files {
            let p = self.path(f)?;
            match std::fs::remove_file(&p) {
                Ok(()) => erased += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("delete", &p, e)),
            }
        }
        // Empty directories left behind name the tenant: remove them too.
        let dir = self.root.join(prefix.trim_end_matches('/'));
        if prefix.ends_with('/') && dir.starts_with(&self.root) {
            let mut d = Some(dir.as_path());
            while let Some(cur) = d.filter(|c| *c != self.root) {
                if std::fs::remove_dir_all(cur).is_err() && std::fs::remove_dir(cur).is_err() {
                    break;
                }
                d = cur.parent();
                if d.is_some_and(|p| {
                    std::fs::read_dir(p)
                        .map(|mut r| r.next().is_some())
                        .unwrap_or(true)
                }) {
                    break;
                }
            }
        }
        Ok(ErasePass {
            erased,
            complete: self.files(prefix)?.is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn puts_of_one_key_from_two_threads_at_once_all_land() {
        let dir = tempfile::tempdir().expect("dir");
        let a = Arc::new(DirectoryArchive::new(dir.path()));
        for round in 0..50 {
            let key = format!("tenants/t/k{round}.json");
            let put = |body: &'static [u8]| {
                let (a, key) = (a.clone(), key.clone());
                tokio::spawn(async move { a.put(&key, body.to_vec()).await })
            };
            let (x, y) = (put(b"one"), put(b"two"));
            x.await.expect("task").expect("first put");
            y.await.expect("task").expect("second put");
            let got = a.get(&key).await.expect("get").expect("there");
            assert!(got == b"one" || got == b"two", "{got:?}");
        }
        assert_eq!(
            a.list("tenants/t/").await.expect("list").len(),
            50,
            "no temporary file is left or listed"
        );
    }
}
