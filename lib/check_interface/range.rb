# frozen_string_literal: true

module CheckInterface
  # A Monitoring Plugins threshold range: "10" (alert outside 0..10), "10:" (below 10),
  # "~:10" (above 10), "10:20" (outside 10..20), "@10:20" (inside 10..20).
  class Range
    NUMBER = /\A[-+]?(\d+(\.\d*)?|\.\d+)\z/

    attr_reader :start, :finish, :inside

    # Parses +text+; raises ArgumentError naming what is wrong.
    def self.parse(text)
      s = text.to_s.strip
      inside = s.start_with?("@")
      s = s[1..] if inside
      raise ArgumentError, "empty range #{text.inspect}" if s.empty?

      if s.include?(":")
        a, b = s.split(":", 2)
        start = a == "~" ? -Float::INFINITY : number(a.empty? ? "0" : a, text)
        finish = b.empty? ? Float::INFINITY : number(b, text)
      else
        start = 0
        finish = number(s, text)
      end
      raise ArgumentError, "range #{text.inspect}: start #{start} is greater than end #{finish}" if start > finish

      new(start, finish, inside, text.to_s.strip)
    end

    # Packets per second beyond this are not a rate any interface has: a typo.
    LIMIT = 1e15

    def self.number(s, text)
      raise ArgumentError, "range #{text.inspect}: #{s.inspect} is not a number" unless NUMBER.match?(s)

      x = Float(s)
      raise ArgumentError, "range #{text.inspect}: #{s} is out of range (-10^15 to 10^15)" unless x.abs <= LIMIT

      x
    end
    private_class_method :number

    def initialize(start, finish, inside, text)
      @start = start
      @finish = finish
      @inside = inside
      @text = text
    end

    # True if +value+ should raise an alert.
    def alert?(value)
      within = value >= @start && value <= @finish
      @inside ? within : !within
    end

    # The range as given (for perfdata).
    def to_s
      @text
    end
  end
end
