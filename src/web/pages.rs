//! The pages: built-in templates, each overridable by a file in `[mail] template_dir`/web/
//! (read with the same checks as the mail templates), and the one stylesheet.

use crate::config::Config;
use crate::error::{Exit, fail};
use anyhow::Result;
use minijinja::{Environment, Value, context};

/// Template names, each also a file name under `template_dir/web/`.
pub const NAMES: [&str; 5] = [
    "layout.html",
    "form.html",
    "message.html",
    "forgot.html",
    "style.css",
];

fn builtin(name: &str) -> &'static str {
    match name {
        "layout.html" => include_str!("templates/layout.html"),
        "form.html" => include_str!("templates/form.html"),
        "message.html" => include_str!("templates/message.html"),
        "forgot.html" => include_str!("templates/forgot.html"),
        _ => include_str!("templates/style.css"),
    }
}

/// A template with loops over loops must fail rather than hang a worker.
const FUEL: u64 = 100_000;

pub struct Pages {
    env: Environment<'static>,
    /// Variables every page gets: the service's name, support contact, stylesheet.
    common: Value,
    pub css: String,
}

impl Pages {
    /// Load the templates (admin's first, built-in otherwise) and render each once with sample
    /// values, so a broken override stops `serve` at start (78) rather than on a user's page.
    pub fn load(config: &Config, css_url: &str) -> Result<Pages> {
        let mut env = crate::mail::template_env();
        // Pages test optional values (`{% if error %}`): chainable, not strict like the mails.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        let dir = config.mail.template_dir.as_ref().map(|d| d.join("web"));
        if let Some(d) = &dir
            && d.is_dir()
        {
            crate::trust::check_private_dir(d, "mail.template_dir")?;
        }
        let mut css = String::new();
        for name in NAMES {
            let own = match &dir {
                Some(d) => crate::trust::read_template(&d.join(name), "mail.template_dir")?,
                None => None,
            };
            let source = own.unwrap_or_else(|| builtin(name).to_owned());
            if name == "style.css" {
                css = source;
                continue;
            }
            env.add_template_owned(name, source).map_err(|e| {
                fail(
                    Exit::Config,
                    format!("mail.template_dir: template web/{name} does not parse: {e}"),
                )
            })?;
        }
        let support = config.mail.support.clone();
        let support_href = support
            .as_deref()
            .and_then(|s| crate::config::support_href(s).ok());
        let pages = Pages {
            env,
            common: context! {
                service_name => config.mail.service_name.clone(),
                support => support,
                support_href => support_href,
                css_url => css_url,
            },
            css,
        };
        for name in ["form.html", "message.html", "forgot.html"] {
            pages.render(name, sample()).map_err(|e| {
                fail(
                    Exit::Config,
                    format!(
                        "mail.template_dir: template web/{name}: {}",
                        crate::error::render(&e)
                    ),
                )
            })?;
        }
        Ok(pages)
    }

    /// Render a page with the common variables and `vars`.
    pub fn render(&self, name: &str, vars: Value) -> Result<String> {
        let common = self.common.clone();
        let tmpl = self.env.get_template(name)?;
        Ok(tmpl.render(context! { ..vars, ..common })?)
    }
}

fn sample() -> Value {
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
        sent => false,
    }
}
