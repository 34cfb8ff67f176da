#![no_main]
//! Fuzz target `chunker`: the property is `checks::chunker` in fuzz/checks.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::chunker(data));
