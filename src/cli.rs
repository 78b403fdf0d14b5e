//! The command line, as clap types only. Every spelling of the Python tool is kept.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use mcp_key_vault::Permission;

/// The version line: the crate version and the vault formats it reads and writes.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (vault formats: reads 1 and 2, writes 2)"
);

/// Create, store and verify the API keys that guard MCP servers, in an encrypted vault.
#[derive(Parser, Debug)]
#[command(
    name = "mcp-key-manager",
    version = VERSION,
    about,
    after_help = "Passphrase: a live `unlock` session, then MCP_KEY_VAULT_PASSPHRASE_FILE / \
--passphrase-file, then MCP_KEY_VAULT_PASSPHRASE, then a hidden prompt (three tries).\nExit codes: 0 ok, 1 failed or \"no\", 2 usage, \
3 passphrase, 4 corrupt vault, 5 I/O."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The vault file.
    #[arg(
        long,
        global = true,
        env = "MCP_KEY_VAULT",
        value_name = "PATH",
        default_value = "mcp_key_manager/keys.json"
    )]
    pub vault: PathBuf,
    /// The env file that `use` and `-u` write.
    #[arg(
        long,
        global = true,
        env = "MCP_ENV_FILE",
        value_name = "PATH",
        default_value = ".env"
    )]
    pub env_file: PathBuf,
    /// Read the vault passphrase from this file (one trailing newline is ignored).
    #[arg(
        long,
        global = true,
        env = "MCP_KEY_VAULT_PASSPHRASE_FILE",
        value_name = "PATH"
    )]
    pub passphrase_file: Option<PathBuf>,
    /// Unlock with the age identities in this file (tried before any passphrase).
    #[arg(
        long,
        global = true,
        env = "MCP_KEY_VAULT_IDENTITY",
        value_name = "FILE"
    )]
    pub identity: Option<PathBuf>,
    /// Unlock with this slot only (its id or label; see `slot list`).
    #[arg(long, global = true, value_name = "ID|LABEL")]
    pub slot: Option<String>,
    /// The fingerprint the vault must have (mkv1:…, printed by `init` and `slot list`):
    /// required to open through an identity a vault not opened here before. `unsigned`
    /// accepts a vault written before signing, once (its next save signs it).
    #[arg(
        long,
        global = true,
        env = "MCP_KEY_VAULT_FINGERPRINT",
        value_name = "FPR"
    )]
    pub expect_vault: Option<String>,
    /// Accept a new passphrase that the strength estimator calls weak (score 0-1).
    #[arg(long, global = true)]
    pub allow_weak_passphrase: bool,
}

/// `unlock`: start a session, or report on it.
#[derive(Args, Debug, Clone)]
pub struct UnlockArgs {
    /// How long the session lasts: seconds (900) or 90s, 15m, 1h, 1h30m; at most 24h.
    #[arg(long, value_name = "DURATION", default_value = "15m",
          value_parser = crate::agent::parse_timeout, conflicts_with = "status")]
    pub timeout: std::time::Duration,
    /// Say whether a session is live for this vault and until when (exit 1 when none).
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// The internal agent process that `unlock` starts; not for people.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The socket to listen on.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// Seconds until the session ends.
    #[arg(long, value_name = "SECONDS")]
    pub timeout_secs: u64,
}

/// Argon2id settings for a new vault (`init`, `rekey`, `import-legacy`).
#[derive(Args, Debug, Clone, Default)]
pub struct KdfArgs {
    /// A named setting: minimum (19 MiB, 2 passes), default (64 MiB, 3 passes, RFC 9106),
    /// high (256 MiB, 4 passes).
    #[arg(long, value_enum, value_name = "NAME")]
    pub kdf_preset: Option<Preset>,
    /// Argon2id memory in KiB (at least 19456).
    #[arg(long, value_name = "KIB")]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id passes (at least 2).
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
    /// Argon2id lanes.
    #[arg(long, value_name = "N")]
    pub kdf_parallelism: Option<u32>,
    /// Choose the passes so that unlocking takes about this long on this machine.
    #[arg(long, value_name = "MS", conflicts_with = "kdf_iterations")]
    pub kdf_target_ms: Option<u64>,
}

/// Named Argon2id settings.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// OWASP's minimum: 19 MiB, 2 passes, 1 lane.
    Minimum,
    /// RFC 9106's second recommendation: 64 MiB, 3 passes, 1 lane.
    Default,
    /// 256 MiB, 4 passes, 1 lane.
    High,
}

