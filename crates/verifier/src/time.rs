//! RFC 3339 times as the verifier file writes them (UTC, `Z`, 0/3/6/9 fractional digits)
//! and reads them ([`parse_bounded`]: any RFC 3339 offset, converted to UTC; years
//! 0001-9999; at most 9 fractional digits).

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a time as every verifier file (and every output of the tool) writes it.
pub fn format(t: &DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(30);
    write(&mut out, t.timestamp(), t.timestamp_subsec_nanos());
    String::from_utf8(out).expect("RFC 3339 is ASCII")
}

/// Appends the time `secs` seconds and `nanos` nanoseconds after the epoch as [`format()`]
/// writes it: RFC 3339 in UTC with `Z`, and as many fractional digits (none, 3, 6 or 9) as
/// its nanoseconds need, as chrono's `SecondsFormat::AutoSi`.
///
/// # Panics
/// When the time is outside chrono's range, or `nanos` is a second or more (the codec
/// refuses both before a time gets here).
pub fn write(out: &mut Vec<u8>, secs: i64, nanos: u32) {
    // Years 0-9999 (every time the tool makes) are written two digits at a time, several
    // times faster than chrono's general formatter (it matters in `list --json` of 100,000
    // keys); anything else goes through chrono.
    const YEAR_0: i64 = -62_167_219_200;
    const YEAR_10000: i64 = 253_402_300_800;
    if !(YEAR_0..YEAR_10000).contains(&secs) || nanos >= 1_000_000_000 {
        let t = DateTime::from_timestamp(secs, nanos).expect("a time within chrono's range");
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    // Days to a civil date (H. Hinnant's algorithm), epoch shifted to 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (i64::from(yoe) + era * 400 + i64::from(month <= 2)) as u32;
    // Two digits at a time from a table.
    const PAIRS: [u8; 200] = {
        let mut t = [0u8; 200];
        let mut i = 0;
        while i < 100 {
            t[2 * i] = b'0' + (i / 10) as u8;
            t[2 * i + 1] = b'0' + (i % 10) as u8;
            i += 1;
        }
        t
    };
    let mut b = *b"0000-00-00T00:00:00";
    let mut two = |at: usize, v: u32| {
        let i = 2 * v as usize;
        b[at..at + 2].copy_from_slice(&PAIRS[i..i + 2]);
    };
    two(0, year / 100);
    two(2, year % 100);
    two(5, month);
    two(8, day);
    two(11, rem / 3600);
    two(14, rem / 60 % 60);
    two(17, rem % 60);
    out.extend_from_slice(&b);
    if nanos != 0 {
        let (digits, mut v) = if nanos.is_multiple_of(1_000_000) {
            (3, nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            (6, nanos / 1_000)
        } else {
            (9, nanos)
        };
        let mut frac = *b".000000000";
        for i in (1..=digits).rev() {
            frac[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&frac[..=digits]);
    }
    out.push(b'Z');
}

/// Parses a time of a verifier file (`generated_at`, `expires_at`) into UTC: RFC 3339 with
/// `Z` or an offset, a year from 0001 to 9999 and at most 9 fractional digits, the rule the
/// Python and TypeScript readers apply too (docs/verifier.md). [`parse()`] is wider (chrono
/// takes a year 0000 and any number of fractional digits) and stays so for the vault's own
/// records.
///
/// ```
/// use mcp_key_verifier::time::parse_bounded;
/// assert!(parse_bounded("0001-01-01T00:00:00.123456789+02:00").is_some());
/// assert!(parse_bounded("0000-12-31T00:00:00Z").is_none());
/// assert!(parse_bounded("2026-09-01T00:00:00.0000000001Z").is_none());
/// ```
pub fn parse_bounded(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    // The year: four digits (RFC 3339's full-year), not 0000.
    if b.len() < 20 || !b[..4].iter().all(u8::is_ascii_digit) || &b[..4] == b"0000" {
        return None;
    }
    // The fraction, when there is one, follows the seconds at offset 19.
    if b[19] == b'.' {
        let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 9 {
            return None;
        }
    }
    parse(s)
}

/// Parses an RFC 3339 time into UTC.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_time_format_is_chronos() {
        let chrono_fmt = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let edges = [
            -62_167_219_200, // 0000-01-01T00:00:00Z
            -62_167_219_201, // year -1: chrono's path
            0,
            951_782_400, // 2000-02-29
            1_780_000_000,
            253_402_300_799, // 9999-12-31T23:59:59Z
            253_402_300_800, // year 10000: chrono's path
        ];
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        let sweep = (0..20_000).map(|_| {
            // xorshift: times spread over years 0-9999
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            -62_167_219_200 + x.rem_euclid(315_537_897_600)
        });
        for secs in edges.into_iter().chain(sweep) {
            let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            assert_eq!(format(&t), chrono_fmt(&t), "{secs}");
            for nanos in [5_000, 7_000_000, 1, 999_999_999, 48_282_391, 120_000] {
                let t = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
                assert_eq!(format(&t), chrono_fmt(&t), "{secs}.{nanos:09}");
            }
        }
        for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            // chrono's extremes (years far beyond 0-9999): its own formatter
            assert_eq!(format(&t), chrono_fmt(&t));
        }
    }
}
