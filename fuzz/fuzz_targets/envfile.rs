#![no_main]
//! `envfile`: see [`mcp_key_manager_fuzz::check_envfile`] for the input layout and the properties.

use libfuzzer_sys::fuzz_target;
use mcp_key_manager_fuzz::{alloc::Counting, check_envfile};

// Measures single allocations (and, for classify, their absence); see `alloc`.
#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| check_envfile(data));
