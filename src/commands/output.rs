//! How results reach stdout: every command returns a [`Report`] (a `Serialize` struct),
//! printed by its human renderer, its quiet form, or serde_json.
//!
//! Invariant: JSON output escapes every character a terminal could act on (C1 controls,
//! bidi overrides) as `\uXXXX`, as human output does, so `jq -r` into a terminal is safe.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::Output;
use crate::error::{Error, Result};
use mcp_key_vault::display::needs_escape;
use mcp_key_vault::{KeyId, KeyRecord, Permission, Status};
use mcp_key_verifier::time::format as fmt_time;

/// What a human renderer may use besides the result: the writer and the terminal's manners.
pub struct Human<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Whether colour may be used.
    pub color: bool,
    /// The terminal width, when stdout is a terminal.
    pub width: Option<usize>,
    /// The time the command runs at.
    pub now: DateTime<Utc>,
}

impl Human<'_> {
    /// `text` in the colour of `status`, when colour is on.
    pub fn status_colored(&self, status: Status, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match status {
            Status::Active => "32",
            Status::Revoked => "31",
            Status::Expired => "33",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// A command's result.
pub trait Report: Serialize {
    /// Prints the result for people.
    ///
    /// # Errors
    /// A failed write to stdout.
    fn human(&self, h: &mut Human<'_>) -> io::Result<()>;

    /// Prints only the essential value (`--quiet`); by default the human form.
    ///
    /// # Errors
    /// A failed write to stdout.
    fn quiet(&self, h: &mut Human<'_>) -> io::Result<()> {
        self.human(h)
    }

    /// Writes the JSON form: [`write_json`] of the report, unless the report renders the
    /// same text faster itself.
    ///
    /// # Errors
    /// A failed write to stdout.
    fn json(&self, out: &mut dyn Write) -> io::Result<()> {
        write_json(out, self)
    }

    /// Whether the answer is "yes": a "no" (a key that does not verify, a failed check)
    /// exits 1 after the result is printed.
    fn ok(&self) -> bool {
        true
    }
}

/// The results of a command given several keys: the object itself when one key was
/// named (the shape these commands always had), an array of them when several were.
/// The shape follows the command line, never the data.
pub struct Many<R>(pub Vec<R>);

impl<R: Serialize> Serialize for Many<R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            all => all.serialize(s),
        }
    }
}

impl<R: Report> Report for Many<R> {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        self.0.iter().try_for_each(|r| r.human(h))
    }

    fn ok(&self) -> bool {
        self.0.iter().all(Report::ok)
    }
}

/// Prints `r` as `output` asks. The verdict of [`Report::ok`] decides the exit code even
/// when printing fails (a reader that went away must not turn a failed check into success).
///
/// # Errors
/// [`Error::Silent`] for a "no", [`Error::Io`] for a failed write.
pub fn emit<R: Report>(h: &mut Human<'_>, output: Output, r: &R) -> Result<()> {
    let shown = match output {
        Output::Json => r.json(h.out),
        Output::Human => r.human(h),
        Output::Quiet => r.quiet(h),
    };
    if !r.ok() {
        return Err(Error::Silent);
    }
    shown.map_err(stdout_error)
}

/// The error for a failed write to stdout.
pub fn stdout_error(e: io::Error) -> Error {
    Error::Io {
        context: "write to standard output".into(),
        source: e,
    }
}

/// Pretty JSON with terminal controls escaped, and a final newline.
///
/// # Errors
/// A failed write.
pub fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, v: &T) -> io::Result<()> {
    // serde_json writes in fragments of a few bytes; each through `dyn Write` is an
    // indirect call, so they gather in a local buffer first (`list --json` of 100,000 keys
    // writes 45 MB in about two million fragments).
    let mut chunks = Chunks {
        buf: zeroize::Zeroizing::new(Vec::with_capacity(Chunks::SIZE)),
        out,
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut chunks, SafeFormatter::default());
    v.serialize(&mut ser).map_err(io::Error::from)?;
    chunks.write_all(b"\n")?;
    chunks.flush()
}

