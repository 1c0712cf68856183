//! Reading what users hand in: files are read with a size cap (`--request /dev/zero` stops
//! at the cap instead of filling memory) and JSON is parsed strictly (a key twice in one
//! object is refused, never silently last-wins).

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::Read as _;
use std::path::Path;

/// The largest request file read (the request itself is capped at 64 KiB when validated).
pub const MAX_REQUEST_BYTES: u64 = 256 * 1024;
/// The largest certificate or ledger-entry file read.
pub const MAX_CERTIFICATE_BYTES: u64 = 1024 * 1024;
/// The largest catalog file read.
pub const MAX_CATALOG_BYTES: u64 = 1024 * 1024;
/// The largest checkpoint or receipt file read.
pub const MAX_NOTE_BYTES: u64 = 1024 * 1024;

/// Reads at most `cap` bytes of `path`; more is an error naming the cap.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if buf.len() as u64 > cap {
        bail!(
            "{} is larger than {cap} bytes; refusing to read it",
            path.display()
        );
    }
    Ok(buf)
}

/// Reads a text file of at most `cap` bytes.
pub fn read_text(path: &Path, cap: u64) -> Result<String> {
    String::from_utf8(read_capped(path, cap)?)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// Reads a JSON file of at most `cap` bytes, refusing duplicate keys.
pub fn read_json_strict(path: &Path, cap: u64) -> Result<Value> {
    let bytes = read_capped(path, cap)?;
    lifecycle::json::parse_strict_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not acceptable JSON: {e}", path.display()))
}
