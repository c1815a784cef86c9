//! Sizes and times as users write them on command lines and in files: `720x1280` or `720,1280`, and
//! `12.5s`, `300ms`, `1500us` or bare microseconds.

/// `720x1280` or `720,1280` → (720, 1280): every height/width flag takes both forms.
pub fn parse_hw(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s
        .split_once(['x', 'X', ','])
        .ok_or_else(|| format!("'{s}' is not HxW or H,W (e.g. 720x1280)"))?;
    let num = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=65_535).contains(&n))
            .ok_or_else(|| format!("'{v}' in '{s}' is not a size between 1 and 65535"))
    };
    Ok((num(h)?, num(w)?))
}

/// A time in µs from `12.5s`, `300ms`, `1500us` or a bare number of µs.
pub fn parse_time_us(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a time (e.g. 12.5s, 300ms, 1500000us)"))?;
    if !v.is_finite() || v.abs() * scale > 9.0e18 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok((v * scale).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_parse_with_units() {
        assert_eq!(parse_hw("720x1280"), Ok((720, 1280)));
        assert_eq!(parse_hw("384,640"), Ok((384, 640)));
        assert!(parse_hw("720").is_err() && parse_hw("0x5").is_err());
        assert_eq!(parse_time_us("12.5s"), Ok(12_500_000));
        assert_eq!(parse_time_us("300ms"), Ok(300_000));
        assert_eq!(parse_time_us("1500us"), Ok(1500));
        assert_eq!(parse_time_us("42"), Ok(42));
        assert!(parse_time_us("soon").is_err());
    }
}