/// Shells for `completions`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
    /// Elvish.
    Elvish,
}

/// How a command reports: for people, only the essential (`--quiet`), or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Text for people.
    Human,
    /// Only the essential value (the new key).
    Quiet,
    /// One JSON document.
    Json,
}

/// `--json`, for commands that report.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct JsonFlag {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl JsonFlag {
    /// The output this flag selects.
    pub fn output(self) -> Output {
        if self.json {
            Output::Json
        } else {
            Output::Human
        }
    }
}

/// `--quiet` and `--json`, for commands that print a new key.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct KeyOutputFlags {
    /// Print only the key.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print the result as JSON (includes the key).
    #[arg(long)]
    pub json: bool,
}

impl KeyOutputFlags {
    /// The output these flags select.
    pub fn output(self) -> Output {
        match (self.quiet, self.json) {
            (_, true) => Output::Json,
            (true, false) => Output::Quiet,
            _ => Output::Human,
        }
    }
}

/// `init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Put this organisation prefix in front of every key the vault makes (`acme` gives
    /// `acme_mkm_…`): 1-16 characters, a lowercase letter then lowercase letters and digits.
    #[arg(long, value_name = "NAME")]
    pub key_prefix: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A name for the key.
    pub name: String,
    /// What the key is for.
    #[arg(short, long, default_value = "")]
    pub description: String,
    /// Days until the key expires; 0 means never.
    #[arg(short, long, default_value_t = 90, value_name = "DAYS",
          allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(0..=36_500))]
    pub expires_in_days: i64,
    /// Also write the key into the env file, as `use` does.
    #[arg(short, long)]
    pub use_in_env: bool,
    /// A permission (repeatable); default: generate, info, health.
    #[arg(short, long = "permission", value_name = "PERMISSION")]
    pub permissions: Vec<Permission>,
    /// A rate limit servers enforce for the key: N/sec, N/min, N/hour, N/day (100/min).
    #[arg(long, value_name = "N/PER")]
    pub rate_limit: Option<mcp_key_verifier::RateLimit>,
    #[command(flatten)]
    pub out: KeyOutputFlags,
}

/// `list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only active keys.
    #[arg(short, long)]
    pub active_only: bool,
    /// Show a short, non-secret hint of each key.
    #[arg(short = 'k', long)]
    pub show_keys: bool,
    /// Only keys expiring within DAYS days.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub expiring: Option<u32>,
    #[command(flatten)]
    pub usage: UsageArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// One key: by id (or a unique prefix of it), or by exact name.
#[derive(Args, Debug)]
pub struct IdArg {
    /// Key id, or a unique prefix of it.
    #[arg(required_unless_present = "name")]
    pub id: Option<String>,
    /// Select the key by its exact name instead of its id.
    #[arg(long, value_name = "NAME", conflicts_with = "id")]
    pub name: Option<String>,
}

impl IdArg {
    /// What selects the key.
    pub fn selector(&self) -> Selector<'_> {
        match (&self.id, &self.name) {
            (_, Some(n)) => Selector::Name(n),
            (Some(i), None) => Selector::Id(i),
            (None, None) => Selector::Id(""),
        }
    }
}

/// Several keys: ids (or unique prefixes) and exact names; each is resolved before
/// anything changes.
#[derive(Args, Debug)]
pub struct KeysArg {
    /// Key ids, or unique prefixes of them.
    #[arg(value_name = "ID", required_unless_present = "names")]
    pub ids: Vec<String>,
    /// Select a key by its exact name (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
}

impl KeysArg {
    /// What selects the keys, ids first.
    pub fn selectors(&self) -> Vec<Selector<'_>> {
        let ids = self.ids.iter().map(|i| Selector::Id(i));
        ids.chain(self.names.iter().map(|n| Selector::Name(n)))
            .collect()
    }
}

pub use mcp_key_vault::Selector;

