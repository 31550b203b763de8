//! Completion scripts and man pages, generated from the clap definition in [`crate::cli`].
//!
//! The files in `completions/` and `man/` are checked in; a test regenerates them and fails on
//! any difference (`PWRESET_REGENERATE=1 cargo test` rewrites them).

use crate::cli::{Cli, Shell};
use clap::CommandFactory;
use clap_mangen::Man;
use std::path::PathBuf;

/// Write the completion script for `shell`.
pub fn completion(shell: Shell, out: &mut Vec<u8>) {
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Elvish => clap_complete::Shell::Elvish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "pwreset", out);
}

/// Every generated file: its path relative to the repository, and its contents.
pub fn generated_files() -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "pwreset.bash"),
        (Shell::Zsh, "_pwreset"),
        (Shell::Fish, "pwreset.fish"),
        (Shell::Elvish, "pwreset.elv"),
        (Shell::Powershell, "_pwreset.ps1"),
    ] {
        let mut out = Vec::new();
        completion(shell, &mut out);
        files.push((PathBuf::from("completions").join(name), out));
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    man_pages(&cmd, true, &mut files)?;
    Ok(files)
}

fn man_pages(
    cmd: &clap::Command,
    top: bool,
    files: &mut Vec<(PathBuf, Vec<u8>)>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, false, files)?;
    }
    let man = Man::new(cmd.clone()).manual("pwreset manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(help) = cmd.get_after_help() {
        let text = help.to_string();
        let body = text.strip_prefix("Examples:").unwrap_or(&text);
        section(&mut out, "EXAMPLES");
        out.extend_from_slice(b".nf\n");
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            out.extend_from_slice(escape(line.trim_start()).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b".fi\n");
    }
    section(&mut out, "EXIT STATUS");
    for (code, meaning) in EXIT_STATUS {
        out.extend_from_slice(format!(".TP\n\\fB{code}\\fR\n{}\n", escape(meaning)).as_bytes());
    }
    if top {
        section(&mut out, "ENVIRONMENT");
        for (var, meaning) in ENVIRONMENT {
            out.extend_from_slice(format!(".TP\n\\fB{var}\\fR\n{}\n", escape(meaning)).as_bytes());
        }
        section(&mut out, "FILES");
        for (file, meaning) in FILES {
            out.extend_from_slice(
                format!(".TP\n\\fI{}\\fR\n{}\n", escape(file), escape(meaning)).as_bytes(),
            );
        }
    }
    section(&mut out, "SEE ALSO");
    let see: Vec<String> = if top {
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| {
                format!(
                    "\\fB{}\\fR(1)",
                    s.get_display_name().unwrap_or(s.get_name())
                )
            })
            .collect()
    } else {
        vec!["\\fBpwreset\\fR(1)".into()]
    };
    out.extend_from_slice(format!("{}\n", see.join(", ")).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    let name = format!("{}.1", cmd.get_display_name().unwrap_or(cmd.get_name()));
    files.push((PathBuf::from("man").join(name), out));
    Ok(())
}

fn section(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(format!(".SH \"{name}\"\n").as_bytes());
}

/// Escape text for roff: backslashes, and a leading dot or quote that would start a request.
fn escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

const EXIT_STATUS: &[(u8, &str)] = &[
    (0, "Success; for verify, the token is valid."),
    (
        1,
        "The token is not usable (expired, used, revoked, unknown or malformed).",
    ),
    (
        2,
        "Usage error: a wrong option, or no terminal to prompt on without --password-stdin.",
    ),
    (
        65,
        "Bad input data: an invalid email address, a password refused by the policy, input too long.",
    ),
    (
        67,
        "No such user (for several users: at least one was unknown and nothing worse happened).",
    ),
    (
        69,
        "Mail could not be delivered (permanent failure: 5xx reply, TLS or certificate failure, rejected login, sendmail exiting with a status other than 71, 74 or 75).",
    ),
    (70, "Internal error."),
    (73, "Cannot create the database or an output file."),
    (74, "I/O error."),
    (
        75,
        "Temporary failure, retry later: database busy past busy_timeout, SMTP connection or 4xx failure, sendmail exiting 75, 71 or 74 or killed by a signal, request throttled.",
    ),
    (
        77,
        "Permission problem, including a secret file readable by group or others.",
    ),
    (78, "Configuration error."),
    (130, "Interrupted at a prompt; nothing was changed."),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("PWRESET_CONFIG", "The config file, as --config."),
    ("PWRESET_DB", "The database, as --db."),
    (
        "PWRESET_SMTP_PASSWORD",
        "The SMTP password, when mail.smtp.password_file is not set.",
    ),
    (
        "XDG_CONFIG_HOME, XDG_DATA_HOME",
        "Where the default config file and database live.",
    ),
    (
        "SUDO_USER",
        "Recorded as the actor in the audit trail when pwreset runs under sudo.",
    ),
    (
        "NO_COLOR, TERM",
        "TERM=dumb turns the progress bar off; it is also off when stderr is not a terminal.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "$XDG_CONFIG_HOME/pwreset/config.toml",
        "The config file, tried first.",
    ),
    ("/etc/pwreset/config.toml", "The config file, tried second."),
    (
        "$XDG_DATA_HOME/pwreset/pwreset.db",
        "The default database (mode 0600).",
    ),
    (
        "/etc/pwreset/templates/",
        "Optional mail templates: reset.txt, reset.html, changed.txt, changed.html (set mail.template_dir).",
    ),
];
