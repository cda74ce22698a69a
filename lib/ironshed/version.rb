# frozen_string_literal: true

module Ironshed
  VERSION = "0.1.0"
end
