//! Concurrency: fifty writers start at once; the advisory lock and the
//! re-read under it must serialise them so that no confirmed update is lost.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::Instant;

use chrono::Utc;
use mcp_key_manager::envfile;
use mcp_key_vault::NewKey;

use super::util::{code, names, spawnable, stderr};
use crate::common::Env;

/// Writers started at once (SECURITY.md quotes this figure).
const WRITERS: usize = 50;
const CREATES: usize = 25;
const REVOKES: usize = 10;
const USES: usize = WRITERS - CREATES - REVOKES;
/// Distinct keys the `use` writers choose among.
const USE_KEYS: usize = 5;

const ENV_START: &[u8] = b"# app\nexport MCP_API_KEY='none yet'\nPORT=8080\r\n";

#[test]
fn fifty_mixed_writers_at_once_lose_no_update() {
    let e = Env::with_vault();
    std::fs::write(e.env_file(), ENV_START).unwrap();
    // Seed keys through the library (one key derivation instead of fifteen).
    let mut seeded: Vec<(String, String)> = Vec::new();
    e.edit_vault(|v| {
        for n in 0..REVOKES + USE_KEYS {
            let (i, key) = v.create_key(
                NewKey {
                    name: format!("seed {n}"),
                    description: String::new(),
                    expires_at: None,
                    permissions: vec!["info".parse().unwrap()],
                },
                Utc::now(),
            );
            seeded.push((v.keys()[i].id.to_string(), key.expose().to_string()));
        }
    });
    let (to_revoke, to_use) = seeded.split_at(REVOKES);
    let events_before = e.open_vault().events().len();

    let start = Instant::now();
    let mut children = Vec::with_capacity(WRITERS);
    let mut uses_started = 0;
    for n in 0..WRITERS {
        let mut c = spawnable(&e);
        c.env("MCP_KEY_LOCK_TIMEOUT", "120");
        // Interleaved, so each kind starts throughout the burst: per ten writers five
        // create, two revoke, three use.
        let what = match n % 10 {
            0 | 2 | 4 | 6 | 8 => {
                c.args(["create", &format!("writer {n}"), "--json"]);
                format!("create {n}")
            }
            1 | 5 => {
                let id = &to_revoke[2 * (n / 10) + usize::from(n % 10 == 5)].0;
                c.args(["revoke", id, "--json"]);
                format!("revoke {id}")
            }
            _ => {
                let id = &to_use[uses_started % USE_KEYS].0;
                uses_started += 1;
                c.args(["use", id]);
                format!("use {id}")
            }
        };
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        children.push((what, child));
    }
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    let (mut revokes, mut uses) = (Vec::new(), Vec::new());
    for (what, child) in children {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(code(&out), 0, "{what} failed: {}", stderr(&out));
        if what.starts_with("create") {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            created.insert(
                v["id"].as_str().unwrap().to_string(),
                v["key"].as_str().unwrap().to_string(),
            );
        } else if let Some(id) = what.strip_prefix("revoke ") {
            revokes.push(id.to_string());
        } else {
            uses.push(what["use ".len()..].to_string());
        }
    }
    let wall = start.elapsed();
    assert_eq!(
        (created.len(), revokes.len(), uses.len()),
        (CREATES, REVOKES, USES),
        "the writer mix"
    );

    let v = e.open_vault();
    let by_id: BTreeMap<&str, _> = v.keys().iter().map(|k| (k.id.as_str(), k)).collect();
    assert_eq!(
        v.keys().len(),
        REVOKES + USE_KEYS + CREATES,
        "a create was lost or doubled"
    );
    for (id, key) in &created {
        assert_eq!(
            by_id[id.as_str()].secret.expose(),
            key,
            "create of {id} lost"
        );
    }
    for id in &revokes {
        assert!(
            by_id[id.as_str()].revoked_at.is_some(),
            "revoke of {id} lost"
        );
    }
    for (id, _) in to_use {
        assert!(by_id[id.as_str()].revoked_at.is_none());
    }
    // The history is append-only: one event per confirmed write, none lost.
    let events = &v.events()[events_before..];
    let count = |a: &str| events.iter().filter(|ev| ev.action == a).count();
    assert_eq!(
        (count("create"), count("revoke"), count("use")),
        (CREATES, REVOKES, USES),
        "history lost an event"
    );

    // The env file is exactly one of the states a `use` wrote.
    let states: HashSet<Vec<u8>> = to_use
        .iter()
        .map(|(_, key)| {
            envfile::apply(
                ENV_START,
                &[("MCP_API_KEY", key), ("API_KEY_REQUIRED", "true")],
            )
        })
        .collect();
    let env_now = std::fs::read(e.env_file()).unwrap();
    assert!(
        states.contains(&env_now),
        "the env file is not one written state: {:?}",
        String::from_utf8_lossy(&env_now)
    );
    // Nobody was killed: no temporary file may be left.
    assert_eq!(
        names(e.vault().parent().unwrap()),
        ["keys.json", "keys.json.lock"]
    );
    assert_eq!(names(e.path()), [".env", ".env.lock", "mcp_key_manager"]);
    println!("concurrency: {WRITERS} writers ({CREATES} create, {REVOKES} revoke, {USES} use) in {wall:.1?}");
}
