//! Sealing at rest: XChaCha20-Poly1305 with a random 192-bit nonce (safe to draw at
//! random), `nonce || ciphertext`, and associated data that says what the sealed bytes
//! are and where they belong. Root keys, secrets keys, data keys and secret values all go
//! through here, each with its own purpose label, so none can stand in for another.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Length of the nonce in front of every sealed value.
pub const NONCE_LEN: usize = 24;

/// Why sealing or opening failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No randomness for the nonce.
    #[error("no randomness from the operating system")]
    Random,
    /// The bytes do not open with this key and associated data: another key, tampered,
    /// or moved from where they were sealed.
    #[error("does not open: wrong key, tampered, or moved from where it was sealed")]
    Open,
}

/// Associated data: the purpose label, then each field with its length, so that no
/// two different field lists give the same bytes.
pub fn aad(purpose: &str, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(purpose.as_bytes());
    out.push(0);
    for f in fields {
        out.extend_from_slice(&u32::try_from(f.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// `nonce || XChaCha20-Poly1305(key, plaintext, aad)`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SealError::Open)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal`] made with the same key and associated data.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() <= NONCE_LEN {
        return Err(SealError::Open);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Open)?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(&nonce, Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open)
}

/// Opens a sealed 32-byte key.
pub fn open_key(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let plain = open(key, aad, sealed)?;
    let out: [u8; 32] = plain.as_slice().try_into().map_err(|_| SealError::Open)?;
    Ok(Zeroizing::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_where_they_were_sealed() {
        let key = [7u8; 32];
        let here = aad("purpose", &[b"acme", b"web"]);
        let s = seal(&key, &here, b"value").unwrap();
        assert_eq!(&*open(&key, &here, &s).unwrap(), b"value");
        assert_eq!(open(&[8; 32], &here, &s), Err(SealError::Open));
        for elsewhere in [
            aad("purpose", &[b"acme", b"api"]),
            aad("other", &[b"acme", b"web"]),
            aad("purpose", &[b"acmew", b"eb"]),
        ] {
            assert_eq!(open(&key, &elsewhere, &s), Err(SealError::Open));
        }
        let mut bad = s.clone();
        bad[30] ^= 1;
        assert_eq!(open(&key, &here, &bad), Err(SealError::Open));
        assert_ne!(seal(&key, &here, b"value").unwrap(), s, "fresh nonces");
    }
}
