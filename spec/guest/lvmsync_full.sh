#!/usr/bin/env bash
# Runs inside the real-kernel VM (bin/vm-run), as root, from the repository: lvmsync --full
# onto fresh thin LVs of another pool. Usage: spec/guest/lvmsync_full.sh OUT_DIR. Prints
# KEY=VALUE lines (checksums, exit statuses, mapped sectors, pools' data_percent) for
# spec/lvmsync_full_vm_spec.rb to check, and DONE at the end.
#
#  1. thin LV "src" (64 MiB, 64 KiB pool blocks) with ~10 % of its blocks written at random,
#     snapshot s1; lvmsync --full s1 onto "dst", a fresh thin LV alone in pool2.
#  2. a --from round after it: more writes, snapshot s2, lvmsync --from s1 s2 dst.
#  3. --full with --verify over ssh to 127.0.0.1; --full --stdout | lvmsync --apply -.
#  4. --full --snapback onto a thin LV holding other data; the snapback restores it.
#  5. a classic snapshot, and a plain LV, of a linear LV that is mostly zeros, onto fresh
#     thin LVs: all-zero parts sent as discards.
set -euo pipefail
out=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
lvmsync=(ruby "$repo/exe/lvmsync")

# shellcheck source=spec/guest/lib.sh
. "$repo/spec/guest/lib.sh"
data_percent() { lvs --noheadings -o data_percent "$1" | tr -d ' '; }
# scatter DEV SEED COUNT BLOCKS: COUNT random 64 KiB blocks of the first BLOCKS written.
scatter() {
  python3 - "$@" <<'PY'
import os, random, sys
dev, seed, count, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
fd = os.open(dev, os.O_WRONLY)
for b in r.sample(range(blocks), count):
    os.pwrite(fd, os.urandom(65536), b * 65536)
os.fsync(fd)
os.close(fd)
PY
}
thin() { q lvcreate -q -V "$2" -T "vgt/$1" -n "$3"; }

modprobe -a dm-thin-pool dm-snapshot loop
truncate -s 600M /tmp/pv0.img
pv=$(losetup --find --show /tmp/pv0.img)
q pvcreate -q "$pv"
q vgcreate -q vgt "$pv"
q lvcreate -q -L 100M -c 64k -T vgt/pool
q lvcreate -q -L 100M -c 64k -T vgt/pool2
thin pool 64M src
thin pool2 64M dst

# 1. 100 of 1024 blocks (~10 %), scattered.
scatter /dev/vgt/src 1 100 1024
q lvcreate -q -s -n s1 vgt/src
q lvchange -q -ay -K vgt/s1
kv s1_sum "$(sum /dev/vgt/s1)"
kv s1_mapped "$(mapped vgt-s1)"
kv pool_data_percent "$(data_percent vgt/pool)"
kv pool2_before "$(data_percent vgt/pool2)"
run full "${lvmsync[@]}" -v --full vgt/s1 /dev/vgt/dst
kv full_sum "$(sum /dev/vgt/dst)"
kv full_mapped "$(mapped vgt-dst)"
kv pool2_data_percent "$(data_percent vgt/pool2)"
kv held_after_full "$(dmsetup status vgt-pool-tpool | cut -d' ' -f7)"

# 2. A --from round after it.
scatter /dev/vgt/src 2 30 1024
q lvcreate -q -s -n s2 vgt/src
q lvchange -q -ay -K vgt/s2
kv s2_sum "$(sum /dev/vgt/s2)"
run round "${lvmsync[@]}" -v --from vgt/s1 vgt/s2 /dev/vgt/dst
kv round_sum "$(sum /dev/vgt/dst)"
kv round_mapped "$(mapped vgt-dst)"
kv s2_mapped "$(mapped vgt-s2)"

# 3. Over ssh with --verify; through a pipe.
start_sshd
thin pool2 64M dst2
run remote "${lvmsync[@]}" -v --full --verify --rsh "$rsh" --remote-lvmsync "ruby $repo/exe/lvmsync" \
  vgt/s1 root@127.0.0.1:/dev/vgt/dst2
kv remote_sum "$(sum /dev/vgt/dst2)"
kv remote_mapped "$(mapped vgt-dst2)"
thin pool2 64M dst3
set +e
"${lvmsync[@]}" --full --stdout vgt/s1 2>"$out/pipe_send.err" | "${lvmsync[@]}" --apply - /dev/vgt/dst3 2>"$out/pipe.err"
kv pipe_rc "${PIPESTATUS[*]}"
set -e
kv pipe_sum "$(sum /dev/vgt/dst3)"
kv pipe_mapped "$(mapped vgt-dst3)"

# 4. --snapback onto a thin LV holding other data (the first 4 MiB, and 20 scattered blocks).
thin pool2 64M dst4
dd if=/dev/urandom of=/dev/vgt/dst4 bs=1M count=4 oflag=direct status=none
scatter /dev/vgt/dst4 3 20 1024
kv dst4_before "$(sum /dev/vgt/dst4)"
run snapback "${lvmsync[@]}" --full --snapback /tmp/full.sb vgt/s1 /dev/vgt/dst4
kv snapback_sum "$(sum /dev/vgt/dst4)"
run undo "${lvmsync[@]}" --apply /tmp/full.sb /dev/vgt/dst4
kv undo_sum "$(sum /dev/vgt/dst4)"

# 5. A linear LV, 50 of 512 blocks written, the rest zeros; a classic snapshot of it.
q lvcreate -q -L 32M -n lin vgt
dd if=/dev/zero of=/dev/vgt/lin bs=1M count=32 oflag=direct status=none
scatter /dev/vgt/lin 4 50 512
q lvcreate -q -s -L 8M -n lin-snap vgt/lin
kv lin_sum "$(sum /dev/vgt/lin-snap)"
thin pool2 32M dst5
run classic "${lvmsync[@]}" -v --full vgt/lin-snap /dev/vgt/dst5
kv classic_sum "$(sum /dev/vgt/dst5)"
kv classic_mapped "$(mapped vgt-dst5)"
q lvremove -q -y vgt/lin-snap
thin pool2 32M dst6
run plainlv "${lvmsync[@]}" --full vgt/lin /dev/vgt/dst6
kv plainlv_sum "$(sum /dev/vgt/dst6)"
kv plainlv_mapped "$(mapped vgt-dst6)"

q vgchange -q -an vgt
echo DONE
