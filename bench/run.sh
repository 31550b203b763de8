#!/usr/bin/env bash
# Scale benchmarks for pwreset, each beside the same work done by the sqlite3 shell on a copy
# of the same data. Prints a Markdown table (the one in docs/benchmarks.md).
#
#   bash bench/run.sh            # 1,000,000 users / 1,100,000 tokens (a few minutes)
#   N=100000 bash bench/run.sh   # smaller, for a quick look
#   BIN=/path/to/pwreset bash bench/run.sh   # measure another build
#
# Needs: sqlite3, hyperfine, GNU time (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
LIVE=$(( N / 10 ))
need=()
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${BIN:-}" ]; then
  cargo build --profile dist --quiet   # the build that ships (LTO), see Cargo.toml
  BIN=$PWD/target/dist/pwreset
fi
OUT=${OUT:-$PWD/bench/out}
rm -rf "$OUT" && mkdir -p "$OUT"
DB=$OUT/base.db
cat > "$OUT/config.toml" <<CONF
database = "$DB"
base_url = "https://accounts.example.com/reset_password"
request_throttle = "60s"
[mail]
transport = "file"
[mail.file]
dir = "$OUT/outbox"
CONF
export PWRESET_CONFIG=$OUT/config.toml
now=$(date +%s)

# -- data: N users; tokens: N expired + LIVE live -----------------------------------------
"$BIN" -q init
sqlite3 "$DB" <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO users (email, email_key, created_at)
SELECT 'user' || i || '@example.com', 'user' || i || '@example.com', $now FROM n;
COMMIT;
SQL

# Rough time of a command (seconds) and its peak RSS (KiB), via GNU time.
measure() { # label, command...
  local label=$1; shift
  sync   # start with the copies and loads before it written back, for either side alike
  /usr/bin/time -f "%e %M" -o "$OUT/time.$label" "$@" > /dev/null
  read -r secs rss < "$OUT/time.$label"
  echo "$secs $rss"
}

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }

# -- 1. request --all --no-email vs a replay of the same rows ------------------------------
# The same rows are everything the request wrote (as the PostgreSQL and MariaDB benches count
# them): a token, a throttle row and an audit row per user, replayed as multi-row INSERT
# statements (1,000 rows each) in one transaction; and, beside it, the token rows alone.
cp "$DB" "$OUT/req.db"
read -r t_req rss_req < <(measure req "$BIN" --db "$OUT/req.db" request --all --no-email)
python3 - "$OUT/req.db" "$OUT/rows.sql" "$OUT/tokens.sql" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1])
def lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes):
        return "x'" + v.hex() + "'"
    return "'" + str(v).replace("'", "''") + "'"
TABLES = {
    "pwreset_tokens": "digest, user_id, binding, created_at, expires_at, dead_at, run_id, batch",
    "pwreset_throttle": "user_id, last_at, run_id",
    "pwreset_audit": "at, actor, action, user_id, email, outcome, detail",
}
def dump(path, names):
    with open(path, "w") as out:
        out.write("PRAGMA synchronous=NORMAL;\nBEGIN;\n")
        for name in names:
            cols = TABLES[name]
            # In storage order (the throttle table has no rowid: its key is the user id).
            rows = src.execute(f"SELECT {cols} FROM {name}")
            while True:
                batch = rows.fetchmany(1000)
                if not batch:
                    break
                out.write(f"INSERT INTO {name} ({cols}) VALUES\n")
                out.write(",\n".join("(" + ",".join(lit(v) for v in r) + ")" for r in batch))
                out.write(";\n")
        out.write("COMMIT;\n")
dump(sys.argv[2], ["pwreset_tokens", "pwreset_throttle", "pwreset_audit"])
dump(sys.argv[3], ["pwreset_tokens"])
PY
cp "$DB" "$OUT/raw.db"
read -r t_raw rss_raw < <(measure raw sqlite3 "$OUT/raw.db" ".read $OUT/rows.sql")
cp "$DB" "$OUT/raw-tokens.db"
read -r t_tok _ < <(measure tokens sqlite3 "$OUT/raw-tokens.db" ".read $OUT/tokens.sql")
rate_req=$(awk -v n="$N" -v t="$t_req" 'BEGIN { printf "%.0f", n / t }')
rate_raw=$(awk -v n="$N" -v t="$t_raw" 'BEGIN { printf "%.0f", n / t }')
ratio=$(awk -v a="$t_raw" -v b="$t_req" 'BEGIN { printf "%.2f", a / b }')
ratio_tok=$(awk -v a="$t_tok" -v b="$t_req" 'BEGIN { printf "%.2f", a / b }')
row "request --all --no-email, $N users" "${t_req}s ($rate_req users/s), peak RSS ${rss_req} KiB" "${t_raw}s ($rate_raw users/s): multi-row INSERTs of the same token, throttle and audit rows; ${t_tok}s for the token rows alone" "${ratio}x the replay's rate (${ratio_tok}x the token rows' alone)" ">= 0.8x"
# The floor: rows made inside SQLite, nothing parsed (no real tokens, no audit rows).
cp "$DB" "$OUT/floor.db"
read -r t_floor _ < <(measure floor sqlite3 "$OUT/floor.db" "PRAGMA synchronous=NORMAL; BEGIN; INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at) SELECT randomblob(32), id, randomblob(16), $now, $now + 3600, $now + 3600 FROM users; COMMIT;")
rate_floor=$(awk -v n="$N" -v t="$t_floor" 'BEGIN { printf "%.0f", n / t }')
ratio=$(awk -v a="$rate_req" -v b="$rate_floor" 'BEGIN { printf "%.2f", a / b }')
row "(same, vs INSERT ... SELECT randomblob())" "" "${t_floor}s ($rate_floor rows/s)" "${ratio}x" "(for reference)"

