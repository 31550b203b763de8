#!/usr/bin/env bash
# Scale benchmarks for pwreset on MariaDB/MySQL, each beside the same work done by the server's
# own tools on the same rows. Prints a Markdown table (the one in docs/benchmarks.md).
#
#   bash bench/mysql.sh             # 1,000,000 users / 1,100,000 tokens
#   N=100000 bash bench/mysql.sh    # smaller, for a quick look
#
# Needs a MariaDB server on 127.0.0.1:3306 where root may log in without a password (override
# with MYSQL_ADMIN="--host=... --user=..."), the mariadb client, hyperfine and GNU time
# (installed with apt-get when missing). Uses (and drops) the database pwreset_bench.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
LIVE=$(( N / 10 ))
ADMIN=${MYSQL_ADMIN:---host=127.0.0.1 --port=3306 --user=root}
DBNAME=pwreset_bench
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v mariadb >/dev/null || need+=(mariadb-client)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
# shellcheck disable=SC2206
MYSQL=(mariadb $ADMIN --batch --skip-column-names)
sql() { "${MYSQL[@]}" "$@"; }

if [ -z "${BIN:-}" ]; then
  cargo build --profile dist --quiet   # the build that ships (LTO), see Cargo.toml
  BIN=$PWD/target/dist/pwreset
fi
OUT=${OUT:-$PWD/bench/out-mysql}
rm -rf "$OUT" && mkdir -p "$OUT"
cat > "$OUT/config.toml" <<CONF
database = "mysql://root@127.0.0.1:3306/$DBNAME?ssl-mode=DISABLED"
base_url = "https://accounts.example.com/reset_password"
request_throttle = "60s"
[mail]
transport = "file"
[mail.file]
dir = "$OUT/outbox"
CONF
export PWRESET_CONFIG=$OUT/config.toml
now=$(date +%s)

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
# Wait (up to 5 minutes) for InnoDB's purge thread to finish the work earlier steps left, so that
# each timed run starts on a server at rest.
quiet() {
  for _ in $(seq 600); do
    [ "$(sql -e "SELECT count FROM information_schema.innodb_metrics WHERE name = 'trx_rseg_history_len'")" -lt 1000 ] && return
    sleep 0.5
  done
}
empty_tokens() { sql "$DBNAME" -e "TRUNCATE pwreset_tokens; TRUNCATE pwreset_audit; TRUNCATE pwreset_throttle;"; quiet; }

# -- data: N users (pwreset's own table) ----------------------------------------------------
sql -e "DROP DATABASE IF EXISTS $DBNAME; CREATE DATABASE $DBNAME CHARACTER SET utf8mb4"
"$BIN" -q init
sql "$DBNAME" -e "INSERT INTO users (email, email_key, created_at)
  SELECT CONCAT('user', seq, '@example.com'), CONCAT('user', seq, '@example.com'), $now FROM seq_1_to_$N"

# -- 1. request --all --no-email vs the server's bulk paths for the same rows ----------------
read -r t_req rss_req < <(measure req "$BIN" request --all --no-email)
# The same rows are everything the request wrote: a token, a throttle row and an audit row per
# user, dumped raw (\N for NULL) and loaded back with LOAD DATA. The token rows alone are
# measured too, for docs/benchmarks.md's second ratio.
sql "$DBNAME" -e "SELECT HEX(digest), user_id, HEX(binding), created_at, expires_at, dead_at
  FROM pwreset_tokens ORDER BY id" > "$OUT/tokens.tsv"
sql "$DBNAME" -e "SELECT user_id, last_at FROM pwreset_throttle" > "$OUT/throttle.tsv"
sql --raw "$DBNAME" -e "SELECT at, actor, action, IFNULL(user_id, '\\\\N'), IFNULL(email, '\\\\N'),
  outcome, IFNULL(detail, '\\\\N') FROM pwreset_audit ORDER BY id" > "$OUT/audit.tsv"
