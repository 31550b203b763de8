#!/usr/bin/env bash
# `pwreset serve` under load, on loopback only, at the default argon2 cost (19 MiB, t=2):
#   1. the form (GET with a valid token) under wrk: requests/s and p99;
#   2. resets (POST) back to back from 4 clients: resets/s, bounded by argon2;
#   3. 200 concurrent resets at once: how many are answered 303 and how many 503 (queue full,
#      Retry-After), and the server's peak RSS (VmHWM);
#   4. a flood of empty POSTs from distinct client addresses (X-Forwarded-For through a trusted
#      proxy) for 25 s: how many, how many got 429, the peak RSS, and whether a fresh client's
#      reset still gets its 303;
#   5. with PWRESET_BENCH_POSTGRES set (a postgres:// URL to connect to for CREATE DATABASE):
#      resets/s from one instance and from two instances on one PostgreSQL database, 80 resets
#      from 8 clients, half to each.
#
#   bash bench/serve.sh                       # builds the release binary
#   BIN=/path/to/pwreset bash bench/serve.sh
#   PWRESET_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable bash bench/serve.sh
#
# Needs: wrk, curl (installed with apt-get when missing). Every request goes to 127.0.0.1, and
# each step is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  cargo build --profile dist --quiet   # the build that ships (LTO), see Cargo.toml
  BIN=$PWD/target/dist/pwreset
fi
OUT=${OUT:-$PWD/bench/out-serve}
rm -rf "$OUT" && mkdir -p "$OUT" && chmod 700 "$OUT"
PORT=${PORT:-18931}
USERS=240

cat > "$OUT/config.toml" <<CONF
database = "$OUT/pwreset.db"
base_url = "http://127.0.0.1:$PORT/reset_password"
notify_on_reset = false
[mail]
transport = "file"
from = "Accounts <no-reply@example.com>"
[mail.file]
dir = "$OUT/outbox"
[serve]
listen = "127.0.0.1:$PORT"
ip_attempts = 1000000
CONF
chmod 600 "$OUT/config.toml"
export PWRESET_CONFIG=$OUT/config.toml
"$BIN" init -q
for i in $(seq 1 $USERS); do echo "user$i@example.com"; done > "$OUT/users.txt"
while read -r u; do "$BIN" user add -q "$u"; done < "$OUT/users.txt"
"$BIN" request --no-email --from-file "$OUT/users.txt" > "$OUT/links.txt" 2>/dev/null

"$BIN" serve -q &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

echo "== 1. GET the form: wrk -t2 -c50 -d10s"
wrk -t2 -c50 -d10s --latency "$(head -1 "$OUT/links.txt")" | tee "$OUT/wrk.txt" \
  | grep -E "Requests/sec|99%|Non-2xx" || true

# A reset's form fields for one link: token and CSRF token from the page.
fields() { # link
  local page token csrf
  page=$(curl -fs "$1")
  token=$(grep -o 'name="token" value="[^"]*"' <<<"$page" | sed 's/.*value="//;s/"$//')
  csrf=$(grep -o 'name="csrf" value="[^"]*"' <<<"$page" | sed 's/.*value="//;s/"$//')
  # printf, not echo: a trailing newline would make the two passwords differ.
  printf "%s" "token=$token&csrf=$csrf&password=correct+horse+battery+staple&confirm=correct+horse+battery+staple"
}
post() { # body file
  curl -s -o /dev/null -w '%{http_code}\n' --data-binary @"$1" "http://127.0.0.1:$PORT/reset_password"
}
export -f post
export PORT

