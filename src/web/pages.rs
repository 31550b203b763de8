//! The pages, in the reader's language: one set of templates for every language, and the words
//! they say in a catalogue per language (`strings.toml`, key → text).
//!
//! A template NAME in language LANG is the first of `[mail] template_dir`/web/LANG/NAME,
//! template_dir/web/NAME and the built-in one (read with the same checks as the mail
//! templates). The words of LANG are the built-in English catalogue, overlaid by the built-in
//! one for LANG, overlaid by template_dir/web/LANG/strings.toml: a key left out of a
//! translation says English rather than nothing. The language of a request is picked from its
//! `Accept-Language` among these, with the mail's fallback (English).

use crate::config::Config;
use crate::error::{Exit, fail};
use crate::mail::locale;
use crate::mail::strings::{self, fill, fill_filter, nest};
use crate::password::Refusal;
use anyhow::Result;
use minijinja::{Environment, Value, context};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Template names, each also a file name under `template_dir/web/` (and `web/<lang>/`).
pub const NAMES: [&str; 5] = [
    "layout.html",
    "form.html",
    "message.html",
    "forgot.html",
    "style.css",
];

/// The catalogue's file name under `template_dir/web/<lang>/`.
pub const STRINGS: &str = "strings.toml";

fn builtin(name: &str) -> &'static str {
    match name {
        "layout.html" => include_str!("templates/layout.html"),
        "form.html" => include_str!("templates/form.html"),
        "message.html" => include_str!("templates/message.html"),
        "forgot.html" => include_str!("templates/forgot.html"),
        _ => include_str!("templates/style.css"),
    }
}

fn builtin_strings(lang: &str) -> Option<&'static str> {
    match lang {
        "en" => Some(include_str!("templates/en/strings.toml")),
        "de" => Some(include_str!("templates/de/strings.toml")),
        "fr" => Some(include_str!("templates/fr/strings.toml")),
        "es" => Some(include_str!("templates/es/strings.toml")),
        _ => None,
    }
}

/// A template with loops over loops must fail rather than hang a worker.
const FUEL: u64 = 100_000;

/// A language the pages can be shown in: an index into [`Pages`]' languages, so a request
/// carries it for free. The default is English, the first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lang(usize);

struct Language {
    code: String,
    /// Dotted key ("form.title") → text, English filled in under any key left out.
    strings: BTreeMap<String, String>,
    /// The same, nested, for the templates (`t.form.title`).
    t: Value,
}

pub struct Pages {
    env: Environment<'static>,
    /// English first, then the other built-in languages, then those of `template_dir/web/`.
    languages: Vec<Language>,
    codes: Vec<String>,
    /// Variables every page gets: the service's name, support contact, stylesheet.
    common: Value,
    pub css: String,
}

impl Pages {
    /// Load the templates and catalogues (admin's first, built-in otherwise) and render each
    /// page in each language once with sample values, so a broken override stops `serve` at
    /// start (78) rather than on a user's page.
    pub fn load(config: &Config, css_url: &str) -> Result<Pages> {
        let mut env = crate::mail::template_env();
        // Pages test optional values (`{% if error %}`): chainable, not strict like the mails.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        // Templates are stored as "<lang>/NAME"; `{% extends "layout.html" %}` in "de/form.html"
        // means the German layout.
        env.set_path_join_callback(|name, parent| match parent.split_once('/') {
            Some((lang, _)) if !name.contains('/') => format!("{lang}/{name}").into(),
            _ => name.into(),
        });
        env.add_filter("fill", fill_filter);
        let dir = config.mail.template_dir.as_ref().map(|d| d.join("web"));
        if let Some(d) = &dir
            && d.is_dir()
        {
            crate::trust::check_private_dir(d, "mail.template_dir")?;
        }
        let read = |path: Option<PathBuf>| -> Result<Option<String>> {
            match path {
                Some(p) => crate::trust::read_template(&p, "mail.template_dir"),
                None => Ok(None),
            }
        };
        let css = read(dir.as_ref().map(|d| d.join("style.css")))?
            .unwrap_or_else(|| builtin("style.css").to_owned());
        let english = parse_strings(
            builtin_strings(locale::DEFAULT).unwrap_or_default(),
            locale::DEFAULT,
            None,
        )?;
        let mut languages = Vec::new();
        for (code, lang_dir) in crate::mail::language_dirs(dir.as_deref())? {
            let mut strings = english.clone();
            if let Some(b) = builtin_strings(&code) {
                strings.extend(parse_strings(b, &code, Some(&english))?);
            }
            let own = read(lang_dir.as_ref().map(|d| d.join(STRINGS)))?;
            match own {
                Some(text) => strings.extend(parse_strings(&text, &code, Some(&english))?),
                None if builtin_strings(&code).is_none() => {
                    return Err(fail(
                        Exit::Config,
                        format!(
                            "mail.template_dir: web/{code}/ has no {STRINGS}: the pages would say English under lang=\"{code}\"; copy src/web/templates/en/{STRINGS} there and translate it"
                        ),
                    ));
                }
                None => {}
            }
            for name in NAMES.iter().filter(|n| n.ends_with(".html")) {
                let source = match read(lang_dir.as_ref().map(|d| d.join(name)))? {
                    Some(s) => s,
                    None => read(dir.as_ref().map(|d| d.join(name)))?
                        .unwrap_or_else(|| builtin(name).to_owned()),
                };
                env.add_template_owned(format!("{code}/{name}"), source)
                    .map_err(|e| {
                        fail(
                            Exit::Config,
                            format!(
                                "mail.template_dir: template web/{code}/{name} does not parse: {e}"
                            ),
                        )
                    })?;
            }
            let t = nest(&strings);
            languages.push(Language { code, strings, t });
        }
        let support = config.mail.support.clone();
        let support_href = support
            .as_deref()
            .and_then(|s| crate::config::support_href(s).ok());
        let pages = Pages {
            env,
            codes: languages.iter().map(|l| l.code.clone()).collect(),
            languages,
            common: context! {
                service_name => config.mail.service_name.clone(),
                support => support,
                support_href => support_href,
                css_url => css_url,
            },
            css,
        };
        for (i, l) in pages.languages.iter().enumerate() {
            for name in ["form.html", "message.html", "forgot.html"] {
                for sent in [false, true] {
                    pages.render(Lang(i), name, sample(sent)).map_err(|e| {
                        fail(
                            Exit::Config,
                            format!(
                                "mail.template_dir: template web/{}/{name}: {}",
                                l.code,
                                crate::error::render(&e)
                            ),
                        )
                    })?;
                }
            }
        }
        Ok(pages)
    }

