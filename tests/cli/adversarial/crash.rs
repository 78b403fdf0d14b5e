//! Crash safety: writers are SIGKILLed at random moments; afterwards the
//! vault still opens, every write the tool confirmed (exit 0) is in it, and the env file is
//! always the old or a complete new state.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_key_manager::envfile;

use super::util::{code, names, spawnable, stderr, Rng};
use crate::common::Env;

/// Total SIGKILL runs (SECURITY.md quotes this figure).
const RUNS: usize = 200;
/// Kill after a random delay in `0..max` ms. An unloaded weak-KDF write takes about 60 ms
/// here, but other tests share the cores, so `max` adapts: every `WINDOW` runs it grows
/// when no run got to finish and shrinks when most did, keeping the kills spread over
/// start-up, key derivation, the locked write and the output.
const START_DELAY_MS: u64 = 60;
const WINDOW: usize = 10;

/// The env file the runs edit: comments, CRLF, quotes, `export`, invalid UTF-8, no final
/// newline — every line but the two variables must survive every kill byte for byte.
const ENV_START: &[u8] = b"# service settings\r\nexport MCP_API_KEY=\"placeholder\" # rotated by ops\nOTHER='keep me'\n# \xff\xfe raw bytes\nAPI_KEY_REQUIRED=false";

fn env_state(key: &str) -> Vec<u8> {
    envfile::apply(
        ENV_START,
        &[("MCP_API_KEY", key), ("API_KEY_REQUIRED", "true")],
    )
}

/// What the two directories hold when no writer is running.
const VAULT_FILES: &[&str] = &["keys.json", "keys.json.lock"];
const CWD_FILES: &[&str] = &[".env", ".env.lock", "mcp_key_manager"];
/// Temporary files of `fsio::atomic_write`: `.<name>.tmp-<12 hex>`.
const VAULT_TMP: &str = ".keys.json.tmp-";
const ENV_TMP: &str = "..env.tmp-";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Create,
    Revoke,
    Rotate,
    Use,
}

