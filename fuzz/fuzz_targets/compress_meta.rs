#![no_main]
//! Fuzz target `compress_meta`: the property is `checks::compress_meta` in fuzz/checks.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::compress_meta(data));
