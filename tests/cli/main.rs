//! Integration tests that drive the real binary, one module per subcommand or concern.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod create;
mod envfile;
mod guide;
mod hardening;
mod history;
mod import;
mod init;
mod list_view;
mod meta;
mod passphrase;
mod rekey;
mod review;
mod revoke_delete;
mod rotate;
mod slot;
mod tamper;
mod use_env;
mod verify;
