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
    files.push((
        PathBuf::from("man/pwreset.conf.5"),
        conf_page().into_bytes(),
    ));
    files.push((
        PathBuf::from("contrib/config.toml"),
        crate::config::example(crate::config::Flavour::Debian).into_bytes(),
    ));
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
    // No hyphenation: a path or an option broken at a hyphen reads as something else.
    out.extend_from_slice(b".nh\n");
    man.render_name_section(&mut out)?;
    section(&mut out, "SYNOPSIS");
    out.extend_from_slice(synopsis(cmd).as_bytes());
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
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let codes = exit_codes(name.strip_prefix("pwreset-").unwrap_or(""));
    for (code, meaning) in EXIT_STATUS.iter().filter(|(c, _)| codes.contains(c)) {
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
    let mut see = see;
    see.push("\\fBpwreset.conf\\fR(5)".into());
    out.extend_from_slice(format!("{}\n", see.join(", ")).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    let name = format!("{}.1", cmd.get_display_name().unwrap_or(cmd.get_name()));
    files.push((PathBuf::from("man").join(name), out));
    Ok(())
}

/// The exit codes a command can return (`""` for pwreset itself: all of them). Each page lists
/// only its own; a command not listed here gets the whole table until it is added.
fn exit_codes(command: &str) -> &'static [u8] {
    // Every command that opens the config and the database can meet 2, 70, 74, 75, 77 and 78;
    // 130 wherever a prompt can be cancelled (the token prompt, request's question); 129, 130
    // and 143 where a signal stops a run in good order (request).
    match command {
        "init" => &[0, 2, 70, 73, 74, 75, 77, 78],
        "user" => &[0, 2, 65, 70, 74, 75, 77, 78],
        "user-add" => &[0, 2, 65, 70, 74, 75, 77, 78],
        "user-list" => &[0, 2, 70, 74, 75, 77, 78],
        "request" => &[0, 2, 65, 67, 69, 70, 74, 75, 77, 78, 129, 130, 143],
        "verify" => &[0, 1, 2, 70, 74, 75, 77, 78, 130],
        "reset" => &[0, 1, 2, 65, 70, 74, 75, 77, 78, 130],
        "purge-expired" => &[0, 2, 70, 74, 75, 77, 78],
        "audit" => &[0, 2, 67, 70, 74, 75, 77, 78],
        "revoke" => &[0, 1, 2, 65, 67, 70, 74, 75, 77, 78, 130],
        "doctor" => &[0, 2, 69, 70, 73, 74, 75, 77, 78],
        "completions" => &[0, 2, 74],
        "demo" => &[0, 2, 70, 73, 74],
        "config" => &[0, 2, 70, 74, 77, 78],
        "config-example" => &[0, 2, 74],
        "config-show" => &[0, 2, 70, 74, 77, 78],
        "serve" => &[0, 2, 69, 70, 73, 74, 75, 77, 78],
        _ => &[0, 1, 2, 65, 67, 69, 70, 73, 74, 75, 77, 78, 129, 130, 143],
    }
}

/// The SYNOPSIS: every option with its value placeholder (`--ttl DURATION`), and positionals
/// that take several values marked `EMAIL...`. (clap_mangen writes `[--ttl]` and `[EMAIL]`.)
fn synopsis(cmd: &clap::Command) -> String {
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    let mut parts = vec![format!("\\fB{}\\fR", escape(name))];
    let placeholder = |a: &clap::Arg| {
        let names: Vec<String> = a
            .get_value_names()
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .unwrap_or_else(|| vec![a.get_id().as_str().to_uppercase()]);
        let many = a.get_num_args().is_some_and(|r| r.max_values() > 1);
        format!(
            "\\fI{}\\fR{}",
            escape(&names.join(" ")),
            if many { "..." } else { "" }
        )
    };
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
    {
        let mut flag = match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR|\\fB\\-\\-{}\\fR", escape(l)),
            (Some(s), None) => format!("\\fB\\-{s}\\fR"),
            (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", escape(l)),
            (None, None) => continue,
        };
        if a.get_action().takes_values() {
            flag.push(' ');
            flag.push_str(&placeholder(a));
        }
        parts.push(if a.is_required_set() {
            flag
        } else {
            format!("[{flag}]")
        });
    }
    for a in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let p = placeholder(a);
        parts.push(if a.is_required_set() {
            p
        } else {
            format!("[{p}]")
        });
    }
    if cmd.has_subcommands() {
        parts.push("<\\fICOMMAND\\fR>".into());
    }
    format!("{}\n", parts.join(" "))
}

