#!/usr/bin/env bash
# Regenerate contrib/startup.order: the functions the short commands run, which build.rs has the
# linker place next to each other in the `dist` build (see build.rs for why).
#
#   bash bench/startup-order.sh
#
# Builds the dist binary with and without the `ldap` feature (the two builds name pwreset's own
# functions differently), runs each under valgrind's callgrind on a small database (verify of a
# live token first: the lookup support staff run while a user waits; then a mistyped token,
# --version, user list, audit, request --no-email and purge-expired), and lists the functions
# whose code ran, each under the name the linker knows it by (from the link map: the shipped
# binary is stripped). Run it again after updating Rust or a dependency; names that a build does
# not hold are skipped by the linker, so a stale list costs speed, never correctness.
#
# Needs: valgrind, python3 (installed with apt-get when missing). Takes two dist builds.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

TARGET=${CARGO_TARGET_DIR:-$PWD/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

lists=()
for features in "" ldap; do
  name=pwreset${features:+-$features}
  echo "== dist build ${features:+with $features}" >&2
  PWRESET_LINK_MAP=$work/$name.map cargo build --locked --profile dist --quiet \
    ${features:+--features "$features"}
  bin=$work/$name
  cp "$TARGET/dist/pwreset" "$bin"

  # A small database: two users, one of them with a live link.
  db=$work/$name.db
  cfg=$work/$name.toml
  cat > "$cfg" <<CONF
database = "$db"
base_url = "https://accounts.example.com/reset_password"
[mail]
transport = "file"
[mail.file]
dir = "$work/outbox"
CONF
  export PWRESET_CONFIG=$cfg
  "$bin" -q init
  "$bin" -q user add user1@example.com --name "User One"
  "$bin" -q user add user2@example.com
  link=$("$bin" -q request --no-email user1@example.com 2>/dev/null)
  token=${link##*token=}
  mistyped=$(printf '%s' "$token" | sed 's/^pwr_AAAA[A-Za-z0-9_-]/pwr_AAAAz/')

  # Where valgrind loads the binary: its addresses less this are the map's.
  bias=$(valgrind --tool=none --trace-symtab=yes --trace-symtab-patt="*$name" "$bin" --version 2>&1 \
    | sed -n 's/.*acquired as rx, bias \(0x[0-9a-f]*\).*/\1/p' | head -1)
  [ -n "$bias" ] || { echo "startup-order: cannot tell where valgrind loads $bin" >&2; exit 1; }

  runs=()
  i=0
  for args in "verify $token" "verify $mistyped" "--version" "user list" "audit" \
    "request --no-email --force user2@example.com" "purge-expired"; do
    i=$((i + 1))
    # shellcheck disable=SC2086 # the arguments are split on purpose
    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$work/$name.$i.cg" \
      "$bin" $args > /dev/null 2>&1 || true
    runs+=("$work/$name.$i.cg")
  done
  python3 - "$work/$name.map" "$bias" "$bin" "${runs[@]}" > "$work/$name.order" <<'PY'
import bisect, re, sys

map_path, bias, binary, runs = sys.argv[1], int(sys.argv[2], 16), sys.argv[3], sys.argv[4:]

# lld's map: "VMA LMA Size Align Out In Symbol", one line per output section, input section and
# symbol, told apart by their indentation (0, 8, 16). The input sections of .text and the
# symbols each defines.
sections = []  # [start, end, [symbols]]
in_text = False
for line in open(map_path):
    m = re.match(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (\s*)(\S.*)$", line)
    if not m:
        continue
    vma, size, indent, rest = int(m.group(1), 16), int(m.group(2), 16), len(m.group(3)), m.group(4)
    if indent == 0:
        in_text = rest == ".text"
    elif in_text and indent <= 8:
        sections.append([vma, vma + size, []])
    elif in_text and sections and not rest.startswith((".", "$")):
        sections[-1][2].append(rest)
sections.sort()
starts = [s[0] for s in sections]

# callgrind's output with --dump-instr=yes: a cost line starts with the instruction's address,
# absolute (0x...), relative to the previous one (+n, -n) or the same (*). Addresses in an
# object callgrind knows by name are the object's own; in one it cannot name (a stripped
# binary: "???") they are where it ran, valgrind's bias added.
order, seen = [], set()
for index, run in enumerate(runs):
    hits, names, last, offset = [], {}, 0, None
    for line in open(run):
        if line.startswith(("ob=", "cob=")):
            m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.strip())
            if m and m.group(2) is not None:
                names[m.group(1)] = m.group(2)
            if m and line.startswith("ob="):
                name = names.get(m.group(1), "")
                offset = 0 if name == binary else bias if name == "???" else None
            continue
        if line[0] not in "0+-*" or line.startswith("calls="):
            continue
        pos = line.split()[0]
        if pos.startswith("0x"):
            last = int(pos, 16)
        elif pos[0] in "+-":
            last += int(pos)
        if offset is None:
            continue
        addr = last - offset
        k = bisect.bisect_right(starts, addr) - 1
        if k >= 0 and sections[k][0] <= addr < sections[k][1] and k not in seen:
            seen.add(k)
            hits.append(k)
    # Within a run, in the address order of the old layout: callers stay near their callees.
    for k in sorted(hits):
        if sections[k][2]:
            order.append(f"{index}\t{sections[k][2][0]}")
print("\n".join(order))
PY
  lists+=("$work/$name.order")
  echo "   $(wc -l < "$work/$name.order") functions" >&2
done

# Run by run (both builds' verify first), a name once. lld reads every line as a name, so the
# header lines are names no build holds, and skipped.
{
  echo "# Generated by bench/startup-order.sh (read by build.rs): the functions short commands run,"
  echo "# placed together in the dist build. Regenerate after updating Rust or a dependency."
  cat "${lists[@]}" | sort -s -n -k1,1 | cut -f2 | awk '!seen[$0]++'
} > contrib/startup.order
echo "contrib/startup.order: $(grep -vc '^#' contrib/startup.order) names" >&2
