//! The SMTP command grammar (RFC 5321 section 4.1, RFC 4954 AUTH, RFC 1870 SIZE, RFC 6152
//! 8BITMIME): pure functions from one command line (without CRLF) to a [`Command`] or a precise
//! [`Reply`]. No I/O and no tokio here.

use super::reply::{common, Reply};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    StartTls,
    Auth { mechanism: String, initial: Option<String> },
    Mail { from: Address, size: Option<u64> },
    Rcpt { to: Address },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
}

/// A reverse or forward path. `local` and `domain` are empty for the null sender `<>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

impl Address {
    pub fn is_null(&self) -> bool {
        self.local.is_empty() && self.domain.is_empty()
    }
    pub fn null() -> Self {
        Self { local: String::new(), domain: String::new() }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_null() {
            Ok(())
        } else {
            write!(f, "{}@{}", self.local, self.domain)
        }
    }
}

pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    if line.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(common::syntax("Command contains NUL, CR or LF"));
    }
    let line = std::str::from_utf8(line).map_err(|_| common::syntax("Command is not valid UTF-8"))?;
    if !line.is_ascii() {
        return Err(Reply::new(553, "5.6.7", "Non-ASCII command; SMTPUTF8 is not supported"));
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let no_args = |cmd: Command| if rest.trim().is_empty() { Ok(cmd) } else { Err(common::syntax("This command takes no arguments")) };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" | "HELO" => {
            let name = rest.trim();
            if name.is_empty() || name.contains(' ') || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(common::syntax("Syntax: EHLO hostname"));
            }
            Ok(if verb.eq_ignore_ascii_case("EHLO") { Command::Ehlo(name.into()) } else { Command::Helo(name.into()) })
        }
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            let mechanism = parts.next().ok_or_else(|| common::syntax("Syntax: AUTH mechanism [initial-response]"))?;
            let initial = parts.next().map(str::to_string);
            if parts.next().is_some() {
                return Err(common::syntax("Syntax: AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth { mechanism: mechanism.to_ascii_uppercase(), initial })
        }
        "MAIL" => {
            let args = strip_prefix_ci(rest, "FROM:").ok_or_else(|| common::syntax("Syntax: MAIL FROM:<address>"))?;
            let (from, params) = parse_path(args, true)?;
            let mut size = None;
            for param in params.split(' ').filter(|p| !p.is_empty()) {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                match key.to_ascii_uppercase().as_str() {
                    "SIZE" => size = Some(value.parse().map_err(|_| Reply::new(501, "5.5.4", "Invalid SIZE parameter"))?),
                    "BODY" if value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME") => {}
                    _ => return Err(Reply::new(555, "5.5.4", "Unsupported MAIL parameter")),
                }
            }
            Ok(Command::Mail { from, size })
        }
        "RCPT" => {
            let args = strip_prefix_ci(rest, "TO:").ok_or_else(|| common::syntax("Syntax: RCPT TO:<address>"))?;
            let (to, params) = parse_path(args, false)?;
            if !params.trim().is_empty() {
                return Err(Reply::new(555, "5.5.4", "Unsupported RCPT parameter"));
            }
            Ok(Command::Rcpt { to })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        "BDAT" | "EXPN" | "TURN" | "ETRN" => Err(Reply::new(502, "5.5.1", "Command not implemented")),
        _ => Err(Reply::new(500, "5.5.2", "Command unrecognized")),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| s[prefix.len()..].trim_start())
}

/// A bare `local@domain` (as the HTTP send API takes it), by the same rules as a path.
pub fn parse_address(text: &str) -> Result<Address, Reply> {
    match parse_path(&format!("<{}>", text.trim()), false)? {
        (address, "") => Ok(address),
        _ => Err(Reply::new(501, "5.1.7", "Invalid address")),
    }
}

/// Parses `<local@domain>` (or `<>` when `allow_null`) and returns the rest (the parameters).
fn parse_path(s: &str, allow_null: bool) -> Result<(Address, &str), Reply> {
    let bad = || Reply::new(501, "5.1.7", "Invalid address: expected <local-part@domain>");
    let rest = s.strip_prefix('<').ok_or_else(bad)?;
    let end = rest.find('>').ok_or_else(bad)?;
    let (inner, params) = (&rest[..end], &rest[end + 1..]);
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(bad());
    }
    if inner.is_empty() {
        return if allow_null { Ok((Address::null(), params)) } else { Err(bad()) };
    }
    // A source route (`@a,@b:user@c`) is obsolete; RFC 5321 says accept and ignore it.
    let inner = if inner.starts_with('@') { inner.split_once(':').map(|(_, a)| a).ok_or_else(bad)? } else { inner };
    let at = inner.rfind('@').ok_or_else(bad)?;
    let (local, domain) = (&inner[..at], &inner[at + 1..]);
    if local.is_empty() || local.len() > 64 || !valid_local_part(local) {
        return Err(Reply::new(501, "5.1.3", "Invalid local part in address"));
    }
    if !valid_domain(domain) {
        return Err(Reply::new(501, "5.1.2", "Invalid domain in address"));
    }
    Ok((Address { local: local.into(), domain: domain.to_ascii_lowercase() }, params))
}

fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    if let Some(quoted) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        // Quoted strings may hold printable ASCII; escapes are allowed but not CR, LF or NUL.
        return quoted.bytes().all(|b| (32..127).contains(&b));
    }
    !local.starts_with('.') && !local.ends_with('.') && !local.contains("..") && local.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || SPECIALS.contains(&b))
}

/// A hostname of letters, digits and hyphens, at least two labels (the relay never delivers to a
/// bare name), or an address literal in brackets is refused as well: submission is for domains.
pub fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address { local: local.into(), domain: domain.into() }
    }

    #[test]
    fn parses_every_verb() {
        let cases: &[(&str, Command)] = &[
            ("EHLO client.example", Command::Ehlo("client.example".into())),
            ("helo x", Command::Helo("x".into())),
            ("STARTTLS", Command::StartTls),
            ("AUTH PLAIN AGEAYg==", Command::Auth { mechanism: "PLAIN".into(), initial: Some("AGEAYg==".into()) }),
            ("auth login", Command::Auth { mechanism: "LOGIN".into(), initial: None }),
            ("MAIL FROM:<a@Example.TEST>", Command::Mail { from: addr("a", "example.test"), size: None }),
            ("MAIL FROM: <a@b.test> SIZE=1000 BODY=8BITMIME", Command::Mail { from: addr("a", "b.test"), size: Some(1000) }),
            ("MAIL FROM:<>", Command::Mail { from: Address::null(), size: None }),
            ("RCPT TO:<\"john doe\"@b.test>", Command::Rcpt { to: addr("\"john doe\"", "b.test") }),
            ("RCPT TO:<@hop.test:u@b.test>", Command::Rcpt { to: addr("u", "b.test") }),
            ("DATA", Command::Data),
            ("RSET", Command::Rset),
            ("NOOP anything", Command::Noop),
            ("QUIT", Command::Quit),
            ("VRFY someone", Command::Vrfy),
            ("HELP", Command::Help),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line.as_bytes()).as_ref(), Ok(expected), "{line}");
        }
    }

    #[test]
    fn refuses_bad_input_with_precise_codes() {
        let cases: &[(&[u8], u16, &str)] = &[
            (b"FOO", 500, "5.5.2"),
            (b"EXPN list", 502, "5.5.1"),
            (b"EHLO", 501, "5.5.4"),
            (b"MAIL <a@b.test>", 501, "5.5.4"),
            (b"MAIL FROM:a@b.test", 501, "5.1.7"),
            (b"MAIL FROM:<a@b.test> SMTPUTF8", 555, "5.5.4"),
            (b"MAIL FROM:<a@b.test> SIZE=big", 501, "5.5.4"),
            (b"RCPT TO:<>", 501, "5.1.7"),
            (b"RCPT TO:<a@localhost>", 501, "5.1.2"),
            (b"RCPT TO:<a@[127.0.0.1]>", 501, "5.1.2"),
            (b"RCPT TO:<a..b@c.test>", 501, "5.1.3"),
            (b"RCPT TO:<a@b.test>\x00", 501, "5.5.4"),
            (b"RCPT TO:<a\rb@c.test>", 501, "5.5.4"),
            (b"RCPT TO:<a@b.test>x", 501, "5.1.7"),
            (b"MAIL FROM:<j\xc3\xb6rg@b.test>", 553, "5.6.7"),
            (b"MAIL FROM:<\xff@b.test>", 501, "5.5.4"),
            (b"DATA now", 501, "5.5.4"),
        ];
        for (line, code, enhanced) in cases {
            let reply = parse(line).unwrap_err();
            assert_eq!((reply.code, reply.enhanced), (*code, *enhanced), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn domain_rules() {
        assert!(valid_domain("mail.example.test"));
        assert!(!valid_domain("-bad.test"));
        assert!(!valid_domain("a..test"));
        assert!(!valid_domain(&format!("{}.test", "a".repeat(64))));
    }
}
