# frozen_string_literal: true

require "fileutils"

# A stand-in LVM for running lvmsync's sender on machines without device-mapper: `lvs` and
# `vgcfgbackup` scripts on PATH that answer from a metadata file, and device nodes under
# $DM_DEV_DIR/mapper (which LVM and lvmsync honour) pointing at image files or loop devices.
# The exception store and the origin are real bytes written by ironshed-testkit.
module LvmEnv
  # Real classic-snapshot metadata, as vgcfgbackup wrote it in the real-kernel guest
  # (spec/fixtures/lvm/classic-hyphen.vg): VG "vg-sync", origin "src-lv", snapshots
  # "src-snap" (4 KiB chunks) and "tiny". +merging+ turns src-snap's cow_store into the
  # merging_store LVM writes while a merge is pending.
  def self.classic_metadata(merging: false)
    text = File.read(File.expand_path("../fixtures/lvm/classic-hyphen.vg", __dir__))
    merging ? text.sub('cow_store = "src-snap"', 'merging_store = "src-snap"') : text
  end

  # Sets up the stand-in under +dir+ and returns the environment to run lvmsync with.
  # +vgs+: {vg_name => metadata text}; +lvs+: {path => [vg, lv]}; +nodes+: {dm name => target}.
  def self.build(dir, vgs:, lvs:, nodes:)
    bin = File.join(dir, "fakebin")
    mapper = File.join(dir, "dev", "mapper")
    meta = File.join(dir, "meta")
    [bin, mapper, meta].each { |d| FileUtils.mkdir_p(d) }
    vgs.each { |name, text| File.write(File.join(meta, "#{name}.vg"), text) }
    File.write(File.join(meta, "lvs.map"), lvs.map { |path, (vg, lv)| "#{path} #{vg} #{lv}\n" }.join)
    nodes.each { |name, target| File.symlink(target, File.join(mapper, name)) }
    script = lambda do |name, body|
      path = File.join(bin, name)
      File.write(path, "#!/bin/sh\n#{body}")
      File.chmod(0o755, path)
    end
    script.call("lvs", <<~SH)
      # lvs --noheadings -o vg_name,lv_name PATH
      for last; do :; done
      line=$(awk -v p="$last" '$1 == p { print "  " $2 " " $3 }' "#{meta}/lvs.map")
      if [ -z "$line" ]; then echo "  Failed to find logical volume \\"$last\\"" >&2; exit 5; fi
      echo "$line"
    SH
    script.call("vgcfgbackup", <<~SH)
      # vgcfgbackup -f FILE VG
      [ "$1" = "-f" ] || { echo "usage: vgcfgbackup -f FILE VG" >&2; exit 3; }
      [ -f "#{meta}/$3.vg" ] || { echo "  Volume group \\"$3\\" not found" >&2; exit 5; }
      cp "#{meta}/$3.vg" "$2"
    SH
    { "PATH" => "#{bin}:#{ENV.fetch('PATH')}", "DM_DEV_DIR" => File.join(dir, "dev") }
  end
end
