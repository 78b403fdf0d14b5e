//! The vault library (`mcp-key-vault`) and the parsers the fuzz targets share, without the
//! binary: format 2 and its age slots, an age plugin slot, the known-answer vaults,
//! property tests, and the replay of every committed fuzz input.

#[path = "../common/mod.rs"]
mod common;

#[allow(dead_code)] // Each fuzz target uses only its own helpers.
#[path = "../../fuzz/src/lib.rs"]
mod checks;

mod format2;
mod fuzz_regressions;
mod plugin;
mod properties;
mod vectors;

// `check_vault_open`, `check_classify` and the key_format property measure allocations
// (per thread, only while armed, so the other tests are not affected).
#[global_allocator]
static ALLOC: checks::alloc::Counting = checks::alloc::Counting;

/// The plugin test changes this process's `PATH` (the age crate looks plugins up there);
/// it holds this for writing, and the tests that run programs from `PATH` hold it for
/// reading, so none of them looks for `age` while `PATH` is `/nonexistent`.
pub static PATH_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());
