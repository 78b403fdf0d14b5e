//! The properties the fuzz targets assert, one `check_*` function per target.
//!
//! Each function takes the raw bytes libFuzzer hands a target and panics when a property
//! fails. `tests/vault/main.rs` includes this file by path, and `fuzz_regressions.rs` beside
//! it replays every committed corpus and regression input through the same functions, so
//! `cargo test` checks exactly what the fuzzer checked, without cargo-fuzz or a nightly
//! compiler.
//!
//! Some targets read a leading mode byte: `0x00` selects a structured mode that builds a
//! well-formed value from the remaining bytes (so the fuzzer reaches deep states quickly),
//! anything else feeds the bytes to the parser as they are. `fuzz/README.md` describes
//! every input layout.

use std::collections::HashSet;

use mcp_key_manager::envfile::{self as envfile, EnvError, EnvFile};
use mcp_key_vault::format::bounds;
use mcp_key_vault::keyfmt::{self, Shape};
use mcp_key_vault::{crypto, Detected, Envelope, KdfParams, Payload};
use mcp_key_vault::{legacy, OpenError, SecretKey, Vault};

pub mod alloc {
    //! A global allocator that records, per thread and only while armed, the number of
    //! allocations and the largest single request, so a target can assert that hostile
    //! input never makes the library ask for a buffer out of proportion to the input.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Wraps [`System`]; install it with `#[global_allocator]` in the binary that measures.
    pub struct Counting;

    thread_local! {
        // Const-initialised and without destructors, so touching them from inside the
        // allocator never allocates or registers anything.
        static ARMED: Cell<bool> = const { Cell::new(false) };
        static COUNT: Cell<usize> = const { Cell::new(0) };
        static LARGEST: Cell<usize> = const { Cell::new(0) };
        static TOTAL: Cell<usize> = const { Cell::new(0) };
    }

    fn note(size: usize) {
        let _ = ARMED.try_with(|armed| {
            if armed.get() {
                COUNT.with(|c| c.set(c.get() + 1));
                LARGEST.with(|l| l.set(l.get().max(size)));
                TOTAL.with(|t| t.set(t.get().saturating_add(size)));
            }
        });
    }

    // SAFETY: every method forwards to `System` with the caller's arguments unchanged;
    // the only addition is bookkeeping in thread-local cells, which never allocates.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: forwarded unchanged (see the impl).
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: forwarded unchanged (see the impl).
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            // SAFETY: forwarded unchanged (see the impl).
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded unchanged (see the impl).
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// What [`measure`] saw.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Stats {
        /// Number of allocations and reallocations.
        pub count: usize,
        /// The largest single request, in bytes.
        pub largest: usize,
        /// Every request added up (a reallocation counts its new size), in bytes.
        pub total: usize,
    }

    /// Runs `f` with counting armed on this thread.
    pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Stats) {
        COUNT.with(|c| c.set(0));
        LARGEST.with(|l| l.set(0));
        TOTAL.with(|t| t.set(0));
        ARMED.with(|a| a.set(true));
        let r = f();
        ARMED.with(|a| a.set(false));
        let stats = Stats {
            count: COUNT.with(Cell::get),
            largest: LARGEST.with(Cell::get),
            total: TOTAL.with(Cell::get),
        };
        (r, stats)
    }

    /// Whether [`Counting`] is the global allocator of this binary (otherwise every
    /// measurement would read zero and every bound would pass vacuously).
    pub fn installed() -> bool {
        let (_, s) = measure(|| std::hint::black_box(Vec::<u8>::with_capacity(17)));
        s.count > 0
    }
}

/// The largest single allocation any parser may make for an input of `len` bytes.
pub fn alloc_bound(len: usize) -> usize {
    8 * len + (1 << 20)
}

/// All the allocations a format-2 payload decode may make, added up, for `len` bytes:
/// every record and event decoded. Records and events take under 20 times their encoded
/// size; canonical metadata is parsed into a map and written back to check its form, up to
/// ~210 times its size for deeply nested JSON (an independent review measured it). A
/// hostile record that names one long permission 20,000 times must not multiply its text
/// (that made 17,000 times).
pub fn total_alloc_bound(len: usize) -> usize {
    256 * len + (4 << 20)
}

/// The key every fuzzed vault is decrypted with (bypassing Argon2, which would make each
/// execution cost milliseconds and teach the fuzzer nothing).
pub const FIXED_KEY: [u8; 32] = [0x42; 32];