/// pwreset.conf(5): every key of [`crate::config::keys::KEYS`], with its default from the
/// sections' `Default` impls: the same source as `config example`.
fn conf_page() -> String {
    use crate::config::keys::{KEYS, SECTIONS, full_name};
    let defaults = crate::config::defaults();
    let mut out = String::new();
    out.push_str(".TH PWRESET.CONF 5 \"\" \"pwreset\" \"pwreset manual\"\n.nh\n");
    out.push_str(".SH NAME\npwreset.conf \\- configuration file of pwreset\n");
    out.push_str(".SH SYNOPSIS\n\\fI$XDG_CONFIG_HOME/pwreset/config.toml\\fR, \\fI/etc/pwreset/config.toml\\fR\n");
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&escape(
        "pwreset reads one TOML file: the one named by --config or PWRESET_CONFIG (it must exist), else the first of the files above that exists, else none (built-in defaults). Settings come from, in order of precedence: command-line flags, the environment, this file, built-in defaults. Every error in the file names the key and exits 78; an unknown key is an error, with a hint where it probably belongs.",
    ));
    out.push_str("\n.PP\n");
    out.push_str(&escape(
        "`pwreset config example` prints a complete file with every key below, commented; `pwreset config show` prints every setting in effect and where it came from (a flag, the environment, file:line, or the default). The file decides which command runs as sendmail, so it must belong to root or to the user pwreset runs as, and be writable by no one else. Secrets never go in it: passwords live in files of mode 0600 named by the *_file keys, or in the environment.",
    ));
    out.push('\n');
    for sec in SECTIONS {
        if sec.name.is_empty() {
            out.push_str(".SH \"TOP-LEVEL KEYS\"\n");
        } else {
            out.push_str(&format!(".SH \"[{}]\"\n", sec.name));
        }
        out.push_str(&escape(sec.doc));
        out.push('\n');
        for k in KEYS.iter().filter(|k| k.section == sec.name) {
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR = \\fI{}\\fR\n{}\n",
                escape(k.name),
                escape(k.kind),
                escape(k.doc)
            ));
            let default = match crate::config::lookup(&defaults, &full_name(k)) {
                Some(d) => format!("Default: {d}."),
                None => format!("Unset: {}.", k.unset),
            };
            out.push_str(&format!(".br\n{}\n", escape(&default)));
        }
    }
    out.push_str(".SH ENVIRONMENT\n");
    for (var, meaning) in ENVIRONMENT {
        out.push_str(&format!(".TP\n\\fB{var}\\fR\n{}\n", escape(meaning)));
    }
    out.push_str(".SH \"SEE ALSO\"\n\\fBpwreset\\fR(1), \\fBpwreset\\-config\\fR(1)\n");
    out
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
    (
        129,
        "request stopped by SIGHUP (128 + 1), after its summary; see 130.",
    ),
    (
        130,
        "Interrupted at a prompt; nothing was changed. Or request (or another run) stopped by Ctrl-C (SIGINT, 128 + 2): the messages in flight were finished, the links not sent were withdrawn, and the summary says how many went out; the same command run again finishes the job. A second Ctrl-C exits at once.",
    ),
    (
        143,
        "request stopped by SIGTERM (128 + 15), as systemd stops a job, after its summary; see 130.",
    ),
];

/// The variables pwreset reads, for pwreset(1) and pwreset.conf(5) alike (the docs test checks
/// every one the code reads is here).
const ENVIRONMENT: &[(&str, &str)] = &[
    ("PWRESET_CONFIG", "The config file, as --config."),
    ("PWRESET_DB", "The database, as --db."),
    (
        "PWRESET_SMTP_PASSWORD",
        "The SMTP password, when mail.smtp.password_file is not set.",
    ),
    (
        "PWRESET_DB_PASSWORD",
        "The database server's password, when database_password_file is not set.",
    ),
    (
        "PWRESET_LDAP_PASSWORD",
        "The password of ldap.bind_dn, when ldap.bind_password_file is not set.",
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
