#!/usr/bin/env bash
# Runs inside the real-kernel VM (bin/vm-run), as root, from the repository: a real thin pool,
# real thin snapshots, real thin_delta, dm-flakey. Usage: spec/guest/lvmsync_thin.sh OUT_DIR.
# Prints KEY=VALUE lines (checksums, exit statuses, pool status fields) for
# spec/lvmsync_thin_vm_spec.rb to check, and DONE at the end.
#
#  1. thin LV "src" (32 MiB, 64 KiB pool blocks), snapshot s1, a copy of s1 on a thin LV and in
#     a file; then on src: 512-byte writes, a new 2 MiB extent, a 2 MiB blkdiscard and a 4 KiB
#     one; lvmsync s1 to the thin LV (plain: zeros), to the file (--discards: holes), to the
#     thin LV again with --discards (its blocks get unmapped) and through ssh on 127.0.0.1
#     with --discards --verify.
#  2. increments over three snapshots: --from s1 s2, --from s2 s3, then s3 to the origin (and
#     the same as --from s3 src).
#  3. the metadata snapshot is released when lvmsync is interrupted (SIGINT, SIGTERM) while
#     thin_delta runs; one reserved by someone else is reported and left alone.
#  4. --verify on a destination that drops writes (dm-flakey drop_writes) fails.
#  5. a thin LV over an external origin: lvmsync --discards of its snapshot, after a range of it
#     was discarded (where it then reads the external origin's data, not zeros), and --full of
#     a snapshot of it.
#  6. an origin extended after its snapshot was taken, thin and classic: its new part is sent
#     whole (a destination not extended is refused), and a --from round over it is refused.
set -euo pipefail
out=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
lvmsync=(ruby "$repo/exe/lvmsync")
MIB=1048576

# shellcheck source=spec/guest/lib.sh
. "$repo/spec/guest/lib.sh"
fsum() { sha256sum "$1" | cut -d' ' -f1; }
held() { dmsetup status vgt-pool-tpool | cut -d' ' -f7; }
mapped() { dmsetup status "$1" | cut -d' ' -f4; }

modprobe -a dm-thin-pool dm-flakey loop
truncate -s 200M /tmp/pv0.img
pv=$(losetup --find --show /tmp/pv0.img)
q pvcreate -q "$pv"
q vgcreate -q vgt "$pv"
q lvcreate -q -L 120M -c 64k -T vgt/pool
q lvcreate -q -V 32M -T vgt/pool -n src
q lvcreate -q -V 32M -T vgt/pool -n dst
# 24 MiB of data; the last 8 MiB stay unmapped.
dd if=/dev/urandom of=/dev/vgt/src bs=1M count=24 oflag=direct status=none
q lvcreate -q -s -n s1 vgt/src
q lvchange -q -ay -K vgt/s1
s1_sum=$(sum /dev/vgt/s1)
kv s1_sum "$s1_sum"
reset_dst() { dd if=/dev/vgt/s1 of=/dev/vgt/dst bs=1M iflag=direct oflag=direct status=none; }
reset_dst
dd if=/dev/vgt/s1 of=/tmp/dest.img bs=1M iflag=direct status=none
kv dst_copy_sum "$(sum /dev/vgt/dst)"

# "The service runs": 512 bytes in each of the first 20 MiB, 2 MiB newly mapped at 26 MiB,
# 2 MiB discarded at 4 MiB (32 whole pool blocks), 4 KiB discarded inside a block at 10 MiB.
for i in $(seq 0 19); do
  dd if=/dev/urandom of=/dev/vgt/src bs=512 count=1 seek=$((i * 2048 + 7)) oflag=direct status=none
done
dd if=/dev/urandom of=/dev/vgt/src bs=1M count=2 seek=26 oflag=direct status=none
blkdiscard -o $((4 * MIB)) -l $((2 * MIB)) /dev/vgt/src
blkdiscard -o $((10 * MIB + 8192)) -l 4096 /dev/vgt/src
src_sum=$(sum /dev/vgt/src)
kv src_sum "$src_sum"
kv src_discarded_zero "$(dd if=/dev/vgt/src bs=1M skip=4 count=2 iflag=direct status=none | tr -d '\0' | wc -c)"
dd if=/dev/vgt/src of="$out/src.img" bs=1M iflag=direct status=none

