//! One small function per subcommand: this module dispatches to them and holds the
//! exit-code table and its hints; what they share (the context: paths, the terminal, the
//! clock, stdout) is `context.rs`.
//!
//! Invariant: commands never touch a lock, a temporary file or a format constant: the
//! vault goes through [`mcp_key_vault::Store`], the env file through
//! [`crate::envstore::EnvStore`]. Each command returns a [`output::Report`] that one
//! renderer prints for people or as JSON.

mod check;
mod context;
mod follow;
mod headers;
mod import;
mod keys;
mod lifecycle;
mod list;
mod meta;
pub mod output;
mod publish;
mod scan;
mod session;
mod session_key;
mod slot;
mod usage;
mod verify;

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::error::{Category, Error, Result};

use context::Ctx;
use output::stdout_error;

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command fails with; [`exit_code`] gives the exit code.
pub fn run(cli: Cli) -> Result<()> {
    if let Command::SessionAgent(a) = &cli.command {
        return crate::agent::serve(&a.socket, std::time::Duration::from_secs(a.timeout_secs));
    }
    let mut ctx = Ctx::from_cli(&cli);
    let r = dispatch(&mut ctx, cli.command);
    // A command's own "no" (exit 1) must survive a reader that went away: `check | head`
    // in CI may not turn a failed check into success.
    let flushed = ctx.out.flush();
    r?;
    flushed.map_err(stdout_error)
}

fn dispatch(ctx: &mut Ctx, command: Command) -> Result<()> {
    match command {
        Command::Init(a) => keys::init(ctx, a),
        Command::Create(a) => keys::create(ctx, a),
        Command::List(a) => list::list(ctx, a),
        Command::View(a) => keys::view(ctx, a),
        Command::Revoke(a) => keys::revoke(ctx, a),
        Command::Delete(a) => keys::delete(ctx, a),
        Command::Use(a) => keys::use_key(ctx, a),
        Command::Headers(a) => headers::headers(ctx, a),
        Command::Scan(a) => scan::scan(ctx, a),
        Command::EnableRequirement(a) => keys::enable_requirement(ctx, a),
        Command::Verify(a) => verify::verify(ctx, a),
        Command::Check(a) => check::check(ctx, a),
        Command::ExportVerifier(a) => verify::export(ctx, a),
        Command::Rotate(a) => lifecycle::rotate(ctx, a),
        Command::Grant(a) => lifecycle::change_permissions(ctx, a, true),
        Command::Deny(a) => lifecycle::change_permissions(ctx, a, false),
        Command::Limit(a) => lifecycle::limit(ctx, a),
        Command::Rekey(a) => lifecycle::rekey(ctx, a),
        Command::History(a) => lifecycle::history(ctx, a),
        Command::ImportLegacy(a) => import::import_legacy(ctx, a),
        Command::Slot(c) => slot::slot(ctx, c),
        Command::Publish(a) => publish::publish(ctx, a),
        Command::Unpublish(a) => publish::unpublish(ctx, a),
        Command::Unlock(a) => session::unlock_cmd(ctx, a),
        Command::Lock(a) => session::lock_cmd(ctx, a),
        Command::SessionAgent(_) => unreachable!("dispatched before the context exists"),
        Command::Completions { shell } => meta::completions(ctx, shell),
        Command::Man => meta::man(ctx),
        Command::Follow(a) => follow::follow(ctx, a),
        Command::Serve(a) => crate::serve::run(crate::serve::Config {
            verifier: a.verifier,
            listen: a.listen,
            require: a.require,
            tool_permissions: a.tool_permissions,
            trust_routing_headers: a.trust_routing_headers,
            trust: a.trust,
            max_stale: std::time::Duration::from_secs(a.max_stale),
            limits: a.limits,
            oauth: oauth_settings(&a.oauth)?,
            usage: a.usage,
            max_connections: a.max_connections,
            read_timeout: std::time::Duration::from_secs(a.read_timeout),
        }),
    }
}

/// The documented exit code of an error (docs/commands.md, "Exit codes").
pub fn exit_code(e: &Error) -> u8 {
    match e.category() {
        Category::Failed => 1,
        Category::Usage => 2,
        Category::Passphrase => 3,
        Category::Corrupt => 4,
        Category::Io => 5,
    }
}

/// What to do next after an error, where the library's message does not say: the CLI's
/// advice, kept out of the library.
pub fn hint(e: &Error) -> Option<&'static str> {
    Some(match e {
        Error::KeyNotFound { .. } => "run `mcp-key-manager list` to see the ids",
        Error::NoVault { .. } => {
            "create one with `mcp-key-manager init` (or `create NAME`), or point --vault / \
             MCP_KEY_VAULT at it"
        }
        Error::WrongPassphrase => {
            "check the passphrase (and MCP_KEY_VAULT_PASSPHRASE / \
             MCP_KEY_VAULT_PASSPHRASE_FILE), or restore the vault from a backup"
        }
        Error::LegacyStore => "run `mcp-key-manager import-legacy` to encrypt it in place",
        Error::NoPassphrase { .. } => {
            "or run `mcp-key-manager unlock` at a terminal first: commands started without \
             one (a client's headersHelper, a script) then use its session"
        }
        _ => return None,
    })
}

/// `serve`'s OAuth settings: on with `--resource` and at least one `--issuer`, or with
/// `--resource` and `--authorization-server`.
fn oauth_settings(a: &crate::cli::OAuthArgs) -> Result<Option<crate::serve::oauth::Settings>> {
    let bridge =
        match (a.authorization_server, &a.resource, &a.signing_key) {
            (false, _, _) => None,
            (true, Some(resource), Some(key)) => Some(crate::serve::oauth::BridgeSettings {
                issuer: a
                    .issuer_url
                    .clone()
                    .unwrap_or_else(|| crate::serve::oauth::default_issuer(resource)),
                signing_key: key.clone(),
                token_lifetime: a.token_lifetime,
                allow_private_clients: a.allow_private_clients,
                dynamic_registration: !a.no_dynamic_registration,
                state: a.authorization_state.clone(),
            }),
            (true, None, _) => {
                return Err(Error::usage(
                    "--authorization-server needs --resource URL: the server its tokens are for",
                ))
            }
            (true, Some(_), None) => return Err(Error::usage(
                "--authorization-server needs --signing-key FILE: the key its tokens are signed \
                 with (created if missing; give every instance the same file)",
            )),
        };
    match (&a.resource, a.issuers.is_empty() && bridge.is_none()) {
        (None, true) if a.jwks.is_none() => Ok(None),
        (Some(_), _) if a.jwks.is_some() && a.issuers.len() != 1 => Err(Error::usage(
            "--jwks gives one --issuer's keys: with several --issuer, each one's keys come from \
             its discovery",
        )),
        (Some(resource), false) => Ok(Some(crate::serve::oauth::Settings {
            resource: resource.clone(),
            issuers: a.issuers.clone(),
            jwks: a.jwks.clone(),
            scope_claim: a.scope_claim.clone(),
            scopes: a.scopes.clone(),
            bridge,
        })),
        _ => Err(Error::usage(
            "access tokens need both --resource URL (this server's URI) and --issuer URL \
             (an authorization server; --jwks FILE gives its keys offline)",
        )),
    }
}
