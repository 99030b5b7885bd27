#!/usr/bin/env bash
#
# test/package.sh - build the Debian package of pg_dtx and run the pg_regress
# tests against the installed package (what `make package` runs).
#
#   bash test/package.sh                    build, check, test privately
#   bash test/package.sh --install          build, check, dpkg -i, test
#   bash test/package.sh --check-installed  test the package already installed
#
# Options (or the environment):
#   --pg-config PATH   pg_config of the PostgreSQL to package for (PG_CONFIG;
#                      default /usr/lib/postgresql/15/bin/pg_config). Its
#                      major version N selects the package
#                      postgresql-N-pg-dtx; the build itself uses pg_buildext,
#                      hence /usr/lib/postgresql/N (postgresql-server-dev-N).
#   --version N        short for --pg-config /usr/lib/postgresql/N/bin/pg_config
#   --out DIR          keep the built .deb files in DIR (PG_DTX_PKG_OUT)
#
# What it does:
#   1. checks that META.json, debian/changelog and pg_dtx.control name the
#      same version;
#   2. copies the tree (no .git, no build products) to a temporary directory
#      and runs `dpkg-buildpackage -us -uc -b` there, for version N only
#      (PG_SUPPORTED_VERSIONS=N): the source tree is left as it was;
#   3. checks the .deb (dpkg-deb -c, -f): the library, the control file and
#      every sql/pg_dtx--*.sql of the tree under N's directories, nothing
#      else outside the package's doc directory, Depends on postgresql-N;
#   4. default (private): copies PG_CONFIG's installation (its
#      usr/lib/postgresql/N and usr/share/postgresql/N, without any pg_dtx
#      file a `make install` left there) to the temporary directory, unpacks
#      the .deb into that copy with `dpkg -x`, and runs `make installcheck`
#      with that copy's pg_config: pg_regress on a temporary instance
#      (test/regress.conf), nothing built from source. The system is not
#      touched: this is the variant for machines shared with other tests.
#      --install: installs the .deb with `dpkg -i` into the system's
#      PostgreSQL N instead, then runs the same tests against it. This
#      changes the machine (the package stays installed): only for a machine
#      of its own, as .ci/run has.
#      --check-installed: only the tests, against PG_CONFIG's installation,
#      where postgresql-N-pg-dtx must be installed (debian/tests).
#
# Root is needed to build (build dependencies are installed with apt-get when
# missing) and for --install; the tests run as the "postgres" OS user when
# run as root. The last line is "N passed, N failed" (pg_regress tests, plus
# one for the versions and one for the package build and check); the exit status is non-zero when
# anything failed. PG_DTX_KEEP_STAGE=1 keeps the temporary directory.

set -euo pipefail

