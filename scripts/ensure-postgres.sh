#!/usr/bin/env bash
# Make sure a PostgreSQL server is installed; the test session starts its own throwaway
# cluster (tests/conftest.py), so nothing is left running and nothing is configured by hand.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then
  exit 0
fi
echo "Installing PostgreSQL for the test suite..."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql >/dev/null
