//! Link modes: the bits of the supported/advertised/link-partner masks, their names, and what
//! they mean (speed, duplex, medium; or a port, pause, autoneg or FEC flag).
//!
//! The table below holds the names Linux gives bits 0..=120 in its `ETH_SS_LINK_MODES` string
//! set (the names ethtool prints). Kernels grow new bits; for a bit past the table the caller
//! supplies the kernel's own string ([`describe`]), and speed, duplex and medium are parsed
//! from it the same way.

/// Names of the link-mode bits this library knows, indexed by bit number (kernel strings).
pub const KNOWN: [&str; 121] = [
    "10baseT/Half",               // 0
    "10baseT/Full",               // 1
    "100baseT/Half",              // 2
    "100baseT/Full",              // 3
    "1000baseT/Half",             // 4
    "1000baseT/Full",             // 5
    "Autoneg",                    // 6
    "TP",                         // 7
    "AUI",                        // 8
    "MII",                        // 9
    "FIBRE",                      // 10
    "BNC",                        // 11
    "10000baseT/Full",            // 12
    "Pause",                      // 13
    "Asym_Pause",                 // 14
    "2500baseX/Full",             // 15
    "Backplane",                  // 16
    "1000baseKX/Full",            // 17
    "10000baseKX4/Full",          // 18
    "10000baseKR/Full",           // 19
    "10000baseR_FEC",             // 20
    "20000baseMLD2/Full",         // 21
    "20000baseKR2/Full",          // 22
    "40000baseKR4/Full",          // 23
    "40000baseCR4/Full",          // 24
    "40000baseSR4/Full",          // 25
    "40000baseLR4/Full",          // 26
    "56000baseKR4/Full",          // 27
    "56000baseCR4/Full",          // 28
    "56000baseSR4/Full",          // 29
    "56000baseLR4/Full",          // 30
    "25000baseCR/Full",           // 31
    "25000baseKR/Full",           // 32
    "25000baseSR/Full",           // 33
    "50000baseCR2/Full",          // 34
    "50000baseKR2/Full",          // 35
    "100000baseKR4/Full",         // 36
    "100000baseSR4/Full",         // 37
    "100000baseCR4/Full",         // 38
    "100000baseLR4_ER4/Full",     // 39
    "50000baseSR2/Full",          // 40
    "1000baseX/Full",             // 41
    "10000baseCR/Full",           // 42
    "10000baseSR/Full",           // 43
    "10000baseLR/Full",           // 44
    "10000baseLRM/Full",          // 45
    "10000baseER/Full",           // 46
    "2500baseT/Full",             // 47
    "5000baseT/Full",             // 48
    "None",                       // 49
    "RS",                         // 50
    "BASER",                      // 51
    "50000baseKR/Full",           // 52
    "50000baseSR/Full",           // 53
    "50000baseCR/Full",           // 54
    "50000baseLR_ER_FR/Full",     // 55
    "50000baseDR/Full",           // 56
    "100000baseKR2/Full",         // 57
    "100000baseSR2/Full",         // 58
    "100000baseCR2/Full",         // 59
    "100000baseLR2_ER2_FR2/Full", // 60
    "100000baseDR2/Full",         // 61
    "200000baseKR4/Full",         // 62
    "200000baseSR4/Full",         // 63
    "200000baseLR4_ER4_FR4/Full", // 64
    "200000baseDR4/Full",         // 65
    "200000baseCR4/Full",         // 66
    "100baseT1/Full",             // 67
    "1000baseT1/Full",            // 68
    "400000baseKR8/Full",         // 69
    "400000baseSR8/Full",         // 70
    "400000baseLR8_ER8_FR8/Full", // 71
    "400000baseDR8/Full",         // 72
    "400000baseCR8/Full",         // 73
    "LLRS",                       // 74
    "100000baseKR/Full",          // 75
    "100000baseSR/Full",          // 76
    "100000baseLR_ER_FR/Full",    // 77
    "100000baseCR/Full",          // 78
    "100000baseDR/Full",          // 79
    "200000baseKR2/Full",         // 80
    "200000baseSR2/Full",         // 81
    "200000baseLR2_ER2_FR2/Full", // 82
    "200000baseDR2/Full",         // 83
    "200000baseCR2/Full",         // 84
    "400000baseKR4/Full",         // 85
    "400000baseSR4/Full",         // 86
    "400000baseLR4_ER4_FR4/Full", // 87
    "400000baseDR4/Full",         // 88
    "400000baseCR4/Full",         // 89
    "100baseFX/Half",             // 90
    "100baseFX/Full",             // 91
    "10baseT1L/Full",             // 92
    "800000baseCR8/Full",         // 93
    "800000baseKR8/Full",         // 94
    "800000baseDR8/Full",         // 95
    "800000baseDR8_2/Full",       // 96
    "800000baseSR8/Full",         // 97
    "800000baseVR8/Full",         // 98
    "10baseT1S/Full",             // 99
    "10baseT1S/Half",             // 100
    "10baseT1S_P2MP/Half",        // 101
    "10baseT1BRR/Full",           // 102
    "200000baseCR/Full",          // 103
    "200000baseKR/Full",          // 104
    "200000baseDR/Full",          // 105
    "200000baseDR_2/Full",        // 106
    "200000baseSR/Full",          // 107
    "200000baseVR/Full",          // 108
    "400000baseCR2/Full",         // 109
    "400000baseKR2/Full",         // 110
    "400000baseDR2/Full",         // 111
    "400000baseDR2_2/Full",       // 112
    "400000baseSR2/Full",         // 113
    "400000baseVR2/Full",         // 114
    "800000baseCR4/Full",         // 115
    "800000baseKR4/Full",         // 116
    "800000baseDR4/Full",         // 117
    "800000baseDR4_2/Full",       // 118
    "800000baseSR4/Full",         // 119
    "800000baseVR4/Full",         // 120
];

