# SPDX-License-Identifier: GPL-2.0
#
# nsdev: out-of-tree Rust kernel modules that let user namespaces use loop
# devices and device nodes safely. See README.md.
#
#   make demo        build, boot the test kernel in a VM, show the scenario
#   make check       build, boot the test kernel in a VM, run all kselftests
#   make stress      the randomized loopfs lifecycle stress (STRESS_OPS, STRESS_SEED)
#   make modules     build the modules against the kernel tree
#   make lint        clippy, rustfmt and checkpatch
#   make rust-analyzer   write rust-project.json for the module crates
#
# KDIR=<tree> uses your own Rust-enabled kernel tree instead of the cached
# one; FLAVOUR=debug builds and boots the KASAN/lockdep/kmemleak kernel.

FLAVOUR ?= normal
LLVM ?= 1
NSDEV_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/nsdev
export FLAVOUR NSDEV_CACHE
# On the project's own kernel every test has what it needs: a skipped test
# fails the run. A KDIR tree may lack options or the patches.
NSDEV_STRICT := $(if $(KDIR),0,1)
export NSDEV_STRICT
# Read by scripts/vm.sh (see README.md).
export CMD TESTS TEST_ARGS VM_TIMEOUT KVM STRESS_OPS STRESS_SEED DIFF_SEED DIFF_STEPS

S := $(CURDIR)/scripts
BUILD := $(CURDIR)/build

# In recipes, "$$kdir" is the kernel tree: KDIR if given, else the cached
# tree for FLAVOUR (built on first use).
set_kdir = kdir=$(if $(KDIR),$(abspath $(KDIR)),$$($(S)/kernel.sh $(FLAVOUR))) || exit 1

KMAKE = $(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=$(LLVM) \
	RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTFMT=/usr/bin/rustfmt \
	CLIPPY_DRIVER=/usr/bin/clippy-driver \
	BINDGEN=$(NSDEV_CACHE)/tools/bin/bindgen

all: modules selftests samples

setup:
	@$(S)/setup.sh

kernel: setup
	@$(set_kdir); echo "nsdev: kernel tree $$kdir"

modules: kernel
	@$(set_kdir); $(KMAKE) modules

selftests: kernel
	@$(set_kdir); $(MAKE) -s -C selftests KDIR="$$kdir" OUTPUT=$(BUILD)/selftests

samples: kernel
	@$(set_kdir); $(MAKE) -s -C samples KDIR="$$kdir" OUTPUT=$(BUILD)/samples

check: modules selftests
	@$(set_kdir); $(S)/vm.sh "$$kdir" check

demo: modules samples
	@$(set_kdir); $(S)/vm.sh "$$kdir" demo

# Seeded random lifecycle stress: STRESS_OPS (default 100000), STRESS_SEED.
stress: modules selftests
	@$(set_kdir); $(S)/vm.sh "$$kdir" stress

# make run CMD='...': one command in the guest, as root, modules loaded.
run: modules selftests
	@$(set_kdir); $(S)/vm.sh "$$kdir" run

# fio: loopfs against the in-kernel loop driver and the raw file, then the
# device scaling figures (BENCH_SIZE, BENCH_RUNTIME, BENCH_WB_RUNTIME for
# buffered writes, BENCH_REPS, BENCH_MODES, BENCH_JOBS, BENCH_SCALE: counts,
# or none).
bench: modules samples
	@$(set_kdir); $(S)/vm.sh "$$kdir" bench

lint: kernel
	@$(set_kdir); $(S)/lint.sh "$$kdir" $(KMAKE)

rust-analyzer: kernel
	@$(set_kdir); $(KMAKE) rust-analyzer

clean:
	@if [ -n "$(KDIR)" ] || ls -d $(NSDEV_CACHE)/linux-$(FLAVOUR)-* >/dev/null 2>&1; then \
		$(set_kdir); $(KMAKE) clean; fi
	rm -rf $(BUILD) rust-project.json

# Removes every cached kernel tree and tool of this user.
distclean: clean
	rm -rf $(NSDEV_CACHE)

.PHONY: all setup kernel modules selftests samples check stress demo run bench lint rust-analyzer clean distclean
