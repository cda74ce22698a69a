# frozen_string_literal: true

require_relative "../lvm"

module LVM
  # One segment of a logical volume (`segment1`...), typed for the segment types lvmsync
  # knows (striped, snapshot, thin-pool, thin, mirror, raid*) and raw for every type.
  class SegmentConfig
    FIELDS = %i[name number start_extent extent_count type type_flags
                stripe_count stripe_size stripes
                chunk_size origin store merging
                metadata pool transaction_id discards zero_new_blocks
                thin_pool device_id merge external_origin
                mirror_count mirror_log region_size mirrors
                device_count lvs].freeze

    def initialize(data)
      @data = data
    end

    FIELDS.each { |f| define_method(f) { @data[f] } }

    # Every key of the segment section, as in the file.
    def raw = @data[:raw]

    # A key of the segment section as in the file (`seg["stripe_size"]`).
    def [](key)
      raw[key.to_s]
    end

    def to_h
      @data.dup
    end

    def inspect
      "#<LVM::SegmentConfig #{name} #{type} extents #{start_extent}+#{extent_count}>"
    end
  end
end
