//! Every config key, once: its section, what it holds, an example and what it does. `config
//! example`, `contrib/config.toml`, the pwreset.conf(5) man page and the "did you mean" hints are
//! all made from [`KEYS`], so they cannot drift apart. The defaults are not repeated here: they
//! come from the sections' `Default` impls (see [`super::defaults`]).

/// One key of the config file.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The dotted section it lives in, `""` for the top level.
    pub section: &'static str,
    pub name: &'static str,
    /// What the value is, for the man page: `PATH`, `DURATION`, `"smtp" | "file"`.
    pub kind: &'static str,
    /// The value `config example` writes, as TOML; `None`: the default.
    pub example: Option<&'static str>,
    /// Written as a setting in `config example`; otherwise as a `# key = value` comment.
    pub active: bool,
    /// What happens when a key with no default value is left out; empty for a key that has one.
    pub unset: &'static str,
    pub doc: &'static str,
}

/// A section: its dotted name and what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub name: &'static str,
    pub doc: &'static str,
}

/// The sections, in the order the file and the man page list them (the top level first).
pub const SECTIONS: &[Section] = &[
    Section {
        name: "",
        doc: "The database, the links and the timing of requests.",
    },
    Section {
        name: "users",
        doc: "Where the users live: pwreset's own table (the default, managed with `pwreset user add`), or an existing application's table in the same database. Names are plain SQL identifiers.",
    },
    Section {
        name: "mail",
        doc: "How messages are made and sent.",
    },
    Section {
        name: "mail.smtp",
        doc: "For transport = \"smtp\": the relay. The default is a local relay: localhost, port 25, no TLS.",
    },
    Section {
        name: "mail.file",
        doc: "For transport = \"file\": one RFC 5322 .eml file per message, in a folder created 0700.",
    },
    Section {
        name: "mail.sendmail",
        doc: "For transport = \"sendmail\": the command is run as `command -i -f FROM -- RECIPIENT` with the message on stdin. Under the systemd units a sendmail that needs setgid (Postfix's postdrop) cannot work (NoNewPrivileges=yes): use smtp to localhost instead.",
    },
    Section {
        name: "password",
        doc: "The policy a new password must meet.",
    },
    Section {
        name: "password.argon2",
        doc: "The argon2id cost (password_format = \"argon2id\"); OWASP's baseline by default. Raise memory_kib first, then iterations.",
    },
    Section {
        name: "password.bcrypt",
        doc: "For password_format = \"bcrypt\" and Django's bcrypt hasher.",
    },
    Section {
        name: "serve",
        doc: "`pwreset serve`: the page the emailed link opens, and the forgot-password page.",
    },
    Section {
        name: "ldap",
        doc: "Users in an LDAP directory (OpenLDAP, 389 DS, FreeIPA, Active Directory) instead of a [users] table: pwreset finds people there, mails the address the directory holds, and sets the password through the server, under the server's own password policy. Tokens, the throttle and the audit trail stay in pwreset's database. Not together with a [users] mapping. Needs a build with LDAP support (`--features ldap`; the Debian package has it).",
    },
];