/// `view`.
#[derive(Args, Debug)]
pub struct ViewArgs {
    #[command(flatten)]
    pub key: IdArg,
    #[command(flatten)]
    pub usage: UsageArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub keys: KeysArg,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub keys: KeysArg,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `use`.
#[derive(Args, Debug)]
pub struct UseArgs {
    #[command(flatten)]
    pub key: IdArg,
    /// Print the key to stdout instead of writing the env file.
    #[arg(long, conflicts_with = "json")]
    pub print: bool,
    /// Print JSON (never the key).
    #[arg(long)]
    pub json: bool,
}

/// `headers`.
#[derive(Args, Debug)]
pub struct HeadersArgs {
    #[command(flatten)]
    pub key: IdArg,
    /// What to print: `header`, the header line (`X-API-Key: <key>`); `claude-code`, a JSON
    /// object of headers (what Claude Code's headersHelper reads); `json`, that object
    /// with the key's id and name; `curl`, a curl config line (`curl -K -`).
    #[arg(long, value_enum, default_value_t = HeaderFormat::Header)]
    pub format: HeaderFormat,
    /// Send the key as `Authorization: Bearer <key>` instead of `X-API-Key: <key>`.
    #[arg(long)]
    pub bearer: bool,
}

/// The output forms of `headers`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFormat {
    /// `X-API-Key: <key>`.
    Header,
    /// `{"X-API-Key":"<key>"}`.
    ClaudeCode,
    /// `{"id":…,"name":…,"headers":{"X-API-Key":"<key>"}}`.
    Json,
    /// `header = "X-API-Key: <key>"`.
    Curl,
}

impl HeaderFormat {
    /// The name given on the command line (and in the history's detail).
    pub fn name(self) -> &'static str {
        match self {
            HeaderFormat::Header => "header",
            HeaderFormat::ClaudeCode => "claude-code",
            HeaderFormat::Json => "json",
            HeaderFormat::Curl => "curl",
        }
    }
}

/// `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Check the MCP_API_KEY of the env file instead of reading stdin.
    #[arg(long)]
    pub from_env: bool,
    /// A permission the key must have (repeatable).
    #[arg(long = "require", value_name = "PERMISSION")]
    pub require: Vec<Permission>,
    /// Use a verifier file (from `publish` or `export-verifier`) instead of the vault (no
    /// passphrase).
    #[arg(long, value_name = "PATH")]
    pub verifier: Option<PathBuf>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Warn about keys expiring within this many days.
    #[arg(long, default_value_t = 14, value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub warn_days: u32,
    /// Fail on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Also check this verifier file (repeatable); published ones are always checked.
    #[arg(long = "verifier", value_name = "PATH")]
    pub verifiers: Vec<PathBuf>,
    /// Warn about active keys unused for this many days (when usage data exists).
    #[arg(long, default_value_t = 30, value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub unused_days: u32,
    #[command(flatten)]
    pub usage: UsageArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// Usage files of `serve` to read besides those next to each published verifier.
#[derive(Args, Debug, Default)]
pub struct UsageArgs {
    /// A usage file written by `serve` (repeatable).
    #[arg(long = "usage", value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `export-verifier`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Where to write it.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// `rotate`.
#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    pub key: IdArg,
    /// Keep the old key valid for this many days instead of revoking it now.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub grace_days: Option<u32>,
    /// Write the successor into the env file.
    #[arg(short, long)]
    pub use_in_env: bool,
    #[command(flatten)]
    pub out: KeyOutputFlags,
}

/// `grant` and `deny`.
#[derive(Args, Debug)]
pub struct PermissionArgs {
    /// The key's id, then the permissions; or, with --key/--name, only permissions.
    #[arg(required = true, value_name = "ID PERMISSION")]
    pub args: Vec<String>,
    /// A key to change (repeatable); then every argument is a permission.
    #[arg(long = "key", value_name = "ID")]
    pub keys: Vec<String>,
    /// A key to change, by exact name (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `serve`'s access tokens (docs/oauth.md).
#[derive(Args, Debug, Clone)]
pub struct OAuthArgs {
    /// This server's canonical URI (the audience tokens must carry); serves
    /// /.well-known/oauth-protected-resource.
    #[arg(long, value_name = "URL")]
    pub resource: Option<String>,
    /// An authorization server whose access tokens are accepted (repeatable); its keys are
    /// found by discovery.
    #[arg(long = "issuer", value_name = "URL")]
    pub issuers: Vec<String>,
    /// The issuers' keys from this JWK Set file instead of discovery.
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// The claim holding a token's permissions.
    #[arg(long, value_name = "NAME", default_value = "scope")]
    pub scope_claim: String,
    /// A scope to advertise in the resource metadata (repeatable); with
    /// --authorization-server, the scopes a client may ask for.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Also act as an OAuth authorization server for hosted clients: a consent page where
    /// a person pastes a key of this vault, which becomes short-lived access tokens for
    /// --resource (needs --resource and --signing-key).
    #[arg(long)]
    pub authorization_server: bool,
    /// The issuer of those tokens [default: the origin of --resource].
    #[arg(long, value_name = "URL", requires = "authorization_server")]
    pub issuer_url: Option<String>,
    /// The Ed25519 key that signs those tokens, a private JWK; created (mode 0600) if
    /// missing. Every instance of a fleet needs the same file.
    #[arg(long, value_name = "FILE", requires = "authorization_server")]
    pub signing_key: Option<PathBuf>,
    /// Keep the authorization server's state (consent requests, codes, refresh tokens,
    /// revocations, registered clients) in this Redis store
    /// (redis://host:port/db?key=NAME), shared by a fleet of instances. Without it the
    /// state is this instance's: run one, and tokens from before a restart are refused.
    #[arg(long, value_name = "URL", requires = "authorization_server")]
    pub authorization_state: Option<String>,
    /// How long an access token of the authorization server lasts, in seconds (at most an
    /// hour).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::serve::bridge::DEFAULT_TOKEN_LIFETIME,
          value_parser = clap::value_parser!(u64).range(60..=3600),
          requires = "authorization_server")]
    pub token_lifetime: u64,
    /// Fetch client metadata documents from loopback and private addresses, and over
    /// http:// (tests, a private network); refused otherwise (SSRF).
    #[arg(long, requires = "authorization_server")]
    pub allow_private_clients: bool,
    /// Refuse Dynamic Client Registration (/register); clients then identify themselves by
    /// a client metadata document URL.
    #[arg(long, requires = "authorization_server")]
    pub no_dynamic_registration: bool,
}

