#!/usr/bin/env bash
#
# test/lib/chroot.sh - test pg_dtx against another PostgreSQL major version
# in a Debian chroot of its own.
#
#   bash test/lib/chroot.sh VERSION [run_tests.sh arguments...]
#
# VERSION is 17 or 18. The chroot is built on first use with debootstrap
# (--variant=minbase, Debian's suite that serves that version: trixie for
# 17, sid for 18) and reused while it is present:
#
#   $PG_DTX_CHROOT_DIR/VERSION      (default /var/tmp/pg_dtx_chroots/VERSION)
#
# It holds postgresql-VERSION, postgresql-server-dev-VERSION and what the
# regress and TAP tiers need. Services never start inside it (policy-rc.d)
# and no "main" cluster is created. Suites are never mixed on the host: the
# host's own packages are not touched.
#
# Each run copies the source tree (without build products) to /build/pg_dtx
# inside the chroot, mounts /proc, /dev/pts and a fresh /dev/shm, runs
# test/run_tests.sh there with PG_CONFIG of that version (the tiers given in
# PG_DTX_TIERS, default "regress tap package": the Debian package of that
# version is built, installed and tested too) and unmounts on exit. Its output ends
# with run_tests.sh's "N passed, N failed" line; the exit status is
# run_tests.sh's. One run at a time per chroot (flock). On exit, whatever
# still runs inside the chroot (servers of an interrupted run) is killed.
#
# Needs root (debootstrap, chroot, mount) and Debian's apt mirror.
#
# Environment:
#   PG_DTX_CHROOT_DIR    where the chroots live (default /var/tmp/pg_dtx_chroots)
#   PG_DTX_MIRROR        the Debian mirror (default http://deb.debian.org/debian)
#   PG_DTX_TIERS         the tiers to run inside (default "regress tap package")
#   PROVE_TESTS, PROVE_FLAGS, PG_DTX_KEEP_STAGE  passed on to run_tests.sh

set -euo pipefail

CHROOT_BASE=${PG_DTX_CHROOT_DIR:-/var/tmp/pg_dtx_chroots}
MIRROR=${PG_DTX_MIRROR:-http://deb.debian.org/debian}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

[[ $# -ge 1 ]] || die "usage: chroot.sh VERSION [run_tests.sh arguments...]"
VERSION=$1
shift
[[ $(id -u) -eq 0 ]] || die "chroot.sh needs root (debootstrap, chroot, mount)"

case $VERSION in
17) SUITE=trixie ;;
18) SUITE=sid ;;
*) die "no chroot recipe for PostgreSQL $VERSION (17 or 18)" ;;
esac

ROOT=$CHROOT_BASE/$VERSION

# What the regress and TAP tiers need inside (the faults tier and the model
# checker are not run in the chroots).
PACKAGES=(postgresql-"$VERSION" postgresql-server-dev-"$VERSION"
	libipc-run-perl libkrb5-dev make gcc python3 util-linux iproute2
	perl ca-certificates)

