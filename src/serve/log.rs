//! `serve`'s log: one line on stderr per event. Never a key, a token or a password.

use chrono::Utc;

/// One line on stderr: time, `serve:`, the event.
pub(crate) fn log(msg: std::fmt::Arguments<'_>) {
    eprintln!(
        "{} serve: {msg}",
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}
