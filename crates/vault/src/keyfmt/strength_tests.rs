//! The shortcut against zxcvbn itself: its premises read from zxcvbn's source, and its
//! answers compared with the full estimate on generated keys.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::super::{charset_bits, estimated_bits, strength_bits};
use super::*;

/// zxcvbn's `src` directory, as cargo resolved the dependency (registry or vendored).
fn zxcvbn_source() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Only this machine's packages: the others (macOS, Windows) need not be downloaded.
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let package = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "zxcvbn")
        .expect("zxcvbn is a dependency");
    // The proof rests on this version's scoring and matchers, not only on the facts
    // checked below: a new version needs the proof read again.
    assert_eq!(
        package["version"], "3.1.1",
        "strength.rs's proof was checked against zxcvbn 3.1.1; check it against this version"
    );
    let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest path"));
    manifest.parent().expect("package directory").join("src")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Rust char or string literal's next character at `s`, unescaped (`\'`, `\\`, `\"`).
fn unescape(s: &mut std::str::Chars<'_>) -> Option<char> {
    match s.next()? {
        '\\' => s.next(),
        c => Some(c),
    }
}

/// The string literals of `section` up to the first `);` outside them.
fn strings_until_close(section: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = section.chars();
    let mut prev = ' ';
    while let Some(c) = it.next() {
        if c == '"' {
            let mut s = String::new();
            loop {
                let raw = it.clone().next();
                if raw == Some('"') {
                    it.next();
                    break;
                }
                s.push(unescape(&mut it).expect("closed string"));
            }
            out.push(s);
        } else if prev == ')' && c == ';' {
            break;
        }
        prev = c;
    }
    out
}

/// The facts the proof uses, read from zxcvbn's own source.
#[test]
fn the_proofs_premises_hold_in_zxcvbns_source() {
    let src = zxcvbn_source();
    let lib = read(src.join("lib.rs"));
    let scoring = read(src.join("scoring.rs"));
    let matching = read(src.join("matching/mod.rs"));
    for (text, line) in [
        (
            &lib,
            "let password = password.chars().take(100).collect::<String>();",
        ),
        (&scoring, "const BRUTEFORCE_CARDINALITY: u64 = 10;"),
        (
            &scoring,
            "const MIN_GUESSES_BEFORE_GROWING_SEQUENCE: u64 = 10_000;",
        ),
        (
            &scoring,
            "const MIN_SUBMATCH_GUESSES_SINGLE_CHAR: u64 = 10;",
        ),
        (&scoring, "const MIN_SUBMATCH_GUESSES_MULTI_CHAR: u64 = 50;"),
        (
            &scoring,
            "let mut guesses = (factorial(len) as u64).saturating_mul(pi);",
        ),
        (&matching, "static ref MATCHERS: [Box<dyn Matcher>; 8] = ["),
        (&matching, "const MAX_DELTA: i32 = 5;"),
        (&matching, "if last_delta == 0 {"),
        (&matching, "for j in (i + 3)..(i + 8) {"),
        (&matching, "for j in (i + 5)..(i + 10) {"),
        (
            &matching,
            r#"table.insert("recent_year", Regex::new(r"19[0-9]{2}|20[0-9]{2}").unwrap());"#,
        ),
    ] {
        assert!(text.contains(line), "zxcvbn no longer has `{line}`");
    }

    // The l33t table.
    let l33t = &matching[matching.find("static ref L33T_TABLE").expect("L33T_TABLE")..];
    let l33t = &l33t[..l33t.find("static ref GRAPHS").expect("GRAPHS")];
    let mut table = Vec::new();
    for entry in l33t.split("table.insert('").skip(1) {
        let mut it = entry.chars();
        let letter = unescape(&mut it).expect("letter");
        let list = &entry[entry.find("vec![").expect("vec!")..entry.find("]);").expect("]);")];
        let subs: String = list
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(|c| c.trim_start_matches('\\'))
            .collect();
        table.push((letter, subs));
    }
    table.sort();
    let ours: Vec<(char, String)> = L33T
        .iter()
        .map(|&(l, s)| (char::from(l), s.to_string()))
        .collect();
    assert_eq!(table, ours, "zxcvbn's L33T_TABLE changed");

    // The long words hex text can spell.
    let spellable = |w: char| {
        "0123456789abcdef".contains(w)
            || table
                .iter()
                .any(|(l, subs)| *l == w && subs.chars().any(|c| c.is_ascii_hexdigit()))
    };
    let lists = read(src.join("frequency_lists.rs"));
    let mut long = BTreeSet::new();
    for list in lists.split(": &str = \"").skip(1) {
        let body = &list[..list.find('"').expect("closing quote")];
        long.extend(
            body.split(',')
                .filter(|w| w.chars().count() >= MIN_LONG && w.chars().all(spellable))
                .map(str::to_string),
        );
    }
    assert!(lists.matches(": &str = \"").count() >= 6, "six word lists");
    let ours: BTreeSet<String> = LONG_WORDS.iter().map(|w| w.to_string()).collect();
    assert_eq!(long, ours, "zxcvbn's word lists changed");

    // Adjacent hex characters on the four keyboards.
    let graphs = read(src.join("adjacency_graphs.rs"));
    assert_eq!(
        graphs.matches("pub static ref").count(),
        4,
        "four keyboards"
    );
    let mut pairs = BTreeSet::new();
    for entry in graphs.split("table.insert(").skip(1) {
        let entry = entry.trim_start();
        let mut it = entry.strip_prefix('\'').expect("a character key").chars();
        let key = unescape(&mut it).expect("key");
        for neighbours in strings_until_close(it.as_str()) {
            for c in neighbours.chars() {
                if key.is_ascii_hexdigit() && c.is_ascii_hexdigit() {
                    pairs.insert(format!("{key}{c}"));
                }
            }
        }
    }
    let ours: BTreeSet<String> = ADJACENT
        .split_ascii_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(pairs, ours, "zxcvbn's keyboards changed");
}

