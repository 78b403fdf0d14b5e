//! The env file is read the way the loaders read it. python-dotenv
//! itself (and Node's `--env-file` parser) is run over a corpus — the files under
//! `tests/data/envfiles/` and several hundred generated variants — and must agree with
//! [`analyze`] wherever it calls the file unambiguous; `apply_checked` on those files must
//! give every loader exactly the new key and `API_KEY_REQUIRED=true`.
//!
//! Python comes from `MCP_TEST_PYTHON` (else `python3`), Node from `node`; each runs once per
//! batch. With `CI=true` a missing python-dotenv or Node fails the test; elsewhere it is
//! skipped with a reason.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::tool_or_skip;
use mcp_key_manager::envfile::{analyze, apply_checked, EnvError};
use serde_json::Value;

const OURS: [&str; 2] = ["MCP_API_KEY", "API_KEY_REQUIRED"];
const NEW_KEY: &str =
    "mcp_00112233445566ff_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Runs `program args` with `input` on stdin and a deadline; stdout parsed as JSON.
fn run_json(program: &str, args: &[&str], input: &str, limit: Duration) -> Option<Value> {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("MCP_API_KEY")
        .env_remove("API_KEY_REQUIRED")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    // Drain both pipes while waiting, so a large answer cannot block the child.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().ok()? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().expect("stdin writer");
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    if !status.success() {
        eprintln!("{program}: {}", String::from_utf8_lossy(&stderr));
        return None;
    }
    serde_json::from_slice(&stdout).ok()
}

