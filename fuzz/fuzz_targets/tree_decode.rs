#![no_main]
//! Fuzz target `tree_decode`: the property is `checks::tree_decode` in fuzz/checks.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::tree_decode(data));