/// Every key, section by section in the order of [`SECTIONS`].
pub const KEYS: &[Key] = &[
    // ---- top level
    Key {
        section: "",
        name: "database",
        kind: "PATH | URL",
        example: Some("\"/var/lib/pwreset/pwreset.db\""),
        active: true,
        unset: "$XDG_DATA_HOME/pwreset/pwreset.db",
        doc: "The database: a SQLite file (created 0600 in a 0700 folder by `pwreset init`), or the URL of a PostgreSQL (postgres://user@host:5432/db) or MariaDB/MySQL (mysql://user@host:3306/db) server. Never put a password in the URL. --db and PWRESET_DB override it.",
    },
    Key {
        section: "",
        name: "database_password_file",
        kind: "PATH",
        example: Some("\"/etc/pwreset/db-password\""),
        active: false,
        unset: "the environment variable PWRESET_DB_PASSWORD, else no password",
        doc: "For a database server: a file of mode 0600 whose first line is the password.",
    },
    Key {
        section: "",
        name: "database_ca_file",
        kind: "PATH",
        example: Some("\"/etc/pwreset/db-ca.pem\""),
        active: false,
        unset: "the public roots only",
        doc: "For a database server: certificates (PEM) trusted besides the public roots. TLS is always verified; plaintext only to a loopback address or a unix socket.",
    },
    Key {
        section: "",
        name: "schema",
        kind: "NAME",
        example: Some("\"public\""),
        active: false,
        unset: "the server's search_path",
        doc: "PostgreSQL only: the schema of the users table and of pwreset's tables.",
    },
    Key {
        section: "",
        name: "base_url",
        kind: "URL",
        example: Some("\"https://accounts.example.com/reset_password\""),
        active: true,
        unset: "`pwreset request` refuses to run (exit 78)",
        doc: "The page the emailed link opens: link = base_url + \"?token=\" + token. Must be https:// unless the host is a loopback address.",
    },
    Key {
        section: "",
        name: "token_ttl",
        kind: "DURATION",
        example: None,
        active: true,
        unset: "",
        doc: "How long a link works: 1m to 30days, humantime syntax (90s, 30m, 1h, \"2h 30m\"). `request --ttl` overrides it.",
    },
    Key {
        section: "",
        name: "request_throttle",
        kind: "DURATION",
        example: None,
        active: true,
        unset: "",
        doc: "At most one request per user per this long, unless `request --force`.",
    },
    Key {
        section: "",
        name: "busy_timeout",
        kind: "DURATION",
        example: None,
        active: true,
        unset: "",
        doc: "How long to wait for another writer before giving up with exit 75 (at most 1h).",
    },
    Key {
        section: "",
        name: "notify_on_reset",
        kind: "BOOL",
        example: None,
        active: true,
        unset: "",
        doc: "Send \"your password was changed\" after a reset.",
    },
    // ---- [users]
    Key {
        section: "users",
        name: "table",
        kind: "NAME",
        example: None,
        active: true,
        unset: "",
        doc: "The users table.",
    },
    Key {
        section: "users",
        name: "id_column",
        kind: "NAME",
        example: None,
        active: true,
        unset: "",
        doc: "Its key column.",
    },
    Key {
        section: "users",
        name: "email_column",
        kind: "NAME",
        example: None,
        active: true,
        unset: "",
        doc: "The column with the address mail goes to.",
    },
    Key {
        section: "users",
        name: "password_column",
        kind: "NAME",
        example: None,
        active: true,
        unset: "",
        doc: "The column `reset` writes the new hash into.",
    },
    Key {
        section: "users",
        name: "name_column",
        kind: "NAME",
        example: Some("\"name\""),
        active: false,
        unset: "no name (in pwreset's own table: its name column, filled by `user add --name`)",
        doc: "The column with the name to greet the user by.",
    },
    Key {
        section: "users",
        name: "locale_column",
        kind: "NAME",
        example: Some("\"locale\""),
        active: false,
        unset: "English, unless `request --locale` says otherwise",
        doc: "The column with the user's language (de, de-DE, de_DE.UTF-8), for the language of the mail.",
    },
    Key {
        section: "users",
        name: "password_format",
        kind: "FORMAT",
        example: None,
        active: false,
        unset: "",
        doc: "The format `reset` writes, so the application can log the user in afterwards: auto, argon2id, bcrypt, django-pbkdf2-sha256, django-argon2, django-bcrypt-sha256 or aspnet-identity-v3. auto (the default) reads which formats the column holds (a sample of up to 1,000 set passwords) in init, doctor and every reset, and writes the one it finds with the column's own cost (bcrypt's highest cost and its $2y$/$2b$/$2a$ prefix; Django PBKDF2 at least Django's current iteration count; argon2's parameters); several formats, none pwreset writes, values none of which it recognises, or no password at all yet is refused with 78 naming what to set (init and doctor only warn while the column is empty). On pwreset's own table auto is argon2id, and so on a table named like it (users with id, email, password_hash) while no password is set there. An explicit format the column does not hold is refused with 78 too, unless password_format_migration = true. An explicit bcrypt keeps the column's $2y$/$2b$/$2a$ prefix unless [password.bcrypt] prefix is set.",
    },
    Key {
        section: "users",
        name: "password_format_migration",
        kind: "BOOL",
        example: None,
        active: false,
        unset: "",
        doc: "Set to true when an explicit password_format (or [password.bcrypt] prefix) differs from what the column holds on purpose: the application reads both (e.g. Django with the new hasher first in PASSWORD_HASHERS and the old one after it), and passwords move to the new format as users reset them.",
    },
    Key {
        section: "users",
        name: "pepper_file",
        kind: "PATH",
        example: Some("\"/etc/pwreset/pepper\""),
        active: false,
        unset: "no pepper",
        doc: "For password_format = \"bcrypt\" (Devise's config.pepper): a file of mode 0600 whose first line is appended to the password before hashing.",
    },
    Key {
        section: "users",
        name: "after_reset",
        kind: "[SQL, ...]",
        example: Some("[\"DELETE FROM sessions WHERE user_id = :user_id\"]"),
        active: false,
        unset: "",
        doc: "SQL statements run inside the reset's transaction, with :user_id and :email bound: typically ending the user's sessions. At most 32. They run as pwreset's database account, so grant it what they use (e.g. DELETE on sessions); a statement refused for lack of privilege is 77, and the reset is rolled back.",
    },
    // ---- [mail]
    Key {
        section: "mail",
        name: "transport",
        kind: "\"smtp\" | \"sendmail\" | \"file\" | \"stdout\"",
        example: None,
        active: true,
        unset: "",
        doc: "How messages leave: an SMTP relay, the sendmail command, .eml files in a folder, or stdout.",
    },
    Key {
        section: "mail",
        name: "from",
        kind: "MAILBOX",
        example: Some("\"Accounts <no-reply@example.com>\""),
        active: true,
        unset: "",
        doc: "The sender, with an optional display name.",
    },
    Key {
        section: "mail",
        name: "subject",
        kind: "TEXT",
        example: Some("\"Reset your password\""),
        active: false,
        unset: "the built-in subject in the recipient's language",
        doc: "The subject of the reset mail, in every language (a subject file in template_dir still wins).",
    },
    Key {
        section: "mail",
        name: "changed_subject",
        kind: "TEXT",
        example: Some("\"Your password was changed\""),
        active: false,
        unset: "the built-in subject in the recipient's language",
        doc: "The subject of the \"your password was changed\" notice.",
    },
    Key {
        section: "mail",
        name: "template_dir",
        kind: "PATH",
        example: Some("\"/etc/pwreset/templates\""),
        active: false,
        unset: "the built-in templates",
        doc: "Your own templates and words: layout.html and layout.txt (the frame of both mails), reset.txt, reset.html, changed.txt, changed.html, the .subject files, and per language a folder such as de/ with any of them plus strings.toml (the words of that language, key by key). Missing files fall back to the built-in ones.",
    },
    Key {
        section: "mail",
        name: "service_name",
        kind: "TEXT",
        example: Some("\"Example Accounts\""),
        active: false,
        unset: "the display name of from, else its domain",
        doc: "Named in the subjects and bodies.",
    },
    Key {
        section: "mail",
        name: "support",
        kind: "ADDRESS | URL",
        example: Some("\"help@example.com\""),
        active: false,
        unset: "not mentioned",
        doc: "An address or a web page people can turn to, shown in the reset mail and the notice.",
    },
    Key {
        section: "mail",
        name: "timezone",
        kind: "ZONE",
        example: None,
        active: false,
        unset: "",
        doc: "The IANA time zone of the times written in mail, such as \"Europe/Berlin\".",
    },
    // ---- [mail.smtp]
    Key {
        section: "mail.smtp",
        name: "host",
        kind: "HOST",
        example: Some("\"smtp.example.com\""),
        active: true,
        unset: "",
        doc: "The relay.",
    },
    Key {
        section: "mail.smtp",
        name: "port",
        kind: "PORT",
        example: Some("587"),
        active: true,
        unset: "from tls: 587 for starttls, 465 for tls, 25 for none",
        doc: "The relay's port.",
    },
    Key {
        section: "mail.smtp",
        name: "tls",
        kind: "\"starttls\" | \"tls\" | \"none\"",
        example: Some("\"starttls\""),
        active: true,
        unset: "none to a loopback host, else starttls",
        doc: "How the connection is encrypted; none only to a loopback address. Certificates are always verified.",
    },
    Key {
        section: "mail.smtp",
        name: "username",
        kind: "TEXT",
        example: Some("\"pwreset\""),
        active: false,
        unset: "no login",
        doc: "The login, if the relay wants one.",
    },
    Key {
        section: "mail.smtp",
        name: "password_file",
        kind: "PATH",
        example: Some("\"/etc/pwreset/smtp-password\""),
        active: false,
        unset: "the environment variable PWRESET_SMTP_PASSWORD",
        doc: "The login's password: a file of mode 0600 owned by the user pwreset runs as (install -m 600 -o pwreset -g pwreset /dev/null /etc/pwreset/smtp-password). Never on the command line.",
    },
    Key {
        section: "mail.smtp",
        name: "timeout",
        kind: "DURATION",
        example: None,
        active: false,
        unset: "",
        doc: "How long to wait for the relay.",
    },
    Key {
        section: "mail.smtp",
        name: "ca_file",
        kind: "PATH",
        example: Some("\"/etc/pwreset/relay-ca.pem\""),
        active: false,
        unset: "the public roots only",
        doc: "Certificates (PEM) of a private CA trusted besides the public roots.",
    },
    Key {
        section: "mail.smtp",
        name: "connections",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Parallel connections for bulk sends, 1 to 64.",
    },
    // ---- [mail.file]
    Key {
        section: "mail.file",
        name: "dir",
        kind: "PATH",
        example: None,
        active: false,
        unset: "",
        doc: "The outbox folder.",
    },
    // ---- [mail.sendmail]
    Key {
        section: "mail.sendmail",
        name: "command",
        kind: "PATH",
        example: None,
        active: false,
        unset: "",
        doc: "The sendmail program.",
    },
    // ---- [password]
    Key {
        section: "password",
        name: "min_length",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Fewest characters.",
    },
    Key {
        section: "password",
        name: "max_length",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Most characters, at most 4096; passwords are never truncated.",
    },
    Key {
        section: "password",
        name: "min_strength",
        kind: "0-4",
        example: None,
        active: false,
        unset: "",
        doc: "The lowest zxcvbn score accepted; 0 turns the check off.",
    },
    Key {
        section: "password",
        name: "normalize",
        kind: "\"nfkc\" | \"none\"",
        example: None,
        active: false,
        unset: "",
        doc: "Unicode normalisation before hashing; none for applications whose login does not normalise.",
    },
    // ---- [password.argon2]
    Key {
        section: "password.argon2",
        name: "memory_kib",
        kind: "KIB",
        example: None,
        active: false,
        unset: "",
        doc: "Memory per hash, 8192 (8 MiB) to 4194304 (4 GiB).",
    },
    Key {
        section: "password.argon2",
        name: "iterations",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Passes over the memory, 1 to 100.",
    },
    Key {
        section: "password.argon2",
        name: "parallelism",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Lanes, 1 to 64.",
    },
    // ---- [password.bcrypt]
    Key {
        section: "password.bcrypt",
        name: "cost",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "The bcrypt cost (log2 of the rounds).",
    },
    Key {
        section: "password.bcrypt",
        name: "prefix",
        kind: "\"2b\" | \"2y\" | \"2a\"",
        example: Some("\"2y\""),
        active: false,
        unset: "the prefix most of the column's bcrypt hashes use, else 2b",
        doc: "The hash prefix: 2b, 2y for PHP/Laravel, 2a for Ruby. Some verifiers accept only their own (PHP's password_verify rejects $2b$), so leave it unset and pwreset writes the one the column holds. A prefix set here that none of the column's bcrypt hashes use is refused with 78 naming the ones they do (init, doctor, reset, serve), unless [users] password_format_migration = true.",
    },
    // ---- [serve]
    Key {
        section: "serve",
        name: "listen",
        kind: "ADDR",
        example: None,
        active: false,
        unset: "",
        doc: "Where to listen, e.g. 127.0.0.1:8080 or [::1]:8080, or a Unix socket, unix:/run/pwreset/serve.sock (best behind a proxy on the same host: on a loopback port any local user can connect and forge X-Forwarded-For; a Unix socket's peer is always believed to be the proxy). --listen overrides it. A socket passed by systemd (LISTEN_FDS, TCP or Unix) wins over both.",
    },
    Key {
        section: "serve",
        name: "trusted_proxies",
        kind: "[ADDR, ...]",
        example: None,
        active: false,
        unset: "",
        doc: "Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (none by default): the client address for limits and the audit trail, and https for HSTS.",
    },
    Key {
        section: "serve",
        name: "forgot_password",
        kind: "true | false",
        example: None,
        active: false,
        unset: "",
        doc: "Serve the forgot-password page.",
    },
    Key {
        section: "serve",
        name: "forgot_path",
        kind: "PATH",
        example: None,
        active: false,
        unset: "",
        doc: "The path of the forgot-password page.",
    },
    Key {
        section: "serve",
        name: "login_url",
        kind: "URL | PATH",
        example: Some("\"https://app.example.com/login\""),
        active: false,
        unset: "the page after a reset says to sign in, with no link",
        doc: "The application's sign-in page: the page after a successful reset offers a button to it. An https:// URL (http:// only to a loopback host) or a path on the same site, such as \"/accounts/login/\".",
    },
    Key {
        section: "serve",
        name: "token_attempts",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Failed tries (refused or mismatched passwords) per link per attempt_window before 429; counted in the database, shared by every serve on it.",
    },
    Key {
        section: "serve",
        name: "ip_attempts",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Password submissions (POSTs of the reset form) per client address per attempt_window before 429; counted in memory, per serve process. Forgot-password submissions count against forgot_per_ip instead.",
    },
    Key {
        section: "serve",
        name: "forgot_per_address",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Forgot-password requests per address per attempt_window before 429; counted in the database, shared by every serve on it.",
    },
    Key {
        section: "serve",
        name: "forgot_per_ip",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Forgot-password requests per client address per attempt_window before 429; counted in memory, per serve process.",
    },
    Key {
        section: "serve",
        name: "attempt_window",
        kind: "DURATION",
        example: None,
        active: false,
        unset: "",
        doc: "The window of the limits above.",
    },
    Key {
        section: "serve",
        name: "hash_workers",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Threads that hash passwords; 0 means one per core. Each hash holds [password.argon2] memory_kib.",
    },
    Key {
        section: "serve",
        name: "hash_queue",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Resets waiting for a hashing thread before the page answers 503 with Retry-After.",
    },
    Key {
        section: "serve",
        name: "stop_timeout",
        kind: "DURATION",
        example: None,
        active: false,
        unset: "",
        doc: "On SIGTERM, how long the forgot page's queued mail may take; links it could not send by then are withdrawn, so nobody is left throttled without a mail.",
    },
    Key {
        section: "serve",
        name: "database_timeout",
        kind: "DURATION",
        example: None,
        active: false,
        unset: "",
        doc: "How long a page or /healthz waits for the database, its place in the queue included, before it answers 503 with Retry-After (and counts a database error in /metrics): a server that stops answering without refusing (a network partition) would otherwise hold every page until the kernel gives up. A reset that was already being written when the time ran out may still complete; the link then shows as used. 1s to 10m.",
    },
    Key {
        section: "serve",
        name: "header_timeout",
        kind: "DURATION",
        example: None,
        active: false,
        unset: "",
        doc: "A request's headers must arrive within this long of its first byte (or of the connection); else the connection is closed.",
    },
    Key {
        section: "serve",
        name: "body_timeout",
        kind: "DURATION",
        example: None,
        active: false,
        unset: "",
        doc: "A request's body must arrive within this long of its headers; else the connection is closed and nothing is done.",
    },
    Key {
        section: "serve",
        name: "idle_timeout",
        kind: "DURATION",
        example: None,
        active: false,
        unset: "",
        doc: "A kept-alive connection with no new request is closed after this long.",
    },
    Key {
        section: "serve",
        name: "max_connections",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Open connections at most; at the cap a new connection closes the oldest idle one, or when none is idle the one that has been reading a request's head or body the longest (a slow client; never one whose request is being handled). 0: what the open-file limit leaves (less an eighth of it, at least 64, kept for the database, mail and logs), at most 16384; a larger value than that is refused at start.",
    },
    Key {
        section: "serve",
        name: "limit_table_size",
        kind: "N",
        example: None,
        active: false,
        unset: "",
        doc: "Client addresses (IPv6 by /64) each in-memory limit (ip_attempts, forgot_per_ip) remembers; the per-link and per-email-address limits are counted in the database (pwreset_limits), not in this table. About 100 bytes a key. When full, the oldest key not at its limit is forgotten first, so a flood of addresses cannot lock others out.",
    },
    Key {
        section: "serve",
        name: "socket_mode",
        kind: "MODE",
        example: None,
        active: false,
        unset: "",
        doc: "The mode, in octal, of the Unix socket serve makes for listen = \"unix:...\": 0660 lets the socket's group (put the proxy's user in it) connect.",
    },
    Key {
        section: "serve",
        name: "log_format",
        kind: "\"text\" | \"json\"",
        example: None,
        active: false,
        unset: "",
        doc: "The log on stderr: text, or json (one object a line: time, method, path without the query, status, duration_ms, client, outcome; and the connections cut off and the warnings). Never a token or a password. serve --log-format overrides it.",
    },
    // ---- [ldap]
    Key {
        section: "ldap",
        name: "url",
        kind: "URL",
        example: Some("\"ldaps://ldap.example.com\""),
        active: false,
        unset: "the section must have it (exit 78)",
        doc: "The directory: ldaps:// (TLS from the start), ldap:// (upgraded with StartTLS) or ldapi:// (a local socket). TLS is rustls and always verified.",
    },
    Key {
        section: "ldap",
        name: "starttls",
        kind: "true | false",
        example: Some("true"),
        active: false,
        unset: "true",
        doc: "On an ldap:// URL, upgrade the connection with StartTLS before binding. false is allowed only to a loopback address or ldapi://.",
    },
    Key {
        section: "ldap",
        name: "bind_dn",
        kind: "DN",
        example: Some("\"cn=pwreset,ou=services,dc=example,dc=com\""),
        active: false,
        unset: "the section must have it (exit 78)",
        doc: "The service account pwreset binds as. It must read the people under base_dn (the mail, name and id attributes, pwdChangedTime or pwdLastSet, pwdAccountLockedTime or userAccountControl) and change their passwords; docs/ldap.md has the ACLs.",
    },
    Key {
        section: "ldap",
        name: "bind_password_file",
        kind: "PATH",
        example: Some("\"/etc/pwreset/ldap-password\""),
        active: false,
        unset: "the environment variable PWRESET_LDAP_PASSWORD",
        doc: "A file of mode 0600 whose first line is the bind password.",
    },
    Key {
        section: "ldap",
        name: "base_dn",
        kind: "DN",
        example: Some("\"ou=people,dc=example,dc=com\""),
        active: false,
        unset: "the section must have it (exit 78)",
        doc: "Where the people are: the search base (the whole subtree).",
    },
    Key {
        section: "ldap",
        name: "user_filter",
        kind: "FILTER",
        example: Some("\"(objectClass=inetOrgPerson)\""),
        active: false,
        unset: "(objectClass=inetOrgPerson)",
        doc: "Which entries are people. For a lookup it is ANDed with (mail=ADDRESS), the address escaped as RFC 4515 says; `request --all` uses it alone. On Active Directory: (&(objectCategory=person)(objectClass=user)).",
    },
    Key {
        section: "ldap",
        name: "mail_attribute",
        kind: "ATTRIBUTE",
        example: Some("\"mail\""),
        active: false,
        unset: "mail",
        doc: "The attribute that holds the address. Matching follows the server's rule for it (case-insensitive on the usual schemas); the mail goes to the address the directory holds.",
    },
    Key {
        section: "ldap",
        name: "name_attribute",
        kind: "ATTRIBUTE",
        example: Some("\"cn\""),
        active: false,
        unset: "cn",
        doc: "The name to greet people by.",
    },
    Key {
        section: "ldap",
        name: "id_attribute",
        kind: "ATTRIBUTE",
        example: Some("\"entryUUID\""),
        active: false,
        unset: "entryUUID",
        doc: "What identifies a person in pwreset's tokens and audit trail, across renames: entryUUID (OpenLDAP), nsUniqueId (389 DS), ipaUniqueID (FreeIPA), objectGUID (Active Directory).",
    },
    Key {
        section: "ldap",
        name: "password_change",
        kind: "\"exop\" | \"modify\" | \"ad\"",
        example: Some("\"exop\""),
        active: false,
        unset: "exop",
        doc: "How a new password is set: exop, the Password Modify extended operation (RFC 3062), so the server hashes it and applies its own policy (OpenLDAP ppolicy, 389 DS); modify, a replace of userPassword hashed by pwreset in password_format, for servers without the operation; ad, Active Directory's unicodePwd (the quoted UTF-16LE password, over TLS). A refusal by the server's policy exits 65 with the server's words, and the link still works.",
    },
    Key {
        section: "ldap",
        name: "password_format",
        kind: "\"ssha\" | \"argon2\" | \"crypt\"",
        example: Some("\"ssha\""),
        active: false,
        unset: "ssha",
        doc: "For password_change = \"modify\": the userPassword scheme written: {SSHA}, {ARGON2} (OpenLDAP's argon2 module, 389 DS) or {CRYPT} (SHA-512 crypt).",
    },
    Key {
        section: "ldap",
        name: "ca_file",
        kind: "PATH",
        example: Some("\"/etc/pwreset/ldap-ca.pem\""),
        active: false,
        unset: "the public roots only",
        doc: "Certificates (PEM) trusted besides the public roots, for a directory with a private CA.",
    },
];

