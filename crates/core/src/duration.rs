//! Human durations in config and on the command line: `500ms`, `90s`, `5m`, `2h`, `7d`.

use std::time::Duration;

use crate::CoreError;

/// Parse `<integer><unit>` with unit ms, s, m, h or d. A bare number is rejected on purpose:
/// "30" could mean seconds or minutes, and an operator at 3 a.m. should not have to guess.
pub fn parse(s: &str) -> Result<Duration, CoreError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| CoreError::BadDuration(s.to_string()))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| CoreError::BadDuration(s.to_string()))
}

/// Format a duration compactly for listings (`3m12s`, `2h`, `450ms`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (d_, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(d_, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    out
}

/// Serde adapter so config fields can be written as "5m".
pub mod serde_human {
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }

    /// For `Option<Duration>` fields.
    pub mod option {
        use std::time::Duration;

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            let s = <Option<String> as serde::Deserialize>::deserialize(d)?;
            s.map(|s| crate::duration::parse(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_bare_numbers() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse("30").is_err());
        assert!(parse("5 minutes").is_err());
        assert!(parse("-5s").is_err());
        assert!(parse("99999999999999999999d").is_err());
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_secs(192)), "3m12s");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
        assert_eq!(format(Duration::from_millis(450)), "450ms");
    }
}