#[test]
fn the_length_a_weak_chain_needs() {
    // n = 64: five matches of 13 (or one bruteforce run of 12 and four of 13) is the
    // cheapest cover; below 61 characters the shortcut never applies.
    for (n, need) in [
        (19, 2),
        (32, 5),
        (60, 12),
        (61, 13),
        (64, 13),
        (80, 16),
        (100, 20),
    ] {
        assert_eq!(least_match_of_a_weak_chain(n), need, "n = {n}");
    }
}

/// The shift-and search finds exactly what reading each word at each position finds.
#[test]
fn the_word_search_is_a_plain_search() {
    let spells = |k: u8, c: u8| {
        k.to_ascii_lowercase() == c
            || L33T
                .iter()
                .any(|&(l, subs)| l == c && subs.as_bytes().contains(&k))
    };
    let plain = |s: &[u8]| {
        LONG_WORDS.iter().map(|w| w.as_bytes()).any(|w| {
            s.windows(w.len()).any(|t| {
                t.iter().zip(w).all(|(&k, &c)| spells(k, c))
                    || t.iter().rev().zip(w).all(|(&k, &c)| spells(k, c))
            })
        })
    };
    let mut g = Gen(7);
    let mut found = 0;
    for i in 0..4000 {
        let mut k = g.text(HEX, 64);
        if i % 2 == 0 {
            // A word, maybe reversed, in l33t or upper case, maybe with one character off.
            let w = g.pick(&LONG_WORDS);
            let mut planted: Vec<u8> = w
                .bytes()
                .map(|c| match L33T.iter().find(|&&(l, _)| l == c) {
                    Some(&(_, subs)) if g.below(2) == 0 => subs.as_bytes()[0],
                    _ if g.below(3) == 0 => c.to_ascii_uppercase(),
                    _ => c,
                })
                .collect();
            if g.below(2) == 0 {
                planted.reverse();
            }
            if g.below(3) == 0 {
                let at = g.below(planted.len());
                planted[at] = HEX.as_bytes()[g.below(16)];
            }
            let at = g.below(64 - planted.len());
            let planted = String::from_utf8(planted).expect("ASCII");
            k.replace_range(at..at + planted.len(), &planted);
        }
        let want = plain(k.as_bytes());
        assert_eq!(spells_a_long_word(k.as_bytes()), want, "{k}");
        found += usize::from(want);
    }
    assert!(found > 1000, "{found}");
}

