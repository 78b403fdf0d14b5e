//! What the loaders would make of an env file: the values python-dotenv loads, and every
//! place where python-dotenv, Node's `--env-file`, docker compose's `env_file` (or another
//! version of one of them) could load something else. The grammar and the table of
//! disagreements are in `docs/envfile.md`.
//!
//! Invariant: a variable is unambiguous only when every line that any loader could read as
//! assigning it is in the *plain form* on which all of them agree, there is exactly one
//! such line, python-dotenv's value equals the plain reading of that line, and nothing in
//! the file can make a loader read lines in another grouping (a lone `\r`, a multi-line or
//! unclosed quote, a line Node joins to the next, an unusual line break). In doubt, the
//! finding is raised. A finding names a line and a variable, never a value.

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

use super::dotenv;

/// What makes a line ambiguous.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AmbiguityKind {
    /// A `\r` that is not part of `\r\n`: python-dotenv starts a new line there, Node drops it.
    LoneCr,
    /// A quoted value (or name) that python-dotenv reads across several lines.
    MultiLineValue,
    /// A value that opens a quote it does not close on the same line: Node reads on to the
    /// next such quote, python-dotenv to the next unescaped one or not at all.
    UnclosedQuote,
    /// A line that is neither empty, a comment starting in column 1, nor `NAME=…` (blanks
    /// only, an indented comment, a bare word): Node 20 joins it to the next assignment's name.
    NotAnAssignment,
    /// `=value` with no name: Node 20 stops reading the file there.
    EmptyName,
    /// The variable is assigned on more than one line.
    Repeated,
    /// `NAME` without `=`: dotenv_values gives None and load_dotenv leaves it unset, Node
    /// ignores it, compose takes the value from its own environment.
    BareName,
    /// A form feed, vertical tab, no-break space, other Unicode space, control character or
    /// non-ASCII character before the name or `=`: python-dotenv reads it as a blank, Node
    /// as part of the name.
    UnusualSpace,
    /// A tab before the name or before `=`: Node 20 keeps it in the name.
    Tab,
    /// A byte-order mark before the name: python-dotenv drops it, Node keeps it in the name.
    ByteOrderMark,
    /// A quoted name (`'NAME'=…`): only python-dotenv unquotes it.
    QuotedName,
    /// `export` followed by a tab or several spaces: Node 20 then misreads the name.
    ExportSpacing,
    /// A value the loaders unquote, unescape, expand, trim or cut differently (`$`, `\`,
    /// `#`, quotes, backticks, tabs and other blanks, non-ASCII or control characters, inner
    /// blanks, text after a closing quote).
    UnsafeValue,
    /// `NAME= # comment`: python-dotenv 1.2 reads an empty value, older releases the comment.
    EmptyValueComment,
    /// `NAME: value` or `NAME value`: compose reads the first as an assignment, the others not.
    OtherSeparator,
    /// A vertical tab, form feed, U+001C–U+001E, U+0085, U+2028 or U+2029: line breaks for
    /// Python's `splitlines` and JavaScript's `m` regexes, not for python-dotenv or Node.
    UnusualLineBreak,
    /// A name starting with `export` (`export=1`, `exporter=1`): docker compose strips the
    /// prefix and reads another name.
    ExportName,
    /// Text after a closing quote: docker compose reads it as another assignment, python-dotenv
    /// skips the line, Node ignores the text.
    TextAfterQuote,
    /// The reading of the line could not be confirmed (python-dotenv's value differs from the
    /// plain reading).
    Unclassified,
}

