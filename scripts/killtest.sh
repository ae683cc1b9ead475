#!/usr/bin/env bash
# killtest.sh: SIGKILL builds at random points and show that nothing is
# lost or left behind.
#
#   scripts/killtest.sh [DSBUILD]      (default: bin/dsbuild, else `go build`)
#
# A small recipe (one tiny project from recipes/quickstart/projects/textkit,
# a Debian environment with python3 and pytest, an injected bug, an oracle
# rollout and an export) is built in a clean store and, killed with SIGKILL
# at KILLTEST_POINTS (20) random points, in another store:
#
#   - the first KILLTEST_MMDEBSTRAP (3) kills come at a random moment while
#     mmdebstrap builds the environment (the base is then built once, in
#     full, and reused);
#   - the others come in rounds: round r builds the recipe with bug seed r,
#     so that there is always work left to kill: first cleanly, which
#     measures its time T, then in the killed store, killed after a random
#     delay in [0, 0.6 T] and resumed, again and again, until a resumed
#     build finishes. Kills so fall anywhere: sandbox runs, bug injection,
#     rollouts, the export, publishing, the end of a build.
#
# After every kill nothing the build started may keep running (bubblewrap,
# mmdebstrap, apt, dpkg, ...) or stay mounted. Every round's output must be
# byte-identical to the clean build's of the same recipe. At the end
# `dsbuild cache verify` must find no problem, and nothing may be left: no
# process, no mount, no temporary directory (nothing in the builds'
# TMPDIR, no <out>.tmp-* or <out>.old-* beside an output, no mmdebstrap
# work directory, workspace or unpack in the store).
#
# It needs bubblewrap, mmdebstrap and a Debian mirror (two mmdebstrap
# runs). Conditions are waited for with generous bounds (60 s), never
# timed. KILLTEST_SEED makes the kill points repeatable; KILLTEST_KEEP=1
# keeps the work directory. Leftovers in the store's own tmp/ (an export's
# work directory, reclaimed by the next export that runs, and files only gc
# removes) are reported as notes; KILLTEST_STRICT=1 makes them failures. Exit status 0 when every check passed.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
DSBUILD=${1:-${DSBUILD:-}}
if [ -z "$DSBUILD" ]; then
	DSBUILD=$here/bin/dsbuild
	if [ ! -x "$DSBUILD" ]; then
		(cd "$here" && go build -o bin/dsbuild ./cmd/dsbuild) || exit 1
	fi
fi
DSBUILD=$(cd "$(dirname "$DSBUILD")" && pwd)/$(basename "$DSBUILD")
POINTS=${KILLTEST_POINTS:-20}
MMPOINTS=${KILLTEST_MMDEBSTRAP:-3}
SEED=${KILLTEST_SEED:-$$}
RANDOM=$SEED

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsbuild-killtest-XXXXXX")
chmod 755 "$WORK" # the sandbox's uid must reach the store
K=$WORK/kill      # the killed builds: store, outputs, TMPDIR
C=$WORK/clean     # the clean builds
mkdir -p "$K/tmp" "$C/tmp" "$WORK/recipe/projects"
cp -r "$here/recipes/quickstart/projects/textkit" "$WORK/recipe/projects/"
# A file holding the path to look for, so that no checker's own command
# line contains it.
printf '%s\n' "$K" >"$WORK/pattern"

