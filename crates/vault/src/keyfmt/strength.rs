//! A shortcut for [`super::strength_bits`] that gives the same number without zxcvbn for
//! long hex keys (the Python tool issued 64 hex characters): zxcvbn takes about 4 ms on
//! such a key, so 100,000 imported keys took minutes. The shortcut proves, from the key's
//! characters alone, that zxcvbn's estimate cannot fall under 63 bits; then the answer of
//! `strength_bits` is the character-set bound, with or without zxcvbn.
//!
//! Invariant: [`charset_bound_is_exact`] returns `true` only for a key on which zxcvbn
//! estimates at least 10^19 guesses. The proof is in the comment below; its premises are
//! facts about zxcvbn 3.1.1's code and word lists, which this module's tests check against
//! that crate's own source.
//
// Why the shortcut gives the same answer.
//
// `strength_bits` of a key not of this tool is `e` (zxcvbn's estimate, in bits) when e < 63,
// and max(e, c) otherwise, with c = length × log2(pool) the character-set bound. zxcvbn counts
// guesses in a u64, so e ≤ 64; when c ≥ 128 and e ≥ 63 the answer is c. It suffices to show
// e ≥ 63, that is G ≥ 10^19 guesses (19 × log2 10 = 63.1).
//
// zxcvbn reads the first 100 characters (n of them here) and covers them with a chain of l
// matches, each a pattern match (dictionary, reversed, l33t, spatial, repeat, sequence,
// regex, date) or a bruteforce run. G is the value of one such chain (its dynamic
// programming keeps, for each prefix, values of actual chains):
// l! × g1 × … × gl + 10^(4(l−1)) (the last term is 1 for l = 1), in saturating u64
// arithmetic (scoring.rs). So:
//   1. l ≥ 6: the last term alone exceeds u64::MAX, and G = u64::MAX > 10^19.
//   2. 2 ≤ l ≤ 5: every gi ≥ 10 (a match shorter than the password is floored at 10, at 50
//      when longer than one character), and a bruteforce run of k characters has
//      gi ≥ 10^k. (A dictionary match's own estimate multiplies unchecked and wraps in a
//      release build; the floor applies after it.) With b bruteforce runs covering B
//      characters, G ≥ l! × 10^B × 10^(l−b).
//      G < 10^19 then bounds B, and the l − b pattern matches cover the other n − B
//      characters, so one of them is at least ⌈(n − B) / (l − b)⌉ long. (l − b = 0 means
//      B = n: G ≥ 10^n.)
//   3. l = 1: the one match covers all n characters.
// [`least_match_of_a_weak_chain`] is the smallest such length over every l ≤ 5, b < l and
// allowed B: 13 for n = 64. So if no pattern match of that length exists in the key,
// G ≥ 10^19. What zxcvbn can match in hex text, each bounded from above here:
//   - dates are at most 10 characters, recent years 4: the shortcut requires the length
//     needed to be at least 13 (hex keys of 61 characters or more).
//   - a dictionary match (plain, reversed or l33t) is as long as a word of zxcvbn's lists,
//     and each of its characters is the word's character (case aside) or a l33t substitute
//     for it (zxcvbn's L33T_TABLE, [`L33T`] here). [`LONG_WORDS`] holds every word of 13
//     characters or more that hex text can spell that way; each is looked for at every
//     position, forwards and backwards, as if any substitution could apply anywhere, and
//     whatever the length needed (more than zxcvbn allows: the shortcut only declines more
//     often).
//   - a spatial match is a walk on one of zxcvbn's four keyboards: each character adjacent
//     to the one before. [`ADJACENT`] holds every ordered pair of hex characters adjacent on
//     any of the four; a walk of k characters needs k − 1 such pairs in a row.
//   - a repeat match of k characters is a base of p characters repeated at least twice:
//     s[i] = s[i + p] over k − p ≥ p consecutive i.
//   - a sequence match is a segment between changes of the code-point difference: every
//     difference in it is its d (1 ≤ |d| ≤ 5), but for zeros at its start (a segment whose
//     differences start at zero takes the first other one as its d). A run of differences
//     in {0, d} bounds it.
// Hex text only: other keys keep zxcvbn (they are the ones a person chose, and few).

/// zxcvbn reads this many characters of a password.
const ANALYSED: usize = 100;

/// The shortest pattern match the shortcut rules out by its length: zxcvbn's dates (10) and
/// years (4) are shorter, and [`LONG_WORDS`] holds the words of this length or more.
const MIN_LONG: usize = 13;