impl AmbiguityKind {
    fn describe(self) -> &'static str {
        use AmbiguityKind::*;
        match self {
            LoneCr => {
                "holds a carriage return that does not end a CRLF; python-dotenv starts a \
                 new line there and Node drops it, so they read different assignments"
            }
            MultiLineValue => {
                "starts a quoted value that python-dotenv reads across several lines; lines \
                 inside it are not assignments for python-dotenv but may be for other loaders"
            }
            UnclosedQuote => {
                "opens a quote that is not closed on the same line; loaders disagree on \
                 where the value ends"
            }
            NotAnAssignment => {
                "is neither empty, a comment starting in column 1, nor NAME=VALUE; Node's \
                 --env-file joins it to the next assignment's name"
            }
            EmptyName => "has `=` without a name; Node's --env-file stops reading there",
            Repeated => "assigns the variable again; it must be assigned exactly once",
            BareName => {
                "names the variable without `=`; python-dotenv then leaves it unset, Node \
                 ignores the line and compose takes the value from its own environment"
            }
            UnusualSpace => {
                "has a form feed, vertical tab, no-break space, other Unicode space or control \
                 character before the name or `=`; python-dotenv reads it as a blank, Node as \
                 part of the name"
            }
            Tab => "has a tab before the name or before `=`, which Node keeps in the name",
            ByteOrderMark => "starts with a byte-order mark, which Node keeps in the name",
            QuotedName => "quotes the name, which only python-dotenv unquotes",
            ExportSpacing => {
                "follows `export` with a tab or several spaces, which Node reads into the name"
            }
            UnsafeValue => {
                "has a value the loaders read differently (`$`, `\\`, `#`, quotes, backticks, \
                 blanks other than spaces, non-ASCII or control characters, inner blanks or \
                 text after the closing quote)"
            }
            EmptyValueComment => {
                "has an empty value followed by a comment, which older python-dotenv releases \
                 read as the value"
            }
            OtherSeparator => {
                "separates name and value with something other than `=`; compose accepts \
                 `NAME: value`, the others do not"
            }
            UnusualLineBreak => {
                "holds a vertical tab, form feed, U+001C-U+001E, U+0085, U+2028 or U+2029, \
                 which some loaders read as a line break"
            }
            ExportName => "uses a name starting with `export`, which docker compose strips",
            TextAfterQuote => {
                "has text after a closing quote, which docker compose reads as another \
                 assignment and python-dotenv as an error (the line is skipped)"
            }
            Unclassified => {
                "could not be read with certainty (python-dotenv's reading differs from the \
                 plain one)"
            }
        }
    }
}

/// One reason a file is ambiguous.
#[derive(Clone, PartialEq, Eq)]
pub struct Ambiguity {
    /// 1-based line of the file, counted by `\n`.
    pub line: usize,
    /// What is ambiguous about it.
    pub kind: AmbiguityKind,
    /// The variable this is about; `None` when it can disturb any variable of the file.
    pub name: Option<String>,
}

impl Ambiguity {
    /// Whether this finding makes `name` ambiguous.
    pub fn affects(&self, name: &str) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// A name from the file is shown only when it looks like an environment variable
/// (`[A-Z_][A-Z0-9_]*`, at most 64 bytes), so a description never carries stray bytes nor a
/// key pasted alone on a line (which python-dotenv reads as a bare name): generated keys are
/// lowercase. [`Analysis::findings_for`] returns only findings about the names asked for.
fn printable_name(n: &str) -> Option<&str> {
    (n.len() <= 64
        && n.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && n.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(n)
}

/// `Debug` redacts names as `Display` does.
impl std::fmt::Debug for Ambiguity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ambiguity")
            .field("line", &self.line)
            .field("kind", &self.kind)
            .field(
                "name",
                &self
                    .name
                    .as_deref()
                    .map(|n| printable_name(n).unwrap_or("<unusual name>")),
            )
            .finish()
    }
}

impl std::fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(n) = self.name.as_deref() {
            match printable_name(n) {
                Some(n) => write!(f, " ({n})")?,
                None => write!(f, " (a variable with an unusual name)")?,
            }
        }
        write!(f, " {}", self.kind.describe())
    }
}

/// The result of [`analyze`].
pub struct Analysis {
    /// `dotenv_values(path, interpolate=False)`: `None` for a bare name.
    values: BTreeMap<String, Option<Zeroizing<String>>>,
    findings: Vec<Ambiguity>,
    invalid_utf8_line: Option<usize>,
}

