#!/usr/bin/env bash
# Scale benchmarks for the PostgreSQL backend, each beside the same work done by psql on the
# same data. Prints a Markdown table (the one in docs/benchmarks.md). Called by bench/run.sh when
# PWRESET_BENCH_POSTGRES is set, or on its own:
#
#   PWRESET_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable bash bench/postgres.sh
#   N=100000 ...                     # smaller, for a quick look
#
# The URL names a database to connect to for CREATE DATABASE; the benchmark works in its own
# databases (pwreset_bench*) and drops them at the end. Needs: psql, hyperfine, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN=${PWRESET_BENCH_POSTGRES:?set PWRESET_BENCH_POSTGRES to a postgres:// URL}
N=${N:-1000000}
LIVE=$(( N / 10 ))
need=()
command -v psql >/dev/null || need+=(postgresql-client)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${BIN:-}" ]; then
  cargo build --profile dist --quiet   # the build that ships (LTO), see Cargo.toml
  BIN=$PWD/target/dist/pwreset
fi
OUT=${OUT:-$PWD/bench/out-pg}
rm -rf "$OUT" && mkdir -p "$OUT"
export PGOPTIONS="-c client_min_messages=warning"

# postgres://u@h:p/admin?x -> postgres://u@h:p/<name>?x
url_for() { local head=${ADMIN%%\?*} q=""; [[ $ADMIN == *\?* ]] && q="?${ADMIN#*\?}"; echo "${head%/*}/$1$q"; }
admin() { psql -X -q -v ON_ERROR_STOP=1 "$ADMIN" -c "$1" >/dev/null; }
on() { local db=$1; shift; psql -X -q -A -t -v ON_ERROR_STOP=1 "$(url_for "$db")" "$@"; }
cleanup() { for d in pwreset_bench pwreset_bench_a pwreset_bench_b pwreset_bench_c pwreset_bench_d; do admin "DROP DATABASE IF EXISTS $d WITH (FORCE)" || true; done; }
trap cleanup EXIT
cleanup

config() { # database name
  cat > "$OUT/config.$1.toml" <<CONF
database = "$(url_for "$1")"
base_url = "https://accounts.example.com/reset_password"
request_throttle = "60s"
[mail]
transport = "file"
[mail.file]
dir = "$OUT/outbox"
CONF
  echo "$OUT/config.$1.toml"
}

measure() { # label, command...
  local label=$1; shift
  sync   # start with the copies and loads before it written back, for either side alike
  /usr/bin/time -f "%e %M" -o "$OUT/time.$label" "$@" > /dev/null
  read -r secs rss < "$OUT/time.$label"
  echo "$secs $rss"
}
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }
now=$(date +%s)

# -- data: N users in pwreset's own table ---------------------------------------------------
admin "CREATE DATABASE pwreset_bench"
CFG=$(config pwreset_bench)
"$BIN" -q -c "$CFG" init
on pwreset_bench -c "INSERT INTO users (email, email_key, created_at)
  SELECT 'user' || i || '@example.com', 'user' || i || '@example.com', $now FROM generate_series(1, $N) i" \
  -c "VACUUM ANALYZE users"

# -- 1. request --all --no-email vs \copy of the same rows ----------------------------------
# The same rows are everything the request wrote: a token, a throttle row and an audit row per
# user. The token rows alone are measured too, for docs/benchmarks.md's second ratio.
on pwreset_bench -c "CHECKPOINT"
read -r t_req rss_req < <(measure req "$BIN" -c "$CFG" request --all --no-email)
on pwreset_bench -c "\\copy (SELECT digest, user_id, binding, created_at, expires_at, dead_at FROM pwreset_tokens ORDER BY id) TO '$OUT/tokens.copy'" \
  -c "\\copy (SELECT user_id, last_at FROM pwreset_throttle) TO '$OUT/throttle.copy'" \
  -c "\\copy (SELECT at, actor, action, user_id, email, outcome, detail FROM pwreset_audit ORDER BY id) TO '$OUT/audit.copy'"
empty() { on pwreset_bench -c "TRUNCATE pwreset_tokens, pwreset_throttle, pwreset_audit" -c "CHECKPOINT"; }
copy_tokens="\\copy pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at) FROM '$OUT/tokens.copy'"
empty
read -r t_copy _ < <(measure copy psql -X -q "$(url_for pwreset_bench)" -c "$copy_tokens" \
  -c "\\copy pwreset_throttle (user_id, last_at) FROM '$OUT/throttle.copy'" \
  -c "\\copy pwreset_audit (at, actor, action, user_id, email, outcome, detail) FROM '$OUT/audit.copy'")
empty
read -r t_copy_tokens _ < <(measure copy_tokens psql -X -q "$(url_for pwreset_bench)" -c "$copy_tokens")
rate_req=$(awk -v n="$N" -v t="$t_req" 'BEGIN { printf "%.0f", n / t }')
rate_copy=$(awk -v n="$N" -v t="$t_copy" 'BEGIN { printf "%.0f", n / t }')
ratio=$(awk -v a="$t_copy" -v b="$t_req" 'BEGIN { printf "%.2f", a / b }')
ratio_tokens=$(awk -v a="$t_copy_tokens" -v b="$t_req" 'BEGIN { printf "%.2f", a / b }')
row "request --all --no-email, $N users" "${t_req}s ($rate_req users/s), peak RSS ${rss_req} KiB" "${t_copy}s ($rate_copy users/s): \\\\copy of the same token, throttle and audit rows; ${t_copy_tokens}s for the token rows alone" "${ratio}x the \\\\copy rate (${ratio_tokens}x the token rows' alone)" ">= 0.5x, RSS < 64 MiB"

