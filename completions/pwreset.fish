# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pwreset_global_optspecs
    string join \n c/config= db= q/quiet v/verbose h/help V/version
end

function __fish_pwreset_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pwreset_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pwreset_using_subcommand
    set -l cmd (__fish_pwreset_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pwreset -n "__fish_pwreset_needs_command" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_needs_command" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_needs_command" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_needs_command" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_needs_command" -s V -l version -d 'Print version'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "init" -d 'Create the database and the tool\'s tables, or migrate them; check the users table'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "user" -d 'Add or list users (the tool\'s own users table)'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "request" -d 'Email a password reset link to one or more users'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "verify" -d 'Say whether a token is usable and whose it is, without consuming it'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "reset" -d 'Set a new password with a token, at an interactive prompt'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "purge-expired" -d 'Delete tokens that can no longer be used (expired, used or revoked)'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "audit" -d 'Show the audit trail, newest first'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "revoke" -d 'Revoke one token, or every open token of a user'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "doctor" -d 'Check the config, the database, the users mapping, mail delivery and the hash cost'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "config" -d 'Print an example config, or the settings in effect and where each came from'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "completions" -d 'Print the completion script for a shell'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "serve" -d 'Serve the page the emailed link opens, and the forgot-password page'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "demo" -d 'Run the whole flow on a throwaway database, printing each step'
complete -c pwreset -n "__fish_pwreset_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pwreset -n "__fish_pwreset_using_subcommand init" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand init" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand init" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand init" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -s h -l help -d 'Print help'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -f -a "add" -d 'Add a user with no usable password (they set it through a reset link)'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -f -a "list" -d 'List users: id, email, whether a password is set, open tokens'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and not __fish_seen_subcommand_from add list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from add" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from add" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from add" -l name -d 'A display name' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from add" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from list" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from list" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from list" -l json -d 'Print a JSON array instead of a table'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a user with no usable password (they set it through a reset link)'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List users: id, email, whether a password is set, open tokens'
complete -c pwreset -n "__fish_pwreset_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l from-file -d 'Read addresses from a file, one per line (`-` for stdin); blank lines and lines starting with # are skipped. Addresses given as arguments are served too' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l ttl -d 'How long the link stays valid, e.g. 30m, 2h [default: token_ttl from the config, 1h]' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l locale -d 'Write the mail in this language for this run (en, de, fr, es, or a language folder of template_dir) [default: each user\'s locale_column, else English]' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l all -d 'Every user in the users table'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l print-link -d 'Also print each link on stdout'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l no-email -d 'Make the link without sending any mail (implies --print-link)'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l force -d 'Skip the per-user throttle (request_throttle)'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l dry-run -d 'Say who would get a link, and send and store nothing (the throttle is not consulted)'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -s y -l yes -d 'Do not ask before sending links to every user (--all) or to more than 100 addresses from a file; without a terminal pwreset never asks'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -l json -d 'One JSON object per user per line'
complete -c pwreset -n "__fish_pwreset_using_subcommand request" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand verify" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand verify" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand verify" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand verify" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand verify" -l json -d 'Print one JSON object'
complete -c pwreset -n "__fish_pwreset_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand reset" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand reset" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand reset" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand reset" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand reset" -l password-stdin -d 'Read the new password from one line of stdin instead of prompting (for automation)'
complete -c pwreset -n "__fish_pwreset_using_subcommand reset" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -l older-than -d 'Only tokens dead for longer than this, e.g. 7d' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -l batch-size -d 'Tokens deleted per transaction [default: 5000 on SQLite and MariaDB/MySQL, where a batch holds a lock others may wait for; 50000 on PostgreSQL, where it locks only dead tokens]' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -l dry-run -d 'Count what would be deleted, delete nothing'
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -l json -d 'Print one JSON object'
complete -c pwreset -n "__fish_pwreset_using_subcommand purge-expired" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -l user -d 'Only records about this user' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -l since -d 'Only records newer than this, e.g. 24h, 7d' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -l limit -d 'At most this many records' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -l json -d 'Print a JSON array'
complete -c pwreset -n "__fish_pwreset_using_subcommand audit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand revoke" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand revoke" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand revoke" -l user -d 'Revoke every open token of this user instead' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand revoke" -l reason -d 'Why, for the audit trail and for `verify` (one line, at most 200 characters)' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand revoke" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand revoke" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand doctor" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand doctor" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand doctor" -l send-test -d 'Also send one real test message to this address' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand doctor" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand doctor" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand doctor" -l json -d 'Print a JSON array of {"check", "status", "message", "fix"}'
complete -c pwreset -n "__fish_pwreset_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -s h -l help -d 'Print help'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -f -a "example" -d 'Print a complete config with every key, commented'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -f -a "show" -d 'Print every setting in effect and where it came from'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and not __fish_seen_subcommand_from example show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from example" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from example" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from example" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from example" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from example" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from show" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from show" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "example" -d 'Print a complete config with every key, commented'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print every setting in effect and where it came from'
complete -c pwreset -n "__fish_pwreset_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pwreset -n "__fish_pwreset_using_subcommand completions" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand completions" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand completions" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand completions" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand completions" -s h -l help -d 'Print help'
complete -c pwreset -n "__fish_pwreset_using_subcommand serve" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand serve" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand serve" -l listen -d 'Address and port to listen on, e.g. 127.0.0.1:8080 or [::1]:8080, or a Unix socket, unix:/run/pwreset/serve.sock [default: [serve] listen, 127.0.0.1:8080]; ignored when systemd passes a socket' -r
complete -c pwreset -n "__fish_pwreset_using_subcommand serve" -l log-format -d 'The log on stderr: text, or one JSON object a line [default: [serve] log_format, text]' -r -f -a "text\t''
json\t''"
complete -c pwreset -n "__fish_pwreset_using_subcommand serve" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand serve" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand demo" -s c -l config -d 'TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then /etc/pwreset/config.toml]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand demo" -l db -d 'The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL); overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]' -r -F
complete -c pwreset -n "__fish_pwreset_using_subcommand demo" -s q -l quiet -d 'Print less on stderr (nothing but errors)'
complete -c pwreset -n "__fish_pwreset_using_subcommand demo" -s v -l verbose -d 'Print more on stderr'
complete -c pwreset -n "__fish_pwreset_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "init" -d 'Create the database and the tool\'s tables, or migrate them; check the users table'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "user" -d 'Add or list users (the tool\'s own users table)'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "request" -d 'Email a password reset link to one or more users'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "verify" -d 'Say whether a token is usable and whose it is, without consuming it'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "reset" -d 'Set a new password with a token, at an interactive prompt'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "purge-expired" -d 'Delete tokens that can no longer be used (expired, used or revoked)'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "audit" -d 'Show the audit trail, newest first'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "revoke" -d 'Revoke one token, or every open token of a user'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "doctor" -d 'Check the config, the database, the users mapping, mail delivery and the hash cost'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "config" -d 'Print an example config, or the settings in effect and where each came from'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "completions" -d 'Print the completion script for a shell'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "serve" -d 'Serve the page the emailed link opens, and the forgot-password page'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "demo" -d 'Run the whole flow on a throwaway database, printing each step'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and not __fish_seen_subcommand_from init user request verify reset purge-expired audit revoke doctor config completions serve demo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Add a user with no usable password (they set it through a reset link)'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List users: id, email, whether a password is set, open tokens'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "example" -d 'Print a complete config with every key, commented'
complete -c pwreset -n "__fish_pwreset_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print every setting in effect and where it came from'