/// Every word of zxcvbn 3.1.1's lists (passwords, English, names, surnames, TV and film) of
/// [`MIN_LONG`] characters or more that hex text can spell, directly or by a l33t
/// substitution in [`L33T`]. Checked against the lists by this module's tests.
const LONG_WORDS: [&str; 14] = [
    "1234567890zzz",
    "1234567892000",
    "aaaaaaaaaaaaa",
    "31217221027711",
    "4815162342lost",
    "ecclesiastical",
    "lost4815162342",
    "111222333444555",
    "122333444455555",
    "1234567887654321",
    "12345678987654321",
    "123456789987654321",
    "1234567890987654321",
    "12345678900987654321",
];

/// zxcvbn's l33t table: a letter and the characters that may stand for it.
const L33T: [(u8, &str); 12] = [
    (b'a', "4@"),
    (b'b', "8"),
    (b'c', "({[<"),
    (b'e', "3"),
    (b'g', "69"),
    (b'i', "1!|"),
    (b'l', "1|7"),
    (b'o', "0"),
    (b's', "$5"),
    (b't', "+7"),
    (b'x', "%"),
    (b'z', "2"),
];

/// Every ordered pair of hex characters (either case) that are neighbours on one of
/// zxcvbn's keyboards (qwerty, dvorak, keypad, mac keypad): the second character is in an
/// adjacency entry of the first.
const ADJACENT: &str = "\
    01 02 03 09 10 12 14 15 20 21 23 24 25 26 30 32 34 35 36 3E 3e 41 42 43 45 47 48 4E 4e \
    51 52 53 54 56 57 58 59 62 63 65 67 68 69 6F 6f 74 75 76 78 7F 7f 84 85 86 87 89 8C 8c \
    90 95 96 98 9C 9c BD Bd C8 C9 CD CF Cd Cf DB DC DE DF Db Dc De Df E3 E4 ED Ed F6 F7 FC \
    FD Fc Fd bD bd c8 c9 cD cF cd cf dB dC dE dF db dc de df e3 e4 eD ed f6 f7 fC fD fc fd";

/// Whether zxcvbn provably estimates at least 10^19 guesses for `key` (see the proof
/// above), so that its estimate cannot bring `strength_bits` under the character-set bound.
/// `false` means "not proven", never "weak".
pub(super) fn charset_bound_is_exact(key: &str) -> bool {
    let bytes = key.as_bytes();
    if !bytes.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let s = &bytes[..bytes.len().min(ANALYSED)];
    let need = least_match_of_a_weak_chain(s.len());
    need >= MIN_LONG
        && longest_walk(s) < need
        && longest_sequence(s) < need
        && !repeats(s, need)
        && !spells_a_long_word(s)
}

/// The length that the longest pattern match of any zxcvbn chain under 10^19 guesses over
/// `n` characters (n ≥ 19, so that bruteforce alone is not under) must at least have:
/// part 2 of the proof, and part 3's `n`. Computed once for every n up to [`ANALYSED`].
fn least_match_of_a_weak_chain(n: usize) -> usize {
    static LEAST: std::sync::OnceLock<[usize; ANALYSED + 1]> = std::sync::OnceLock::new();
    let least = LEAST.get_or_init(|| std::array::from_fn(compute_least_match));
    least
        .get(n)
        .copied()
        .unwrap_or_else(|| compute_least_match(n))
}

fn compute_least_match(n: usize) -> usize {
    const LIMIT: u128 = 10_000_000_000_000_000_000;
    let mut least = n;
    for l in 2..=5u32 {
        let factorial: u128 = (1..=u128::from(l)).product();
        for b in 0..l {
            let patterns = (l - b) as usize;
            // Bruteforce runs: none when b = 0, else b to 18 characters (10^19 is the limit).
            let runs = if b == 0 { 0..=0 } else { b as usize..=18 };
            for bf in runs {
                let below = 10u128
                    .checked_pow((bf + patterns) as u32)
                    .and_then(|g| g.checked_mul(factorial))
                    .is_some_and(|g| g < LIMIT);
                if below && bf + patterns <= n {
                    least = least.min((n - bf).div_ceil(patterns));
                }
            }
        }
    }
    least
}

/// For each ASCII character, a set of ASCII characters (bit c of a `u128`).
type Sets = [u128; 128];

fn has(sets: &Sets, a: u8, b: u8) -> bool {
    a < 128 && b < 128 && sets[usize::from(a)] & (1 << b) != 0
}