#[test]
fn sigkilled_writers_never_lose_a_confirmed_write_or_tear_a_file() {
    let start = Instant::now();
    let mut rng = Rng::from_env("crash");
    let e = Env::with_vault();
    std::fs::write(e.env_file(), ENV_START).unwrap();
    // The env file is private, as `use` makes a new one; its writes keep that mode.
    std::fs::set_permissions(e.env_file(), std::fs::Permissions::from_mode(0o600)).unwrap();

    // id -> full key, for every key whose creation (or rotation) was confirmed.
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for n in 0..3 {
        let (id, key) = e.create(&format!("seed {n}"), &[]);
        known.insert(id, key);
    }
    let mut revoked: BTreeSet<String> = BTreeSet::new();
    let mut rotated: BTreeMap<String, String> = BTreeMap::new(); // old -> new
    let mut env_states: HashSet<Vec<u8>> = HashSet::from([ENV_START.to_vec()]);
    let mut killed: BTreeMap<Op, usize> = BTreeMap::new();
    let mut finished: BTreeMap<Op, usize> = BTreeMap::new();
    let mut max_delay = START_DELAY_MS;
    let mut finished_in_window = 0;
    let mut delays_used = BTreeSet::new();
    let mut stale_seen: BTreeSet<String> = BTreeSet::new();
    let vault_dir = e.vault().parent().unwrap().to_path_buf();

    for run in 0..RUNS {
        let op = *rng.pick(&[
            Op::Create,
            Op::Create,
            Op::Revoke,
            Op::Rotate,
            Op::Use,
            Op::Use,
        ]);
        let ids: Vec<&String> = known.keys().collect();
        let live: Vec<&String> = ids
            .iter()
            .copied()
            .filter(|i| !revoked.contains(*i) && !rotated.contains_key(*i))
            .collect();
        let target = if live.is_empty() {
            (*rng.pick(&ids)).clone()
        } else {
            (*rng.pick(&live)).clone()
        };
        let mut cmd = spawnable(&e);
        match op {
            Op::Create => cmd.args(["create", &format!("run {run}"), "--json"]),
            Op::Revoke => cmd.args(["revoke", &target, "--json"]),
            Op::Rotate => cmd.args(["rotate", &target, "--json"]),
            Op::Use => cmd.args(["use", &target]),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(rng.below(max_delay)));
        // SIGKILL; harmless if the child has already exited (it is a zombie until waited).
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        if out.status.signal() == Some(libc::SIGKILL) {
            *killed.entry(op).or_default() += 1;
        } else {
            finished_in_window += 1;
            *finished.entry(op).or_default() += 1;
            // A run that finished on its own must have succeeded, or failed for a reason
            // we expect (revoking/using/rotating a key a killed run already changed).
            let c = code(&out);
            assert!(
                c == 0 || (c == 1 && op != Op::Create),
                "run {run} {op:?} {target} exited {c}: {}",
                stderr(&out)
            );
            if c == 0 {
                match op {
                    Op::Create => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&out.stdout).expect("create --json");
                        known.insert(
                            v["id"].as_str().unwrap().to_string(),
                            v["key"].as_str().unwrap().to_string(),
                        );
                    }
                    Op::Revoke => {
                        revoked.insert(target.clone());
                    }
                    Op::Rotate => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&out.stdout).expect("rotate --json");
                        let new = v["id"].as_str().unwrap().to_string();
                        known.insert(new.clone(), v["key"].as_str().unwrap().to_string());
                        rotated.insert(target.clone(), new);
                    }
                    Op::Use => {}
                }
            }
        }
        if (run + 1) % WINDOW == 0 {
            delays_used.insert(max_delay);
            if finished_in_window == 0 {
                max_delay = (max_delay * 3 / 2).min(2_000);
            } else if finished_in_window > WINDOW / 2 {
                max_delay = (max_delay * 3 / 4).max(20);
            }
            finished_in_window = 0;
        }
        // Whatever happened, the env file is a complete state: the start, or the start
        // with a key of the vault written in (`use` of a known id, or a killed `rotate`
        // whose successor, never printed, followed the old key into the file).
        let now = std::fs::read(e.env_file()).expect("the env file still exists");
        if !env_states.contains(&now) {
            env_states.extend(known.values().map(|k| env_state(k)));
        }
        if !env_states.contains(&now) {
            let v = e.open_vault();
            env_states.extend(v.keys().iter().map(|k| env_state(k.secret.expose())));
        }
        assert!(
            env_states.contains(&now),
            "run {run} ({op:?}) left a torn env file: {:?}",
            String::from_utf8_lossy(&now)
        );
        // Temporary files a killed writer left (until the next lock holder removes them):
        // only ours, and 0600, since the env file's may hold a key.
        for dir in [&vault_dir, &e.path().to_path_buf()] {
            for name in names(dir) {
                if [VAULT_FILES, CWD_FILES].concat().contains(&name.as_str()) {
                    continue;
                }
                assert!(
                    name.starts_with(VAULT_TMP) || name.starts_with(ENV_TMP),
                    "unexpected file {name} in {}",
                    dir.display()
                );
                let mode = std::fs::metadata(dir.join(&name))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{name} has mode {mode:o}");
                stale_seen.insert(name);
            }
        }
    }

    // The vault opens with the passphrase and holds every confirmed write.
    let v = e.open_vault();
    let by_id: BTreeMap<&str, _> = v.keys().iter().map(|k| (k.id.as_str(), k)).collect();
    for (id, key) in &known {
        let k = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("confirmed key {id} lost"));
        assert_eq!(k.secret.expose(), key, "key {id} holds another secret");
    }
    for id in &revoked {
        assert!(
            by_id[id.as_str()].revoked_at.is_some(),
            "confirmed revoke of {id} lost"
        );
    }
    for (old, new) in &rotated {
        assert_eq!(
            by_id[old.as_str()].rotated_to.as_deref(),
            Some(new.as_str())
        );
        assert!(
            by_id[old.as_str()].revoked_at.is_some(),
            "rotated {old} not revoked"
        );
    }
    // The binary agrees, and no lock was left behind by a killed holder; taking the
    // locks again removes every stale temporary file.
    let out = spawnable(&e)
        .env("MCP_KEY_LOCK_TIMEOUT", "5")
        .args(["create", "after the storm", "--json", "-u"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        names(&vault_dir),
        VAULT_FILES,
        "files left in the vault directory"
    );
    assert_eq!(
        names(e.path()),
        CWD_FILES,
        "files left next to the env file"
    );
    let total_killed: usize = killed.values().sum();
    println!(
        "crash: {RUNS} runs in {:.1?} (maximum delays used, ms: {delays_used:?}): killed {killed:?} ({total_killed}), finished on their own \
         {finished:?}; {} confirmed keys, {} confirmed revokes, {} confirmed rotations; \
         {} distinct env states seen; {} stale temporary files seen along the way, none \
         left after the next locked writes",
        start.elapsed(),
        known.len(),
        revoked.len(),
        rotated.len(),
        env_states.len(),
        stale_seen.len()
    );
    // Kills must really have landed mid-run, or the test proved nothing.
    assert!(
        total_killed >= RUNS / 4,
        "only {total_killed} of {RUNS} runs were killed"
    );
    assert!(
        finished.values().sum::<usize>() >= RUNS / 20,
        "almost no run finished; the delays are too short to reach the write"
    );
}
