//! Sealing chunks: AES-256-GCM under the backup's data key, a random 96-bit nonce per
//! chunk, and the chunk's identity (tenant, backup, system, position) as associated
//! data, so a chunk cannot be swapped for another, moved, or altered by one bit.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Why a chunk could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Authentication failed: wrong key, wrong position, or a changed byte.
    #[error("the chunk does not authenticate (wrong key, moved, or altered)")]
    Unauthentic,
    /// The system's random source or cipher failed.
    #[error("cipher failure: {0}")]
    Cipher(String),
}

fn key(k: &[u8; 32]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, k)
        .map(LessSafeKey::new)
        .map_err(|e| SealError::Cipher(e.to_string()))
}

/// `nonce || ciphertext || tag`.
pub fn seal(k: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|e| SealError::Cipher(e.to_string()))?;
    let mut buf = plaintext.to_vec();
    key(k)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|e| SealError::Cipher(e.to_string()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens what [`seal`] made, or `Unauthentic`.
pub fn open(k: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(SealError::Unauthentic);
    }
    let (n, ct) = sealed.split_at(NONCE_LEN);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(n);
    let mut buf = ct.to_vec();
    let plain = key(k)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| SealError::Unauthentic)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_byte_wrong_key_or_wrong_position_fails() {
        let k = [7u8; 32];
        let s = seal(&k, b"pos-1", b"secret record").expect("seal");
        assert_eq!(open(&k, b"pos-1", &s).expect("open"), b"secret record");
        assert_ne!(
            seal(&k, b"pos-1", b"secret record").expect("seal"),
            s,
            "fresh nonce"
        );
        assert_eq!(open(&k, b"pos-2", &s), Err(SealError::Unauthentic));
        assert_eq!(open(&[8u8; 32], b"pos-1", &s), Err(SealError::Unauthentic));
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert_eq!(
                open(&k, b"pos-1", &t),
                Err(SealError::Unauthentic),
                "byte {i}"
            );
        }
        assert_eq!(open(&k, b"pos-1", &s[..10]), Err(SealError::Unauthentic));
        assert!(
            !s.windows(6).any(|w| w == b"secret"),
            "ciphertext hides the text"
        );
    }
}
