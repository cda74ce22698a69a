# frozen_string_literal: true

module Ironshed
  # Human-readable sizes, rates and durations for messages and progress lines.
  module Units
    UNITS = %w[B KiB MiB GiB TiB PiB].freeze

    module_function

    # 1536 => "1.5 KiB"
    def bytes(n)
      n = n.to_f
      i = 0
      while n >= 1024 && i < UNITS.size - 1
        n /= 1024
        i += 1
      end
      i.zero? ? "#{n.to_i} B" : format("%.1f %s", n, UNITS[i])
    end

    # bytes per second => "85.3 MiB/s"
    def rate(bytes_per_second)
      "#{bytes(bytes_per_second)}/s"
    end

    # seconds => "1:02:03" or "2:03"
    def duration(seconds)
      s = seconds.to_i
      h, s = s.divmod(3600)
      m, s = s.divmod(60)
      h.positive? ? format("%d:%02d:%02d", h, m, s) : format("%d:%02d", m, s)
    end
  end
end