/// `Analysis` holds the served key: `Debug` shows counts and findings, never values (nor
/// names, which may be a pasted key).
impl std::fmt::Debug for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysis")
            .field("names", &self.values.len())
            .field("findings", &self.findings)
            .field("invalid_utf8_line", &self.invalid_utf8_line)
            .finish()
    }
}

impl Analysis {
    /// The value python-dotenv's `load_dotenv` puts into the environment for `name` (before
    /// `${…}` expansion, which the plain form excludes): `None` when the file leaves it unset
    /// (absent, or a bare `NAME` last).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.as_deref().map(|s| s.as_str()))
    }

    /// Every binding as `dotenv_values(path, interpolate=False)` gives it.
    pub fn values(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref().map(|s| s.as_str())))
    }

    /// Every finding, in line order.
    pub fn findings(&self) -> &[Ambiguity] {
        &self.findings
    }

    /// The findings that make any of `names` ambiguous.
    pub fn findings_for(&self, names: &[&str]) -> Vec<Ambiguity> {
        self.findings
            .iter()
            .filter(|a| names.iter().any(|n| a.affects(n)))
            .cloned()
            .collect()
    }

    /// Whether the loaders could disagree about any of `names`, or a line assigning one of
    /// them is hidden, repeated or unclassifiable.
    pub fn is_ambiguous_for(&self, names: &[&str]) -> bool {
        self.findings
            .iter()
            .any(|a| names.iter().any(|n| a.affects(n)))
    }

    /// The first line that is not UTF-8: python-dotenv then refuses the whole file
    /// (`UnicodeDecodeError`), so a Python server does not start. Not an ambiguity — nothing
    /// is loaded — but worth a warning.
    pub fn invalid_utf8_line(&self) -> Option<usize> {
        self.invalid_utf8_line
    }
}

/// Bytes a plain value may hold: printable ASCII without blanks, quotes, backticks, `#`,
/// `$` (expansion) and `\` (escapes).
fn is_safe(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"'`#$\\".contains(&b)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'
}

/// The kind for an unexpected byte between the name and `=`.
fn odd_byte(b: u8) -> AmbiguityKind {
    match b {
        b'\t' => AmbiguityKind::Tab,
        0x21..=0x7e => AmbiguityKind::OtherSeparator,
        _ => AmbiguityKind::UnusualSpace,
    }
}

/// Reads `line` as the plain form `␠*(export␠)?NAME␠*=␠*VALUE␠*(#…)?` for `name` and
/// returns VALUE unquoted, or why the line is not plain.
///
/// VALUE is empty, a run of [`is_safe`] bytes, or `"…"` / `'…'` around safe bytes and
/// spaces; an unquoted value needs a space before a comment, an empty one takes no comment.
fn plain_value(line: &[u8], name: &str) -> Result<Zeroizing<String>, AmbiguityKind> {
    if name.starts_with("export") {
        return Err(AmbiguityKind::ExportName);
    }
    let mut i = plain_name_end(line, name)?;
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    match line.get(i) {
        Some(b'=') => i += 1,
        None | Some(b'#') => return Err(AmbiguityKind::BareName),
        Some(&b) => return Err(odd_byte(b)),
    }
    // From here on every fault is the value's: the edit replaces it (and re-reads the result).
    plain_value_after_eq(line, i)
}

/// Where `name` ends on `line` when only spaces and `export␠` stand before it; otherwise
/// what stands there instead.
fn plain_name_end(line: &[u8], name: &str) -> Result<usize, AmbiguityKind> {
    let n = name.as_bytes();
    let at_name = |s: &[u8]| s.starts_with(n) && !s.get(n.len()).is_some_and(|&b| is_name_byte(b));
    let mut i = line.iter().take_while(|&&b| b == b' ').count();
    if line[i..].starts_with(b"export ") && at_name(&line[i + 7..]) {
        i += 7;
    } else if !at_name(&line[i..]) {
        return Err(not_plain_before_name(line, i));
    }
    Ok(i + n.len())
}