/// KDF settings of the vaults the structured modes build: the cheapest in bounds.
pub const CHEAP: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn assert_in_bounds(env: &Envelope) {
    let k = env.kdf;
    assert!(
        (bounds::PARALLELISM_MIN..=bounds::PARALLELISM_MAX).contains(&k.parallelism),
        "{k:?}"
    );
    assert!(
        k.memory_kib >= bounds::MEMORY_KIB_MIN.max(8 * k.parallelism)
            && k.memory_kib <= bounds::MEMORY_KIB_MAX,
        "{k:?}"
    );
    assert!(
        (bounds::ITERATIONS_MIN..=bounds::ITERATIONS_MAX).contains(&k.iterations),
        "{k:?}"
    );
    assert!(u64::from(k.memory_kib) * u64::from(k.iterations) <= bounds::WORK_KIB_MAX);
    assert!(
        (bounds::SALT_MIN..=bounds::SALT_MAX).contains(&env.salt.len()),
        "salt of {} bytes",
        env.salt.len()
    );
    assert!(env.ciphertext.len() >= bounds::TAG_LEN);
    k.check_bounds()
        .expect("a parsed header passes check_bounds");
}

fn assert_unique_ids(p: &Payload) {
    let mut seen = HashSet::new();
    for k in &p.keys {
        assert!(
            seen.insert(k.id.as_str()),
            "duplicate id {:?} in a payload",
            k.id
        );
    }
}

/// `vault_open`: the input is a whole vault file (first byte not 0) or, after a 0 byte,
/// the plaintext of a payload that is sealed under [`FIXED_KEY`] into a valid envelope.
///
/// File mode: `detect` and `parse` agree, fail only with [`OpenError::Corrupt`], return only
/// in-bounds headers; decrypting with a fixed key fails with [`OpenError::WrongPassphrase`] or
/// [`OpenError::Corrupt`] or yields unique ids. No single allocation exceeds
/// [`alloc_bound`] of the input length.
///
/// Payload mode: the sealed envelope parses back equal; unlocking it yields a payload with
/// unique ids or [`OpenError::Corrupt`]; a payload that loads serializes to a fixed point, and
/// survives a save (fresh nonce) and re-open unchanged.
pub fn check_vault_open(data: &[u8]) {
    assert!(
        alloc::installed(),
        "the counting allocator is not installed"
    );
    match data.split_first() {
        Some((0, plain)) => vault_payload(plain),
        _ => vault_file(data),
    }
}

fn vault_file(data: &[u8]) {
    let ((), stats) = alloc::measure(|| {
        let detected = Envelope::detect(data);
        let parsed = Envelope::parse(data);
        match (&detected, &parsed) {
            (Ok(Detected::Vault(a)), Ok(b)) => assert_eq!(a, b),
            (Ok(Detected::Legacy), Err(OpenError::LegacyStore)) => {}
            (Err(OpenError::Corrupt { reason: a }), Err(OpenError::Corrupt { reason: b })) => {
                assert_eq!(a, b)
            }
            (d, p) => panic!("detect and parse disagree: {d:?} / {p:?}"),
        }
        let Ok(env) = parsed else { return };
        assert_in_bounds(&env);
        assert!(env.ciphertext.len() <= data.len());
        match Vault::unlock(&env, SecretKey::new(FIXED_KEY)) {
            Ok(v) => assert_unique_ids(v.payload()),
            Err(OpenError::WrongPassphrase | OpenError::Corrupt { .. }) => {}
            Err(e) => panic!("unlock failed with an unexpected kind of error: {e:?}"),
        }
    });
    assert!(
        stats.largest <= alloc_bound(data.len()),
        "a {}-byte vault file made one allocation of {} bytes (bound {})",
        data.len(),
        stats.largest,
        alloc_bound(data.len())
    );
}

fn seal(plain: &[u8]) -> Envelope {
    let (salt, nonce) = (vec![1u8; 16], [2u8; 24]);
    let ad = Envelope::associated_data(&CHEAP, &salt, &nonce);
    let ciphertext = crypto::seal(&SecretKey::new(FIXED_KEY), &nonce, &ad, plain);
    Envelope {
        kdf: CHEAP,
        salt,
        nonce,
        ciphertext,
    }
}

fn vault_payload(plain: &[u8]) {
    let env = seal(plain);
    let file = env.to_bytes();
    let parsed = Envelope::parse(&file).expect("a sealed envelope parses");
    assert_eq!(parsed, env);
    let (vault, stats) = alloc::measure(|| Vault::unlock(&parsed, SecretKey::new(FIXED_KEY)));
    assert!(
        stats.largest <= alloc_bound(plain.len()),
        "a {}-byte payload made one allocation of {} bytes",
        plain.len(),
        stats.largest
    );
    let vault = match vault {
        Ok(v) => v,
        Err(OpenError::Corrupt { .. }) => return,
        Err(e) => panic!("an authentic payload failed with a non-Corrupt error: {e:?}"),
    };
    assert_unique_ids(vault.payload());
    let once = vault.payload().to_json();
    let again = Payload::from_json(&once).expect("a serialized payload parses");
    assert_same_json(
        &again.to_json(),
        &once,
        "payload serialization is not a fixed point",
    );
    let saved = vault.to_bytes();
    let env2 = Envelope::parse(&saved).expect("a saved vault parses");
    assert_ne!(env2.nonce, parsed.nonce, "a save reused the nonce");
    let reopened = Vault::unlock(&env2, SecretKey::new(FIXED_KEY)).expect("a saved vault opens");
    assert_same_json(
        &reopened.payload().to_json(),
        &once,
        "a save changed the payload",
    );
}

