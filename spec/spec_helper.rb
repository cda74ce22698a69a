# frozen_string_literal: true

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)

require "digest"
require "fileutils"
require "json"
require "open3"
require "rbconfig"
require "tmpdir"
require "vmdksync"

# Helpers shared by the specs: fixtures from ironshed-testkit (built by `rake compile`),
# running the executables as a user would, and the qemu-img oracle.
module SpecHelpers
  ROOT = File.expand_path("..", __dir__)
  TESTKIT = File.join(ROOT, "target", "release", "ironshed-testkit")

  def testkit(*args)
    out, err, st = Open3.capture3(TESTKIT, *args.map(&:to_s))
    raise "ironshed-testkit #{args.join(' ')} failed: #{err}" unless st.success?

    out
  end

  # Writes an ESX file set into +dir+ (vm-flat.vmdk, vm.vmdk, vm-000001.vmdk,
  # vm-000001-delta.vmdk) and returns the delta's layout (table and grain sectors).
  def esx_set(dir, capacity:, grain_size: 1, layout: "sequential", seed: 1, writes: [], random: nil,
              extra: [])
    args = ["cowd", "--dir", dir, "--capacity", capacity, "--grain-size", grain_size, "--layout", layout,
            "--seed", seed]
    writes.each { |w| args += ["--write", w] }
    args += ["--random-writes", random] if random
    JSON.parse(testkit(*args, *extra))
  end

  def run_exe(name, *args, stdin_data: "", env: {}, binmode: false)
    Open3.capture3(env, RbConfig.ruby, File.join(ROOT, "exe", name), *args.map(&:to_s),
                   stdin_data: stdin_data, binmode: binmode)
  end

  # run_exe, but killed (exit 137) if it has not finished within +seconds+: a command that
  # blocks fails its example instead of hanging the suite.
  def run_exe_within(seconds, name, *args, env: {}, stdin_data: "")
    Open3.capture3(env, "timeout", "-s", "KILL", seconds.to_s, RbConfig.ruby, File.join(ROOT, "exe", name),
                   *args.map(&:to_s), stdin_data: stdin_data)
  end

  # Starts an executable in the background; returns [pid, stderr reader].
  def spawn_exe(name, *args, env: {}, **opts)
    err_r, err_w = IO.pipe
    pid = Process.spawn(env, RbConfig.ruby, File.join(ROOT, "exe", name), *args.map(&:to_s), err: err_w, **opts)
    err_w.close
    [pid, err_r]
  end

  # Waits up to +seconds+ for +pid+; kills it (and fails) if it does not end.
  def wait_within(pid, seconds)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    loop do
      _, status = Process.wait2(pid, Process::WNOHANG)
      return status if status
      break if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
    Process.kill("KILL", pid)
    Process.wait(pid)
    raise "process #{pid} did not end within #{seconds} s"
  end

  # Every file under +dir+ (links not followed) and its digest: what "no file changed" compares.
  def file_digests(dir)
    Dir.glob("#{dir}/**/*").select { |f| File.file?(f) && !File.symlink?(f) }.to_h { |f| [f, sha(f)] }
  end

  # Runs +tool+ with each [args, message] of +cases+, from +dir+, expecting a usage error:
  # exit 2, the message and the usage line on stderr, and no file under +dir+ changed.
  def expect_usage_errors(tool, cases, dir)
    Dir.chdir(dir) do
      cases.each do |args, msg|
        before = file_digests(dir)
        out, err, st = run_exe(tool, *args)
        expect([st.exitstatus, out]).to eq([2, ""]), args.inspect
        expect(err.lines.first).to start_with("#{tool}: #{msg}")
        expect(err.lines.size).to eq(2), err
        expect(file_digests(dir)).to eq(before)
      end
    end
  end

  # Mounts a tmpfs of +size+ (e.g. "4M") on +dir+ for the block: a filesystem that fills up.
  def with_tmpfs(dir, size)
    raise "tmpfs mounts need root (bin/test runs as root)" unless root?

    FileUtils.mkdir_p(dir)
    system("mount", "-t", "tmpfs", "-o", "size=#{size}", "tmpfs", dir.to_s, exception: true)
    begin
      yield dir
    ensure
      system("umount", dir.to_s)
    end
  end

  def qemu_raw(descriptor, out)
    _o, e, st = Open3.capture3("qemu-img", "convert", "-O", "raw", descriptor.to_s, out.to_s)
    raise "qemu-img convert failed: #{e}" unless st.success?

    out
  end

  def sha(path)
    Digest::SHA256.file(path).hexdigest
  end

  # Patches little-endian u32 +value+ at byte +offset+ of +path+.
  def poke_u32(path, offset, value)
    File.open(path, "r+b") do |f|
      f.seek(offset)
      f.write([value].pack("V"))
    end
  end

  def poke(path, offset, bytes)
    File.open(path, "r+b") do |f|
      f.seek(offset)
      f.write(bytes)
    end
  end

  def root?
    Process.uid.zero?
  end

  VM_RUN = File.join(ROOT, "bin", "vm-run")

  # Runs +cmd+ as root in the real-kernel VM (bin/vm-run; Debian's kernel with device-mapper,
  # the e1000 driver...) from +chdir+, which must be inside the repository for the guest to
  # write there. Returns [stdout, stderr, Process::Status], stdout and stderr as binary strings.
  # Specs using it are tagged :vm (bin/test runs them as tier 4).
  def vm_run(*cmd, e1000: false, timeout: nil, mem: nil, env: {}, chdir: ROOT, host_env: {})
    args = []
    args << "--e1000" if e1000
    args += ["--timeout", timeout.to_s] if timeout
    args += ["--mem", mem.to_s] if mem
    env.each { |k, v| args += ["-e", "#{k}=#{v}"] }
    Open3.capture3(host_env, VM_RUN, *args, "--", *cmd.map(&:to_s), chdir: chdir, binmode: true)
  end

  # Attaches +file+ to a loop device for the block, then detaches it.
  def with_loop_device(file)
    raise "loop device tests need root (bin/test runs as root)" unless root?

    dev, err, st = Open3.capture3("losetup", "--find", "--show", file.to_s)
    raise "losetup failed: #{err}" unless st.success?

    dev = dev.strip
    begin
      yield dev
    ensure
      system("losetup", "-d", dev)
    end
  end
end

RSpec.configure do |c|
  c.include SpecHelpers
  c.disable_monkey_patching!
  c.order = :defined
  c.around(:each, :tmpdir) do |ex|
    Dir.mktmpdir("ironshed-spec") do |d|
      @dir = d
      ex.run
    end
  end
  # Examples that stop a tool with SIGHUP: a suite started under nohup ignores SIGHUP, and
  # its children inherit that, so the tool would run on to the end. SIG_DFL while they run.
  c.around(:each, :sighup) do |ex|
    old = Signal.trap("HUP", "SYSTEM_DEFAULT")
    begin
      ex.run
    ensure
      Signal.trap("HUP", old)
    end
  end
end
