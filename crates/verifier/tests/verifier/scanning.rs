//! The secret-scanner rules of docs/scanning/ (gitleaks TOML, trufflehog YAML), applied as the
//! scanners apply them (the pattern, the keyword prefilter, the entropy floor on the captured
//! key) with Rust's `regex`, to the shared corpus `tests/vectors/verifier/key-pattern.json`:
//! every key found once, no near miss, no placeholder.

use std::path::Path;

use mcp_key_verifier::keys::KEY_PATTERN;
use regex::Regex;
use serde_json::Value;

fn repo(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One rule as a scanner runs it.
struct Rule {
    name: String,
    regex: Regex,
    /// The capture group holding the secret.
    group: usize,
    /// Least Shannon entropy of the secret, in bits a character.
    entropy: f64,
    /// A text is searched only if it holds one of these (case-insensitively).
    keywords: Vec<String>,
}

impl Rule {
    fn finds<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let lower = text.to_ascii_lowercase();
        if !self
            .keywords
            .iter()
            .any(|k| lower.contains(&k.to_ascii_lowercase()))
        {
            return Vec::new();
        }
        self.regex
            .captures_iter(text)
            .filter_map(|c| c.get(self.group))
            .map(|m| m.as_str())
            .filter(|s| entropy(s) >= self.entropy)
            .collect()
    }
}

/// Shannon entropy of `s` in bits a character, as gitleaks and trufflehog compute it.
fn entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn gitleaks() -> Vec<Rule> {
    let config: toml::Value = toml::from_str(&repo("docs/scanning/gitleaks.toml")).unwrap();
    assert_eq!(config["extend"]["useDefault"].as_bool(), Some(true));
    config["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Rule {
            name: r["id"].as_str().unwrap().into(),
            regex: Regex::new(r["regex"].as_str().unwrap()).unwrap(),
            group: r["secretGroup"].as_integer().unwrap() as usize,
            entropy: r["entropy"].as_float().unwrap(),
            keywords: r["keywords"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().into())
                .collect(),
        })
        .collect()
}

/// The one detector of trufflehog.yaml, read line by line: the file keeps to block mappings,
/// block lists and single-quoted scalars (the Python test reads it with a YAML parser).
fn trufflehog() -> Rule {
    let text = repo("docs/scanning/trufflehog.yaml");
    let (mut name, mut pattern, mut entropy) = (None, None, None);
    let mut keywords = Vec::new();
    let mut section = "";
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("- name: ") {
            name = Some(v.to_string());
        } else if let Some(k) = t.strip_prefix("- ").filter(|_| section == "keywords") {
            keywords.push(k.to_string());
        } else if let Some((k, v)) = t.split_once(": ") {
            if section == "regex" && k == "key" {
                let quoted = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\''));
                pattern = Some(quoted.unwrap().replace("''", "'"));
            } else if k == "entropy" {
                entropy = Some(v.parse::<f64>().unwrap());
            }
        } else if let Some(k) = t.strip_suffix(':') {
            section = k;
        }
    }
    Rule {
        name: name.unwrap(),
        regex: Regex::new(&pattern.unwrap()).unwrap(),
        group: 1,
        entropy: entropy.unwrap(),
        keywords,
    }
}

fn corpus() -> Value {
    serde_json::from_str(&repo("tests/vectors/verifier/key-pattern.json")).unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// What a set of rules finds in `text`, in order of position.
fn found<'t>(rules: &[Rule], text: &'t str) -> Vec<&'t str> {
    let mut all: Vec<&str> = rules.iter().flat_map(|r| r.finds(text)).collect();
    all.sort_by_key(|s| s.as_ptr() as usize);
    all
}

#[test]
fn each_scanner_finds_every_key_and_nothing_else() {
    let corpus = corpus();
    let sets = [("gitleaks", gitleaks()), ("trufflehog", vec![trufflehog()])];
    assert_eq!(sets[0].1.len(), 2);
    assert_eq!(sets[1].1[0].name, "mcp-key-manager");
    let mut problems = Vec::new();
    for (scanner, rules) in &sets {
        for k in strings(&corpus["keys"]) {
            if found(rules, k) != [k] {
                problems.push(format!("{scanner} missed a key"));
            }
        }
        for t in corpus["texts"].as_array().unwrap() {
            if found(rules, t["text"].as_str().unwrap()) != strings(&t["keys"]) {
                problems.push(format!("{scanner}: wrong keys in a text"));
            }
        }
        for n in corpus["near_misses"].as_array().unwrap() {
            if !found(rules, n["text"].as_str().unwrap()).is_empty() {
                problems.push(format!("{scanner} matched {}", n["why"]));
            }
        }
        for p in strings(&corpus["placeholders"]) {
            if !found(rules, p).is_empty() {
                problems.push(format!("{scanner} matched a placeholder"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_entropy_floor_is_what_drops_placeholders() {
    let pattern = Regex::new(&format!("^(?:{KEY_PATTERN})$")).unwrap();
    let floor = trufflehog().entropy;
    for p in strings(&corpus()["placeholders"]) {
        assert!(pattern.is_match(p), "a placeholder has a key's shape");
        assert!(entropy(p) < floor);
    }
    for k in strings(&corpus()["keys"]) {
        assert!(entropy(k) > floor + 0.3, "{}", entropy(k));
    }
}

#[test]
fn the_scanners_agree_with_each_other_and_the_key_pattern() {
    let (g, t) = (gitleaks(), [trufflehog()]);
    let pattern = Regex::new(KEY_PATTERN).unwrap();
    let corpus = corpus();
    let mut texts: Vec<&str> = strings(&corpus["keys"]);
    texts.extend(
        corpus["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["text"].as_str().unwrap()),
    );
    texts.extend(
        corpus["near_misses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["text"].as_str().unwrap()),
    );
    for text in texts {
        let by_pattern: Vec<&str> = pattern.find_iter(text).map(|m| m.as_str()).collect();
        assert_eq!(found(&g, text), found(&t, text));
        assert_eq!(found(&g, text), by_pattern);
    }
}
