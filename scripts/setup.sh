#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and testing nsdev needs, and nothing when it is
# already there: Debian packages, bindgen-cli (crates.io) and virtme-ng
# (PyPI). The last two go into the cache directory, not into the system.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

DEBS=(
	linux-source-6.12 rustc-web rust-web-src rust-web-clippy rustfmt-web
	clang lld llvm libclang-dev
	make flex bison bc libelf-dev libssl-dev cpio xz-utils
	qemu-system-x86 qemu-user-static busybox-static util-linux e2fsprogs fdisk fio
	python3-venv kmod iproute2 gcc-multilib
)
BINDGEN_VERSION=0.72.1
VIRTME_NG_VERSION=1.42

missing=()
for p in "${DEBS[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	[ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$NSDEV_CACHE/tools"
if ! "$NSDEV_CACHE/tools/bin/bindgen" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION"
	cargo install --quiet --locked --root "$NSDEV_CACHE/tools" \
		--version "$BINDGEN_VERSION" bindgen-cli
fi

if ! "$NSDEV_CACHE/venv/bin/vng" --version 2>/dev/null | grep -q "$VIRTME_NG_VERSION"; then
	log "installing virtme-ng $VIRTME_NG_VERSION"
	rm -rf "$NSDEV_CACHE/venv"
	/usr/bin/python3 -m venv "$NSDEV_CACHE/venv"
	"$NSDEV_CACHE/venv/bin/pip" install -q "virtme-ng==$VIRTME_NG_VERSION"
fi
log "setup: all tools present"