# The API, and thin_delta itself (the oracle's own XML kept for the spec).
dmsetup message vgt-pool-tpool 0 reserve_metadata_snap
thin_delta -m --snap1 "$(lvs --noheadings -o thin_id vgt/s1 | tr -d ' ')" \
  --snap2 "$(lvs --noheadings -o thin_id vgt/src | tr -d ' ')" /dev/mapper/vgt-pool_tmeta >"$out/thin_delta.xml"
dmsetup message vgt-pool-tpool 0 release_metadata_snap
ruby -I "$repo/lib" -e '
  require "lvm"
  lv = LVM::LogicalVolume.new("/dev/vgt/s1")
  d = lv.snapshot.delta
  puts "api_class=#{lv.snapshot.class}", "api_block_size=#{d.block_size}",
       "api_changed=#{d.changed_extents.map { |o, l| "#{o}+#{l}" }.join(",")}",
       "api_unmapped=#{d.unmapped_extents.map { |o, l| "#{o}+#{l}" }.join(",")}",
       "api_differences=#{lv.changes.map { |r| "#{r.first}-#{r.last}" }.join(",")}"'
kv held_after_api "$(held)"

# 1a. plain PROTO[3] to the thin LV: unmapped blocks written as zeros.
run plain "${lvmsync[@]}" -v vgt/s1 /dev/vgt/dst
kv plain_sum "$(sum /dev/vgt/dst)"
kv plain_mapped "$(mapped vgt-dst)"
kv held_after_plain "$(held)"
# 1b. --discards to a plain file: holes.
run file "${lvmsync[@]}" --discards vgt/s1 /tmp/dest.img
kv file_sum "$(fsum /tmp/dest.img)"
kv file_hole_at_4m "$(python3 -c '
import os
f = os.open("/tmp/dest.img", os.O_RDONLY)
print(os.lseek(f, 4 << 20, os.SEEK_HOLE))')"
# 1c. --discards to the thin LV: the discarded blocks are unmapped there too.
reset_dst
kv dst_mapped_before "$(mapped vgt-dst)"
run discards "${lvmsync[@]}" --discards vgt/s1 /dev/vgt/dst
kv discards_sum "$(sum /dev/vgt/dst)"
kv dst_mapped_after "$(mapped vgt-dst)"
# 1d. remote over ssh, --discards --verify.
start_sshd
reset_dst
run remote "${lvmsync[@]}" -v --rsh "$rsh" --remote-lvmsync "ruby $repo/exe/lvmsync" --discards --verify \
  vgt/s1 root@127.0.0.1:/dev/vgt/dst
kv remote_sum "$(sum /dev/vgt/dst)"

# 2. Increments over three snapshots (dst holds s1).
reset_dst
for i in 0 5 9; do dd if=/dev/urandom of=/dev/vgt/src bs=4096 count=3 seek=$((i * 256 + 100)) oflag=direct status=none; done
q lvcreate -q -s -n s2 vgt/src
q lvchange -q -ay -K vgt/s2
blkdiscard -o $((26 * MIB)) -l $MIB /dev/vgt/src
dd if=/dev/urandom of=/dev/vgt/src bs=1M count=1 seek=30 oflag=direct status=none
q lvcreate -q -s -n s3 vgt/src
q lvchange -q -ay -K vgt/s3
dd if=/dev/urandom of=/dev/vgt/src bs=4096 count=1 seek=5000 oflag=direct status=none
kv s2_sum "$(sum /dev/vgt/s2)"
kv s3_sum "$(sum /dev/vgt/s3)"
kv src2_sum "$(sum /dev/vgt/src)"
run inc1 "${lvmsync[@]}" -v --from vgt/s1 vgt/s2 /dev/vgt/dst
kv inc1_sum "$(sum /dev/vgt/dst)"
run inc2 "${lvmsync[@]}" -v --discards --from vgt/s2 vgt/s3 /dev/vgt/dst
kv inc2_sum "$(sum /dev/vgt/dst)"
run inc3 "${lvmsync[@]}" -v --verify vgt/s3 /dev/vgt/dst
kv inc3_sum "$(sum /dev/vgt/dst)"
# The same last round given as --from s3 to the origin itself (dst holding s3 again).
dd if=/dev/vgt/s3 of=/dev/vgt/dst bs=1M iflag=direct oflag=direct status=none
run inc4 "${lvmsync[@]}" -v --from vgt/s3 vgt/src /dev/vgt/dst
kv inc4_sum "$(sum /dev/vgt/dst)"
kv held_after_inc "$(held)"

