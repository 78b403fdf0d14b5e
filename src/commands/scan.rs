//! `scan`: finds keys of this tool (both formats, one regular expression) in files and, with
//! `--git`, in the lines every commit of a repository added; judges each against the vault
//! or a verifier file, and exits 1 when one is live (or cannot be judged).
//!
//! Invariant: no key found is ever printed beyond what `list -k` shows (`mkm_<id>_…abcd`);
//! a key is held only while it is matched and judged.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::context::*;
use super::output::{s, Human, Report};
use crate::cli::ScanArgs;
use mcp_key_vault::keyfmt;
use mcp_key_vault::verify::{Code, Verifier};

/// Files larger than this are skipped (a key lives in text: sources, configs, logs).
const MAX_FILE: u64 = 16 << 20;

#[derive(Serialize)]
struct Find {
    path: String,
    line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    /// What `list -k` shows of the key, never more.
    key: String,
    key_id: Option<String>,
    /// The verdict: `VALID`, `REVOKED`, `EXPIRED`, `NOT_FOUND`, `MALFORMED`, or `UNCHECKED`
    /// when there was neither a vault nor a verifier to judge it by.
    code: String,
    live: bool,
}

#[derive(Serialize)]
struct Scanned {
    files: usize,
    commits: usize,
    finds: Vec<Find>,
    #[serde(skip)]
    live: usize,
}

impl Report for Scanned {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        for f in &self.finds {
            let place = match &f.commit {
                Some(c) => format!("{}:{} (commit {c})", f.path, f.line),
                None => format!("{}:{}", f.path, f.line),
            };
            let tag = if f.live { "LIVE" } else { "dead" };
            writeln!(h.out, "{tag:<4}  {:<10} {}  {place}", f.code, f.key)?;
        }
        writeln!(
            h.out,
            "{} key{} found ({} live) in {} file{} and {} commit{}",
            self.finds.len(),
            s(self.finds.len()),
            self.live,
            self.files,
            s(self.files),
            self.commits,
            s(self.commits)
        )
    }

    fn ok(&self) -> bool {
        self.live == 0
    }
}

pub(super) fn scan(ctx: &mut Ctx, a: ScanArgs) -> Result<()> {
    let verifier = judge(ctx, a.verifier.as_deref())?;
    let pattern = regex::Regex::new(mcp_key_verifier::keys::KEY_PATTERN)
        .expect("the key pattern is a valid regular expression");
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        a.paths.clone()
    };
    let mut out = Scanned {
        files: 0,
        commits: 0,
        finds: Vec::new(),
        live: 0,
    };
    let note = |text: &str, path: &str, line: usize, commit: Option<&str>, out: &mut Scanned| {
        for m in pattern.find_iter(text) {
            let f = judged(m.as_str(), verifier.as_ref(), ctx.now);
            out.live += usize::from(f.live);
            out.finds.push(Find {
                path: path.to_owned(),
                line: line + text[..m.start()].matches('\n').count(),
                commit: commit.map(str::to_owned),
                ..f
            });
        }
    };
    for root in &paths {
        for file in files_of(root, a.no_ignore)? {
            let Some(text) = read_text(&file) else {
                continue;
            };
            out.files += 1;
            note(&text, &file.display().to_string(), 1, None, &mut out);
        }
        if a.git {
            out.commits += history(root, &mut |text, path, line, commit| {
                note(text, path, line, Some(commit), &mut out)
            })?;
        }
    }
    ctx.emit(a.out.output(), &out)
}

/// What judges the keys found: the verifier file given, else the vault when there is one.
fn judge(ctx: &Ctx, verifier: Option<&Path>) -> Result<Option<Verifier>> {
    if let Some(p) = verifier {
        return Ok(Some(Verifier::from_file(p)?));
    }
    if !ctx.vault_path.exists() {
        return Ok(None);
    }
    let vault = ctx.store().open()?;
    Ok(Some(mcp_key_vault::verify::from_vault(&vault)))
}

/// A find, judged: its verdict and whether it is live (a server would accept it).
fn judged(key: &str, verifier: Option<&Verifier>, now: chrono::DateTime<chrono::Utc>) -> Find {
    let (code, key_id) = match verifier {
        Some(v) => {
            let verdict = v.verify_at(key, &[], now);
            (verdict.code, verdict.key.map(|k| k.id.clone()))
        }
        None => (Code::Malformed, None),
    };
    let unchecked = verifier.is_none() && mcp_key_verifier::keys::why_malformed(key).is_none();
    let code_text = if unchecked {
        "UNCHECKED".to_owned()
    } else {
        code.as_str().to_owned()
    };
    Find {
        path: String::new(),
        line: 0,
        commit: None,
        key: keyfmt::hint(key),
        key_id,
        live: unchecked || matches!(code, Code::Valid | Code::InsufficientPermissions),
        code: code_text,
    }
}

/// The files under `root`: what git tracks or would add (ignored files left out) in a work
/// tree, else every file below it (`.git` directories skipped).
fn files_of(root: &Path, no_ignore: bool) -> Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    if !no_ignore {
        let listed = Command::new("git")
            .arg("-C")
            .arg(root)
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .stderr(Stdio::null())
            .output();
        if let Ok(o) = listed {
            if o.status.success() {
                return Ok(o
                    .stdout
                    .split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        root.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(p))
                    })
                    .filter(|p| p.is_file())
                    .collect());
            }
        }
    }
    Ok(walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect())
}

/// A file's text, when it is a bounded text file (binary files, with a NUL in their first
/// 8 KiB, are skipped; invalid UTF-8 is read lossily: a key is ASCII).
fn read_text(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every line every commit of the repository at `root` added, in every branch: `note` gets
/// the line, the file, its line number in that commit and the commit. Returns how many
/// commits were read (0 outside a repository).
///
/// # Errors
/// [`Error::Io`] when git cannot be run.
fn history(root: &Path, note: &mut dyn FnMut(&str, &str, usize, &str)) -> Result<usize> {
    let dir = if root.is_file() {
        mcp_key_vault::fsio::parent_dir(root)
    } else {
        root.to_path_buf()
    };
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args([
            "log",
            "--all",
            "-p",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "-U0",
            "--format=commit %H",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("run git in", &dir, e))?;
    let stdout = child.stdout.take().expect("piped");
    let (mut commit, mut path, mut line, mut commits) = (String::new(), String::new(), 0, 0);
    for raw in io::BufReader::new(stdout).split(b'\n') {
        let raw = raw.map_err(|e| Error::io("read git's output in", &dir, e))?;
        let text = String::from_utf8_lossy(&raw);
        if let Some(c) = text.strip_prefix("commit ") {
            commit = c.chars().take(12).collect();
            commits += 1;
        } else if let Some(p) = text.strip_prefix("+++ b/") {
            path = p.to_owned();
        } else if let Some(h) = text.strip_prefix("@@ ") {
            // `@@ -a,b +c,d @@`: the added lines start at line c.
            line = h
                .split_whitespace()
                .find_map(|w| w.strip_prefix('+'))
                .and_then(|w| w.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if let Some(added) = text.strip_prefix('+') {
            if !text.starts_with("+++") {
                note(added, &path, line, &commit);
                line += 1;
            }
        }
    }
    let _ = child.wait();
    Ok(commits)
}
