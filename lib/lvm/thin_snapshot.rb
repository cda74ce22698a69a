# frozen_string_literal: true

module LVM
  # A thin snapshot. Its change list (from thin_delta) is not implemented by this version:
  # #differences raises LVM::Error with that reason rather than guessing.
  class ThinSnapshot
    def initialize(vg, lv, vgcfg: nil)
      @vg = vg
      @lv = lv
      @vgcfg = vgcfg
    end

    def differences
      raise LVM::Error, "#{@vg}/#{@lv}: thin snapshots are not supported by this version " \
                        "(only classic dm-snapshot snapshots are)"
    end

    # The origin LV's name.
    def origin
      vgcfg.logical_volumes[@lv]&.origin
    end

    private

    def vgcfg
      @vgcfg ||= VGConfig.new(@vg)
    end
  end
end