/// Duplex of a speed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplex {
    /// Half duplex.
    Half,
    /// Full duplex.
    Full,
    /// `10000baseR_FEC`: a speed mode named by its forward error correction rather than a
    /// duplex (kept as its own kind, as rethtool 0.0.8 did).
    Fec,
}

impl Duplex {
    /// Lower-case name: "half", "full", "fec".
    pub fn key(self) -> &'static str {
        match self {
            Duplex::Half => "half",
            Duplex::Full => "full",
            Duplex::Fec => "fec",
        }
    }
}

/// What a link-mode bit stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A speed/duplex/medium mode such as 1000baseT/Full.
    Speed {
        /// Mb/s.
        speed: u32,
        /// Half, full (or FEC for 10000baseR_FEC).
        duplex: Duplex,
        /// The medium part of the name: "T", "KR4", "LR_ER_FR"...
        media: String,
    },
    /// A port type: TP, AUI, MII, FIBRE, BNC, Backplane.
    Port,
    /// Autonegotiation.
    Autoneg,
    /// Pause or Asym_Pause.
    Pause,
    /// A forward error correction mode: None, RS, BASER, LLRS.
    Fec,
    /// A name this library cannot classify (a future kernel's flag).
    Other,
}

impl Kind {
    /// Short name of the kind: "speed", "port", "autoneg", "pause", "fec", "other".
    pub fn key(&self) -> &'static str {
        match self {
            Kind::Speed { .. } => "speed",
            Kind::Port => "port",
            Kind::Autoneg => "autoneg",
            Kind::Pause => "pause",
            Kind::Fec => "fec",
            Kind::Other => "other",
        }
    }

    /// (speed in Mb/s, duplex, medium) of a speed mode; `None` for the other kinds.
    pub fn speed(&self) -> Option<(u32, Duplex, &str)> {
        match self {
            Kind::Speed {
                speed,
                duplex,
                media,
            } => Some((*speed, *duplex, media.as_str())),
            _ => None,
        }
    }
}

