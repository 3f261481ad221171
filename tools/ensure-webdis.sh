#!/usr/bin/env bash
# Installs webdis (a C HTTP->Redis gateway used as a benchmark peer) when
# missing. Idempotent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_install webdis=webdis
command -v webdis
