//! Durations as whole milliseconds, from typed values or human strings.
//!
//! Limiter time is integral milliseconds everywhere (Redis `TIME`, JS
//! `Date.now()`), so a duration that is not a whole number of milliseconds is
//! rejected rather than silently rounded.

use std::time::Duration;

use crate::error::DurationError;

/// Something that names a span of time: `"10 s"`, `"1m"`, `"250ms"`, `"1 h"`,
/// `"1d"`, or a [`Duration`].
///
/// ```
/// use edgelimit::IntoMillis;
/// assert_eq!("10 s".into_millis(), Ok(10_000));
/// assert_eq!("250ms".into_millis(), Ok(250));
/// assert_eq!(std::time::Duration::from_secs(2).into_millis(), Ok(2_000));
/// assert!("ten seconds".into_millis().is_err());
/// ```
pub trait IntoMillis {
    /// The span in whole milliseconds.
    fn into_millis(self) -> Result<u64, DurationError>;
}

impl IntoMillis for &str {
    fn into_millis(self) -> Result<u64, DurationError> {
        parse_millis(self)
    }
}

impl IntoMillis for &String {
    fn into_millis(self) -> Result<u64, DurationError> {
        parse_millis(self)
    }
}

impl IntoMillis for String {
    fn into_millis(self) -> Result<u64, DurationError> {
        parse_millis(&self)
    }
}

impl IntoMillis for Duration {
    fn into_millis(self) -> Result<u64, DurationError> {
        let nanos = self.as_nanos();
        if !nanos.is_multiple_of(1_000_000) {
            return Err(DurationError::SubMillisecond { nanos });
        }
        u64::try_from(nanos / 1_000_000).map_err(|_| DurationError::Overflow {
            input: format!("{} s", self.as_secs()),
        })
    }
}

/// Parses `<integer><optional spaces><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
///
/// Deliberately strict: no fractions, signs, long unit names or trailing text,
/// so a typo never turns into a surprising window.
pub fn parse_millis(input: &str) -> Result<u64, DurationError> {
    let syntax = || DurationError::Syntax {
        input: input.to_owned(),
    };
    let text = input.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(syntax)?;
    let (digits, rest) = text.split_at_checked(digits_end).ok_or_else(syntax)?;
    if digits.is_empty() {
        return Err(syntax());
    }
    let unit_ms: u64 = match rest.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(syntax()),
    };
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    let amount: u64 = digits.parse().map_err(|_| overflow())?;
    amount.checked_mul(unit_ms).ok_or_else(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_unit_with_or_without_space() {
        let cases = [
            ("10 s", 10_000),
            ("1m", 60_000),
            ("250ms", 250),
            ("1 h", 3_600_000),
            ("1d", 86_400_000),
            ("  7  ms ", 7),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_millis(text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn rejects_anything_else() {
        for text in [
            "", "s", "10", "10 sec", "1.5s", "-1s", "+1s", "10 S", "1 s 2", "1w", "ms10", "1 m s",
        ] {
            assert!(
                matches!(parse_millis(text), Err(DurationError::Syntax { .. })),
                "{text:?} should be a syntax error"
            );
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(matches!(
            parse_millis("99999999999999999999 ms"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_millis("18446744073709551 d"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn typed_durations_must_be_whole_milliseconds() {
        assert_eq!(Duration::from_millis(1500).into_millis(), Ok(1500));
        assert_eq!(
            Duration::from_micros(1500).into_millis(),
            Err(DurationError::SubMillisecond { nanos: 1_500_000 })
        );
        assert!(matches!(
            Duration::MAX.into_millis(),
            Err(DurationError::SubMillisecond { .. } | DurationError::Overflow { .. })
        ));
    }
}
