//! Tests of `header`.

use super::*;

/// `parse` reads a file in the writer's layout without its ciphertext's text; it gives
/// exactly what the whole parse gives (same header, or same error) for the writer's
/// files and for edits of them that keep that layout or nearly keep it.
#[test]
fn the_parse_that_cuts_the_ciphertext_out_is_the_whole_parse() {
    let mut v = crate::vault::test_vault();
    let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
    for i in 0..40 {
        v.create_key(
            crate::vault::NewKey {
                name: format!("k{i}"),
                description: String::new(),
                expires_at: None,
                permissions: vec![],
            },
            now,
        );
    }
    let good = v.to_bytes();
    let text = String::from_utf8(good.clone()).unwrap();
    let same = |b: &[u8]| -> bool {
        let (fast, whole) = (Header::parse(b), Header::from_json(b, None));
        match (&fast, &whole) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("{fast:?} vs {whole:?} for {}", String::from_utf8_lossy(b)),
        }
        fast.is_ok()
    };
    let (json, b64) = split_ciphertext(&good).expect("the writer's layout is recognised");
    assert!(b64.len() > json.len(), "the ciphertext's text is cut out");
    assert_eq!(
        Header::from_json(&json, Some(b64)).ok(),
        Header::from_json(&good, None).ok(),
        "the writer's files take the cut parse"
    );
    assert!(same(&good));
    let at = text.rfind("\"ciphertext\": \"").unwrap();
    let (head, tail) = text.split_at(at);
    let b64 = &tail["\"ciphertext\": \"".len()..tail.len() - 4];
    let edits: Vec<(&str, String, bool)> = vec![
        (
            "another field first",
            format!("{head}\"x\": 1,\n  {tail}"),
            false,
        ),
        (
            "a second ciphertext",
            format!("{head}\"ciphertext\": \"AAAA\",\n  {tail}"),
            false,
        ),
        (
            "an escaped quote makes another key",
            format!("{head}\"x\\{}", &tail[1..]),
            false,
        ),
        (
            "nested one level down",
            format!("{head}\"y\": {{\"ciphertext\": \"{b64}\"}}\n}}\n"),
            false,
        ),
        (
            "an escape in the base64 (the whole parse decodes it)",
            {
                let i = 40;
                format!(
                    "{head}\"ciphertext\": \"{}\\u00{:02x}{}\"\n}}\n",
                    &b64[..i],
                    b64.as_bytes()[i],
                    &b64[i + 1..]
                )
            },
            true,
        ),
        (
            "a solidus escaped",
            b64.find('/').map_or_else(
                || format!("{head}\"ciphertext\": \"{b64}\"\n}}\n"),
                |i| {
                    format!(
                        "{head}\"ciphertext\": \"{}\\/{}\"\n}}\n",
                        &b64[..i],
                        &b64[i + 1..]
                    )
                },
            ),
            true,
        ),
        (
            "a newline in the base64",
            format!(
                "{head}\"ciphertext\": \"{}\n{}\"\n}}\n",
                &b64[..8],
                &b64[8..]
            ),
            false,
        ),
        ("empty", format!("{head}\"ciphertext\": \"\"\n}}\n"), false),
        (
            "a quote inside",
            format!(
                "{head}\"ciphertext\": \"{}\"{}\"\n}}\n",
                &b64[..8],
                &b64[8..]
            ),
            false,
        ),
        (
            "the wrong case",
            format!("{head}\"Ciphertext\": \"{b64}\"\n}}\n"),
            false,
        ),
    ];
    for (what, edited, ok) in &edits {
        assert_eq!(same(edited.as_bytes()), *ok, "{what}");
    }
    // Every one-byte change near the cut and in the JSON around it, and in the base64.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = good.clone();
        let i = match x % 3 {
            0 => (x >> 8) as usize % b.len(),
            1 => at.saturating_sub(40) + (x >> 8) as usize % 60,
            _ => b.len() - 1 - (x >> 8) as usize % 8,
        };
        let i = i.min(b.len() - 1);
        const SUBST: &[u8] = b"\"\\ \n}{:,xA=/";
        b[i] = SUBST[(x >> 40) as usize % SUBST.len()];
        same(&b);
    }
}

/// The ciphertext's base64, written piece by piece, is the base64 of the whole: at
/// piece boundaries and around them, and the file parses back to the same header.
#[test]
fn a_ciphertext_written_in_pieces_is_one_base64_text() {
    let v = crate::vault::test_vault();
    let mut h = Header::parse(&v.to_bytes()).unwrap();
    const PIECE: usize = 3 * 256 * 1024;
    for len in [16, PIECE - 1, PIECE, PIECE + 1, PIECE + 2, 2 * PIECE + 1] {
        h.ciphertext = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let bytes = h.to_bytes();
        let text = format!("\"ciphertext\": \"{}\"\n}}\n", B64.encode(&h.ciphertext));
        assert!(bytes.ends_with(text.as_bytes()), "{len}");
        assert_eq!(Header::parse(&bytes).unwrap(), h, "{len}");
        let mut streamed = Vec::new();
        h.write_to(&mut streamed).unwrap();
        assert_eq!(streamed, bytes);
    }
}

/// The SIMD decoder used for the ciphertext accepts and rejects exactly what the
/// `base64` crate's strict standard engine does, and both encode alike.
#[test]
fn simd_base64_is_the_strict_standard() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..200 {
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let text = B64.encode(&data);
        assert_eq!(base64_simd::STANDARD.encode_to_string(&data), text);
        assert_eq!(base64_simd::STANDARD.decode_to_vec(&text).ok(), Some(data));
        // One changed, dropped or added character: the two agree on every variant.
        for _ in 0..20 {
            let mut t = text.clone().into_bytes();
            let alphabet =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= -_\n";
            let c = alphabet[(next() % alphabet.len() as u64) as usize];
            let i = (next() % (t.len() as u64 + 1)) as usize;
            match next() % 3 {
                0 if i < t.len() => t[i] = c,
                1 if i < t.len() => {
                    t.remove(i);
                }
                _ => t.insert(i, c),
            }
            assert_eq!(
                base64_simd::STANDARD.decode_to_vec(&t).ok(),
                B64.decode(&t).ok(),
                "{:?}",
                String::from_utf8_lossy(&t)
            );
        }
    }
}