/// Equal JSON, except that floats may differ in the last bits: serde_json without its
/// `float_roundtrip` feature parses some 17-digit floats one unit off
/// (`tests/vault/fuzz_regressions.rs` pins the exact property).
fn assert_same_json(a: &[u8], b: &[u8], what: &str) {
    if a == b {
        return;
    }
    let parse = |x: &[u8]| serde_json::from_slice::<serde_json::Value>(x).expect("valid JSON");
    assert!(
        json_close(&parse(a), &parse(b)),
        "{what}:\n{}\n{}",
        String::from_utf8_lossy(a),
        String::from_utf8_lossy(b)
    );
}

fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Number, Object};
    match (a, b) {
        (Number(x), Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            let ulps = (x.to_bits() as i64)
                .wrapping_sub(y.to_bits() as i64)
                .unsigned_abs();
            x.is_sign_negative() == y.is_sign_negative() && ulps <= 2
        }
        (Array(x), Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

/// `vault_header`: raw mode (first byte not 0): a header that parses is in bounds and
/// `parse(to_bytes(e)) == e`, and `to_bytes` is a fixed point. Structured mode (first byte
/// 0): an envelope built from the bytes (`memory_kib`, `iterations`, `parallelism` as
/// little-endian u32, a salt-length byte, the salt, a 24-byte nonce, the ciphertext)
/// serializes and parses back equal exactly when it is within the documented bounds.
pub fn check_vault_header(data: &[u8]) {
    if let Some((0, rest)) = data.split_first() {
        return header_structured(rest);
    }
    let Ok(env) = Envelope::parse(data) else {
        return;
    };
    assert_in_bounds(&env);
    let bytes = env.to_bytes();
    let back = Envelope::parse(&bytes).expect("a serialized envelope parses");
    assert_eq!(back, env);
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.ad(), env.ad());
}

fn header_structured(data: &[u8]) {
    let mut r = Reader(data);
    let kdf = KdfParams {
        memory_kib: r.u32(),
        iterations: r.u32(),
        parallelism: r.u32(),
    };
    let salt_len = usize::from(r.byte() % 80);
    let salt = r.take(salt_len).to_vec();
    let mut nonce = [0u8; 24];
    let n = r.take(24);
    nonce[..n.len()].copy_from_slice(n);
    let ciphertext = r.0.to_vec();
    let env = Envelope {
        kdf,
        salt,
        nonce,
        ciphertext,
    };
    let valid = kdf.check_bounds().is_ok()
        && (bounds::SALT_MIN..=bounds::SALT_MAX).contains(&env.salt.len())
        && env.ciphertext.len() >= bounds::TAG_LEN;
    match Envelope::parse(&env.to_bytes()) {
        Ok(back) => {
            assert!(valid, "an out-of-bounds envelope was accepted: {kdf:?}");
            assert_in_bounds(&back);
            assert_eq!(back, env);
        }
        Err(OpenError::Corrupt { .. }) => assert!(!valid, "a valid envelope was refused: {kdf:?}"),
        Err(e) => panic!("unexpected error kind {e:?}"),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let t = self.take(4);
        b[..t.len()].copy_from_slice(t);
        u32::from_le_bytes(b)
    }
}

/// The variable names the `envfile` target sets: real ones, a one-letter one, the word
/// `export`, and names with a dot and a leading underscore.
pub const ENV_NAMES: [&str; 6] = [
    "MCP_API_KEY",
    "API_KEY_REQUIRED",
    "A",
    "export",
    "K.v",
    "_x1",
];

/// Characters a generated value draws from beyond printable ASCII.
const WIDE: [char; 8] = ['é', '€', '🔑', 'ß', '\u{a0}', '日', 'ü', 'ñ'];

/// A "safe" value: printable ASCII (quotes, `#`, `\`, `$` and spaces included) and some
/// non-ASCII letters; no control characters, which a one-line assignment cannot carry.
pub fn env_value(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b % 104 {
            c @ 0..=94 => char::from(0x20 + c),
            c => WIDE[usize::from(c - 95) % WIDE.len()],
        })
        .collect()
}

/// Splits like the editor does: lines with their ending (`\n`, `\r\n` or none).
fn lines(bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let cut = if n > 0 && rest[n - 1] == b'\r' {
                    n - 1
                } else {
                    n
                };
                out.push((&rest[..cut], &rest[cut..=n]));
                rest = &rest[n + 1..];
            }
            None => {
                out.push((rest, &b""[..]));
                rest = &[];
            }
        }
    }
    out
}

fn assigns(line: &[u8], key: &str) -> bool {
    EnvFile::parse(line).get(key).is_some()
}

