//! Languages: which one a recipient gets, and the words for spans and dates in each built-in one.
//!
//! A locale is reduced to its primary language subtag (`de`, `de-DE` and `de_DE.UTF-8` are all
//! `de`): pwreset's messages differ by language, not by region. Anything pwreset has no
//! templates for falls back to English.

/// The languages pwreset ships templates for.
pub const BUILTIN: [&str; 4] = ["en", "de", "fr", "es"];

/// The language every lookup falls back to.
pub const DEFAULT: &str = "en";

/// The primary language subtag of a locale tag, in lower case, or `None` when `tag` does not
/// start with one (2 or 3 ASCII letters). Accepts BCP 47 (`de-DE`) and POSIX (`de_DE.UTF-8`,
/// `de_DE@euro`) spellings.
///
/// ```
/// use pwreset::mail::locale::language;
/// assert_eq!(language("de_DE.UTF-8").as_deref(), Some("de"));
/// assert_eq!(language("FR-ca").as_deref(), Some("fr"));
/// assert_eq!(language("C"), None);
/// ```
pub fn language(tag: &str) -> Option<String> {
    let primary = tag
        .trim()
        .split(['-', '_', '.', '@'])
        .next()
        .unwrap_or_default();
    ((2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| primary.to_ascii_lowercase())
}

/// The language to use for `tag` among `available`: its primary subtag if available, else
/// English.
pub fn pick(tag: Option<&str>, available: &[String]) -> String {
    tag.and_then(language)
        .filter(|l| available.iter().any(|a| a == l))
        .unwrap_or_else(|| DEFAULT.to_owned())
}

/// The language for a browser's `Accept-Language` header (RFC 9110 12.5.4) among `available`:
/// the acceptable language with the highest weight that pwreset has templates for, in the
/// header's order among equal weights; English when none fits. `*` and malformed entries are
/// skipped, and `q=0` means "not this one".
///
/// ```
/// use pwreset::mail::locale::from_accept_language;
/// let have = ["en", "de", "fr", "es"].map(String::from);
/// assert_eq!(from_accept_language("it-IT, fr;q=0.8, de;q=0.9", &have), "de");
/// assert_eq!(from_accept_language("", &have), "en");
/// ```
pub fn from_accept_language(header: &str, available: &[String]) -> String {
    let mut choices: Vec<(u16, usize, String)> = Vec::new();
    // A header is a few dozen bytes; a hostile one is cut rather than sorted at length.
    for (i, item) in header.split(',').take(32).enumerate() {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(language) else {
            continue;
        };
        let mut weight = 1000;
        for p in parts {
            if let Some(q) = p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")) {
                weight = parse_q(q).unwrap_or(0);
            }
        }
        if weight > 0 && available.contains(&lang) {
            choices.push((weight, i, lang));
        }
    }
    choices.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    choices
        .into_iter()
        .next()
        .map(|(_, _, l)| l)
        .unwrap_or_else(|| DEFAULT.to_owned())
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`) in thousandths.
fn parse_q(q: &str) -> Option<u16> {
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

/// A span of time as it follows "in" / "in" / "dans" / "en": "1 hour", "1 Stunde", "1 heure",
/// "1 hora"; up to two units ("1 hour and 30 minutes"), rounded to the minute from 90 seconds
/// on. Languages without built-in words get English.
pub fn span(lang: &str, secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 90 {
        return unit(lang, Unit::Second, secs);
    }
    let minutes = (secs + 30) / 60;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let mut parts: Vec<String> = [(d, Unit::Day), (h, Unit::Hour), (m, Unit::Minute)]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| unit(lang, u, n))
        .collect();
    // "2 days, 3 hours and 4 minutes" says more than anyone reads: the two largest units.
    parts.truncate(2);
    let and = match lang {
        "de" => " und ",
        "fr" => " et ",
        "es" => " y ",
        _ => " and ",
    };
    parts.join(and)
}

#[derive(Clone, Copy)]
enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

fn unit(lang: &str, u: Unit, n: i64) -> String {
    let one = n == 1;
    // German after "in" takes the dative: "in 2 Tagen".
    let word = match (lang, u) {
        ("de", Unit::Second) => ["Sekunde", "Sekunden"],
        ("de", Unit::Minute) => ["Minute", "Minuten"],
        ("de", Unit::Hour) => ["Stunde", "Stunden"],
        ("de", Unit::Day) => ["Tag", "Tagen"],
        ("fr", Unit::Second) => ["seconde", "secondes"],
        ("fr", Unit::Minute) => ["minute", "minutes"],
        ("fr", Unit::Hour) => ["heure", "heures"],
        ("fr", Unit::Day) => ["jour", "jours"],
        ("es", Unit::Second) => ["segundo", "segundos"],
        ("es", Unit::Minute) => ["minuto", "minutos"],
        ("es", Unit::Hour) => ["hora", "horas"],
        ("es", Unit::Day) => ["día", "días"],
        (_, Unit::Second) => ["second", "seconds"],
        (_, Unit::Minute) => ["minute", "minutes"],
        (_, Unit::Hour) => ["hour", "hours"],
        (_, Unit::Day) => ["day", "days"],
    };
    format!("{n} {}", word[usize::from(!one)])
}

/// A moment as people write it in `lang`, in `tz`, with the zone's abbreviation:
/// "Thursday, 26 November 2026, 09:32 CET", "Donnerstag, 26. November 2026, 09:32 Uhr CET".
pub fn local_time(lang: &str, unix: i64, tz: &jiff::tz::TimeZone) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(unix) else {
        return crate::ui::rfc3339(unix);
    };
    let z = ts.to_zoned_datetime(tz.clone());
    let abbr = z.strftime("%Z").to_string();
    // Zones without a common abbreviation give a bare offset ("-03"): say what it is.
    let zone = if abbr.starts_with(['+', '-']) {
        format!("UTC{abbr}")
    } else {
        abbr
    };
    let (day, year) = (z.day(), z.year());
    let month = usize::try_from(z.month() - 1).unwrap_or(0);
    let weekday = usize::from(z.weekday().to_monday_zero_offset().unsigned_abs());
    let time = format!("{:02}:{:02}", z.hour(), z.minute());
    match lang {
        "de" => format!(
            "{}, {day}. {} {year}, {time} Uhr {zone}",
            DE_DAYS[weekday], DE_MONTHS[month]
        ),
        "fr" => format!(
            "{} {day} {} {year} à {time} {zone}",
            FR_DAYS[weekday], FR_MONTHS[month]
        ),
        "es" => format!(
            "{}, {day} de {} de {year}, a las {time} {zone}",
            ES_DAYS[weekday], ES_MONTHS[month]
        ),
        _ => format!(
            "{}, {day} {} {year}, {time} {zone}",
            EN_DAYS[weekday], EN_MONTHS[month]
        ),
    }
}

const EN_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DE_DAYS: [&str; 7] = [
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
    "Sonntag",
];
const DE_MONTHS: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const FR_DAYS: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];
const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const ES_DAYS: [&str; 7] = [
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
];
const ES_MONTHS: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<String> {
        BUILTIN.map(String::from).to_vec()
    }

    #[test]
    fn locale_tags_reduce_to_their_language() {
        for (tag, want) in [
            ("de", "de"),
            ("de-DE", "de"),
            ("de_DE.UTF-8", "de"),
            ("de_DE@euro", "de"),
            ("ES-419", "es"),
            (" fr ", "fr"),
            ("xx", "en"),
            ("C", "en"),
            ("POSIX", "en"),
            ("", "en"),
            ("d3", "en"),
        ] {
            assert_eq!(pick(Some(tag), &all()), want, "{tag:?}");
        }
        assert_eq!(pick(None, &all()), "en");
        // A language the admin added templates for is available too.
        let mut with_it = all();
        with_it.push("it".into());
        assert_eq!(pick(Some("it_IT.UTF-8"), &with_it), "it");
    }

    #[test]
    fn accept_language_picks_the_best_available() {
        let have = all();
        for (header, want) in [
            ("de-DE,de;q=0.9,en;q=0.8", "de"),
            ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
            ("it, es;q=0.5", "es"),
            ("en;q=0.5, es", "es"),
            ("es;q=0, de;q=0.1", "de"),
            ("*", "en"),
            ("", "en"),
            ("de;q=2, fr", "fr"),
            ("de;q=abc, es;q=0.001", "es"),
            ("ja, zh-CN;q=0.9", "en"),
            ("de, fr", "de"),
            ("fr;q=0.7, de;q=0.7", "fr"),
        ] {
            assert_eq!(from_accept_language(header, &have), want, "{header:?}");
        }
        let long = "xx,".repeat(100_000) + "de";
        assert_eq!(from_accept_language(&long, &have), "en");
    }

    #[test]
    fn spans_in_words() {
        assert_eq!(span("en", 3600), "1 hour");
        assert_eq!(span("en", 1800), "30 minutes");
        assert_eq!(span("en", 5400), "1 hour and 30 minutes");
        assert_eq!(span("en", 59), "59 seconds");
        assert_eq!(span("en", 2 * 86400), "2 days");
        assert_eq!(
            span("en", 30 * 86400 + 3 * 3600 + 60),
            "30 days and 3 hours"
        );
        assert_eq!(span("de", 3600), "1 Stunde");
        assert_eq!(span("de", 2 * 86400), "2 Tagen");
        assert_eq!(span("fr", 5400), "1 heure et 30 minutes");
        assert_eq!(span("es", 86400 + 7200), "1 día y 2 horas");
        assert_eq!(span("it", 60), "60 seconds");
    }

    #[test]
    fn local_times_in_each_language() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("bundled tzdb");
        // 2026-11-26T08:32:26Z
        let t = 1_795_681_946;
        assert_eq!(
            local_time("en", t, &berlin),
            "Thursday, 26 November 2026, 09:32 CET"
        );
        assert_eq!(
            local_time("de", t, &berlin),
            "Donnerstag, 26. November 2026, 09:32 Uhr CET"
        );
        assert_eq!(
            local_time("fr", t, &berlin),
            "jeudi 26 novembre 2026 à 09:32 CET"
        );
        assert_eq!(
            local_time("es", t, &berlin),
            "jueves, 26 de noviembre de 2026, a las 09:32 CET"
        );
        assert_eq!(
            local_time("en", t, &jiff::tz::TimeZone::UTC),
            "Thursday, 26 November 2026, 08:32 UTC"
        );
        let sp = jiff::tz::TimeZone::get("America/Sao_Paulo").expect("bundled tzdb");
        assert_eq!(
            local_time("en", t, &sp),
            "Thursday, 26 November 2026, 05:32 UTC-03"
        );
    }
}
