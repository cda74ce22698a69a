# frozen_string_literal: true

require "fileutils"
require_relative "lvm_env"

# A stand-in thin pool for running lvmsync's thin path on machines without device-mapper:
# the real vgcfgbackup file of a thin pool (spec/fixtures/lvm/thin.vg: VG vgfix, pool "pool",
# thin1 = id 1, its snapshots thin-snap = id 2 and thin-snap2 = id 3), real thin metadata
# written by thin_restore from mappings the spec chooses, the real thin_delta reading it, and
# a `dmsetup` that keeps the "held metadata snapshot" state in a file and logs every call.
# Device contents are image files built block by block to match the mappings.
module ThinEnv
  BLOCK = 64 << 10          # the fixture pool's chunk_size = 128 sectors
  BLOCKS = 512              # 32 MiB thin LVs
  THIN_DELTA = "/usr/sbin/thin_delta"
  THIN_DUMP = "/usr/sbin/thin_dump"
  FIXTURE = File.expand_path("../fixtures/lvm/thin.vg", __dir__)

  # A thin device: {block => data block}.
  class Device
    attr_reader :map

    def initialize(map = {})
      @map = map
    end
  end

  # Writes the metadata for +devices+ ({dev_id => {block => data_block}}) with thin_restore.
  def self.metadata(path, devices, nr_data_blocks: 4096)
    xml = +%(<superblock uuid="" time="2" transaction="4" data_block_size="#{BLOCK / 512}" nr_data_blocks="#{nr_data_blocks}">\n)
    devices.sort.each do |id, map|
      xml << %(  <device dev_id="#{id}" mapped_blocks="#{map.size}" transaction="0" creation_time="0" snap_time="2">\n)
      map.sort.each { |b, d| xml << %(    <single_mapping origin_block="#{b}" data_block="#{d}" time="0"/>\n) }
      xml << "  </device>\n"
    end
    xml << "</superblock>\n"
    File.write("#{path}.xml", xml)
    File.write(path, "")
    File.truncate(path, 8 << 20)
    out = IO.popen(["thin_restore", "-q", "-i", "#{path}.xml", "-o", path], err: %i[child out], &:read)
    raise "thin_restore failed: #{out}" unless $?.success?
  end

  # The image of a device: each mapped block holds the content of its data block (from
  # +data+, {data_block => 64 KiB String}); unmapped blocks read as zeros.
  def self.image(path, map, data)
    File.open(path, "wb") do |f|
      f.truncate(BLOCKS * BLOCK)
      map.each do |b, d|
        f.seek(b * BLOCK)
        f.write(data.fetch(d))
      end
    end
  end

  # Builds the whole stand-in under +dir+; returns the environment for lvmsync. +images+:
  # {lv name => image path}, made device nodes; the pool's tpool and tmeta nodes are added.
  def self.build(dir, images:, metadata:)
    env = LvmEnv.build(
      dir,
      vgs: { "vgfix" => File.read(File.expand_path("../fixtures/lvm/thin.vg", __dir__)) },
      lvs: %w[thin1 thin-snap thin-snap2].flat_map { |lv| [["/dev/vgfix/#{lv}", ["vgfix", lv]], ["vgfix/#{lv}", ["vgfix", lv]]] }.to_h,
      nodes: images.to_h { |lv, img| ["vgfix-#{lv.gsub('-', '--')}", img] }
              .merge("vgfix-pool-tpool" => "/dev/null", "vgfix-pool_tmeta" => metadata)
    )
    bin = File.join(dir, "fakebin")
    state = File.join(dir, "meta")
    File.write(File.join(bin, "dmsetup"), <<~SH)
      #!/bin/sh
      # dmsetup status NAME | dmsetup message NAME 0 reserve_metadata_snap|release_metadata_snap
      echo "dmsetup $*" >> "#{state}/calls.log"
      held=-; [ -f "#{state}/held" ] && held=60
      case "$1" in
        status) echo "0 65536 thin-pool 4 20/1024 30/256 $held rw discard_passdown queue_if_no_space - 256" ;;
        message)
          case "$4" in
            reserve_metadata_snap)
              [ -f "#{state}/fail-reserve" ] && { echo "device-mapper: message ioctl on $2  failed: No space left on device" >&2; echo "Command failed." >&2; exit 1; }
              if [ -f "#{state}/held" ]; then echo "device-mapper: message ioctl on $2  failed: Device or resource busy" >&2; echo "Command failed." >&2; exit 1; fi
              touch "#{state}/held" ;;
            release_metadata_snap)
              if [ ! -f "#{state}/held" ]; then echo "device-mapper: message ioctl on $2  failed: Invalid argument" >&2; echo "Command failed." >&2; exit 1; fi
              rm "#{state}/held" ;;
            *) echo "unknown message $4" >&2; exit 1 ;;
          esac ;;
        *) echo "fake dmsetup: unsupported $1" >&2; exit 1 ;;
      esac
    SH
    File.write(File.join(bin, "thin_delta"), <<~SH)
      #!/bin/sh
      # The real thin_delta on the metadata file; -m (read the reserved metadata snapshot)
      # needs the stand-in's "held" state, as on a real pool.
      echo "thin_delta $*" >> "#{state}/calls.log"
      [ -f "#{state}/thin_delta.hang" ] && { echo $$ > "#{state}/thin_delta.pid"; exec sleep 60; }
      [ -f "#{state}/thin_delta.junk" ] && { echo "<superblock data_block_size=\\"128\\"><diff><different begin=\\"1\\""; exit 0; }
      if [ "$1" = "-m" ]; then
        shift
        [ -f "#{state}/held" ] || { echo "no current metadata snap" >&2; exit 1; }
      fi
      exec #{THIN_DELTA} "$@"
    SH
    File.write(File.join(bin, "thin_dump"), <<~SH)
      #!/bin/sh
      # The real thin_dump on the metadata file; -m needs the "held" state, as thin_delta's.
      echo "thin_dump $*" >> "#{state}/calls.log"
      if [ "$1" = "-m" ]; then
        shift
        [ -f "#{state}/held" ] || { echo "no current metadata snap" >&2; exit 1; }
      fi
      exec #{THIN_DUMP} "$@"
    SH
    %w[dmsetup thin_delta thin_dump].each { |f| File.chmod(0o755, File.join(bin, f)) }
    env
  end

  def self.calls(dir)
    path = File.join(dir, "meta", "calls.log")
    File.exist?(path) ? File.readlines(path, chomp: true) : []
  end

  def self.held?(dir)
    File.exist?(File.join(dir, "meta", "held"))
  end
end
