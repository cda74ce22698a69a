# frozen_string_literal: true

# Checks a parsed vgcfgbackup file against `lvs -a --segments` of the same volume group, as
# LVM itself printed it in the guest (fields separated by "|": lv_name, segtype,
# seg_start_pe, seg_size_pe, stripes, stripe_size in sectors, devices, lv_tags).
module LvmFixtures
  FIXTURES = File.expand_path("../fixtures/lvm", __dir__)

  def self.path(name)
    File.join(FIXTURES, name)
  end

  def self.check_against_lvs(example, vg_file, segments_file)
    vg = LVM::VGConfig.load(vg_file)
    example.expect(vg.problems).to example.eq([])
    pv_by_device = vg.physical_volumes.values.to_h { |p| [p.device, p.name] }
    lines = File.readlines(segments_file, chomp: true).reject(&:empty?)
    example.expect(lines).not_to example.be_empty
    lines.each do |line|
      name, segtype, start, size, stripes, stripe_size, devices, tags = line.split("|", -1)
      name = name.delete("[]")
      lv = vg.logical_volumes[name]
      example.expect(lv).not_to example.be_nil, "#{name} from lvs is missing in #{vg_file}"
      seg = lv.segments.find { |s| s.start_extent == Integer(start) }
      example.expect(seg).not_to example.be_nil, "#{name}: no segment at extent #{start}"
      example.expect(seg.extent_count).to example.eq(Integer(size)), line
      example.expect(lv.tags.sort).to example.eq(tags.to_s.split(",").sort), line
      case segtype
      when "linear", "striped"
        example.expect(seg.type).to example.eq("striped")
        example.expect(seg.stripe_count).to example.eq(Integer(stripes)), line
        example.expect(seg.stripe_size || 0).to example.eq(Integer(stripe_size)), line
        want = devices.scan(%r{(/dev/[^(]+)\((\d+)\)}).map { |dev, pe| [pv_by_device.fetch(dev), Integer(pe)] }
        example.expect(seg.stripes).to example.eq(want), line
      when "thin-pool"
        example.expect(seg.type).to example.eq("thin-pool")
        example.expect("#{seg.pool}(0)").to example.eq(devices)
      else
        example.expect(seg.type).to example.eq(segtype), line
      end
    end
    vg
  end
end