/// `envfile`: byte 0 picks a name from [`ENV_NAMES`], byte 1 the value length (mod 48),
/// the next bytes the value ([`env_value`]), the rest is the env file.
///
/// `parse(b).render() == b` for the whole input and for the file; after `set(k, v)`,
/// `get(k) == Some(v)`; every line that assigned `k` still does, with `v`, keeping its
/// line ending; every other line is byte-identical, except that a last line without an
/// ending gains one when an assignment is appended; exactly one line is appended when no
/// line assigned `k`, and none otherwise; `apply` agrees with `set`.
pub fn check_envfile(data: &[u8]) {
    assert_eq!(EnvFile::parse(data).render(), data);
    let mut r = Reader(data);
    let key = ENV_NAMES[usize::from(r.byte()) % ENV_NAMES.len()];
    let vlen = usize::from(r.byte() % 48);
    let value = env_value(r.take(vlen));
    let file = r.0;
    check_env_set(file, key, &value);
    check_env_analysis(data);
    check_env_analysis(file);
    check_env_set_checked(file, key, &value);
}

/// [`envfile::analyze`] on any bytes: never panics, its `Debug` shows no value, every finding
/// points at a line of the file, and a file it calls unambiguous for a name has that name on
/// at most one line.
pub fn check_env_analysis(bytes: &[u8]) {
    let a = envfile::analyze(bytes);
    let lines = bytes.split(|&b| b == b'\n').count().max(1);
    for f in a.findings() {
        assert!(
            f.line >= 1 && f.line <= lines,
            "finding {f:?} outside 1..={lines}"
        );
        let _ = f.to_string();
    }
    let shown = format!("{a:?}");
    for (_, v) in a.values() {
        // A value that is also (part of) a name may show as that name, if it looks like one.
        // So may one inside a name a finding reports (`'NAME` parsed as a quoted name).
        let in_a_name = |v: &str| {
            a.values().any(|(k, _)| k.contains(v))
                || a.findings()
                    .iter()
                    .any(|f| f.name.as_deref().is_some_and(|n| n.contains(v)))
        };
        if let Some(v) = v.filter(|v| v.len() >= 12 && !in_a_name(v)) {
            assert!(!shown.contains(v), "Debug shows a value");
        }
    }
    // A key pasted alone on a line is a bare name to python-dotenv: never shown.
    let pasted = "mcp_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef";
    let mut with_key = bytes.to_vec();
    with_key.extend_from_slice(b"\n");
    with_key.extend_from_slice(pasted.as_bytes());
    let a = envfile::analyze(&with_key);
    let shown = format!(
        "{a:?} {}",
        a.findings()
            .iter()
            .map(|f| f.to_string())
            .collect::<String>()
    );
    assert!(
        !shown.contains(&pasted[4..20]),
        "a pasted key shows as a name"
    );
}

/// The `apply_checked` half: on a file unambiguous for `key` the edit succeeds (for a value
/// that can be written plainly), python-dotenv's reading of the result gives `value` for
/// `key` and every other variable's value unchanged, and the result is unambiguous for
/// `key`; on a file ambiguous for `key` (other than by a value the edit replaces) it
/// refuses with the findings, and writes nothing.
pub fn check_env_set_checked(file: &[u8], key: &str, value: &str) {
    let before = envfile::analyze(file);
    let plain_value = value
        .bytes()
        .all(|b| b == b' ' || (b.is_ascii_graphic() && !b"\"'`#$\\".contains(&b)));
    match envfile::apply_checked(file, &[(key, value)]) {
        Ok(out) => {
            assert!(plain_value, "an unsafe value was written");
            // Only a fault of the value itself, which the edit replaced, may have been there.
            assert!(before.findings_for(&[key]).iter().all(|f| f.name.is_some()
                && matches!(
                    f.kind,
                    envfile::AmbiguityKind::UnsafeValue | envfile::AmbiguityKind::EmptyValueComment
                )));
            let after = envfile::analyze(&out);
            assert_eq!(after.value(key), Some(value));
            assert!(
                !after.is_ambiguous_for(&[key]),
                "{:?}",
                after.findings_for(&[key])
            );
            let others = |a: &envfile::Analysis| {
                a.values()
                    .filter(|(k, _)| *k != key)
                    .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                    .collect::<Vec<_>>()
            };
            assert_eq!(others(&before), others(&after), "another variable changed");
        }
        Err(EnvError::Ambiguous(found)) => {
            assert!(before.is_ambiguous_for(&[key]));
            assert!(!found.is_empty() && found.iter().all(|f| f.affects(key)));
        }
        Err(EnvError::BadName(k)) => {
            assert!(k == key && key.starts_with("export"), "{key} refused");
        }
        Err(EnvError::UnsafeValue(k)) => {
            assert!(!plain_value);
            assert_eq!(k, key);
        }
        Err(e) => panic!(
            "apply_checked failed on {:?}: {e:?}",
            String::from_utf8_lossy(file)
        ),
    }
}

