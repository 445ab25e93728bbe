//! The bounds on what a caller may give, in one place: the `validate_*` functions
//! and the REST API's handlers check them, and the API's OpenAPI document states
//! them (lengths, patterns, ranges), so a client generated from the document
//! accepts exactly what the server accepts.
//!
//! Lengths are counted in characters (Unicode scalar values), as JSON Schema's
//! `maxLength` counts them.
//!
//! ```
//! use tether_model::limits::{JOB_TYPE, QUEUE_NAME, span};
//! assert!(QUEUE_NAME.accepts("mail.out-1"));
//! assert!(!QUEUE_NAME.accepts(".."));
//! assert_eq!(JOB_TYPE.pattern(), "^[A-Za-z0-9_.:-]{1,128}$");
//! assert!(span::accepts("1h 30m"));
//! assert!(!span::accepts("soon"));
//! ```

/// A name of ASCII letters, digits, `_`, `.`, `-` and the `extra` characters,
/// 1 to `max_len` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRule {
    pub max_len: usize,
    /// Characters allowed beyond `[A-Za-z0-9_.-]`.
    pub extra: &'static str,
    /// A name that is a segment of a URL's path (`/v2/queues/{queue}`): not `.` or
    /// `..`, which clients resolve away before the request leaves them.
    pub path_segment: bool,
}

impl NameRule {
    pub fn accepts(&self, s: &str) -> bool {
        !s.is_empty()
            && s.len() <= self.max_len
            && !(self.path_segment && (s == "." || s == ".."))
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || b"_.-".contains(&b)
                    || self.extra.as_bytes().contains(&b)
            })
    }

    /// The rule as a regular expression (ECMA 262, as OpenAPI's `pattern` reads it; no
    /// lookahead, which not every generator of examples reads).
    pub fn pattern(&self) -> String {
        let (any, max) = (format!("[A-Za-z0-9_.{}-]", self.extra), self.max_len);
        if !self.path_segment {
            return format!("^{any}{{1,{max}}}$");
        }
        // Not `.` or `..`: a first character other than a dot, or one dot and then
        // another character, or two dots and at least one more.
        let other = format!("[A-Za-z0-9_{}-]", self.extra);
        format!(
            "^({other}{any}{{0,{}}}|\\.{other}{any}{{0,{}}}|\\.\\.{any}{{1,{}}})$",
            max - 1,
            max - 2,
            max - 2
        )
    }
}

/// Queue names: `[A-Za-z0-9_.-]{1,64}`, but not `.` or `..` (no braces, so a name can
/// be a Redis hash tag; a name is a segment of the API's paths).
pub const QUEUE_NAME: NameRule = NameRule {
    max_len: 64,
    extra: "",
    path_segment: true,
};
/// Job types: `[A-Za-z0-9_.:-]{1,128}`.
pub const JOB_TYPE: NameRule = NameRule {
    max_len: 128,
    extra: ":",
    path_segment: false,
};
/// Schedule names: like queue names.
pub const SCHEDULE_NAME: NameRule = QUEUE_NAME;

/// Longest owner name (owners come from the tokens file, or a library caller).
pub const MAX_OWNER_LEN: usize = 256;
/// Longest fairness group a caller gives; a tenant's owner name goes in front of it.
pub const MAX_CALLER_GROUP_LEN: usize = 128;
/// Longest stored group: `<owner>/<group>`.
pub const MAX_GROUP_LEN: usize = MAX_CALLER_GROUP_LEN + 1 + MAX_OWNER_LEN;
/// A group has no control character (it reaches log lines): the complement of
/// Unicode's `Cc` category, which is what `char::is_control` tests.
pub const GROUP_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";
/// Longest task name.
pub const MAX_TASK_NAME_LEN: usize = 1024;
/// Longest task description.
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;
/// An external task's progress message and description, in characters.
pub const MAX_PROGRESS_MESSAGE_LEN: usize = 4096;
/// An external task's abort message, in characters.
pub const MAX_ABORT_MESSAGE_LEN: usize = 64 * 1024;
/// Longest idempotency key (it becomes part of a Redis key).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Fewest attempts a job may be given.
pub const MIN_MAX_ATTEMPTS: u32 = 1;
/// Durations given as a number of seconds are below this.
pub const MAX_SECONDS: f64 = 1e9;

