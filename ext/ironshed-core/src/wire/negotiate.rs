//! What a sender sends, given what it wants and what its receiver can take.
//!
//! The extensions of PROTO[3] are opt-in, so that the original lvmsync (and older versions
//! of this one) always get a stream they apply correctly or refuse before writing anything:
//!
//! | extension | on the wire | a receiver without it |
//! |---|---|---|
//! | `discards` | handshake `lvmsync PROTO[3] discards`, discard records | refuses the handshake |
//! | `endmark` | `BEGIN` first, `END` last ([`super::proto3`]) | stops at `BEGIN`, before writing |
//! | `verify` | digest lines on the receiver's standard output | cannot report what it wrote |
//! | `destcheck` | an `EXPECT` item after `BEGIN` ([`super::destcheck`]) | refuses the item, before writing |
//!
//! A receiver on another host is asked first (`lvmsync --capabilities`, which prints
//! [`CAPABILITIES`]); what it does not list is left out (discard ranges sent as zeros, no
//! end-of-stream mark) with a note, or, for `verify`, refused before anything is sent.
//! Standard output (`--stdout`) has no receiver to ask: the stream is what was asked for, and
//! `--plain` is how a user asks for the original format.

/// The extensions this lvmsync can receive, as `lvmsync --capabilities` lists them.
pub const CAPABILITIES: &[&str] = &["discards", "verify", "endmark", "destcheck"];

/// What the sender would like to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The change set has discard ranges and `--discards` was given.
    pub discards: bool,
    /// `--verify`: the receiver must report digests of what it wrote.
    pub verify: bool,
    /// `--plain`: no end-of-stream mark, the original format.
    pub plain: bool,
    /// `--from` without `--no-destination-check`: the receiver must check its destination
    /// ([`destination_check`]).
    pub destcheck: bool,
}

/// Who receives the stream.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    /// Standard output: nobody to ask.
    Stdout,
    /// This lvmsync's receiver, in the same process.
    Local,
    /// A receiver on `host` that listed `capabilities` (none: the original lvmsync, an older
    /// one, or one that could not be asked).
    Remote {
        /// The host, for messages.
        host: &'a str,
        /// What its `--capabilities` listed.
        capabilities: &'a [String],
    },
}

impl<'a> Peer<'a> {
    /// The peer `kind` names: "stdout", "local", or "remote" (on `host`, which listed
    /// `capabilities`); `None` for another name.
    pub fn named(kind: &str, host: &'a str, capabilities: &'a [String]) -> Option<Self> {
        match kind {
            "stdout" => Some(Peer::Stdout),
            "local" => Some(Peer::Local),
            "remote" => Some(Peer::Remote { host, capabilities }),
            _ => None,
        }
    }
}

/// A message for the user, and whether it is shown without `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Shown unless `-q`.
    Info(String),
    /// Shown with `-v`.
    Verbose(String),
}

impl Note {
    /// "info" or "verbose".
    pub fn level(&self) -> &'static str {
        match self {
            Note::Info(_) => "info",
            Note::Verbose(_) => "verbose",
        }
    }
    /// The message.
    pub fn text(&self) -> &str {
        match self {
            Note::Info(t) | Note::Verbose(t) => t,
        }
    }
}

/// What to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Send discard records (extended handshake).
    pub discards: bool,
    /// Send `BEGIN` and `END` marks.
    pub end_mark: bool,
    /// Why nothing may be sent, when that is the decision.
    pub refusal: Option<String>,
    /// What to tell the user.
    pub notes: Vec<Note>,
}

/// Whether a remote receiver must be asked for its capabilities before sending `wanted`.
pub fn must_ask(wanted: &Wanted) -> bool {
    wanted.discards || wanted.verify || !wanted.plain
}

