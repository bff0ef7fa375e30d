//! Value parsers of `ahp-serve`'s flags: counts and durations, with errors that say the range.

use std::time::Duration;

use crate::server;

/// A count of at least 1.
pub(super) fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not an integer of at least 1")),
    }
}

/// A duration in milliseconds within `0..=MAX_BATCH_WINDOW`.
pub(super) fn batch_window(s: &str) -> Result<Duration, String> {
    let max = server::MAX_BATCH_WINDOW.as_secs_f64();
    seconds(s, 1e-3, 0.0, max).map_err(|e| format!("{e} (milliseconds, 0 to {})", max * 1e3))
}

/// A duration in seconds, more than 0 and at most `MAX_TIMEOUT`.
pub(super) fn timeout(s: &str) -> Result<Duration, String> {
    let max = server::MAX_TIMEOUT.as_secs_f64();
    seconds(s, 1.0, f64::MIN_POSITIVE, max)
        .map_err(|e| format!("{e} (seconds, more than 0 and at most {max})"))
}

/// Parses `s` as a number of `unit` seconds within `[min, max]` seconds (never panics:
/// `Duration::from_secs_f64` is only reached with a finite value in range).
fn seconds(s: &str, unit: f64, min: f64, max: f64) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    let secs = v * unit;
    if !(secs.is_finite() && (min..=max).contains(&secs)) {
        return Err(format!("{s} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}