# 3. Interrupted while thin_delta runs (a slow thin_delta first on PATH), and held by others.
mkdir -p /tmp/slowbin
printf '#!/bin/sh\nsleep 20\nexec /usr/sbin/thin_delta "$@"\n' >/tmp/slowbin/thin_delta
chmod +x /tmp/slowbin/thin_delta
# Job control on: a non-interactive shell starts background commands with SIGINT ignored.
set -m
for sig in INT TERM; do
  PATH=/tmp/slowbin:$PATH "${lvmsync[@]}" vgt/s1 /tmp/dest.img 2>"$out/sig$sig.err" &
  pid=$!
  for _ in $(seq 1 600); do [ "$(held)" != "-" ] && break; sleep 0.1; done
  kv "held_during_$sig" "$(held)"
  sleep 1
  kill -s "$sig" $pid
  set +e; wait $pid; kv "sig${sig}_rc" $?; set -e
  kv "held_after_$sig" "$(held)"
done
set +m
dmsetup message vgt-pool-tpool 0 reserve_metadata_snap
run busy "${lvmsync[@]}" vgt/s1 /tmp/dest.img
kv held_after_busy "$(held)"
dmsetup message vgt-pool-tpool 0 release_metadata_snap

# 4. --verify against a destination that drops writes.
truncate -s 32M /tmp/flaky.img
dd if=/dev/vgt/s1 of=/tmp/flaky.img bs=1M iflag=direct conv=notrunc status=none
floop=$(losetup --find --show /tmp/flaky.img)
dmsetup create flaky --table "0 65536 flakey $floop 0 0 1 1 drop_writes"
dmsetup mknodes flaky
run flaky "${lvmsync[@]}" --verify vgt/s1 /dev/mapper/flaky
kv flaky_unchanged "$([ "$(fsum /tmp/flaky.img)" = "$s1_sum" ] && echo yes || echo no)"
dmsetup remove flaky
losetup -d "$floop"

# 5. "ext", a thin LV whose external origin is the read-only LV "base": 8 MiB written to it
# (mapped), its snapshot e1 copied to a file, then 2 MiB of it discarded (unmapped: it reads
# base's data there again).
q lvcreate -q -L 16M -n base vgt
dd if=/dev/urandom of=/tmp/base.img bs=1M count=16 status=none
dd if=/tmp/base.img of=/dev/vgt/base bs=1M oflag=direct status=none
# An external origin must be read-only and inactive when the thin LV over it is made.
q lvchange -q -an -pr vgt/base
q lvcreate -q -s --thinpool vgt/pool -n ext vgt/base
dd if=/dev/urandom of=/dev/vgt/ext bs=1M count=8 oflag=direct status=none
q lvcreate -q -s -n e1 vgt/ext
q lvchange -q -ay -K vgt/e1
dd if=/dev/vgt/e1 of=/tmp/ext-dest.img bs=1M iflag=direct status=none
blkdiscard -o $((2 * MIB)) -l $((2 * MIB)) /dev/vgt/ext
kv ext_sum "$(sum /dev/vgt/ext)"
kv ext_reads_base "$([ "$(dd if=/dev/vgt/ext bs=1M skip=2 count=2 iflag=direct status=none | sha256sum)" = \
  "$(dd if=/tmp/base.img bs=1M skip=2 count=2 status=none | sha256sum)" ] && echo yes || echo no)"