# recipe N: the path of the recipe with bug seed N.
recipe() {
	local f=$WORK/recipe/killtest-$1.yaml
	[ -f "$f" ] || cat >"$f" <<EOF
name: killtest
environments:
  python:
    debian: {suite: bookworm, packages: [python3, python3-pytest]}
sandbox: {timeout: 60s}
stages:
  repos:   {uses: repo, with: {paths: [projects/*]}}
  checked: {uses: validate, foreach: repos, with: {environment: python, runs: 1}}
  bugs:    {uses: inject_bugs, foreach: checked, with: {per_repo: 1, candidates: 3, seed: $1, test_timeout: 5s}}
  demos:   {uses: rollout, foreach: bugs, with: {policy: oracle}}
  dataset: {uses: export, from: [bugs, demos]}
EOF
	echo "$f"
}

failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# over START SECONDS: more than SECONDS have passed since START.
over() { awk -v a="$1" -v b="$(now)" -v s="$2" 'BEGIN { exit !(b - a > s) }'; }

# processes PATTERN_FILE: the processes (but this shell) whose command line
# or environment names the path in the file, with their command lines.
processes() {
	local f pid
	grep -lsaF -f "$1" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null |
		sed -n 's|^/proc/\([0-9]*\)/.*|\1|p' | sort -u |
		while read -r pid; do
			[ "$pid" = $$ ] && continue
			f=/proc/$pid/cmdline
			[ -r "$f" ] && echo "$pid $({ tr '\0' ' ' <"$f"; } 2>/dev/null | cut -c1-160)"
		done
}
mounts() { awk '{ print $5 }' /proc/self/mountinfo | grep -F -f "$1"; }
# has_mmdebstrap: mmdebstrap runs for the killed builds' store.
has_mmdebstrap() { processes "$WORK/pattern" | grep -q mmdebstrap; }

# nothing_left WHEN: within 60 s, no process and no mount of the killed
# builds may be left.
nothing_left() {
	local start left
	start=$(now)
	while left=$(processes "$WORK/pattern") && [ -n "$left" ]; do
		if over "$start" 60; then
			fail "60 s after $1, processes are left: $left"
			kill -9 $(echo "$left" | awk '{ print $1 }') 2>/dev/null
			return
		fi
		sleep 0.2
	done
	left=$(mounts "$WORK/pattern")
	[ -n "$left" ] && fail "after $1, mounts are left: $left"
}

# build DIR N: build recipe N into DIR/out-N, in the background.
build() {
	env TMPDIR="$1/tmp" "$DSBUILD" --json --cache "$1/store" --out "$1/out-$2" "$(recipe "$2")" >"$1/events" 2>"$1/stderr" &
	BUILD_PID=$!
}
alive() { kill -0 "$BUILD_PID" 2>/dev/null; }

# killed WHERE: SIGKILL the build and check what it leaves running.
killed() {
	kill -9 "$BUILD_PID"
	wait "$BUILD_PID" 2>/dev/null
	kills=$((kills + 1))
	echo "kill $kills: $1"
	nothing_left "kill $kills"
}

# finish N: build recipe N in the killed store to the end.
finish() {
	build "$K" "$1"
	wait "$BUILD_PID"
	local status=$?
	[ $status -ne 0 ] && fail "round $1: the resumed build failed: exit $status: $(tail -c 1000 "$K/stderr")"
	nothing_left "round $1's last build"
}

# same N: the outputs of recipe N are byte-identical: contents, and the
# names, types, modes and sizes of every entry.
listing() { (cd "$1" && find . -printf '%P %y %m %s %l\n' | LC_ALL=C sort); }
same() {
	if ! diff -r "$C/out-$1" "$K/out-$1" >"$WORK/diff" 2>&1; then
		fail "round $1: outputs differ: $(head -c 1000 "$WORK/diff")"
	elif ! diff <(listing "$C/out-$1") <(listing "$K/out-$1") >"$WORK/diff" 2>&1; then
		fail "round $1: output listings differ: $(head -c 1000 "$WORK/diff")"
	elif [ "$(find "$K/out-$1" -type f | wc -l)" -lt 2 ]; then
		fail "round $1: no output"
	else
		compared=$((compared + 1))
		files=$((files + $(find "$K/out-$1" -type f | wc -l)))
	fi
}

echo "killtest: seed $SEED, $POINTS kill points ($MMPOINTS during mmdebstrap), work in $WORK"
t0=$(now)
kills=0 compared=0 files=0

# Round 1: the clean build runs beside the kills during mmdebstrap (both
# mostly wait on the mirror).
env TMPDIR="$C/tmp" "$DSBUILD" --json --cache "$C/store" --out "$C/out-1" "$(recipe 1)" >"$C/events" 2>"$C/stderr" &
CLEAN_PID=$!
while [ $kills -lt "$MMPOINTS" ]; do
	build "$K" 1
	start=$(now)
	while alive && ! has_mmdebstrap && ! over "$start" 300; do sleep 0.1; done
	if ! has_mmdebstrap; then
		fail "kill $((kills + 1)): mmdebstrap never ran ($(tail -c 300 "$K/stderr"))"
		kill -9 "$BUILD_PID" 2>/dev/null
		wait "$BUILD_PID" 2>/dev/null
		break
	fi
	delay=$((RANDOM % 200))
	for _ in $(seq "$delay"); do
		alive && has_mmdebstrap || break
		sleep 0.1
	done
	if ! alive; then
		wait "$BUILD_PID"
		echo "  (the build ended, status $?, before the kill: not counted)"
		continue
	fi
	state="still running"
	has_mmdebstrap || state="it had ended"
	killed "while mmdebstrap runs, $(awk -v d="$delay" 'BEGIN { printf "%.1f", d / 10 }') s into it ($state)"
done
echo "round 1: the environment, built in full"
finish 1
wait "$CLEAN_PID"
status=$?
[ $status -ne 0 ] && fail "clean build 1: exit $status: $(tail -c 1000 "$C/stderr")"
same 1

# Rounds 2, 3, ...: kills at random points of builds with work to do.
r=1
while [ $kills -lt "$POINTS" ] && [ $r -le $((POINTS + 1)) ] && [ $failures -eq 0 ]; do
	r=$((r + 1))
	start=$(now)
	env TMPDIR="$C/tmp" "$DSBUILD" --json --cache "$C/store" --out "$C/out-$r" "$(recipe "$r")" >"$C/events" 2>"$C/stderr"
	status=$?
	ms=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }')
	[ $status -ne 0 ] && fail "clean build $r: exit $status: $(tail -c 1000 "$C/stderr")"
	echo "round $r: the clean build takes $ms ms"
	while [ $kills -lt "$POINTS" ]; do
		build "$K" "$r"
		delay=$(((RANDOM * 32768 + RANDOM) % (ms * 6 / 10 + 1)))
		sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
		if ! alive; then
			wait "$BUILD_PID"
			status=$?
			[ $status -ne 0 ] && fail "round $r: the resumed build failed: exit $status: $(tail -c 1000 "$K/stderr")"
			nothing_left "round $r's last build"
			break
		fi
		last=$(grep -o '"node":"[^"]*",.*"status":"[a-z]*"' "$K/events" | tail -n 1 | sed 's/"key":"[0-9a-f]*",//')
		killed "round $r, ${delay} ms into a build (last event: ${last:-none})"
		[ $kills -eq "$POINTS" ] && finish "$r"
	done
	same "$r"
done
[ $kills -lt "$POINTS" ] && fail "only $kills of $POINTS kill points hit a running build"

if ! "$DSBUILD" --cache "$K/store" cache verify >"$WORK/verify" 2>&1; then
	fail "cache verify: $(tail -c 1000 "$WORK/verify")"
fi

# Temporary directories: none of the killed builds' may be left.
left=$(
	cd "$K" && ls -d out-*.tmp-* out-*.old-* 2>/dev/null
	cd "$K/store" && ls -d tmp/mmdebstrap-* work/run-* rootfs/unpack-* 2>/dev/null
	cd "$K/tmp" && ls -A | grep -v '^dsbuild-export-'
)
[ -n "$left" ] && fail "temporary directories left: $(echo $left)"
[ -n "$(ls -A "$C/tmp")" ] && fail "the clean builds left in TMPDIR: $(ls -A "$C/tmp")"
# Leftovers of code this script does not cover.
notes=$(
	cd "$K/tmp" && ls -d dsbuild-export-* 2>/dev/null
	cd "$K/store/tmp" && ls -A | grep -v '^mmdebstrap-' | sed 's|^|store/tmp/|'
)
if [ -n "$notes" ]; then
	echo "NOTE: left by killed builds in the store's tmp/ (the next export or gc removes them): $(echo $notes)"
	[ "${KILLTEST_STRICT:-}" = 1 ] && fail "strict: $(echo $notes)"
fi

echo "killtest: $kills kills; $compared rounds, $files output files identical to the clean builds'; verify: $(tail -n 1 "$WORK/verify"); $(since "$t0") s"
if [ "${KILLTEST_KEEP:-}" = 1 ] || [ $failures -gt 0 ]; then
	echo "killtest: work directory kept: $WORK"
else
	chmod -R u+rwX "$WORK" 2>/dev/null
	rm -rf "$WORK"
fi
if [ $failures -gt 0 ]; then
	echo "killtest: $failures checks FAILED"
	exit 1
fi
echo "killtest: ok"
