
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'pwreset' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'pwreset'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'pwreset' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create the database and the tool''s tables, or migrate them; check the users table')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Add or list users (the tool''s own users table)')
            [CompletionResult]::new('request', 'request', [CompletionResultType]::ParameterValue, 'Email a password reset link to one or more users')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Say whether a token is usable and whose it is, without consuming it')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Set a new password with a token, at an interactive prompt')
            [CompletionResult]::new('purge-expired', 'purge-expired', [CompletionResultType]::ParameterValue, 'Delete tokens that can no longer be used (expired, used or revoked)')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Show the audit trail, newest first')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke one token, or every open token of a user')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the config, the database, the users mapping, mail delivery and the hash cost')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Print an example config, or the settings in effect and where each came from')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the page the emailed link opens, and the forgot-password page')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run the whole flow on a throwaway database, printing each step')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pwreset;init' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;user' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a user with no usable password (they set it through a reset link)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users: id, email, whether a password is set, open tokens')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pwreset;user;add' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A display name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pwreset;user;list' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array instead of a table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pwreset;user;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a user with no usable password (they set it through a reset link)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users: id, email, whether a password is set, open tokens')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pwreset;user;help;add' {
            break
        }
        'pwreset;user;help;list' {
            break
        }
        'pwreset;user;help;help' {
            break
        }
        'pwreset;request' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('--from-file', '--from-file', [CompletionResultType]::ParameterName, 'Read addresses from a file, one per line (`-` for stdin); blank lines and lines starting with # are skipped. Addresses given as arguments are served too')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'How long the link stays valid, e.g. 30m, 2h [default: token_ttl from the config, 1h]')
            [CompletionResult]::new('--locale', '--locale', [CompletionResultType]::ParameterName, 'Write the mail in this language for this run (en, de, fr, es, or a language folder of template_dir) [default: each user''s locale_column, else English]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Every user in the users table')
            [CompletionResult]::new('--print-link', '--print-link', [CompletionResultType]::ParameterName, 'Also print each link on stdout')
            [CompletionResult]::new('--no-email', '--no-email', [CompletionResultType]::ParameterName, 'Make the link without sending any mail (implies --print-link)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Skip the per-user throttle (request_throttle)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Say who would get a link, and send and store nothing (the throttle is not consulted)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask before sending links to every user (--all) or to more than 100 addresses from a file; without a terminal pwreset never asks')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask before sending links to every user (--all) or to more than 100 addresses from a file; without a terminal pwreset never asks')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per user per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;verify' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;reset' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the new password from one line of stdin instead of prompting (for automation)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;purge-expired' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Only tokens dead for longer than this, e.g. 7d')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Tokens deleted per transaction [default: 5000 on SQLite and MariaDB/MySQL, where a batch holds a lock others may wait for; 50000 on PostgreSQL, where it locks only dead tokens]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Count what would be deleted, delete nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;audit' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only records about this user')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only records newer than this, e.g. 24h, 7d')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many records')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;revoke' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Revoke every open token of this user instead')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why, for the audit trail and for `verify` (one line, at most 200 characters)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;doctor' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('--send-test', '--send-test', [CompletionResultType]::ParameterName, 'Also send one real test message to this address')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array of {"check", "status", "message", "fix"}')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;config' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('example', 'example', [CompletionResultType]::ParameterValue, 'Print a complete config with every key, commented')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print every setting in effect and where it came from')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pwreset;config;example' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;config;show' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;config;help' {
            [CompletionResult]::new('example', 'example', [CompletionResultType]::ParameterValue, 'Print a complete config with every key, commented')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print every setting in effect and where it came from')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pwreset;config;help;example' {
            break
        }
        'pwreset;config;help;show' {
            break
        }
        'pwreset;config;help;help' {
            break
        }
        'pwreset;completions' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pwreset;serve' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address and port to listen on, e.g. 127.0.0.1:8080 or [::1]:8080, or a Unix socket, unix:/run/pwreset/serve.sock [default: [serve] listen, 127.0.0.1:8080]; ignored when systemd passes a socket')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'The log on stderr: text, or one JSON object a line [default: [serve] log_format, text]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;demo' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print less on stderr (nothing but errors)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'pwreset;help' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create the database and the tool''s tables, or migrate them; check the users table')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Add or list users (the tool''s own users table)')
            [CompletionResult]::new('request', 'request', [CompletionResultType]::ParameterValue, 'Email a password reset link to one or more users')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Say whether a token is usable and whose it is, without consuming it')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Set a new password with a token, at an interactive prompt')
            [CompletionResult]::new('purge-expired', 'purge-expired', [CompletionResultType]::ParameterValue, 'Delete tokens that can no longer be used (expired, used or revoked)')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Show the audit trail, newest first')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke one token, or every open token of a user')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the config, the database, the users mapping, mail delivery and the hash cost')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Print an example config, or the settings in effect and where each came from')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the page the emailed link opens, and the forgot-password page')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run the whole flow on a throwaway database, printing each step')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pwreset;help;init' {
            break
        }
        'pwreset;help;user' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a user with no usable password (they set it through a reset link)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users: id, email, whether a password is set, open tokens')
            break
        }
        'pwreset;help;user;add' {
            break
        }
        'pwreset;help;user;list' {
            break
        }
        'pwreset;help;request' {
            break
        }
        'pwreset;help;verify' {
            break
        }
        'pwreset;help;reset' {
            break
        }
        'pwreset;help;purge-expired' {
            break
        }
        'pwreset;help;audit' {
            break
        }
        'pwreset;help;revoke' {
            break
        }
        'pwreset;help;doctor' {
            break
        }
        'pwreset;help;config' {
            [CompletionResult]::new('example', 'example', [CompletionResultType]::ParameterValue, 'Print a complete config with every key, commented')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print every setting in effect and where it came from')
            break
        }
        'pwreset;help;config;example' {
            break
        }
        'pwreset;help;config;show' {
            break
        }
        'pwreset;help;completions' {
            break
        }
        'pwreset;help;serve' {
            break
        }
        'pwreset;help;demo' {
            break
        }
        'pwreset;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
