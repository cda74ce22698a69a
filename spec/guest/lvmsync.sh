#!/usr/bin/env bash
# Runs inside the real-kernel VM (bin/vm-run), as root, from the repository: real LVM, real
# dm-snapshot. Usage: spec/guest/lvmsync.sh OUT_DIR (a directory inside the repository).
#
# 1. Writes real vgcfgbackup files (and `lvs --segments` of the same volume groups, as an
#    oracle for the parser) into OUT_DIR/fixtures: linear LVs (tags, read_ahead none, two
#    segments), an LV striped over two PVs, classic snapshots (names with hyphens), a thin
#    pool with a thin LV and two thin snapshots.
# 2. Runs the original lvmsync's three scenarios on dm-snapshot LVs (local sync; --stdout to a
#    file, then --apply; --snapback, then restoring from it), a cut stream (from a file, from a
#    pipe), a snapback sync killed and run again, a sync through --rsh to a receiver started
#    over ssh on 127.0.0.1, a failing remote apply, and an overflowed snapshot, printing
#    KEY=VALUE lines (checksums, exit statuses) for the spec to check.
set -euo pipefail
out=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
lvmsync=(ruby "$repo/exe/lvmsync")
mkdir -p "$out/fixtures"

# shellcheck source=spec/guest/lib.sh
. "$repo/spec/guest/lib.sh"

modprobe -a dm-snapshot dm-thin-pool loop
for i in 0 1 2 3; do truncate -s 160M "/tmp/pv$i.img"; done
pv=()
for i in 0 1 2 3; do pv+=("$(losetup --find --show "/tmp/pv$i.img")"); done

# --- fixtures -----------------------------------------------------------------------------
q pvcreate -q "${pv[2]}" "${pv[3]}"
q vgcreate -q vgfix "${pv[2]}" "${pv[3]}"
q vgchange -q --addtag site-a vgfix
q lvcreate -q -an -Zn -L 8M -n lin --addtag web --addtag db vgfix "${pv[2]}"
q lvchange -q -r none vgfix/lin
q lvextend -q -L +4M vgfix/lin "${pv[3]}"
vgcfgbackup -q -f "$out/fixtures/linear.vg" vgfix >/dev/null
q lvcreate -q -an -Zn -i 2 -I 64k -L 16M -n stripes vgfix
vgcfgbackup -q -f "$out/fixtures/striped.vg" vgfix >/dev/null
q lvchange -q -ay vgfix/lin
q lvcreate -q -s -c 8k -L 4M -n lin-snap vgfix/lin
vgcfgbackup -q -f "$out/fixtures/classic-snapshot.vg" vgfix >/dev/null
q lvremove -q -f vgfix/lin-snap
q lvcreate -q -L 16M -T vgfix/pool
q lvcreate -q -V 32M -T vgfix/pool -n thin1
q lvcreate -q -s -n thin-snap vgfix/thin1
q lvcreate -q -s -n thin-snap2 vgfix/thin1
vgcfgbackup -q -f "$out/fixtures/thin.vg" vgfix >/dev/null
lvs -a --segments --noheadings --nosuffix --units s --separator '|' \
  -o lv_name,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,devices,lv_tags vgfix \
  | sed 's/^ *//' >"$out/fixtures/thin.segments"
pvs --noheadings --nosuffix --units s --separator '|' -o pv_name,pe_start,pv_pe_count "${pv[2]}" "${pv[3]}" \
  | sed 's/^ *//' >"$out/fixtures/thin.pvs"
q vgchange -q -an vgfix
kv fixtures "$(cd "$out/fixtures" && ls | tr '\n' ' ')"

# --- lvmsync scenarios --------------------------------------------------------------------
q pvcreate -q "${pv[0]}" "${pv[1]}"
q vgcreate -q vg-sync "${pv[0]}" "${pv[1]}"
q lvcreate -q -L 32M -n src-lv vg-sync "${pv[0]}"
q lvcreate -q -L 32M -n dest vg-sync "${pv[1]}"
dd if=/dev/urandom of=/dev/vg-sync/src-lv bs=1M count=32 oflag=direct status=none
q lvcreate -q -s -c 4k -L 16M -n src-snap vg-sync/src-lv
cow=/dev/mapper/vg--sync-src--snap-cow
kv snap_table "$(dmsetup table vg--sync-src--snap)"
reset_dest() { dd if=/dev/vg-sync/src-snap of=/dev/vg-sync/dest bs=1M iflag=direct oflag=direct status=none; }
reset_dest
copy_sum=$(sum /dev/vg-sync/dest)
kv copy_sum "$copy_sum"
kv snap_sum "$(sum /dev/vg-sync/src-snap)"

# Cache the (still empty) exception store buffered, as a stale copy for a buffered reader.
dd if=$cow of=/dev/null bs=1M status=none
# Changes while "the service runs": a 512-byte write in every MiB (the original test's
# pattern), 3 MiB in one go, and the last sector.
for i in $(seq 0 31); do
  dd if=/dev/urandom of=/dev/vg-sync/src-lv bs=512 count=1 seek=$((i * 2048)) oflag=direct status=none