/// Counts characters as JSON Schema's `minLength`/`maxLength` do.
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// `group` as an owner's job has it: behind `<owner>/` (a name given with that prefix
/// already is taken as it is), so that one owner's jobs never take places in another
/// owner's group limits.
///
/// ```
/// use tether_model::limits::owner_group;
/// assert_eq!(owner_group("alice", Some("bob".into())), Some("alice/bob".into()));
/// assert_eq!(owner_group("alice", Some("alice/x".into())), Some("alice/x".into()));
/// assert_eq!(owner_group("alice", None), None);
/// ```
pub fn owner_group(owner: &str, group: Option<String>) -> Option<String> {
    match group {
        Some(group) if !group.starts_with(&format!("{owner}/")) => Some(format!("{owner}/{group}")),
        group => group,
    }
}

/// Whether `group` is a group a caller may give: 1 to [`MAX_CALLER_GROUP_LEN`]
/// characters, none of them a control character.
pub fn caller_group_ok(group: &str) -> bool {
    group_chars_ok(group) && char_len(group) <= MAX_CALLER_GROUP_LEN
}

/// Non-empty, no control character (what [`GROUP_PATTERN`] says).
pub(crate) fn group_chars_ok(group: &str) -> bool {
    !group.is_empty() && !group.chars().any(char::is_control)
}

/// Durations as text: one or more `<number><unit>` parts (`10s`, `5m`, `1h 30m`,
/// `2 days`), each number 1 to [`span::MAX_DIGITS`] digits, at most
/// [`span::MAX_LEN`] characters in all. A subset of what `humantime` reads, so
/// the server parses it with `humantime` once the text fits.
pub mod span {
    /// The units, longest spelling first within each family.
    pub const UNITS: [&str; 37] = [
        "nanos", "nsec", "ns", "usec", "us", "millis", "msec", "ms", "seconds", "second", "secs",
        "sec", "s", "minutes", "minute", "mins", "min", "m", "hours", "hour", "hrs", "hr", "h",
        "days", "day", "d", "weeks", "week", "wks", "wk", "w", "months", "month", "M", "years",
        "year", "y",
    ];
    /// Most digits in one part's number.
    pub const MAX_DIGITS: usize = 9;
    /// Longest duration text.
    pub const MAX_LEN: usize = 64;

    /// The grammar as a regular expression (ECMA 262).
    pub fn pattern() -> String {
        let part = format!("[0-9]{{1,{MAX_DIGITS}}} ?(?:{})", UNITS.join("|"));
        format!("^{part}(?: ?{part})*$")
    }

    /// The duration `text` says, when it follows the grammar of [`pattern`]. Longer
    /// than [`MAX_SECONDS`](super::MAX_SECONDS) counts as that long, so no duration
    /// overflows when converted to milliseconds.
    pub fn parse(text: &str) -> Option<std::time::Duration> {
        let max = std::time::Duration::from_secs_f64(super::MAX_SECONDS);
        accepts(text)
            .then(|| humantime::parse_duration(text).ok())
            .flatten()
            .map(|d| d.min(max))
    }

    /// Whether `text` follows the grammar of [`pattern`].
    pub fn accepts(text: &str) -> bool {
        if text.is_empty() || text.chars().count() > MAX_LEN || !text.is_ascii() {
            return false;
        }
        let b = text.as_bytes();
        let mut i = 0;
        loop {
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > MAX_DIGITS {
                return false;
            }
            i += digits;
            if b.get(i) == Some(&b' ') {
                i += 1;
            }
            let letters = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            if !UNITS.contains(&&text[i..i + letters]) {
                return false;
            }
            i += letters;
            match b.get(i) {
                None => return true,
                Some(b' ') if b.get(i + 1).is_some_and(u8::is_ascii_digit) => i += 1,
                Some(c) if c.is_ascii_digit() => {}
                Some(_) => return false,
            }
        }
    }
}