fn python() -> Option<String> {
    let py = std::env::var("MCP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import dotenv"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let why = format_args!("{py} cannot import dotenv (python-dotenv); set MCP_TEST_PYTHON");
    tool_or_skip("the python-dotenv corpus", ok, why).then_some(py)
}

fn node() -> Option<String> {
    let ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let why = "node is not installed";
    tool_or_skip("the Node half of the corpus", ok, why).then(|| "node".into())
}

/// For each path: `dotenv_values(p, interpolate=False)` (every binding) and what
/// `load_dotenv(p)` puts into a clean environment for our two variables.
const PY_SCRIPT: &str = r#"
import json, logging, os, sys
logging.disable(logging.CRITICAL)
from dotenv import dotenv_values, load_dotenv
ours = ("MCP_API_KEY", "API_KEY_REQUIRED")
out = []
for p in json.load(sys.stdin):
    r = {}
    try:
        r["values"] = dotenv_values(p, interpolate=False)
    except Exception as e:
        r["error"] = type(e).__name__
    saved = dict(os.environ)
    for k in ours:
        os.environ.pop(k, None)
    try:
        load_dotenv(p)
        r["loaded"] = {k: os.environ.get(k) for k in ours}
    except Exception as e:
        r["load_error"] = type(e).__name__
    os.environ.clear()
    os.environ.update(saved)
    out.append(r)
json.dump(out, sys.stdout)
"#;

/// For each path: Node's reading of our two variables, through `util.parseEnv` (the
/// parser behind `--env-file`) when it exists, else one `--env-file` process per file.
/// The first `spot` files are also run through `--env-file` itself, to check the two agree.
const NODE_SCRIPT: &str = r#"
const fs = require("fs"), util = require("util"), cp = require("child_process");
const ours = ["MCP_API_KEY", "API_KEY_REQUIRED"];
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const viaFlag = (p) => {
  const env = {...process.env}; for (const k of ours) delete env[k];
  const o = cp.execFileSync(process.execPath, ["--env-file=" + p, "-e",
    "console.log(JSON.stringify([process.env.MCP_API_KEY ?? null, process.env.API_KEY_REQUIRED ?? null]))"],
    {env});
  const [a, b] = JSON.parse(o);
  return {MCP_API_KEY: a, API_KEY_REQUIRED: b};
};
const out = input.paths.map((p, i) => {
  let r;
  if (typeof util.parseEnv === "function") {
    const e = util.parseEnv(fs.readFileSync(p, "utf8"));
    r = {MCP_API_KEY: e.MCP_API_KEY ?? null, API_KEY_REQUIRED: e.API_KEY_REQUIRED ?? null};
    if (i < input.spot) {
      const f = viaFlag(p);
      if (f.MCP_API_KEY !== r.MCP_API_KEY || f.API_KEY_REQUIRED !== r.API_KEY_REQUIRED)
        throw new Error("util.parseEnv and --env-file disagree on " + p);
    }
  } else {
    r = viaFlag(p);
  }
  return r;
});
process.stdout.write(JSON.stringify(out));
"#;

/// splitmix64: a fixed-seed generator, so a failure names a reproducible file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const KEY_A: &str =
    "mcp_0123456789abcdef_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_E: &str =
    "mcp_fedcba9876543210_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/// One generated file. `clean` files use only forms the loaders agree on (they may still
/// repeat a variable); the others draw from every hazard of the issue and `docs/envfile.md`.
fn generate(rng: &mut Rng, clean: bool) -> Vec<u8> {
    let names = [
        "MCP_API_KEY",
        "MCP_API_KEY",
        "API_KEY_REQUIRED",
        "API_KEY_REQUIRED",
        "PORT",
        "MCP_API_KEY_OLD",
        "export",
    ];
    let mut out = String::new();
    if !clean && rng.chance(4) {
        out.push('\u{feff}');
    }
    let crlf = rng.chance(30);
    let n = 1 + rng.next() % 7;
    for _ in 0..n {
        let line = if clean {
            match rng.next() % 8 {
                0 => rng
                    .pick(&["# comment", "#MCP_API_KEY=old", "", "# it's \"quoted\""])
                    .to_owned(),
                _ => format!(
                    "{}{}{}{}={}{}{}",
                    rng.pick(&["", "", " ", "  "]),
                    rng.pick(&["", "", "export "]),
                    rng.pick(&names),
                    rng.pick(&["", "", " "]),
                    rng.pick(&["", "", " "]),
                    rng.pick(&[
                        KEY_A,
                        KEY_E,
                        "true",
                        "false",
                        "\"true\"",
                        "'true'",
                        &format!("\"{KEY_A}\""),
                        &format!("'{KEY_E}'"),
                        "\"a b\"",
                        "",
                        "8000",
                    ]),
                    rng.pick(&["", "", "", " # note", "   #c", "  "]),
                ),
            }
        } else {
            match rng.next() % 10 {
                0 => rng
                    .pick(&[
                        "# comment",
                        "  # indented",
                        "\t# tab comment",
                        "",
                        "   ",
                        "\t",
                        "API_KEY_REQUIRED",
                        "MCP_API_KEY",
                        "FOO",
                        "=oops",
                        "\u{a0}",
                        "export API_KEY_REQUIRED",
                    ])
                    .to_owned(),
                _ => {
                    let value = rng.pick(&[
                        KEY_A,
                        KEY_E,
                        "true",
                        "false",
                        "TRUE",
                        "\"true\"",
                        "'true'",
                        "`true`",
                        "\"a b\"",
                        "x#y",
                        "${HOME}",
                        "$HOME",
                        "\"a\\\\b\"",
                        "\"x\\\"y\"",
                        "'x\\'y'",
                        "\"open",
                        "'open",
                        "`open",
                        "\"multi\nMCP_API_KEY=evil_multi\nend\"",
                        "'multi\nAPI_KEY_REQUIRED=false\nend'",
                        "`multi\nMCP_API_KEY=evil_tick\n`",
                        "\"true\"junk",
                        "",
                        "a b",
                        "true\u{a0}",
                        "\"\\n\"",
                    ]);
                    format!(
                        "{}{}{}{}{}{}{}{}",
                        rng.pick(&[
                            "", "", "", "", " ", "\t", "\x0c", "\x0b", "\u{a0}", "\u{3000}",
                            "\u{2028}"
                        ]),
                        rng.pick(&["", "", "", "export ", "export  ", "export\t"]),
                        rng.pick(&[
                            "MCP_API_KEY",
                            "MCP_API_KEY",
                            "API_KEY_REQUIRED",
                            "API_KEY_REQUIRED",
                            "PORT",
                            "'MCP_API_KEY'",
                            "MCP_API_KEY_OLD",
                        ]),
                        rng.pick(&["", "", "", " ", "\t", "\x0c", "\u{a0}", "\x1f"]),
                        rng.pick(&["=", "=", "=", "=", "=", ": ", " "]),
                        rng.pick(&["", "", "", " ", "\t", "\u{a0}"]),
                        value,
                        rng.pick(&["", "", "", " # note", "\t# c", "#glued", "  ", "\u{a0}", "\r"]),
                    )
                }
            }
        };
        out.push_str(&line);
        let ending = if clean {
            if crlf {
                "\r\n"
            } else {
                "\n"
            }
        } else {
            rng.pick(&["\n", "\n", "\n", "\n", "\n", "\r\n", "\r\n", "\r"])
        };
        out.push_str(ending);
    }
    if rng.chance(20) {
        while out.ends_with(['\n', '\r']) {
            out.pop();
        }
    }
    out.into_bytes()
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envfiles");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("tests/data/envfiles")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "env"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("corpus file"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the committed corpus is missing");
    let mut rng = Rng(0x5eed_0011);
    for i in 0..700 {
        let clean = i % 2 == 0;
        files.push((
            format!("gen-{i:03}-{}", if clean { "clean" } else { "wild" }),
            generate(&mut rng, clean),
        ));
    }
    files
}