/// Appends `s` as a JSON string exactly as [`write_json`] writes it: quoted, with quotes,
/// backslashes, controls and what a terminal acts on escaped (`list --json` writes strings
/// it knows to be plain without it).
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, SafeFormatter::default());
    serde::Serializer::serialize_str(&mut ser, s).expect("writing to a Vec cannot fail");
}

/// A write buffer in front of a `dyn Write`, passed on in chunks of at most
/// [`Chunks::SIZE`] bytes. Zeroizing and never grown: `create --json` writes a new key
/// through it, and no copy of it may be left behind in freed memory.
struct Chunks<'a> {
    buf: zeroize::Zeroizing<Vec<u8>>,
    out: &'a mut dyn Write,
}

impl Chunks<'_> {
    const SIZE: usize = 64 * 1024;
}

impl Write for Chunks<'_> {
    #[inline]
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.write_all(b)?;
        Ok(b.len())
    }
    #[inline]
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        if self.buf.len() + b.len() > self.buf.capacity() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
            if b.len() > self.buf.capacity() {
                // Larger than the whole buffer: straight through.
                return self.out.write_all(b);
            }
        }
        self.buf.extend_from_slice(b);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

/// Forwards formatter methods to the wrapped pretty formatter.
macro_rules! delegate {
    (first: $($m:ident),*) => {$(
        fn $m<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
            self.0.$m(w, first)
        }
    )*};
    ($($m:ident),*) => {$(
        fn $m<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
            self.0.$m(w)
        }
    )*};
}

/// serde_json's pretty formatter, escaping what serde_json leaves raw but a terminal acts on.
#[derive(Default)]
struct SafeFormatter(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        // Printable ASCII (serde_json has already escaped quotes, backslashes and the C0
        // controls) needs nothing: the common case, checked a word at a time.
        if !s.bytes().any(|b| b >= 0x7f) {
            return w.write_all(s.as_bytes());
        }
        let mut last = 0;
        for (i, c) in s.char_indices() {
            if needs_escape(c) {
                w.write_all(&s.as_bytes()[last..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                last = i + c.len_utf8();
            }
        }
        w.write_all(&s.as_bytes()[last..])
    }
    delegate!(
        begin_array,
        end_array,
        begin_object,
        end_object,
        begin_object_value
    );
    delegate!(end_array_value, end_object_value);
    delegate!(first: begin_array_value, begin_object_key);
}

/// The JSON shape of a key record shared by `list`, `view`, `revoke` and others. Never the
/// secret.
#[derive(Serialize, Debug)]
pub struct KeyView {
    /// Id.
    pub id: KeyId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, or null for never.
    pub expires_at: Option<String>,
    /// RFC 3339, or null.
    pub revoked_at: Option<String>,
    /// Permissions.
    pub permissions: Vec<Permission>,
    /// The key this one replaced.
    pub rotated_from: Option<KeyId>,
    /// The key that replaced this one.
    pub rotated_to: Option<KeyId>,
    /// Whether the key was imported from the Python tool.
    pub legacy: bool,
}

impl KeyView {
    /// The view of `k` at `now`.
    pub fn of(k: &KeyRecord, now: DateTime<Utc>) -> Self {
        KeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            description: k.description.clone(),
            status: k.status(now).as_str(),
            created_at: fmt_time(&k.created_at),
            expires_at: k.expires_at.as_ref().map(fmt_time),
            revoked_at: k.revoked_at.as_ref().map(fmt_time),
            permissions: k.permissions.clone(),
            rotated_from: k.rotated_from.clone(),
            rotated_to: k.rotated_to.clone(),
            legacy: k.is_legacy(),
        }
    }
}

/// [`KeyView`] without copying the record: the same JSON, field for field, for a listing
/// that renders thousands of records (`list --json`).
pub struct KeyViewRef<'a> {
    /// The record.
    pub key: &'a KeyRecord,
    /// The moment its status is taken at.
    pub now: DateTime<Utc>,
}

