//! Adversarial integration tests: the tool is attacked the way a
//! crash, a concurrent writer, a tamperer, a hostile file or a careless log would attack it,
//! and each test pins what must survive.
//!
//! Modules: `crash` (SIGKILL at random moments), `concurrency` (50 writers at once),
//! `tamper` (every single-bit flip of a vault), `hostile` (the hostile-input catalogue),
//! `leaks` (every command scanned for secrets). `util` holds what they share beyond the
//! fixtures of `tests/common`.

mod concurrency;
mod crash;
mod hostile;
mod leaks;
mod tamper;
mod util;