fn write_all(dir: &Path, files: &[(String, Vec<u8>)], suffix: &str) -> Vec<PathBuf> {
    files
        .iter()
        .enumerate()
        .map(|(i, (_, bytes))| {
            let p = dir.join(format!("{i:04}{suffix}.env"));
            std::fs::write(&p, bytes).expect("write corpus file");
            p
        })
        .collect()
}

fn paths_json(paths: &[PathBuf]) -> Value {
    Value::Array(
        paths
            .iter()
            .map(|p| Value::String(p.to_string_lossy().into_owned()))
            .collect(),
    )
}

fn as_opt(v: &Value) -> Option<&str> {
    v.as_str()
}

#[test]
fn python_dotenv_and_node_load_exactly_what_the_analysis_says() {
    let started = Instant::now();
    let Some(py) = python() else { return };
    let node = node();
    let files = corpus();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = write_all(dir.path(), &files, "");
    let limit = Duration::from_secs(30);

    let py_out = run_json(
        &py,
        &["-c", PY_SCRIPT],
        &paths_json(&paths).to_string(),
        limit,
    )
    .expect("python-dotenv ran");
    let py_out = py_out.as_array().expect("a list");
    assert_eq!(py_out.len(), files.len());
    let node_out = node.as_ref().map(|n| {
        let input = serde_json::json!({"paths": paths_json(&paths), "spot": 25});
        let v = run_json(n, &["-e", NODE_SCRIPT], &input.to_string(), limit).expect("node ran");
        v.as_array().expect("a list").clone()
    });

    let (mut unambiguous, mut disagreements, mut flagged_attacks, mut cured) = (0, 0, 0, 0);
    let mut edited: Vec<(String, Vec<u8>)> = Vec::new();
    let mut before_values: Vec<BTreeMap<String, Option<String>>> = Vec::new();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let a = analyze(bytes);
        let py = &py_out[i];
        let ambiguous = a.is_ambiguous_for(&OURS);

        // The port: every binding python-dotenv yields, for every file it can read.
        match py.get("values") {
            None => assert!(
                a.invalid_utf8_line().is_some(),
                "{name}: python-dotenv failed ({}) on a file the analysis reads",
                py["error"]
            ),
            Some(values) => {
                let theirs: BTreeMap<String, Option<String>> = values
                    .as_object()
                    .expect("a dict")
                    .iter()
                    .map(|(k, v)| (k.clone(), as_opt(v).map(str::to_owned)))
                    .collect();
                let ours: BTreeMap<String, Option<String>> = a
                    .values()
                    .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                    .collect();
                assert_eq!(ours, theirs, "{name}: {:?}", String::from_utf8_lossy(bytes));
            }
        }

        let node_vals = node_out.as_ref().map(|n| &n[i]);
        if let (Some(n), Some(loaded)) = (node_vals, py.get("loaded")) {
            if OURS.iter().any(|k| n[*k] != loaded[*k]) {
                disagreements += 1;
                assert!(
                    ambiguous,
                    "{name}: python-dotenv and Node disagree, analysis does not"
                );
            }
        }
        if name.starts_with("attack-") {
            assert!(ambiguous, "{name} must be ambiguous: {a:?}");
            flagged_attacks += 1;
        }
        if name.starts_with("plain-") {
            assert!(!ambiguous, "{name} must be unambiguous: {a:?}");
        }
        if ambiguous {
            // Refused — unless the only fault was a value the edit replaced, and then the
            // edited file goes through the same loaders below.
            match apply_checked(
                bytes,
                &[("MCP_API_KEY", NEW_KEY), ("API_KEY_REQUIRED", "true")],
            ) {
                Err(EnvError::Ambiguous(_)) => {}
                Ok(out) => {
                    cured += 1;
                    before_values.push(
                        a.values()
                            .filter(|(k, _)| !OURS.contains(k))
                            .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                            .collect(),
                    );
                    edited.push((format!("{name} (cured)"), out));
                }
                Err(e) => panic!("{name}: {e:?}"),
            }
            continue;
        }
        unambiguous += 1;
        // Whenever the analysis is sure, python-dotenv's load_dotenv and Node load exactly
        // its values for our two variables (so a passing `check` means the server has them).
        let loaded = &py["loaded"];
        for k in OURS {
            assert_eq!(as_opt(&loaded[k]), a.value(k), "{name}: load_dotenv {k}");
            if let Some(n) = node_vals {
                assert_eq!(as_opt(&n[k]), a.value(k), "{name}: node {k}");
            }
        }
        let out = apply_checked(
            bytes,
            &[("MCP_API_KEY", NEW_KEY), ("API_KEY_REQUIRED", "true")],
        )
        .unwrap_or_else(|e| {
            panic!(
                "{name}: apply_checked refused an unambiguous file {:?}: {e}",
                String::from_utf8_lossy(bytes)
            )
        });
        before_values.push(
            a.values()
                .filter(|(k, _)| !OURS.contains(k))
                .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                .collect(),
        );
        edited.push((name.clone(), out));
    }
    assert_eq!(
        flagged_attacks,
        files
            .iter()
            .filter(|(n, _)| n.starts_with("attack-"))
            .count()
    );
    assert!(
        unambiguous >= 150,
        "only {unambiguous} unambiguous files: the corpus is too wild"
    );
    if node_out.is_some() {
        assert!(
            disagreements >= 50,
            "only {disagreements} files where the loaders disagree"
        );
    }

    // Every loader reads the edited files with exactly the new key and the requirement on,
    // and python-dotenv every other variable as before.
    let paths = write_all(dir.path(), &edited, "-edited");
    let py_out = run_json(
        &py,
        &["-c", PY_SCRIPT],
        &paths_json(&paths).to_string(),
        limit,
    )
    .expect("python-dotenv ran");
    let node_out = node.as_ref().map(|n| {
        let input = serde_json::json!({"paths": paths_json(&paths), "spot": 0});
        run_json(n, &["-e", NODE_SCRIPT], &input.to_string(), limit).expect("node ran")
    });
    for (i, (name, bytes)) in edited.iter().enumerate() {
        let py = &py_out[i];
        assert_eq!(py["loaded"]["MCP_API_KEY"], NEW_KEY, "{name}");
        assert_eq!(py["loaded"]["API_KEY_REQUIRED"], "true", "{name}");
        if let Some(n) = &node_out {
            assert_eq!(n[i]["MCP_API_KEY"], NEW_KEY, "{name}: node");
            assert_eq!(n[i]["API_KEY_REQUIRED"], "true", "{name}: node");
        }
        let others: BTreeMap<String, Option<String>> = py["values"]
            .as_object()
            .expect("a dict")
            .iter()
            .filter(|(k, _)| !OURS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), as_opt(v).map(str::to_owned)))
            .collect();
        assert_eq!(others, before_values[i], "{name}: other variables changed");
        assert!(
            !analyze(bytes).is_ambiguous_for(&OURS),
            "{name}: the edit made it ambiguous"
        );
    }
    eprintln!(
        "{} files: {unambiguous} unambiguous and {cured} cured by the edit (edited and \
         re-read), {disagreements} where python-dotenv and Node disagree; {:.1?}",
        files.len(),
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the corpus test must stay fast"
    );
}
