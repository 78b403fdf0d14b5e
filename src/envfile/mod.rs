//! The `.env` file: what the loaders read from it ([`analyze`]) and an editor that changes
//! only our assignments ([`apply_checked`]); pure functions from bytes to bytes.
//!
//! Invariant: [`EnvFile::parse`] followed by [`EnvFile::render`] gives back the input
//! byte for byte, and [`EnvFile::set`] changes only the assignments of the variable it
//! sets (every one of them, so a later duplicate cannot shadow the new value), keeping
//! their indentation, `export ` prefix, quote style and trailing comment. Invalid UTF-8
//! is carried through untouched. [`apply_checked`] edits only files that are unambiguous
//! for the variables it sets (see [`analyze`]): there, exactly one plain line (or none)
//! assigns each of them, so the edit cannot land inside another variable's value, and it
//! checks afterwards that python-dotenv reads the new values and every other value unchanged.

mod analysis;
mod dotenv;

pub use analysis::{analyze, Ambiguity, AmbiguityKind, Analysis};

/// A line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    None,
    Lf,
    CrLf,
}

impl Ending {
    fn bytes(self) -> &'static [u8] {
        match self {
            Ending::None => b"",
            Ending::Lf => b"\n",
            Ending::CrLf => b"\r\n",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Line {
    text: Vec<u8>,
    ending: Ending,
}

/// Where the parts of an assignment line are.
#[derive(Debug, Clone, Copy)]
struct Assignment {
    key: (usize, usize),
    /// The value as written, quotes included.
    value: (usize, usize),
    quote: Option<u8>,
}

/// A parsed env file.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvFile {
    lines: Vec<Line>,
}

/// The file holds `MCP_API_KEY`: `Debug` shows its shape, never its bytes.
impl std::fmt::Debug for EnvFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvFile")
            .field("lines", &self.lines.len())
            .finish_non_exhaustive()
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn parse_assignment(t: &[u8]) -> Option<Assignment> {
    let mut i = 0;
    while i < t.len() && is_blank(t[i]) {
        i += 1;
    }
    if t[i..].starts_with(b"export") && t.get(i + 6).is_some_and(|&b| is_blank(b)) {
        i += 6;
        while i < t.len() && is_blank(t[i]) {
            i += 1;
        }
    }
    let ks = i;
    if !t
        .get(i)
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
    {
        return None;
    }
    while i < t.len() && (t[i].is_ascii_alphanumeric() || t[i] == b'_' || t[i] == b'.') {
        i += 1;
    }
    let ke = i;
    while i < t.len() && is_blank(t[i]) {
        i += 1;
    }
    if t.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    while i < t.len() && is_blank(t[i]) {
        i += 1;
    }
    let vs = i;
    if let Some(&q) = t.get(i).filter(|&&b| b == b'"' || b == b'\'') {
        let mut j = i + 1;
        while j < t.len() {
            if q == b'"' && t[j] == b'\\' {
                j += 2;
                continue;
            }
            if t[j] == q {
                return Some(Assignment {
                    key: (ks, ke),
                    value: (vs, j + 1),
                    quote: Some(q),
                });
            }
            j += 1;
        }
        // An unterminated quote: treat the rest of the line as an unquoted value.
    }
    let mut ve = t.len();
    for j in vs..t.len() {
        if t[j] == b'#' && (j == vs || is_blank(t[j - 1])) {
            ve = j;
            break;
        }
    }
    while ve > vs && is_blank(t[ve - 1]) {
        ve -= 1;
    }
    Some(Assignment {
        key: (ks, ke),
        value: (vs, ve),
        quote: None,
    })
}

fn unquote(raw: &[u8], quote: Option<u8>) -> String {
    match quote {
        Some(b'\'') => String::from_utf8_lossy(&raw[1..raw.len() - 1]).into_owned(),
        Some(_) => {
            let inner = &raw[1..raw.len() - 1];
            let mut out = Vec::with_capacity(inner.len());
            let mut i = 0;
            while i < inner.len() {
                if inner[i] == b'\\' && i + 1 < inner.len() {
                    out.push(match inner[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                    i += 2;
                } else {
                    out.push(inner[i]);
                    i += 1;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        None => String::from_utf8_lossy(raw).into_owned(),
    }
}

fn needs_quotes(v: &str) -> bool {
    v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/+=@,".contains(&b))
}

fn quoted(v: &str, quote: Option<u8>) -> Vec<u8> {
    match quote {
        // python-dotenv unescapes `\\` and `\'` even between single quotes.
        Some(b'\'') if !v.contains(['\'', '\\']) => format!("'{v}'").into_bytes(),
        Some(_) => format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")).into_bytes(),
        None if needs_quotes(v) => quoted(v, Some(b'"')),
        None => v.as_bytes().to_vec(),
    }
}

impl EnvFile {
    /// Splits bytes into lines, remembering each line's ending.
    pub fn parse(bytes: &[u8]) -> EnvFile {
        let mut lines = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    let (text, ending) = if n > 0 && rest[n - 1] == b'\r' {
                        (&rest[..n - 1], Ending::CrLf)
                    } else {
                        (&rest[..n], Ending::Lf)
                    };
                    lines.push(Line {
                        text: text.to_vec(),
                        ending,
                    });
                    rest = &rest[n + 1..];
                }
                None => {
                    lines.push(Line {
                        text: rest.to_vec(),
                        ending: Ending::None,
                    });
                    rest = &[];
                }
            }
        }
        EnvFile { lines }
    }

    /// The file's bytes.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for l in &self.lines {
            out.extend_from_slice(&l.text);
            out.extend_from_slice(l.ending.bytes());
        }
        out
    }

    /// The value of `key` as a dotenv loader would read it (the last assignment wins).
    pub fn get(&self, key: &str) -> Option<String> {
        self.lines.iter().rev().find_map(|l| {
            let a = parse_assignment(&l.text)?;
            (&l.text[a.key.0..a.key.1] == key.as_bytes())
                .then(|| unquote(&l.text[a.value.0..a.value.1], a.quote))
        })
    }

    /// Sets `key` to `value`: every assignment of `key` is rewritten in place; if there
    /// is none, one is appended with the file's own line ending.
    pub fn set(&mut self, key: &str, value: &str) {
        let mut found = false;
        for l in &mut self.lines {
            let Some(a) = parse_assignment(&l.text) else {
                continue;
            };
            if &l.text[a.key.0..a.key.1] != key.as_bytes() {
                continue;
            }
            found = true;
            let rest = &l.text[a.value.1..];
            let mut text = l.text[..a.value.0].to_vec();
            text.extend_from_slice(&quoted(value, a.quote));
            // `K= # note` has an empty value right before its comment; without a blank
            // the new unquoted value would run into the comment (`K=v# note` reads `v# note`).
            if a.quote.is_none() && rest.first() == Some(&b'#') {
                text.push(b' ');
            }
            text.extend_from_slice(rest);
            l.text = text;
        }
        if found {
            return;
        }
        let ending = self
            .lines
            .iter()
            .map(|l| l.ending)
            .find(|e| *e != Ending::None)
            .unwrap_or(Ending::Lf);
        if let Some(last) = self.lines.last_mut() {
            if last.ending == Ending::None {
                last.ending = ending;
            }
        }
        let mut text = key.as_bytes().to_vec();
        text.push(b'=');
        text.extend_from_slice(&quoted(value, None));
        self.lines.push(Line { text, ending });
    }
}

/// Applies `assignments` to the bytes of an env file.
pub fn apply(bytes: &[u8], assignments: &[(&str, &str)]) -> Vec<u8> {
    let mut f = EnvFile::parse(bytes);
    for (k, v) in assignments {
        f.set(k, v);
    }
    f.render()
}

/// Why [`apply_checked`] refused to edit.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// The loaders could read the file differently for a variable being set; the findings
    /// say where and why (never a value).
    Ambiguous(Vec<Ambiguity>),
    /// The name is not `[A-Za-z_][A-Za-z0-9_.]*`, or starts with `export` (which docker
    /// compose strips).
    BadName(String),
    /// The value of this variable holds a byte the loaders would read differently (outside
    /// printable ASCII, or one of `"'`#$\\`), so it cannot be written unambiguously.
    UnsafeValue(String),
    /// After the edit python-dotenv did not read exactly the new values and the old others:
    /// a bug of the editor, reported rather than written.
    Unconfirmed,
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvError::Ambiguous(found) => {
                write!(
                    f,
                    "the env file could be read differently by python-dotenv, Node's --env-file \
                     or docker compose; fix it by hand (one plain NAME=VALUE line per variable):"
                )?;
                for a in found {
                    write!(f, "\n  {a}")?;
                }
                Ok(())
            }
            EnvError::BadName(_) => write!(f, "not a variable name an env file can hold"),
            EnvError::UnsafeValue(name) => write!(
                f,
                "the value for {name} holds characters that env-file loaders read differently"
            ),
            EnvError::Unconfirmed => write!(
                f,
                "the edited env file did not read back as intended; it was not written"
            ),
        }
    }
}

