//! mcp-key-manager, the command-line tool: arguments, commands, the terminal, unlock
//! sessions, passphrase sources, `.env` editing, publishing and `serve`.
//!
//! The package is a binary; this library target exists so that `src/main.rs` stays a
//! translator (it calls [`main`]) and so that the fuzz targets and the conformance tests
//! reach the one module that is a real library, [`envfile`] (python-dotenv's grammar,
//! with an editor that keeps every other byte). Everything else is private. The vault is
//! the `mcp-key-vault` crate; what a server links is `mcp-key-verifier`.
//!
//! Layers point one way: `cli` (clap types) → `commands` → `publish`, `hooks`, `serve`,
//! `agent`, `envstore`, `passphrase`, `userconfig` → `mcp_key_vault` → `mcp_key_verifier`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod agent;
#[allow(missing_docs)] // clap derives its help from the doc comments; fields need none.
mod cli;
mod commands;
pub mod envfile;
mod envstore;
mod error;
mod fleet;
mod hooks;
mod key_usage;
mod passphrase;
mod publish;
mod redact;
mod serve;
mod sys;
mod trust;
mod userconfig;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use error::Error;

/// The program: parse the arguments, run the command, and translate the outcome into the
/// documented exit code (docs/commands.md, "Exit codes"), printing an error with its hint.
pub fn main() -> ExitCode {
    sys::harden_process();
    // No command takes a key as an argument (it would show in `ps`, shell history and CI
    // logs): one pasted into any argument is refused before anything else, never echoed.
    if let Some(n) = std::env::args_os()
        .skip(1)
        .position(|a| a.to_str().is_some_and(redact::holds_key))
    {
        eprintln!(
            "error: argument {} holds an API key, which no command takes as an argument (it \
             would show in `ps`, shell history and logs); name a key by its id, and give a \
             key to check on standard input (`verify`)",
            n + 1
        );
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version: clap prints them as usual.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // The parser quotes the value it refused: a key pasted into `--listen` must
            // not come back on the terminal or in a CI log. Colour as clap would give it.
            use std::io::IsTerminal;
            let styled = e.render();
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let text = if colour {
                styled.ansi().to_string()
            } else {
                styled.to_string()
            };
            eprint!("{}", redact::keys(&text));
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    // One-shot commands only: the long-running ones (`serve`, `follow`, the session agent)
    // should hand memory back to the system after a peak.
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Follow(_) | Command::SessionAgent(_)
    ) {
        sys::reuse_large_buffers();
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure, unless what was
        // lost is a new key (then the error says how to get it again).
        Err(Error::Io { source, context })
            if source.kind() == ErrorKind::BrokenPipe && context == "write to standard output" =>
        {
            ExitCode::SUCCESS
        }
        Err(Error::Silent) => ExitCode::from(1),
        Err(e) => {
            let text = match commands::hint(&e) {
                Some(h) => format!("error: {e}; {h}"),
                None => format!("error: {e}"),
            };
            eprintln!("{}", redact::keys(&text));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
