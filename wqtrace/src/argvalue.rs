//! Value parsers for command-line numbers every command shares (clap `value_parser`s): one
//! clear line for `inf`, `nan` and negative values instead of a panic later.

/// A number of seconds: finite, not negative, at most about 31 years (what `Duration` and an
/// `Instant` deadline can hold with room to spare). `inf`, `nan` and `-1` get one line.
pub fn secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!(
            "{s:?}: seconds must be a finite number from 0 to 1e9"
        ));
    }
    Ok(v)
}

/// A number of milliseconds: finite, from 0 to 1e9.
pub fn millis(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!(
            "{s:?}: milliseconds must be a finite number from 0 to 1e9"
        ));
    }
    Ok(v)
}

/// A rate or speed factor: finite and above zero (at most 1e9).
pub fn positive(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(format!(
            "{s:?}: must be a finite number above 0 (at most 1e9)"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_finite_and_not_negative() {
        assert_eq!(secs("1.5"), Ok(1.5));
        assert_eq!(secs("0"), Ok(0.0));
        for bad in ["inf", "nan", "-1", "1e300", "x", ""] {
            assert!(secs(bad).is_err(), "{bad}");
        }
        assert_eq!(positive("0.25"), Ok(0.25));
        for bad in ["0", "-2", "inf", "NaN"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
    }
}