/// A small deterministic generator (xorshift64*), so a failure names a reproducible key.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
    fn text(&mut self, alphabet: &str, len: usize) -> String {
        let a = alphabet.as_bytes();
        (0..len)
            .map(|_| char::from(a[self.below(a.len())]))
            .collect()
    }
}

const HEX: &str = "0123456789abcdef";

/// Pieces of hex text zxcvbn finds cheap: words (some in l33t), sequences, keyboard and
/// keypad walks, dates and years.
const PIECES: &[&str] = &[
    "deadbeef",
    "c0ffee",
    "decade",
    "facade",
    "5ecre7",
    "acce55",
    "0ff1ce",
    "b00b5",
    "1ee7",
    "ca5cade",
    "3cc1351a571ca1",
    "4815162342",
    "1234567890987654321",
    "12345678987654321",
    "0123456789",
    "abcdef",
    "fedcba",
    "13579",
    "02468ace",
    "9876543210",
    "0000000000",
    "7894561230",
    "1478963",
    "3698521470",
    "159753",
    "741852963",
    "2580",
    "19991231",
    "20240101",
    "1987",
    "2012",
    "31121999",
    "111222333444555",
    "aaaaaaaaaaaaa",
];

/// A key of `len` characters made of [`PIECES`], some bits of random hex between them.
fn patterned(g: &mut Gen, len: usize) -> String {
    let mut k = String::new();
    while k.len() < len {
        if g.below(4) == 0 {
            let filler = 1 + g.below(4);
            k.push_str(&g.text(HEX, filler));
        }
        k.push_str(g.pick(PIECES));
    }
    k.truncate(len);
    k
}

/// Long cheap pieces, each caught by one check only: words of zxcvbn's lists (their
/// sequences and walks are 10 characters at most), and sequences after a run of one
/// character (zxcvbn counts the run into the sequence).
const LONG_PIECES: &[&str] = &[
    "12345678900987654321",
    "1234567890987654321",
    "123456789987654321",
    "12345678987654321",
    "1234567887654321",
    "48151623421057", // "4815162342lost" in l33t
    "3cc1351a571ca1",
    "0000000000123456789",
    "aaaaaaaabcdef",
    "9999999876543210",
    "ffffffffedcba",
];

/// A key of about 64 characters of three to five [`LONG_PIECES`] and a little random hex.
fn long_pieces(g: &mut Gen) -> String {
    let mut k = String::new();
    while k.len() < 58 {
        k.push_str(g.pick(LONG_PIECES));
    }
    let filler = g.below(7);
    k.push_str(&g.text(HEX, filler));
    k
}

/// Random hex of `len` with a piece of `piece` characters of a pattern set into it: near
/// the shortcut's limit (a walk or repeat of 12 is allowed, 13 is not).
fn with_planted(g: &mut Gen, len: usize, planted: &str) -> String {
    let mut k = g.text(HEX, len);
    let at = g.below(len - planted.len());
    k.replace_range(at..at + planted.len(), planted);
    k
}

