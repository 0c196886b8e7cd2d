//! The cryptographic steps of the macaroon chain, exactly as libmacaroons does them.

use hmac::{Hmac, KeyInit, Mac};
use poly1305::Poly1305;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Length of a signature, of a root key and of a third-party caveat key.
pub const KEY_LEN: usize = 32;
/// Length of the nonce that seals a verification id.
pub const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Length of a libmacaroons verification id: nonce, Poly1305 tag, sealed 32-byte key.
pub const VID_LEN: usize = NONCE_LEN + TAG_LEN + KEY_LEN;

type HmacSha256 = Hmac<Sha256>;

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// `HMAC-SHA256(key, data)`: one step of the chain.
#[inline]
pub fn hmac(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; KEY_LEN] {
    let mut mac = keyed(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// libmacaroons' `hash2`: `HMAC(key, HMAC(key, a) || HMAC(key, b))`.
pub fn hash2(key: &[u8; KEY_LEN], a: &[u8], b: &[u8]) -> [u8; KEY_LEN] {
    let mut both = Zeroizing::new([0u8; 2 * KEY_LEN]);
    both[..KEY_LEN].copy_from_slice(&hmac(key, a));
    both[KEY_LEN..].copy_from_slice(&hmac(key, b));
    hmac(key, &*both)
}

/// Binds a discharge's signature to the permission token's signature.
pub fn bind(root_sig: &[u8; KEY_LEN], discharge_sig: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    hash2(&[0u8; KEY_LEN], root_sig, discharge_sig)
}

/// libmacaroons' key generator: turns a secret of any length into a root key.
pub fn derive_key(secret: &[u8]) -> [u8; KEY_LEN] {
    let mut mac = keyed(b"macaroons-key-generator");
    mac.update(secret);
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two signatures.
#[inline]
pub fn sig_eq(a: &[u8; KEY_LEN], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Keystream for the NaCl secretbox: the first 32 bytes of block 0 are the
/// Poly1305 key, the message is encrypted from byte 32 on.
fn secretbox_start(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN]) -> (XSalsa20, Poly1305) {
    let mut cipher = XSalsa20::new(key.into(), nonce.into());
    let mut mac_key = Zeroizing::new([0u8; KEY_LEN]);
    cipher.apply_keystream(&mut *mac_key);
    let mac = Poly1305::new((&*mac_key).into());
    (cipher, mac)
}

/// Seals a third-party caveat key under the current signature:
/// `nonce || XSalsa20-Poly1305(key = sig, nonce, caveat_key)` in NaCl's layout (tag first).
pub fn seal_vid(
    sig: &[u8; KEY_LEN],
    caveat_key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
) -> [u8; VID_LEN] {
    let (mut cipher, mac) = secretbox_start(sig, nonce);
    let mut vid = [0u8; VID_LEN];
    vid[..NONCE_LEN].copy_from_slice(nonce);
    let body = &mut vid[NONCE_LEN + TAG_LEN..];
    body.copy_from_slice(caveat_key);
    cipher.apply_keystream(body);
    let tag = mac.compute_unpadded(body);
    vid[NONCE_LEN..NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
    vid
}

/// Opens a verification id sealed by [`seal_vid`]; `None` if it is not authentic.
pub fn open_vid(sig: &[u8; KEY_LEN], vid: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    if vid.len() != VID_LEN {
        return None;
    }
    let (nonce, rest) = vid.split_at(NONCE_LEN);
    let (tag, body) = rest.split_at(TAG_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().ok()?;
    let (mut cipher, mac) = secretbox_start(sig, nonce);
    let expected = mac.compute_unpadded(body);
    if !bool::from(expected.as_slice().ct_eq(tag)) {
        return None;
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(body);
    cipher.apply_keystream(&mut *key);
    Some(key)
}

/// Fills a buffer from the operating system's random source.
pub fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    if let Err(e) = getrandom::fill(&mut out) {
        out.zeroize();
        return Err(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vid_round_trip_and_tamper() {
        let sig = [7u8; 32];
        let key = [9u8; 32];
        let vid = seal_vid(&sig, &key, &[1u8; 24]);
        assert_eq!(open_vid(&sig, &vid).as_deref(), Some(&key));
        for i in 0..VID_LEN {
            let mut bad = vid;
            bad[i] ^= 1;
            assert!(open_vid(&sig, &bad).is_none(), "byte {i}");
        }
        assert!(open_vid(&[8u8; 32], &vid).is_none());
        assert!(open_vid(&sig, &vid[..71]).is_none());
    }
}
