#!/usr/bin/env bash
# The library's public items, one per line (kind and path), read off its API docs (rustdoc's all.html,
# built with the feature `candle`, as docs.rs builds it). `#[doc(hidden)]` items (`bots::__private`,
# which the application and the tests use) are not API and not listed.
#   bash scripts/public-api.sh            # print the list
#   bash scripts/public-api.sh --check    # fail (and show the diff) when it differs from docs/public-api.txt
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
RUSTDOCFLAGS="${RUSTDOCFLAGS:-}" cargo doc --quiet -p bots --no-deps --features candle
list=$(python3 - "$target/doc/bots/all.html" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
out = []
# all.html: <h3 id="structs">Structs</h3><ul class="all-items"><li><a href="struct.CpuPool.html">CpuPool</a></li>...
for section, body in re.findall(r'<h3 id="([a-z-]+)">[^<]*</h3>\s*<ul class="all-items">(.*?)</ul>', html, re.S):
    for name in re.findall(r'<a href="[^"]+">([^<]+)</a>', body):
        out.append(f"{section.rstrip('s')}\tbots::{name}")
print("\n".join(sorted(out)))
PY
)
if [[ "${1:-}" == --check ]]; then
  if ! diff -u docs/public-api.txt <(echo "$list"); then
    echo "public-api.sh: the library's public items changed; if that is meant, update docs/public-api.txt:" >&2
    echo "  bash scripts/public-api.sh > docs/public-api.txt" >&2
    exit 1
  fi
  echo "public API: $(echo "$list" | wc -l) items, as docs/public-api.txt lists"
else
  echo "$list"
fi