/// Decides what to send to `peer`.
pub fn negotiate(wanted: &Wanted, peer: &Peer) -> Decision {
    let mut d = Decision {
        discards: wanted.discards,
        end_mark: !wanted.plain,
        refusal: None,
        notes: Vec::new(),
    };
    if wanted.plain {
        d.notes.push(Note::Verbose(
            "lvmsync: --plain: the stream is plain PROTO[3], without an end-of-stream mark: the receiver cannot tell a stream cut between two records from a complete one".into(),
        ));
    }
    if wanted.destcheck {
        if let Err(why) = destination_check(peer, wanted.plain) {
            d.refusal = Some(why);
        }
    }
    match peer {
        Peer::Stdout => {
            if wanted.verify {
                d.refusal =
                    Some("--verify needs a live receiver: it cannot be used with --stdout".into());
            }
            if wanted.discards {
                d.notes.push(Note::Info(
                    "lvmsync: note: the stream carries discard records (handshake 'lvmsync PROTO[3] discards'): only an lvmsync that lists 'discards' in --capabilities can apply it; others refuse it before writing anything".into(),
                ));
            }
        }
        Peer::Local => {}
        Peer::Remote { host, capabilities } => {
            let has = |c: &str| capabilities.iter().any(|x| x == c);
            if wanted.verify && !has("verify") {
                d.refusal.get_or_insert(format!(
                    "--verify: the lvmsync on {host} cannot report what it wrote (it does not list 'verify' in --capabilities: not ironshed's lvmsync, or an older one); nothing was sent"
                ));
            }
            if wanted.discards && !has("discards") {
                d.discards = false;
                d.notes.push(Note::Info(format!(
                    "lvmsync: note: the lvmsync on {host} cannot apply discard records; sending the unmapped ranges as zeros instead"
                )));
            }
            if d.end_mark && !has("endmark") {
                d.end_mark = false;
                d.notes.push(Note::Info(format!(
                    "lvmsync: note: the lvmsync on {host} does not take an end-of-stream mark (it does not list 'endmark' in --capabilities: the original lvmsync, or an older one): sending a plain PROTO[3] stream, so a cut between two records would go unnoticed there"
                )));
            }
        }
    }
    d
}

