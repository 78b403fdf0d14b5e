//! The binary: parse, run, translate the outcome into the documented exit code.

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;
use mcp_key_manager::{
    cli::{Cli, Command},
    commands, sys, Error,
};

fn main() -> ExitCode {
    sys::harden_process();
    let cli = Cli::parse();
    // One-shot commands only: the long-running ones (`serve`, the session agent) should
    // hand memory back to the system after a peak.
    if !matches!(cli.command, Command::Serve(_) | Command::SessionAgent(_)) {
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
            match commands::hint(&e) {
                Some(h) => eprintln!("error: {e}; {h}"),
                None => eprintln!("error: {e}"),
            }
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
