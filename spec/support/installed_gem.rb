# frozen_string_literal: true

# What both gem specs (source and platform) check of an installed gem: its vmdksync,
# lvmsync, check_interface, rootzone and check_rootzone, run from GEM_HOME/bin with +env+ in
# the example's @dir, do their job (vmdksync's result compared with qemu-img's reading of the
# same delta, rootzone verifying a zone ldns-signzone signed).
module InstalledGem
  def expect_installed_tools_work(env, bin)
    esx_set(@dir, capacity: "2M", grain_size: 8, writes: ["4K:4K"])
    dest = File.join(@dir, "dest.raw")
    FileUtils.cp(File.join(@dir, "vm-flat.vmdk"), dest)
    out, err, st = Open3.capture3(env, File.join(bin, "vmdksync"), "-q", "vm-000001.vmdk", "dest.raw", chdir: @dir)
    expect([st.exitstatus, out, err]).to eq([0, "", ""])
    expect(File.binread(dest)).to eq(File.binread(qemu_raw(File.join(@dir, "vm-000001.vmdk"), File.join(@dir, "q.raw"))))

    out, err, st = Open3.capture3(env, File.join(bin, "lvmsync"), "--version", chdir: @dir)
    expect([st.exitstatus, out]).to eq([0, "lvmsync (ironshed) #{Ironshed::VERSION}\n"]), err
    File.binwrite(File.join(@dir, "target.img"), "\0" * 8192)
    File.binwrite(File.join(@dir, "stream"), "lvmsync PROTO[3]\n#{[4096, 3].pack('Q>N')}abc")
    _o, err, st = Open3.capture3(env, File.join(bin, "lvmsync"), "-q", "--apply", "stream", "target.img", chdir: @dir)
    expect(st.exitstatus).to eq(0), err
    expect(File.binread(File.join(@dir, "target.img"), 3, 4096)).to eq("abc")

    out, err, st = Open3.capture3(env, File.join(bin, "check_interface"), "-i", "lo", "-s", File.join(@dir, "ci.state"),
                                  chdir: @dir)
    expect([st.exitstatus, out]).to match([0, /\AINTERFACE OK - lo up, /]), err

    File.write(File.join(@dir, "root.unsigned"), testkit("rootzone", "--tlds", 5, "--serial", 2024120600))
    keys = [%w[-k], []].map do |k|
      o, e, s = Open3.capture3("ldns-keygen", "-a", "ECDSAP256SHA256", *k, ".", chdir: @dir)
      raise "ldns-keygen: #{e}" unless s.success?

      o.strip
    end
    _o, e, s = Open3.capture3("ldns-signzone", "-z", "1:1", "-o", ".", "-f", "root.zone", "root.unsigned", *keys,
                              chdir: @dir)
    raise "ldns-signzone: #{e}" unless s.success?

    out, err, st = Open3.capture3(env, File.join(bin, "rootzone"), "update", "--dry-run", "--source", "root.zone",
                                  "--trust-anchor", "#{keys[0]}.key", "--tinydns-root", @dir, chdir: @dir)
    expect([st.exitstatus, out]).to match([0, /\Arootzone: dry run: serial 2024120600 verified/]), err
    out, _err, st = Open3.capture3(env, File.join(bin, "check_rootzone"), "--version", chdir: @dir)
    expect([st.exitstatus, out]).to eq([3, "check_rootzone (ironshed) #{Ironshed::VERSION}\n"])
  end
end

RSpec.configure { |c| c.include InstalledGem }
