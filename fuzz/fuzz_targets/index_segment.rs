#![no_main]
//! Fuzz target `index_segment`: the property is `checks::index_segment` in fuzz/checks.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::index_segment(data));
