//! Sealed page cursors.
//!
//! A cursor holds the exact key of the last row returned; the next page starts right after it
//! (or right before it, in reverse), so no row is skipped or repeated however keys look. Cursors
//! go to untrusted clients (URLs, API responses), so the key is sealed with AES-256-GCM-SIV
//! (RFC 8452): encrypted (the indexed values of the row cannot be read from it) and
//! authenticated, bound to its query's key range and direction as associated data (a cursor
//! from another query, another direction or another database, or with any character altered,
//! is refused). The form is URL-safe base64 without padding: version byte, 12-byte nonce, sealed
//! key, 16-byte tag.
//!
//! The sealing key is [`CursorKeys`]: a random key the database creates once and stores, or
//! secrets the application supplies (services sharing a cluster), with earlier secrets still
//! accepted so a rotation keeps recent cursors valid.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm_siv::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Key, Nonce};

use crate::error::{Result, TitoError};

const CURSOR_V3: u8 = 3;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The keys cursors are sealed and opened with: the first seals, any of them opens.
#[derive(Clone)]
pub struct CursorKeys {
    ciphers: Vec<Aes256GcmSiv>,
}

impl std::fmt::Debug for CursorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CursorKeys({} keys)", self.ciphers.len())
    }
}

impl CursorKeys {
    /// Seals with `current`; also opens cursors sealed with any of `previous`.
    pub fn new(current: [u8; 32], previous: &[[u8; 32]]) -> Self {
        let cipher = |secret: &[u8; 32]| Aes256GcmSiv::new(&Key::<Aes256GcmSiv>::from(*secret));
        CursorKeys {
            ciphers: std::iter::once(&current)
                .chain(previous)
                .map(cipher)
                .collect(),
        }
    }

    /// A fresh random secret.
    pub fn random_secret() -> [u8; 32] {
        Key::<Aes256GcmSiv>::generate().into()
    }

    /// A cursor continuing after `last_key` for the query whose binding is `query`.
    pub(crate) fn seal(&self, query: &[u8], reverse: bool, last_key: &[u8]) -> String {
        let nonce = next_nonce();
        let aad = associated(query, reverse);
        let payload = Payload {
            msg: last_key,
            aad: &aad,
        };
        // Encryption fails only past the cipher's message limit (64 GiB), far above any key.
        let sealed = self.ciphers[0].encrypt(&nonce, payload).unwrap_or_default();
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        bytes.push(CURSOR_V3);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        base64::encode(&bytes)
    }

