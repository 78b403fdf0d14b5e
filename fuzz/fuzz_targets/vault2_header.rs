#![no_main]
//! `vault2_header`: see [`mcp_key_manager_fuzz::check_vault2_header`] for the input layout and the properties.

use libfuzzer_sys::fuzz_target;
use mcp_key_manager_fuzz::{alloc::Counting, check_vault2_header};

// Measures single allocations; see `alloc`.
#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| check_vault2_header(data));