/// The longest run of characters each adjacent to the one before on some keyboard.
fn longest_walk(s: &[u8]) -> usize {
    // For each character, the characters adjacent after it.
    static AFTER: std::sync::OnceLock<Sets> = std::sync::OnceLock::new();
    let after = AFTER.get_or_init(|| {
        let mut t = [0u128; 128];
        for pair in ADJACENT.split_ascii_whitespace() {
            if let [a @ 0..=127, b @ 0..=127] = pair.as_bytes() {
                t[usize::from(*a)] |= 1 << b;
            }
        }
        t
    });
    longest_run(s.windows(2).map(|w| has(after, w[0], w[1]))) + 1
}

/// Whether some base of p characters repeats over `need` characters or more: a run of
/// `s[i] == s[i + p]` of at least p (the base appears twice) and `need - p`.
fn repeats(s: &[u8], need: usize) -> bool {
    (1..=s.len() / 2).any(|p| {
        let enough = p.max(need.saturating_sub(p));
        let mut run = 0;
        s.iter().zip(&s[p..]).any(|(a, b)| {
            run = if a == b { run + 1 } else { 0 };
            run >= enough
        })
    })
}

/// The longest run of characters whose successive differences are all 0 or one d with
/// 1 ≤ |d| ≤ 5.
fn longest_sequence(s: &[u8]) -> usize {
    let zero_or = |d: i16| {
        move |w: &[u8]| {
            let x = i16::from(w[1]) - i16::from(w[0]);
            x == 0 || x == d
        }
    };
    (1..=5i16)
        .flat_map(|d| [d, -d])
        .map(|d| longest_run(s.windows(2).map(zero_or(d))) + 1)
        .max()
        .unwrap_or(1)
}

/// Whether a word of [`LONG_WORDS`] can be read somewhere in `s`, forwards or backwards
/// (any of them: one shorter than the length needed only makes the shortcut decline).
fn spells_a_long_word(s: &[u8]) -> bool {
    static LANES: std::sync::OnceLock<Vec<Lane>> = std::sync::OnceLock::new();
    let lanes = LANES.get_or_init(Lane::all);
    // Shift-and: bit j of `at` says the text just read ends with the first j + 1
    // characters of some word of the lane.
    lanes.iter().any(|lane| {
        let mut at = 0u128;
        s.iter().any(|&k| {
            let accepts = lane.accepts.get(usize::from(k)).copied().unwrap_or(0);
            at = ((at << 1) | lane.starts) & accepts;
            at & lane.ends != 0
        })
    })
}

/// Words (and the words reversed) side by side in the 128 bits of a shift-and search.
struct Lane {
    /// The bit of each word's first character.
    starts: u128,
    /// The bit of each word's last character.
    ends: u128,
    /// For each text character, the bits of the word characters it spells: the character
    /// itself in either case, or a l33t substitute for it.
    accepts: [u128; 128],
}

impl Lane {
    fn all() -> Vec<Lane> {
        let spells = |k: u8, c: u8| {
            k.to_ascii_lowercase() == c
                || L33T
                    .iter()
                    .any(|&(letter, subs)| letter == c && subs.as_bytes().contains(&k))
        };
        let words = LONG_WORDS.iter().flat_map(|w| {
            [
                w.bytes().collect::<Vec<u8>>(),
                w.bytes().rev().collect::<Vec<u8>>(),
            ]
        });
        let mut lanes = Vec::new();
        let mut lane = Lane {
            starts: 0,
            ends: 0,
            accepts: [0; 128],
        };
        let mut used = 0;
        for w in words {
            if used + w.len() > 128 {
                lanes.push(std::mem::replace(
                    &mut lane,
                    Lane {
                        starts: 0,
                        ends: 0,
                        accepts: [0; 128],
                    },
                ));
                used = 0;
            }
            lane.starts |= 1 << used;
            lane.ends |= 1 << (used + w.len() - 1);
            for (j, &c) in w.iter().enumerate() {
                for k in 0u8..128 {
                    if spells(k, c) {
                        lane.accepts[usize::from(k)] |= 1 << (used + j);
                    }
                }
            }
            used += w.len();
        }
        lanes.push(lane);
        lanes
    }
}

/// The longest run of `true`.
fn longest_run(flags: impl Iterator<Item = bool>) -> usize {
    let (mut best, mut now) = (0, 0);
    for f in flags {
        now = if f { now + 1 } else { 0 };
        best = best.max(now);
    }
    best
}

#[cfg(test)]
#[path = "strength_tests.rs"]
mod tests;
