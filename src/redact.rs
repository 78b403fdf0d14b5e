//! One guard for everything the tool writes to stderr: a key pasted where it does not
//! belong (`--listen`, `-p`, `--then`, an id argument…) is never repeated back in full.
//!
//! Invariant: every error, hint and warning passes through [`keys`] before it is printed,
//! including the argument parser's own messages, which quote the offending value. A key
//! of this tool (`mkm_<16 hex>_<49 base62>` of format 2, behind any organisation prefix,
//! or `mcp_<16 hex>_<64 hex>` of format 1) keeps its prefix and public id and loses the
//! rest, even when cut short; a run of 32 or more hex digits (the Python tool's keys were
//! 64) is replaced whole. Errors
//! from the vault library never contain a key to begin with; this guard is for what the
//! user typed.

use std::borrow::Cow;

/// Whether `text` holds a key of this tool (either format) anywhere in it.
pub fn holds_key(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| key_at(b, i).is_some())
}

/// The length of the key of this tool that starts at `i`, if one does: `mcp_` or `mkm_`,
/// 16 hex, `_`, then the secret (64 hex; at least 32 base62 characters of format 2, so a
/// key cut short is still hidden). The first 21 characters are not secret.
fn key_at(b: &[u8], i: usize) -> Option<usize> {
    let hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    let run = |from: usize, f: &dyn Fn(&u8) -> bool| {
        b.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| f(c)).count())
    };
    let (secret_chars, least): (&dyn Fn(&u8) -> bool, usize) = match b.get(i..i + 4) {
        Some(b"mcp_") => (&hex, 64),
        Some(b"mkm_") => (&u8::is_ascii_alphanumeric, 32),
        _ => return None,
    };
    (run(i + 4, &hex) >= 16 && b.get(i + 20) == Some(&b'_') && run(i + 21, secret_chars) >= least)
        .then(|| 21 + run(i + 21, secret_chars))
}

/// `text` with every key-shaped run replaced (see the module doc).
pub fn keys(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    let hex_run = |from: usize| b[from..].iter().take_while(|c| hex(**c)).count();
    let mut out = String::new();
    let (mut copied, mut i) = (0, 0);
    while i < b.len() {
        if let Some(len) = key_at(b, i) {
            out.push_str(&text[copied..i + 21]);
            out.push_str("…(key hidden)");
            i += len;
            copied = i;
            continue;
        }
        let starts_word = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let n = if starts_word && hex(b[i]) {
            hex_run(i)
        } else {
            0
        };
        if n >= 32 && b.get(i + n).is_none_or(|c| !c.is_ascii_alphanumeric()) {
            out.push_str(&text[copied..i]);
            out.push_str("(key hidden)");
            i += n;
            copied = i;
            continue;
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// A warning on stderr, with anything shaped like a key hidden.
pub fn warn(msg: &str) {
    eprintln!("warning: {}", keys(msg));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hidden_wherever_they_stand() {
        let id = "0123456789abcdef";
        let secret = "ab".repeat(32);
        let key = format!("mcp_{id}_{secret}");
        for text in [
            format!("invalid value '{key}' for '--listen <ADDR>'"),
            format!("--require {key:?} is not a valid permission"),
            format!("echo {key} > /tmp/x"),
            key.clone(),
        ] {
            let shown = keys(&text);
            assert!(!shown.contains(&secret), "{shown}");
            assert!(!shown.contains(&secret[..8]), "{shown}");
            assert!(
                shown.contains(&format!("mcp_{id}_…(key hidden)")),
                "{shown}"
            );
        }
        let legacy = "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a";
        let text = format!("no key {legacy} here");
        assert_eq!(keys(&text), "no key (key hidden) here");
        // Format 2, behind an organisation prefix, and cut short by a few characters.
        let secret = "Zx8".repeat(16) + "q";
        for key in [
            format!("mkm_{id}_{secret}"),
            format!("acme_mkm_{id}_{secret}"),
            format!("mkm_{id}_{}", &secret[..40]),
        ] {
            let text = format!("--listen '{key}'");
            let shown = keys(&text);
            assert!(!shown.contains(&secret[..8]), "{shown}");
            assert!(
                shown.contains(&format!("mkm_{id}_…(key hidden)'")),
                "{shown}"
            );
            assert!(holds_key(&key));
        }
    }

    #[test]
    fn keys_are_found_inside_arguments() {
        let key = format!("mcp_{}_{}", "0".repeat(16), "f".repeat(64));
        assert!(holds_key(&key));
        assert!(holds_key(&format!("curl -H 'X-API-Key: {key}'")));
        assert!(!holds_key("mcp_0123456789abcdef_00"));
        assert!(!holds_key(&"ab".repeat(32)));
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "cannot read /etc/mcp-keys/verifier.json: No such file",
            "unknown id 0123abcd",
            "revision 17 of 3f9a1c7e5b2d8f4a (short)",
            "mcp_0123456789abcdef_00",
            "a sha256 in a word: x3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1",
        ] {
            assert_eq!(keys(text), text);
        }
    }
}
