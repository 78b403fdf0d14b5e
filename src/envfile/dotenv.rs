//! A port of python-dotenv's parser (`dotenv/parser.py`, 1.2.x), the loader of the Python
//! SDK servers: which bindings `dotenv_values(path, interpolate=False)` yields for a file.
//!
//! Invariant: every step mirrors one regular expression of the original, applied to the text
//! Python sees after `open(path, encoding="utf-8")` — universal newlines (`\r\n` and a lone
//! `\r` both become `\n`) and a leading BOM removed. Each binding remembers the lines of the
//! *file* (counted by `\n`, as an editor shows them) it came from, so findings can point at
//! them. Values are wrapped in [`Zeroizing`] from the moment they exist.

use zeroize::Zeroizing;

/// Python's `str.isspace()`, which is also what `\s` matches in a `re.UNICODE` pattern
/// (checked for every code point against CPython 3).
pub(crate) fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{b}'
            | '\u{c}'
            | '\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// `[^\S\r\n]`: whitespace that does not end a line.
fn is_inline_space(c: char) -> bool {
    is_py_space(c) && c != '\n' && c != '\r'
}

/// The text python-dotenv parses, with the file line of every character.
pub(crate) struct Text {
    chars: Vec<char>,
    /// 1-based line in the file (counted by `\n` bytes) of each character.
    lines: Vec<usize>,
    /// The first line holding bytes that are not UTF-8 (Python refuses to read the file).
    pub(crate) invalid_utf8_line: Option<usize>,
}

impl Text {
    /// Decodes like `open(path, encoding="utf-8")` followed by `removeprefix("\ufeff")`;
    /// bytes that are not UTF-8 become U+FFFD (Python would raise instead; see
    /// `invalid_utf8_line`).
    pub(crate) fn decode(bytes: &[u8]) -> Text {
        let mut raw: Vec<(char, usize)> = Vec::with_capacity(bytes.len());
        let mut invalid_utf8_line = None;
        let mut line = 1;
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                raw.push((c, line));
                if c == '\n' {
                    line += 1;
                }
            }
            if !chunk.invalid().is_empty() {
                invalid_utf8_line.get_or_insert(line);
                raw.push(('\u{fffd}', line));
            }
        }
        let mut chars = Vec::with_capacity(raw.len());
        let mut lines = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let (c, l) = raw[i];
            if c == '\r' {
                // Universal newlines: `\r\n` and a lone `\r` both read as `\n`.
                if raw.get(i + 1).is_some_and(|&(n, _)| n == '\n') {
                    i += 1;
                }
                chars.push('\n');
                lines.push(l);
            } else {
                chars.push(c);
                lines.push(l);
            }
            i += 1;
        }
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
            lines.remove(0);
        }
        let text = Text {
            chars,
            lines,
            invalid_utf8_line,
        };
        raw.iter_mut().for_each(|(c, _)| *c = '\0');
        text
    }

    fn line_at(&self, p: usize) -> usize {
        self.lines
            .get(p)
            .or(self.lines.last())
            .copied()
            .unwrap_or(1)
    }
}

impl Drop for Text {
    fn drop(&mut self) {
        // The text holds the key; `Vec<char>` is not `Zeroize`, so clear it by hand.
        self.chars.iter_mut().for_each(|c| *c = '\0');
    }
}

/// One statement of the file as python-dotenv reads it.
pub(crate) struct Binding {
    /// `None` for a comment, a blank stretch or an unparsable statement.
    pub(crate) key: Option<String>,
    /// `None` for a bare `KEY` (dotenv_values gives None; load_dotenv leaves it unset).
    pub(crate) value: Option<Zeroizing<String>>,
    /// python-dotenv could not parse the statement and skipped to the end of the line.
    pub(crate) error: bool,
    /// File line of the first character of the name (or of the statement).
    pub(crate) line: usize,
    /// A quoted name or value (even of a statement that then failed) spans lines.
    pub(crate) multi_line: bool,
    /// A quoted name or value found no closing quote before the end of the text.
    pub(crate) unclosed: bool,
}

struct Failed;

