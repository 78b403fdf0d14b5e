//! The one regular expression for keys of both formats (`keys::KEY_PATTERN`): it is the
//! one the docs show, and as Rust's `regex` runs it, it finds every key of the shared
//! corpus (`tests/vectors/verifier/key-pattern.json`) and none of its near misses.

use std::path::Path;

use mcp_key_verifier::keys::{classify, Shape, KEY_PATTERN};
use regex::Regex;
use serde_json::Value;

fn repo(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The contents of every fenced block of `lang` in a Markdown text.
fn fenced<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    text.match_indices(&open)
        .map(|(i, _)| {
            let body = &text[i + open.len()..];
            &body[..body.find("```").expect("a closed block")]
        })
        .collect()
}

#[test]
fn the_docs_show_the_pattern_the_crate_exports() {
    for doc in ["docs/verifier.md", "docs/commands.md"] {
        let text = repo(doc);
        let blocks = fenced(&text, "regex");
        assert_eq!(blocks, [format!("{KEY_PATTERN}\n")], "{doc}");
    }
    let corpus: Value = serde_json::from_str(&repo("tests/vectors/verifier/key-pattern.json"))
        .expect("key-pattern.json");
    assert_eq!(corpus["pattern"], KEY_PATTERN);
}

#[test]
fn the_pattern_finds_every_key_and_no_near_miss() {
    let corpus: Value = serde_json::from_str(&repo("tests/vectors/verifier/key-pattern.json"))
        .expect("key-pattern.json");
    let any = Regex::new(KEY_PATTERN).expect("the pattern compiles");
    let whole = Regex::new(&format!("^(?:{KEY_PATTERN})$")).expect("anchored");
    let keys = corpus["keys"].as_array().unwrap();
    assert!(keys.len() >= 8);
    for k in keys {
        let k = k.as_str().unwrap();
        assert!(whole.is_match(k), "missed a key");
        assert!(
            matches!(classify(k), Shape::Modern { .. }),
            "the corpus holds keys"
        );
    }
    let mut problems = Vec::new();
    for n in corpus["near_misses"].as_array().unwrap() {
        if any.is_match(n["text"].as_str().unwrap()) {
            problems.push(format!("matched {}", n["why"]));
        }
    }
    for t in corpus["texts"].as_array().unwrap() {
        let found: Vec<&str> = any
            .find_iter(t["text"].as_str().unwrap())
            .map(|m| m.as_str())
            .collect();
        let want: Vec<&str> = t["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        if found != want {
            problems.push(format!(
                "{} keys found in a text, {} wanted",
                found.len(),
                want.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_pattern_finds_every_valid_key_of_the_vectors() {
    let cases: Value = serde_json::from_str(&repo("tests/vectors/verifier/cases.json")).unwrap();
    let whole = Regex::new(&format!("^(?:{KEY_PATTERN})$")).unwrap();
    let mut seen = 0;
    for c in cases["cases"].as_array().unwrap() {
        let k = c["key"].as_str().unwrap();
        if c["code"] != "MALFORMED" && matches!(classify(k), Shape::Modern { .. }) {
            assert!(whole.is_match(k), "{}", c["why"]);
            seen += 1;
        }
    }
    assert!(seen > 40, "{seen}");
}