/// Says what stands before the name on `line`, `i` being the end of its leading spaces.
fn not_plain_before_name(line: &[u8], i: usize) -> AmbiguityKind {
    let prefix = &line[..line.len().min(i + 16)];
    if line.starts_with("\u{feff}".as_bytes()) {
        AmbiguityKind::ByteOrderMark
    } else if prefix.contains(&b'\t') {
        AmbiguityKind::Tab
    } else if line[i..].starts_with(b"export") {
        AmbiguityKind::ExportSpacing
    } else if matches!(line.get(i), Some(b'\'' | b'"')) {
        AmbiguityKind::QuotedName
    } else if prefix.iter().any(|&b| !b.is_ascii_graphic() && b != b' ') {
        AmbiguityKind::UnusualSpace
    } else {
        AmbiguityKind::Unclassified
    }
}

/// The plain VALUE of `line` after the `=` that ends at `after_eq`: empty, a run of safe
/// bytes, or a quoted one; each may be followed by spaces and a comment.
fn plain_value_after_eq(line: &[u8], after_eq: usize) -> Result<Zeroizing<String>, AmbiguityKind> {
    let mut i = after_eq;
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    let value = match line.get(i) {
        None => return Ok(Zeroizing::new(String::new())),
        Some(&q @ (b'"' | b'\'')) => return plain_quoted_value(line, i, q),
        Some(b'#') if i > after_eq => return Err(AmbiguityKind::EmptyValueComment),
        Some(_) => {
            let start = i;
            while line.get(i).is_some_and(|&b| is_safe(b)) {
                i += 1;
            }
            &line[start..i]
        }
    };
    let value_end = i;
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    match line.get(i) {
        _ if value.is_empty() => return Err(AmbiguityKind::UnsafeValue),
        None => {}
        Some(b'#') if i > value_end => {}
        Some(_) => return Err(AmbiguityKind::UnsafeValue),
    }
    Ok(Zeroizing::new(String::from_utf8_lossy(value).into_owned()))
}

/// The plain value quoted by `q` at `open`: safe bytes and spaces up to the same quote,
/// then only spaces and perhaps a comment.
fn plain_quoted_value(line: &[u8], open: usize, q: u8) -> Result<Zeroizing<String>, AmbiguityKind> {
    let mut i = open;
    let Some(close) = line[i + 1..].iter().position(|&b| b == q) else {
        return Err(AmbiguityKind::UnclosedQuote);
    };
    let inner = &line[i + 1..i + 1 + close];
    if inner.iter().any(|&b| !is_safe(b) && b != b' ') {
        return Err(AmbiguityKind::UnsafeValue);
    }
    i += close + 2;
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    match line.get(i) {
        None | Some(b'#') => Ok(Zeroizing::new(String::from_utf8_lossy(inner).into_owned())),
        Some(_) => Err(AmbiguityKind::UnsafeValue),
    }
}

/// The names a lenient loader could see on `line`: leading blanks, controls, byte-order
/// marks and zero-width characters of any kind dropped, then `export` and blanks, then a
/// quote; a name is the run of `[A-Za-z0-9_.-]` that follows. docker compose strips
/// `export` even when no blank follows (`exportFOO=1` sets `FOO`), so such a line names both.
fn lenient_names(line: &[u8]) -> Vec<String> {
    // The line may hold the key: a decoded copy is wiped when dropped.
    let s = Zeroizing::new(String::from_utf8_lossy(line).into_owned());
    let skippable = |c: char| {
        dotenv::is_py_space(c)
            || c.is_control()
            || matches!(
                c,
                '\u{feff}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{fffd}'
            )
    };
    let run = |rest: &str| -> Option<String> {
        let rest = rest.trim_start_matches(skippable);
        let rest = rest.trim_start_matches(['\'', '"', '`']);
        let name: String = rest
            .bytes()
            .take_while(|&b| is_name_byte(b))
            .map(char::from)
            .collect();
        (!name.is_empty()).then_some(name)
    };
    let rest = s.trim_start_matches(skippable);
    let mut out = Vec::new();
    match rest.strip_prefix("export") {
        Some(r) if r.starts_with(skippable) => out.extend(run(r)),
        Some(r) => {
            out.extend(run(rest));
            out.extend(run(r));
        }
        None => out.extend(run(rest)),
    }
    out
}