done
dd if=/dev/urandom of=/dev/vg-sync/src-lv bs=1M count=3 seek=12 oflag=direct status=none
dd if=/dev/urandom of=/dev/vg-sync/src-lv bs=512 count=1 seek=65535 oflag=direct status=none
src_sum=$(sum /dev/vg-sync/src-lv)
kv src_sum "$src_sum"
kv stale_area0 "$(dd if=$cow bs=16 skip=256 count=1 status=none | od -An -tx1 | tr -d ' \n')"
kv direct_area0 "$(dd if=$cow bs=4096 skip=1 count=1 iflag=direct status=none | head -c 16 | od -An -tx1 | tr -d ' \n')"
dd if=/dev/vg-sync/src-lv of="$out/src.img" bs=1M iflag=direct status=none
kv snap_status "$(dmsetup status vg--sync-src--snap)"

# The LVM:: API on the live snapshot.
ruby -I "$repo/lib" -e '
  require "lvm"
  lv = LVM::LogicalVolume.new("/dev/vg-sync/src-snap")
  puts "api_snapshot=#{lv.snapshot?}", "api_origin=#{lv.origin.path}",
       "api_changes=#{lv.changes.map { |r| "#{r.first}-#{r.last}" }.join(",")}",
       "api_origin_snapshot=#{LVM::LogicalVolume.new("vg-sync", "src-lv").snapshot?}"'

# 1. Local sync (the original's 00simple_local_sync).
set +e
"${lvmsync[@]}" -v /dev/vg-sync/src-snap /dev/vg-sync/dest 2>"$out/local.err"
kv local_rc $?
set -e
kv local_sum "$(sum /dev/vg-sync/dest)"

# 2. --stdout to a file, then --apply (05sync_via_snapshot_file).
reset_dest
set +e
"${lvmsync[@]}" --stdout /dev/vg-sync/src-snap >"$out/changes.bin" 2>"$out/stdout.err"
kv stdout_rc $?
"${lvmsync[@]}" --apply "$out/changes.bin" /dev/vg-sync/dest 2>"$out/apply.err"
kv apply_rc $?
set -e
kv apply_sum "$(sum /dev/vg-sync/dest)"

# 2b. The stream cut after its first record (a file that was not copied whole): refused, the
#     destination unchanged. Cut in the middle through a pipe: exit 3, then the whole stream
#     finishes the sync.
reset_dest
first_len=$(od -An -tu4 --endian=big -j $((17 + 36 + 8)) -N 4 "$out/changes.bin" | tr -d ' ')
head -c $((17 + 36 + 12 + first_len)) "$out/changes.bin" >"$out/cut.bin"
set +e
"${lvmsync[@]}" --apply "$out/cut.bin" /dev/vg-sync/dest 2>"$out/cut.err"
kv cut_rc $?
set -e
kv cut_dest_unchanged "$([ "$(sum /dev/vg-sync/dest)" = "$copy_sum" ] && echo yes || echo no)"
set +e
head -c $(($(stat -c %s "$out/changes.bin") / 2)) "$out/changes.bin" |
  "${lvmsync[@]}" --apply - /dev/vg-sync/dest 2>"$out/cut-pipe.err"
kv cut_pipe_rc $?
"${lvmsync[@]}" --apply - /dev/vg-sync/dest <"$out/changes.bin" 2>"$out/cut-again.err"
kv cut_again_rc $?
set -e
kv cut_again_sum "$(sum /dev/vg-sync/dest)"

# 2c. A snapback sync killed (SIGKILL, at its 3rd write to the LV: after the journal's commit)
#     and run again: resumed; the snapback then restores the state before the first run.
reset_dest
set +e
strace -f -qq -o /dev/null -e trace=pwrite64 -e inject=pwrite64:signal=KILL:when=3 \
  "${lvmsync[@]}" --apply "$out/changes.bin" /dev/vg-sync/dest --snapback /tmp/killed.sb 2>/dev/null
kv killed_rc $?
kv killed_dest_changed "$([ "$(sum /dev/vg-sync/dest)" != "$copy_sum" ] && echo yes || echo no)"
"${lvmsync[@]}" --apply "$out/changes.bin" /dev/vg-sync/dest --snapback /tmp/killed.sb 2>"$out/resumed.err"
kv resumed_rc $?
kv resumed_sum "$(sum /dev/vg-sync/dest)"
"${lvmsync[@]}" --apply /tmp/killed.sb /dev/vg-sync/dest 2>"$out/killed-restore.err"
kv killed_restore_rc $?
set -e
kv killed_restore_sum "$(sum /dev/vg-sync/dest)"