impl std::error::Error for EnvError {}

/// docker compose strips a leading `export` even without a blank, so such names are refused.
fn is_plain_name(n: &str) -> bool {
    !n.starts_with("export")
        && n.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Applies `assignments` like [`apply`], but only to a file that is unambiguous for every
/// name being set (or whose only fault is a value the edit replaces), with values every
/// loader reads the same way.
///
/// # Errors
/// [`EnvError::Ambiguous`] with the findings for the names being set;
/// [`EnvError::BadName`] / [`EnvError::UnsafeValue`] for what cannot be written plainly;
/// [`EnvError::Unconfirmed`] if the result does not read back as intended.
///
/// # Security
/// Messages name lines and variables, never values.
pub fn apply_checked(bytes: &[u8], assignments: &[(&str, &str)]) -> Result<Vec<u8>, EnvError> {
    for (k, v) in assignments {
        if !is_plain_name(k) {
            return Err(EnvError::BadName((*k).to_owned()));
        }
        if !v.bytes().all(|b| analysis_safe(b) || b == b' ') {
            return Err(EnvError::UnsafeValue((*k).to_owned()));
        }
    }
    let names: Vec<&str> = assignments.iter().map(|(k, _)| *k).collect();
    let before = analyze(bytes);
    let found = editable_in(&before, &names)?;
    let out = apply(bytes, assignments);
    let after = analyze(&out);
    // The last assignment of a name wins, as in `apply`.
    let wanted = |name: &str| {
        assignments
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    };
    let same_others = before
        .values()
        .filter(|(k, _)| wanted(k).is_none())
        .eq(after.values().filter(|(k, _)| wanted(k).is_none()));
    let new_values = names.iter().all(|n| after.value(n) == wanted(n));
    if !same_others || !new_values || after.is_ambiguous_for(&names) {
        return Err(if found.is_empty() {
            EnvError::Unconfirmed
        } else {
            EnvError::Ambiguous(found)
        });
    }
    Ok(out)
}

/// Whether [`apply_checked`] would edit `names` in this file, without editing it: for a
/// command that must refuse before it changes anything else (`create -u`, `rotate -u`,
/// `use` before it records the event). The file can change before the write, so the write
/// itself must still go through [`apply_checked`].
///
/// # Errors
/// [`EnvError::Ambiguous`] with the findings for `names`.
pub fn editable(bytes: &[u8], names: &[&str]) -> Result<(), EnvError> {
    editable_in(&analyze(bytes), names).map(drop)
}

/// The findings for `names` the edit tolerates (a value it replaces), or the refusal.
fn editable_in(a: &Analysis, names: &[&str]) -> Result<Vec<Ambiguity>, EnvError> {
    let found = a.findings_for(names);
    // A value the loaders read differently, on the one line that assigns the name and is
    // otherwise plain, is replaced by ours — which cures it; the re-read after the edit
    // confirms. Anything else (where the line is, which line it is, how many there are) is
    // refused.
    let value_only = |f: &Ambiguity| {
        f.name.is_some()
            && matches!(
                f.kind,
                AmbiguityKind::UnsafeValue | AmbiguityKind::EmptyValueComment
            )
    };
    if found.iter().all(value_only) {
        Ok(found)
    } else {
        // Name only what the user must fix: the value faults go away with the edit.
        Err(EnvError::Ambiguous(
            found.into_iter().filter(|f| !value_only(f)).collect(),
        ))
    }
}

fn analysis_safe(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"'`#$\\".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let f = EnvFile::parse(b"MCP_API_KEY=mcp_0123456789abcdef_topsecret\n");
        let shown = format!("{f:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("116, 111"),
            "{shown}"
        );
    }

    #[test]
    fn render_is_identity() {
        for s in [
            &b""[..],
            b"A=1",
            b"A=1\n",
            b"\n\n",
            b"A=1\r\nB=2\r\n",
            b"# c\r\n\nexport X='y'\n\xff\xfe\n",
            b"\r\r\n\r",
        ] {
            assert_eq!(EnvFile::parse(s).render(), s);
        }
    }

    #[test]
    fn set_replaces_in_place_keeping_style() {
        let src = b"# top\nexport MCP_API_KEY=\"old\" # prod\nOTHER=1\n  MCP_API_KEY = 'old2'\r\n";
        let out = apply(src, &[("MCP_API_KEY", "new_1")]);
        assert_eq!(
            out,
            b"# top\nexport MCP_API_KEY=\"new_1\" # prod\nOTHER=1\n  MCP_API_KEY = 'new_1'\r\n"
        );
    }

    #[test]
    fn set_appends_with_the_files_line_ending() {
        assert_eq!(
            apply(b"A=1\r\nB=2", &[("C", "x")]),
            b"A=1\r\nB=2\r\nC=x\r\n"
        );
        assert_eq!(apply(b"", &[("C", "x")]), b"C=x\n");
        assert_eq!(apply(b"A=1", &[("C", "x")]), b"A=1\nC=x\n");
    }

    #[test]
    fn get_reads_like_dotenv() {
        let f = EnvFile::parse(b"A=1 # c\nB=\"x\\\"y\"\nA='two'\n#A=3\nexport  C=c\n");
        assert_eq!(f.get("A").as_deref(), Some("two"));
        assert_eq!(f.get("B").as_deref(), Some("x\"y"));
        assert_eq!(f.get("C").as_deref(), Some("c"));
        assert_eq!(f.get("D"), None);
    }

    #[test]
    fn comment_and_lookalike_lines_are_left_alone() {
        let src = b"#MCP_API_KEY=x\nMCP_API_KEY_OLD=y\nXMCP_API_KEY=z\n";
        let out = apply(src, &[("MCP_API_KEY", "k")]);
        assert_eq!(
            out,
            b"#MCP_API_KEY=x\nMCP_API_KEY_OLD=y\nXMCP_API_KEY=z\nMCP_API_KEY=k\n"
        );
    }

    // ---- issue 11, finding 1: the six files where `check` passed and python-dotenv loaded
    // something else. Each must be ambiguous for the two variables, and `apply_checked` must
    // refuse it, naming lines but never values.

    const OURS: [&str; 2] = ["MCP_API_KEY", "API_KEY_REQUIRED"];
    const GOOD: &str =
        "mcp_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000";

    fn assert_refused(file: &[u8], kind: AmbiguityKind) -> Analysis {
        let a = analyze(file);
        assert!(a.is_ambiguous_for(&OURS), "{a:?}");
        assert!(
            a.findings_for(&OURS).iter().any(|f| f.kind == kind),
            "{kind:?} missing in {a:?}"
        );
        match apply_checked(file, &[("MCP_API_KEY", GOOD), ("API_KEY_REQUIRED", "true")]) {
            Err(EnvError::Ambiguous(found)) => {
                assert!(found.iter().any(|f| f.kind == kind));
                let shown = EnvError::Ambiguous(found).to_string();
                for secret in ["evil", "hidden", "false", GOOD] {
                    assert!(!shown.contains(secret), "{shown}");
                }
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        a
    }

    #[test]
    fn lone_cr_hiding_later_assignments() {
        let file = format!(
            "MCP_API_KEY={GOOD}\nAPI_KEY_REQUIRED=true # set by use\rAPI_KEY_REQUIRED=false\rMCP_API_KEY=evil_key_0001\n"
        );
        // The old reader saw one line ending in a comment; python-dotenv sees three lines.
        assert_eq!(
            EnvFile::parse(file.as_bytes())
                .get("API_KEY_REQUIRED")
                .as_deref(),
            Some("true")
        );
        let a = assert_refused(file.as_bytes(), AmbiguityKind::LoneCr);
        assert_eq!(a.value("API_KEY_REQUIRED"), Some("false"));
        assert_eq!(a.value("MCP_API_KEY"), Some("evil_key_0001"));
    }

    #[test]
    fn double_quoted_multi_line_value_swallowing_our_lines() {
        let file = format!("NOTE=\"see below\nMCP_API_KEY={GOOD}\nAPI_KEY_REQUIRED=true\nend\"\n");
        assert_eq!(
            EnvFile::parse(file.as_bytes())
                .get("MCP_API_KEY")
                .as_deref(),
            Some(GOOD)
        );
        let a = assert_refused(file.as_bytes(), AmbiguityKind::MultiLineValue);
        assert_eq!(a.value("MCP_API_KEY"), None);
        assert_eq!(a.value("API_KEY_REQUIRED"), None);
        assert!(a.value("NOTE").is_some_and(|v| v.contains('\n')));
    }

    #[test]
    fn single_quoted_multi_line_value_swallowing_our_lines() {
        let file = format!("NOTE='x\nMCP_API_KEY={GOOD}\nAPI_KEY_REQUIRED=true\n'\n");
        let a = assert_refused(file.as_bytes(), AmbiguityKind::MultiLineValue);
        assert_eq!(a.value("MCP_API_KEY"), None);
        assert_eq!(a.value("API_KEY_REQUIRED"), None);
    }

    #[test]
    fn form_feed_and_vertical_tab_before_the_equals_sign() {
        let file = format!(
            "MCP_API_KEY={GOOD}\nAPI_KEY_REQUIRED=true\nMCP_API_KEY\x0c=evil_key_0002\nAPI_KEY_REQUIRED\x0b=false\n"
        );
        assert_eq!(
            EnvFile::parse(file.as_bytes())
                .get("MCP_API_KEY")
                .as_deref(),
            Some(GOOD)
        );
        let a = assert_refused(file.as_bytes(), AmbiguityKind::UnusualSpace);
        assert_eq!(a.value("MCP_API_KEY"), Some("evil_key_0002"));
        assert_eq!(a.value("API_KEY_REQUIRED"), Some("false"));
        assert!(a
            .findings_for(&OURS)
            .iter()
            .any(|f| f.kind == AmbiguityKind::Repeated));
    }

    #[test]
    fn bare_api_key_required_line() {
        let file = format!("MCP_API_KEY={GOOD}\nAPI_KEY_REQUIRED=true\nAPI_KEY_REQUIRED\n");
        assert_eq!(
            EnvFile::parse(file.as_bytes())
                .get("API_KEY_REQUIRED")
                .as_deref(),
            Some("true")
        );
        let a = assert_refused(file.as_bytes(), AmbiguityKind::BareName);
        // dotenv_values gives None, so load_dotenv leaves the variable unset.
        assert_eq!(a.value("API_KEY_REQUIRED"), None);
        assert_eq!(a.value("MCP_API_KEY"), Some(GOOD));
    }

    #[test]
    fn no_break_space_before_the_equals_sign() {
        let file =
            format!("MCP_API_KEY={GOOD}\nAPI_KEY_REQUIRED=true\nMCP_API_KEY\u{a0}=evil_key_0003\n");
        let a = assert_refused(file.as_bytes(), AmbiguityKind::UnusualSpace);
        assert_eq!(a.value("MCP_API_KEY"), Some("evil_key_0003"));
    }

    #[test]
    fn use_never_rewrites_a_line_inside_another_value() {
        // The old editor rewrote the second line, inside NOTE's value.
        let file = b"NOTE=\"a\nMCP_API_KEY=old\nb\"\n";
        let old = apply(file, &[("MCP_API_KEY", "new")]);
        assert_eq!(old, b"NOTE=\"a\nMCP_API_KEY=new\nb\"\n");
        assert!(matches!(
            apply_checked(file, &[("MCP_API_KEY", "new")]),
            Err(EnvError::Ambiguous(_))
        ));
    }

    #[test]
    fn a_plain_file_is_unambiguous_and_edited_in_place() {
        let file = b"# app\r\nPORT=8000\r\n  export MCP_API_KEY = \"old\" # prod\r\nAPI_KEY_REQUIRED=false\r\nX='a b'\r\n";
        let a = analyze(file);
        assert!(a.findings().is_empty(), "{a:?}");
        assert_eq!(a.value("MCP_API_KEY"), Some("old"));
        assert_eq!(a.value("X"), Some("a b"));
        let out =
            apply_checked(file, &[("MCP_API_KEY", GOOD), ("API_KEY_REQUIRED", "true")]).unwrap();
        let want = format!(
            "# app\r\nPORT=8000\r\n  export MCP_API_KEY = \"{GOOD}\" # prod\r\nAPI_KEY_REQUIRED=true\r\nX='a b'\r\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn other_variables_do_not_make_ours_ambiguous() {
        let file = b"A=1\nA=2\nB=\"x\\\"y\"\nC\nMCP_API_KEY=k1\n";
        // `C` has no `=` and comes before an assignment: Node glues it to the next name.
        let a = analyze(file);
        assert!(a.is_ambiguous_for(&["MCP_API_KEY"]));
        let file = b"A=1\nA=2\nB=\"x\\\"y\"\nMCP_API_KEY=k1\nAPI_KEY_REQUIRED=true\n";
        let a = analyze(file);
        assert!(!a.is_ambiguous_for(&OURS), "{a:?}");
        assert!(a.is_ambiguous_for(&["A"]));
        assert_eq!(a.value("B"), Some("x\"y"));
    }

    #[test]
    fn refuses_values_and_names_it_cannot_write_plainly() {
        assert_eq!(
            apply_checked(b"", &[("MCP_API_KEY", "a$b")]),
            Err(EnvError::UnsafeValue("MCP_API_KEY".into()))
        );
        assert_eq!(
            apply_checked(b"", &[("A B", "x")]),
            Err(EnvError::BadName("A B".into()))
        );
        assert_eq!(
            apply_checked(b"", &[("K.v", "a b")]).unwrap(),
            b"K.v=\"a b\"\n"
        );
    }

    #[test]
    fn analysis_debug_never_shows_values() {
        let a = analyze(b"MCP_API_KEY=mcp_0123456789abcdef_topsecret\n");
        assert!(!format!("{a:?}").contains("topsecret"));
    }

    #[test]
    fn single_quotes_are_left_when_the_value_has_a_backslash() {
        let out = apply(b"A='x'\n", &[("A", "a\\b")]);
        assert_eq!(analyze(&out).value("A"), Some("a\\b"));
    }

    /// Every quote scan stops at the next line's opening quote (an opener is never escaped),
    /// so the port stays linear even on files made of unclosed or escaped quotes.
    #[test]
    fn unclosed_quotes_on_every_line_stay_fast() {
        for opener in ["A=\"\\\n", "'\n", "A='x\n", "K=\"\\\"\n"] {
            let file = opener.repeat((1 << 18) / opener.len());
            let t = std::time::Instant::now();
            let a = analyze(file.as_bytes());
            assert!(a.is_ambiguous_for(&OURS) || a.values().count() <= 2);
            assert!(
                t.elapsed() < std::time::Duration::from_secs(5),
                "{opener:?}: {:?}",
                t.elapsed()
            );
        }
    }

    #[test]
    fn a_value_only_fault_is_cured_by_the_edit() {
        // python-dotenv 1.2 reads "", older releases the comment: `use` fills it in plainly.
        let out = apply_checked(
            b"MCP_API_KEY= # filled by `use`\nAPI_KEY_REQUIRED=true\n",
            &[("MCP_API_KEY", GOOD)],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("MCP_API_KEY= {GOOD} # filled by `use`\nAPI_KEY_REQUIRED=true\n")
        );
        let out = apply_checked(
            b"API_KEY_REQUIRED=tr$ue#x\n",
            &[("API_KEY_REQUIRED", "true")],
        )
        .unwrap();
        assert_eq!(out, b"API_KEY_REQUIRED=true\n");
        // Text after a closing quote is not cured: compose reads it as another assignment.
        assert!(matches!(
            apply_checked(b"MCP_API_KEY=\"x\"junk\n", &[("MCP_API_KEY", GOOD)]),
            Err(EnvError::Ambiguous(_))
        ));
    }

    #[test]
    fn editable_agrees_with_apply_checked() {
        let cases: [&[u8]; 4] = [
            b"MCP_API_KEY=a\nMCP_API_KEY=b\n",
            b"MCP_API_KEY= # later\n",
            b"A=1\rMCP_API_KEY=x\n",
            b"PORT=1\n",
        ];
        for c in cases {
            let pre = editable(c, &OURS);
            let edit = apply_checked(c, &[("MCP_API_KEY", GOOD), ("API_KEY_REQUIRED", "true")]);
            assert_eq!(
                pre.is_ok(),
                edit.is_ok(),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn invalid_utf8_elsewhere_is_kept_and_a_broken_value_replaced() {
        let file = b"# caf\xe9 (latin-1)\nA=\xff\xfe\nMCP_API_KEY=\xc3\x28old\r\nB='\xc3\x28'\n";
        let a = analyze(file);
        assert_eq!(a.invalid_utf8_line(), Some(1));
        let out =
            apply_checked(file, &[("MCP_API_KEY", GOOD), ("API_KEY_REQUIRED", "true")]).unwrap();
        let want = [
            &b"# caf\xe9 (latin-1)\nA=\xff\xfe\nMCP_API_KEY="[..],
            GOOD.as_bytes(),
            b"\r\nB='\xc3\x28'\nAPI_KEY_REQUIRED=true\n",
        ]
        .concat();
        assert_eq!(out, want);
        // A last line without `=` would swallow the appended assignment in Node 20.
        let mut tail = file.to_vec();
        tail.extend_from_slice(b"\xf0\x28\x8c\x28");
        match apply_checked(&tail, &[("API_KEY_REQUIRED", "true")]) {
            Err(EnvError::Ambiguous(found)) => {
                assert_eq!(found.len(), 1);
                assert_eq!(
                    (found[0].line, found[0].kind),
                    (5, AmbiguityKind::NotAnAssignment)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