# The same rows as multi-row INSERTs of 1,000 rows each, in one transaction.
awk -F'\t' -v tokens="$OUT/tokens.tsv" -v throttle="$OUT/throttle.tsv" -v audit="$OUT/audit.tsv" '
  function q(v) { if (v == "\\N") return "NULL"; gsub(/\\/, "\\\\", v); gsub(/\047/, "\\\047", v); return "\047" v "\047" }
  function emit(head, r) { buf = (n % 1000 == 0) ? head r : buf "," r; n++; if (n % 1000 == 0) { print buf ";"; buf = "" } }
  function flush() { if (buf != "") print buf ";"; buf = ""; n = 0 }
  BEGIN {
    print "START TRANSACTION;"
    h = "INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at) VALUES "
    while ((getline line < tokens) > 0) { split(line, f, "\t"); emit(h, sprintf("(UNHEX(\"%s\"),%s,UNHEX(\"%s\"),%s,%s,%s)", f[1], f[2], f[3], f[4], f[5], f[6])) }
    flush()
    h = "INSERT INTO pwreset_throttle (user_id, last_at) VALUES "
    while ((getline line < throttle) > 0) { split(line, f, "\t"); emit(h, sprintf("(%s,%s)", f[1], f[2])) }
    flush()
    h = "INSERT INTO pwreset_audit (at, actor, action, user_id, email, outcome, detail) VALUES "
    while ((getline line < audit) > 0) { split(line, f, "\t"); emit(h, sprintf("(%s,%s,%s,%s,%s,%s,%s)", f[1], q(f[2]), q(f[3]), q(f[4]), q(f[5]), q(f[6]), q(f[7]))) }
    flush()
    print "COMMIT;"
  }' > "$OUT/rows.sql"
empty_tokens
read -r t_ins _ < <(measure ins "${MYSQL[@]}" "$DBNAME" -e "source $OUT/rows.sql")
inserted=$(sql "$DBNAME" -e "SELECT (SELECT COUNT(*) FROM pwreset_tokens) + (SELECT COUNT(*) FROM pwreset_throttle) + (SELECT COUNT(*) FROM pwreset_audit)")
[ "$inserted" = $(( 3 * N )) ] || { echo "the INSERTs wrote $inserted rows, not $(( 3 * N ))" >&2; exit 1; }
load_tokens="LOAD DATA LOCAL INFILE '$OUT/tokens.tsv'
  INTO TABLE pwreset_tokens (@d, user_id, @b, created_at, expires_at, dead_at)
  SET digest = UNHEX(@d), binding = UNHEX(@b);"