    /// The language for a request's `Accept-Language` header (empty when there is none).
    pub fn pick(&self, accept_language: &str) -> Lang {
        let code = locale::from_accept_language(accept_language, &self.codes);
        Lang(self.codes.iter().position(|c| *c == code).unwrap_or(0))
    }

    fn language(&self, lang: Lang) -> &Language {
        // `Lang`s come from `pick`, and there is always English: the fallback never runs.
        let last = self.languages.len().saturating_sub(1);
        &self.languages[lang.0.min(last)]
    }

    /// The language's tag: `lang="…"` and `Content-Language`.
    pub fn code(&self, lang: Lang) -> &str {
        &self.language(lang).code
    }

    /// The text under `key` ("message.expired.title") in `lang`.
    pub fn text<'a>(&'a self, lang: Lang, key: &'a str) -> &'a str {
        // Every key is in the English catalogue, which each language starts from; a key
        // missing here is a typo in the code, shown rather than hidden.
        self.language(lang)
            .strings
            .get(key)
            .map_or(key, String::as_str)
    }

    /// The text under `key` with its `{name}` placeholders filled in.
    pub fn fill(&self, lang: Lang, key: &str, args: &[(&str, String)]) -> String {
        fill(self.text(lang, key), |name| {
            args.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
    }

    /// Render page `name` in `lang` with the common variables, the words (`t`) and `vars`.
    pub fn render(&self, lang: Lang, name: &str, vars: Value) -> Result<String> {
        let l = self.language(lang);
        let common = self.common.clone();
        let tmpl = self.env.get_template(&format!("{}/{name}", l.code))?;
        let words = context! { lang => l.code.as_str(), t => l.t.clone() };
        Ok(tmpl.render(context! { ..vars, ..words, ..common })?)
    }

    /// A number as `lang` writes it: "1,024", "1.024", "1 024" (narrow no-break space);
    /// Spanish groups only from five digits on (RAE). Other languages: digits alone.
    pub fn number(&self, lang: Lang, n: u64) -> String {
        let digits = n.to_string();
        let sep = match self.code(lang) {
            "en" => ",",
            "de" => ".",
            "fr" => "\u{202f}",
            "es" if digits.len() > 4 => "\u{a0}",
            _ => "",
        };
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 * sep.len());
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(sep);
            }
            out.push(c);
        }
        out
    }

    /// "1 character", "5 characters"; French counts 0 and 1 as singular.
    pub fn characters(&self, lang: Lang, n: u64) -> String {
        let one = match self.code(lang) {
            "fr" => n <= 1,
            _ => n == 1,
        };
        let word = if one {
            "count.character"
        } else {
            "count.characters"
        };
        format!("{} {}", self.number(lang, n), self.text(lang, word))
    }

    /// Why a password was refused, in `lang`, in plain words: the rule ids the command line
    /// names are for administrators, not for the person at the page.
    pub fn refusal(&self, lang: Lang, refusal: &Refusal) -> String {
        let num = |n: usize| self.number(lang, n as u64);
        match refusal {
            Refusal::TooShort { min, got } => self.fill(
                lang,
                "refusal.min_length",
                &[
                    ("got", self.characters(lang, *got as u64)),
                    ("min", num(*min)),
                ],
            ),
            Refusal::TooLong { max } => self.fill(
                lang,
                "refusal.max_length",
                &[("max", self.characters(lang, *max as u64))],
            ),
            Refusal::ControlCharacters => self.text(lang, "refusal.printable").to_owned(),
            Refusal::FromEmail => self.text(lang, "refusal.not_email").to_owned(),
            Refusal::TooWeak { score, min, hint } => {
                // zxcvbn's advice is English only: other languages get the general advice.
                let advice = match hint.as_deref().map(|h| h.trim_end_matches('.')) {
                    Some(h) if self.code(lang) == "en" && !h.is_empty() => {
                        let mut chars = h.chars();
                        chars.next().map_or(String::new(), |c| {
                            c.to_lowercase().chain(chars).collect::<String>()
                        })
                    }
                    _ => self.text(lang, "refusal.min_strength_advice").to_owned(),
                };
                self.fill(
                    lang,
                    "refusal.min_strength",
                    &[
                        ("score", score.to_string()),
                        ("min", min.to_string()),
                        ("advice", advice),
                    ],
                )
            }
            Refusal::SameAsCurrent => self.text(lang, "refusal.not_current").to_owned(),
            Refusal::BcryptTooLong => self.text(lang, "refusal.bcrypt_72_bytes").to_owned(),
            // The server's words, as it wrote them (English, on the usual servers).
            Refusal::Directory(words) => words.clone(),
        }
    }

    /// Why a typed address was not taken, as the forgot page says it.
    pub fn bad_address(&self, lang: Lang, why: crate::email::Invalid) -> String {
        use crate::email::Invalid;
        let key = match why {
            Invalid::TooLong => "address.too_long",
            Invalid::ControlCharacters => "address.control",
            Invalid::NotUtf8 => "address.not_utf8",
            Invalid::Invisible => "address.invisible",
            Invalid::MixedScripts => "address.mixed_scripts",
            Invalid::Empty => "address.empty",
            Invalid::Syntax => "address.syntax",
        };
        self.fill(
            lang,
            "forgot.bad_address",
            &[("why", self.text(lang, key).to_owned())],
        )
    }
}