/// The `set` half of [`check_envfile`], for callers that generate their own inputs.
pub fn check_env_set(file: &[u8], key: &str, value: &str) {
    let mut f = EnvFile::parse(file);
    assert_eq!(f.render(), file);
    f.set(key, value);
    let out = f.render();
    assert_eq!(
        f.get(key).as_deref(),
        Some(value),
        "get after set; file after set: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(mcp_key_manager::envfile::apply(file, &[(key, value)]), out);
    assert_eq!(
        EnvFile::parse(&out).get(key).as_deref(),
        Some(value),
        "get after writing and re-reading the file"
    );

    // Walk the output against the input's lines: every line that did not assign `key` must
    // come back byte for byte, every line that did must now assign `value`.
    let before = lines(file);
    let any = before.iter().any(|(t, _)| assigns(t, key));
    let file_ending: &[u8] = before
        .iter()
        .map(|(_, e)| *e)
        .find(|e| !e.is_empty())
        .unwrap_or(b"\n");
    let mut rest = &out[..];
    for (i, (text, ending)) in before.iter().enumerate() {
        // When a line is appended, a last line without an ending gains the file's.
        let ending: &[u8] = if !any && i + 1 == before.len() && ending.is_empty() {
            file_ending
        } else {
            ending
        };
        if assigns(text, key) {
            let (new, tail) = take_line(rest, ending);
            assert_eq!(
                EnvFile::parse(new).get(key).as_deref(),
                Some(value),
                "line {i} was {:?}, became {:?}",
                String::from_utf8_lossy(text),
                String::from_utf8_lossy(new)
            );
            rest = tail;
        } else {
            let whole = [*text, ending].concat();
            assert!(
                rest.starts_with(&whole),
                "line {i} ({:?}) does not assign {key} but changed; output from there: {:?}",
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(rest)
            );
            rest = &rest[whole.len()..];
        }
    }
    if any {
        assert!(
            rest.is_empty(),
            "set appended {:?}",
            String::from_utf8_lossy(rest)
        );
    } else {
        let (new, tail) = take_line(rest, file_ending);
        assert_eq!(EnvFile::parse(new).get(key).as_deref(), Some(value));
        assert!(tail.is_empty(), "more than one line appended");
    }
}

/// Splits off one line that must end with `ending` (or, with no ending, run to the end).
fn take_line<'a>(rest: &'a [u8], ending: &[u8]) -> (&'a [u8], &'a [u8]) {
    if ending.is_empty() {
        return (rest, &[]);
    }
    let n = rest
        .iter()
        .position(|&b| b == b'\n')
        .expect("a rewritten line keeps its ending");
    let (line, tail) = rest.split_at(n + 1);
    assert!(
        line.ends_with(ending),
        "a rewritten line changed its ending"
    );
    (&line[..line.len() - ending.len()], tail)
}

/// `legacy_store`: the importer never panics; on success every record's key is a key
/// (not [`Shape::Malformed`]), ids are unique and well-formed, permissions valid, and the
/// store is recognised as legacy; on failure there is at least one problem, none holds a
/// control character (they are printed to a terminal) or any `key_value` of the input.
pub fn check_legacy_store(data: &[u8]) {
    match legacy::parse_store(data) {
        Ok(records) => {
            let mut ids = HashSet::new();
            for r in &records {
                assert_ne!(keyfmt::classify(r.key.expose()), Shape::Malformed);
                assert!(ids.insert(r.id.clone()), "duplicate id {:?}", r.id);
                assert!((1..=64).contains(&r.id.len()));
                assert!(r
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                for p in &r.permissions {
                    assert!(mcp_key_vault::Permission::is_valid(p), "{p:?}");
                }
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "Err with no problem listed");
            let keys = key_values(data);
            for p in &problems {
                assert!(!p.chars().any(char::is_control), "unescaped control: {p:?}");
                for k in &keys {
                    assert!(!p.contains(k.as_str()), "a problem repeats a key_value");
                }
            }
        }
    }
}

/// Text the importer's messages contain whatever the input: a key equal to a piece of it
/// would be "found" in a message without having leaked.
const MESSAGE_TEXT: &str = "2025-01-31T12:00:00[.123456] 16-256 characters of \
    [A-Za-z0-9_.~+/=-] [a-z0-9_.:-]{1,64} 1-64 characters of [A-Za-z0-9_-]";

/// The `key_value` strings of a JSON object of objects that could be recognised in a
/// message: key-shaped, and not a piece of an id (ids are public and are printed) or of
/// the messages' fixed text.
fn key_values(data: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Vec::new();
    };
    m.values()
        .filter_map(|r| r.get("key_value")?.as_str())
        .filter(|k| keyfmt::classify(k) != Shape::Malformed)
        .filter(|k| !MESSAGE_TEXT.contains(*k) && !m.keys().any(|id| id.contains(*k)))
        .map(str::to_owned)
        .collect()
}

