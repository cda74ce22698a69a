# frozen_string_literal: true

require_relative "../lvm"
require "open3"
require "shellwords"
require "tmpdir"

module LVM
  # A volume group's metadata, from `vgcfgbackup` (as in the original API) or from text.
  #
  #   LVM::VGConfig.new("vg0")                                      # runs vgcfgbackup
  #   LVM::VGConfig.new("vg0", vgcfgbackup_command: "sudo vgcfgbackup")
  #   LVM::VGConfig.load("/etc/lvm/backup/vg0")                     # a file
  #   LVM::VGConfig.parse(text)
  #
  # A text holding only the header keys (contents, version, description...) and no section
  # is read as the original read it: the header readers answer, #volume_group is nil, and
  # there are no physical or logical volumes.
  class VGConfig
    # Runs `<vgcfgbackup_command> -f TMPFILE VG_NAME` (the command is split into words, never
    # run through a shell) and parses the file it writes.
    def initialize(vg_name, opts = {}, vgcfgbackup_command: nil)
      cmd = vgcfgbackup_command || opts[:vgcfgbackup_command] || "vgcfgbackup"
      @vg_name = vg_name.to_s
      setup(Metadata.parse(vgcfgbackup_output(cmd), "vgcfgbackup of #{@vg_name}", @vg_name))
    end

    # Parses metadata text; +vg_name+ picks the VG when there are several top-level sections.
    def self.parse(text, vg_name = nil, source: "(metadata text)")
      allocate.tap do |c|
        c.send(:setup, Metadata.parse(text.to_s, source, vg_name&.to_s))
      end
    end

    # Parses a metadata file (a vgcfgbackup file, /etc/lvm/backup/VG, an archive file).
    def self.load(path, vg_name = nil)
      parse(File.binread(path), vg_name, source: path.to_s)
    end

    # The `version` header key (1).
    def version = @meta[:version]
    # The `description` header key (the command that wrote the file).
    def description = @meta[:description]
    # The `contents` header key.
    def contents = @meta[:contents]
    # The `creation_host` header key.
    def creation_host = @meta[:creation_host]
    # The `creation_time` header key (unix seconds).
    def creation_time = @meta[:creation_time]
    # VG name.
    def name = @vg[:name]
    # VG UUID.
    def uuid = @vg[:id]
    # Metadata sequence number.
    def seqno = @vg[:seqno]
    # Extent size in sectors.
    def extent_size = @vg[:extent_size]
    # VG status flags.
    def status = @vg[:status]
    # VG flags.
    def flags = @vg[:flags]
    # VG tags.
    def tags = @vg[:tags]
    # The VG section with every key, as in the file (nil when the text has none).
    def volume_group = @vg[:raw]
    # The whole file, as parsed.
    def raw = @meta[:raw]
    # Keys with a value of an unexpected type, as "path/key: what" strings (their typed
    # fields read nil; the rest of the VG is unaffected).
    def problems = @meta[:problems]
    # The parsed model as the native core holds it (an LVM::Metadata), which plans lvmsync's
    # rounds (LVM::Metadata#plan_round).
    attr_reader :metadata

    # PVs by name ("pv0" => LVM::PVConfig).
    def physical_volumes
      @physical_volumes ||= @vg[:physical_volumes].to_h { |p| [p[:name], PVConfig.new(p)] }
    end

    # LVs by name, hidden ones included ("snap" => LVM::LVConfig).
    def logical_volumes
      @logical_volumes ||= @vg[:logical_volumes].to_h { |l| [l[:name], LVConfig.new(l, l[:name], self)] }
    end

    # Classic snapshots by the name of their COW LV (the name users know them by): each a
    # Hash with :bookkeeping_lv (the hidden snapshotN LV), :origin, :chunk_size (bytes, or
    # nil) and :merging (a merge into the origin is pending or running).
    def classic_snapshots
      @classic_snapshots ||= @vg[:classic_snapshots].to_h { |s| [s[:cow_store], s.except(:cow_store)] }
    end

    def inspect
      "#<LVM::VGConfig #{name || '(no volume group)'} #{logical_volumes.size} LVs>"
    end

    private

    def setup(metadata)
      @metadata = metadata
      @meta = metadata.to_h
      @vg = @meta[:vg] || { physical_volumes: [], logical_volumes: [], classic_snapshots: [] }
    end

    def vgcfgbackup_output(cmd)
      words = cmd.is_a?(Array) ? cmd.map(&:to_s) : Shellwords.split(cmd.to_s)
      Dir.mktmpdir("lvm-vgcfg") do |dir|
        file = File.join(dir, "#{@vg_name}.vg")
        out, err, st = Open3.capture3(*words, "-f", file, @vg_name)
        unless st.success? && File.exist?(file)
          detail = (err.strip.empty? ? out : err).strip.lines.last&.strip
          raise LVM::Error, "#{words.join(' ')} -f FILE #{@vg_name} failed " \
                            "(#{st.exitstatus ? "exit status #{st.exitstatus}" : st}): #{detail || 'no message'}"
        end
        File.binread(file)
      end
    rescue SystemCallError => e
      raise LVM::Error, "could not run #{words&.first}: #{e.message}"
    end
  end
end
