//! `pwreset completions SHELL`

use crate::cli::Shell;
use crate::error::Exit;
use anyhow::Result;
use std::io::Write;

pub fn run(shell: Shell) -> Result<Exit> {
    let mut script = Vec::new();
    crate::docs::completion(shell, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(Exit::Ok)
}
