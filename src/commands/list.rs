//! `list`: the keys as a table that fits the terminal, or as JSON.

use std::io;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::keys::join;
use super::output::{relative, Human, KeyView, KeyViewRef, Report};
use super::*;
use crate::cli::ListArgs;
use crate::display::{sanitize, truncate};
use crate::vault::{KeyRecord, Status};

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    key: KeyView,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hint: Option<String>,
    /// The last use `serve` saw, when usage data exists.
    last_used_at: Option<String>,
    #[serde(skip)]
    status: Status,
    #[serde(skip)]
    expiry: String,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Listing {
    keys: Vec<Listed>,
    #[serde(skip)]
    filtered: bool,
    #[serde(skip)]
    hints: bool,
}

fn expiry_cell(k: &KeyRecord, now: DateTime<Utc>) -> String {
    if let (Some(t), Some(next), Status::Active) = (&k.expires_at, &k.rotated_to, k.status(now)) {
        return format!("grace {}, replaced by {next}", relative(t, now));
    }
    match (&k.expires_at, k.status(now)) {
        (None, _) => "never".into(),
        (Some(t), Status::Expired) => format!("expired {}", relative(t, now)),
        (Some(t), _) => {
            let soon = k.expires_within(now, 14) && k.revoked_at.is_none();
            format!("{}{}", relative(t, now), if soon { " (soon!)" } else { "" })
        }
    }
}

fn hint(k: &KeyRecord) -> String {
    crate::keyfmt::hint(k.secret.expose())
}

/// The row of `k`, or `None` when the filters leave it out.
fn listed(
    k: &KeyRecord,
    a: &ListArgs,
    now: DateTime<Utc>,
    usage: &Usage,
    table: bool,
) -> Option<Listed> {
    if !passes(k, a, now) {
        return None;
    }
    Some(Listed {
        key: KeyView::of(k, now),
        key_hint: a.show_keys.then(|| hint(k)),
        last_used_at: last_used(k, usage),
        status: k.status(now),
        // The table's expiry column is text for people: JSON has the times themselves.
        expiry: if table {
            expiry_cell(k, now)
        } else {
            String::new()
        },
    })
}

/// Whether `--active` and `--expiring` keep `k`.
fn passes(k: &KeyRecord, a: &ListArgs, now: DateTime<Utc>) -> bool {
    let status = k.status(now);
    if a.active_only && status != Status::Active {
        return false;
    }
    a.expiring
        .is_none_or(|d| status == Status::Active && k.expires_within(now, i64::from(d)))
}

fn last_used(k: &KeyRecord, usage: &Usage) -> Option<String> {
    usage
        .get(k.id.as_str())
        .and_then(|u| u.last_used_at.as_ref())
        .map(crate::vault::records::fmt_time)
}

type Usage = std::collections::BTreeMap<String, crate::serve::usage::KeyUsage>;

pub(super) fn list(ctx: &mut Ctx, a: ListArgs) -> Result<()> {
    let vault = ctx.store().open()?;
    let now = ctx.now;
    let usage = super::usage::merged(&vault, &a.usage).unwrap_or_default();
    if a.out.output() == crate::cli::Output::Json {
        // Written key by key as each record is decoded, so 100,000 keys never sit in
        // memory as records, views and text at once.
        let r = Streamed {
            vault: &vault,
            a: &a,
            now,
            usage: &usage,
        };
        return ctx.emit(crate::cli::Output::Json, &r);
    }
    let keys = vault
        .keys()
        .each()
        .filter_map(|k| listed(&k, &a, now, &usage, true))
        .collect();
    let r = Listing {
        keys,
        filtered: a.active_only || a.expiring.is_some(),
        hints: a.show_keys,
    };
    ctx.emit(a.out.output(), &r)
}

/// `list --json`: the array of [`Listed`], rendered as the records are read.
struct Streamed<'a> {
    vault: &'a crate::vault::Vault,
    a: &'a ListArgs,
    now: DateTime<Utc>,
    usage: &'a Usage,
}

/// One element of `list --json`: [`Listed`]'s JSON, borrowing the record.
#[derive(Serialize)]
struct ListedRef<'a> {
    #[serde(flatten)]
    key: KeyViewRef<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hint: Option<String>,
    last_used_at: Option<String>,
}

impl Serialize for Streamed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for k in self.vault.keys().each() {
            if !passes(&k, self.a, self.now) {
                continue;
            }
            seq.serialize_element(&ListedRef {
                key: KeyViewRef {
                    key: &k,
                    now: self.now,
                },
                key_hint: self.a.show_keys.then(|| hint(&k)),
                last_used_at: last_used(&k, self.usage),
            })?;
        }
        seq.end()
    }
}

impl Report for Streamed<'_> {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        Listing {
            keys: self
                .vault
                .keys()
                .each()
                .filter_map(|k| listed(&k, self.a, self.now, self.usage, true))
                .collect(),
            filtered: self.a.active_only || self.a.expiring.is_some(),
            hints: self.a.show_keys,
        }
        .human(h)
    }
}

impl Listing {
    fn rows(&self) -> Vec<[String; 6]> {
        let mut rows = Vec::with_capacity(self.keys.len() + 1);
        let last = if self.hints { "KEY HINT" } else { "" };
        rows.push(["ID", "NAME", "STATUS", "EXPIRES (UTC)", "PERMISSIONS", last].map(String::from));
        for l in &self.keys {
            rows.push([
                l.key.id.to_string(),
                sanitize(&l.key.name),
                l.key.status.into(),
                l.expiry.clone(),
                join(&l.key.permissions, ","),
                l.key_hint.clone().unwrap_or_default(),
            ]);
        }
        rows
    }

    /// Column widths; on a terminal, the name column narrows first, then the permissions,
    /// never below a readable minimum (a narrower terminal wraps, as `ls -l` does).
    fn widths(&self, rows: &[[String; 6]], total: Option<usize>) -> [usize; 6] {
        let mut widths = [0usize; 6];
        for r in rows {
            for (w, c) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        if let Some(total) = total {
            let columns = if self.hints { 6 } else { 5 };
            let used = |w: &[usize; 6]| w[..columns].iter().sum::<usize>() + 2 * (columns - 1);
            for (col, min) in [(1, 8), (4, 10)] {
                let over = used(&widths).saturating_sub(total);
                widths[col] = widths[col].saturating_sub(over).max(min.min(widths[col]));
            }
        }
        widths
    }
}

impl Report for Listing {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        if self.keys.is_empty() {
            let m = if self.filtered { " match" } else { "" };
            return writeln!(
                h.out,
                "No keys{m}. Create one with: mcp-key-manager create \"My key\""
            );
        }
        let rows = self.rows();
        let widths = self.widths(&rows, h.width);
        let columns = if self.hints { 6 } else { 5 };
        for (n, r) in rows.iter().enumerate() {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate().take(columns) {
                let text = truncate(cell, widths[c]);
                let pad = widths[c].saturating_sub(text.chars().count());
                match self.keys.get(n.wrapping_sub(1)) {
                    Some(l) if c == 2 => line.push_str(&h.status_colored(l.status, &text)),
                    _ => line.push_str(&text),
                }
                if c + 1 < columns {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            writeln!(h.out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}
