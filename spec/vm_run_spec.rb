# frozen_string_literal: true

require "io/wait"

# bin/vm-run, the real-kernel test VM, checked against the things the other specs rely on.
# Every boot costs seconds (TCG), so the main checks share one boot; the small ones run side
# by side, which is also the check that simultaneous runs do not collide.
RSpec.describe "bin/vm-run", :vm do
  # Runs in the guest from spec/ (a subdirectory of the repository), with $1 = a directory
  # of the repository to write into. Prints KEY=VALUE lines, then "BINARY" and every byte
  # value, and exits 3.
  def guest_checks
    <<~'BASH'
      set -euo pipefail
      out_dir=$1
      kv() { printf '%s=%s\n' "$1" "$2"; }

      kv uname "$(uname -r)"
      kv proc_version "$(cat /proc/version)"
      kv uid "$(id -u)"
      kv cwd "$PWD"
      kv home "$HOME"
      kv path "$PATH"
      kv mark "$MARK"
      kv lo_flags "$(cat /sys/class/net/lo/flags)"
      kv netdevs "$(ls /sys/class/net | tr '\n' ' ')"
      kv loop_control "$(stat -c %F /dev/loop-control)"
      echo "this goes to stderr" >&2

      # The repository is writable and shared; the rest of the host only through the overlay.
      echo "written by the guest" >"$out_dir/from-guest.txt"
      echo "written by the guest" >/etc/ironshed-vm-spec

      modprobe -a dm-snapshot dm-thin-pool loop e1000 veth
      kv modules "$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"

      # An LVM snapshot on a loop device over a tmpfs file: the origin gets "A"s, the snapshot
      # is taken, the origin then gets "B"s; the snapshot must still read the "A"s.
      truncate -s 64M /tmp/pv.img
      dev=$(losetup --find --show /tmp/pv.img)
      pvcreate -q "$dev" >/dev/null
      vgcreate -q vmspec "$dev" >/dev/null
      lvcreate -q -L 8M -n base vmspec >/dev/null
      head -c 4096 /dev/zero | tr '\0' A | dd of=/dev/vmspec/base bs=4096 oflag=direct status=none
      lvcreate -q -s -L 4M -n snap vmspec/base >/dev/null
      head -c 4096 /dev/zero | tr '\0' B | dd of=/dev/vmspec/base bs=4096 oflag=direct status=none
      first4k() { dd if="$1" bs=4096 count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1; }
      kv snap_table "$(dmsetup table vmspec-snap)"
      kv snap_first_4k "$(first4k /dev/vmspec/snap)"
      kv base_first_4k "$(first4k /dev/vmspec/base)"

      # A thin pool and a thin volume (activation runs thin_check from thin-provisioning-tools).
      lvcreate -q -L 8M -T vmspec/pool >/dev/null
      lvcreate -q -V 16M -T vmspec/pool -n thin >/dev/null
      kv pool_table "$(dmsetup table vmspec-pool-tpool)"
      kv thin_table "$(dmsetup table vmspec-thin)"

      ip link add vmspec0 type veth peer name vmspec1
      kv veth_driver "$(ethtool -i vmspec0 | sed -n 's/^driver: //p')"

      # sshd on 127.0.0.1 with a host key generated in the overlay. An empty ~/.bashrc keeps
      # the remote shell from running the host root's one (slow under TCG).
      rm -f /etc/ssh/ssh_host_*
      ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
      ssh-keygen -q -t ed25519 -N '' -f /tmp/client
      : >/root/.bashrc
      mkdir -p -m 700 /root/.ssh
      cp /tmp/client.pub /root/.ssh/authorized_keys
      /usr/sbin/sshd -o ListenAddress=127.0.0.1 -o Port=2222 -o UsePAM=no -h /etc/ssh/ssh_host_ed25519_key
      kv ssh "$(ssh -i /tmp/client -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=error root@127.0.0.1 'echo "$(hostname):$(id -u)"')"

      echo BINARY
      perl -e 'print pack("C*", 0 .. 255) x 1024'
      exit 3
    BASH
  end

  def host_files_digest(glob)
    Dir[glob].sort.to_h { |f| [f, Digest::SHA256.file(f).hexdigest] }
  end

  context "running a batch of checks in one boot" do
    before(:context) do
      FileUtils.mkdir_p(File.join(SpecHelpers::ROOT, "tmp"))
      @out_dir = Dir.mktmpdir("vm-run-spec", File.join(SpecHelpers::ROOT, "tmp"))
      @ssh_keys_before = host_files_digest("/etc/ssh/ssh_host_*")
      @out, @err, @status = vm_run("bash", "-c", guest_checks, "guest-checks", @out_dir,
                                   env: { "MARK" => %(two words, 'quotes' "and" $dollar) },
                                   chdir: File.join(SpecHelpers::ROOT, "spec"), timeout: 900)
      text, @binary = @out.split("BINARY\n", 2)
      @kv = text.to_s.lines.grep(/\A\w+=/).to_h { |l| l.chomp.split("=", 2) }
    end

    after(:context) do
      FileUtils.rm_rf(@out_dir)
    end

    it "passes the command's exit status through" do
      expect(@status.exitstatus).to eq(3), "stdout:\n#{@out}\nstderr:\n#{@err}"
    end

    it "returns the command's stdout and stderr, byte for byte" do
      expect(@kv["uid"]).to eq("0")
      expect(@err).to include("this goes to stderr\n")
      expect(@out).not_to include("this goes to stderr")
      expect(@binary).to eq([*0..255].pack("C*") * 1024)
    end

    it "boots Debian's linux-image-amd64 kernel" do
      depends = `dpkg-query -W -f='${Depends}' linux-image-amd64`
      kernel_package, version = depends.match(/linux-image-(\S+) \(= (\S+)\)/).captures
      expect(@kv["uname"]).to eq(kernel_package)
      expect(@kv["proc_version"]).to include("Debian #{version}")
    end

    it "runs the command in the host's working directory with the documented environment" do
      expect(@kv["cwd"]).to eq(File.join(SpecHelpers::ROOT, "spec"))
      expect(@kv["home"]).to eq("/root")
      expect(@kv["path"].split(":")).to include("/root/.cargo/bin", "/usr/sbin")
      expect(@kv["mark"]).to eq(%(two words, 'quotes' "and" $dollar))
    end

    it "shares the repository writable and keeps the rest of the host read-only" do
      expect(File.read(File.join(@out_dir, "from-guest.txt"))).to eq("written by the guest\n")
      expect(File).not_to exist("/etc/ironshed-vm-spec")
      expect(host_files_digest("/etc/ssh/ssh_host_*")).to eq(@ssh_keys_before)
    end

    it "has lo up, /dev/loop-control, and no network device but lo" do
      expect(@kv["lo_flags"].to_i(16) & 1).to eq(1) # IFF_UP
      expect(@kv["loop_control"]).to eq("character special file")
      expect(@kv["netdevs"]).to eq("lo ")
    end

    it "loads the device-mapper, loop, e1000 and veth modules" do
      expect(@kv["modules"].split).to include("dm_mod", "dm_snapshot", "dm_thin_pool", "loop", "e1000", "veth")
      expect(@kv["veth_driver"]).to eq("veth")
    end

    it "runs LVM without udev: a dm-snapshot keeps the origin's old data" do
      expect(@kv["snap_table"]).to match(/\A0 16384 snapshot \d+:\d+ \d+:\d+ P \d+\z/)
      expect(@kv["snap_first_4k"]).to eq(Digest::SHA256.hexdigest("A" * 4096))
      expect(@kv["base_first_4k"]).to eq(Digest::SHA256.hexdigest("B" * 4096))
    end

    it "creates thin pools and thin volumes" do
      expect(@kv["pool_table"]).to match(/\A0 16384 thin-pool \d+:\d+ \d+:\d+ \d+ /)
      expect(@kv["thin_table"]).to match(/\A0 32768 thin \d+:\d+ 1\z/)
    end

    it "runs the host's sshd on 127.0.0.1 with a host key generated in the overlay" do
      expect(@kv["ssh"]).to eq("ironshed-vm:0")
    end
  end

  context "with a timeout, with --e1000, and both at once" do
    before(:context) do
      @tmp = Dir.mktmpdir("vm-run-spec")
      host_env = { "TMPDIR" => @tmp }
      e1000 = <<~'BASH'
        modprobe e1000
        ip link set eth0 up
        # The driver reports the link a few seconds after "up" (its watchdog).
        for i in $(seq 120); do
          [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && break
          sleep 0.5
        done
        ethtool -i eth0
        ethtool eth0
        # Stop the VM before the command ends: no exit status is reported.
        sync
        sleep 1
        echo b >/proc/sysrq-trigger
        sleep 60
      BASH
      runs = {
        timeout: Thread.new { vm_run("sh", "-c", "sleep 600", timeout: 8, host_env: host_env) },
        e1000: Thread.new { vm_run("bash", "-c", e1000, e1000: true, timeout: 600, host_env: host_env) }
      }
      @results = runs.transform_values(&:value)
    end

    after(:context) do
      FileUtils.rm_rf(@tmp)
    end

    it "exits 124 when the timeout expires, and says so" do
      _out, err, st = @results[:timeout]
      expect(st.exitstatus).to eq(124), err
      expect(err).to include("vm-run: timed out after 8s")
    end

    it "gives the guest an Intel e1000 NIC with its real driver" do
      out, = @results[:e1000]
      expect(out).to include("driver: e1000\n")
      expect(out).to match(/^bus-info: 0000:\h\h:\h\h\.\h$/)
      expect(out).to include("\tSpeed: 1000Mb/s\n", "\tDuplex: Full\n", "\tLink detected: yes\n")
    end

    it "exits 125 with the console tail when the guest stops before reporting a status" do
      _out, err, st = @results[:e1000]
      expect(st.exitstatus).to eq(125), err
      expect(err).to include("the guest stopped without reporting the command's exit status")
      expect(err).to include("---- last lines of the guest console ----")
    end

    it "leaves nothing behind, running two guests side by side" do
      expect(Dir.children(@tmp)).to be_empty
    end
  end

  it "streams output while the command runs, and stops QEMU and cleans up on Ctrl-C", :tmpdir do
    r, w = IO.pipe
    pid = Process.spawn({ "TMPDIR" => @dir }, SpecHelpers::VM_RUN, "sh", "-c", "echo started; sleep 600",
                        out: w, err: File::NULL, pgroup: true, chdir: SpecHelpers::ROOT)
    w.close
    line = r.wait_readable(600) && r.gets
    expect(line).to eq("started\n") # the command is still running: the output came live
    Process.kill("INT", -pid) # what Ctrl-C does: the whole foreground process group
    _, st = Process.wait2(pid)
    r.close
    expect(st.exitstatus).to eq(130)
    expect(Dir.children(@dir)).to be_empty
    leftovers = Dir["/proc/[0-9]*/cmdline"].select do |f|
      File.binread(f).include?(@dir)
    rescue Errno::ENOENT, Errno::ESRCH
      false
    end
    expect(leftovers).to be_empty
  end

  it "explains its usage, and refuses a missing command with 125" do
    out, _err, st = Open3.capture3(SpecHelpers::VM_RUN, "--help")
    expect(st.exitstatus).to eq(0)
    expect(out).to start_with("Usage: bin/vm-run [--e1000] [--timeout SECONDS] [--mem MIB] [-e NAME=VALUE]...")
    _out, err, st = Open3.capture3(SpecHelpers::VM_RUN, "--timeout", "5")
    expect(st.exitstatus).to eq(125)
    expect(err).to eq("vm-run: no command given (see --help)\n")
  end
end
