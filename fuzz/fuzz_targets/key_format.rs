#![no_main]
//! `key_format`: see [`mcp_key_manager_fuzz::check_key_format`] for the input layout and the properties.

use libfuzzer_sys::fuzz_target;
use mcp_key_manager_fuzz::{alloc::Counting, check_key_format};

// Measures single allocations (and, for classify, their absence); see `alloc`.
#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| check_key_format(data));
