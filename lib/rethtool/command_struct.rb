# frozen_string_literal: true

require_relative "base"

class Rethtool
  # A fixed ethtool command structure built field by field, for Rethtool.ioctl: what the
  # cstruct gem gave rethtool 0.0.8's EthtoolCmd, EthtoolCmdDriver, EthtoolCmdRing and
  # EthtoolValue. Fields are in the kernel's order and native byte order; a new structure is
  # all zeros.
  #
  #   class MyCmd < Rethtool::CommandStruct
  #     uint32 :cmd
  #     char :name, [32]     # an Array of 32 Integers, as cstruct returned it
  #   end
  #   MyCmd.new.tap { |c| c.cmd = 3 }.data   # => the 36-byte String the kernel reads
  class CommandStruct
    # pack letters and sizes of the field types.
    TYPES = { uint8: ["C", 1], uint16: ["S", 2], uint32: ["L", 4], char: ["c", 1] }.freeze

    class << self
      # [[name, pack letter, count], ...] in order.
      def fields
        @fields ||= superclass.respond_to?(:fields) ? superclass.fields.dup : []
      end

      # The pack format of the whole structure.
      def format
        fields.map { |_, letter, count| "#{letter}#{count}" }.join
      end

      # Bytes of the structure.
      def size
        fields.sum { |_, letter, count| TYPES.values.assoc(letter)[1] * count }
      end

      TYPES.each do |type, (letter, _)|
        define_method(type) do |name, dims = [1]|
          count = Array(dims).first
          fields << [name, letter, count]
          define_method(name) { count == 1 && type != :char ? @values[name][0] : @values[name].dup }
          define_method(:"#{name}=") do |v|
            @values[name] = count == 1 && type != :char ? [Integer(v)] : Array(v).first(count).fill(0, Array(v).size...count)
          end
        end
      end
    end

    def initialize
      @values = self.class.fields.to_h { |name, _, count| [name, Array.new(count, 0)] }
    end

    # The structure's bytes.
    def data
      self.class.fields.flat_map { |name, _, _| @values[name] }.pack(self.class.format)
    end

    # Reads the fields from +bytes+ (a reply from Rethtool.ioctl).
    def data=(bytes)
      flat = bytes.to_s.b.ljust(self.class.size, "\0").unpack(self.class.format)
      self.class.fields.each do |name, _, count|
        @values[name] = flat.shift(count)
      end
    end

    def initialize_copy(other)
      super
      @values = other.instance_variable_get(:@values).transform_values(&:dup)
    end
  end
end
