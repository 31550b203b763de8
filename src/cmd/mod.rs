//! One module per subcommand.

pub mod audit;
pub mod completions;
pub mod demo;
pub mod init;
pub mod purge;
pub mod request;
pub mod reset;
pub mod user;
pub mod verify;

use std::io::Write;

/// Write to stdout, turning a closed pipe into an error main keeps quiet about.
pub(crate) fn out(line: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(line.as_bytes())?;
    o.write_all(b"\n")?;
    Ok(())
}

/// Write to stdout without a newline.
pub(crate) fn out_raw(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    Ok(())
}
