//! Typed 32-byte ids. A pack id cannot be passed where a blob id is meant.

use std::fmt;

use crate::error::{Error, Result};

pub const ID_LEN: usize = 32;

macro_rules! define_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            pub fn from_bytes(b: &[u8]) -> Result<Self> {
                let arr: [u8; ID_LEN] = b
                    .try_into()
                    .map_err(|_| Error::format("id", format!("expected 32 bytes, got {}", b.len())))?;
                Ok(Self(arr))
            }

            pub fn from_hex(s: &str) -> Result<Self> {
                let mut out = [0u8; ID_LEN];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| Error::format("id", format!("{s:?} is not a 64-digit hex id")))?;
                Ok(Self(out))
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The 8-hex-digit prefix shown in tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

define_id!(
    /// Keyed BLAKE3 hash of a blob's uncompressed plaintext.
    BlobId
);
define_id!(
    /// Storage id of a pack file: BLAKE3 of its bytes.
    PackId
);
define_id!(
    /// Storage id of an index segment.
    IndexId
);
define_id!(
    /// Storage id of a snapshot file.
    SnapshotId
);
define_id!(
    /// Storage id of a key file.
    KeyId
);
define_id!(
    /// Storage id of a lock file.
    LockId
);
define_id!(
    /// Random repository id, names the local cache.
    RepoId
);

/// Unkeyed BLAKE3 of stored bytes: the name of every repository file but `config`.
pub fn storage_hash(data: &[u8]) -> [u8; ID_LEN] {
    *blake3::hash(data).as_bytes()
}
