#!/usr/bin/env bash
# Make sure axe-core (the accessibility engine, from npm) is installed for the console's
# browser tests. It goes into .cache/axe (ignored by git, outside the package): the tests
# inject node_modules/axe-core/axe.min.js into each page through Playwright. Pinned to a
# major version; nothing is committed and nothing is fetched at test time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="$ROOT/.cache/axe"
if [ -f "$TARGET/node_modules/axe-core/axe.min.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm is missing: install Node.js (apt-get install npm) for the accessibility tests" >&2
  exit 1
fi
mkdir -p "$TARGET"
npm install --prefix "$TARGET" --no-audit --no-fund --silent "axe-core@^4"
