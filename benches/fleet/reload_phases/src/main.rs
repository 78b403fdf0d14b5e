//! Where the time of one verifier reload goes, phase by phase, on one verifier file: what
//! `serve` does on its watcher (file) or follower (Redis) thread between noticing a change
//! and answering from the new keys. Median and min over ROUNDS of each phase, in ms.
//!
//!   reload-phases VERIFIER.json mkv1:… [ROUNDS=15]
//!
//! Phases (in the order `Verifier::from_json_trusted` runs them):
//! - `read`: the file into memory (what the watcher does; the Redis path does HGET instead);
//! - `signature`: `signature::check_trusted` (locate the signature line, copy the unsigned
//!   bytes behind the context string, Ed25519 `verify_strict`, i.e. SHA-512 over the file);
//! - `dup_members`: the duplicate-member pass over the whole document (a copy of the crate's
//!   private `NoDuplicateMembers`, byte for byte);
//! - `typed_parse+entries+index` = `from_json` minus `dup_members`: serde into the file's
//!   structs, the per-entry loop (id set, hex decode, expiry parse), and `Verifier::build`;
//! - `index` alone: `Verifier::new` over the parsed entries (by-id and by-hash tables);
//! - `drop_old`: dropping a loaded 100,000-key verifier (done after each swap);
//! - `from_json_trusted`: the whole call, as serve makes it.

use std::time::Instant;

use mcp_key_verifier::{signature, KeyInfo, Verifier};
use serde::Deserialize;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: reload-phases VERIFIER.json mkv1:… [ROUNDS]");
        std::process::exit(2);
    }
    let path = &args[1];
    let pin = signature::parse_pin(&args[2]).expect("a trust pin");
    let rounds: usize = args.get(3).map_or(15, |r| r.parse().expect("ROUNDS"));

    let mut t: Vec<(&str, Vec<f64>)> = [
        "read",
        "signature",
        "dup_members",
        "from_json (no signature)",
        "typed_parse+entries+index",
        "index (Verifier::new)",
        "drop_old",
        "from_json_trusted (what serve calls)",
    ]
    .iter()
    .map(|n| (*n, Vec::new()))
    .collect();
    let mut keys_n = 0;
    let mut size = 0;
    for _ in 0..rounds {
        let s = Instant::now();
        let bytes = std::fs::read(path).expect("read the verifier");
        t[0].1.push(ms(s));
        size = bytes.len();

        let s = Instant::now();
        signature::check_trusted(&bytes, &pin).expect("signed by the pin");
        t[1].1.push(ms(s));

        let s = Instant::now();
        serde_json::from_slice::<NoDuplicateMembers>(&bytes).expect("no duplicate members");
        let dup = ms(s);
        t[2].1.push(dup);

        let s = Instant::now();
        let v = Verifier::from_json(&bytes).expect("a verifier");
        let fj = ms(s);
        t[3].1.push(fj);
        t[4].1.push(fj - dup);
        keys_n = v.len();

        let entries: Vec<KeyInfo> = v.keys().to_vec();
        let s = Instant::now();
        let rebuilt = Verifier::new(&[7; 32], v.revision(), entries);
        t[5].1.push(ms(s));
        drop(rebuilt);

        let s = Instant::now();
        drop(v);
        t[6].1.push(ms(s));

        let s = Instant::now();
        let v = Verifier::from_json_trusted(&bytes, &pin).expect("a trusted verifier");
        t[7].1.push(ms(s));
        drop(v);
    }
    println!("{keys_n} keys, {size} bytes, {rounds} rounds (ms)");
    println!("| phase | median | min |");
    println!("|---|---:|---:|");
    for (name, mut v) in t {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        // A difference of two timings: its minimum says nothing.
        let min = if name.contains('+') { "—".to_string() } else { format!("{:.1}", v[0]) };
        println!("| {name} | {:.1} | {min} |", v[v.len() / 2]);
    }
}

fn ms(s: Instant) -> f64 {
    s.elapsed().as_secs_f64() * 1000.0
}

// A copy of mcp_key_verifier's private `NoDuplicateMembers` (crates/verifier/src/verifier.rs),
// so its pass can be timed alone.
struct NoDuplicateMembers;

impl<'de> Deserialize<'de> for NoDuplicateMembers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateMembers)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateMembers {
    type Value = NoDuplicateMembers;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateMembers>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut names: Vec<Name<'de>> = Vec::new();
        let mut set: std::collections::HashSet<Name<'de>> = Default::default();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            let repeated = if set.is_empty() && names.len() < 16 {
                let r = names.contains(&name);
                names.push(name);
                r
            } else {
                if set.is_empty() {
                    set.extend(names.drain(..));
                }
                !set.insert(name)
            };
            if repeated {
                return Err(serde::de::Error::custom("an object has a member twice"));
            }
            map.next_value::<NoDuplicateMembers>()?;
        }
        Ok(self)
    }
}

#[derive(PartialEq, Eq, Hash)]
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}
