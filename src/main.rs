//! The binary: parse, run, translate the outcome into the documented exit code.

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;
use mcp_key_manager::{cli::Cli, commands, sys, Error};

fn main() -> ExitCode {
    sys::harden_process();
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(Error::Silent) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