MODE=private
OUT=${PG_DTX_PKG_OUT:-}
usage() {
	sed -n '3,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
while [[ $# -gt 0 ]]; do
	case $1 in
	--install) MODE=install ;;
	--check-installed) MODE=installed ;;
	--pg-config)
		[[ $# -ge 2 ]] || { usage >&2; exit 1; }
		PG_CONFIG=$2
		shift
		;;
	--version)
		[[ $# -ge 2 ]] || { usage >&2; exit 1; }
		PG_CONFIG=/usr/lib/postgresql/$2/bin/pg_config
		shift
		;;
	--out)
		[[ $# -ge 2 ]] || { usage >&2; exit 1; }
		OUT=$2
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		printf 'ERROR: unknown argument: %s\n' "$1" >&2
		exit 1
		;;
	esac
	shift
done
export PG_CONFIG
if [[ -n $OUT ]]; then
	OUT=$(realpath -m -- "$OUT")
fi

# shellcheck source=test/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

[[ -x $PG_CONFIG ]] || die "pg_config not found at $PG_CONFIG"
PGVERSION=$("$PG_CONFIG" --version)
[[ $PGVERSION =~ ^PostgreSQL\ ([0-9]+) ]] || die "cannot read the major version from '$PGVERSION'"
MAJOR=${BASH_REMATCH[1]}
PACKAGE=postgresql-$MAJOR-pg-dtx

WORK=""
STAGE=""
PRIVATE_PG_CONFIG=""
KEEP_STAGE=${PG_DTX_KEEP_STAGE:-0}
PASSED=0
FAILED=0
cleanup() {
	if [[ $KEEP_STAGE == 1 || $FAILED -gt 0 ]]; then
		[[ -n $WORK ]] && log "temporary directories kept: $WORK $STAGE"
		return 0
	fi
	[[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
	[[ -n $STAGE && -d $STAGE ]] && rm -rf -- "$STAGE"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Record a failure and end with the summary line.
fail() {
	printf 'FAILED: %s\n' "$*" >&2
	FAILED=$((FAILED + 1))
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	exit 1
}

# The Debian packages the build needs (pg_buildext, debhelper's pgxs build
# system, the server headers of version MAJOR).
ensure_package_deps() {
	local pkg missing=()
	command -v dpkg-query >/dev/null || die "dpkg-query not found: a Debian system is needed"
	for pkg in build-essential debhelper dpkg-dev fakeroot postgresql-server-dev-all "postgresql-server-dev-$MAJOR" libkrb5-dev; do
		pkg_installed "$pkg" || missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	is_root || die "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)"
	log "Installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update </dev/null || die "apt-get update failed"
	apt-get install -y --no-install-recommends "${missing[@]}" </dev/null ||
		die "apt-get install ${missing[*]} failed"
}

# The version is the same in META.json (PGXN), debian/changelog and
# pg_dtx.control (default_version 1.2 for 1.2.0), and META.json's file exists.
check_versions() {
	local meta meta_provides deb control file
	heading "Checking the versions of META.json, debian/changelog, pg_dtx.control"
	meta=$(perl -MJSON::PP -0777 -ne 'my $m = decode_json($_); print "$m->{version} $m->{provides}{pg_dtx}{version} $m->{provides}{pg_dtx}{file}"' "$PROJECT_ROOT/META.json") ||
		fail "META.json is not valid JSON"
	read -r meta meta_provides file <<<"$meta"
	deb=$(cd "$PROJECT_ROOT" && dpkg-parsechangelog -S Version)
	deb=${deb%-*}
	control=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$PROJECT_ROOT/pg_dtx.control")
	echo "META.json $meta (pg_dtx $meta_provides, $file), debian/changelog $deb, pg_dtx.control $control"
	[[ $meta == "$deb" && $meta_provides == "$meta" ]] ||
		fail "META.json ($meta, pg_dtx $meta_provides) and debian/changelog ($deb) disagree"
	[[ $meta == "$control" || $meta == "$control.0" ]] ||
		fail "META.json ($meta) and pg_dtx.control ($control) disagree"
	[[ -f $PROJECT_ROOT/$file ]] || fail "META.json names $file, which does not exist"
	PASSED=$((PASSED + 1))
}

# Build the .deb of MAJOR in a copy of the tree; set DEB.
build_package() {
	local src=$WORK/pg-dtx log=$WORK/build.log
	heading "Building $PACKAGE (dpkg-buildpackage in a copy of the tree)"
	mkdir -p "$src"
	tar -C "$PROJECT_ROOT" \
		--exclude=.git \
		--exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude='tmp_check*' --exclude='./build-*' \
		--exclude=./results --exclude=./log --exclude=./output_iso \
		--exclude=./regression.diffs --exclude=./regression.out \
		-cf - . | tar -C "$src" -xf - ||
		die "could not copy $PROJECT_ROOT to $src"
	# Only version MAJOR; debian/control regenerated for it (in the copy).
	if ! (cd "$src" && PG_SUPPORTED_VERSIONS=$MAJOR PG_UPDATECONTROL=yes \
		dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
		tail -n 60 "$log"
		fail "dpkg-buildpackage (log: $log)"
	fi
	DEB=$(find "$WORK" -maxdepth 1 -name "${PACKAGE}_*.deb" | head -n 1)
	[[ -n $DEB ]] || fail "dpkg-buildpackage made no ${PACKAGE}_*.deb"
	log "built $DEB"
	if [[ -n $OUT ]]; then
		mkdir -p "$OUT"
		cp -- "$WORK"/*.deb "$OUT"/
		log "copied the .deb files to $OUT"
	fi
}

# Check what the .deb holds and depends on.
check_package() {
	local listing expected f depends unexpected
	heading "Checking the content of ${DEB##*/}"
	listing=$(dpkg-deb -c "$DEB" | awk '{ print $NF }' | sed 's|^\./|/|') ||
		fail "dpkg-deb -c $DEB"
	printf '%s\n' "$listing" | grep -v '/$'
	expected=("/usr/lib/postgresql/$MAJOR/lib/pg_dtx.so"
		"/usr/share/postgresql/$MAJOR/extension/pg_dtx.control")
	for f in "$PROJECT_ROOT"/sql/pg_dtx--*.sql; do
		expected+=("/usr/share/postgresql/$MAJOR/extension/${f##*/}")
	done
	for f in "${expected[@]}"; do
		grep -qxF -- "$f" <<<"$listing" || fail "$PACKAGE lacks $f"
	done
	# Files (not directories) outside the places of a PostgreSQL extension.
	unexpected=$(grep -v '/$' <<<"$listing" |
		grep -Ev "^/usr/(lib/postgresql/$MAJOR/lib/pg_dtx\.so|share/postgresql/$MAJOR/extension/pg_dtx[-.][^/]*|share/doc/$PACKAGE/[^/]*)$" || true)
	[[ -z $unexpected ]] || fail "$PACKAGE holds unexpected files: $unexpected"
	[[ $(dpkg-deb -f "$DEB" Package) == "$PACKAGE" ]] || fail "the package is not named $PACKAGE"
	depends=$(dpkg-deb -f "$DEB" Depends)
	[[ $depends =~ (^|,\ )postgresql-$MAJOR(,|\ |$) ]] ||
		fail "$PACKAGE does not depend on postgresql-$MAJOR (Depends: $depends)"
	echo "Depends: $depends"
	echo "package content: OK"
	PASSED=$((PASSED + 1))
}

# The private installation: PG_CONFIG's installation copied without pg_dtx,
# the .deb unpacked into it. Sets PRIVATE_PG_CONFIG, the copy's pg_config.
private_install() {
	local bindir base root=$WORK/root sub left
	bindir=$("$PG_CONFIG" --bindir)
	base=${bindir%/usr/lib/postgresql/"$MAJOR"/bin}
	[[ $base != "$bindir" ]] ||
		die "$PG_CONFIG is not laid out as Debian's PostgreSQL (…/usr/lib/postgresql/$MAJOR/bin)"
	for sub in "usr/lib/postgresql/$MAJOR" "usr/share/postgresql/$MAJOR"; do
		mkdir -p "$root/${sub%/*}"
		cp -a "$base/$sub" "$root/$sub" || die "could not copy $base/$sub"
	done
	rm -f "$root/usr/lib/postgresql/$MAJOR/lib/pg_dtx.so" \
		"$root/usr/share/postgresql/$MAJOR/extension"/pg_dtx[-.]*
	rm -rf "$root/usr/lib/postgresql/$MAJOR/lib/bitcode/pg_dtx"*
	left=$(find "$root" -name 'pg_dtx*' | head -n 1)
	[[ -z $left ]] || die "could not remove $left from the copy"
	dpkg -x "$DEB" "$root" || fail "dpkg -x $DEB $root"
	# The tests run as PG_OS_USER: the temporary directory must be readable.
	chmod 755 "$WORK"
	PRIVATE_PG_CONFIG=$root/usr/lib/postgresql/$MAJOR/bin/pg_config
	[[ $("$PRIVATE_PG_CONFIG" --pkglibdir) == "$root/usr/lib/postgresql/$MAJOR/lib" ]] ||
		die "the copy of the installation does not relocate: $PRIVATE_PG_CONFIG --pkglibdir is $("$PRIVATE_PG_CONFIG" --pkglibdir)"
}

# pg_regress (make installcheck, temporary instance) against the pg_dtx
# installed in the installation of pg_config $1, from a copy of the tree
# holding no build products: nothing is compiled.
run_installcheck() {
	local pgc=$1 log rc=0 built line
	heading "pg_regress against $("$pgc" --pkglibdir)/pg_dtx.so"
	[[ -f $("$pgc" --pkglibdir)/pg_dtx.so ]] || fail "no pg_dtx.so in $("$pgc" --pkglibdir)"
	STAGE=$(stage_tree "$PROJECT_ROOT")
	log=$WORK/installcheck.log
	as_pg env PATH="$(dirname "$pgc"):$PATH" \
		make --no-print-directory -C "$STAGE" PG_CONFIG="$pgc" installcheck 2>&1 |
		tee "$log" || rc=$?
	built=$(find "$STAGE" -name '*.o' -o -name '*.so' | head -n 1)
	[[ -z $built ]] || fail "the tests built $built from source"
	line=$(grep -E 'All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests (failed|passed)' "$log" | tail -n 1 || true)
	if [[ $rc -eq 0 && $line =~ All\ ([0-9]+)\ tests\ passed ]]; then
		PASSED=$((PASSED + BASH_REMATCH[1]))
		return 0
	fi
	if [[ -s $STAGE/regression.diffs ]]; then
		head -n 200 "$STAGE/regression.diffs"
	fi
	if [[ $line =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ failed ]]; then
		PASSED=$((PASSED + BASH_REMATCH[2] - BASH_REMATCH[1]))
		FAILED=$((FAILED + BASH_REMATCH[1] - 1))
	fi
	fail "pg_regress against the package (kept: $STAGE)"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_pkg.XXXXXX") || die "mktemp failed"
case $MODE in
private)
	ensure_package_deps
	check_versions
	build_package
	check_package
	heading "Unpacking ${DEB##*/} into a copy of the installation of $PG_CONFIG"
	private_install
	run_installcheck "$PRIVATE_PG_CONFIG"
	;;
install)
	is_root || die "--install needs root (dpkg -i)"
	[[ $PG_CONFIG == "/usr/lib/postgresql/$MAJOR/bin/pg_config" ]] ||
		die "--install installs into /usr/lib/postgresql/$MAJOR; PG_CONFIG is $PG_CONFIG"
	ensure_package_deps
	check_versions
	build_package
	check_package
	heading "dpkg -i ${DEB##*/}"
	dpkg -i "$DEB" || fail "dpkg -i $DEB"
	run_installcheck "$PG_CONFIG"
	;;
installed)
	pkg_installed "$PACKAGE" || die "$PACKAGE is not installed"
	run_installcheck "$PG_CONFIG"
	;;
esac
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
