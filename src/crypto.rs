//! Keys and sealed boxes: AES-256-GCM with random 96-bit nonces, Argon2id key
//! wrapping, and the keyed BLAKE3 that names blobs. See format-spec/02-crypto.md.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::error::{Error, Result};
use crate::id::BlobId;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed box adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
pub const MASTER_LEN: usize = 32;

const CTX_ENC: &str = "cellar 2026-11-25 repository v1 encryption key";
const CTX_ID: &str = "cellar 2026-11-25 repository v1 blob id key";
const CTX_CHUNKER: &str = "cellar 2026-11-25 repository v1 chunker seed";

/// Associated data binding a sealed box to the kind of object it is.
pub mod aad {
    pub const PACK_HEADER: &[u8] = b"cellar:pack-header";
    pub const INDEX: &[u8] = b"cellar:index";
    pub const SNAPSHOT: &[u8] = b"cellar:snapshot";
    pub const CONFIG: &[u8] = b"cellar:config";
    pub const LOCK: &[u8] = b"cellar:lock";
    pub const KEY: &[u8] = b"cellar:key";
    pub const KEY_META: &[u8] = b"cellar:key-meta";
    pub const BLOB_PREFIX: &[u8] = b"cellar:blob";
}

/// Associated data of a blob: its type and id, so a blob cannot be swapped for another.
pub fn blob_aad(blob_type: u8, id: &BlobId) -> [u8; 44] {
    let mut a = [0u8; 44];
    a[..11].copy_from_slice(aad::BLOB_PREFIX);
    a[11] = blob_type;
    a[12..].copy_from_slice(id.as_bytes());
    a
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random number generator failed");
    b
}

/// The repository's keys, all derived from the master secret.
#[derive(Clone)]
pub struct Keys {
    master: [u8; MASTER_LEN],
    cipher: Aes256Gcm,
    id_key: [u8; 32],
    chunker_seed: u64,
}

impl Keys {
    pub fn from_master(master: [u8; MASTER_LEN]) -> Self {
        let enc = blake3::derive_key(CTX_ENC, &master);
        let id_key = blake3::derive_key(CTX_ID, &master);
        let seed = blake3::derive_key(CTX_CHUNKER, &master);
        let chunker_seed = u64::from_le_bytes(seed[..8].try_into().unwrap());
        Keys {
            master,
            cipher: Aes256Gcm::new(&enc.into()),
            id_key,
            chunker_seed,
        }
    }

    pub fn generate() -> Self {
        Self::from_master(random_bytes())
    }

    pub fn master(&self) -> &[u8; MASTER_LEN] {
        &self.master
    }

    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> std::result::Result<Vec<u8>, OpenError> {
        open_with(&self.cipher, aad, sealed)
    }
}

/// Why a sealed box did not open. Callers turn it into an error naming the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    TooShort,
    Authentication,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::TooShort => f.write_str("shorter than a sealed box"),
            OpenError::Authentication => {
                f.write_str("authentication failed (damaged, or written with another key)")
            }
        }
    }
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(plaintext);
    let nonce = Nonce::from(nonce_bytes);
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad, (&mut out[NONCE_LEN..]).into())
        .expect("AES-GCM refuses only messages over 64 GiB");
    out.extend_from_slice(tag.as_slice());
    out
}

fn open_with(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &[u8],
) -> std::result::Result<Vec<u8>, OpenError> {
    if sealed.len() < OVERHEAD {
        return Err(OpenError::TooShort);
    }
    let nonce = Nonce::try_from(&sealed[..NONCE_LEN]).map_err(|_| OpenError::TooShort)?;
    let body_end = sealed.len() - TAG_LEN;
    let tag = Tag::try_from(&sealed[body_end..]).map_err(|_| OpenError::TooShort)?;
    let mut buf = sealed[NONCE_LEN..body_end].to_vec();
    cipher
        .decrypt_inout_detached(&nonce, aad, (&mut buf[..]).into(), &tag)
        .map_err(|_| OpenError::Authentication)?;
    Ok(buf)
}

/// Argon2id parameters, stored in each key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// 64 MiB and 3 passes: about a quarter second on a server core, and the
    /// memory cost is what makes GPU guessing expensive.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    pub fn validate(&self) -> Result<()> {
        if !(8..=4 * 1024 * 1024).contains(&self.memory_kib)
            || !(1..=64).contains(&self.iterations)
            || !(1..=64).contains(&self.parallelism)
            || self.memory_kib < 8 * self.parallelism
        {
            return Err(Error::format(
                "key file",
                format!("Argon2id parameters out of bounds: {self:?}"),
            ));
        }
        Ok(())
    }
}

/// Derives the key-encryption key from a password.
pub fn derive_kek(password: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32]> {
    p.validate()?;
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| Error::format("key file", format!("Argon2id parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    a.hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::format("key file", format!("Argon2id: {e}")))?;
    Ok(out)
}

/// Wraps the master secret under a password-derived key.
pub fn wrap_master(kek: &[u8; 32], master: &[u8; MASTER_LEN]) -> Vec<u8> {
    seal_with(&Aes256Gcm::new(&(*kek).into()), aad::KEY, master)
}

pub fn unwrap_master(kek: &[u8; 32], sealed: &[u8]) -> Option<[u8; MASTER_LEN]> {
    let plain = open_with(&Aes256Gcm::new(&(*kek).into()), aad::KEY, sealed).ok()?;
    plain.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let k = Keys::generate();
        let s = k.seal(aad::SNAPSHOT, b"hello");
        assert_eq!(s.len(), 5 + OVERHEAD);
        assert_eq!(k.open(aad::SNAPSHOT, &s).unwrap(), b"hello");
        assert_eq!(k.open(aad::INDEX, &s), Err(OpenError::Authentication));
        let mut bad = s.clone();
        bad[14] ^= 1;
        assert_eq!(k.open(aad::SNAPSHOT, &bad), Err(OpenError::Authentication));
        assert_eq!(k.open(aad::SNAPSHOT, &s[..10]), Err(OpenError::TooShort));
    }

    #[test]
    fn subkeys_differ_and_are_deterministic() {
        let m = [7u8; 32];
        let a = Keys::from_master(m);
        let b = Keys::from_master(m);
        assert_eq!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_eq!(a.chunker_seed(), b.chunker_seed());
        let other = Keys::from_master([8u8; 32]);
        assert_ne!(a.blob_id(b"x"), other.blob_id(b"x"));
        // The id is keyed: it is not the plain BLAKE3 of the content.
        assert_ne!(a.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
    }

    #[test]
    fn kek_wrap_unwrap() {
        let p = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let kek = derive_kek(b"pw", &[1u8; 16], p).unwrap();
        let w = wrap_master(&kek, &[9u8; 32]);
        assert_eq!(unwrap_master(&kek, &w), Some([9u8; 32]));
        let kek2 = derive_kek(b"pw2", &[1u8; 16], p).unwrap();
        assert_eq!(unwrap_master(&kek2, &w), None);
    }
}
