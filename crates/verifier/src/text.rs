//! Text from a verifier file made safe to show: ids and names come from a file anyone with
//! write access may have edited, and must not drive the terminal or a log viewer.

/// Whether a character could change what a terminal shows: C0, DEL, C1 and the bidi
/// overrides and isolates.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character of [`needs_escape`] written as `\u{..}`.
///
/// ```
/// assert_eq!(mcp_key_verifier::escape_controls("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
/// ```
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}
