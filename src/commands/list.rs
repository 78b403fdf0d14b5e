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

/// A row of the table.
struct Listed {
    key: KeyView,
    key_hint: Option<String>,
    status: Status,
    expiry: String,
}

/// The table: every row, for the column widths.
struct Listing {
    keys: Vec<Listed>,
    filtered: bool,
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

/// The table row of `k`, or `None` when the filters leave it out.
fn listed(k: &KeyRecord, a: &ListArgs, now: DateTime<Utc>) -> Option<Listed> {
    if !passes(k, a, now) {
        return None;
    }
    Some(Listed {
        key: KeyView::of(k, now),
        key_hint: a.show_keys.then(|| hint(k)),
        status: k.status(now),
        expiry: expiry_cell(k, now),
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
    // JSON is written key by key as each record is decoded, so 100,000 keys never sit in
    // memory as records, views and text at once; the table needs every row first.
    let r = Streamed {
        vault: &vault,
        a: &a,
        now,
        usage: &usage,
    };
    ctx.emit(a.out.output(), &r)
}

/// The listing: as JSON, an array of [`ListedRef`] rendered as the records are read; as a
/// table, a [`Listing`].
struct Streamed<'a> {
    vault: &'a crate::vault::Vault,
    a: &'a ListArgs,
    now: DateTime<Utc>,
    usage: &'a Usage,
}

/// One element of `list --json`: a key's view, its hint (`-k`) and its last use.
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
                .filter_map(|k| listed(&k, self.a, self.now))
                .collect(),
            filtered: self.a.active_only || self.a.expiring.is_some(),
            hints: self.a.show_keys,
        }
        .table(h)
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

impl Listing {
    fn table(&self, h: &mut Human<'_>) -> io::Result<()> {
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
