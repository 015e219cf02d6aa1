#!/usr/bin/env bash
# Installs what tests/test_slurm.py needs to start its own single-node Slurm cluster (Debian, as root).
# Starts no daemon: the test runs munged, slurmctld and slurmd under a temporary directory and stops them.
# Idempotent: does nothing when the commands are already there.
set -euo pipefail

needed=(munged slurmctld slurmd sbatch srun squeue scontrol sinfo sacct scancel)
missing=0
for command in "${needed[@]}"; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null || missing=1
done
[ "$missing" = 0 ] && exit 0

# keep the packages' maintainer scripts from starting the daemons (the Debian policy-rc.d mechanism)
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
