# Shared by the guest scripts (sourced): output as KEY=VALUE lines, checksums, and sshd on
# 127.0.0.1 for remote tests.

kv() { printf '%s=%s\n' "$1" "$2"; }
# SHA-256 of a device or file, read with O_DIRECT (what is on the device, not in the cache).
sum() { dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1; }
q() { "$@" >/dev/null; }
run() { # run NAME CMD...: exit status as NAME_rc, stderr in OUT/NAME.err ($out: the output directory)
  local name=$1; shift
  set +e; "$@" 2>"$out/$name.err"; kv "${name}_rc" $?; set -e
}

# Starts sshd on 127.0.0.1:2222 with fresh keys, root logging in with /tmp/client's key, and
# sets $rsh to the ssh command line that reaches it.
start_sshd() {
  rm -f /etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
  ssh-keygen -q -t ed25519 -N '' -f /tmp/client
  # Root's login shell reads it on every connection; the host's may be slow under TCG.
  : >/root/.bashrc
  mkdir -p -m 700 /root/.ssh
  cp /tmp/client.pub /root/.ssh/authorized_keys
  /usr/sbin/sshd -o ListenAddress=127.0.0.1 -o Port=2222 -o UsePAM=no -h /etc/ssh/ssh_host_ed25519_key
  rsh="ssh -p 2222 -i /tmp/client -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=error"
}
# Mapped sectors of a thin device (dm name), from its status line.
mapped() { dmsetup status "$1" | cut -d' ' -f4; }
# run NAME CMD...: exit status as NAME_rc, stderr in $out/NAME.err.
run() {
  local name=$1; shift
  set +e; "$@" 2>"$out/$name.err"; kv "${name}_rc" $?; set -e
}
