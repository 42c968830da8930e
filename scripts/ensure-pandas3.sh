#!/usr/bin/env bash
# Make sure .venv-pandas3 exists: the test environment with pandas 3, what a fresh
# `pip install dockyard` resolves. .venv itself keeps pandas 2 (constraints.txt), because a
# test-only client (kserve) requires pandas<3. Rather than a second copy of every package,
# .venv-pandas3 holds pandas alone and reads everything else from .venv's site-packages (a
# .pth file; its own site-packages come first on sys.path, so its pandas wins).
# Usage: ensure-pandas3.sh "pandas==3.1.1"
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WANT="$1"
VENV="$ROOT/.venv-pandas3"
BASE="$ROOT/.venv"
if [ -f "$VENV/.installed" ] && [ "$(cat "$VENV/.installed")" = "$WANT" ]; then
  exit 0
fi
rm -rf "$VENV"
"$BASE/bin/python" -m venv --without-pip "$VENV"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
BASE_SITE="$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$BASE_SITE')" > "$SITE/zz_dockyard_base.pth"
"$BASE/bin/python" -m pip install --quiet --no-deps --target "$SITE" "$WANT"
"$VENV/bin/python" -c "import pandas, dockyard; assert pandas.__version__.startswith('3'), pandas.__version__"
echo "$WANT" > "$VENV/.installed"
