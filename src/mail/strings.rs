//! Catalogues of words, as the pages and the mails use them: a TOML file per language (key →
//! text, grouped in tables), `{name}` placeholders in the texts, and the `fill` filter that the
//! templates fill them with. One layout per kind of page or mail, the words of each language
//! here: a translation is a file of sentences, not a copy of the markup.

use crate::error::{Exit, fail};
use anyhow::Result;
use minijinja::value::Kwargs;
use minijinja::{AutoEscape, State, Value};
use std::collections::BTreeMap;

/// A catalogue as dotted key → text; `file` names it in errors. With `known` (the English
/// keys), a key English does not have is an error naming `reference`: a misspelt key in an
/// admin's file would otherwise change nothing, quietly.
pub(crate) fn parse(
    text: &str,
    file: &str,
    reference: &str,
    known: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>> {
    let bad = |why: String| fail(Exit::Config, format!("{file}: {why}"));
    let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    flatten("", &table, &mut out).map_err(bad)?;
    if let Some(known) = known
        && let Some(key) = out.keys().find(|k| !known.contains_key(*k))
    {
        return Err(bad(format!(
            "unknown key {key:?}; the keys are those of {reference}"
        )));
    }
    Ok(out)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, out)?,
            _ => return Err(format!("{key} must be text in quotes")),
        }
    }
    Ok(())
}

/// Dotted keys back into nested maps, for `t.form.title` in the templates.
pub(crate) fn nest(strings: &BTreeMap<String, String>) -> Value {
    fn level(items: Vec<(&str, &str)>) -> Value {
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        let mut groups: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for (key, text) in items {
            match key.split_once('.') {
                Some((head, rest)) => groups.entry(head).or_default().push((rest, text)),
                None => {
                    map.insert(key.to_owned(), Value::from(text));
                }
            }
        }
        for (head, sub) in groups {
            map.insert(head.to_owned(), level(sub));
        }
        Value::from(map)
    }
    level(
        strings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    )
}

/// `text` with each `{name}` that `value` knows replaced, in one pass (a value's own braces stay
/// as they are); other braces are left alone.
pub(crate) fn fill(text: &str, mut value: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| value(&after[..close]).map(|v| (v, close)))
        {
            Some((v, close)) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `{{ t.forgot.sent | fill(ttl=ttl) }}`: the template's way to [`fill`]. In an HTML
/// template the text and the values are escaped, but for values that are markup already (the
/// output of a `{% set %}` block, another `fill`): `{{ t.reset.intro | fill(email=bold_email) }}`.
pub(crate) fn fill_filter(
    state: &State,
    text: Value,
    kwargs: Kwargs,
) -> std::result::Result<Value, minijinja::Error> {
    let html = matches!(state.auto_escape(), AutoEscape::Html);
    let as_text = |v: &Value| {
        let s = match v.as_str() {
            Some(s) => s.to_owned(),
            None => v.to_string(),
        };
        if html && !v.is_safe() {
            super::escape_html(&s)
        } else {
            s
        }
    };
    let mut args = Vec::new();
    for name in kwargs.args() {
        let v: Value = kwargs.get(name)?;
        args.push((name.to_owned(), as_text(&v)));
    }
    kwargs.assert_all_used()?;
    let out = fill(&as_text(&text), |name| {
        args.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    });
    Ok(if html {
        Value::from_safe_string(out)
    } else {
        Value::from(out)
    })
}