/// The length in bytes of the run of python-dotenv blanks (`[^\S\r\n]`) that `v` starts with.
fn blank_prefix_len(v: &[u8]) -> usize {
    let mut n = 0;
    for chunk in v.utf8_chunks() {
        for c in chunk.valid().chars() {
            if !dotenv::is_py_space(c) || c == '\n' || c == '\r' {
                return n;
            }
            n += c.len_utf8();
        }
        if !chunk.invalid().is_empty() {
            return n;
        }
    }
    n
}

/// The file's lines as an editor shows them: split at `\n`, without the `\r` of a `\r\n`.
fn physical_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if bytes.last() == Some(&b'\n') || bytes.is_empty() {
        out.pop();
    }
    for l in &mut out {
        if let Some(t) = l.strip_suffix(b"\r") {
            *l = t;
        }
    }
    out
}

/// Reads `bytes` as python-dotenv does and finds every ambiguity (see the module docs).
/// Never panics; linear in the size of the input apart from the per-name bookkeeping.
pub fn analyze(bytes: &[u8]) -> Analysis {
    let text = dotenv::Text::decode(bytes);
    let bindings = dotenv::parse(&text);
    let mut findings: Vec<Ambiguity> = Vec::new();
    lone_crs(bytes, &mut findings);
    unusual_line_breaks(bytes, &mut findings);
    statements_across_lines(&bindings, &mut findings);
    let lines = physical_lines(bytes);
    node_misreadings(&lines, &mut findings);
    let (concerns, values) = assignments(bindings, &lines);
    per_name_findings(&concerns, &values, &lines, &mut findings);
    findings.sort_by_key(|a| (a.line, a.kind));
    findings.dedup();
    Analysis {
        values,
        findings,
        invalid_utf8_line: text.invalid_utf8_line,
    }
}

/// Records a finding that can disturb any variable of the file.
fn file_wide(findings: &mut Vec<Ambiguity>, line: usize, kind: AmbiguityKind) {
    findings.push(Ambiguity {
        line,
        kind,
        name: None,
    })
}

/// Lone `\r`: count lines by `\n` only.
fn lone_crs(bytes: &[u8], findings: &mut Vec<Ambiguity>) {
    let mut line = 1;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => line += 1,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => {
                file_wide(findings, line, AmbiguityKind::LoneCr)
            }
            _ => {}
        }
    }
}

/// Unusual line breaks anywhere: \v \f U+001C-U+001E, and U+0085, U+2028, U+2029 as UTF-8.
fn unusual_line_breaks(bytes: &[u8], findings: &mut Vec<Ambiguity>) {
    for (n, l) in bytes.split(|&b| b == b'\n').enumerate() {
        let odd = l.iter().any(|b| matches!(b, 0x0b | 0x0c | 0x1c..=0x1e))
            || l.windows(2).any(|w| w == [0xc2, 0x85])
            || l.windows(3)
                .any(|w| w == [0xe2, 0x80, 0xa8] || w == [0xe2, 0x80, 0xa9]);
        if odd {
            file_wide(findings, n + 1, AmbiguityKind::UnusualLineBreak);
        }
    }
}

/// Statements python-dotenv reads across lines, or whose quote never closes.
fn statements_across_lines(bindings: &[dotenv::Binding], findings: &mut Vec<Ambiguity>) {
    for b in bindings {
        if b.multi_line {
            file_wide(findings, b.line, AmbiguityKind::MultiLineValue);
        }
        // No closing quote anywhere: the statement is skipped today, but any later quote
        // (one `use` appends, say) would close it and swallow the lines between.
        if b.unclosed {
            file_wide(findings, b.line, AmbiguityKind::UnclosedQuote);
        }
    }
}

