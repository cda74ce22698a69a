//! Time stamps of DNSSEC signatures and serial-number arithmetic (RFC 1982).

/// `a` is before or equal to `b` in 32-bit serial-number arithmetic (RFC 1982, as RFC 4034
/// §3.1.5 prescribes for signature times and RFC 1035 for SOA serials).
pub fn serial_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

/// `b - a` in serial-number arithmetic: how far `b` is ahead of `a` (negative: behind).
pub fn serial_diff(a: u32, b: u32) -> i64 {
    b.wrapping_sub(a) as i32 as i64
}

/// The absolute time (seconds since 1970) a 32-bit signature time stands for, taken as the
/// one closest to `now` (RFC 4034 §3.1.5: the times wrap every 136 years).
pub fn unwrap_time(t: u32, now: u64) -> i64 {
    now as i64 + serial_diff(now as u32, t)
}

/// `2027-01-03 21:58:05 UTC` for seconds since 1970, as Ruby's `Time#utc` prints it (a year
/// before 1 as `-0001`). Also the form of lvmsync's snapshot-order message.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let y = if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    };
    format!(
        "{y}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day number (days since 1970-01-01), after H. Hinnant.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        // ldns-signzone's 20270103215805
        assert_eq!(format_utc(1_799_013_485), "2027-01-03 21:58:05 UTC");
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial_le(1, 2));
        assert!(serial_le(5, 5));
        assert!(!serial_le(2, 1));
        assert!(serial_le(u32::MAX, 3));
        assert_eq!(serial_diff(2024120600, 2024120701), 101);
        assert_eq!(serial_diff(u32::MAX, 1), 2);
        assert_eq!(unwrap_time(10, (1u64 << 32) + 5), (1i64 << 32) + 10);
    }
}
