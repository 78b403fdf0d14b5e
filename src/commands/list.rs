//! `list`: the keys as a table that fits the terminal, or as JSON.

use std::io;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::context::*;
use super::keys::join;
use super::output::{push_json_str, relative, Human, KeyView, KeyViewRef, Report};
use crate::cli::ListArgs;
use mcp_key_vault::display::{sanitize, truncate};
use mcp_key_vault::expires_within;
use mcp_key_vault::v2::{datetime, IdRef, TimeParts};
use mcp_key_vault::Look;
use mcp_key_vault::{KeyRecord, Status};
use mcp_key_verifier::time::write as write_time;

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
    mcp_key_vault::keyfmt::hint(k.secret.expose())
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
    passes_at(k.status(now), k.expires_at, a, now)
}

/// Whether `--active` and `--expiring` keep a key of this status and expiry.
fn passes_at(
    status: Status,
    expires_at: Option<DateTime<Utc>>,
    a: &ListArgs,
    now: DateTime<Utc>,
) -> bool {
    if a.active_only && status != Status::Active {
        return false;
    }
    a.expiring
        .is_none_or(|d| status == Status::Active && expires_within(expires_at, now, i64::from(d)))
}

/// When the key with this id was last used, as `serve` recorded it.
fn last_used(id: &str, usage: &Usage) -> Option<String> {
    usage
        .get(id)
        .and_then(|u| u.last_used_at.as_ref())
        .map(mcp_key_verifier::time::format)
}

type Usage = std::collections::BTreeMap<String, crate::key_usage::KeyUsage>;

pub(super) fn list(ctx: &mut Ctx, a: ListArgs) -> Result<()> {
    let vault = ctx.store().open()?;
    let now = ctx.now;
    let usage = super::usage::merged(&vault, &a.usage, ctx.now).unwrap_or_default();
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
    vault: &'a mcp_key_vault::Vault,
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
                last_used_at: last_used(k.id.as_str(), self.usage),
            })?;
        }
        seq.end()
    }
}

impl Report for Streamed<'_> {
    fn json(&self, out: &mut dyn io::Write) -> io::Result<()> {
        self.write_json_fast(out)
    }

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

/// A string to write as JSON, and whether it is plain (printable ASCII without `"` or `\`:
/// written as it is, no escaping pass).
#[derive(Clone, Copy)]
struct Text<'a>(&'a str, bool);