# -- 2. purge-expired of N dead tokens (10% used, 5% revoked) out of N + LIVE vs one DELETE
on pwreset_bench -c "TRUNCATE pwreset_tokens;
  INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, used_at, revoked_at, dead_at)
  SELECT sha256(i::text::bytea), i, substr(sha256(('b' || i)::bytea), 1, 16), $now - 7200, $now - 3600,
         CASE WHEN i % 10 = 0 THEN $now - 5400 END, CASE WHEN i % 20 = 1 THEN $now - 5400 END,
         CASE WHEN i % 10 = 0 OR i % 20 = 1 THEN $now - 5400 ELSE $now - 3600 END
    FROM generate_series(1, $N) i;
  INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
  SELECT sha256(('l' || i)::bytea), i, substr(sha256(('b' || i)::bytea), 1, 16), $now, $now + 3600, $now + 3600
    FROM generate_series(1, $LIVE) i" -c "VACUUM ANALYZE pwreset_tokens"
# Each side twice, in the order purge, DELETE, DELETE, purge, each on its own copy: this
# machine's speed drifts within a minute, and a side measured only first or only second takes
# the drift. The ratio is of the sums.
for d in a b c d; do admin "CREATE DATABASE pwreset_bench_$d TEMPLATE pwreset_bench"; done
purge() { # database
  on "$1" -c "CHECKPOINT"
  measure "purge_$1" "$BIN" -c "$(config "$1")" purge-expired
}
delete() { # database
  on "$1" -c "CHECKPOINT"
  measure "delete_$1" psql -X -q "$(url_for "$1")" -c "DELETE FROM pwreset_tokens WHERE dead_at <= $now"
}
read -r t_purge1 rss_purge1 < <(purge pwreset_bench_a)
read -r t_del1 _ < <(delete pwreset_bench_b)
read -r t_del2 _ < <(delete pwreset_bench_c)
read -r t_purge2 rss_purge2 < <(purge pwreset_bench_d)
left_a=$(on pwreset_bench_a -c "SELECT count(*) FROM pwreset_tokens")
for d in b c d; do
  left=$(on "pwreset_bench_$d" -c "SELECT count(*) FROM pwreset_tokens")
  [ "$left_a" = "$left" ] || { echo "purge left $left_a rows, pwreset_bench_$d $left" >&2; exit 1; }
done
rss_purge=$(( rss_purge1 > rss_purge2 ? rss_purge1 : rss_purge2 ))
ratio=$(awk -v a="$t_purge1" -v b="$t_purge2" -v c="$t_del1" -v d="$t_del2" 'BEGIN { printf "%.2f", (a + b) / (c + d) }')
row "purge-expired, $N of $((N + LIVE)) tokens" "${t_purge1}s and ${t_purge2}s, peak RSS ${rss_purge} KiB" "${t_del1}s and ${t_del2}s, one DELETE by psql" "${ratio}x the DELETE's time" "<= 1.2x, RSS < 64 MiB"

# -- 3. verify with N + LIVE tokens stored vs a psql lookup process -------------------------
link=$("$BIN" -c "$CFG" request --no-email --force user1@example.com)
token=${link##*token=}
id=$(on pwreset_bench -c "SELECT max(id) FROM pwreset_tokens")
digest=$(on pwreset_bench -c "SELECT encode(digest, 'hex') FROM pwreset_tokens WHERE id = $id")
lookup="SELECT t.user_id, u.email, u.password_hash, t.binding, t.created_at, t.expires_at, t.used_at, t.revoked_at FROM pwreset_tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = $id AND t.digest = '\\x$digest'"
# As for the timed steps: the copies and purges before written back, for either side alike.
sync
hyperfine -N --style none --warmup 20 --runs 300 --export-json "$OUT/verify.json" \
  -n pwreset "$BIN -c $CFG verify $token" \
  -n psql "psql -X -A -t $(url_for pwreset_bench) -c \"$lookup\"" \
  > /dev/null
read -r v_pw v_sq < <(python3 - "$OUT/verify.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print(f"{r['pwreset']:.2f} {r['psql']:.2f}")
PY
)
read -r _ rss_verify < <(measure verify "$BIN" -c "$CFG" verify "$token")
ratio=$(awk -v a="$v_pw" -v b="$v_sq" 'BEGIN { printf "%.2f", a / b }')
row "verify, $((N + LIVE + 1)) tokens stored" "${v_pw} ms per process, peak RSS ${rss_verify} KiB" "${v_sq} ms per psql -c process" "${ratio}x" "<= 1.5x"

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -m); $(psql -X -A -t "$ADMIN" -c 'SHOW server_version') on the same machine"
echo
echo "| benchmark (PostgreSQL) | pwreset | psql | ratio | goal |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