empty_tokens
read -r t_load _ < <(measure load "${MYSQL[@]}" --local-infile=1 "$DBNAME" -e "$load_tokens
  LOAD DATA LOCAL INFILE '$OUT/throttle.tsv' INTO TABLE pwreset_throttle (user_id, last_at);
  LOAD DATA LOCAL INFILE '$OUT/audit.tsv' INTO TABLE pwreset_audit
    (at, actor, action, user_id, email, outcome, detail);")
loaded=$(sql "$DBNAME" -e "SELECT (SELECT COUNT(*) FROM pwreset_tokens) + (SELECT COUNT(*) FROM pwreset_throttle) + (SELECT COUNT(*) FROM pwreset_audit)")
[ "$loaded" = $(( 3 * N )) ] || { echo "LOAD DATA loaded $loaded rows, not $(( 3 * N ))" >&2; exit 1; }
empty_tokens
read -r t_load_tokens _ < <(measure load_tokens "${MYSQL[@]}" --local-infile=1 "$DBNAME" -e "$load_tokens")
rate_req=$(awk -v n="$N" -v t="$t_req" 'BEGIN { printf "%.0f", n / t }')
rate_raw=$(awk -v n="$N" -v t="$t_load" 'BEGIN { printf "%.0f", n / t }')
ratio=$(awk -v a="$t_load" -v b="$t_req" 'BEGIN { printf "%.2f", a / b }')
ratio_tokens=$(awk -v a="$t_load_tokens" -v b="$t_req" 'BEGIN { printf "%.2f", a / b }')
ratio_ins=$(awk -v a="$t_ins" -v b="$t_req" 'BEGIN { printf "%.2f", a / b }')
row "request --all --no-email, $N users" "${t_req}s ($rate_req users/s), peak RSS ${rss_req} KiB" "the same token, throttle and audit rows: LOAD DATA ${t_load}s ($rate_raw users/s), multi-row INSERT ${t_ins}s; LOAD DATA of the token rows alone ${t_load_tokens}s" "${ratio}x LOAD DATA's rate, ${ratio_ins}x the INSERTs' (${ratio_tokens}x the token rows' alone)" ">= 0.5x, RSS < 64 MiB"

load_dead() {
  empty_tokens
  sql "$DBNAME" -e "
    INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, used_at, revoked_at, dead_at)
      SELECT UNHEX(SHA2(seq, 256)), seq, UNHEX(MD5(seq)), $now - 7200, $now - 3600,
             IF(seq % 10 = 0, $now - 5400, NULL), IF(seq % 20 = 1, $now - 5400, NULL),
             IF(seq % 10 = 0 OR seq % 20 = 1, $now - 5400, $now - 3600) FROM seq_1_to_$N;
    INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
      SELECT UNHEX(SHA2(-seq, 256)), seq, UNHEX(MD5(-seq)), $now, $now + 3600, $now + 3600 FROM seq_1_to_$LIVE;"
  quiet
}
# Each side twice, in the order purge, DELETE, DELETE, purge, each on freshly loaded rows: this
# machine's speed drifts within a minute, and a side measured only first or only second takes
# the drift. The ratio is of the sums.
purge() { load_dead; measure purge "$BIN" purge-expired; }
delete() {
  load_dead
  measure delete "${MYSQL[@]}" "$DBNAME" -e "DELETE FROM pwreset_tokens WHERE dead_at <= $now"
}
read -r t_purge1 rss_purge1 < <(purge)
read -r t_del1 _ < <(delete)
read -r t_del2 _ < <(delete)
read -r t_purge2 rss_purge2 < <(purge)
rss_purge=$(( rss_purge1 > rss_purge2 ? rss_purge1 : rss_purge2 ))
ratio=$(awk -v a="$t_purge1" -v b="$t_purge2" -v c="$t_del1" -v d="$t_del2" 'BEGIN { printf "%.2f", (a + b) / (c + d) }')
row "purge-expired, $N of $((N + LIVE)) tokens" "${t_purge1}s and ${t_purge2}s, peak RSS ${rss_purge} KiB" "${t_del1}s and ${t_del2}s (one DELETE by mariadb)" "${ratio}x the raw time" "<= 1.2x, RSS < 64 MiB"

# -- 3. verify with N + LIVE tokens stored vs a mariadb lookup process ----------------------
load_dead
link=$("$BIN" request --no-email --force user1@example.com)
token=${link##*token=}
id=$(sql "$DBNAME" -e "SELECT MAX(id) FROM pwreset_tokens")
digest=$(sql "$DBNAME" -e "SELECT HEX(digest) FROM pwreset_tokens WHERE id = $id")
# The same lookup verify does, by the mariadb client: one process per lookup, like verify.
lookup="SELECT t.user_id, u.email, u.password_hash, t.binding, t.created_at, t.expires_at, t.used_at, t.revoked_at
  FROM pwreset_tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = $id AND t.digest = UNHEX('$digest')"
# As for the timed steps: the copies and purges before written back, for either side alike.
sync
hyperfine -N --style none --warmup 20 --runs 300 --export-json "$OUT/verify.json" \
  -n pwreset "$BIN verify $token" \
  -n mariadb "mariadb $ADMIN $DBNAME -e \"$lookup\"" \
  > /dev/null
read -r v_pw v_my < <(python3 - "$OUT/verify.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print(f"{r['pwreset']:.2f} {r['mariadb']:.2f}")
PY
)
read -r _ rss_verify < <(measure verify "$BIN" verify "$token")
ratio=$(awk -v a="$v_pw" -v b="$v_my" 'BEGIN { printf "%.2f", a / b }')
row "verify, $((N + LIVE + 1)) tokens stored" "${v_pw} ms per process, peak RSS ${rss_verify} KiB" "${v_my} ms per process" "${ratio}x" "<= 1.5x"

sql -e "DROP DATABASE $DBNAME"
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -m); $(sql -e 'SELECT VERSION()'), innodb_buffer_pool_size $(sql -e 'SELECT @@innodb_buffer_pool_size DIV 1048576') MiB"
echo
echo "| benchmark | pwreset | mariadb | ratio | goal |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
