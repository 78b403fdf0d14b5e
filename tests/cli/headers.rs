//! `headers`: every format, the use it records, refusals, the unlock session a client's
//! helper runs in, and the client snippets of docs/clients.md as they stand.

use std::path::Path;

use crate::common::*;
use crate::session::Sess;

fn stdout(e: &Env, args: &[&str]) -> String {
    let out = e.cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", all_output(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_format_prints_the_header_with_the_key() {
    let e = Env::with_vault();
    let (id, key) = e.create("client", &["-p", "info"]);
    assert_eq!(stdout(&e, &["headers", &id]), format!("X-API-Key: {key}\n"));
    assert_eq!(
        stdout(&e, &["headers", "--name", "client", "--bearer"]),
        format!("Authorization: Bearer {key}\n")
    );
    let cc = stdout(&e, &["headers", &id, "--format", "claude-code"]);
    let v: serde_json::Value = serde_json::from_str(&cc).unwrap();
    assert_eq!(v, serde_json::json!({ "X-API-Key": key }));
    assert_eq!(cc.lines().count(), 1);
    let j = stdout(&e, &["headers", &id, "--format", "json", "--bearer"]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id": id, "name": "client",
                           "headers": {"Authorization": format!("Bearer {key}")}})
    );
    assert_eq!(
        stdout(&e, &["headers", &id, "--format", "curl"]),
        format!("header = \"X-API-Key: {key}\"\n")
    );
}

#[test]
fn each_run_is_a_use_in_the_history_and_names_no_key() {
    let e = Env::with_vault();
    let (id, key) = e.create("client", &[]);
    stdout(&e, &["headers", &id, "--format", "claude-code"]);
    stdout(&e, &["headers", &id]);
    let out = e.cmd().args(["history", &id, "--json"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&key[21..]), "history never shows a key");
    let events: serde_json::Value = serde_json::from_str(&text).unwrap();
    let uses: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|ev| ev["action"] == "use")
        .map(|ev| ev["detail"].as_str().unwrap())
        .collect();
    assert_eq!(uses, ["headers (claude-code)", "headers (header)"]);
}

#[test]
fn revoked_and_unknown_keys_are_refused() {
    let e = Env::with_vault();
    let (revoked, _) = e.create("old", &[]);
    e.cmd().args(["revoke", &revoked]).assert().success();
    let out = e.cmd().args(["headers", &revoked]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is revoked; it cannot be used"));
    let out = e
        .cmd()
        .args(["headers", "--name", "nobody"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = e
        .cmd()
        .args(["headers", "ffff", "--format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown format is a usage error"
    );
}

/// A client runs its helper with no terminal: inside a session it needs no passphrase;
/// without one it fails at once (exit 3), saying what to do, and prints nothing.
#[test]
fn a_session_serves_the_helper_and_none_fails_cleanly() {
    let s = Sess::new();
    let (id, key) = s.env.create("claude-code", &[]);
    let args = ["headers", id.as_str(), "--format", "claude-code"];
    let out = s.no_source(&args);
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: no passphrase available"), "{err}");
    assert!(
        err.contains("MCP_KEY_VAULT_PASSPHRASE") && err.contains("unlock"),
        "{err}"
    );

    s.unlock("60s");
    let out = s.no_source(&args);
    assert!(out.status.success(), "{}", all_output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["X-API-Key"], key.as_str());
}

/// The fenced blocks of `lang` in a Markdown file.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let open = format!("```{lang}\n");
    text.match_indices(&open)
        .map(|(i, _)| {
            let body = &text[i + open.len()..];
            body[..body.find("```").unwrap()].to_string()
        })
        .collect()
}

fn clients_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/clients.md");
    std::fs::read_to_string(path).unwrap()
}

/// Every JSON file of docs/clients.md parses, and has the shape its client reads; every
/// shell snippet parses; the Claude Code helper, run as written against a vault in a
/// session, prints what Claude Code reads.
#[test]
fn the_client_snippets_of_the_docs_are_what_the_clients_read() {
    let doc = clients_md();
    let json: Vec<serde_json::Value> = blocks(&doc, "json")
        .iter()
        .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}")))
        .collect();
    assert_eq!(json.len(), 3, "Claude Code, Cursor, VS Code");

    // Claude Code: `mcpServers.<name>.headersHelper`, a command without shell syntax.
    let helper = json[0]["mcpServers"]["tools"]["headersHelper"]
        .as_str()
        .unwrap();
    assert_eq!(json[0]["mcpServers"]["tools"]["type"], "http");
    assert!(
        !helper.contains(['\'', '"', '$', '~', '`', '|', ';']),
        "{helper}"
    );
    // Cursor: `${env:NAME}` in `headers`, with NAME set by the shell snippet below.
    let cursor = json[1]["mcpServers"]["tools"]["headers"]["X-API-Key"]
        .as_str()
        .unwrap();
    let var = cursor
        .strip_prefix("${env:")
        .and_then(|v| v.strip_suffix('}'))
        .unwrap();
    // VS Code: `servers.<name>.headers` naming an `inputs` entry that is a password.
    let vscode = &json[2];
    let input = vscode["servers"]["tools"]["headers"]["X-API-Key"]
        .as_str()
        .unwrap();
    let input_id = input
        .strip_prefix("${input:")
        .and_then(|v| v.strip_suffix('}'))
        .unwrap();
    let declared = vscode["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == input_id)
        .unwrap();
    assert_eq!(
        (&declared["type"], &declared["password"]),
        (&"promptString".into(), &true.into())
    );

    let shell = blocks(&doc, "sh");
    assert!(shell.iter().any(|b| b.contains(&format!("{var}=\"$("))));
    assert!(shell.iter().any(|b| b.contains("inspector --cli")));
    assert!(shell.iter().any(|b| b.contains("curl -K -")));
    for b in &shell {
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", b])
            .output()
            .unwrap();
        assert!(out.status.success(), "{b}: {}", all_output(&out));
    }

    // The helper as written, with this test's binary and vault.
    let s = Sess::new();
    let (_, key) = s.env.create("claude-code", &[]);
    s.unlock("60s");
    let vault = s.env.vault();
    let words: Vec<&str> = helper.split_whitespace().collect();
    assert_eq!(words[0], "mcp-key-manager");
    let args: Vec<&str> = words[1..]
        .iter()
        .map(|w| {
            if w.ends_with("keys.json") {
                vault.to_str().unwrap()
            } else {
                w
            }
        })
        .collect();
    let out = s.no_source(&args);
    assert!(out.status.success(), "{}", all_output(&out));
    let headers: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert!(headers.values().all(serde_json::Value::is_string));
    assert_eq!(headers["X-API-Key"], key.as_str());
}