impl Serialize for KeyViewRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let k = self.key;
        let mut st = s.serialize_struct("KeyView", 11)?;
        st.serialize_field("id", &k.id)?;
        st.serialize_field("name", &k.name)?;
        st.serialize_field("description", &k.description)?;
        st.serialize_field("status", k.status(self.now).as_str())?;
        st.serialize_field("created_at", &fmt_time(&k.created_at))?;
        st.serialize_field("expires_at", &k.expires_at.as_ref().map(fmt_time))?;
        st.serialize_field("revoked_at", &k.revoked_at.as_ref().map(fmt_time))?;
        st.serialize_field("permissions", &k.permissions)?;
        st.serialize_field("rotated_from", &k.rotated_from)?;
        st.serialize_field("rotated_to", &k.rotated_to)?;
        st.serialize_field("legacy", &k.is_legacy())?;
        st.end()
    }
}

/// `2026-11-26 03:47 UTC`.
pub fn human_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "in 12 days", "3 days ago", "in 5 hours", "just now".
pub fn relative(t: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = *t - now;
    let (future, d) = if d >= chrono::Duration::zero() {
        (true, d)
    } else {
        (false, -d)
    };
    let amount = if d.num_hours() >= 36 {
        plural(whole_days(d), "day")
    } else if d.num_days() >= 1 {
        plural(d.num_days(), "day")
    } else if d.num_hours() >= 1 {
        plural(d.num_hours(), "hour")
    } else if d.num_minutes() >= 1 {
        plural(d.num_minutes(), "minute")
    } else {
        return "just now".into();
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// Whole days in a duration, rounded to the nearest day, so that a 90-day key read a second
/// after its creation shows 90 days, not 89.
pub fn whole_days(d: chrono::Duration) -> i64 {
    let s = d.num_seconds();
    (s + s.signum() * 43_200) / 86_400
}

/// `1 day`, `2 days`.
pub fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// `s` when `n` is not one.
pub fn s(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `list --json` renders [`KeyViewRef`]; every other command [`KeyView`]: the same JSON.
    #[test]
    fn the_borrowed_key_view_is_the_key_view() {
        let mut v = mcp_key_vault::test_vault();
        let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        for (i, exp) in [
            None,
            Some(now - chrono::Duration::days(1)),
            Some(now + chrono::Duration::days(3)),
        ]
        .into_iter()
        .enumerate()
        {
            v.create_key(
                mcp_key_vault::NewKey {
                    name: format!("k{i} \u{202e}x"),
                    description: "d\"q".into(),
                    expires_at: exp,
                    permissions: vec!["info".parse().unwrap()],
                },
                now,
            );
        }
        v.revoke(2, now);
        v.payload_mut_unchecked().keys[1].rotated_to = Some("abc".into());
        v.payload_mut_unchecked().keys[0].rotated_from = Some("legacy-id".into());
        for k in v.keys().iter() {
            let owned = serde_json::to_value(KeyView::of(k, now)).unwrap();
            let borrowed = serde_json::to_value(KeyViewRef { key: k, now }).unwrap();
            assert_eq!(owned, borrowed);
            let mut a = Vec::new();
            let mut b = Vec::new();
            write_json(&mut a, &KeyView::of(k, now)).unwrap();
            write_json(&mut b, &KeyViewRef { key: k, now }).unwrap();
            assert_eq!(a, b, "the same text, field order included");
        }
    }

    #[test]
    fn json_escapes_what_a_terminal_acts_on() {
        let mut out = Vec::new();
        write_json(
            &mut out,
            &serde_json::json!({"n": "a\u{9b}2J\u{202e}b\x1bc\"é"}),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""a\u009b2J\u202eb\u001bc\"é""#), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["n"], "a\u{9b}2J\u{202e}b\x1bc\"é");
    }
}