/// The full dotted name of a key: `mail.smtp.host`.
pub fn full_name(k: &Key) -> String {
    if k.section.is_empty() {
        k.name.to_owned()
    } else {
        format!("{}.{}", k.section, k.name)
    }
}

/// A hint for a key the file has but pwreset does not know: `section` is where it was found
/// (dotted, `""` for the top level), `name` the unknown key. A misplaced or misspelt section
/// gets its right place (`[smtp]` -> `[mail.smtp]`), a key that belongs in another section gets
/// that section, a misspelt key the closest known one.
pub fn hint(section: &str, name: &str) -> Option<String> {
    let here = |s: &str| {
        if section.is_empty() {
            s.to_owned()
        } else {
            format!("{section}.{s}")
        }
    };
    // A known section written in the wrong place: `[smtp]`, `[argon2]`, `[mail.argon2]`.
    let sections: Vec<&str> = SECTIONS
        .iter()
        .map(|s| s.name)
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(s) = sections
        .iter()
        .find(|s| s.rsplit('.').next() == Some(name) && **s != here(name))
    {
        return Some(format!("did you mean `[{s}]`?"));
    }
    // A key of another section.
    let elsewhere: Vec<&Key> = KEYS
        .iter()
        .filter(|k| k.name == name && k.section != section)
        .collect();
    if let [k] = elsewhere[..] {
        return Some(if k.section.is_empty() {
            format!("`{name}` belongs at the top of the file, before any [section]")
        } else {
            format!("`{name}` belongs in `[{}]`", k.section)
        });
    }
    if elsewhere.len() > 1 {
        let list: Vec<String> = elsewhere
            .iter()
            .map(|k| format!("`[{}]`", k.section))
            .collect();
        return Some(format!("`{name}` belongs in {}", list.join(" or ")));
    }
    // A misspelling of a key or a subsection here.
    let mut candidates: Vec<(String, String)> = KEYS
        .iter()
        .filter(|k| k.section == section)
        .map(|k| (k.name.to_owned(), format!("`{}`", k.name)))
        .collect();
    for s in &sections {
        let parent = s.rsplit_once('.').map_or("", |(p, _)| p);
        if parent == section {
            let leaf = s.rsplit('.').next().unwrap_or(s);
            candidates.push((leaf.to_owned(), format!("`[{s}]`")));
        }
    }
    let lower = name.to_ascii_lowercase();
    // A shortened key (`memory` for `memory_kib`) is as good as a typo.
    if lower.len() >= 3
        && let Some((_, shown)) = candidates.iter().find(|(c, _)| c.starts_with(&lower))
    {
        return Some(format!("did you mean {shown}?"));
    }
    let (best, shown) = candidates
        .iter()
        .map(|(c, shown)| (distance(&lower, c), shown))
        .min_by_key(|(d, _)| *d)?;
    // Close enough to be the same word mistyped: a third of its letters, at least one.
    (best <= (name.chars().count() / 3).max(1)).then(|| format!("did you mean {shown}?"))
}

