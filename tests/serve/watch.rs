//! The reloading verifier: reload on rename, no torn read under a
//! writer republishing in a loop, broken and older files kept out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_key_vault::verify::{Code, ReloadEvent, Watched};

use crate::fixture::{publish_bytes, Spec, TestKey};

type Events = Arc<Mutex<Vec<ReloadEvent>>>;

fn open(path: &std::path::Path, interval_ms: u64) -> (Watched, Events) {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let w = Watched::open_with_interval(path, Duration::from_millis(interval_ms), move |e| {
        sink.lock().unwrap().push(e)
    })
    .unwrap();
    (w, events)
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn readers_never_see_a_torn_or_half_loaded_file_while_a_writer_republishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verifier.json");
    let a = TestKey::new(&["info"]);
    let b = TestKey::new(&["generate"]);
    let c = TestKey::new(&[]);
    // Even revisions hold a, b and c; odd revisions hold a and b only, c revoked. A reader
    // that ever sees c's verdict disagree with the revision it holds saw a torn state.
    let padding: Vec<TestKey> = (0..300).map(|_| TestKey::new(&["x"])).collect();
    let spec = |rev: u64| {
        let mut keys = vec![a.clone(), b.clone()];
        keys.push(if rev.is_multiple_of(2) {
            c.clone()
        } else {
            c.clone().revoked()
        });
        // Padding keys make each file large enough that a torn read would be likely.
        keys.extend(padding.iter().cloned());
        let mut s = Spec::new(rev, keys);
        s.hash_key = [7; 32];
        s
    };
    spec(0).publish(&path);
    let (w, events) = open(&path, 1);
    let w = Arc::new(w);
    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (w, done, checks) = (Arc::clone(&w), Arc::clone(&done), Arc::clone(&checks));
            let (a, b, c) = (a.key.clone(), b.key.clone(), c.key.clone());
            std::thread::spawn(move || {
                let mut last_rev = 0;
                while !done.load(Ordering::Relaxed) {
                    let v = w.current();
                    assert!(v.revision() >= last_rev, "revision went backwards");
                    last_rev = v.revision();
                    assert_eq!(v.verify(&a, &["info"]).code, Code::Valid);
                    assert_eq!(v.verify(&b, &["generate"]).code, Code::Valid);
                    let want = if v.revision().is_multiple_of(2) {
                        Code::Valid
                    } else {
                        Code::Revoked
                    };
                    assert_eq!(v.verify(&c, &[]).code, want, "rev {}", v.revision());
                    checks.fetch_add(1, Ordering::Relaxed);
                }
                last_rev
            })
        })
        .collect();
    let mut rev = 0;
    while rev < 60 {
        rev += 1;
        spec(rev).publish(&path);
        std::thread::sleep(Duration::from_millis(3));
    }
    wait_for("the last revision", || w.revision() == rev);
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader saw a wrong verdict");
    }
    let events = events.lock().unwrap();
    let reloads = events.iter().filter(|e| e.is_reload()).count();
    assert!(
        events.iter().all(|e| e.is_reload()),
        "every complete file loads: {:?}",
        events.iter().find(|e| !e.is_reload())
    );
    // The watcher may skip a file replaced before it looked; most are loaded.
    assert!(reloads >= 15, "only {reloads} reloads of {rev} files");
    assert!(checks.load(Ordering::Relaxed) > 1000);
}

