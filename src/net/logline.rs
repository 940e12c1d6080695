//! Structured log lines in logfmt (`key=value` pairs, values quoted when they need it), so
//! that a relay operator's tools can filter and count them: every line has `level` and
//! `event`, then the event's fields. Natively lines start with a UTC `ts`.

use std::fmt::{self, Display, Write};

/// How much a line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation (an address listened on, a mailbox that grew).
    Info,
    /// Something refused or failed that the node survives (a malformed message, a quota).
    Warn,
    /// Something the process does not survive.
    Error,
}

/// One structured log line, built field by field.
#[derive(Debug, Clone)]
pub struct LogLine {
    text: String,
}

impl LogLine {
    /// A line for `event` (a short snake_case name).
    pub fn new(level: Level, event: &str) -> Self {
        let mut text = String::with_capacity(96);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = write!(text, "ts={} ", utc_now());
        }
        let level = match level {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let _ = write!(text, "level={level} event={event}");
        LogLine { text }
    }

    /// An informational line.
    pub fn info(event: &str) -> Self {
        Self::new(Level::Info, event)
    }

    /// A warning.
    pub fn warn(event: &str) -> Self {
        Self::new(Level::Warn, event)
    }

    /// A fatal error.
    pub fn error(event: &str) -> Self {
        Self::new(Level::Error, event)
    }

    /// Adds `key=value`, quoting the value if it holds spaces, quotes, `=` or nothing.
    pub fn field(mut self, key: &str, value: impl Display) -> Self {
        let value = value.to_string();
        let plain = !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
        if plain {
            let _ = write!(self.text, " {key}={value}");
        } else {
            let _ = write!(self.text, " {key}={value:?}");
        }
        self
    }
}

impl Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The current UTC time as `2026-11-25T10:04:26.123Z`.
#[cfg(not(target_arch = "wasm32"))]
fn utc_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
#[cfg(not(target_arch = "wasm32"))]
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let line = LogLine::warn("dial_failed")
            .field("peer", "12D3KooW")
            .field("error", "connection refused: \"x\"")
            .field("empty", "")
            .to_string();
        assert!(line.ends_with(
            "level=warn event=dial_failed peer=12D3KooW error=\"connection refused: \\\"x\\\"\" empty=\"\""
        ));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