/// Edit distance on characters, a swap of two neighbours counting as one edit (optimal string
/// alignment): `hots` is one edit from `host`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        for (section, name, want) in [
            ("", "smtp", "`[mail.smtp]`"),
            ("", "argon2", "`[password.argon2]`"),
            ("", "bcrypt", "`[password.bcrypt]`"),
            ("", "file", "`[mail.file]`"),
            ("", "sendmail", "`[mail.sendmail]`"),
            ("mail", "argon2", "`[password.argon2]`"),
            ("", "host", "`[mail.smtp]`"),
            ("", "pasword", "`[password]`"),
            ("mail.smtp", "hots", "`host`"),
            ("users", "emial_column", "`email_column`"),
            ("", "token_tll", "`token_ttl`"),
            ("password.argon2", "memory", "`memory_kib`"),
            ("mail", "base_url", "top of the file"),
        ] {
            let got = hint(section, name).unwrap_or_default();
            assert!(got.contains(want), "{section}/{name}: {got}");
        }
        assert_eq!(hint("", "completely_unrelated"), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn keys_are_in_section_order_and_unique() {
        let order: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
        let mut last = 0;
        let mut seen = std::collections::HashSet::new();
        for k in KEYS {
            let i = order
                .iter()
                .position(|s| *s == k.section)
                .unwrap_or_else(|| panic!("{}: no such section", full_name(k)));
            assert!(i >= last, "{} is out of section order", full_name(k));
            last = i;
            assert!(seen.insert(full_name(k)), "{} twice", full_name(k));
        }
    }
}
