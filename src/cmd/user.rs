//! `pwreset user add` and `pwreset user list`

use crate::Ctx;
use crate::cli::UserCommand;
use crate::error::{Exit, fail};
use crate::store::Access;
use crate::ui;
use anyhow::Result;

pub fn run(ctx: &Ctx, cmd: UserCommand) -> Result<Exit> {
    match cmd {
        UserCommand::Add { email, name } => add(ctx, &email, name.as_deref()),
        UserCommand::List { json } => list(ctx, json),
    }
}

/// With `[ldap]` the people are the directory's: `user add` and `user list` are refused.
fn in_directory(config: &crate::config::Config) -> Result<()> {
    match &config.ldap {
        Some(l) => Err(fail(
            Exit::Usage,
            format!(
                "users live in the {}; manage them there (ldapadd, ldapsearch, your IdM). `pwreset request --all --dry-run` lists who would get a link",
                l.describe()
            ),
        )),
        None => Ok(()),
    }
}

fn add(ctx: &Ctx, email: &str, name: Option<&str>) -> Result<Exit> {
    let email = crate::email::validate(email)?;
    if let Some(n) = name
        && (n.chars().any(|c| c.is_control() || c == '\u{fffd}') || n.chars().count() > 200)
    {
        return Err(fail(
            Exit::DataErr,
            "--name must be one line of UTF-8 text of at most 200 characters",
        ));
    }
    let config = ctx.config()?;
    in_directory(&config)?;
    let mut store = crate::store::open(&config, Access::Write)?;
    if !store.owns_users_table() {
        return Err(fail(
            Exit::Usage,
            format!(
                "users live in the application's table `{}`; add them through the application. `user add` only writes pwreset's own users table",
                config.users.table
            ),
        ));
    }
    let id = store.add_user(email, name, ui::now(), ctx.actor())?;
    ctx.note(format!(
        "added user {id} <{}>; send them a reset link with: pwreset request {}",
        ui::escape(email),
        ui::escape(email)
    ));
    Ok(Exit::Ok)
}

fn list(ctx: &Ctx, json: bool) -> Result<Exit> {
    let config = ctx.config()?;
    in_directory(&config)?;
    let mut store = crate::store::open(&config, Access::Read)?;
    let now = ui::now();
    if json {
        let mut array = super::JsonArray::new();
        store.list_users(now, &mut |u| {
            array.push(&serde_json::json!({
                "id": u.id, "email": u.email, "name": u.name,
                "has_password": u.has_password, "open_tokens": u.open_tokens,
            }))
        })?;
        array.finish()?;
    } else {
        let mut table = Table::new(super::Lines::new());
        store.list_users(now, &mut |u| {
            table.row([
                u.id.to_string(),
                ui::escape(&u.email),
                u.name.as_deref().map_or_else(|| "-".to_owned(), ui::escape),
                if u.has_password { "set" } else { "not set" }.to_owned(),
                ui::grouped(u64::try_from(u.open_tokens).unwrap_or(0)),
            ])
        })?;
        let n = table.finish()?;
        ctx.debug(ui::count(n, "user", "users"));
    }
    Ok(Exit::Ok)
}

/// Rows kept to size the columns before the first line is printed. The widths fit these rows; a
/// longer value further down overflows its cell rather than holding the whole table in memory.
const SIZING_ROWS: usize = 1000;
/// Widest a column is made: an address is at most 254 characters, a name 200; a longer value
/// from an application's table overflows instead of padding every row.
const MAX_WIDTH: usize = 256;
const HEADER: [&str; 5] = ["ID", "EMAIL", "NAME", "PASSWORD", "OPEN TOKENS"];

/// The `user list` table: columns sized to the first [`SIZING_ROWS`] rows, then streamed.
struct Table {
    lines: super::Lines,
    pending: Vec<[String; 5]>,
    widths: Option<[usize; 5]>,
    rows: u64,
}

impl Table {
    fn new(lines: super::Lines) -> Table {
        Table {
            lines,
            pending: Vec::new(),
            widths: None,
            rows: 0,
        }
    }

    fn row(&mut self, cells: [String; 5]) -> Result<()> {
        self.rows += 1;
        match self.widths {
            Some(w) => self.lines.line(&format_row(&w, &cells)),
            None => {
                self.pending.push(cells);
                if self.pending.len() >= SIZING_ROWS {
                    self.flush()?;
                }
                Ok(())
            }
        }
    }

    /// Size the columns to the rows held, print the header and them.
    fn flush(&mut self) -> Result<()> {
        let mut w = HEADER.map(|h| h.chars().count());
        for cells in &self.pending {
            for (i, c) in cells.iter().enumerate() {
                w[i] = w[i].max(c.chars().count().min(MAX_WIDTH));
            }
        }
        self.lines
            .line(&format_row(&w, &HEADER.map(str::to_owned)))?;
        for cells in std::mem::take(&mut self.pending) {
            self.lines.line(&format_row(&w, &cells))?;
        }
        self.widths = Some(w);
        Ok(())
    }

    /// Print what is held; the number of rows.
    fn finish(mut self) -> Result<u64> {
        if self.widths.is_none() {
            self.flush()?;
        }
        self.lines.finish()?;
        Ok(self.rows)
    }
}

/// One line: ID and OPEN TOKENS right-aligned, the rest left-aligned, two spaces between; no
/// trailing spaces.
fn format_row(w: &[usize; 5], cells: &[String; 5]) -> String {
    let pad = |s: &str, width: usize| " ".repeat(width.saturating_sub(s.chars().count()));
    format!(
        "{}{}  {}{}  {}{}  {}{}  {}{}",
        pad(&cells[0], w[0]),
        cells[0],
        cells[1],
        pad(&cells[1], w[1]),
        cells[2],
        pad(&cells[2], w[2]),
        cells[3],
        pad(&cells[3], w[3]),
        pad(&cells[4], w[4]),
        cells[4],
    )
}