echo "== 2. POST resets: 40 resets, 4 clients"
mkdir -p "$OUT/b2"
i=0
sed -n 1,40p "$OUT/links.txt" | while read -r l; do i=$((i+1)); fields "$l" > "$OUT/b2/$i"; done
start=$(date +%s.%N)
ls "$OUT"/b2/* | xargs -P 4 -I{} bash -c 'post {}' > "$OUT/b2.codes"
end=$(date +%s.%N)
sort "$OUT/b2.codes" | uniq -c
python3 -c "print(f'resets/s: {40/($end-$start):.1f} ({$end-$start:.2f}s for 40)')"

echo "== 3. 200 concurrent POSTs (hash_workers = cores, hash_queue = 32)"
mkdir -p "$OUT/b3"
i=0
sed -n 41,240p "$OUT/links.txt" | while read -r l; do i=$((i+1)); fields "$l" > "$OUT/b3/$i"; done
grep VmHWM "/proc/$PID/status" | sed 's/^/before: /'
ls "$OUT"/b3/* | xargs -P 200 -I{} bash -c 'post {}' > "$OUT/b3.codes"
sort "$OUT/b3.codes" | uniq -c
grep VmHWM "/proc/$PID/status" | sed 's/^/after: /'

echo "== 4. a flood from distinct client addresses: wrk -t2 -c50 -d25s, then a fresh client's reset"
kill $PID 2>/dev/null || true
wait $PID 2>/dev/null || true
FPORT=$((PORT + 1))
sed -e "s/^listen = .*/listen = \"127.0.0.1:$FPORT\"/" -e '/^ip_attempts/d' "$OUT/config.toml" > "$OUT/flood.toml"
echo 'trusted_proxies = ["127.0.0.1"]' >> "$OUT/flood.toml"
chmod 600 "$OUT/flood.toml"
PWRESET_CONFIG=$OUT/flood.toml "$BIN" serve -q &
PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$FPORT/healthz" >/dev/null && break; sleep 0.1; done
cat > "$OUT/flood.lua" <<'LUA'
-- Every request from a new client address (10.x.y.z), counted across both threads.
local threads = {}
setup = function(thread) thread:set("id", #threads); table.insert(threads, thread) end
init = function() n = 0; limited = 0 end
request = function()
  n = n + 1
  local k = n * 2 + id
  return wrk.format("POST", "/reset_password", {
    ["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(k / 65536) % 256,
      math.floor(k / 256) % 256, k % 256),
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "")
end
response = function(status) if status == 429 then limited = limited + 1 end end
done = function(summary)
  local l = 0
  for _, t in ipairs(threads) do l = l + t:get("limited") end
  io.write(string.format("POSTs from distinct addresses: %d, answered 429: %d\n", summary.requests, l))
end
LUA
grep VmRSS "/proc/$PID/status" | sed 's/^/before: /'
wrk -t2 -c50 -d25s -s "$OUT/flood.lua" "http://127.0.0.1:$FPORT" | grep -E "POSTs from|Requests/sec"
grep VmHWM "/proc/$PID/status" | sed 's/^/after: /'
# A user no earlier step reset (the same password again would be refused: 422).
"$BIN" user add -q fresh@example.com
fresh=$("$BIN" request --no-email fresh@example.com 2>/dev/null | sed "s/:$PORT/:$FPORT/")
fields "$fresh" > "$OUT/fresh"
echo "a fresh client's reset: $(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 192.0.2.1' \
  --data-binary @"$OUT/fresh" "http://127.0.0.1:$FPORT/reset_password")"

[ -n "${PWRESET_BENCH_POSTGRES:-}" ] || { echo "== 5. skipped: set PWRESET_BENCH_POSTGRES for two instances on PostgreSQL"; exit 0; }
echo "== 5. resets/s: one instance, then two on one PostgreSQL database (80 resets, 8 clients)"
kill $PID 2>/dev/null || true
wait $PID 2>/dev/null || true
ADMIN=$PWRESET_BENCH_POSTGRES
export PGOPTIONS="-c client_min_messages=warning"
url_for() { local head=${ADMIN%%\?*} q=""; [[ $ADMIN == *\?* ]] && q="?${ADMIN#*\?}"; echo "${head%/*}/$1$q"; }
PIDS=()
trap 'kill "${PIDS[@]}" $PID 2>/dev/null || true' EXIT
for n in 1 2; do
  db=pwreset_bench_serve$n
  psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  sed -e "s|^database = .*|database = \"$(url_for $db)\"|" -e "s|:$PORT|:$((PORT + 2))|" "$OUT/config.toml" > "$OUT/pg$n.toml"
  chmod 600 "$OUT/pg$n.toml"
  export PWRESET_CONFIG=$OUT/pg$n.toml
  "$BIN" init -q
  head -80 "$OUT/users.txt" > "$OUT/pg-users.txt"
  while read -r u; do "$BIN" user add -q "$u"; done < "$OUT/pg-users.txt"
  "$BIN" request --no-email --from-file "$OUT/pg-users.txt" > "$OUT/pg$n-links.txt" 2>/dev/null
  PIDS=()
  for i in $(seq 1 $n); do
    p=$((PORT + 1 + i))
    sed "s/^listen = .*/listen = \"127.0.0.1:$p\"/" "$OUT/pg$n.toml" > "$OUT/pg$n-$i.toml"
    chmod 600 "$OUT/pg$n-$i.toml"
    PWRESET_CONFIG=$OUT/pg$n-$i.toml "$BIN" serve -q &
    PIDS+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.1; done
  done
  mkdir -p "$OUT/b5-$n"
  # Link k goes to instance 1 + k mod n: the form from it, the POST to it.
  k=0
  sed -n 1,80p "$OUT/pg$n-links.txt" | while read -r l; do
    k=$((k+1)); p=$((PORT + 2 + k % n))
    fields "${l/:$((PORT + 2))/:$p}" > "$OUT/b5-$n/$k.$p"
  done
  start=$(date +%s.%N)
  ls "$OUT/b5-$n"/* | xargs -P 8 -I{} bash -c 'curl -s -o /dev/null -w "%{http_code}\n" --data-binary @{} "http://127.0.0.1:${1##*.}/reset_password"' _ {} > "$OUT/b5-$n.codes"
  end=$(date +%s.%N)
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  echo "$n instance(s): $(sort "$OUT/b5-$n.codes" | uniq -c | tr -s ' ' | tr '\n' ';') $(python3 -c "print(f'{80/($end-$start):.1f} resets/s')")"
  psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