    /// The last key of the previous page, from a cursor of the query whose binding is `query`
    /// run in direction `reverse`.
    pub(crate) fn open(&self, cursor: &str, query: &[u8], reverse: bool) -> Result<Vec<u8>> {
        let invalid = |reason: &str| TitoError::InvalidCursor(reason.to_string());
        let bytes = base64::decode(cursor).ok_or_else(|| invalid("not a tito cursor"))?;
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(invalid("empty"));
        };
        if version != CURSOR_V3 {
            return Err(invalid("not a cursor of this version of tito"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(invalid("truncated"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| invalid("truncated"))?;
        let aad = associated(query, reverse);
        (self.ciphers.iter())
            .find_map(|cipher| {
                let payload = Payload {
                    msg: sealed,
                    aad: &aad,
                };
                cipher.decrypt(&nonce, payload).ok()
            })
            .ok_or_else(|| {
                invalid(
                    "the cursor was altered, or belongs to another query, direction or database",
                )
            })
    }
}

/// A nonce no earlier cursor of this process used: a random start, then a counter, so sealing
/// needs no system call. Across processes sharing a key a nonce may repeat, which AES-GCM-SIV
/// turns into nothing worse than showing that two cursors are the same.
fn next_nonce() -> Nonce {
    static START: OnceLock<[u8; NONCE_LEN]> = OnceLock::new();
    static SEALED: AtomicU64 = AtomicU64::new(0);
    let mut nonce = *START.get_or_init(|| Nonce::generate().into());
    let count = SEALED.fetch_add(1, Ordering::Relaxed).to_le_bytes();
    for (byte, step) in nonce[NONCE_LEN - 8..].iter_mut().zip(count) {
        *byte ^= step;
    }
    Nonce::from(nonce)
}

/// What a cursor is bound to: its version, direction and query.
fn associated(query: &[u8], reverse: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + query.len());
    aad.push(CURSOR_V3);
    aad.push(u8::from(reverse));
    aad.extend_from_slice(query);
    aad
}

/// URL-safe base64 without padding (RFC 4648, section 5).
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let word = chunk
                .iter()
                .enumerate()
                .fold(0u32, |word, (i, &b)| word | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(word >> (18 - 6 * i) & 0x3f) as usize] as char);
            }
        }
        out
    }

    fn value(digit: u8) -> Option<u32> {
        ALPHABET.iter().position(|&a| a == digit).map(|v| v as u32)
    }

    /// `None` for anything [`encode`] cannot have made.
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        for chunk in text.as_bytes().chunks(4) {
            if chunk.len() == 1 {
                return None;
            }
            let mut word = 0u32;
            for (i, &digit) in chunk.iter().enumerate() {
                word |= value(digit)? << (18 - 6 * i);
            }
            let bytes = chunk.len() - 1;
            // Bits below the last whole byte must be zero, so each byte string has one form.
            if word & (0x00ff_ffff >> (8 * bytes)) != 0 {
                return None;
            }
            out.extend((0..bytes).map(|i| (word >> (16 - 8 * i)) as u8));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> CursorKeys {
        CursorKeys::new(CursorKeys::random_secret(), &[])
    }

    #[test]
    fn base64_round_trips_every_length_and_refuses_other_forms() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = base64::encode(&bytes);
            assert!(!text.contains(['+', '/', '=']));
            assert_eq!(base64::decode(&text), Some(bytes));
        }
        assert_eq!(base64::encode(b"\xfb\xff"), "-_8");
        assert_eq!(base64::decode("-_8"), Some(b"\xfb\xff".to_vec()));
        assert_eq!(base64::decode("-_9"), None, "non-zero trailing bits");
        assert_eq!(base64::decode("A"), None);
        assert_eq!(base64::decode("a+b/"), None);
    }

    #[test]
    fn seals_and_opens_every_key() {
        let keys = keys();
        let key: Vec<u8> = (0..=255).collect();
        let cursor = keys.seal(b"query", true, &key);
        assert_eq!(keys.open(&cursor, b"query", true).unwrap(), key);
        assert_eq!(
            keys.open(&keys.seal(b"q", false, b""), b"q", false)
                .unwrap(),
            b""
        );
        // Fresh nonces: the same page gives a new cursor each time.
        assert_ne!(keys.seal(b"q", false, b"k"), keys.seal(b"q", false, b"k"));
    }

    #[test]
    fn the_key_cannot_be_read_from_the_cursor() {
        let keys = keys();
        let secret = b"alice@example.com";
        let cursor = keys.seal(b"q", false, secret);
        let bytes = base64::decode(&cursor).unwrap();
        assert!(!bytes.windows(4).any(|w| secret.windows(4).any(|s| s == w)));
        assert!(!cursor.contains("alice"));
    }

    #[test]
    fn refuses_other_queries_directions_databases_and_every_altered_character() {
        let keys = keys();
        let cursor = keys.seal(b"query", false, b"last key");
        assert!(keys.open(&cursor, b"other", false).is_err());
        assert!(keys.open(&cursor, b"query", true).is_err());
        assert!(self::keys().open(&cursor, b"query", false).is_err());
        for at in 0..cursor.len() {
            for replacement in ['A', 'z', '-', '_', '0', '=', ' '] {
                let mut altered: Vec<char> = cursor.chars().collect();
                if altered[at] == replacement {
                    continue;
                }
                altered[at] = replacement;
                let altered: String = altered.into_iter().collect();
                assert!(
                    matches!(
                        keys.open(&altered, b"query", false),
                        Err(TitoError::InvalidCursor(_))
                    ),
                    "{altered}"
                );
            }
        }
        for cut in 0..cursor.len() {
            assert!(keys.open(&cursor[..cut], b"query", false).is_err());
        }
    }

    #[test]
    fn earlier_secrets_still_open_their_cursors() {
        let old = CursorKeys::random_secret();
        let before = CursorKeys::new(old, &[]);
        let cursor = before.seal(b"q", false, b"k");
        let rotated = CursorKeys::new(CursorKeys::random_secret(), &[old]);
        assert_eq!(rotated.open(&cursor, b"q", false).unwrap(), b"k");
        let fresh = rotated.seal(b"q", false, b"k");
        assert!(before.open(&fresh, b"q", false).is_err());
    }
}