/// One set bit of a link-mode mask, named and classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMode {
    /// Bit number.
    pub bit: u32,
    /// The name ethtool prints ("1000baseT/Full", "Autoneg", "RS"...).
    pub name: String,
    /// What it stands for.
    pub kind: Kind,
}

/// Classifies a link-mode name. Flags are recognised by name; anything of the form
/// `<speed>base<media>/<Half|Full>` is a speed mode; `<speed>base<media>_FEC` is the FEC
/// speed mode; the rest is [`Kind::Other`].
pub fn classify(name: &str) -> Kind {
    match name {
        "TP" | "AUI" | "MII" | "FIBRE" | "BNC" | "Backplane" => return Kind::Port,
        "Autoneg" => return Kind::Autoneg,
        "Pause" | "Asym_Pause" => return Kind::Pause,
        "None" | "RS" | "BASER" | "LLRS" => return Kind::Fec,
        _ => {}
    }
    let (body, duplex) = if let Some(b) = name.strip_suffix("/Full") {
        (b, Duplex::Full)
    } else if let Some(b) = name.strip_suffix("/Half") {
        (b, Duplex::Half)
    } else if let Some(b) = name.strip_suffix("_FEC") {
        (b, Duplex::Fec)
    } else {
        return Kind::Other;
    };
    let Some((speed, media)) = body.split_once("base") else {
        return Kind::Other;
    };
    if speed.is_empty() || media.is_empty() || !speed.bytes().all(|b| b.is_ascii_digit()) {
        return Kind::Other;
    }
    match speed.parse::<u32>() {
        Ok(speed) => Kind::Speed {
            speed,
            duplex,
            media: media.to_string(),
        },
        Err(_) => Kind::Other,
    }
}

/// Names and classifies bit `bit`: from the table when this library knows the bit, else from
/// `kernel_names` (the kernel's `ETH_SS_LINK_MODES` strings, when the caller fetched them),
/// else as "bit N" of kind [`Kind::Other`].
pub fn describe(bit: u32, kernel_names: Option<&[String]>) -> LinkMode {
    let name = match KNOWN.get(bit as usize) {
        Some(n) => n.to_string(),
        None => match kernel_names.and_then(|k| k.get(bit as usize)) {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!("bit {bit}"),
        },
    };
    let kind = classify(&name);
    LinkMode { bit, name, kind }
}

/// The mode rethtool 0.0.8's `best_mode` picks among `modes`: of the speed modes, one with
/// the highest speed and, among those, the best duplex (FEC, then full, then half); the first
/// in bit order on a tie. `None` when there is no speed mode.
pub fn best(modes: &[LinkMode]) -> Option<&LinkMode> {
    let rank = |d: Duplex| match d {
        Duplex::Fec => 2,
        Duplex::Full => 1,
        Duplex::Half => 0,
    };
    let mut best: Option<(&LinkMode, (u32, u8))> = None;
    for m in modes {
        if let Some((speed, duplex, _)) = m.kind.speed() {
            let key = (speed, rank(duplex));
            if best.is_none_or(|(_, k)| key > k) {
                best = Some((m, key));
            }
        }
    }
    best.map(|(m, _)| m)
}

/// A link-mode bit mask as the kernel returns it: u32 words, bit N in word N/32.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeMask(pub Vec<u32>);

impl ModeMask {
    /// True if bit `bit` is set.
    pub fn contains(&self, bit: u32) -> bool {
        self.0
            .get((bit / 32) as usize)
            .is_some_and(|w| w & (1 << (bit % 32)) != 0)
    }

