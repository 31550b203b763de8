//! The census: which hash formats an application's password column holds, and so which format,
//! with which parameters, pwreset writes there.
//!
//! A reset that writes a format the application cannot read locks the user out while saying
//! "password changed". So on an application's table `[users] password_format = "auto"` (the
//! default) writes the one format the column holds, with the column's own costs, and refuses
//! (78) whenever that is not one clear answer; an explicit format the column does not hold is
//! refused too, unless `[users] password_format_migration = true` says the change is meant.
//! pwreset's own table always holds argon2id.

use super::formats::{
    BcryptPrefix, DJANGO_ARGON2, DJANGO_PBKDF2_ITERATIONS, Format, Found, HashSettings, Kind,
    PBKDF2_ITERATIONS, parameters,
};
use crate::config::{Argon2 as Argon2Settings, Config};
use crate::error::{Exit, fail};
use crate::store::Store;
use anyhow::Result;

/// How many set passwords the census reads.
pub const SAMPLE: usize = 1000;

/// `[users] password_format`: a format, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatSetting {
    /// The format the column holds (pwreset's own table: argon2id).
    #[default]
    Auto,
    Fixed(Format),
}

impl FormatSetting {
    pub fn name(&self) -> &'static str {
        match self {
            FormatSetting::Auto => "auto",
            FormatSetting::Fixed(f) => f.name(),
        }
    }

    pub fn fixed(&self) -> Option<Format> {
        match self {
            FormatSetting::Auto => None,
            FormatSetting::Fixed(f) => Some(*f),
        }
    }
}

/// True only for an explicit setting of that format (the web page's list of rules asks whether
/// the bcrypt rule applies).
impl PartialEq<Format> for FormatSetting {
    fn eq(&self, other: &Format) -> bool {
        *self == FormatSetting::Fixed(*other)
    }
}

impl std::fmt::Display for FormatSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FormatSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<FormatSetting, String> {
        if s == "auto" {
            return Ok(FormatSetting::Auto);
        }
        s.parse::<Format>().map(FormatSetting::Fixed).map_err(|_| {
            format!(
                "unknown password format {s:?}; valid values: auto, {}",
                Format::ALL.map(|f| f.name()).join(", ")
            )
        })
    }
}

/// What the column holds of one format pwreset writes, and the highest cost among them.
#[derive(Debug, Clone, Default)]
struct Seen {
    count: usize,
    bcrypt_cost: Option<u32>,
    /// `$2a$`, `$2b$`, `$2y$` counts.
    prefixes: [usize; 3],
    pbkdf2_iterations: Option<u32>,
    argon2: Option<Argon2Settings>,
}

/// The formats a sample of the password column holds.
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// How many set values were read.
    pub sampled: usize,
    /// How many values of each kind (None: unrecognised), most first.
    pub kinds: Vec<(Option<Kind>, usize)>,
    /// The formats pwreset writes that the sample holds, most first.
    writable: Vec<(Format, Seen)>,
}

const PREFIXES: [BcryptPrefix; 3] = [BcryptPrefix::TwoA, BcryptPrefix::TwoB, BcryptPrefix::TwoY];

/// The prefix most of `counts` (in [`PREFIXES`] order) use; None when there is none.
fn most_common(counts: &[usize; 3]) -> Option<BcryptPrefix> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .max_by_key(|(_, n)| **n)
        .map(|(i, _)| PREFIXES[i])
}

