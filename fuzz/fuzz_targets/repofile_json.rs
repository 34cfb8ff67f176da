#![no_main]
//! Fuzz target `repofile_json`: the property is `checks::repofile_json` in fuzz/checks.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::repofile_json(data));
