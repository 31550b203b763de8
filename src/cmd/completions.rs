//! `pwreset completions SHELL`

use crate::cli::Shell;
use crate::error::Exit;
use anyhow::Result;

pub fn run(shell: Shell) -> Result<Exit> {
    let mut out = Vec::new();
    crate::docs::completion(shell, &mut out);
    super::out_raw(&String::from_utf8_lossy(&out))?;
    Ok(Exit::Ok)
}
