//! `completions` and `man`: generated from the same clap definition as the parser.

use clap::CommandFactory;

use super::context::*;
use crate::cli::Shell;

pub(super) fn completions(ctx: &mut Ctx, shell: Shell) -> Result<()> {
    use clap_complete::Shell as S;
    let s = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
        Shell::Elvish => S::Elvish,
    };
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(s, &mut cmd, "mcp-key-manager", &mut buf);
    ctx.write_raw(&buf)
}

pub(super) fn man(ctx: &mut Ctx) -> Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .map_err(output::stdout_error)?;
    ctx.write_raw(&buf)
}