# 3. Snapback, then restore (10snapback).
reset_dest
set +e
"${lvmsync[@]}" /dev/vg-sync/src-snap /dev/vg-sync/dest --snapback "$out/snapback.bin" 2>"$out/snapback.err"
kv snapback_rc $?
kv snapback_sum "$(sum /dev/vg-sync/dest)"
"${lvmsync[@]}" --apply "$out/snapback.bin" /dev/vg-sync/dest 2>"$out/restore.err"
kv restore_rc $?
set -e
kv restore_sum "$(sum /dev/vg-sync/dest)"

# 4. Remote: through --rsh (real ssh) to a receiver on 127.0.0.1.
start_sshd
reset_dest
set +e
"${lvmsync[@]}" --rsh "$rsh" --remote-lvmsync "ruby $repo/exe/lvmsync" -b "/tmp/remote snapback" \
  /dev/vg-sync/src-snap root@127.0.0.1:/dev/vg-sync/dest 2>"$out/remote.err"
kv remote_rc $?
set -e
kv remote_sum "$(sum /dev/vg-sync/dest)"
kv remote_snapback "$(stat -c %s "/tmp/remote snapback")"
set +e
"${lvmsync[@]}" --rsh "$rsh" --remote-lvmsync "ruby $repo/exe/lvmsync" \
  /dev/vg-sync/src-snap root@127.0.0.1:/dev/vg-sync/no-such-lv 2>"$out/remote-fail.err"
kv remote_fail_rc $?
set -e

# 5. A rolling round with classic snapshots: dest holds src-snap's content; --from src-snap
#    snap2 brings it to snap2's (the data read from snap2, not from the origin, which moves on).
reset_dest
q lvcreate -q -s -c 4k -L 8M -n snap2 vg-sync/src-lv
dd if=/dev/urandom of=/dev/vg-sync/src-lv bs=4096 count=4 seek=100 oflag=direct status=none
kv snap2_sum "$(sum /dev/vg-sync/snap2)"
kv src_after_snap2_sum "$(sum /dev/vg-sync/src-lv)"
set +e
"${lvmsync[@]}" -v --from vg-sync/src-snap vg-sync/snap2 /dev/vg-sync/dest 2>"$out/from.err"
kv from_rc $?
set -e
kv from_sum "$(sum /dev/vg-sync/dest)"
q lvremove -q -f vg-sync/snap2

# 6. An overflowed snapshot is refused, and the destination is left alone.
q lvcreate -q -s -c 4k -L 4M -n tiny vg-sync/src-lv
dd if=/dev/urandom of=/dev/vg-sync/src-lv bs=1M count=8 oflag=direct status=none
kv tiny_status "$(dmsetup status vg--sync-tiny)"
before=$(sum /dev/vg-sync/dest)
set +e
"${lvmsync[@]}" /dev/vg-sync/tiny /dev/vg-sync/dest 2>"$out/overflow.err"
kv overflow_rc $?
set -e
kv overflow_dest_unchanged "$([ "$(sum /dev/vg-sync/dest)" = "$before" ] && echo yes || echo no)"

# 7. The origin named by another device node as a local sync's destination: refused.
before=$(sum /dev/vg-sync/src-lv)
mknod /tmp/origin-node b "$((0x$(stat -L -c %t /dev/vg-sync/src-lv)))" "$((0x$(stat -L -c %T /dev/vg-sync/src-lv)))"
set +e
"${lvmsync[@]}" /dev/vg-sync/src-snap /tmp/origin-node 2>"$out/same-device.err"
kv same_device_rc $?
set -e
kv same_device_origin_unchanged "$([ "$(sum /dev/vg-sync/src-lv)" = "$before" ] && echo yes || echo no)"

# 8. --apply --verify onto a device that drops what is written (dm "zero"): the read-back
#    differs from the stream, and the receiver alone says so.
dmsetup create zero-dest --table "0 65536 zero"
dmsetup mknodes zero-dest
set +e
"${lvmsync[@]}" --apply "$out/changes.bin" --verify /dev/mapper/zero-dest >"$out/zero-verify.out" 2>"$out/zero-verify.err"
kv zero_verify_rc $?
# ... and a local sync onto it: the sender finds the difference after a complete apply.
"${lvmsync[@]}" --verify /dev/vg-sync/src-snap /dev/mapper/zero-dest >"$out/zero-local.out" 2>"$out/zero-local.err"
kv zero_local_rc $?
"${lvmsync[@]}" --apply "$out/changes.bin" --verify /dev/vg-sync/dest >"$out/dest-verify.out" 2>"$out/dest-verify.err"
kv dest_verify_rc $?
set -e
dmsetup remove zero-dest
vgcfgbackup -q -f "$out/fixtures/classic-hyphen.vg" vg-sync >/dev/null
lvs -a --segments --noheadings --nosuffix --units s --separator '|' \
  -o lv_name,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,devices,lv_tags vg-sync \
  | sed 's/^ *//' >"$out/fixtures/classic-hyphen.segments"
q vgchange -q -an vg-sync
echo DONE
