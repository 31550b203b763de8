//! `pwreset config example` and `pwreset config show`

use crate::Ctx;
use crate::cli::ConfigCommand;
use crate::config::{Flavour, Source};
use crate::error::Exit;
use anyhow::Result;
use std::io::Write;

pub fn run(ctx: &Ctx, cmd: ConfigCommand) -> Result<Exit> {
    match cmd {
        ConfigCommand::Example => {
            // Raw: the text is ours, and escaping would change what a redirect saves.
            let mut out = std::io::stdout().lock();
            out.write_all(crate::config::example(Flavour::Generic).as_bytes())?;
            out.flush()?;
        }
        ConfigCommand::Show => show(ctx)?,
    }
    Ok(Exit::Ok)
}

fn show(ctx: &Ctx) -> Result<()> {
    let (source, settings) = crate::config::show(&ctx.overrides)?;
    let mut lines = super::Lines::new();
    match &source {
        Source::File(p) => lines.line(&format!("# config file: {}", p.display()))?,
        Source::Defaults => lines.line(&format!("# {source}"))?,
    }
    // Sources line up unless a value is very long (after_reset): that line's comment is pushed
    // right rather than every line padded to it.
    let width = settings
        .iter()
        .map(|s| s.key.len() + 3 + s.value.chars().count())
        .filter(|w| *w <= 60)
        .max()
        .unwrap_or(0);
    for s in settings {
        let setting = format!("{} = {}", s.key, s.value);
        let pad = width.saturating_sub(setting.chars().count());
        lines.line(&format!("{setting}{}  # {}", " ".repeat(pad), s.source))?;
    }
    lines.finish()
}