/// Whether a `--from` round's destination check can go to `peer`: `Err` with the reason
/// nothing may be sent when it cannot (a plain stream has no place for it; a remote receiver
/// that does not list `destcheck` could not do it). `--no-destination-check` is how a user
/// sends the round unchecked.
pub fn destination_check(peer: &Peer, plain: bool) -> Result<(), String> {
    const UNCHECKED: &str = "nothing was sent; to send this round without the check (the destination must then hold the older snapshot's content), give --no-destination-check";
    if plain {
        return Err(format!(
            "--from: the destination check needs a marked stream, which --plain does not send; {UNCHECKED}"
        ));
    }
    match peer {
        Peer::Remote { host, capabilities } if !capabilities.iter().any(|c| c == "destcheck") => {
            Err(format!(
                "--from: the lvmsync on {host} cannot check that its destination holds the older snapshot's content (it does not list 'destcheck' in --capabilities: the original lvmsync, or an older one); {UNCHECKED}"
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn this_lvmsync_gets_every_extension_it_lists() {
        let all = caps(CAPABILITIES);
        let peer = Peer::Remote {
            host: "new",
            capabilities: &all,
        };
        let w = Wanted {
            discards: true,
            verify: true,
            plain: false,
            destcheck: true,
        };
        let d = negotiate(&w, &peer);
        assert_eq!(
            d,
            Decision {
                discards: true,
                end_mark: true,
                refusal: None,
                notes: vec![]
            }
        );
        assert!(must_ask(&w));
        assert!(must_ask(&Wanted::default()), "the mark is asked for");
        assert!(!must_ask(&Wanted {
            plain: true,
            ..Default::default()
        }));
    }

    #[test]
    fn the_original_receiver_gets_a_plain_stream_with_a_note() {
        let none = caps(&[]);
        let peer = Peer::Remote {
            host: "old",
            capabilities: &none,
        };
        let d = negotiate(&Wanted::default(), &peer);
        assert!(!d.end_mark && !d.discards && d.refusal.is_none());
        assert_eq!(d.notes, vec![Note::Info("lvmsync: note: the lvmsync on old does not take an end-of-stream mark (it does not list 'endmark' in --capabilities: the original lvmsync, or an older one): sending a plain PROTO[3] stream, so a cut between two records would go unnoticed there".into())]);
        let d = negotiate(
            &Wanted {
                discards: true,
                ..Default::default()
            },
            &peer,
        );
        assert!(!d.discards);
        assert_eq!(d.notes.len(), 2);
        assert!(
            matches!(&d.notes[0], Note::Info(t) if t.contains("sending the unmapped ranges as zeros"))
        );
        // An older ironshed lvmsync: discards and verify, no end mark.
        let older = caps(&["discards", "verify"]);
        let d = negotiate(
            &Wanted {
                discards: true,
                verify: true,
                plain: false,
                destcheck: false,
            },
            &Peer::Remote {
                host: "mid",
                capabilities: &older,
            },
        );
        assert!(d.discards && !d.end_mark && d.refusal.is_none());
    }

    #[test]
    fn verify_needs_a_receiver_that_reports() {
        let none = caps(&["discards", "endmark"]);
        let d = negotiate(
            &Wanted {
                verify: true,
                ..Default::default()
            },
            &Peer::Remote {
                host: "h",
                capabilities: &none,
            },
        );
        assert_eq!(d.refusal.as_deref(), Some("--verify: the lvmsync on h cannot report what it wrote (it does not list 'verify' in --capabilities: not ironshed's lvmsync, or an older one); nothing was sent"));
        let d = negotiate(
            &Wanted {
                verify: true,
                ..Default::default()
            },
            &Peer::Stdout,
        );
        assert!(d.refusal.is_some());
    }

    #[test]
    fn standard_output_gets_what_was_asked_for() {
        let d = negotiate(
            &Wanted {
                discards: true,
                ..Default::default()
            },
            &Peer::Stdout,
        );
        assert!(d.discards && d.end_mark);
        assert!(
            matches!(&d.notes[..], [Note::Info(t)] if t.contains("only an lvmsync that lists 'discards'"))
        );
        let d = negotiate(
            &Wanted {
                plain: true,
                ..Default::default()
            },
            &Peer::Stdout,
        );
        assert!(!d.end_mark);
        assert!(
            matches!(&d.notes[..], [Note::Verbose(t)] if t.contains("cannot tell a stream cut between two records"))
        );
        let d = negotiate(&Wanted::default(), &Peer::Local);
        assert!(d.end_mark && d.notes.is_empty());
    }

    #[test]
    fn the_destination_check_goes_only_to_a_receiver_that_can_do_it() {
        let all = caps(CAPABILITIES);
        let ours = Peer::Remote {
            host: "new",
            capabilities: &all,
        };
        assert_eq!(destination_check(&ours, false), Ok(()));
        assert_eq!(destination_check(&Peer::Local, false), Ok(()));
        assert_eq!(destination_check(&Peer::Stdout, false), Ok(()));
        for peer in [Peer::Local, Peer::Stdout, ours] {
            let e = destination_check(&peer, true).unwrap_err();
            assert!(
                e.contains("--plain") && e.contains("--no-destination-check"),
                "{e}"
            );
        }
        for listed in [caps(&[]), caps(&["discards", "verify", "endmark"])] {
            let old = Peer::Remote {
                host: "old",
                capabilities: &listed,
            };
            let wanted = Wanted {
                destcheck: true,
                ..Default::default()
            };
            let e = negotiate(&wanted, &old).refusal.unwrap();
            assert_eq!(destination_check(&old, false), Err(e.clone()));
            assert_eq!(e, "--from: the lvmsync on old cannot check that its destination holds the older snapshot's content (it does not list 'destcheck' in --capabilities: the original lvmsync, or an older one); nothing was sent; to send this round without the check (the destination must then hold the older snapshot's content), give --no-destination-check");
        }
    }

    #[test]
    fn peers_and_notes_by_name() {
        let c = caps(&["endmark"]);
        assert!(matches!(Peer::named("stdout", "", &c), Some(Peer::Stdout)));
        assert!(matches!(Peer::named("local", "", &c), Some(Peer::Local)));
        assert!(
            matches!(Peer::named("remote", "h", &c), Some(Peer::Remote { host: "h", capabilities }) if capabilities == &c[..])
        );
        assert!(Peer::named("ssh", "h", &c).is_none());
        let n = Note::Verbose("x".into());
        assert_eq!((n.level(), n.text()), ("verbose", "x"));
        assert_eq!(Note::Info("y".into()).level(), "info");
    }
}