struct Parser<'a> {
    t: &'a Text,
    p: usize,
    multi_line: bool,
    unclosed: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.t.chars.get(self.p).copied()
    }

    fn skip(&mut self, f: impl Fn(char) -> bool) -> usize {
        let start = self.p;
        while self.peek().is_some_and(&f) {
            self.p += 1;
        }
        self.p - start
    }

    fn starts_with(&self, s: &str) -> bool {
        let n = s.chars().count();
        self.t
            .chars
            .get(self.p..self.p + n)
            .is_some_and(|w| w.iter().copied().eq(s.chars()))
    }

    /// `_export`: `(?:export[^\S\r\n]+)?`.
    fn export(&mut self) {
        if self.starts_with("export")
            && self
                .t
                .chars
                .get(self.p + 6)
                .is_some_and(|&c| is_inline_space(c))
        {
            self.p += 6;
            self.skip(is_inline_space);
        }
    }

    /// `parse_key`.
    fn key(&mut self) -> Result<Option<String>, Failed> {
        match self.peek() {
            Some('#') => Ok(None),
            Some('\'') => {
                // `'([^']+)'`: may span lines.
                let start = self.p + 1;
                let mut i = start;
                while self.t.chars.get(i).is_some_and(|&c| c != '\'') {
                    i += 1;
                }
                if i >= self.t.chars.len() {
                    self.unclosed = true;
                    return Err(Failed);
                }
                if i == start {
                    return Err(Failed);
                }
                let key: String = self.t.chars[start..i].iter().collect();
                if key.contains('\n') {
                    self.multi_line = true;
                }
                self.p = i + 1;
                Ok(Some(key))
            }
            _ => {
                // `([^=\#\s]+)`.
                let start = self.p;
                let n = self.skip(|c| c != '=' && c != '#' && !is_py_space(c));
                if n == 0 {
                    return Err(Failed);
                }
                Ok(Some(self.t.chars[start..self.p].iter().collect()))
            }
        }
    }

    /// A quoted value: `'((?:\\.|[^'\\])*)'` or `"((?:\\.|[^"\\])*)"` with DOTALL.
    fn quoted(&mut self, q: char) -> Result<Zeroizing<String>, Failed> {
        let start = self.p + 1;
        let mut i = start;
        loop {
            match self.t.chars.get(i) {
                None => {
                    self.unclosed = true;
                    return Err(Failed);
                }
                Some('\\') => {
                    if i + 1 >= self.t.chars.len() {
                        self.unclosed = true;
                        return Err(Failed);
                    }
                    i += 2;
                }
                Some(&c) if c == q => break,
                Some(_) => i += 1,
            }
        }
        let inner = &self.t.chars[start..i];
        if inner.contains(&'\n') {
            self.multi_line = true;
        }
        self.p = i + 1;
        let mut out = Zeroizing::new(String::with_capacity(inner.len()));
        let mut j = 0;
        while j < inner.len() {
            let c = inner[j];
            let next = inner.get(j + 1).copied();
            let decoded = match (c, next) {
                ('\\', Some(n @ ('\\' | '\''))) => Some(n),
                ('\\', Some(n)) if q == '"' => match n {
                    '"' => Some('"'),
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\u{b}'),
                    _ => None,
                },
                _ => None,
            };
            match decoded {
                Some(d) => {
                    out.push(d);
                    j += 2;
                }
                None => {
                    out.push(c);
                    j += 1;
                }
            }
        }
        Ok(out)
    }

    /// `parse_value`.
    fn value(&mut self) -> Result<Zeroizing<String>, Failed> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => self.quoted(q),
            None | Some('\n' | '\r') => Ok(Zeroizing::new(String::new())),
            Some(_) => {
                // `([^\r\n]*)`, then `re.sub(r"\s+#.*", "", part).rstrip()`.
                let start = self.p;
                self.skip(|c| c != '\n' && c != '\r');
                let part = &self.t.chars[start..self.p];
                let mut end = part.len();
                if let Some(h) =
                    (1..part.len()).find(|&j| part[j] == '#' && is_py_space(part[j - 1]))
                {
                    let mut s = h;
                    while s > 0 && is_py_space(part[s - 1]) {
                        s -= 1;
                    }
                    end = s;
                }
                while end > 0 && is_py_space(part[end - 1]) {
                    end -= 1;
                }
                Ok(Zeroizing::new(part[..end].iter().collect()))
            }
        }
    }

    /// `_comment` then `_end_of_line`.
    fn end(&mut self) -> Result<(), Failed> {
        let save = self.p;
        self.skip(is_inline_space);
        if self.peek() == Some('#') {
            self.skip(|c| c != '\n' && c != '\r');
        } else {
            self.p = save;
        }
        let save = self.p;
        self.skip(is_inline_space);
        match self.peek() {
            None => Ok(()),
            Some('\n') => {
                self.p += 1;
                Ok(())
            }
            Some(_) => {
                self.p = save;
                Err(Failed)
            }
        }
    }

    fn binding_body(&mut self) -> Result<(Option<String>, Option<Zeroizing<String>>), Failed> {
        self.export();
        let key = self.key()?;
        self.skip(is_inline_space);
        let value = if self.peek() == Some('=') {
            self.p += 1;
            let spaced = self.skip(is_inline_space) > 0;
            if spaced && self.peek() == Some('#') {
                Some(Zeroizing::new(String::new()))
            } else {
                Some(self.value()?)
            }
        } else {
            None
        };
        self.end()?;
        Ok((key, value))
    }

    /// `parse_binding`; `None` at the end of the text.
    fn binding(&mut self) -> Option<Binding> {
        self.skip(is_py_space);
        if self.p >= self.t.chars.len() {
            return None;
        }
        self.multi_line = false;
        self.unclosed = false;
        let line = self.t.line_at(self.p);
        let (key, value, error) = match self.binding_body() {
            Ok((key, value)) => (key, value, false),
            Err(Failed) => {
                // `_rest_of_line`, from where the failing expression started.
                self.skip(|c| c != '\n' && c != '\r');
                if self.peek() == Some('\n') {
                    self.p += 1;
                }
                (None, None, true)
            }
        };
        Some(Binding {
            key,
            value,
            error,
            line,
            multi_line: self.multi_line,
            unclosed: self.unclosed,
        })
    }
}

/// Every statement of the text, in order (`parse_stream`).
pub(crate) fn parse(t: &Text) -> Vec<Binding> {
    let mut parser = Parser {
        t,
        p: 0,
        multi_line: false,
        unclosed: false,
    };
    let mut out = Vec::new();
    while let Some(b) = parser.binding() {
        out.push(b);
    }
    out
}
