# Shared shell helpers for the scripts in scripts/ (sourced, not run).
# Callers set -euo pipefail themselves.

KG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian 12 packages: building, unit tests, and running/integration-testing.
KG_BUILD_PACKAGES=(autoconf automake make gcc pkg-config libfcgi-dev
	libcjson-dev libpq-dev libargon2-dev libinih-dev libunistring-dev
	libssl-dev libcmocka-dev libzxcvbn-dev)
KG_RUN_PACKAGES=(postgresql-15 lighttpd libfcgi-bin procps curl john-data python3
	util-linux)
KG_TEST_PACKAGES=(python3-pytest python3-requests python3-psycopg2 chromium
	systemd spawn-fcgi strace man-db dpkg-dev debhelper fakeroot lintian git
	apache2 libapache2-mod-fcgid clang-format)

KG_PGBIN="${KG_PGBIN:-/usr/lib/postgresql/15/bin}"
KG_PYTHON=/usr/bin/python3   # Debian's, with python3-pytest & co.

kg_say() { printf '==> %s\n' "$*" >&2; }
kg_die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# kg_missing_packages PKG... -- print the packages that are not installed
kg_missing_packages() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || printf '%s\n' "$p"
	done
}

# kg_ensure_packages PKG... -- install what is missing (root), or print the
# apt-get line and fail (not root). Services that the packages ship
# (PostgreSQL's "15 main" cluster, lighttpd on port 80) are kept from
# starting during the installation: the tests and scripts/run start their own.
kg_ensure_packages() {
	local missing
	mapfile -t missing < <(kg_missing_packages "$@")
	[ "${#missing[@]}" -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		printf '%s: missing packages; as root run:\n\n  apt-get update && apt-get install -y %s\n\n' \
			"${0##*/}" "${missing[*]}" >&2
		return 1
	fi
	kg_say "installing ${missing[*]}"
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# keygate scripts: no service starts during this install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	local rc=0
	# Another install running (a second script, unattended-upgrades) holds
	# dpkg's lock: wait for it instead of failing.
	local lock=(-o DPkg::Lock::Timeout=600)
	{ DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" update -q &&
	  DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -q --no-install-recommends \
		"${missing[@]}"; } || rc=$?
	[ "$made_policy" -eq 1 ] && rm -f "$policy"
	[ "$rc" -eq 0 ] || kg_die "apt-get failed ($rc)"
}

# kg_build [CONFIGURE_ARGS...] -- in the source tree: autoreconf if needed;
# ./configure ARGS if the tree is not configured, is configured by an older
# configure, or was configured without one of ARGS; then make.
kg_build() {
	cd "$KG_ROOT"
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
		kg_say "autoreconf -fi"
		autoreconf -fi
	fi
	local reconf=0 have="" a
	if [ ! -f Makefile ] || [ ! -x config.status ] || [ configure -nt config.status ]; then
		reconf=1
	else
		have=" $(./config.status --config 2>/dev/null | tr -d "'") "
		for a in "$@"; do
			case "$have" in *" $a "*) ;; *) reconf=1 ;; esac
		done
	fi
	if [ "$reconf" -eq 1 ]; then
		kg_say "./configure $*"
		./configure "$@"
	fi
	kg_say "make -j2"
	make -j2
}

# kg_pg_user -- the user that runs PostgreSQL: ourselves, or nobody as root
kg_pg_user() {
	if [ "$(id -u)" -eq 0 ]; then
		printf '%s\n' "${KG_PG_USER:-nobody}"
	else
		id -un
	fi
}

# kg_as_pg CMD... -- run a command as the PostgreSQL user
kg_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		# from /: the current directory may be closed to that user
		(cd / && runuser -u "$(kg_pg_user)" -- "$@")
	else
		"$@"
	fi
}

# kg_pg_can_use DIR -- can the PostgreSQL user create files in DIR?
kg_pg_can_use() {
	kg_as_pg test -w "$1" -a -x "$1"
}

# kg_finish_trap NAME -- on exit, print "NAME: PASS in Ns", or "NAME: FAIL in
# $stage (exit RC) after Ns"; callers keep $stage up to date as they go. A
# caller may define kg_finish_detail (printed after PASS, e.g. " (stages)")
# and kg_finish_note (lines printed after the PASS line).
kg_finish_trap() {
	KG_FINISH_NAME=$1
	KG_STARTED=$SECONDS
	stage="setup"
	trap kg_finish EXIT
}
kg_finish() {
	local rc=$? took=$((SECONDS - KG_STARTED)) detail=""
	if [ "$rc" -eq 0 ]; then
		declare -F kg_finish_detail >/dev/null && detail=$(kg_finish_detail)
		printf '\n==> %s: PASS%s in %ss\n' "$KG_FINISH_NAME" "$detail" "$took" >&2
		if declare -F kg_finish_note >/dev/null; then kg_finish_note >&2; fi
	else
		printf '\n==> %s: FAIL in %s (exit %s) after %ss\n' \
			"$KG_FINISH_NAME" "$stage" "$rc" "$took" >&2
	fi
}

# kg_export_src DIR -- DIR becomes a copy of the source files (tracked and
# untracked-but-not-ignored, without build-*/ and var/), configure generated
# in it. Unchanged files keep their times, so VPATH builds from it stay
# incremental; several scripts may share DIR (a lock keeps them apart).
# Out-of-tree builds need it: scripts/test configures the tree in place, and
# autoconf refuses a VPATH build from a source directory configured in place.
kg_export_src() {
	local dir=$1
	case "$dir" in /*) ;; *) dir="$KG_ROOT/$dir" ;; esac
	mkdir -p "$dir"
	(
		cd "$KG_ROOT"
		flock 9
		git ls-files -z -co --exclude-standard |
			while IFS= read -r -d '' f; do
				case "$f" in build-*/*|var/*) continue ;; esac
				# listed but deleted in the work tree: not part of it any more
				if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
			done >"$dir/.files.new"
		if [ -f "$dir/.files" ]; then
			# files gone from the tree go from the copy too
			sort -z "$dir/.files" | comm -z -23 - <(sort -z "$dir/.files.new") |
				(cd "$dir" && xargs -0 -r rm -f --)
		fi
		tar --null --no-recursion -T "$dir/.files.new" -cf - | (cd "$dir" && tar -xf -)
		mv "$dir/.files.new" "$dir/.files"
		cd "$dir"
		if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
			kg_say "autoreconf -fi in $dir"
			autoreconf -fi
		fi
	) 9>"$dir/.lock"
}

# kg_build_out DIR CONFIGURE_ARGS... -- a VPATH build in DIR (under the tree,
# e.g. build-asan) from build-src/, the source copy of kg_export_src:
# configured with ARGS when DIR is new or build-src's configure is newer
# than DIR's last configure. Builds nothing itself: callers run make -C DIR.
kg_build_out() {
	local dir="$KG_ROOT/$1"
	shift
	kg_say "source copy in build-src/"
	kg_export_src build-src
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ "$KG_ROOT/build-src/configure" -nt "$dir/config.status" ]; then
		kg_say "${dir#"$KG_ROOT"/}: configure $*"
		(cd "$dir" && "$KG_ROOT/build-src/configure" "$@")
	fi
}