/// `limit`.
#[derive(Args, Debug)]
pub struct LimitArgs {
    /// The key's id (or a unique prefix), then the limit; with --name, only the limit.
    /// A limit is N/sec, N/min, N/hour, N/day or N/Ws (a window of W seconds); `none`
    /// clears it.
    #[arg(required = true, num_args = 1..=2, value_name = "ID LIMIT")]
    pub args: Vec<String>,
    /// Select the key by its exact name instead of its id.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `rekey`.
#[derive(Args, Debug)]
pub struct RekeyArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Read the new passphrase from this file.
    #[arg(long, value_name = "PATH")]
    pub new_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `slot …`.
#[derive(Subcommand, Debug)]
pub enum SlotCommand {
    /// List the slots: id, kind, label, created, and for age slots the recipient.
    List(JsonFlag),
    /// Add a slot: a new passphrase, or an age recipient (age1…, age1yubikey1…, …).
    Add(SlotAddArgs),
    /// Remove a slot (never the last) and rotate the data key, so the removed member's
    /// copy of it reads no later save.
    Remove(SlotRemoveArgs),
}

/// `slot add`.
#[derive(Args, Debug)]
pub struct SlotAddArgs {
    /// Add a passphrase slot (the new passphrase from MCP_KEY_VAULT_NEW_PASSPHRASE, its
    /// file, or typed twice).
    #[arg(
        long,
        conflicts_with = "age_recipient",
        required_unless_present = "age_recipient"
    )]
    pub passphrase: bool,
    /// Add an age recipient slot.
    #[arg(long, value_name = "RECIPIENT")]
    pub age_recipient: Option<String>,
    /// A label for the slot (usable with --slot).
    #[arg(long, value_name = "LABEL", default_value = "")]
    pub label: String,
    /// Read the new passphrase from this file.
    #[arg(long, value_name = "PATH")]
    pub new_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `slot remove`.
