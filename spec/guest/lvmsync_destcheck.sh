#!/usr/bin/env bash
# Runs inside the real-kernel VM (bin/vm-run), as root, from the repository: the destination
# check of --from rounds on real thin and classic snapshots. Usage:
# spec/guest/lvmsync_destcheck.sh OUT_DIR. Prints KEY=VALUE lines (checksums, exit statuses)
# for spec/lvmsync_destcheck_vm_spec.rb, and DONE at the end.
#
#  1. thin: src (16 MiB, 64 KiB pool blocks), snapshot s1 copied to the thin LV dst and to a
#     file; 4 KiB writes at known offsets, snapshot s2. --from s1 s2 onto dst (holds s1):
#     proceeds; onto the thin LV "wrong" and a file holding other data: refused, unchanged;
#     --no-destination-check onto a copy of the wrong file: proceeds; the same over ssh on
#     127.0.0.1 (dst2 holding s1, then wrong); --stdout, then --apply onto wrong and onto dst3.
#  2. classic: the same round with dm-snapshot snapshots c1, c2 onto an LV holding c1, onto
#     an LV and a file holding other data.
set -euo pipefail
out=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
lvmsync=(ruby "$repo/exe/lvmsync")
MIB=1048576

# shellcheck source=spec/guest/lib.sh
. "$repo/spec/guest/lib.sh"
# SHA-256 of a block device (O_DIRECT: what is on it) or a file (on tmpfs, which has no O_DIRECT).
dsum() { if [ -b "$1" ]; then sum "$1"; else sha256sum "$1" | cut -d' ' -f1; fi; }
# unchanged NAME DEV SUM: NAME_unchanged=yes when DEV still has checksum SUM.
unchanged() { kv "$1_unchanged" "$([ "$(dsum "$2")" = "$3" ] && echo yes || echo no)"; }

modprobe -a dm-snapshot dm-thin-pool loop
truncate -s 300M /tmp/pv0.img
pv=$(losetup --find --show /tmp/pv0.img)
q pvcreate -q "$pv"
q vgcreate -q vgd "$pv"

# --- 1. thin ------------------------------------------------------------------------------
q lvcreate -q -L 120M -c 64k -T vgd/pool
for lv in src dst dst2 dst3 wrong; do q lvcreate -q -V 16M -T vgd/pool -n $lv; done
dd if=/dev/urandom of=/dev/vgd/src bs=1M count=16 oflag=direct status=none
dd if=/dev/urandom of=/dev/vgd/wrong bs=1M count=16 oflag=direct status=none
q lvcreate -q -s -n s1 vgd/src
q lvchange -q -ay -K vgd/s1
for lv in dst dst2 dst3; do dd if=/dev/vgd/s1 of=/dev/vgd/$lv bs=1M iflag=direct oflag=direct status=none; done
dd if=/dev/vgd/wrong of=/tmp/wrong.img bs=1M iflag=direct status=none
# Changes at 1 MiB + 4 KiB, 5 MiB and 12 MiB + 60 KiB: pool blocks 16, 80 and 192.
for off in $((MIB + 4096)) $((5 * MIB)) $((12 * MIB + 61440)); do
  dd if=/dev/urandom of=/dev/vgd/src bs=4096 count=1 seek=$((off / 4096)) oflag=direct status=none
done
q lvcreate -q -s -n s2 vgd/src
q lvchange -q -ay -K vgd/s2
s1_sum=$(sum /dev/vgd/s1)
s2_sum=$(sum /dev/vgd/s2)
wrong_sum=$(sum /dev/vgd/wrong)
kv s1_sum "$s1_sum"
kv s2_sum "$s2_sum"
kv dst_sum "$(sum /dev/vgd/dst)"

