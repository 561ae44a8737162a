//! How figures read in a report: money from minor units, durations, times in UTC.

use time::{OffsetDateTime, UtcOffset};

pub(crate) use cartwright_core::money::show_minor as money;

/// An optional amount, `-` when unknown.
pub(crate) fn money_or_dash(minor: Option<i64>) -> String {
    minor.map_or_else(|| "-".to_owned(), money)
}

/// A duration in milliseconds as `850 ms`, `12.4 s`, `3 min 05 s` or `2 h 07 min`.
pub(crate) fn duration_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let text = if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{}.{} s", ms / 1_000, (ms % 1_000) / 100)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1_000)
    } else {
        format!("{} h {:02} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    };
    format!("{sign}{text}")
}

/// An optional duration, `-` when unknown.
pub(crate) fn duration_or_dash(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), duration_ms)
}

/// `2026-11-22 14:05:09 UTC`.
pub(crate) fn date_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// An optional time, `-` when it has not happened.
pub(crate) fn date_time_or_dash(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "-".to_owned(), date_time)
}

/// `14:05:09.123`, in UTC: a log line's time.
pub(crate) fn clock_ms(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// `2026-11-22`, in UTC.
pub(crate) fn date(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn figures_read_the_way_operators_write_them() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(129_950), "1,299.50");
        assert_eq!(money(12_345_678_900), "123,456,789.00");
        assert_eq!(money(-100_000), "-1,000.00");
        assert_eq!(money(i64::MIN), "-92,233,720,368,547,758.08");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_480), "12.4 s");
        assert_eq!(duration_ms(185_000), "3 min 05 s");
        assert_eq!(duration_ms(7_620_000), "2 h 07 min");
        let at = datetime!(2026-11-22 19:35:09.123 +05:30);
        assert_eq!(date_time(at), "2026-11-22 14:05:09 UTC");
        assert_eq!(clock_ms(at), "14:05:09.123");
        assert_eq!(date(at), "2026-11-22");
    }
}