# -- 2. purge-expired of N expired tokens out of N + LIVE vs one DELETE ---------------------
sqlite3 "$DB" <<SQL
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
SELECT randomblob(32), i, randomblob(16), $now - 7200, $now - 3600, $now - 3600 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $LIVE)
INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
SELECT randomblob(32), i, randomblob(16), $now, $now + 3600, $now + 3600 FROM n;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
cp "$DB" "$OUT/purge.db"
read -r t_purge rss_purge < <(measure purge "$BIN" --db "$OUT/purge.db" purge-expired)
cp "$DB" "$OUT/delete.db"
read -r t_del rss_del < <(measure delete sqlite3 "$OUT/delete.db" "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; DELETE FROM pwreset_tokens WHERE dead_at <= $now;")
ratio=$(awk -v a="$t_purge" -v b="$t_del" 'BEGIN { printf "%.2f", a / b }')
row "purge-expired, $N of $((N + LIVE)) tokens" "${t_purge}s, peak RSS ${rss_purge} KiB" "${t_del}s, peak RSS ${rss_del} KiB" "${ratio}x the raw time" "<= 1.1x, RSS < 64 MiB"

# -- 3. verify with N + LIVE tokens stored vs a sqlite3 lookup process ----------------------
link=$("$BIN" request --no-email --force user1@example.com)
token=${link##*token=}
id=$(sqlite3 "$DB" "SELECT max(id) FROM pwreset_tokens")
digest=$(sqlite3 "$DB" "SELECT hex(digest) FROM pwreset_tokens WHERE id = $id")
# The same lookup verify does, by the sqlite3 shell: one process per lookup, like verify.
cat > "$OUT/lookup.sql" <<SQL
SELECT t.user_id, u.email, u.password_hash, t.binding, t.created_at, t.expires_at, t.used_at, t.revoked_at
  FROM pwreset_tokens t LEFT JOIN users u ON u.id = t.user_id
 WHERE t.id = $id AND t.digest = x'$digest';
SQL
# As for the timed steps: the copies and purges before written back, for either side alike.
sync
# Twice, in the order pwreset, sqlite3, sqlite3, pwreset, 150 runs each time: this machine's
# speed drifts within a minute, and a side measured only first or only second takes the drift.
for order in "pwreset sqlite3" "sqlite3 pwreset"; do
  cmds=()
  for side in $order; do
    case $side in
      pwreset) cmds+=(-n pwreset "$BIN verify $token") ;;
      sqlite3) cmds+=(-n sqlite3 "sqlite3 -readonly $DB '.read $OUT/lookup.sql'") ;;
    esac
  done
  hyperfine -N --style none --warmup 10 --runs 150 --export-json "$OUT/verify.${order%% *}.json" \
    "${cmds[@]}" > /dev/null
done
read -r v_pw v_sq < <(python3 - "$OUT"/verify.*.json <<'PY'
import json, sys
runs = [x for f in sys.argv[1:] for x in json.load(open(f))["results"]]
mean = lambda name: sum(x["mean"] for x in runs if x["command"] == name) / 2 * 1000
print(f"{mean('pwreset'):.2f} {mean('sqlite3'):.2f}")
PY
)
ratio=$(awk -v a="$v_pw" -v b="$v_sq" 'BEGIN { printf "%.2f", a / b }')
row "verify, $((N + LIVE + 1)) tokens stored" "${v_pw} ms per process (mean of 2 x 150)" "${v_sq} ms per process (mean of 2 x 150)" "${ratio}x" "<= 1.2x"

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -m)"
echo
echo "| benchmark | pwreset | sqlite3 shell | ratio | goal |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"

# The PostgreSQL backend, when a server is named.
if [ -n "${PWRESET_BENCH_POSTGRES:-}" ]; then
  echo
  bash bench/postgres.sh
fi
