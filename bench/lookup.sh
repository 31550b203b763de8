#!/usr/bin/env bash
# Address lookups on an application's users table: does the cost grow with the table?
# An `accounts` table with a UNIQUE index on its email column (as every framework makes), of
# 10,000 and of 1,000,000 rows, mapped in [users]; each measurement runs on both.
#
#   bash bench/lookup.sh                 # builds the release binary
#   BIN=/path/to/pwreset bash bench/lookup.sh   # measure another build (e.g. an older one)
#
# Needs: sqlite3, hyperfine, python3 (installed with apt-get when missing). Times are the fastest
# of RUNS runs (default 5): the least disturbed by whatever else the machine is doing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v hyperfine >/dev/null || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  cargo build --profile dist --quiet   # the build that ships (LTO), see Cargo.toml
  BIN=$PWD/target/dist/pwreset
fi
OUT=${OUT:-$PWD/bench/out-lookup}
rm -rf "$OUT" && mkdir -p "$OUT" && chmod 700 "$OUT"
now=$(date +%s)

make_db() { # name, rows
  local db=$OUT/$1.db
  cat > "$OUT/$1.toml" <<CONF
database = "$db"
base_url = "https://accounts.example.com/reset_password"
request_throttle = "0s"
[users]
table = "accounts"
id_column = "id"
email_column = "email"
password_column = "password"
[mail]
transport = "file"
[mail.file]
dir = "$OUT/outbox"
CONF
  sqlite3 "$db" <<SQL
PRAGMA journal_mode=WAL;
CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, password TEXT, created_at INTEGER);
CREATE UNIQUE INDEX accounts_email ON accounts(email);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
INSERT INTO accounts (id, email, password, created_at)
SELECT i, 'user' || i || '@example.com', NULL, $now FROM n;
COMMIT;
SQL
  chmod 600 "$db"
  PWRESET_CONFIG=$OUT/$1.toml "$BIN" -q init
}
make_db small 10000
make_db large 1000000

# 1,000 addresses stored exactly as typed, spread over the first 10,000 rows.
python3 - "$OUT" <<'PY'
import sys, random
out = sys.argv[1]
random.seed(7)
ids = random.sample(range(1, 10001), 1000)
exact = [f"user{i}@example.com" for i in ids]
open(f"{out}/exact.txt", "w").write("\n".join(exact) + "\n")
# 10 of them differ from the stored address only in case or width.
mixed = list(exact)
for k in range(10):
    a = mixed[k * 100]
    if k % 2:
        mixed[k * 100] = a.upper()
    else:
        mixed[k * 100] = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() and c.islower() else c for c in a[:4]) + a[4:]
open(f"{out}/mixed.txt", "w").write("\n".join(mixed) + "\n")
PY

run() { # label, config, args...
  local label=$1 conf=$2; shift 2
  hyperfine -N --style none --warmup 1 --runs "${RUNS:-5}" --export-json "$OUT/$label.json" \
    -n "$label" "env PWRESET_CONFIG=$OUT/$conf.toml $BIN -q $*" >/dev/null 2>&1 || {
      echo "failed: $label" >&2; env PWRESET_CONFIG="$OUT/$conf.toml" "$BIN" "$@" >/dev/null; exit 1; }
  python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['results'][0]['min'])" "$OUT/$label.json"
}

one_s=$(run one-small small request --no-email --force user5000@example.com)
one_l=$(run one-large large request --no-email --force user5000@example.com)
k_s=$(run file-small small request --no-email --force --from-file "$OUT/exact.txt")
k_l=$(run file-large large request --no-email --force --from-file "$OUT/exact.txt")
m_l=$(run mixed-large large request --no-email --force --from-file "$OUT/mixed.txt")
# 10 of the stored addresses in capitals, typed in lower case: neither index lookup finds them,
# so the run makes its one scan for all ten.
python3 - "$OUT" <<'PY'
import sys
out = sys.argv[1]
exact = open(f"{out}/exact.txt").read().split()
ids = [a[len("user"):a.index("@")] for a in exact[5::100][:10]]
open(f"{out}/upper.sql", "w").write(
    "UPDATE accounts SET email = upper(email) WHERE id IN (%s);\n" % ",".join(ids))
PY
sqlite3 "$OUT/large.db" < "$OUT/upper.sql"
s_l=$(run stored-case-large large request --no-email --force --from-file "$OUT/exact.txt")
# One full scan: the sqlite3 shell folding every stored address once.
scan=$(hyperfine -N --style none --warmup 1 --runs 5 --export-json "$OUT/scan.json" \
  "sqlite3 -readonly $OUT/large.db \"SELECT count(*) FROM accounts WHERE lower(email) = 'user5000@example.com'\"" >/dev/null 2>&1 &&
  python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['results'][0]['min'])" "$OUT/scan.json")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "Machine: $(nproc) cores, $(uname -m); binary: $BIN"
echo
echo "| measure | 10,000 rows | 1,000,000 rows | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| request --no-email, one user | ${one_s} s | ${one_l} s | $(ratio "$one_l" "$one_s")x | <= 2x |"
echo "| request --from-file, 1,000 exact addresses | ${k_s} s | ${k_l} s | $(ratio "$k_l" "$k_s")x | <= 2x |"
echo "| the same with 10 typed in another case or width | | ${m_l} s | +$(awk -v a="$m_l" -v b="$k_l" 'BEGIN { printf "%.3f", a - b }') s over exact | <= one full scan (sqlite3 lower(): ${scan} s) |"
echo "| the same with 10 stored in capitals (one scan) | | ${s_l} s | +$(awk -v a="$s_l" -v b="$k_l" 'BEGIN { printf "%.3f", a - b }') s over exact | <= one full scan (sqlite3 lower(): ${scan} s) |"
