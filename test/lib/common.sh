# shellcheck shell=bash
#
# test/lib/common.sh - helpers shared by test/run_tests.sh and test/demo.sh.
#
# Source it; do not run it. It defines:
#
#   PROJECT_ROOT        the top of the pg_dtx source tree
#   PG_CONFIG           pg_config of the PostgreSQL to build against
#                       (default /usr/lib/postgresql/15/bin/pg_config;
#                       override it to use another installation)
#   PG_MAJOR            its major version, from the path .../postgresql/NN/bin
#                       (else 15): the Debian packages asked for are
#                       postgresql-server-dev-NN and postgresql-NN
#   PG_BINDIR           that installation's bin directory (put first on PATH)
#   PG_OS_USER          the OS user that runs the servers: "postgres" when we
#                       are root (PostgreSQL refuses to run as root), the
#                       current user otherwise
#
#   log / warn / die    messages on stderr
#   heading TEXT        a visible step heading on stdout
#   ensure_build_deps   install the Debian build/test packages if missing
#   build_and_install   make && make install
#   pgxs_dir            print the PGXS directory (.../lib/pgxs) of PG_CONFIG
#   stage_tree [SRC]    copy the tree (no .git, no build products) into a
#                       fresh temporary directory owned by PG_OS_USER and
#                       print its path
#   as_pg CMD...        run CMD as PG_OS_USER (via runuser when we are root)
#
# The helpers assume the caller runs with `set -euo pipefail`.

# Guard against being sourced twice.
if [[ -n "${PG_DTX_COMMON_SH:-}" ]]; then
	return 0
fi
PG_DTX_COMMON_SH=1

PROJECT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BINDIR=$(dirname "$PG_CONFIG")
PATH="$PG_BINDIR:$PATH"
export PG_CONFIG PATH

if [[ -z ${PG_MAJOR:-} ]]; then
	PG_MAJOR=$(sed -n 's|^.*/postgresql/\([0-9][0-9]*\)/bin/pg_config$|\1|p' <<<"$PG_CONFIG")
	PG_MAJOR=${PG_MAJOR:-15}
fi

# Debian packages needed to build the extension and to run every test tier;
# in a chroot of test/lib/chroot.sh (regress and TAP only) what it installs.
if [[ -n ${PG_DTX_IN_CHROOT:-} ]]; then
	BUILD_DEPS=(postgresql-server-dev-"$PG_MAJOR" libipc-run-perl libkrb5-dev
		make gcc python3 python3-psycopg python3-asyncpg)
else
	BUILD_DEPS=(postgresql-server-dev-"$PG_MAJOR" libipc-run-perl libkrb5-dev
		make gcc python3-psycopg2 iproute2 nftables spin python3-psycopg
		python3-asyncpg)
fi

if [[ $(id -u) -eq 0 ]]; then
	PG_OS_USER=postgres
else
	PG_OS_USER=$(id -un)
fi