/// Node 20's reading: a line it cannot skip and that has no `=` is glued to the next `=`;
/// an empty name stops it; a quote opened after `=` runs to the next such quote.
fn node_misreadings(lines: &[&[u8]], findings: &mut Vec<Ambiguity>) {
    for (n, l) in lines.iter().enumerate() {
        if l.is_empty() || l[0] == b'#' {
            continue;
        }
        let Some(eq) = l.iter().position(|&b| b == b'=') else {
            // Harmless only while no `=` follows; but an assignment appended by `use` would
            // follow it, so it is flagged wherever it stands.
            file_wide(findings, n + 1, AmbiguityKind::NotAnAssignment);
            continue;
        };
        if l[..eq].iter().all(|&b| b == b' ') {
            file_wide(findings, n + 1, AmbiguityKind::EmptyName);
        }
        if let Some(kind) = quoted_value_fault(&l[eq + 1..]) {
            file_wide(findings, n + 1, kind);
        }
    }
}

/// What is wrong with the quoted value `v` (the text after `=`) when the loaders could end
/// it at different places: a quote left open on the line, or text after the closing quote.
fn quoted_value_fault(v: &[u8]) -> Option<AmbiguityKind> {
    // Skip what python-dotenv (and compose) skip after `=`: any Unicode blank.
    let start = blank_prefix_len(v);
    let &q = v
        .get(start)
        .filter(|&&b| matches!(b, b'"' | b'\'' | b'`'))?;
    // Compose's end of the quote: the first one not preceded by a backslash.
    let compose_close = (start + 1..v.len()).find(|&j| v[j] == q && v[j - 1] != b'\\');
    // Node closes at the first quote, compose at the first unescaped one; either
    // missing on this line means a value that runs on.
    match (v[start + 1..].contains(&q), compose_close) {
        (false, _) | (true, None) => Some(AmbiguityKind::UnclosedQuote),
        (true, Some(close)) => {
            let after = &v[close + 1..];
            let blanks = after
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            after
                .get(blanks)
                .is_some_and(|&b| b != b'#')
                .then_some(AmbiguityKind::TextAfterQuote)
        }
    }
}

/// python-dotenv's value of each name it reads.
type Values = BTreeMap<String, Option<Zeroizing<String>>>;
/// Which lines could assign which name, for any loader.
type Concerns = BTreeMap<String, BTreeSet<usize>>;

/// Which lines could assign which name, for any loader, and python-dotenv's values.
fn assignments(bindings: Vec<dotenv::Binding>, lines: &[&[u8]]) -> (Concerns, Values) {
    let mut concerns: Concerns = BTreeMap::new();
    let mut values: Values = BTreeMap::new();
    for b in bindings {
        if let (Some(k), false) = (b.key, b.error) {
            concerns.entry(k.clone()).or_default().insert(b.line);
            values.insert(k, b.value);
        }
    }
    for (n, l) in lines.iter().enumerate() {
        for name in lenient_names(l) {
            concerns.entry(name).or_default().insert(n + 1);
        }
    }
    (concerns, values)
}

/// For each name: a repeated assignment, and every line assigning it that is not in the
/// plain form or whose plain reading python-dotenv does not confirm.
fn per_name_findings(
    concerns: &Concerns,
    values: &Values,
    lines: &[&[u8]],
    findings: &mut Vec<Ambiguity>,
) {
    for (name, at) in concerns {
        let mut add = |line, kind| {
            findings.push(Ambiguity {
                line,
                kind,
                name: Some(name.clone()),
            })
        };
        if let Some(&second) = at.iter().nth(1) {
            add(second, AmbiguityKind::Repeated);
        }
        for &n in at {
            let plain = match lines.get(n - 1) {
                Some(l) => plain_value(l, name),
                None => Err(AmbiguityKind::Unclassified),
            };
            match plain {
                Err(kind) => add(n, kind),
                Ok(v) => {
                    let python = values.get(name).and_then(|v| v.as_deref());
                    if at.len() == 1 && python.is_none_or(|p| p.as_str() != v.as_str()) {
                        add(n, AmbiguityKind::Unclassified);
                    }
                }
            }
        }
    }
}
