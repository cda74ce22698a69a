//! Interface counters from `/proc/net/dev` (the same numbers as
//! `/sys/class/net/IF/statistics/*` and `ip -s link`), which every driver keeps, unlike the
//! driver-specific `ethtool -S` statistics.

use super::error::DecodeError;

/// The standard counters of one interface, as `/proc/net/dev` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped (rx_dropped + rx_missed_errors).
    pub rx_dropped: u64,
    /// FIFO overruns on receive.
    pub rx_fifo_errors: u64,
    /// Framing errors (length, overrun, CRC, frame).
    pub rx_frame_errors: u64,
    /// Compressed packets received.
    pub rx_compressed: u64,
    /// Multicast packets received.
    pub multicast: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
    /// FIFO errors on transmit.
    pub tx_fifo_errors: u64,
    /// Collisions.
    pub collisions: u64,
    /// Carrier errors (carrier, aborted, window, heartbeat).
    pub tx_carrier_errors: u64,
    /// Compressed packets sent.
    pub tx_compressed: u64,
}

/// Field names in [`Counters`] order, as returned by [`Counters::fields`].
pub const COUNTER_FIELDS: [&str; 16] = [
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "rx_fifo_errors",
    "rx_frame_errors",
    "rx_compressed",
    "multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
    "tx_fifo_errors",
    "collisions",
    "tx_carrier_errors",
    "tx_compressed",
];

impl Counters {
    fn from_array(a: [u64; 16]) -> Self {
        Counters {
            rx_bytes: a[0],
            rx_packets: a[1],
            rx_errors: a[2],
            rx_dropped: a[3],
            rx_fifo_errors: a[4],
            rx_frame_errors: a[5],
            rx_compressed: a[6],
            multicast: a[7],
            tx_bytes: a[8],
            tx_packets: a[9],
            tx_errors: a[10],
            tx_dropped: a[11],
            tx_fifo_errors: a[12],
            collisions: a[13],
            tx_carrier_errors: a[14],
            tx_compressed: a[15],
        }
    }

    /// (name, value) pairs in [`COUNTER_FIELDS`] order.
    pub fn fields(&self) -> [(&'static str, u64); 16] {
        let v = [
            self.rx_bytes,
            self.rx_packets,
            self.rx_errors,
            self.rx_dropped,
            self.rx_fifo_errors,
            self.rx_frame_errors,
            self.rx_compressed,
            self.multicast,
            self.tx_bytes,
            self.tx_packets,
            self.tx_errors,
            self.tx_dropped,
            self.tx_fifo_errors,
            self.collisions,
            self.tx_carrier_errors,
            self.tx_compressed,
        ];
        let mut out = [("", 0u64); 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (COUNTER_FIELDS[i], v[i]);
        }
        out
    }
}

/// Parses the text of `/proc/net/dev` into (interface, counters) rows. The two header lines
/// are skipped; a data line is `NAME: 16 numbers` (the name may be followed directly by the
/// first number, as happens with long names).
pub fn parse(text: &str) -> Result<Vec<(String, Counters)>, DecodeError> {
    const W: &str = "/proc/net/dev";
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        if no < 2 || line.trim().is_empty() {
            continue;
        }
        let (name, rest) = line.split_once(':').ok_or_else(|| {
            DecodeError::new(
                W,
                format!("line {}: no ':' after the interface name", no + 1),
            )
        })?;
        let mut vals = [0u64; 16];
        let mut it = rest.split_ascii_whitespace();
        for (i, v) in vals.iter_mut().enumerate() {
            let tok = it.next().ok_or_else(|| {
                DecodeError::new(W, format!("line {}: {} fields, expected 16", no + 1, i))
            })?;
            *v = tok.parse().map_err(|_| {
                DecodeError::new(
                    W,
                    format!("line {}: field {} is not a number: {tok:?}", no + 1, i + 1),
                )
            })?;
        }
        out.push((name.trim().to_string(), Counters::from_array(vals)));
    }
    Ok(out)
}

/// The counters of `iface` in the text of `/proc/net/dev`, if it is listed.
pub fn find(text: &str, iface: &str) -> Result<Option<Counters>, DecodeError> {
    Ok(parse(text)?
        .into_iter()
        .find(|(n, _)| n == iface)
        .map(|(_, c)| c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3245      30    0    0    0     0          0         0     3245      30    0    0    0     0       0          0
vethABCDEFGHIJK:18446744073709551615 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
";

    #[test]
    fn parses_rows() {
        let rows = parse(SAMPLE).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "lo");
        assert_eq!((rows[0].1.rx_bytes, rows[0].1.tx_packets), (3245, 30));
        let v = find(SAMPLE, "vethABCDEFGHIJK").unwrap().unwrap();
        assert_eq!(v.rx_bytes, u64::MAX);
        assert_eq!(v.tx_compressed, 16);
        assert_eq!(v.fields()[3], ("rx_dropped", 4));
        assert_eq!(find(SAMPLE, "eth0").unwrap(), None);
    }

    #[test]
    fn refuses_short_or_bad_lines() {
        assert!(parse("a\nb\n  x: 1 2 3\n").is_err());
        assert!(parse("a\nb\n  x 1 2 3\n").is_err());
        assert!(parse("a\nb\nx: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 -1\n").is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
