#!/usr/bin/env bash
# slurm-local.sh: a one-machine Slurm cluster (a controller and one node on
# this host) for dsbuild's Slurm executor tests and `make bench`.
#
#   scripts/slurm-local.sh          install (apt) if missing, configure, start
#   scripts/slurm-local.sh stop     stop the daemons by their pid files
#
# Idempotent: daemons already running (by their pid files) are left alone,
# and a configuration that exists is kept. Runs as root (or with sudo).
# Debian's slurm-wlm 22.05 with munge; no accounting (sacct has no history):
# dsbuild follows its jobs with squeue and the outcomes in its store.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
STATE=/var/lib/slurm-local
CONF=/etc/slurm/slurm.conf
MUNGE_PID=/run/munge/munged.pid

# alive PIDFILE: the process named by PIDFILE exists.
alive() { [ -s "$1" ] && $SUDO kill -0 "$(cat "$1")" 2>/dev/null; }

stop_one() {
	local f=$1
	if alive "$f"; then
		$SUDO kill "$(cat "$f")"
		for _ in $(seq 50); do alive "$f" || return 0; sleep 0.1; done
		echo "slurm-local: $(cat "$f") (from $f) did not stop" >&2
		return 1
	fi
}

if [ "${1:-}" = stop ]; then
	stop_one "$STATE/slurmd.pid"
	stop_one "$STATE/slurmctld.pid"
	stop_one "$MUNGE_PID"
	exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq slurm-wlm munge
fi

$SUDO mkdir -p "$STATE"/{state,spool,log} /etc/slurm
# The configuration this script writes; one written by anything else is
# left alone. Jobs get 1 GB per CPU unless they ask (without a default, a
# job would take the node's whole memory and run alone).
MARK="# written by dsbuild scripts/slurm-local.sh"
H=$(hostname -s); CPUS=$(nproc); MEM=$(free -m | awk '/Mem/{print int($2*0.8)}')
WANT=$(cat <<CONF
$MARK
ClusterName=local
SlurmctldHost=$H
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmUser=root
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$H CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
)
RECONFIGURE=""
if [ ! -f "$CONF" ] || { head -1 "$CONF" | grep -qxF "$MARK" && [ "$(cat "$CONF")" != "$WANT" ]; }; then
	printf '%s\n' "$WANT" | $SUDO tee "$CONF" >/dev/null
	RECONFIGURE=1
fi

if ! alive "$MUNGE_PID"; then
	[ -f /etc/munge/munge.key ] || $SUDO mungekey -c
	$SUDO chown munge:munge /etc/munge/munge.key
	$SUDO mkdir -p /run/munge
	$SUDO chown munge:munge /run/munge
	$SUDO su -s /bin/sh munge -c munged
fi
alive "$STATE/slurmctld.pid" || $SUDO slurmctld
alive "$STATE/slurmd.pid" || $SUDO slurmd
# Daemons that were running read a changed configuration again.
[ -z "$RECONFIGURE" ] || $SUDO scontrol reconfigure

# Wait until the node takes jobs.
for _ in $(seq 100); do
	if sinfo -h -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then
		sinfo
		exit 0
	fi
	sleep 0.2
done
echo "slurm-local: the node did not come up; see $STATE/log/slurmctld.log and $STATE/log/slurmd.log" >&2
sinfo >&2 || true
exit 1
