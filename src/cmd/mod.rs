//! One module per subcommand.

pub mod audit;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod init;
pub mod purge;
pub mod request;
pub mod reset;
pub mod revoke;
pub mod user;
pub mod verify;

use std::io::Write;

/// Write a line to stdout, turning a closed pipe into an error main keeps quiet about.
///
/// Every line pwreset prints goes through [`crate::ui::escape`] here (and in [`Lines`] and
/// `Ctx::note`), so text read from the database (addresses, revocation reasons, audit rows
/// written by anyone with SQL access) can never move the cursor, recolour the terminal or forge
/// a line: one rule at the door, not a list of fields.
pub(crate) fn out(line: &str) -> anyhow::Result<()> {
    let line = crate::ui::escape(line);
    let mut o = std::io::stdout().lock();
    o.write_all(line.as_bytes())?;
    o.write_all(b"\n")?;
    Ok(())
}

/// Lines for stdout through one buffer: a table of a million rows is a few hundred writes,
/// not a million.
pub(crate) struct Lines {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
}

impl Lines {
    pub(crate) fn new() -> Lines {
        Lines {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
        }
    }

    pub(crate) fn line(&mut self, line: &str) -> anyhow::Result<()> {
        self.out.write_all(crate::ui::escape(line).as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// A JSON array written one element per line as the rows stream by, so a large table never
/// sits in memory. Strings are escaped for terminals (see [`crate::ui::json`]).
pub(crate) struct JsonArray {
    lines: Lines,
    first: bool,
}

impl JsonArray {
    pub(crate) fn new() -> JsonArray {
        JsonArray {
            lines: Lines::new(),
            first: true,
        }
    }

    pub(crate) fn push(&mut self, value: &serde_json::Value) -> anyhow::Result<()> {
        let sep: &[u8] = if self.first { b"[\n" } else { b",\n" };
        self.first = false;
        self.lines.out.write_all(sep)?;
        self.lines
            .out
            .write_all(crate::ui::json(value).as_bytes())?;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        // Raw: the JSON is escaped already, and "\n]" is structure, not text.
        let end: &[u8] = if self.first { b"[]\n" } else { b"\n]\n" };
        self.lines.out.write_all(end)?;
        self.lines.finish()
    }
}
