#![no_main]
//! Fuzz target `decrypt`: the property is `checks::decrypt` in fuzz/checks.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::decrypt(data));
