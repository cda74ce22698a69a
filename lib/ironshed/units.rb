# frozen_string_literal: true

module Ironshed
  # Human-readable sizes, rates and durations for messages and progress lines, and the one
  # reading of a number of seconds given on a command line.
  module Units
    UNITS = %w[B KiB MiB GiB TiB PiB].freeze
    # The longest time an option may give, in seconds: more than any check or download
    # should wait, and far inside what Ruby's timers accept.
    MAX_SECONDS = 3600
    # A plain decimal number: 10, 2.5, 1e2 (no sign, no hexadecimal, no "Infinity").
    DECIMAL = /\A\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\z/
    # Decimal (SI) prefixes, for numbers the user wrote with k, M, G.
    SI_UNITS = %w[B kB MB GB TB PB].freeze

    module_function

    # 1536 => "1.5 KiB"; with si: true, 1500 => "1.5 kB".
    def bytes(n, si: false)
      base, units = si ? [1000, SI_UNITS] : [1024, UNITS]
      n = n.to_f
      i = 0
      while n >= base && i < units.size - 1
        n /= base
        i += 1
      end
      i.zero? ? "#{n.to_i} B" : format("%.1f %s", n, units[i])
    end

    # bytes per second => "85.3 MiB/s" (si: true => "89.4 MB/s")
    def rate(bytes_per_second, si: false)
      "#{bytes(bytes_per_second, si: si)}/s"
    end

    # The value of option +opt+ ("--timeout") given as +text+, in seconds: more than 0, at
    # most MAX_SECONDS. Raises ArgumentError naming the option, the value and the range.
    def seconds(opt, text)
      raise ArgumentError, "#{opt}: #{text.inspect} is not a number of seconds" unless DECIMAL.match?(text.strip)

      t = Float(text.strip)
      return t if t.positive? && t <= MAX_SECONDS

      raise ArgumentError, "#{opt}: #{text.inspect} is out of range (more than 0, at most #{MAX_SECONDS} s)"
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
