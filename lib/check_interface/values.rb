# frozen_string_literal: true

module CheckInterface
  class UsageError < StandardError; end

  # The numeric option values, parsed strictly and range-checked: anything else is a usage
  # error naming the option, the value and the accepted range.
  module Values
    # A rate threshold as given: bytes per second, and the unit family the user wrote it in
    # (:si for k, M, G, T; :iec for Ki, Mi, Gi, Ti; nil for plain bytes), so that messages
    # echo it in the same units.
    Rate = Struct.new(:bytes_per_second, :family)

    RATE_SUFFIXES = { "" => [1, nil], "k" => [1e3, :si], "K" => [1e3, :si], "M" => [1e6, :si],
                      "G" => [1e9, :si], "T" => [1e12, :si], "Ki" => [1024.0, :iec],
                      "Mi" => [1024.0**2, :iec], "Gi" => [1024.0**3, :iec],
                      "Ti" => [1024.0**4, :iec] }.freeze
    # Rates above 10^15 bytes/s (8 Pb/s) are not a link anyone has: a typo.
    MAX_RATE = 1e15
    # Link speeds are u32 Mb/s in the kernel; 0xffffffff means "unknown".
    MAX_SPEED = 0xffff_fffe

    module_function

    # "2.5M" => Rate(2_500_000.0, :si).
    def rate(opt, text)
      m = /\A(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|[kKMGT])?(?:B(?:\/s)?)?\z/.match(text.strip)
      raise UsageError, "#{opt}: #{text.inspect} is not a rate (e.g. 500, 1k, 2.5M)" unless m

      mult, family = RATE_SUFFIXES.fetch(m[2].to_s)
      value = Float(m[1]) * mult
      unless value <= MAX_RATE
        raise UsageError, "#{opt}: #{text.inspect} is out of range (0 to #{MAX_RATE.to_i} bytes/s)"
      end

      Rate.new(value, family)
    end

    # "2.5G" => 2500 (Mb/s).
    def speed(text)
      m = /\A(\d+(?:\.\d+)?)\s*([MGT])?(?:b(?:\/s|ps)?)?\z/i.match(text.strip)
      raise UsageError, "--speed: #{text.inspect} is not a speed (e.g. 1000, 1G, 10G)" unless m

      mult = { nil => 1, "M" => 1, "G" => 1000, "T" => 1_000_000 }.fetch(m[2]&.upcase)
      speed = Float(m[1]) * mult
      unless speed >= 1 && speed <= MAX_SPEED
        raise UsageError, "--speed: #{text.inspect} is out of range (1 to #{MAX_SPEED} Mb/s)"
      end
      raise UsageError, "--speed: #{text.inspect} is not a whole number of Mb/s" unless speed == speed.round

      speed.round
    end

    # "1.5" => 1.5 (seconds).
    def timeout(text)
      Ironshed::Units.seconds("--timeout", text)
    rescue ArgumentError => e
      raise UsageError, e.message
    end
  end
end
