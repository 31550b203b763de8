#!/usr/bin/env bash
# `pwreset serve` under load, on loopback only, at the default argon2 cost (19 MiB, t=2):
#   1. the form (GET with a valid token) under wrk: requests/s and p99;
#   2. resets (POST) back to back from 4 clients: resets/s, bounded by argon2;
#   3. 200 concurrent resets at once: how many are answered 303 and how many 503 (queue full,
#      Retry-After), and the server's peak RSS (VmHWM).
#
#   bash bench/serve.sh                       # builds the release binary
#   BIN=/path/to/pwreset bash bench/serve.sh
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
