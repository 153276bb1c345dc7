#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Print the path of a built nsdev test kernel tree, building it first when
# the cache has none for this key. The key covers the Debian source version,
# patches/*.patch, the config fragments and this script, so an unchanged
# tree is reused as it is.
#
#   scripts/kernel.sh [normal|debug]
set -euo pipefail

. "$(dirname "$0")/lib.sh"

# Bump when the way the tree is built changes.
RECIPE=1

flavour=${1:-${FLAVOUR:-normal}}
case "$flavour" in
normal) fragments=("$NSDEV_ROOT/scripts/kconfig/nsdev.config") ;;
debug) fragments=("$NSDEV_ROOT/scripts/kconfig/nsdev.config"
		  "$NSDEV_ROOT/scripts/kconfig/debug.config") ;;
*) die "unknown FLAVOUR '$flavour' (normal or debug)" ;;
esac

tarball=/usr/src/linux-source-6.12.tar.xz
[ -r "$tarball" ] || die "$tarball missing: run 'make setup'"
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
shopt -s nullglob
patches=("$NSDEV_ROOT"/patches/*.patch)
shopt -u nullglob

key=$({
	echo "$srcver $flavour $RECIPE"
	cat "${fragments[@]}"
	for p in "${patches[@]}"; do
		basename "$p"
		cat "$p"
	done
} | sha256sum | cut -c1-16)
tree="$NSDEV_CACHE/linux-$flavour-$key"

if [ -f "$tree/.nsdev-built" ]; then
	echo "$tree"
	exit 0
fi

log "building $flavour kernel (Debian $srcver, ${#patches[@]} patches) in $tree"
# No stamp: nothing there, or a build that was cut short. Start over.
rm -rf "$tree"
mkdir -p "$tree"
tar -xf "$tarball" -C "$tree" --strip-components=1
for p in "${patches[@]}"; do
	log "applying $(basename "$p")"
	patch -d "$tree" -p1 --quiet --forward <"$p" ||
		die "$(basename "$p") does not apply to Debian $srcver"
done

kmake() {
	make -C "$tree" -s LLVM=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
		BINDGEN="$NSDEV_CACHE/tools/bin/bindgen" "$@"
}

kmake rustavailable >/dev/null || die "Rust toolchain not usable for the kernel"
kmake tinyconfig >/dev/null
(cd "$tree" && ./scripts/kconfig/merge_config.sh -m -O . .config \
	arch/x86/configs/tiny.config "${fragments[@]}" >/dev/null)
kmake olddefconfig >/dev/null

# merge_config drops options whose dependencies are missing without failing:
# check that every line of the fragments made it into the final .config.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) want=$line ;;
	"# CONFIG_"*" is not set") want=$line ;;
	*) continue ;;
	esac
	if ! grep -qxF -- "$want" "$tree/.config"; then
		name=${want#\# }
		name=${name%%[= ]*}
		log "config: wanted '$want', got '$(grep -E "(^|# )$name[= ]" "$tree/.config" || echo "$name undefined")'"
		bad=1
	fi
done < <(cat "${fragments[@]}")
[ $bad = 0 ] || die "config fragment not fully applied (see above)"

buildlog="$tree/.nsdev-build.log"
if ! kmake -j"$(nproc)" all headers >"$buildlog" 2>&1; then
	tail -n 40 "$buildlog" >&2
	die "kernel build failed, full log: $buildlog"
fi
touch "$tree/.nsdev-built"
# Only the newest tree of a flavour is kept: each takes about 2 GB.
for old in "$NSDEV_CACHE/linux-$flavour-"*; do
	[ "$old" = "$tree" ] || rm -rf "$old"
done
log "kernel ready: $tree"
echo "$tree"
