#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Lints the tree: the kernel's CLIPPY=1 build of the modules (any warning
# fails), rustfmt in the kernel's style, checkpatch on patches/ and the C.
#
#   scripts/lint.sh KDIR MAKE-COMMAND-FOR-THE-MODULES...
set -uo pipefail

. "$(dirname "$0")/lib.sh"

kdir=$1
shift
cd "$NSDEV_ROOT"
mkdir -p build
bad=0

echo "== clippy"
"$@" CLIPPY=1 modules >build/clippy.log 2>&1 || bad=1
if grep -E 'warning|error' build/clippy.log; then
	bad=1
fi

echo "== rustfmt"
mapfile -t rssrc < <(git ls-files 'rust/*.rs')
/usr/bin/rustfmt --check --edition=2021 --config-path="$kdir/.rustfmt.toml" "${rssrc[@]}" || bad=1

echo "== checkpatch"
checkpatch=("$kdir/scripts/checkpatch.pl" --no-tree --quiet)
shopt -s nullglob
patches=(patches/*.patch)
# Not --strict: uapi headers cannot use BIT(). On stdin: checkpatch takes
# a file that git tracks for source, not for a patch.
for p in "${patches[@]}"; do
	"${checkpatch[@]}" - <"$p" || { echo "($p)"; bad=1; }
done
# The C shims, strictly; not the files kbuild generates (*.mod.c). One
# file_operations is built at run time, from the block layer's (not
# exported): CONST_STRUCT cannot hold for it.
mapfile -t csrc < <(git ls-files 'rust/*.[ch]')
if [ ${#csrc[@]} -gt 0 ]; then
	"${checkpatch[@]}" --strict --ignore FILE_PATH_CHANGES,CONST_STRUCT -f "${csrc[@]}" || bad=1
fi
# The tests and samples run shell commands (long, split strings), and the
# tests check loop.c's ENOSYS for unknown loop-control commands.
mapfile -t tsrc < <(git ls-files 'selftests/*.[ch]' 'samples/*.[ch]')
if [ ${#tsrc[@]} -gt 0 ]; then
	"${checkpatch[@]}" -f "${tsrc[@]}" --ignore FILE_PATH_CHANGES,SPLIT_STRING,LONG_LINE,LONG_LINE_STRING,REPEATED_WORD,ENOSYS || bad=1
fi

if [ $bad = 0 ]; then
	echo "lint: clean"
else
	echo "lint: problems found (see above)"
fi
exit $bad