impl Census {
    /// Count the kinds of `values` (stored password values that are set).
    pub fn of<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Census {
        let mut c = Census::default();
        for value in values {
            c.sampled += 1;
            let found = parameters(value);
            let kind = found.map(|(k, _)| k);
            match c.kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => c.kinds.push((kind, 1)),
            }
            let Some((kind, found)) = found else { continue };
            let Some(format) = Format::ALL.into_iter().find(|f| f.matches(kind)) else {
                continue;
            };
            let seen = match c.writable.iter().position(|(f, _)| *f == format) {
                Some(i) => &mut c.writable[i].1,
                None => {
                    c.writable.push((format, Seen::default()));
                    &mut c.writable.last_mut().expect("just pushed").1
                }
            };
            seen.count += 1;
            match found {
                Found::Bcrypt { cost, prefix } => {
                    seen.bcrypt_cost = seen.bcrypt_cost.max(Some(cost));
                    if let Some(i) = prefix.and_then(|p| PREFIXES.iter().position(|q| *q == p)) {
                        seen.prefixes[i] += 1;
                    }
                }
                Found::Pbkdf2 { iterations } => {
                    seen.pbkdf2_iterations = seen.pbkdf2_iterations.max(Some(iterations));
                }
                Found::Argon2(a) => {
                    let cost = |a: &Argon2Settings| {
                        (
                            u64::from(a.memory_kib) * u64::from(a.iterations),
                            a.parallelism,
                        )
                    };
                    if seen.argon2.is_none_or(|old| cost(&a) > cost(&old)) {
                        seen.argon2 = Some(a);
                    }
                }
                Found::Nothing => {}
            }
        }
        c.kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        // Ties in the order formats are listed everywhere else, so messages do not depend on
        // the order the database returned the rows in.
        c.writable.sort_by_key(|(f, s)| {
            (
                std::cmp::Reverse(s.count),
                Format::ALL.iter().position(|g| g == f),
            )
        });
        c
    }

    /// "998 django-pbkdf2-sha256, 2 unrecognised"
    pub fn listed(&self) -> String {
        self.kinds
            .iter()
            .map(|(k, n)| {
                format!(
                    "{} {}",
                    crate::ui::grouped(*n as u64),
                    k.map_or("unrecognised", |k| k.name())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The formats pwreset writes that the column holds, most first.
    pub fn writable(&self) -> Vec<Format> {
        self.writable.iter().map(|(f, _)| *f).collect()
    }

    /// How many bcrypt values carry each of `$2a$`, `$2b$`, `$2y$`.
    fn bcrypt_prefixes(&self) -> [usize; 3] {
        self.writable
            .iter()
            .find(|(f, _)| *f == Format::Bcrypt)
            .map_or([0; 3], |(_, s)| s.prefixes)
    }

    /// Whether any value is a hash pwreset recognises (Django's unusable `!…` passwords, for
    /// one, are not).
    pub fn recognised(&self) -> bool {
        self.kinds.iter().any(|(k, _)| k.is_some())
    }
}

/// The format pwreset will write, and a line about how it was chosen.
#[derive(Debug)]
pub struct Decided {
    pub settings: HashSettings,
    /// "writes bcrypt ($2y$, cost 10), the format the column holds"
    pub note: String,
}

/// The settings in words: "bcrypt ($2y$, cost 10)".
pub fn describe(s: &HashSettings) -> String {
    let a = &s.argon2;
    let detail = match s.format {
        Format::Argon2id | Format::DjangoArgon2 => {
            format!("m={} t={} p={}", a.memory_kib, a.iterations, a.parallelism)
        }
        Format::Bcrypt => format!("${}$, cost {}", s.bcrypt_prefix.name(), s.bcrypt_cost),
        Format::DjangoBcryptSha256 => format!("cost {}", s.bcrypt_cost),
        Format::DjangoPbkdf2Sha256 => format!(
            "{} iterations",
            crate::ui::grouped(u64::from(s.pbkdf2_iterations))
        ),
        Format::AspnetIdentityV3 => "PBKDF2-HMAC-SHA512, 100,000 iterations".to_owned(),
    };
    format!("{} ({detail})", s.format.name())
}

fn quoted(formats: &[Format]) -> String {
    formats
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decide what to write into `column` ("accounts.password"), from the census (None: no
/// password is set yet), `[users] password_format`, `[users] password_format_migration`, the
/// settings the config gives (`base`: its costs and pepper) and `[password.bcrypt] prefix`
/// (`prefix`, None when unset). `Err` is the reason for a 78.
pub fn decide(
    census: Option<&Census>,
    setting: FormatSetting,
    migration: bool,
    base: HashSettings,
    prefix: Option<BcryptPrefix>,
    column: &str,
) -> Result<Decided, String> {
    let all = quoted(&Format::ALL);
    let held = census.map(Census::bcrypt_prefixes).unwrap_or_default();
    // `[password.bcrypt] prefix` left unset: the column's own, whatever the format setting,
    // since a verifier may accept only its own label (PHP's password_verify rejects `$2b$`).
    let mut base = base;
    base.bcrypt_prefix = prefix.or_else(|| most_common(&held)).unwrap_or_default();
    let mut decided = match (setting, census) {
        (FormatSetting::Fixed(f), None) => Decided {
            note: format!(
                "writes {} as [users] password_format says; no password is set in {column} yet to compare with",
                describe(&base)
            ),
            settings: HashSettings { format: f, ..base },
        },
        (FormatSetting::Fixed(f), Some(c)) => {
            let writable = c.writable();
            if writable.contains(&f) || !c.recognised() {
                Decided {
                    note: format!("writes {} as [users] password_format says", describe(&base)),
                    settings: HashSettings { format: f, ..base },
                }
            } else if migration {
                Decided {
                    note: format!(
                        "writes {}, though {column} holds {}: password_format_migration = true says the application reads both",
                        describe(&base),
                        c.listed()
                    ),
                    settings: HashSettings { format: f, ..base },
                }
            } else {
                let instead = if writable.is_empty() {
                    String::new()
                } else {
                    format!(
                        "set [users] password_format = \"auto\" or {}; ",
                        quoted(&writable)
                    )
                };
                return Err(format!(
                    "[users] password_format is \"{}\", but {column} holds {} (sample of {}): the application may not accept the passwords pwreset would write. {instead}if the application reads {} too and you are moving to it on purpose, set [users] password_format_migration = true",
                    f.name(),
                    c.listed(),
                    crate::ui::grouped(c.sampled as u64),
                    f.name()
                ));
            }
        }
        (FormatSetting::Auto, None) => {
            return Err(format!(
                "[users] password_format is \"auto\" (the default on an application's table), but no password is set in {column} yet, so pwreset cannot tell which format the application reads; set [users] password_format to the format the application writes: one of {all}"
            ));
        }
        (FormatSetting::Auto, Some(c)) if !c.recognised() => {
            return Err(format!(
                "[users] password_format is \"auto\" (the default on an application's table), but {column} holds no password hash pwreset recognises ({}), so pwreset cannot tell which format the application reads; set [users] password_format to the format the application writes: one of {all}",
                c.listed()
            ));
        }
        (FormatSetting::Auto, Some(c)) => match c.writable.as_slice() {
            [(format, seen)] => {
                let settings = auto_settings(*format, seen, base);
                let mut note = format!("writes {}, the format {column} holds", describe(&settings));
                if c.kinds.len() > 1 {
                    note.push_str(&format!(" (sample of {}: {})", c.sampled, c.listed()));
                }
                Decided { settings, note }
            }
            [] => {
                return Err(format!(
                    "[users] password_format is \"auto\", but {column} holds no format pwreset writes ({}); set [users] password_format to the format the application writes now (one of {all}), and [users] password_format_migration = true if the application also reads the old ones",
                    c.listed()
                ));
            }
            several => {
                let formats: Vec<Format> = several.iter().map(|(f, _)| *f).collect();
                return Err(format!(
                    "[users] password_format is \"auto\", but {column} holds several formats ({}), so pwreset cannot tell which one the application writes now; set [users] password_format to one of {}",
                    c.listed(),
                    quoted(&formats)
                ));
            }
        },
    };
    if let Some(p) = prefix.filter(|_| decided.settings.format == Format::Bcrypt) {
        let held_p = PREFIXES
            .iter()
            .zip(held)
            .find(|(q, _)| **q == p)
            .map_or(0, |(_, n)| n);
        let others: Vec<BcryptPrefix> = PREFIXES
            .into_iter()
            .zip(held)
            .filter(|(_, n)| *n > 0)
            .map(|(q, _)| q)
            .collect();
        if held_p == 0 && !others.is_empty() {
            let labels = |ps: &[BcryptPrefix], glue: &str| {
                ps.iter()
                    .map(|q| format!("${}$", q.name()))
                    .collect::<Vec<_>>()
                    .join(glue)
            };
            let choices = others
                .iter()
                .map(|q| format!("\"{}\"", q.name()))
                .collect::<Vec<_>>()
                .join(" or ");
            if !migration {
                return Err(format!(
                    "[password.bcrypt] prefix is \"{}\", but the bcrypt hashes in {column} all use {}: the application's verifier may reject ${}$ (PHP's password_verify does), and the user could not log in. Remove [password.bcrypt] prefix so pwreset writes the column's own, or set it to {choices}; if the application reads ${}$ too and you are moving to it on purpose, set [users] password_format_migration = true",
                    p.name(),
                    labels(&others, " and "),
                    p.name(),
                    p.name()
                ));
            }
            decided.note.push_str(&format!(
                "; ${}$ though {column} holds {}: password_format_migration = true says the application reads both",
                p.name(),
                labels(&others, " and ")
            ));
        }
    }
    if decided.settings.pepper.is_some() && !decided.settings.format.uses_pepper() {
        return Err(format!(
            "[users] pepper_file is only used by bcrypt (Devise), but pwreset would write {} into {column}; remove pepper_file, or set [users] password_format = \"bcrypt\"",
            decided.settings.format.name()
        ));
    }
    Ok(decided)
}

/// The settings for `format` with the column's own costs: the highest bcrypt cost (the prefix
/// is `base`'s, the column's own unless set: see [`decide`]), the highest argon2 parameters,
/// and at least Django's current PBKDF2 iteration count (Django raises it with each release
/// and upgrades a hash at login).
fn auto_settings(format: Format, seen: &Seen, base: HashSettings) -> HashSettings {
    let mut s = HashSettings { format, ..base };
    if let Some(cost) = seen.bcrypt_cost {
        s.bcrypt_cost = cost;
    }
    s.pbkdf2_iterations = seen
        .pbkdf2_iterations
        .unwrap_or(DJANGO_PBKDF2_ITERATIONS)
        .max(DJANGO_PBKDF2_ITERATIONS)
        .min(*PBKDF2_ITERATIONS.end());
    match (format, seen.argon2) {
        (_, Some(a)) => s.argon2 = a,
        (Format::DjangoArgon2, None) => s.argon2 = DJANGO_ARGON2,
        _ => {}
    }
    s
}

/// Read the census of the mapped password column; None when no password is set yet.
pub fn take(store: &mut dyn Store) -> Result<Option<Census>> {
    let sample = store.sample_passwords(SAMPLE)?;
    if sample.is_empty() {
        return Ok(None);
    }
    Ok(Some(Census::of(sample.iter().map(|v| v.bytes()))))
}

/// What a password change writes into the store's users table: argon2id on pwreset's own
/// table, else as [`decide`] says from the census. 78 when that is no clear answer; 77 or 78
/// when the pepper file cannot be trusted or read.
pub fn settings(config: &Config, store: &mut dyn Store) -> Result<Decided> {
    let base = config.hash_settings()?;
    if store.owns_users_table() {
        return Ok(own(base));
    }
    let census = take(store)?;
    if own_by_name(config, census.as_ref()) {
        return Ok(own(base));
    }
    decided(config, census.as_ref(), base)
}

/// What a reset writes into pwreset's own table: argon2id.
pub fn own(base: HashSettings) -> Decided {
    Decided {
        note: format!("writes {} into pwreset's own table", describe(&base)),
        settings: base,
    }
}

/// A table with the names of pwreset's own (`users`: `id`, `email`, `password_hash`), though
/// mapped with other keys too (a `name_column`, `after_reset`), with no password set yet:
/// pwreset's own format, as before `auto` existed. Once the column holds any value, it
/// decides: an application's table of the same names may hold hashes pwreset does not
/// recognise (Werkzeug's `scrypt:`, phpass `$P$`), and argon2id there would lock users out.
pub fn own_by_name(config: &Config, census: Option<&Census>) -> bool {
    config.users.password_format == FormatSetting::Auto
        && config.users.has_default_names()
        && census.is_none()
}

/// [`decide`] for the configured table, its refusal as a 78 naming the config.
pub fn decided(config: &Config, census: Option<&Census>, base: HashSettings) -> Result<Decided> {
    let u = &config.users;
    let column = format!("{}.{}", u.table, u.password_column);
    decide(
        census,
        u.password_format,
        u.password_format_migration,
        base,
        config.password.bcrypt.prefix,
        &column,
    )
    .map_err(|why| fail(Exit::Config, format!("{}: {why}", config.source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT_2Y_10: &str = "$2y$10$lu6PZHUfuKGvnSr67oFlbe8tiDJGULZ72YRwv188u6JL6f3UqfiV2";
    const BCRYPT_2Y_11: &str = "$2y$11$lu6PZHUfuKGvnSr67oFlbe8tiDJGULZ72YRwv188u6JL6f3UqfiV2";
    const BCRYPT_2B_10: &str = "$2b$10$lu6PZHUfuKGvnSr67oFlbe8tiDJGULZ72YRwv188u6JL6f3UqfiV2";
    const DJANGO_OLD: &str =
        "pbkdf2_sha256$260000$salt$4jXU1rqv4UWtSxbsVLK50vvdX8TUxzIvi+x3N6rhO9o=";
    const DJANGO_HIGH: &str =
        "pbkdf2_sha256$9000000$salt$4jXU1rqv4UWtSxbsVLK50vvdX8TUxzIvi+x3N6rhO9o=";
    const ARGON2: &str = "$argon2id$v=19$m=65536,t=4,p=1$c29tZXNhbHQxMjM0NTY3OA$O0oNQBP2wV+xIdmj4twbe1+3xQbIKMu2s3NT0pc+rOw";

    fn census(values: &[&str]) -> Census {
        Census::of(values.iter().map(|v| v.as_bytes()))
    }

    fn auto(values: &[&str]) -> Result<Decided, String> {
        decide(
            Some(&census(values)),
            FormatSetting::Auto,
            false,
            HashSettings::default(),
            None,
            "t.c",
        )
    }

    #[test]
    fn auto_writes_the_one_format_with_the_columns_own_costs() {
        let d = auto(&[BCRYPT_2Y_10, BCRYPT_2Y_11, BCRYPT_2B_10, "!unusable"]).expect("bcrypt");
        assert_eq!(d.settings.format, Format::Bcrypt);
        assert_eq!(d.settings.bcrypt_cost, 11);
        assert_eq!(d.settings.bcrypt_prefix, BcryptPrefix::TwoY);
        assert!(d.note.contains("bcrypt ($2y$, cost 11)"), "{}", d.note);

        let d = auto(&[DJANGO_OLD]).expect("django");
        assert_eq!(d.settings.format, Format::DjangoPbkdf2Sha256);
        assert_eq!(d.settings.pbkdf2_iterations, DJANGO_PBKDF2_ITERATIONS);
        let d = auto(&[DJANGO_OLD, DJANGO_HIGH]).expect("django");
        assert_eq!(d.settings.pbkdf2_iterations, 9_000_000);

        let d = auto(&[ARGON2]).expect("argon2");
        assert_eq!(d.settings.format, Format::Argon2id);
        assert_eq!(
            (d.settings.argon2.memory_kib, d.settings.argon2.iterations),
            (65536, 4)
        );
    }

    #[test]
    fn auto_refuses_several_formats_none_it_writes_and_an_empty_column() {
        let e = auto(&[BCRYPT_2Y_10, DJANGO_OLD]).expect_err("several");
        assert!(
            e.contains("several formats") && e.contains("\"bcrypt\", \"django-pbkdf2-sha256\""),
            "{e}"
        );
        let e = auto(&["5f4dcc3b5aa765d61d8327deb882cf99", "!x"]).expect_err("md5 only");
        assert!(
            e.contains("no format pwreset writes") && e.contains("unsalted-md5"),
            "{e}"
        );
        let e = decide(
            None,
            FormatSetting::Auto,
            false,
            HashSettings::default(),
            None,
            "t.c",
        )
        .expect_err("empty");
        assert!(e.contains("no password is set in t.c"), "{e}");
    }

    #[test]
    fn an_explicit_format_the_column_does_not_hold_needs_the_migration_setting() {
        let c = census(&[DJANGO_OLD]);
        let fixed = FormatSetting::Fixed(Format::Argon2id);
        let e = decide(Some(&c), fixed, false, HashSettings::default(), None, "t.c")
            .expect_err("mismatch");
        assert!(
            e.contains("password_format_migration = true")
                && e.contains("\"django-pbkdf2-sha256\""),
            "{e}"
        );
        let d =
            decide(Some(&c), fixed, true, HashSettings::default(), None, "t.c").expect("migration");
        assert_eq!(d.settings.format, Format::Argon2id);
        // The format it holds, nothing to compare with, or nothing recognisable: fine.
        let django = FormatSetting::Fixed(Format::DjangoPbkdf2Sha256);
        assert!(
            decide(
                Some(&c),
                django,
                false,
                HashSettings::default(),
                None,
                "t.c"
            )
            .is_ok()
        );
        assert!(decide(None, fixed, false, HashSettings::default(), None, "t.c").is_ok());
        let odd = census(&["!unusable"]);
        assert!(
            decide(
                Some(&odd),
                fixed,
                false,
                HashSettings::default(),
                None,
                "t.c"
            )
            .is_ok()
        );
    }

    #[test]
    fn the_bcrypt_prefix_is_the_columns_unless_set_and_a_set_one_it_does_not_hold_is_refused() {
        let c = census(&[BCRYPT_2Y_10, BCRYPT_2Y_11]);
        let bcrypt = FormatSetting::Fixed(Format::Bcrypt);
        let base = || HashSettings::default();
        // Unset: the column's $2y$, for an explicit format as for auto.
        for setting in [bcrypt, FormatSetting::Auto] {
            let d = decide(Some(&c), setting, false, base(), None, "t.c").expect("unset");
            assert_eq!(d.settings.bcrypt_prefix, BcryptPrefix::TwoY, "{setting}");
        }
        // Set to what the column holds, or nothing to compare with: written as set.
        let two_b = Some(BcryptPrefix::TwoB);
        let mixed = census(&[BCRYPT_2Y_10, BCRYPT_2B_10]);
        let d = decide(Some(&mixed), bcrypt, false, base(), two_b, "t.c").expect("held");
        assert_eq!(d.settings.bcrypt_prefix, BcryptPrefix::TwoB);
        let d = decide(None, bcrypt, false, base(), two_b, "t.c").expect("empty");
        assert_eq!(d.settings.bcrypt_prefix, BcryptPrefix::TwoB);
        // Set to another: 78 naming the choices, for auto too, unless the migration is meant.
        for setting in [bcrypt, FormatSetting::Auto] {
            let e = decide(Some(&c), setting, false, base(), two_b, "t.c").expect_err("2b");
            assert!(
                e.contains("prefix is \"2b\"")
                    && e.contains("all use $2y$")
                    && e.contains("set it to \"2y\"")
                    && e.contains("password_format_migration = true"),
                "{e}"
            );
        }
        let d = decide(Some(&c), bcrypt, true, base(), two_b, "t.c").expect("migration");
        assert_eq!(d.settings.bcrypt_prefix, BcryptPrefix::TwoB);
        assert!(d.note.contains("password_format_migration"), "{}", d.note);
        // Django's bcrypt hasher writes $2b$ whatever the prefix says.
        let django = FormatSetting::Fixed(Format::DjangoBcryptSha256);
        assert!(decide(Some(&c), django, true, base(), two_b, "t.c").is_ok());
    }

    #[test]
    fn the_setting_reads_auto_and_every_format() {
        assert_eq!("auto".parse::<FormatSetting>(), Ok(FormatSetting::Auto));
        for f in Format::ALL {
            assert_eq!(
                f.name().parse::<FormatSetting>(),
                Ok(FormatSetting::Fixed(f))
            );
        }
        let e = "md5".parse::<FormatSetting>().expect_err("md5");
        assert!(e.contains("auto, argon2id"), "{e}");
        assert!(FormatSetting::Fixed(Format::Bcrypt) == Format::Bcrypt);
        assert!(FormatSetting::Auto != Format::Bcrypt);
    }
}
