#!/bin/sh
# A journaled ext4 file system in a loop-mounted file, for BENCH_TMP (needs root).
# This machine's root file system is ext4 without a journal: there every file creation scans
# past the inodes deleted in its block group in the last minutes (ext4's recently_deleted()
# check, only done without a journal), which under the shared machine's churn costs ~0.8 ms of
# CPU per created file (bench/RESULTS.md). Fsyncs on the loop file system still reach the disk.
# usage: bench/smtpd/journaled-fs.sh DIR [SIZE] start|stop   (SIZE default 3G)
set -e
dir=$1 size=$2 action=$3
[ -z "$action" ] && { action=$size; size=3G; }
case "$action" in
start) mkdir -p "$dir"; truncate -s "$size" "$dir.img"; mkfs.ext4 -q -F "$dir.img"
       mount -o loop "$dir.img" "$dir"; chmod 755 "$dir"; echo "BENCH_TMP=$dir" ;;
stop) umount "$dir"; rm -f "$dir.img"; rmdir "$dir" ;;
*) echo "usage: $0 DIR [SIZE] start|stop" >&2; exit 100 ;;
esac