/// A regular expression matching the integers `lo..=hi` written without leading zeros.
pub fn int_range(lo: u64, hi: u64) -> String {
    assert!(lo <= hi);
    // Every number of fewer digits than `hi` counts, then `hi`'s own length digit by digit.
    let below = |n: u64| -> Vec<String> {
        // The integers 0..=n (no leading zeros), as alternatives.
        let digits: Vec<u32> = n
            .to_string()
            .chars()
            .filter_map(|c| c.to_digit(10))
            .collect();
        let k = digits.len();
        let mut alts = Vec::new();
        if k > 1 {
            alts.push("[0-9]".to_owned());
        }
        for len in 2..k {
            alts.push(format!("[1-9][0-9]{{{}}}", len - 1));
        }
        for i in 0..k {
            let first = if i == 0 && k > 1 { 1 } else { 0 };
            let prefix: String = digits[..i].iter().map(|d| d.to_string()).collect();
            let rest = k - i - 1;
            if i == k - 1 {
                alts.push(format!("{prefix}[{first}-{}]", digits[i]));
            } else if digits[i] > first {
                let tail = if rest > 0 {
                    format!("[0-9]{{{rest}}}")
                } else {
                    String::new()
                };
                alts.push(format!("{prefix}[{first}-{}]{tail}", digits[i] - 1));
            }
        }
        alts
    };
    let all = below(hi);
    if lo == 0 {
        return format!("(?:{})", all.join("|"));
    }
    // lo..=hi: the numbers up to hi that are not up to lo - 1 — spelled out when
    // few, which is every range this module asks for below 100.
    if hi < 100 {
        let alts: Vec<String> = (lo..=hi).map(|n| n.to_string()).collect();
        return format!("(?:{})", alts.join("|"));
    }
    assert_eq!(lo, 1, "int_range supports lo = 1 beyond 100");
    let alts: Vec<String> = all
        .into_iter()
        .map(|a| if a == "[0-9]" { "[1-9]".to_owned() } else { a })
        .collect();
    format!("(?:{})", alts.join("|"))
}

/// Whether `text` is an integer written without leading zeros within `lo..=hi`.
fn int_in(text: &str, lo: u64, hi: u64) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
        && text.len() <= 20
        && text.parse::<u64>().is_ok_and(|n| (lo..=hi).contains(&n))
}

/// A queue limit written as text (the API takes `"20"` as it takes `20`): `none`,
/// or a whole number from 0 (no limit) to [`crate::MAX_LIMIT`] without leading zeros.
pub fn limit_text_pattern() -> String {
    format!("^(?:none|{})$", int_range(0, crate::MAX_LIMIT.into()))
}

/// Whether `text` follows [`limit_text_pattern`].
pub fn limit_text_ok(text: &str) -> bool {
    text == "none" || int_in(text, 0, crate::MAX_LIMIT.into())
}

/// Cron patterns as the API takes them: 5 fields (minute hour day-of-month month
/// day-of-week), or 6 with seconds first, separated by one space. Each field is `*`,
/// `*/step`, or a comma-separated list of values, ranges `a-b` (a ≤ b) and ranges
/// with a step `a-b/step`; values are numbers without leading zeros in the field's
/// range (day of week 0-7, 0 and 7 both Sunday), steps 1-99. A subset of what the
/// cron parser reads, so every pattern that fits is one it accepts.
pub mod cron {
    use super::{int_in, int_range};

    /// The longest pattern.
    pub const MAX_LEN: usize = 256;
    /// Second, minute, hour, day of month, month, day of week: their ranges.
    const FIELDS: [(u64, u64); 6] = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    const MAX_STEP: u64 = 99;

    fn field_pattern((lo, hi): (u64, u64)) -> String {
        let value = int_range(lo, hi);
        // a-b with a <= b: one alternative per a.
        let ranges: Vec<String> = (lo..=hi)
            .map(|a| format!("{a}-{}", int_range(a, hi)))
            .collect();
        let range = format!("(?:{})", ranges.join("|"));
        let step = format!("/{}", int_range(1, MAX_STEP));
        let item = format!("(?:{range}(?:{step})?|{value})");
        format!("(?:\\*(?:{step})?|{item}(?:,{item})*)")
    }

