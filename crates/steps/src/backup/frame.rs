//! The plaintext of a chunk: records framed in a length-prefixed binary form (keys and
//! bodies are arbitrary bytes, so no text format would do), zstd-compressed.

use ports::migrate::Rec;
use std::io::Read;

const MAGIC: &[u8; 4] = b"TLBF";
const VERSION: u8 = 1;
/// The most bytes one chunk may expand to: a bound on what a hostile chunk can cost.
pub const MAX_PLAIN: u64 = 1 << 30;

/// Why a chunk's plaintext could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes do not decompress or do not frame records.
    #[error("chunk plaintext is malformed: {0}")]
    Malformed(String),
}

/// Frames and compresses records (zstd level 3: the fast default).
pub fn encode(recs: &[Rec]) -> Result<Vec<u8>, FrameError> {
    let mut raw = Vec::with_capacity(
        64 + recs
            .iter()
            .map(|r| r.key.len() + r.body.as_ref().map_or(0, Vec::len) + 20)
            .sum::<usize>(),
    );
    raw.extend_from_slice(MAGIC);
    raw.push(VERSION);
    raw.extend_from_slice(
        &u32::try_from(recs.len())
            .map_err(|_| FrameError::Malformed("too many records".into()))?
            .to_be_bytes(),
    );
    for r in recs {
        let klen =
            u32::try_from(r.key.len()).map_err(|_| FrameError::Malformed("key too long".into()))?;
        raw.extend_from_slice(&klen.to_be_bytes());
        raw.extend_from_slice(r.key.as_bytes());
        raw.extend_from_slice(&r.rev.to_be_bytes());
        match &r.body {
            None => raw.push(0),
            Some(b) => {
                raw.push(1);
                let blen = u32::try_from(b.len())
                    .map_err(|_| FrameError::Malformed("body too long".into()))?;
                raw.extend_from_slice(&blen.to_be_bytes());
                raw.extend_from_slice(b);
            }
        }
    }
    zstd::bulk::compress(&raw, 3).map_err(|e| FrameError::Malformed(format!("zstd: {e}")))
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.b.len() < n {
            return Err(FrameError::Malformed("truncated".into()));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
}

/// Decompresses (at most [`MAX_PLAIN`] bytes) and unframes a chunk's records.
pub fn decode(compressed: &[u8]) -> Result<Vec<Rec>, FrameError> {
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(compressed)
        .map_err(|e| FrameError::Malformed(format!("zstd: {e}")))?
        .take(MAX_PLAIN + 1)
        .read_to_end(&mut raw)
        .map_err(|e| FrameError::Malformed(format!("zstd: {e}")))?;
    if raw.len() as u64 > MAX_PLAIN {
        return Err(FrameError::Malformed(format!(
            "expands past {MAX_PLAIN} bytes"
        )));
    }
    let mut c = Cursor { b: &raw };
    if c.take(4)? != MAGIC || c.take(1)? != [VERSION] {
        return Err(FrameError::Malformed(
            "not a record frame of version 1".into(),
        ));
    }
    let n = c.u32()? as usize;
    // Each record takes at least 13 bytes, so a forged count cannot reserve much.
    let mut out = Vec::with_capacity(n.min(c.b.len() / 13));
    for _ in 0..n {
        let klen = c.u32()? as usize;
        let key = std::str::from_utf8(c.take(klen)?)
            .map_err(|_| FrameError::Malformed("a key is not UTF-8".into()))?
            .to_owned();
        let rev = c.u64()?;
        let body = match c.take(1)?[0] {
            0 => None,
            1 => {
                let blen = c.u32()? as usize;
                Some(c.take(blen)?.to_vec())
            }
            t => return Err(FrameError::Malformed(format!("record tag {t}"))),
        };
        out.push(Rec { key, rev, body });
    }
    if !c.b.is_empty() {
        return Err(FrameError::Malformed("bytes after the last record".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_bit_for_bit_and_garbage_is_refused() {
        let recs = vec![
            Rec {
                key: "a/../b".into(),
                rev: 7,
                body: Some(vec![0, 255, 10, 13]),
            },
            Rec {
                key: "ключ".into(),
                rev: 0,
                body: Some(Vec::new()),
            },
            Rec {
                key: "gone".into(),
                rev: u64::MAX,
                body: None,
            },
        ];
        let z = encode(&recs).expect("encode");
        assert_eq!(decode(&z).expect("decode"), recs);
        assert_eq!(decode(&encode(&[]).expect("empty")).expect("empty"), vec![]);
        assert!(decode(b"not zstd").is_err());
        let mut raw = zstd::bulk::decompress(&z, 1 << 20).expect("raw");
        raw.push(0);
        assert!(decode(&zstd::bulk::compress(&raw, 1).expect("z")).is_err());
        raw.truncate(raw.len() - 3);
        assert!(decode(&zstd::bulk::compress(&raw, 1).expect("z")).is_err());
    }
}