/// A catalogue of the pages as dotted key → text (see [`strings::parse`]).
fn parse_strings(
    text: &str,
    lang: &str,
    known: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>> {
    strings::parse(
        text,
        &format!("web/{lang}/{STRINGS}"),
        &format!("src/web/templates/en/{STRINGS}"),
        known,
    )
}

fn sample(sent: bool) -> Value {
    context! {
        title => "Sample",
        text => "Sample text.",
        link => "/forgot_password",
        link_text => "Ask for a new link",
        token => "pwr_sample",
        csrf => "0.sample",
        email => "alice@example.com",
        action => "/reset_password",
        rules => vec!["at least 12 characters"],
        min_length => 12,
        max_length => 1024,
        error => "Sample error.",
        error_title => "Sample",
        ttl => "1 hour",
        sent => sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(lang: &str) -> BTreeMap<String, String> {
        let text = builtin_strings(lang).expect("built in");
        parse_strings(text, lang, None).expect("parses")
    }

    fn placeholders(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        fill(text, |name| {
            names.push(name.to_owned());
            None
        });
        names.sort();
        names
    }

    #[test]
    fn web_catalogues_have_every_key_and_placeholder_of_english() {
        let en = catalogue("en");
        for lang in ["de", "fr", "es"] {
            let other = catalogue(lang);
            assert_eq!(
                other.keys().collect::<Vec<_>>(),
                en.keys().collect::<Vec<_>>(),
                "{lang}: the same keys as English"
            );
            for (key, text) in &en {
                assert_eq!(
                    placeholders(&other[key]),
                    placeholders(text),
                    "{lang} {key}: the same placeholders as English"
                );
                assert_ne!(&other[key], text, "{lang} {key}: translated");
            }
        }
    }

    #[test]
    fn web_fill_replaces_known_placeholders_once() {
        let v = |name: &str| (name == "a").then(|| "{a}".to_owned());
        assert_eq!(fill("x {a} y {b} {", v), "x {a} y {b} {");
        assert_eq!(fill("{a}{a}", v), "{a}{a}");
        assert_eq!(fill("no braces", v), "no braces");
        assert_eq!(fill("é{a}é", |_| Some("ü".into())), "éüé");
    }

    #[test]
    fn web_unknown_keys_in_a_catalogue_are_refused() {
        let en = catalogue("en");
        let e =
            parse_strings("[form]\ntitel = \"x\"\n", "de", Some(&en)).expect_err("a misspelt key");
        assert!(e.to_string().contains("form.titel"), "{e}");
        let e = parse_strings("[form]\ntitle = 3\n", "de", Some(&en)).expect_err("not text");
        assert!(e.to_string().contains("form.title"), "{e}");
        let ok = parse_strings("[form]\ntitle = \"Neu\"\n", "de", Some(&en)).expect("a key");
        assert_eq!(ok["form.title"], "Neu");
    }
}
