#!/bin/sh
# Run a command in its own cgroup (v1 cpu + cpuacct, as on this machine) with a high CPU share,
# then print the CPU time all its processes used. Other jobs on the machine then disturb the
# measurement less, and CPU per message can be compared between builds.
# usage (as root): bench/queue/cgroup-cpu.sh COMMAND [ARG...]
G=rqbench$$
mkdir -p /sys/fs/cgroup/cpu/$G /sys/fs/cgroup/cpuacct/$G || exit 111
echo 262144 > /sys/fs/cgroup/cpu/$G/cpu.shares
echo $$ > /sys/fs/cgroup/cpu/$G/cgroup.procs
echo $$ > /sys/fs/cgroup/cpuacct/$G/cgroup.procs
"$@"; rc=$?
echo "cpu: $(awk '{printf "%.2f s", $1/1e9}' /sys/fs/cgroup/cpuacct/$G/cpuacct.usage)"
echo $$ > /sys/fs/cgroup/cpu/cgroup.procs; echo $$ > /sys/fs/cgroup/cpuacct/cgroup.procs
rmdir /sys/fs/cgroup/cpu/$G /sys/fs/cgroup/cpuacct/$G 2>/dev/null
exit $rc
