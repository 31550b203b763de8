#!/bin/sh
# Renders the HTML part of the built-in reset mail and password-changed notice with headless
# chromium, for docs/mail.md: docs/mail-reset.png, docs/mail-changed.png (English) and the same
# with -de (German). Needs chromium (apt-get install -y chromium).
set -eu
cd "$(dirname "$0")/.."
samples=$(mktemp -d)
trap 'rm -rf "$samples"' EXIT
PWRESET_SAMPLES="$samples" cargo test -q --lib write_samples -- --ignored >/dev/null
for which in reset changed; do
  for lang in en de; do
    suffix=$([ "$lang" = en ] && echo "" || echo "-$lang")
    profile=$(mktemp -d)
    chromium --headless --no-sandbox --disable-gpu --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --hide-scrollbars --user-data-dir="$profile" \
      --screenshot="docs/mail-$which$suffix.png" --window-size=800,"${HEIGHT:-820}" \
      "file://$samples/$which-$lang.html" 2>/dev/null
    rm -rf "$profile"
  done
done