    /// The grammar as a regular expression (ECMA 262).
    pub fn pattern() -> String {
        let fields: Vec<String> = FIELDS.iter().map(|f| field_pattern(*f)).collect();
        let five = fields[1..].join(" ");
        format!("^(?:{} )?{five}$", fields[0])
    }

    fn field_ok(field: &str, (lo, hi): (u64, u64)) -> bool {
        let step_ok = |s: &str| int_in(s, 1, MAX_STEP);
        if let Some(rest) = field.strip_prefix('*') {
            return rest.is_empty() || rest.strip_prefix('/').is_some_and(step_ok);
        }
        field.split(',').all(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    int_in(a, lo, hi)
                        && int_in(b, lo, hi)
                        && a.parse::<u64>().ok() <= b.parse::<u64>().ok()
                        && step.is_none_or(step_ok)
                }
                None => step.is_none() && int_in(range, lo, hi),
            }
        })
    }

    /// Whether `text` follows the grammar of [`pattern`].
    pub fn accepts(text: &str) -> bool {
        if text.len() > MAX_LEN {
            return false;
        }
        let fields: Vec<&str> = text.split(' ').collect();
        let ranges = match fields.len() {
            5 => &FIELDS[1..],
            6 => &FIELDS[..],
            _ => return false,
        };
        fields.iter().zip(ranges).all(|(f, r)| field_ok(f, *r))
    }
}

/// Intervals of a schedule (`every`, a catch-up window) as text: one number and
/// a unit of seconds, minutes, hours, days or weeks, from 1 second to
/// [`crate::schedule::MAX_SPAN`] (366 days).
pub mod interval {
    use super::{int_in, int_range};

    /// Each unit's spellings and its length in seconds.
    pub const UNITS: [(&[&str], u64); 5] = [
        (&["seconds", "second", "secs", "sec", "s"], 1),
        (&["minutes", "minute", "mins", "min", "m"], 60),
        (&["hours", "hour", "hrs", "hr", "h"], 3600),
        (&["days", "day", "d"], 86400),
        (&["weeks", "week", "wks", "wk", "w"], 7 * 86400),
    ];

    fn max_secs() -> u64 {
        crate::schedule::MAX_SPAN.as_secs()
    }

    /// The grammar as a regular expression (ECMA 262).
    pub fn pattern() -> String {
        let alts: Vec<String> = UNITS
            .iter()
            .map(|(names, secs)| {
                format!(
                    "{} ?(?:{})",
                    int_range(1, max_secs() / secs),
                    names.join("|")
                )
            })
            .collect();
        format!("^(?:{})$", alts.join("|"))
    }