fn lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A key of this tool in a documented shape (docs/verifier.md, "Key shapes"), written
/// independently of `keyfmt`: format 1, or format 2 with its checksum and head right.
pub fn is_modern_shape(s: &str) -> bool {
    is_format1_shape(s)
        || !s.starts_with("mcp_")
            && format2_layout(s).is_some_and(|(head, sum_ok)| sum_ok && is_format2_head(head))
}

/// `mcp_` + 16 lowercase hex + `_` + 64 lowercase hex.
pub fn is_format1_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 85
        && b.starts_with(b"mcp_")
        && lower_hex(&b[4..20])
        && b[20] == b'_'
        && lower_hex(&b[21..])
}

fn legacy_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.~+/=".contains(&b))
}

/// Format 2's layout: 1 to 25 legacy characters (the head), 16 lowercase hex, `_`, 49
/// base62 characters. Gives the head and whether the last 6 are the CRC-32 of the rest.
pub fn format2_layout(s: &str) -> Option<(&str, bool)> {
    let n = s.len();
    if !(67..=91).contains(&n) || !s.is_ascii() {
        return None;
    }
    let (head, id, sep, rest) = (
        &s[..n - 66],
        &s[n - 66..n - 50],
        &s[n - 50..n - 49],
        &s[n - 49..],
    );
    if !legacy_chars(head) || !lower_hex(id.as_bytes()) || sep != "_" {
        return None;
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    // CRC-32 bit by bit (reflected, polynomial 0xEDB88320), then six base62 digits.
    let mut crc = !0u32;
    for &b in &s.as_bytes()[..n - 6] {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut v = u64::from(!crc);
    let digits = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut sum = [0u8; 6];
    for d in sum.iter_mut().rev() {
        *d = digits[(v % 62) as usize];
        v /= 62;
    }
    Some((head, sum == s.as_bytes()[n - 6..]))
}

/// `mkm_`, or an organisation prefix (a lowercase letter, then up to 15 lowercase letters
/// and digits, not `mcp`) and `_mkm_`.
fn is_format2_head(head: &str) -> bool {
    let Some(org) = head.strip_suffix("mkm_") else {
        return false;
    };
    let Some(org) = org.strip_suffix('_') else {
        return org.is_empty();
    };
    (1..=16).contains(&org.len())
        && org.as_bytes()[0].is_ascii_lowercase()
        && org
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && org != "mcp"
}

/// Whether `s` starts as a format-2 key: `mkm_` or `<org>_mkm_`.
fn claims_format2(s: &str) -> bool {
    s.match_indices("mkm_")
        .any(|(i, _)| i == 0 || is_format2_head(&s[..i + 4]))
}

/// The documented legacy shape: 16-256 characters of `[A-Za-z0-9_.~+/=-]`, and not a
/// string claiming to be a key of this tool (starting with `mcp_`, `mkm_` or `<org>_mkm_`,
/// or in format 2's layout).
pub fn is_legacy_shape(s: &str) -> bool {
    (16..=256).contains(&s.len())
        && !s.starts_with("mcp_")
        && format2_layout(s).is_none()
        && !claims_format2(s)
        && legacy_chars(s)
}

/// `key_format`: raw mode (first byte not 0 or 1) classifies the bytes as (lossy) UTF-8;
/// structured mode builds a near-key, `mcp_<16>_<64>` (first byte 0) whose characters are
/// mostly lowercase hex, or `mkm_<16>_<43>` (first byte 1) mostly of hex and base62 with
/// its checksum appended or not. `classify` never allocates, and agrees with the shapes
/// the docs give: `Modern { id }` exactly for [`is_modern_shape`] with `id` the 16 hex,
/// `Legacy` exactly for [`is_legacy_shape`].
pub fn check_key_format(data: &[u8]) {
    let s = match data.split_first() {
        Some((0, rest)) => near_key(rest),
        Some((1, rest)) => near_key2(rest),
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    check_classify(&s);
}

/// The classification properties for one string.
pub fn check_classify(s: &str) {
    assert!(
        alloc::installed(),
        "the counting allocator is not installed"
    );
    let (shape, stats) = alloc::measure(|| keyfmt::classify(s));
    assert_eq!(stats.count, 0, "classify allocated");
    match shape {
        Shape::Modern { id } => {
            assert!(is_modern_shape(s), "Modern for {s:?}");
            assert!(keyfmt::is_id(id));
            if is_format1_shape(s) {
                assert_eq!(id, &s[4..20]);
            } else {
                assert_eq!(id, &s[s.len() - 66..s.len() - 50]);
            }
        }
        Shape::Legacy => assert!(is_legacy_shape(s), "Legacy for {s:?}"),
        Shape::Malformed => {
            assert!(!is_modern_shape(s), "Malformed for a modern key {s:?}");
            assert!(!is_legacy_shape(s), "Malformed for a legacy key {s:?}");
        }
    }
    // The reason: a checksum error exactly for format 2's layout with the wrong checksum.
    let layout_bad_sum = !s.starts_with("mcp_") && format2_layout(s).is_some_and(|(_, ok)| !ok);
    assert_eq!(
        keyfmt::why_malformed(s) == Some(keyfmt::Reason::Checksum),
        layout_bad_sum,
        "reason for {s:?}"
    );
}

fn near_key(bytes: &[u8]) -> String {
    const ODD: [char; 8] = ['_', 'G', 'A', 'é', '-', 'z', ' ', '\0'];
    let mut r = Reader(bytes);
    let mut pick = || {
        let b = r.byte();
        if b < 0xf0 {
            char::from(b"0123456789abcdef"[usize::from(b % 16)])
        } else {
            ODD[usize::from(b % 8)]
        }
    };
    let mut s = String::from("mcp_");
    s.extend((0..16).map(|_| pick()));
    s.push('_');
    s.extend((0..64).map(|_| pick()));
    s.push_str(&String::from_utf8_lossy(r.0));
    s
}

fn near_key2(bytes: &[u8]) -> String {
    const ODD: [char; 8] = ['_', 'G', 'A', 'é', '-', 'z', ' ', '\0'];
    const HEADS: [&str; 4] = ["mkm_", "acme_mkm_", "mcp_mkm_", "Mkm_"];
    let mut r = Reader(bytes);
    let mut s = String::from(HEADS[usize::from(r.byte() % 4)]);
    let sum = r.byte() % 2 == 0;
    let mut pick = |alphabet: &[u8]| {
        let b = r.byte();
        if b < 0xf0 {
            char::from(alphabet[usize::from(b) % alphabet.len()])
        } else {
            ODD[usize::from(b % 8)]
        }
    };
    s.extend((0..16).map(|_| pick(b"0123456789abcdef")));
    s.push('_');
    s.extend((0..43).map(|_| pick(keyfmt::BASE62)));
    if sum {
        let c = keyfmt::checksum(&s);
        s.extend(c.iter().map(|&b| char::from(b)));
    } else {
        s.extend((0..6).map(|_| pick(keyfmt::BASE62)));
    }
    s.push_str(&String::from_utf8_lossy(r.0));
    s
}

// ---------------------------------------------------------------------------------------
// Vault format 2

use mcp_key_vault::v2::{self, codec, header};

/// A fixed, valid age X25519 recipient for the slots the format-2 checks build (the header
/// never opens a wrapped key, so the slot needs no matching identity).
pub const FIXED_RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn assert_v2_in_bounds(h: &header::Header) {
    assert!(
        (1..=header::bounds::MAX_SLOTS).contains(&h.slots.len()),
        "{} slots",
        h.slots.len()
    );
    for (i, s) in h.slots.iter().enumerate() {
        assert!(header::is_slot_id(&s.id), "{:?}", s.id);
        assert!(header::label_problem(&s.label).is_none(), "{:?}", s.label);
        assert!(s.recipient.len() <= header::bounds::RECIPIENT_MAX);
        assert!((1..=header::bounds::WRAPPED_MAX).contains(&s.wrapped_key.len()));
        if let header::SlotKind::Passphrase {
            kdf,
            salt,
            sealed_identity,
            ..
        } = &s.kind
        {
            kdf.check_bounds()
                .expect("every passphrase slot's KDF is in bounds");
            assert!((bounds::SALT_MIN..=bounds::SALT_MAX).contains(&salt.len()));
            assert_eq!(sealed_identity.len(), header::bounds::SEALED_IDENTITY_LEN);
        }
        for t in &h.slots[..i] {
            assert!(t.id != s.id && t.recipient != s.recipient, "repeated slot");
        }
    }
    assert!(h.ciphertext.len() >= bounds::TAG_LEN);
}

/// `vault2_header`: any bytes as a vault file. `v2::detect` and `Header::parse` agree and
/// fail only with [`OpenError::Corrupt`]; a header that parses is within
/// `v2::header::bounds` (1-32 slots, field sizes, every passphrase slot's KDF), has unique
/// slot ids and recipients, and `parse(to_bytes(h)) == h` with `to_bytes` a fixed point and
/// the associated data unchanged; opening it with a fixed data key fails only with
/// `Passphrase` or `Corrupt`. No single allocation exceeds [`alloc_bound`].
pub fn check_vault2_header(data: &[u8]) {
    assert!(
        alloc::installed(),
        "the counting allocator is not installed"
    );
    let ((), stats) = alloc::measure(|| {
        let parsed = header::Header::parse(data);
        // Reading the writer's layout without its ciphertext's text is the whole parse.
        match (&parsed, header::Header::from_json(data, None)) {
            (Ok(a), Ok(b)) => assert_eq!(a, &b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("the parse gave {a:?}, the whole parse {b:?}"),
        }
        match (&parsed, v2::detect(data)) {
            (Ok(a), Ok(v2::Detected::V2(b))) => assert_eq!(a, &b),
            (Ok(_), other) => panic!("parse accepted what detect did not: {other:?}"),
            (Err(OpenError::Corrupt { .. }), _) => {}
            (Err(e), _) => panic!("unexpected error kind {e:?}"),
        }
        let Ok(h) = parsed else { return };
        assert_v2_in_bounds(&h);
        let bytes = h.to_bytes();
        let back = header::Header::parse(&bytes).expect("a serialized header parses");
        assert_eq!(back, h);
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.ad(), h.ad());
        match Vault::with_data_key(&h, SecretKey::new(FIXED_KEY), None) {
            Ok(_) | Err(OpenError::WrongPassphrase | OpenError::Corrupt { .. }) => {}
            Err(e) => panic!("unexpected error kind {e:?}"),
        }
    });
    assert!(
        stats.largest <= alloc_bound(data.len()),
        "a {}-byte file made one allocation of {} bytes",
        data.len(),
        stats.largest
    );
}

/// `vault2_payload`: the bytes are a decrypted format-2 payload. Decoding never allocates
/// beyond [`alloc_bound`], fails only with `Corrupt`, and on success: ids are unique, the
/// encoding is unique (`encode(decode(b)) == b`), skipping the history decodes the same
/// records, and the payload sealed into a one-slot vault under a fixed data key survives a
/// header round trip and re-open unchanged.
pub fn check_vault2_payload(data: &[u8]) {
    assert!(
        alloc::installed(),
        "the counting allocator is not installed"
    );
    let (decoded, stats) = alloc::measure(|| codec::decode(data, codec::Events::All));
    assert!(
        stats.largest <= alloc_bound(data.len()),
        "a {}-byte payload made one allocation of {} bytes",
        data.len(),
        stats.largest
    );
    assert!(
        stats.total <= total_alloc_bound(data.len()),
        "a {}-byte payload made {} bytes of allocations in all",
        data.len(),
        stats.total
    );
    let c = match decoded {
        Ok(c) => c,
        Err(OpenError::Corrupt { .. }) => {
            assert!(
                codec::decode(data, codec::Events::Lazy).is_err(),
                "the lazy decoder accepted a payload the eager one refused"
            );
            return;
        }
        Err(e) => panic!("decode failed with a non-Corrupt error: {e:?}"),
    };
    assert_unique_ids(&c);
    let again = codec::encode(&c);
    assert_eq!(&again[..], data, "the encoding of a payload is not unique");
    // The records above went back as the bytes they were read as; encoded from memory
    // instead, they must give the same bytes (the writer's own canonical form).
    let mut from_memory = codec::decode(data, codec::Events::All).expect("decoded above");
    let mut fresh = mcp_key_vault::Keys::default();
    fresh.append(&mut from_memory.keys);
    from_memory.keys = fresh;
    assert_eq!(
        &codec::encode(&from_memory)[..],
        data,
        "records encoded from memory differ from the bytes they were read from"
    );
    // A history kept encoded is accepted exactly when the eager decoder accepts it, goes
    // back byte for byte, and decodes to the same events when asked.
    let lazy =
        codec::decode(data, codec::Events::Lazy).expect("what decodes eagerly decodes lazily");
    assert_eq!(lazy.keys.len(), c.keys.len());
    assert_eq!(&codec::encode(&lazy)[..], data);
    assert_eq!(
        serde_json::to_string(&lazy.events).unwrap(),
        serde_json::to_string(&c.events).unwrap()
    );
    // Through a whole vault file.
    let key = SecretKey::new(FIXED_KEY);
    let slots = vec![header::Slot {
        id: "00000001".into(),
        label: String::new(),
        created_at: chrono_epoch(),
        recipient: FIXED_RECIPIENT.into(),
        kind: header::SlotKind::Age,
        wrapped_key: vec![0; 1],
    }];
    let nonce = [3u8; 24];
    // A payload that holds a signing key goes in a header that key signed.
    let signer = c
        .signing_key
        .as_ref()
        .map(|k| ed25519_dalek::SigningKey::from_bytes(k.expose()));
    let public_key = signer.as_ref().map(|s| s.verifying_key().to_bytes());
    let ad = header::Header::associated_data(&slots, &nonce, public_key.as_ref(), None);
    let ciphertext = crypto::seal(&key, &nonce, &ad, data);
    let mut h = header::Header {
        slots,
        nonce,
        ciphertext,
        signature: public_key.map(|public_key| header::VaultSignature {
            public_key,
            signature: [0; 64],
        }),
        key_prefix: None,
    };
    if let (Some(signer), Some(public_key)) = (signer, public_key) {
        use ed25519_dalek::Signer as _;
        let signature = signer.sign(&h.signed_message()).to_bytes();
        h.signature = Some(header::VaultSignature {
            public_key,
            signature,
        });
    }
    let parsed = header::Header::parse(&h.to_bytes()).expect("a sealed header parses");
    assert_eq!(parsed, h);
    let v = Vault::with_data_key(&parsed, key, None).expect("opens");
    assert_eq!(&codec::encode(v.payload())[..], data);
}

fn chrono_epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("in range")
}