#[test]
fn a_broken_file_and_an_older_revision_are_kept_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verifier.json");
    let good = TestKey::new(&["info"]);
    let spec5 = Spec::new(5, vec![good.clone()]);
    spec5.publish(&path);
    let (w, events) = open(&path, 5);
    assert_eq!(w.revision(), 5);

    // Broken: half a file, as an in-place writer would leave it.
    let full = spec5.json();
    publish_bytes(&path, &full.as_bytes()[..full.len() / 2]);
    wait_for("the refusal", || !events.lock().unwrap().is_empty());
    {
        let ev = events.lock().unwrap();
        assert!(
            matches!(
                &ev[0],
                ReloadEvent::Rejected {
                    kept_revision: 5,
                    ..
                }
            ),
            "{:?}",
            ev[0]
        );
        let line = ev[0].to_string();
        assert!(
            line.contains("verifier.json") && !line.contains(&good.key),
            "{line}"
        );
    }
    assert_eq!(w.current().verify(&good.key, &[]).code, Code::Valid);
    // Reported once per change, not every interval.
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(events.lock().unwrap().len(), 1);

    // Older: revision 4 with the key revoked must not put a stale state in place.
    let mut spec4 = spec5.clone();
    spec4.revision = 4;
    spec4.keys[0].revoked = true;
    spec4.publish(&path);
    wait_for("the older refusal", || events.lock().unwrap().len() == 2);
    assert!(matches!(
        events.lock().unwrap()[1],
        ReloadEvent::Older {
            kept_revision: 5,
            file_revision: 4,
            ..
        }
    ));
    assert_eq!(w.current().verify(&good.key, &[]).code, Code::Valid);

    // Equal revision is accepted (the same state written again); then a newer one.
    let mut same = spec5.clone();
    same.keys[0].permissions.push("generate".into());
    same.publish(&path);
    wait_for("equal revision", || {
        w.current().verify(&good.key, &["generate"]).code == Code::Valid
    });
    let mut spec6 = spec5.clone();
    spec6.revision = 6;
    spec6.keys[0].revoked = true;
    spec6.publish(&path);
    wait_for("revision 6", || w.revision() == 6);
    assert_eq!(w.current().verify(&good.key, &[]).code, Code::Revoked);

    // A missing file keeps the last good verifier; its return is loaded.
    std::fs::remove_file(&path).unwrap();
    wait_for("missing", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ReloadEvent::Missing { .. }))
    });
    assert_eq!(w.revision(), 6);
    let mut spec7 = spec6.clone();
    spec7.revision = 7;
    spec7.publish(&path);
    wait_for("revision 7", || w.revision() == 7);
}

#[test]
fn open_refuses_a_missing_or_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verifier.json");
    let e = Watched::open(&path, |_| {}).unwrap_err();
    assert!(matches!(e, mcp_key_verifier::Error::Io { .. }), "{e}");
    std::fs::write(&path, "{").unwrap();
    let e = Watched::open(&path, |_| {}).unwrap_err();
    assert!(matches!(e, mcp_key_verifier::Error::Invalid(_)), "{e}");
}

/// Not a timed assertion: measures, at the default interval, how long after the rename
/// of a file that revokes a key the reloading verifier refuses it (median of 20), and
/// prints it (`cargo test --test serve revocation_latency -- --nocapture`).
#[test]
fn revocation_latency_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verifier.json");
    let k = TestKey::new(&[]);
    let mut spec = Spec::new(1, vec![k.clone()]);
    spec.publish(&path);
    let w = Watched::open(&path, |_| {}).unwrap();
    let mut samples = Vec::new();
    for i in 0..20u64 {
        spec.revision = 2 * i + 2;
        spec.keys[0].revoked = false;
        spec.publish(&path);
        wait_for("valid again", || w.current().verify(&k.key, &[]).is_valid());
        // Start at a random phase of the watcher's interval, as a real revoke would.
        std::thread::sleep(Duration::from_millis(
            rand::RngCore::next_u64(&mut rand::rngs::OsRng) % 200,
        ));
        spec.revision += 1;
        spec.keys[0].revoked = true;
        let t0 = Instant::now();
        spec.publish(&path);
        wait_for("the revocation", || {
            w.current().verify(&k.key, &[]).code == Code::Revoked
        });
        samples.push(t0.elapsed());
    }
    samples.sort();
    let median = (samples[9] + samples[10]) / 2;
    println!(
        "revocation latency (rename -> Revoked), default interval, 20 samples: \
         median {:.1} ms, min {:.1} ms, max {:.1} ms",
        median.as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[19].as_secs_f64() * 1e3
    );
    assert!(median < Duration::from_secs(1), "median {median:?}");
}

/// A Kubernetes Secret volume replaces files by swapping a `..data` symlink to a new
/// directory; the verifier path itself stays a symlink. The watcher follows the path.
#[test]
fn a_kubernetes_style_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let k = TestKey::new(&[]);
    let mut spec = Spec::new(1, vec![k.clone()]);
    let v1 = dir.path().join("..2026_01");
    std::fs::create_dir(&v1).unwrap();
    spec.publish(&v1.join("verifier.json"));
    symlink("..2026_01", dir.path().join("..data")).unwrap();
    let path = dir.path().join("verifier.json");
    symlink("..data/verifier.json", &path).unwrap();
    let (w, _events) = open(&path, 5);
    assert!(w.current().verify(&k.key, &[]).is_valid());

    let v2 = dir.path().join("..2026_02");
    std::fs::create_dir(&v2).unwrap();
    spec.revision = 2;
    spec.keys[0].revoked = true;
    spec.publish(&v2.join("verifier.json"));
    symlink("..2026_02", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    wait_for("the swapped file", || w.revision() == 2);
    assert_eq!(w.current().verify(&k.key, &[]).code, Code::Revoked);
}