run thin_ok "${lvmsync[@]}" -v --from vgd/s1 vgd/s2 /dev/vgd/dst
kv thin_ok_sum "$(sum /dev/vgd/dst)"
run thin_lv "${lvmsync[@]}" --from vgd/s1 vgd/s2 /dev/vgd/wrong
unchanged thin_lv /dev/vgd/wrong "$wrong_sum"
run thin_file "${lvmsync[@]}" --from vgd/s1 vgd/s2 -b /tmp/thin_file.sb /tmp/wrong.img
unchanged thin_file /tmp/wrong.img "$wrong_sum"
kv thin_file_snapback "$([ -e /tmp/thin_file.sb ] && echo yes || echo no)"
cp /tmp/wrong.img /tmp/wrong2.img
run thin_nocheck "${lvmsync[@]}" --no-destination-check --from vgd/s1 vgd/s2 /tmp/wrong2.img
unchanged thin_nocheck /tmp/wrong2.img "$wrong_sum"

start_sshd
remote=(--rsh "$rsh" --remote-lvmsync "ruby $repo/exe/lvmsync")
run ssh_ok "${lvmsync[@]}" "${remote[@]}" --from vgd/s1 vgd/s2 root@127.0.0.1:/dev/vgd/dst2
kv ssh_ok_sum "$(sum /dev/vgd/dst2)"
run ssh_wrong "${lvmsync[@]}" "${remote[@]}" --from vgd/s1 vgd/s2 root@127.0.0.1:/dev/vgd/wrong
unchanged ssh_wrong /dev/vgd/wrong "$wrong_sum"

set +e
"${lvmsync[@]}" --stdout --from vgd/s1 vgd/s2 >/tmp/inc.stream 2>"$out/stdout.err"
kv stdout_rc $?
set -e
run apply_wrong "${lvmsync[@]}" --apply /tmp/inc.stream /dev/vgd/wrong
unchanged apply_wrong /dev/vgd/wrong "$wrong_sum"
set +e
"${lvmsync[@]}" --apply - /dev/vgd/dst3 </tmp/inc.stream 2>"$out/apply_ok.err"
kv apply_ok_rc $?
set -e
kv apply_ok_sum "$(sum /dev/vgd/dst3)"

# --- 2. classic ---------------------------------------------------------------------------
for lv in csrc cdst cwrong; do q lvcreate -q -L 16M -n $lv vgd; done
dd if=/dev/urandom of=/dev/vgd/csrc bs=1M count=16 oflag=direct status=none
dd if=/dev/urandom of=/dev/vgd/cwrong bs=1M count=16 oflag=direct status=none
q lvcreate -q -s -c 4k -L 8M -n c1 vgd/csrc
dd if=/dev/vgd/c1 of=/dev/vgd/cdst bs=1M iflag=direct oflag=direct status=none
dd if=/dev/vgd/cwrong of=/tmp/cwrong.img bs=1M iflag=direct status=none
for off in $((2 * MIB)) $((9 * MIB + 8192)); do
  dd if=/dev/urandom of=/dev/vgd/csrc bs=4096 count=1 seek=$((off / 4096)) oflag=direct status=none
done
q lvcreate -q -s -c 4k -L 8M -n c2 vgd/csrc
c2_sum=$(sum /dev/vgd/c2)
cwrong_sum=$(sum /dev/vgd/cwrong)
kv c2_sum "$c2_sum"
kv c1_sum "$(sum /dev/vgd/c1)"
kv cdst_sum "$(sum /dev/vgd/cdst)"
run classic_ok "${lvmsync[@]}" -v --from vgd/c1 vgd/c2 /dev/vgd/cdst
kv classic_ok_sum "$(sum /dev/vgd/cdst)"
run classic_lv "${lvmsync[@]}" --from vgd/c1 vgd/c2 /dev/vgd/cwrong
unchanged classic_lv /dev/vgd/cwrong "$cwrong_sum"
run classic_file "${lvmsync[@]}" --from vgd/c1 vgd/c2 /tmp/cwrong.img
unchanged classic_file /tmp/cwrong.img "$cwrong_sum"
run classic_ssh "${lvmsync[@]}" "${remote[@]}" --from vgd/c1 vgd/c2 root@127.0.0.1:/dev/vgd/cwrong
unchanged classic_ssh /dev/vgd/cwrong "$cwrong_sum"
echo DONE
