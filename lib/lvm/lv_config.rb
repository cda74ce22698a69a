# frozen_string_literal: true

require_relative "../lvm"

module LVM
  # A logical volume of a volume group's metadata. The original API's methods (`thin?`,
  # `snapshot?`, `thin_pool`, `device_id`, `origin`, `cow_store`, `chunk_size`) read the first
  # segment as it did; the rest describes the whole LV.
  class LVConfig
    attr_reader :name

    def initialize(data, name, vgcfg)
      @data = data
      @name = name
      @vgcfg = vgcfg
    end

    # True when the LV is a thin volume.
    def thin?
      segment1["type"] == "thin"
    end

    # True for a thin snapshot (a thin LV with an origin) or a classic snapshot (the COW LV
    # that a hidden snapshotN LV names as its store).
    def snapshot?
      thin? ? !origin.nil? : !classic_snapshot.nil?
    end

    # The pool of a thin LV.
    def thin_pool = segment1["thin_pool"]
    # The kernel thin id of a thin LV.
    def device_id = segment1["device_id"]
    # The first segment's `origin` (thin snapshots, and the hidden snapshotN LVs).
    def origin = segment1["origin"]
    # The first segment's `cow_store` (on the hidden snapshotN LVs of classic snapshots).
    def cow_store = segment1["cow_store"]
    # The first segment's `merging_store` (a snapshotN LV whose merge is pending).
    def merging_store = segment1["merging_store"]

    # The first segment's chunk size in bytes (thin pools and snapshotN LVs), else nil.
    def chunk_size
      cs = segment1["chunk_size"]
      cs.is_a?(Integer) ? cs * 512 : nil
    end

    # For the COW LV of a classic snapshot: the snapshot as the hidden snapshotN LV records it,
    # a Hash with :bookkeeping_lv, :origin, :chunk_size (bytes) and :merging. Else nil.
    def classic_snapshot
      @vgcfg.classic_snapshots[@name]
    end

    # LV UUID.
    def id = @data[:id]
    # Status flags (["READ", "WRITE", "VISIBLE"]).
    def status = @data[:status]
    # Other flags (["ACTIVATION_SKIP"]).
    def flags = @data[:flags]
    # LV tags.
    def tags = @data[:tags]
    # Unix creation time, when recorded.
    def creation_time = @data[:creation_time]
    # Creating host, when recorded.
    def creation_host = @data[:creation_host]
    # Read-ahead in sectors (-1 = none; nil = auto).
    def read_ahead = @data[:read_ahead]
    # The declared segment count.
    def segment_count = @data[:segment_count]
    # Size in bytes (sum of the segments' extents), when known.
    def size = @data[:size]
    # Every key of the LV section, as in the file.
    def raw = @data[:raw]

    # The segments, in order.
    def segments
      @segments ||= @data[:segments].map { |s| SegmentConfig.new(s) }
    end

    # The first segment's type ("striped", "snapshot", "thin", "thin-pool", "raid1"...).
    def type
      segments.first&.type
    end

    # True when the LV carries the VISIBLE status flag.
    def visible?
      status.include?("VISIBLE")
    end

    # A key of the LV section as in the file.
    def [](key)
      raw[key.to_s]
    end

    def inspect
      "#<LVM::LVConfig #{name} #{type}#{snapshot? ? ' snapshot' : ''}>"
    end

    private

    def segment1
      raw["segment1"] || {}
    end
  end
end
