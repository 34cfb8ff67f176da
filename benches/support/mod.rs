//! Inputs shared by the criterion benchmarks: deterministic pseudo-random bytes
//! and mysqldump-like SQL text, so that every run measures the same data.

// Each bench binary includes this module and uses only part of it.
#![allow(dead_code)]

pub const KIB: usize = 1 << 10;
pub const MIB: usize = 1 << 20;

/// xorshift64*: fast enough that making 64 MiB of input costs well under a second.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Incompressible bytes (media, archives, encrypted files).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

const WORDS: &[&str] = &[
    "alpha",
    "report",
    "invoice",
    "budget",
    "meeting",
    "draft",
    "final",
    "photo",
    "share",
    "workspace",
    "project",
    "client",
    "summary",
    "notes",
    "contract",
    "review",
    "archive",
];

/// mysqldump-like rows: what the small parameter set and zstd see in a
/// Cells database dump (ids, uuids, timestamps, short text, JSON).
pub fn sql_text(len: usize, seed: u64) -> Vec<u8> {
    use std::fmt::Write;
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(len + 512);
    let mut row = 0u64;
    while s.len() < len {
        if row % 500 == 0 {
            s.push_str("INSERT INTO `idm_user_meta` (`uuid`,`node_uuid`,`namespace`,`owner`,`timestamp`,`format`,`data`) VALUES ");
        }
        let w1 = WORDS[rng.below(WORDS.len() as u64) as usize];
        let w2 = WORDS[rng.below(WORDS.len() as u64) as usize];
        let _ = write!(
            s,
            "('{:016x}-{:04x}','{:016x}','usermeta-{}','user{}',{},'json','{{\"{}\":\"{} {} {}\"}}')",
            rng.next_u64(),
            row & 0xffff,
            rng.next_u64(),
            w1,
            rng.below(5000),
            1_714_528_800 + rng.below(40_000_000),
            w2,
            w1,
            w2,
            rng.below(1_000_000),
        );
        row += 1;
        s.push_str(if row % 500 == 0 { ";\n" } else { "," });
    }
    s.truncate(len);
    s.into_bytes()
}