run ext "${lvmsync[@]}" -v --discards vgt/e1 /tmp/ext-dest.img
kv ext_dest_sum "$(fsum /tmp/ext-dest.img)"
# A whole copy of a snapshot of it (maps 6 MiB, reads base's data in the other 10) onto an
# empty file: the device is read whole, never listed by its mapping alone.
q lvcreate -q -s -n e2 vgt/ext
q lvchange -q -ay -K vgt/e2
truncate -s 16M /tmp/ext-full.img
run ext_full "${lvmsync[@]}" -v --full vgt/e2 /tmp/ext-full.img
kv ext_full_sum "$(fsum /tmp/ext-full.img)"
kv ext_full_source_sum "$(sum /dev/vgt/e2)"

# 6. Origins extended after their snapshot: a thin LV "tg" (extended while active, as thin LVs
# may be) and a linear LV "cg" with a classic snapshot (extended while inactive, as LVM
# requires), each written in its old part and in its new one. A copy of the snapshot not
# extended is refused, untouched; one extended to the new size becomes the origin (the new
# part is sent whole: nothing records it). A --from round over the grown origin is refused.
modprobe dm-snapshot
q lvcreate -q -V 8M -T vgt/pool -n tg
dd if=/dev/urandom of=/dev/vgt/tg bs=1M count=8 oflag=direct status=none
q lvcreate -q -s -n tg1 vgt/tg
q lvchange -q -ay -K vgt/tg1
q lvcreate -q -L 8M -n cg vgt
dd if=/dev/urandom of=/dev/vgt/cg bs=1M count=8 oflag=direct status=none
q lvcreate -q -s -L 4M -n cg1 vgt/cg
q lvextend -q -L 12M vgt/tg
q lvchange -q -an vgt/cg
q lvextend -q -L 12M vgt/cg
q lvchange -q -ay vgt/cg
for lv in tg cg; do
  dd if=/dev/urandom of="/dev/vgt/$lv" bs=1M seek=9 count=2 oflag=direct status=none
  dd if=/dev/urandom of="/dev/vgt/$lv" bs=1M seek=2 count=1 oflag=direct status=none
  dd if="/dev/vgt/${lv}1" of="/tmp/$lv-dest.img" bs=1M iflag=direct status=none
  cp "/tmp/$lv-dest.img" "/tmp/$lv-short.img"
  before=$(fsum "/tmp/$lv-short.img")
  run "grown_short_$lv" "${lvmsync[@]}" "vgt/${lv}1" "/tmp/$lv-short.img"
  kv "grown_short_${lv}_unchanged" "$([ "$(fsum "/tmp/$lv-short.img")" = "$before" ] && echo yes || echo no)"
  truncate -s 12M "/tmp/$lv-dest.img"
  # The copy's new part holds other bytes (as an extended linear LV would).
  dd if=/dev/urandom of="/tmp/$lv-dest.img" bs=1M seek=8 count=4 conv=notrunc status=none
  run "grown_$lv" "${lvmsync[@]}" "vgt/${lv}1" "/tmp/$lv-dest.img"
  kv "grown_${lv}_sum" "$(fsum "/tmp/$lv-dest.img")"
  kv "grown_${lv}_origin_sum" "$(sum "/dev/vgt/$lv")"
done
q lvcreate -q -s -n tg2 vgt/tg
q lvchange -q -ay -K vgt/tg2
dd if=/dev/vgt/tg1 of=/tmp/tg-from.img bs=1M iflag=direct status=none
truncate -s 12M /tmp/tg-from.img
dd if=/dev/urandom of=/tmp/tg-from.img bs=1M seek=8 count=4 conv=notrunc status=none
before=$(fsum /tmp/tg-from.img)
run grown_from "${lvmsync[@]}" --from vgt/tg1 vgt/tg2 /tmp/tg-from.img
kv grown_from_unchanged "$([ "$(fsum /tmp/tg-from.img)" = "$before" ] && echo yes || echo no)"
run grown_own "${lvmsync[@]}" vgt/tg1 /tmp/tg-from.img
kv grown_own_sum "$(fsum /tmp/tg-from.img)"

vgcfgbackup -q -f "$out/thin-snapshots.vg" vgt >/dev/null
q vgchange -q -an vgt
echo DONE