#[derive(Args, Debug)]
pub struct SlotRemoveArgs {
    /// The slot's id or label (not named `slot`: that is the global `--slot`).
    #[arg(value_name = "ID|LABEL")]
    pub target: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Key id, or a unique prefix of it (also of deleted keys).
    pub id: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `import-legacy`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The plaintext store (default: the vault path).
    pub path: Option<PathBuf>,
    /// Move the plaintext store here instead of discarding it.
    #[arg(long, value_name = "PATH")]
    pub keep_plaintext: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The verifier file to write now and rewrite after every change of the vault.
    #[arg(required_unless_present = "list", value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Put key names in the file (for server logs).
    #[arg(long)]
    pub names: bool,
    /// Run this shell command after each successful write made by you; $MCP_VERIFIER_PATH
    /// names the file. It sees no passphrase variable. Kept in your own configuration
    /// (hooks.json), not in the shared vault.
    #[arg(long, value_name = "CMD")]
    pub then: Option<String>,
    /// List the published files with their revisions instead.
    #[arg(long, conflicts_with_all = ["path", "names", "then"])]
    pub list: bool,
    /// Replace a file of a newer revision: after restoring this vault from an older backup,
    /// move the vault's revision past it, so reloading servers take the restored state.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `unpublish`.
#[derive(Args, Debug)]
pub struct UnpublishArgs {
    /// A published path (the file itself is left in place; your --then command for it is
    /// removed).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
// Parsed once per run: the size of `serve`'s arguments costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Create an empty vault.
    Init(InitArgs),
    /// Create a new API key (creates the vault on first use) and print it once.
    Create(CreateArgs),
    /// List keys (never the keys themselves).
    List(ListArgs),
    /// Show one key's details and status (never the key).
    View(ViewArgs),
    /// Revoke a key (the record is kept).
    Revoke(RevokeArgs),
    /// Delete a key's record.
    Delete(DeleteArgs),
    /// Write a key into the env file as MCP_API_KEY, with API_KEY_REQUIRED=true.
    Use(UseArgs),
    /// Print the HTTP header an MCP client sends with a key (for Claude Code's
    /// headersHelper, curl -K -, …); recorded as a use.
    Headers(HeadersArgs),
    /// Find keys of this tool in files and git history, and say which are live (exit 1 when
    /// one is). Never prints more of a key than `list -k` does.
    Scan(ScanArgs),
    /// Set API_KEY_REQUIRED=true in the env file (needs no passphrase).
    EnableRequirement(JsonFlag),
    /// Check presented keys (from stdin, one per line, or the env file) offline.
    Verify(VerifyArgs),
    /// Health check for CI: the env file's key, the requirement flag, expiries, permissions.
    Check(CheckArgs),
    /// Write a passphrase-free verifier file (keyed hashes only) for servers, once.
    ExportVerifier(ExportArgs),
    /// Replace a key with a successor of the same name, permissions and validity.
    Rotate(RotateArgs),
    /// Add permissions to a key.
    Grant(PermissionArgs),
    /// Remove permissions from a key.
    Deny(PermissionArgs),
    /// Set or clear a key's rate limit (100/min, 5/sec, 1000/hour, none); servers enforce it.
    Limit(LimitArgs),
    /// Change the vault passphrase (and optionally the Argon2id settings).
    Rekey(RekeyArgs),
    /// Show the event history, for one key or all.
    History(HistoryArgs),
    /// Encrypt a plaintext keys.json of the Python tool into a vault.
    ImportLegacy(ImportArgs),
    /// List, add or remove the ways to unlock the vault (passphrases, age recipients).
    #[command(subcommand)]
    Slot(SlotCommand),
    /// Keep a verifier file current: write it now and after every change of the vault.
    Publish(PublishArgs),
    /// Stop keeping a verifier file current (the file stays).
    Unpublish(UnpublishArgs),
    /// Keep this vault unlocked for a while, so commands need no passphrase (see `lock`).
    Unlock(UnlockArgs),
    /// End this vault's unlock session now.
    Lock(JsonFlag),
    /// (internal) The session agent that `unlock` starts; reads its secret from stdin.
    #[command(name = "session-agent", hide = true)]
    SessionAgent(AgentArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Answer forward-auth requests (nginx auth_request, Traefik, Caddy, Envoy) from a
    /// published verifier file, following its changes and recording each key's use.
    Serve(ServeArgs),
    /// Keep a local verifier file current from a Redis store (a sidecar): servers using the
    /// Python, TypeScript or Rust packages join a fleet with no code change.
    Follow(FollowArgs),
}

/// Options of `serve`.
/// `scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files and directories to scan [default: .]. In a git work tree, what git ignores
    /// is skipped (unless --no-ignore).
    pub paths: Vec<PathBuf>,
    /// Also scan every commit of the repository's history (lines added by each commit).
    #[arg(long)]
    pub git: bool,
    /// Judge the keys found against this verifier file (default: the vault, when there is
    /// one).
    #[arg(long, value_name = "FILE")]
    pub verifier: Option<PathBuf>,
    /// Scan files git ignores too.
    #[arg(long)]
    pub no_ignore: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

// The field docs are also `--help` text, where `[user@]` is syntax, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Args, Debug, Clone)]
pub struct FollowArgs {
    /// The store: redis[s]://[user@]host[:port][/db]?key=NAME (the password comes from
    /// MCP_REDIS_PASSWORD or MCP_REDIS_PASSWORD_FILE).
    #[arg(value_name = "URL")]
    pub url: String,
    /// The verifier file to keep current (replaced atomically, never by an older state).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// The vault's fingerprint (mkv1:…): only values it signed are written.
    #[arg(long, value_name = "FPR")]
    pub trust: String,
}

// The field docs are also `--help` text, where `<VERIFIER>` is a placeholder, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The verifier file to answer from (`publish` or `export-verifier` writes it); it is
    /// re-read within a second of being replaced.
    #[arg(long, value_name = "PATH")]
    pub verifier: PathBuf,
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub listen: std::net::SocketAddr,
    /// A permission every request needs (repeatable); a proxy adds more per route with the
    /// request header `X-MCP-Require: a,b`.
    #[arg(long = "require", value_name = "PERMISSION")]
    pub require: Vec<String>,
    /// Per-tool permissions from the JSON-RPC body (up to 1 MiB), or with
    /// --trust-routing-headers from the Mcp-Method/Mcp-Name headers: tools/call of X needs
    /// tools:call or tools:call:X, resources/read needs resources:read, prompts/get of P
    /// needs prompts:get or prompts:get:P. A request showing neither is refused (403).
    #[arg(long)]
    pub tool_permissions: bool,
    /// With --tool-permissions, decide a request that has no body from its Mcp-Method /
    /// Mcp-Name headers (protocol 2026-07-28), as nginx auth_request and Caddy send them.
    /// Only in front of an MCP server that refuses a body disagreeing with those headers
    /// (the official Python SDK 2.3's streamable HTTP does).
    #[arg(long, requires = "tool_permissions")]
    pub trust_routing_headers: bool,
    /// Accept only verifier files signed by the vault with this fingerprint (mkv1:…, as
    /// `slot list` prints it): an unsigned, foreign or altered file is refused and the
    /// last good one keeps answering. Required for --verifier redis://….
    #[arg(long, value_name = "FPR")]
    pub trust: Option<String>,
    /// With --verifier redis://…: seconds the store may be out of reach before /auth
    /// answers 503 (a key revoked meanwhile must not keep passing); with
    /// --authorization-state redis://…, before that issuer's tokens get 503.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_stale: u64,
    /// Where to record each key's last use and counts [default: <VERIFIER>.usage.json].
    #[arg(long, value_name = "PATH")]
    pub usage: Option<PathBuf>,
    /// Decide keys' rate limits across the fleet in this Redis store
    /// (redis://host:port/db?key=NAME) instead of per instance.
    #[arg(long, value_name = "URL")]
    pub limits: Option<String>,
    #[command(flatten)]
    pub oauth: OAuthArgs,
    /// Most client connections open at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Seconds a request's headers or body may take to arrive (also closes idle
    /// keep-alive connections).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub read_timeout: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `mcp-key-manager …` line in the shell blocks of README.md and docs/commands.md
    /// must parse with the real argument parser (running it with `--help` appended would not
    /// check values, so parse directly).
    #[test]
    fn every_documented_example_parses() {
        use clap::Parser;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut text = String::new();
        for doc in ["README.md", "docs/commands.md"] {
            text.push_str(&std::fs::read_to_string(root.join(doc)).unwrap());
            text.push('\n');
        }
        let mut n = 0;
        let mut in_block = false;
        for line in text.lines() {
            if line.starts_with("```") {
                in_block = !in_block && (line.starts_with("```sh") || line.starts_with("```bash"));
                continue;
            }
            if !in_block {
                continue;
            }
            let line = line.trim();
            let Some(pos) = line.find("mcp-key-manager ") else {
                continue;
            };
            let cmdline = &line[pos..];
            // Cut at shell operators and comments: the tool's own words end there.
            let cut = cmdline
                .find(['|', '<', '>', '#', ';', '&', ')'])
                .unwrap_or(cmdline.len());
            let words = shell_words(&cmdline[..cut]);
            if words.iter().any(|w| w.contains("$(")) {
                continue;
            }
            let r = Cli::try_parse_from(&words);
            if let Err(e) = &r {
                use clap::error::ErrorKind::*;
                if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                    n += 1;
                    continue;
                }
            }
            assert!(
                r.is_ok(),
                "documented example does not parse: {line}\n{}",
                r.unwrap_err()
            );
            n += 1;
        }
        assert!(n >= 40, "only {n} examples found");
    }

    /// A small shell-word splitter: whitespace, single and double quotes.
    fn shell_words(s: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        let mut any = false;
        for c in s.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => cur.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    any = true;
                }
                (None, c) if c.is_whitespace() => {
                    if any || !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                (None, '\\') => {}
                (None, c) => cur.push(c),
            }
        }
        if any || !cur.is_empty() {
            words.push(cur);
        }
        words
    }
}
