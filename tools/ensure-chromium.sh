#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver when missing (the browser
# tests drive /usr/bin/chromium directly and through /usr/bin/chromedriver).
# Idempotent: does nothing when both are there. Browser downloads by test
# tools (`npx playwright install`) do not work offline; Debian's build does.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Both together: chromium-driver depends on the exact chromium version.
apt_install chromium=chromium chromedriver=chromium-driver

# chromedriver refuses a browser of another major version: say so early.
browser=$(chromium --version 2>/dev/null | grep -oE '[0-9]+' | head -1)
driver=$(chromedriver --version | grep -oE '[0-9]+' | head -1)
if [ "$browser" != "$driver" ]; then
  echo "ensure-chromium: chromium $browser but chromedriver $driver" >&2
  exit 1
fi
chromium --version 2>/dev/null