    /// The set bits, ascending.
    pub fn bits(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            (0..32u32)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i as u32 * 32 + b)
        })
    }

    /// True if no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// True if a bit beyond this library's table is set (its name must come from the kernel).
    pub fn has_unknown_bits(&self) -> bool {
        self.bits().any(|b| b as usize >= KNOWN.len())
    }

    /// Every set bit, named and classified (see [`describe`]).
    pub fn describe(&self, kernel_names: Option<&[String]>) -> Vec<LinkMode> {
        self.bits().map(|b| describe(b, kernel_names)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_kinds() {
        let speeds = KNOWN
            .iter()
            .filter(|n| matches!(classify(n), Kind::Speed { .. }))
            .count();
        // 121 bits: 6 ports, autoneg, 2 pause, 4 FEC flags; the rest are speed modes.
        assert_eq!(speeds, 121 - 13);
        assert_eq!(classify(KNOWN[6]), Kind::Autoneg);
        assert_eq!(classify(KNOWN[16]), Kind::Port);
        assert_eq!(classify(KNOWN[74]), Kind::Fec);
        assert_eq!(
            classify(KNOWN[20]),
            Kind::Speed {
                speed: 10000,
                duplex: Duplex::Fec,
                media: "R".into()
            }
        );
        assert_eq!(
            classify(KNOWN[101]),
            Kind::Speed {
                speed: 10,
                duplex: Duplex::Half,
                media: "T1S_P2MP".into()
            }
        );
        assert_eq!(
            classify(KNOWN[60]),
            Kind::Speed {
                speed: 100000,
                duplex: Duplex::Full,
                media: "LR2_ER2_FR2".into()
            }
        );
    }

    #[test]
    fn unknown_bits_take_the_kernel_name() {
        let mut names: Vec<String> = KNOWN.iter().map(|s| s.to_string()).collect();
        names.push("1600000baseCR8/Full".into());
        let m = describe(121, Some(&names));
        assert_eq!(m.name, "1600000baseCR8/Full");
        assert_eq!(
            m.kind,
            Kind::Speed {
                speed: 1_600_000,
                duplex: Duplex::Full,
                media: "CR8".into()
            }
        );
        assert_eq!(describe(121, None).name, "bit 121");
        assert_eq!(describe(121, None).kind, Kind::Other);
        assert_eq!(describe(122, Some(&names)).name, "bit 122");
    }

    #[test]
    fn classify_rejects_malformed_names() {
        for n in [
            "",
            "base/Full",
            "10base/Full",
            "xbaseT/Full",
            "99999999999baseT/Full",
            "1000baseT",
        ] {
            assert_eq!(classify(n), Kind::Other, "{n}");
        }
    }

    #[test]
    fn the_best_mode_is_the_fastest_with_the_best_duplex() {
        let modes =
            |bits: &[u32]| -> Vec<LinkMode> { bits.iter().map(|b| describe(*b, None)).collect() };
        let best_of = |bits: &[u32]| best(&modes(bits)).map(|m| m.name.clone());
        // An e1000: 10/100/1000 half and full, autoneg, TP.
        assert_eq!(
            best_of(&[0, 1, 2, 3, 5, 6, 7]).as_deref(),
            Some("1000baseT/Full")
        );
        assert_eq!(best_of(&[4, 0, 1]).as_deref(), Some("1000baseT/Half"));
        // FEC beats full at one speed; the first in bit order on a tie.
        assert_eq!(best_of(&[19, 20, 12]).as_deref(), Some("10000baseR_FEC"));
        assert_eq!(best_of(&[12, 19, 18]).as_deref(), Some("10000baseT/Full"));
        // Flags only, or nothing: no best mode.
        assert_eq!(best_of(&[6, 7, 13, 49]), None);
        assert_eq!(best_of(&[]), None);
    }

    #[test]
    fn mask_bits() {
        let m = ModeMask(vec![0b100001, 0, 1 << 31, 1]);
        assert_eq!(m.bits().collect::<Vec<_>>(), vec![0, 5, 95, 96]);
        assert!(m.contains(95) && !m.contains(94) && !m.contains(1000));
        assert!(!m.has_unknown_bits());
        assert!(ModeMask(vec![0, 0, 0, 1 << 25]).has_unknown_bits());
        assert!(ModeMask(vec![0, 0]).is_empty());
    }
}
