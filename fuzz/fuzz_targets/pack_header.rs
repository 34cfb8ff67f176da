#![no_main]
//! Fuzz target `pack_header`: the property is `checks::pack_header` in fuzz/checks.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::pack_header(data));