    /// The interval `text` says, when it follows the grammar of [`pattern`].
    pub fn parse(text: &str) -> Option<std::time::Duration> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        let unit = unit.strip_prefix(' ').unwrap_or(unit);
        let (_, secs) = UNITS.iter().find(|(names, _)| names.contains(&unit))?;
        if !int_in(number, 1, max_secs() / secs) {
            return None;
        }
        let n: u64 = number.parse().ok()?;
        Some(std::time::Duration::from_secs(n * secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_ranges_match_exactly() {
        for (lo, hi) in [
            (0, 7),
            (1, 12),
            (0, 59),
            (1, 31),
            (1, 99),
            (1, 366),
            (1, 8784),
            (1, 527040),
        ] {
            let pattern = format!("^{}$", int_range(lo, hi));
            let regex = regex::Regex::new(&pattern).unwrap();
            for n in 0..=hi + 20 {
                let text = n.to_string();
                assert_eq!(
                    regex.is_match(&text),
                    (lo..=hi).contains(&n),
                    "{pattern} on {text}"
                );
            }
            assert!(!matches(&pattern, &format!("0{lo}")), "leading zero");
        }
    }

    #[test]
    fn cron_and_intervals_follow_their_pattern() {
        let cron_pattern = cron::pattern();
        for ok in [
            "* * * * *",
            "*/5 * * * *",
            "0 3 * * 1-5",
            "0,30 9-17/2 1 1-12 0-7",
            "30 * * * * *",
            "59-59 23 31 12 7",
        ] {
            assert!(cron::accepts(ok) && matches(&cron_pattern, ok), "{ok}");
            assert!(crate::schedule::Trigger::cron(ok, "UTC").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "* * * *",
            "5-1 * * * *",
            "*/0 * * * *",
            "60 * * * *",
            "0 0 0 * *",
            "00 * * * *",
            " * * * * *",
            "* * * * *  ",
            "5/15 * * * *",
            "* * * * * * *",
            "MON * * * *",
        ] {
            assert!(
                !cron::accepts(bad) && !matches(&cron_pattern, bad),
                "{bad:?}"
            );
        }
        for (text, ok) in [
            ("none", true),
            ("0", true),
            ("1000000", true),
            ("1000001", false),
            ("007", false),
            (" 5", false),
            ("+5", false),
        ] {
            assert_eq!(limit_text_ok(text), ok, "{text}");
            assert_eq!(matches(&limit_text_pattern(), text), ok, "{text}");
        }
        let interval_pattern = interval::pattern();
        for ok in [
            "1s",
            "366d",
            "527040m",
            "52 weeks",
            "8784h",
            "31622400 seconds",
        ] {
            assert!(
                interval::parse(ok).is_some() && matches(&interval_pattern, ok),
                "{ok}"
            );
            let every = crate::schedule::Trigger::every(interval::parse(ok).unwrap());
            assert!(every.is_ok(), "{ok}");
        }
        for bad in ["0s", "367d", "53w", "1ms", "01s", "1h 30m", "1.5h", "s"] {
            assert!(
                interval::parse(bad).is_none() && !matches(&interval_pattern, bad),
                "{bad}"
            );
        }
    }

    /// The patterns are checked against the functions they state.
    fn matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn names_follow_their_pattern() {
        assert_eq!(JOB_TYPE.pattern(), "^[A-Za-z0-9_.:-]{1,128}$");
        assert!(JOB_TYPE.accepts("a:b") && !QUEUE_NAME.accepts("a:b"));
        assert!(QUEUE_NAME.accepts(&"q".repeat(64)) && !QUEUE_NAME.accepts(&"q".repeat(65)));
        for text in ["a", "a:b", "a b", "", "x{y}", "é", "a.b-c_d", "a\n"] {
            for rule in [QUEUE_NAME, JOB_TYPE] {
                assert_eq!(
                    matches(&rule.pattern(), text),
                    rule.accepts(text),
                    "{text:?}"
                );
            }
            assert_eq!(
                matches(GROUP_PATTERN, text),
                group_chars_ok(text),
                "{text:?}"
            );
        }
        assert!(!matches(GROUP_PATTERN, "a\u{85}b") && !group_chars_ok("a\u{85}b"));
    }

    #[test]
    fn spans_are_a_subset_humantime_reads() {
        for ok in [
            "10s",
            "5m",
            "1h 30m",
            "1h30m",
            "2 days",
            "999999999y",
            "1M 2w",
            "0ms",
        ] {
            assert!(span::accepts(ok), "{ok}");
            assert!(span::parse(ok).is_some(), "{ok}");
            assert!(matches(&span::pattern(), ok), "{ok}");
        }
        for bad in [
            "",
            "s",
            "10",
            "1.5h",
            " 1s",
            "1s ",
            "1s  2s",
            "1 s 2",
            "1 sec s",
            "1µs",
            "1ss",
            "1234567890s",
            &"1s".repeat(33),
        ] {
            assert!(!span::accepts(bad), "{bad:?}");
            assert!(
                bad.chars().count() > span::MAX_LEN || !matches(&span::pattern(), bad),
                "{bad:?}"
            );
        }
        for unit in span::UNITS {
            assert!(span::parse(&format!("3{unit}")).is_some(), "{unit}");
        }
        assert_eq!(span::parse("90s"), Some(std::time::Duration::from_secs(90)));
        assert_eq!(
            span::parse("999999999y 999999999y 999999999y 999999999y 999999999y"),
            Some(std::time::Duration::from_secs_f64(MAX_SECONDS))
        );
    }
}
