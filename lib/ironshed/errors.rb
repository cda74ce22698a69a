# frozen_string_literal: true

# Every exception class ironshed raises, defined here and only here. The native extension
# looks up the classes it raises when it loads (a class missing here fails the load).
#
# Besides these: a failed system call is a SystemCallError (Errno::ENOENT, Errno::EOPNOTSUPP
# ...) whose message names the file or interface and the operation ("No such file or
# directory - /dev/vg0/x: open"); a native job stopped by Ctrl-C or Thread#kill raises
# Interrupt; an unknown keyword option is an ArgumentError.

module Ironshed
  # Base of ironshed's own refusals; a RuntimeError, as the original lvmsync raised.
  class Error < RuntimeError; end
  # The destination is not a file or block device, is in use, is too small, or a record lies past its end.
  class DestinationError < Error; end
  # An undo file (lvmsync: snapback file) exists already, is the input or destination, or cannot be held.
  class UndoError < Error; end
end

module VMDKSync
  # Base of the VMware delta refusals.
  class Error < Ironshed::Error; end
  # A damaged or inconsistent delta or descriptor.
  class FormatError < Error; end
  # A well-formed delta or descriptor of a kind this version does not handle.
  class UnsupportedFormat < FormatError; end
  # The delta does not belong to this base or destination (CID chain, capacity).
  class BaseMismatch < Error; end
  # The name vmdksync's undo: option used for Ironshed::UndoError.
  UndoError = Ironshed::UndoError
end

module LVM
  # Base of the LVM refusals: lvs or vgcfgbackup failed, no such LV, not a snapshot...
  class Error < Ironshed::Error; end
  # LVM text metadata that cannot be parsed.
  class MetadataError < Error; end
  # A snapshot exception store that cannot be used (magic, version, structure).
  class SnapshotError < Error; end
  # The snapshot overflowed or failed (its store says valid = 0).
  class InvalidSnapshot < SnapshotError; end
  # thin_delta is missing, failed, or printed what is not a diff.
  class ThinDeltaError < SnapshotError; end
  # A thin pool's metadata snapshot cannot be reserved or released (inactive, failed, held).
  class MetadataSnapshotError < Error; end
end

module LVMSync
  # Base of the lvmsync stream refusals (and malformed --verify digests).
  class Error < Ironshed::Error; end
  # Not a PROTO[3] stream, or a truncated or corrupt one.
  class ProtocolError < Error; end
  # The receiver on the other end failed; the message carries its own reason.
  class RemoteError < Error; end
  # --verify found the destination different from the source.
  class VerifyError < Error; end
  # The name lvmsync's snapback: option used for Ironshed::UndoError.
  SnapbackError = Ironshed::UndoError
end

# rethtool 0.0.8's Rethtool is a class.
class Rethtool
  # Base of the ethtool refusals that are not a failed system call.
  class Error < Ironshed::Error; end
  # An interface name the kernel would not look up as written: empty, 16+ bytes, "eth0:1"...
  class InvalidInterfaceName < Error; end
  # A network namespace name that cannot name one ("a/b", "..").
  class InvalidNamespaceName < Error; end
  # A kernel reply that makes no sense (a count that never settles, a short reply).
  class KernelReplyError < Error; end
end

# rootzone: the local, verified copy of the DNS root zone.
module RootZone
  # Base of the rootzone errors.
  class Error < Ironshed::Error; end
  # The zone or trust anchor cannot be read: syntax (with line and column), truncated or
  # corrupt gzip, empty or oversized input, a download that failed.
  class SourceError < Error; end
  # The zone is not proven complete and authentic; nothing was installed.
  class VerificationError < Error; end
  # Not one zone: no SOA, two SOAs, records outside the zone, malformed RDATA.
  class ZoneError < VerificationError; end
  # The apex DNSKEY RRset is not signed by a key matching the trust anchor.
  class TrustAnchorError < VerificationError; end
  # An RRset has no valid RRSIG: none, an altered RRset or signature, an unknown key.
  class SignatureError < VerificationError; end
  # An RRset's signatures are all expired, or not valid yet.
  class SignatureExpired < SignatureError; end
  # Signed only with DNSSEC algorithms this build does not verify (named in the message).
  class UnsupportedAlgorithm < VerificationError; end
  # ZONEMD missing, made for another serial, or not matching the zone.
  class DigestError < VerificationError; end
  # gpgv refused the detached OpenPGP signature.
  class OpenPGPError < VerificationError; end
  # The zone's serial is older than the installed one (a rollback).
  class RollbackError < Error; end
  # The tinydns instance root cannot be used: missing, not a directory, or held by another
  # update.
  class InstallError < Error; end
end
