
use builtin;
use str;

set edit:completion:arg-completer[pwreset] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'pwreset'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'pwreset'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Create the database and the tool''s tables, or migrate them; check the users table'
            cand user 'Add or list users (the tool''s own users table)'
            cand request 'Email a password reset link to one or more users'
            cand verify 'Say whether a token is usable and whose it is, without consuming it'
            cand reset 'Set a new password with a token, at an interactive prompt'
            cand purge-expired 'Delete tokens that can no longer be used (expired, used or revoked)'
            cand audit 'Show the audit trail, newest first'
            cand revoke 'Revoke one token, or every open token of a user'
            cand doctor 'Check the config, the database, the users mapping, mail delivery and the hash cost'
            cand config 'Print an example config, or the settings in effect and where each came from'
            cand completions 'Print the completion script for a shell'
            cand serve 'Serve the page the emailed link opens, and the forgot-password page'
            cand demo 'Run the whole flow on a throwaway database, printing each step'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pwreset;init'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;user'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help'
            cand --help 'Print help'
            cand add 'Add a user with no usable password (they set it through a reset link)'
            cand list 'List users: id, email, whether a password is set, open tokens'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pwreset;user;add'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand --name 'A display name'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'pwreset;user;list'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand --json 'Print a JSON array instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'pwreset;user;help'= {
            cand add 'Add a user with no usable password (they set it through a reset link)'
            cand list 'List users: id, email, whether a password is set, open tokens'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pwreset;user;help;add'= {
        }
        &'pwreset;user;help;list'= {
        }
        &'pwreset;user;help;help'= {
        }
        &'pwreset;request'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand --from-file 'Read addresses from a file, one per line (`-` for stdin); blank lines and lines starting with # are skipped. Addresses given as arguments are served too'
            cand --ttl 'How long the link stays valid, e.g. 30m, 2h [default: token_ttl from the config, 1h]'
            cand --locale 'Write the mail in this language for this run (en, de, fr, es, or a language folder of template_dir) [default: each user''s locale_column, else English]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand --all 'Every user in the users table'
            cand --print-link 'Also print each link on stdout'
            cand --no-email 'Make the link without sending any mail (implies --print-link)'
            cand --force 'Skip the per-user throttle (request_throttle)'
            cand --dry-run 'Say who would get a link, and send and store nothing (the throttle is not consulted)'
            cand -y 'Do not ask before sending links to every user (--all) or to more than 100 addresses from a file; without a terminal pwreset never asks'
            cand --yes 'Do not ask before sending links to every user (--all) or to more than 100 addresses from a file; without a terminal pwreset never asks'
            cand --json 'One JSON object per user per line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;verify'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand --json 'Print one JSON object'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;reset'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand --password-stdin 'Read the new password from one line of stdin instead of prompting (for automation)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;purge-expired'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand --older-than 'Only tokens dead for longer than this, e.g. 7d'
            cand --batch-size 'Tokens deleted per transaction [default: 5000 on SQLite and MariaDB/MySQL, where a batch holds a lock others may wait for; 50000 on PostgreSQL, where it locks only dead tokens]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand --dry-run 'Count what would be deleted, delete nothing'
            cand --json 'Print one JSON object'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;audit'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand --user 'Only records about this user'
            cand --since 'Only records newer than this, e.g. 24h, 7d'
            cand --limit 'At most this many records'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand --json 'Print a JSON array'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;revoke'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand --user 'Revoke every open token of this user instead'
            cand --reason 'Why, for the audit trail and for `verify` (one line, at most 200 characters)'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;doctor'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand --send-test 'Also send one real test message to this address'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand --json 'Print a JSON array of {"check", "status", "message", "fix"}'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;config'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help'
            cand --help 'Print help'
            cand example 'Print a complete config with every key, commented'
            cand show 'Print every setting in effect and where it came from'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pwreset;config;example'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;config;show'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;config;help'= {
            cand example 'Print a complete config with every key, commented'
            cand show 'Print every setting in effect and where it came from'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pwreset;config;help;example'= {
        }
        &'pwreset;config;help;show'= {
        }
        &'pwreset;config;help;help'= {
        }
        &'pwreset;completions'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'pwreset;serve'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand --listen 'Address and port to listen on, e.g. 127.0.0.1:8080 or [::1]:8080, or a Unix socket, unix:/run/pwreset/serve.sock [default: [serve] listen, 127.0.0.1:8080]; ignored when systemd passes a socket'
            cand --log-format 'The log on stderr: text, or one JSON object a line [default: [serve] log_format, text]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;demo'= {
            cand -c 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --config 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]'
            cand --db 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]'
            cand -q 'Print less on stderr (nothing but errors)'
            cand --quiet 'Print less on stderr (nothing but errors)'
            cand -v 'Print more on stderr'
            cand --verbose 'Print more on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'pwreset;help'= {
            cand init 'Create the database and the tool''s tables, or migrate them; check the users table'
            cand user 'Add or list users (the tool''s own users table)'
            cand request 'Email a password reset link to one or more users'
            cand verify 'Say whether a token is usable and whose it is, without consuming it'
            cand reset 'Set a new password with a token, at an interactive prompt'
            cand purge-expired 'Delete tokens that can no longer be used (expired, used or revoked)'
            cand audit 'Show the audit trail, newest first'
            cand revoke 'Revoke one token, or every open token of a user'
            cand doctor 'Check the config, the database, the users mapping, mail delivery and the hash cost'
            cand config 'Print an example config, or the settings in effect and where each came from'
            cand completions 'Print the completion script for a shell'
            cand serve 'Serve the page the emailed link opens, and the forgot-password page'
            cand demo 'Run the whole flow on a throwaway database, printing each step'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'pwreset;help;init'= {
        }
        &'pwreset;help;user'= {
            cand add 'Add a user with no usable password (they set it through a reset link)'
            cand list 'List users: id, email, whether a password is set, open tokens'
        }
        &'pwreset;help;user;add'= {
        }
        &'pwreset;help;user;list'= {
        }
        &'pwreset;help;request'= {
        }
        &'pwreset;help;verify'= {
        }
        &'pwreset;help;reset'= {
        }
        &'pwreset;help;purge-expired'= {
        }
        &'pwreset;help;audit'= {
        }
        &'pwreset;help;revoke'= {
        }
        &'pwreset;help;doctor'= {
        }
        &'pwreset;help;config'= {
            cand example 'Print a complete config with every key, commented'
            cand show 'Print every setting in effect and where it came from'
        }
        &'pwreset;help;config;example'= {
        }
        &'pwreset;help;config;show'= {
        }
        &'pwreset;help;completions'= {
        }
        &'pwreset;help;serve'= {
        }
        &'pwreset;help;demo'= {
        }
        &'pwreset;help;help'= {
        }
    ]
    $completions[$command]
}