# Run a command inside the chroot $1 with a clean environment.
in_root() {
	local root=$1
	shift
	chroot "$root" /usr/bin/env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# Build the chroot in $ROOT.new and move it to $ROOT once complete, so that
# an interrupted build is never taken for a usable chroot.
build_chroot() {
	local new=$ROOT.new
	echo "building the PostgreSQL $VERSION chroot ($SUITE) in $ROOT"
	rm -rf -- "$new"
	mkdir -p -- "$CHROOT_BASE"
	if ! command -v debootstrap >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap </dev/null ||
			{
				apt-get update </dev/null &&
					DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap </dev/null
			} || die "could not install debootstrap"
	fi
	debootstrap --variant=minbase "$SUITE" "$new" "$MIRROR" ||
		die "debootstrap $SUITE failed"

	# No service may start inside; no "main" cluster; sid's Release files
	# may be past their Valid-Until.
	printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
	chmod 755 "$new/usr/sbin/policy-rc.d"
	mkdir -p "$new/etc/postgresql-common"
	echo 'create_main_cluster = false' >"$new/etc/postgresql-common/createcluster.conf"
	if [[ $SUITE == sid ]]; then
		echo 'Acquire::Check-Valid-Until "false";' >"$new/etc/apt/apt.conf.d/99pg-dtx-no-valid-until"
	fi
	cp /etc/resolv.conf "$new/etc/resolv.conf" 2>/dev/null || true

	mount -t proc proc "$new/proc"
	if ! {
		in_root "$new" apt-get update &&
			in_root "$new" apt-get install -y --no-install-recommends \
				-o Dpkg::Options::=--force-confold "${PACKAGES[@]}"
	} </dev/null; then
		umount "$new/proc" || true
		die "could not install the PostgreSQL $VERSION packages in the chroot"
	fi
	umount "$new/proc"
	in_root "$new" apt-get clean
	[[ -x $new/usr/lib/postgresql/$VERSION/bin/pg_config ]] ||
		die "no pg_config for PostgreSQL $VERSION in the chroot"
	mv -- "$new" "$ROOT"
}

# The processes still running inside $ROOT (an interrupted run leaves its
# test servers behind): their pids.
chroot_pids() {
	local p root
	for p in /proc/[0-9]*; do
		root=$(readlink "$p/root" 2>/dev/null) || continue
		if [[ $root == "$ROOT" ]]; then
			printf '%s\n' "${p#/proc/}"
		fi
	done
}

MOUNTED=()
unmount_all() {
	local i pids
	# only when this run mounted anything, i.e. ran something inside
	if [[ ${#MOUNTED[@]} -gt 0 ]]; then
		mapfile -t pids < <(chroot_pids)
		if [[ ${#pids[@]} -gt 0 ]]; then
			kill -KILL "${pids[@]}" 2>/dev/null || true
			sleep 1
		fi
	fi
	for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || true
	done
	MOUNTED=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM

mount_at() {
	local target=$1
	shift
	mkdir -p -- "$target"
	mount "$@" "$target" || die "mount $* $target failed"
	MOUNTED+=("$target")
}

mkdir -p -- "$CHROOT_BASE"
exec 9>"$CHROOT_BASE/$VERSION.lock"
flock 9

if [[ ! -x $ROOT/usr/lib/postgresql/$VERSION/bin/pg_config ]]; then
	build_chroot
fi

# A fresh copy of the sources, owned by nobody in particular: run_tests.sh
# stages its own copy for the server's OS user.
rm -rf -- "$ROOT/build/pg_dtx"
mkdir -p -- "$ROOT/build/pg_dtx"
tar -C "$SRC" \
	--exclude=.git \
	--exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude='tmp_check*' \
	--exclude=./results --exclude=./log --exclude=./output_iso \
	--exclude=./regression.diffs --exclude=./regression.out \
	-cf - . | tar -C "$ROOT/build/pg_dtx" -xf - ||
	die "could not copy the sources into the chroot"

mount_at "$ROOT/proc" -t proc proc
mount_at "$ROOT/dev/pts" --bind /dev/pts
mount_at "$ROOT/dev/shm" -t tmpfs -o mode=1777,size=512m shm
mkdir -p "$ROOT/tmp" && chmod 1777 "$ROOT/tmp"

# The environment inside: only what run_tests.sh needs (values may hold spaces).
env_in=(TMPDIR=/tmp PG_DTX_IN_CHROOT="$VERSION"
	PG_DTX_TIERS="${PG_DTX_TIERS:-regress tap package}"
	PG_CONFIG="/usr/lib/postgresql/$VERSION/bin/pg_config")
for var in PROVE_TESTS PROVE_FLAGS PG_DTX_KEEP_STAGE; do
	if [[ -n ${!var:-} ]]; then
		env_in+=("$var=${!var}")
	fi
done

rc=0
in_root "$ROOT" "${env_in[@]}" bash /build/pg_dtx/test/run_tests.sh "$@" || rc=$?
exit "$rc"
