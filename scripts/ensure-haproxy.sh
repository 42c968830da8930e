#!/usr/bin/env bash
# Make sure HAProxy is installed (Debian's package); the replica tests start their own on
# loopback with a generated configuration, so nothing is left running or configured by hand.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  exit 0
fi
echo "Installing HAProxy for the test suite..."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends haproxy >/dev/null
# the package's own service is not needed (and must not hold port 80 or a config of ours)
$SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
