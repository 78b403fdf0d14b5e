//! Integration tests that drive the real binary, one module per subcommand or concern.

#[path = "../common/mod.rs"]
mod common;

mod adversarial;
mod check;
mod create;
mod envfile;
mod envfile_dotenv;
mod guide;
mod hardening;
mod headers;
mod history;
mod hooks;
mod import;
mod init;
mod limit;
mod list_view;
mod meta;
mod multi;
mod passphrase;
mod publish;
mod regression;
mod rekey;
mod revoke_delete;
mod rotate;
mod scan;
mod session;
mod slot;
mod strength;
mod tamper;
mod terminal;
mod trust;
mod usage;
mod use_env;
mod verify;