impl<'a> Text<'a> {
    fn of(s: &'a str) -> Text<'a> {
        Text(s, is_plain(s))
    }
    /// A string known to be plain (hex, a status word).
    fn plain(s: &'a str) -> Text<'a> {
        debug_assert!(is_plain(s));
        Text(s, true)
    }
    fn push(self, buf: &mut Vec<u8>) {
        if self.1 {
            buf.push(b'"');
            buf.extend_from_slice(self.0.as_bytes());
            buf.push(b'"');
        } else {
            push_json_str(buf, self.0);
        }
    }
}

/// One key's fields as `list --json` shows them, borrowed from a decoded record or from the
/// payload's bytes.
struct Fields<'a> {
    id: Text<'a>,
    name: &'a str,
    description: &'a str,
    created_at: TimeParts,
    expires_at: Option<TimeParts>,
    revoked_at: Option<TimeParts>,
    rotated_from: Option<Text<'a>>,
    rotated_to: Option<Text<'a>>,
    legacy: bool,
}

fn parts(t: &DateTime<Utc>) -> TimeParts {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

/// A stored id as text: a modern id's hex digits (plain) in `buf`, or the imported text.
fn id_text<'a>(id: &IdRef<'a>, buf: &'a mut [u8; 16]) -> Text<'a> {
    match id {
        IdRef::Hex(_) => Text::plain(id.as_str(buf)),
        IdRef::Text(t) => Text::of(t),
    }
}

impl Streamed<'_> {
    /// `list --json` written by hand: byte for byte what the `Serialize` impl above gives
    /// through `write_json` (the test `the_hand_written_json_is_serdes` holds it to that),
    /// but from records read in place (nothing decoded or allocated per key), with the
    /// escaping check made once per permission name rather than once per key, and no
    /// formatter calls per fragment. At 100,000 keys it is 45 MB of text.
    fn write_json_fast(&self, out: &mut dyn io::Write) -> io::Result<()> {
        const FLUSH_AT: usize = 64 * 1024;
        let keys = self.vault.keys();
        let dict: Vec<Text<'_>> = keys.dict().iter().map(|p| Text::of(p.as_str())).collect();
        let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_AT + 4096);
        let mut perms: Vec<Text<'_>> = Vec::new();
        let mut first = true;
        buf.push(b'[');
        for look in keys.looks() {
            let mut ids = [[0u8; 16]; 3];
            let [b0, b1, b2] = &mut ids;
            perms.clear();
            let (f, hint) = match &look {
                Look::Record(k) => {
                    perms.extend(k.permissions.iter().map(|p| Text::of(p.as_str())));
                    let f = Fields {
                        id: Text::of(k.id.as_str()),
                        name: &k.name,
                        description: &k.description,
                        created_at: parts(&k.created_at),
                        expires_at: k.expires_at.as_ref().map(parts),
                        revoked_at: k.revoked_at.as_ref().map(parts),
                        rotated_from: k.rotated_from.as_ref().map(|i| Text::of(i.as_str())),
                        rotated_to: k.rotated_to.as_ref().map(|i| Text::of(i.as_str())),
                        legacy: k.is_legacy(),
                    };
                    (f, self.a.show_keys.then(|| hint(k)))
                }
                Look::InPlace(r) => {
                    perms.extend(r.permission_indexes().map(|i| dict[i]));
                    let f = Fields {
                        id: id_text(&r.id, b0),
                        name: r.name,
                        description: r.description,
                        created_at: r.created_at,
                        expires_at: r.expires_at,
                        revoked_at: r.revoked_at,
                        rotated_from: r.rotated_from.as_ref().map(|i| id_text(i, b1)),
                        rotated_to: r.rotated_to.as_ref().map(|i| id_text(i, b2)),
                        legacy: r.is_legacy(),
                    };
                    let hint = self
                        .a
                        .show_keys
                        .then(|| mcp_key_vault::keyfmt::hint(r.secret().expose()));
                    (f, hint)
                }
            };
            let expires_at = f.expires_at.map(datetime);
            let status = Status::of(f.revoked_at.is_some(), expires_at, self.now);
            if !passes_at(status, expires_at, self.a, self.now) {
                continue;
            }
            let last_used_at = last_used(f.id.0, self.usage);
            buf.extend_from_slice(if first { b"\n  {" } else { b",\n  {" });
            first = false;
            render(
                &mut buf,
                &f,
                status,
                &perms,
                hint.as_deref(),
                last_used_at.as_deref(),
            );
            if buf.len() >= FLUSH_AT {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(if first { b"]\n" } else { b"\n]\n" });
        out.write_all(&buf)?;
        out.flush()
    }
}

/// Printable ASCII without `"` or `\`: JSON text as it is, for `write_json` too.
fn is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Appends one key's object (from its `{` on), in `write_json`'s pretty layout.
fn render(
    buf: &mut Vec<u8>,
    f: &Fields<'_>,
    status: Status,
    perms: &[Text<'_>],
    key_hint: Option<&str>,
    last_used_at: Option<&str>,
) {
    let opt = |buf: &mut Vec<u8>, v: Option<Text<'_>>| match v {
        Some(v) => v.push(buf),
        None => buf.extend_from_slice(b"null"),
    };
    let time = |buf: &mut Vec<u8>, t: TimeParts| {
        buf.push(b'"');
        write_time(buf, t.0, t.1);
        buf.push(b'"');
    };
    let opt_time = |buf: &mut Vec<u8>, t: Option<TimeParts>| match t {
        Some(t) => time(buf, t),
        None => buf.extend_from_slice(b"null"),
    };
    buf.extend_from_slice(b"\n    \"id\": ");
    f.id.push(buf);
    buf.extend_from_slice(b",\n    \"name\": ");
    Text::of(f.name).push(buf);
    buf.extend_from_slice(b",\n    \"description\": ");
    Text::of(f.description).push(buf);
    buf.extend_from_slice(b",\n    \"status\": ");
    Text::plain(status.as_str()).push(buf);
    buf.extend_from_slice(b",\n    \"created_at\": ");
    time(buf, f.created_at);
    buf.extend_from_slice(b",\n    \"expires_at\": ");
    opt_time(buf, f.expires_at);
    buf.extend_from_slice(b",\n    \"revoked_at\": ");
    opt_time(buf, f.revoked_at);
    buf.extend_from_slice(b",\n    \"permissions\": ");
    if perms.is_empty() {
        buf.extend_from_slice(b"[]");
    } else {
        buf.push(b'[');
        for (i, p) in perms.iter().enumerate() {
            buf.extend_from_slice(if i == 0 { b"\n      " } else { b",\n      " });
            p.push(buf);
        }
        buf.extend_from_slice(b"\n    ]");
    }
    buf.extend_from_slice(b",\n    \"rotated_from\": ");
    opt(buf, f.rotated_from);
    buf.extend_from_slice(b",\n    \"rotated_to\": ");
    opt(buf, f.rotated_to);
    buf.extend_from_slice(if f.legacy {
        b",\n    \"legacy\": true,"
    } else {
        b",\n    \"legacy\": false,"
    });
    if let Some(h) = key_hint {
        buf.extend_from_slice(b"\n    \"key_hint\": ");
        Text::of(h).push(buf);
        buf.push(b',');
    }
    buf.extend_from_slice(b"\n    \"last_used_at\": ");
    opt(buf, last_used_at.map(Text::of));
    buf.extend_from_slice(b"\n  }");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{JsonFlag, UsageArgs};
    use chrono::Duration;
    use mcp_key_vault::secret::SecretString;
    use mcp_key_vault::KeyHash;
    use mcp_key_vault::{NewKey, Vault};

    /// A vault of keys unlike each other, saved and read back, so that most records are
    /// read in place and the ones changed since are decoded.
    fn varied(now: DateTime<Utc>) -> Vault {
        let mut v = mcp_key_vault::test_vault();
        let names = [
            "plain",
            "",
            "quote \" and \\ backslash",
            "tab\tnew\nline \u{1}",
            "é ü 日本 🦀",
            "bidi \u{202e}evil\u{202c} and C1 \u{9b}2J and DEL \u{7f}",
        ];
        let perms: [&[&str]; 4] = [&[], &["info"], &["generate", "info", "health"], &["x:y"]];
        for (i, name) in names.iter().enumerate() {
            let expires_at = match i % 4 {
                0 => None,
                1 => Some(now - Duration::days(2)),
                2 => Some(now + Duration::days(5)),
                _ => Some(now + Duration::days(200) + Duration::nanoseconds(48_282_391)),
            };
            v.create_key(
                NewKey {
                    name: (*name).into(),
                    description: format!("d{i} {name}"),
                    expires_at,
                    permissions: perms[i % 4].iter().map(|p| p.parse().unwrap()).collect(),
                },
                now - Duration::milliseconds(1500 * i as i64),
            );
        }
        v.revoke(3, now);
        let keys = &mut v.payload_mut_unchecked().keys;
        keys[1].rotated_to = Some(keys[2].id.clone());
        keys[2].rotated_from = Some(keys[1].id.clone());
        keys[4].rotated_from = Some("legacy \u{202e}id".into());
        keys.push(mcp_key_vault::KeyRecord {
            id: "legacy \u{202e}id".into(),
            name: "imported".into(),
            description: String::new(),
            created_at: now - Duration::days(400),
            expires_at: None,
            revoked_at: None,
            permissions: vec!["generate".parse().unwrap()],
            metadata: serde_json::from_str(r#"{"owner":"ops"}"#).unwrap(),
            secret: SecretString::new("sk-legacy-0123456789abcdefghijklmnopqrstuv".into()),
            hash: KeyHash([7; 32]),
            rotated_from: None,
            rotated_to: None,
        });
        keys.push(mcp_key_vault::KeyRecord {
            id: "00112233aabbccdd".into(),
            name: "modern id, other secret".into(),
            description: String::new(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
            permissions: vec![],
            metadata: serde_json::Map::new(),
            secret: SecretString::new("mcp_not_the_modern_shape".into()),
            hash: KeyHash([9; 32]),
            rotated_from: None,
            rotated_to: None,
        });
        let mut v = Vault::open(&v.to_bytes(), &SecretString::new("p".into())).unwrap();
        // Two records decoded (and one changed) since the read: both kinds are rendered.
        v.payload_mut_unchecked().keys[5]
            .description
            .push_str(" (changed)");
        let _ = v.keys().get(0);
        v
    }

    fn json_args(active_only: bool, show_keys: bool, expiring: Option<u32>) -> ListArgs {
        ListArgs {
            active_only,
            show_keys,
            expiring,
            usage: UsageArgs { files: vec![] },
            out: JsonFlag { json: true },
        }
    }

    /// `list --json`'s hand-written renderer writes exactly the text the `Serialize` impl
    /// gives through `write_json`, for records read in place and decoded alike, under every
    /// filter, with hints and with usage.
    #[test]
    fn the_hand_written_json_is_serdes() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let v = varied(now);
        assert!(
            v.keys().decoded_count() < v.keys().len(),
            "some read in place"
        );
        let mut usage = Usage::new();
        usage.insert(
            v.keys().id(2).to_string(),
            crate::key_usage::KeyUsage {
                last_used_at: Some(now - Duration::seconds(30)),
                ..Default::default()
            },
        );
        let empty = Usage::new();
        let mut compared = 0;
        for (active_only, show_keys, expiring) in [
            (false, false, None),
            (true, false, None),
            (false, true, None),
            (false, false, Some(7)),
            (true, true, Some(0)),
            (false, false, Some(36_500)),
        ] {
            for usage in [&usage, &empty] {
                let a = json_args(active_only, show_keys, expiring);
                let r = Streamed {
                    vault: &v,
                    a: &a,
                    now,
                    usage,
                };
                let mut by_serde = Vec::new();
                crate::commands::output::write_json(&mut by_serde, &r).unwrap();
                let mut by_hand = Vec::new();
                r.json(&mut by_hand).unwrap();
                assert_eq!(
                    String::from_utf8(by_hand).unwrap(),
                    String::from_utf8(by_serde).unwrap(),
                    "active_only {active_only}, show_keys {show_keys}, expiring {expiring:?}"
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 12);
        // The comparison saw what it should: every kind of field, and an empty listing.
        let mut all = Vec::new();
        let a = json_args(false, true, None);
        let r = Streamed {
            vault: &v,
            a: &a,
            now,
            usage: &usage,
        };
        r.json(&mut all).unwrap();
        let all = String::from_utf8(all).unwrap();
        for needle in [
            r#""legacy": true"#,
            r#""rotated_from": "legacy \u202eid""#,
            r#""revoked_at": "2026-05-28T20:26:40Z""#,
            ".048282391Z",
            r#""permissions": []"#,
            r#""key_hint": "#,
            "\\\"",
            "\\u009b",
            "\\t",
            "日本",
        ] {
            assert!(all.contains(needle), "{needle} in {all}");
        }
        let last_used = all.matches(r#""last_used_at": "20"#).count();
        assert_eq!(last_used, 1);
        let none = mcp_key_vault::test_vault();
        let r = Streamed {
            vault: &none,
            a: &a,
            now,
            usage: &usage,
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        crate::commands::output::write_json(&mut x, &r).unwrap();
        r.json(&mut y).unwrap();
        assert_eq!((x.as_slice(), y.as_slice()), (&b"[]\n"[..], &b"[]\n"[..]));
    }
}