/// Keys of every kind the shortcut may meet, strong and weak: random hex of many lengths
/// and cases, hex made of words, sequences, walks, dates and repeats, digits only, and
/// (never taking the shortcut) words, short keys and other alphabets.
fn keys() -> Vec<String> {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let mut keys = Vec::new();
    for len in [
        32, 48, 60, 61, 62, 63, 64, 64, 64, 64, 70, 80, 100, 128, 256,
    ] {
        for _ in 0..6 {
            keys.push(g.text(HEX, len));
        }
    }
    for _ in 0..10 {
        keys.push(g.text("0123456789ABCDEF", 64));
        keys.push(g.text("0123456789abcdefABCDEF", 64));
        keys.push(g.text("0123456789", 64));
        keys.push(g.text("0123456789", 100));
    }
    for len in [61, 62, 64, 64, 64, 72, 100] {
        for _ in 0..12 {
            keys.push(patterned(&mut g, len));
        }
    }
    for _ in 0..40 {
        keys.push(long_pieces(&mut g));
    }
    // Repeats of a random base, whole or nearly so.
    for base in [1, 2, 3, 4, 5, 8, 13, 16, 21, 32] {
        for _ in 0..3 {
            let b = g.text(HEX, base);
            let mut k = b.repeat(64 / base + 1);
            k.truncate(64);
            keys.push(k.clone());
            k.replace_range(..2, &g.text(HEX, 2));
            keys.push(k);
        }
    }
    // Just under and at the shortcut's limit.
    for planted in [
        "789632145698",  // a keypad walk of 12
        "7896321456987", // of 13
        "0123456789ab",
        "abcabcabcabc",
        "abcabcabcabca",
        "02468ace0246",
        "1234567890222",  // "1234567890zzz" in l33t
        "3cc1351a571ca1", // "ecclesiastical" in l33t
        "1ac1751a5313cc", // the same, backwards
    ] {
        for _ in 0..4 {
            keys.push(with_planted(&mut g, 64, planted));
        }
    }
    // Four sequences after runs of one character, which only the sequence check catches.
    keys.push("0000000000123456789aaaaaaaabcdef9999999876543210ffffffffedcba5e1".into());
    // Keys a person chose, and other alphabets: zxcvbn always.
    for k in [
        "changeme-api-key",
        "password123456789",
        "correcthorsebatterystaplecorrecthorsebatterystaple",
        "Xk9qT2mZ7wLp",
        "qwertyuiopasdfghjklzxcvbnmqwertyuiopasdfghjkl",
        "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    ] {
        keys.push(k.to_string());
    }
    for _ in 0..6 {
        keys.push(g.text(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
            43,
        ));
        keys.push(g.text("abcdefghijklmnopqrstuvwxyz", 30));
    }
    keys
}

/// For every generated key the shortcut gives exactly the full estimate's number; where it
/// answers, zxcvbn's guesses are indeed at least 10^19. The keys include weak ones a
/// character-set bound alone would call strong, so the comparison can fail.
#[test]
fn the_shortcut_gives_the_full_estimates_answer() {
    let (mut taken, mut fooling) = (0, 0);
    let keys = keys();
    for key in &keys {
        let charset = charset_bits(key);
        let full = estimated_bits(key, charset);
        assert_eq!(
            strength_bits(key).to_bits(),
            full.to_bits(),
            "{key}: {} against {full}",
            strength_bits(key)
        );
        if charset >= 128.0 && charset_bound_is_exact(key) {
            taken += 1;
            assert!(
                zxcvbn::zxcvbn(key, &[]).guesses() >= 10_000_000_000_000_000_000,
                "{key}"
            );
        } else if charset >= 128.0 && full < 128.0 {
            fooling += 1;
        }
    }
    // Most random 64-hex keys take the shortcut, and many weak keys have a bound of 128
    // bits or more.
    assert!(taken >= 140, "the shortcut was taken {taken} times");
    assert!(
        fooling >= 45,
        "only {fooling} weak keys with a strong character set"
    );
    eprintln!(
        "{} keys: shortcut {taken}, weak with a strong character set {fooling}",
        keys.len()
    );
}
