//! Text made safe to show in a message: names, descriptions and paths may hold control
//! characters or terminal escapes (an old store, a planted symlink) and must not drive the
//! terminal that prints an error.

pub use mcp_key_verifier::{escape_controls as sanitize, needs_escape};

/// A path as it may appear in a message: escaped like a name, since a path can come from
/// a planted symlink whose target holds terminal escapes (OSC 52 writes the clipboard).
pub fn path(p: &std::path::Path) -> String {
    sanitize(&p.to_string_lossy())
}

/// Truncates to `width` characters, ending with an ellipsis when cut.
pub fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(sanitize("plain"), "plain");
        assert_eq!(sanitize("a\x1b[31mred"), "a\\u{1b}[31mred");
        assert_eq!(sanitize("x\ny\u{202e}"), "x\\u{a}y\\u{202e}");
        assert!(!sanitize("\u{9b}2J").contains('\u{9b}'));
    }

    #[test]
    fn truncates_with_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
