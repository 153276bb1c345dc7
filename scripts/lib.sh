# SPDX-License-Identifier: GPL-2.0
# Shared by the scripts: cache location, tool paths, logging.

NSDEV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NSDEV_CACHE=${NSDEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nsdev}
export NSDEV_ROOT NSDEV_CACHE
export PATH="$NSDEV_CACHE/tools/bin:$NSDEV_CACHE/venv/bin:$PATH"

log() { printf 'nsdev: %s\n' "$*" >&2; }
die() { printf 'nsdev: error: %s\n' "$*" >&2; exit 1; }
