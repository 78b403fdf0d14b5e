//! The `.env` editor: pure functions from bytes to bytes.
//!
//! Invariant: [`EnvFile::parse`] followed by [`EnvFile::render`] gives back the input
//! byte for byte, and [`EnvFile::set`] changes only the assignments of the variable it
//! sets (every one of them, so a later duplicate cannot shadow the new value), keeping
//! their indentation, `export ` prefix, quote style and trailing comment. Invalid UTF-8
//! is carried through untouched.

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
        Some(b'\'') if !v.contains('\'') => format!("'{v}'").into_bytes(),
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
}
