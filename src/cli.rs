//! The command line, as clap types only. Every spelling of the Python tool is kept.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The version line: the crate version and the vault format it reads and writes.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (vault format 1)");

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
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `lock`: end the session.
#[derive(Args, Debug, Clone)]
pub struct LockArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty vault.
    Init {
        #[command(flatten)]
        kdf: KdfArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a new API key (creates the vault on first use) and print it once.
    Create {
        /// A name for the key.
        name: String,
        /// What the key is for.
        #[arg(short, long, default_value = "")]
        description: String,
        /// Days until the key expires; 0 means never.
        #[arg(short, long, default_value_t = 90, value_name = "DAYS",
              allow_negative_numbers = true,
              value_parser = clap::value_parser!(i64).range(0..=36_500))]
        expires_in_days: i64,
        /// Also write the key into the env file, as `use` does.
        #[arg(short, long)]
        use_in_env: bool,
        /// A permission (repeatable); default: generate, info, health.
        #[arg(short, long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// Print only the key.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
        /// Print the result as JSON (includes the key).
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        /// Only active keys.
        #[arg(short, long)]
        active_only: bool,
        /// Show a short, non-secret hint of each key.
        #[arg(short = 'k', long)]
        show_keys: bool,
        /// Only keys expiring within DAYS days.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36_500))]
        expiring: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one key's details and status (never the key).
    View {
        /// Key id, or a unique prefix of it.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key (the record is kept).
    Revoke {
        /// Key id, or a unique prefix of it.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a key's record.
    Delete {
        /// Key id, or a unique prefix of it.
        id: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a key into the env file as MCP_API_KEY, with API_KEY_REQUIRED=true.
    Use {
        /// Key id, or a unique prefix of it.
        id: String,
        /// Print the key to stdout instead of writing the env file.
        #[arg(long, conflicts_with = "json")]
        print: bool,
        /// Print JSON (never the key).
        #[arg(long)]
        json: bool,
    },
    /// Set API_KEY_REQUIRED=true in the env file (needs no passphrase).
    EnableRequirement {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check presented keys (from stdin, one per line, or the env file) offline.
    Verify {
        /// Check the MCP_API_KEY of the env file instead of reading stdin.
        #[arg(long)]
        from_env: bool,
        /// A permission the key must have (repeatable).
        #[arg(long = "require", value_name = "PERMISSION")]
        require: Vec<String>,
        /// Use a verifier file from `export-verifier` instead of the vault (no passphrase).
        #[arg(long, value_name = "PATH")]
        verifier: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Health check for CI: the env file's key, the requirement flag, expiries, permissions.
    Check {
        /// Warn about keys expiring within this many days.
        #[arg(long, default_value_t = 14, value_name = "DAYS",
              value_parser = clap::value_parser!(u32).range(0..=36_500))]
        warn_days: u32,
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a passphrase-free verifier file (keyed hashes only) for servers.
    ExportVerifier {
        /// Where to write it.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a key with a successor of the same name, permissions and validity.
    Rotate {
        /// Key id, or a unique prefix of it.
        id: String,
        /// Keep the old key valid for this many days instead of revoking it now.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36_500))]
        grace_days: Option<u32>,
        /// Write the successor into the env file.
        #[arg(short, long)]
        use_in_env: bool,
        /// Print only the new key.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
        /// Print JSON (includes the new key).
        #[arg(long)]
        json: bool,
    },
    /// Add permissions to a key.
    Grant {
        /// Key id, or a unique prefix of it.
        id: String,
        /// Permissions to add.
        #[arg(required = true)]
        permissions: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove permissions from a key.
    Deny {
        /// Key id, or a unique prefix of it.
        id: String,
        /// Permissions to remove.
        #[arg(required = true)]
        permissions: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the vault passphrase (and optionally the Argon2id settings).
    Rekey {
        #[command(flatten)]
        kdf: KdfArgs,
        /// Read the new passphrase from this file.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the event history, for one key or all.
    History {
        /// Key id, or a unique prefix of it (also of deleted keys).
        id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt a plaintext keys.json of the Python tool into a vault.
    ImportLegacy {
        /// The plaintext store (default: the vault path).
        path: Option<PathBuf>,
        /// Move the plaintext store here instead of discarding it.
        #[arg(long, value_name = "PATH")]
        keep_plaintext: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Keep this vault unlocked for a while, so commands need no passphrase (see `lock`).
    Unlock(UnlockArgs),
    /// End this vault's unlock session now.
    Lock(LockArgs),
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
}