log() { printf '%s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}
heading() { printf '\n==== %s ====\n' "$*"; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# Is the Debian package $1 installed?
pkg_installed() {
	local status
	status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	[[ $status == "install ok installed" ]]
}

# Can we build and test without the Debian packages? (A non-root user with
# a PostgreSQL installation of their own, for example.)
toolchain_usable() {
	command -v make >/dev/null &&
		command -v gcc >/dev/null &&
		command -v prove >/dev/null &&
		perl -MIPC::Run -e 1 2>/dev/null &&
		[[ -x $PG_CONFIG ]] &&
		[[ -f $("$PG_CONFIG" --pgxs 2>/dev/null) ]] &&
		[[ -f "$("$PG_CONFIG" --includedir-server 2>/dev/null)/postgres.h" ]]
}

# Install whichever of BUILD_DEPS is missing (apt-get update runs once).
ensure_build_deps() {
	local pkg missing=()

	if ! command -v dpkg-query >/dev/null; then
		toolchain_usable ||
			die "not a Debian system and the build tools are incomplete; need: ${BUILD_DEPS[*]} (or equivalents)"
		return 0
	fi
	for pkg in "${BUILD_DEPS[@]}"; do
		pkg_installed "$pkg" || missing+=("$pkg")
	done
	# The node-postgres driver test needs node and npm (any origin will do;
	# in a chroot it is skipped).
	if [[ -z ${PG_DTX_IN_CHROOT:-} ]] &&
		{ ! command -v node >/dev/null || ! command -v npm >/dev/null; }; then
		missing+=(nodejs npm)
	fi
	# The server itself (initdb, postgres) comes from postgresql-NN.
	if [[ ! -x $PG_BINDIR/postgres ]] && [[ $PG_CONFIG == /usr/lib/postgresql/$PG_MAJOR/* ]]; then
		missing+=(postgresql-"$PG_MAJOR")
	fi
	if [[ ${#missing[@]} -eq 0 ]]; then
		return 0
	fi

	if ! is_root; then
		if toolchain_usable; then
			warn "Debian packages not installed (${missing[*]}), but the tools they provide were found; carrying on"
			return 0
		fi
		die "missing Debian packages: ${missing[*]}
       Run as root (the script installs them), or first run:
         sudo apt-get update && sudo apt-get install -y ${missing[*]}"
	fi

	log "Installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update </dev/null ||
		die "apt-get update failed"
	apt-get install -y "${missing[@]}" </dev/null ||
		die "apt-get install ${missing[*]} failed"
}

# Build the extension in the source tree and install it into PG_CONFIG's
# installation. The Makefile's own flags (-Wall -Wextra -Werror) apply.
build_and_install() {
	local jobs
	jobs=$(nproc 2>/dev/null || echo 2)
	[[ -x $PG_CONFIG ]] || die "pg_config not found at $PG_CONFIG"
	make -C "$PROJECT_ROOT" -j"$jobs" PG_CONFIG="$PG_CONFIG" ||
		die "build failed"
	make -C "$PROJECT_ROOT" PG_CONFIG="$PG_CONFIG" install ||
		die "make install failed (is $("$PG_CONFIG" --pkglibdir) writable by $(id -un)?)"
}

# The PGXS directory (…/lib/postgresql/NN/lib/pgxs): pg_regress, the
# isolation tester and the TAP Perl modules live below it.
pgxs_dir() {
	local mk
	mk=$("$PG_CONFIG" --pgxs)
	(cd "$(dirname "$mk")/../.." && pwd)
}

# Make sure PG_OS_USER exists (root only; a fresh machine with only the
# -dev package may lack it).
ensure_pg_os_user() {
	if is_root && ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
		log "Creating the system user $PG_OS_USER"
		useradd --system --user-group --home-dir /var/lib/postgresql \
			--shell /bin/bash "$PG_OS_USER" ||
			die "could not create the user $PG_OS_USER"
	fi
}

# Copy the project (without .git and build/test products) to a fresh
# temporary directory owned by PG_OS_USER; print the directory's path.
stage_tree() {
	local src=${1:-$PROJECT_ROOT} dest
	ensure_pg_os_user
	dest=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_stage.XXXXXX") ||
		die "mktemp failed"
	tar -C "$src" \
		--exclude=.git \
		--exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude='*.trail' \
		--exclude='tmp_check*' \
		--exclude=./results --exclude=./log --exclude=./output_iso \
		--exclude=./regression.diffs --exclude=./regression.out \
		-cf - . | tar -C "$dest" -xf - ||
		die "could not copy $src to $dest"
	if is_root; then
		chown -R "$PG_OS_USER": "$dest" ||
			die "could not hand $dest to $PG_OS_USER"
	fi
	printf '%s\n' "$dest"
}

# Run a command as PG_OS_USER, keeping PATH and the rest of the environment.
as_pg() {
	if is_root; then
		runuser -u "$PG_OS_USER" -- env PATH="$PATH" "$@"
	else
		"$@"
	fi
}
