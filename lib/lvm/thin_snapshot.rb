# frozen_string_literal: true

require_relative "../lvm"

module LVM
  # A thin snapshot, by VG and LV name.
  #
  #   snap = LVM::ThinSnapshot.new("vg0", "web-snap")
  #   snap.differences            # => inclusive byte Ranges where the origin now differs
  #   snap.delta                  # => LVM::ThinDelta (changed and unmapped extents)
  #   newer = LVM::ThinSnapshot.new("vg0", "web-snap2")
  #   newer.delta(from: snap)     # => what changed between the two snapshots
  #   snap.mapping                # => LVM::ThinMapping (the blocks it maps: a --full copy)
  #
  # Changes come from `thin_delta` on a reserved metadata snapshot of the pool (reserved and
  # always released by LVM::ThinPool); only the changed runs are kept in memory.
  class ThinSnapshot
    attr_reader :vg_name, :lv_name

    # +thin_delta+, +thin_dump+ and +dmsetup+ name the commands to run (split into words,
    # no shell).
    def initialize(vg, lv, vgcfg: nil, thin_delta: "thin_delta", dmsetup: "dmsetup", thin_dump: "thin_dump")
      @vg_name = vg.to_s
      @lv_name = lv.to_s
      @vgcfg = vgcfg
      @thin_delta = thin_delta
      @dmsetup = dmsetup
      @thin_dump = thin_dump
      raise LVM::Error, "#{@vg_name}/#{@lv_name}: not a thin LV" unless config.thin?
    end

    # Inclusive byte Ranges of the origin that differ from this snapshot now (data written
    # since, and blocks the origin no longer maps, which read as zeros there), coalesced.
    def differences
      @differences ||= delta.ranges
    end

    # An LVM::ThinDelta from this snapshot to its origin; with +from+ (an older thin snapshot
    # of the same origin: an LVM::ThinSnapshot, LVM::LogicalVolume or LV name), from that one
    # to this one. +job+ (an Ironshed::Progress) allows cancelling from another thread.
    def delta(from: nil, job: nil)
      left, right = from ? [self.class.coerce(from, self), self] : [self, origin_snapshot]
      left.check_same_pool(right)
      pool.with_metadata_snapshot do |meta|
        ThinDelta.run(meta, left.device_id, right.device_id, thin_delta: @thin_delta, job: job)
      end
    end

    # An LVM::ThinMapping of the blocks this thin LV maps (thin_dump on a reserved metadata
    # snapshot of the pool, always released); LVM::ChangeSet.full(path, mapping:) makes the
    # whole-volume copy of it. +job+ (an Ironshed::Progress) allows cancelling.
    def mapping(job: nil)
      pool.with_metadata_snapshot do |meta|
        ThinMapping.run(meta, device_id, thin_dump: @thin_dump, job: job)
      end
    end

    # The origin LV's name (nil for a thin LV that is not a snapshot).
    def origin = config.origin
    # The kernel thin device id.
    def device_id = config.device_id
    # The pool (an LVM::ThinPool).
    def pool = ThinPool.new(@vg_name, config.thin_pool, dmsetup: @dmsetup)
    # The LV's metadata (LVM::LVConfig).
    def config
      vgcfg.logical_volumes[@lv_name] or
        raise LVM::Error, "Logical volume #{@lv_name} does not exist in volume group #{@vg_name}"
    end

    # The origin as an LVM::ThinSnapshot (thin LVs of either kind share this class).
    def origin_snapshot
      raise LVM::Error, "#{@vg_name}/#{@lv_name}: not a snapshot (it has no origin)" unless origin

      self.class.new(@vg_name, origin, vgcfg: vgcfg, thin_delta: @thin_delta, dmsetup: @dmsetup)
    end

    # Raises LVM::Error unless +other+ is a thin LV of the same pool.
    def check_same_pool(other)
      return if other.vg_name == @vg_name && other.config.thin_pool == config.thin_pool

      raise LVM::Error, "#{@vg_name}/#{@lv_name} and #{other.vg_name}/#{other.lv_name} are not thin LVs " \
                        "of the same pool: thin_delta can only compare devices of one pool"
    end

    def self.coerce(obj, like)
      case obj
      when ThinSnapshot then obj
      when LogicalVolume then new(obj.vg_name, obj.lv_name, vgcfg: obj.vg_config)
      else
        new(like.vg_name, obj.to_s, vgcfg: like.send(:vgcfg))
      end
    end

    def inspect
      "#<LVM::ThinSnapshot #{@vg_name}/#{@lv_name} id=#{device_id} origin=#{origin.inspect}>"
    end

    private

    def vgcfg
      @vgcfg ||= VGConfig.new(@vg_name)
    end
  end
end
