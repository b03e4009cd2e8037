//! A small deterministic mutator for the bounded fuzz runs in `cargo test` (the coverage-guided
//! runs are the libFuzzer targets in `fuzz/`): bit flips, inserted, removed and duplicated bytes,
//! truncation.

pub struct Mutator(u64);

impl Default for Mutator {
    fn default() -> Self {
        Self(0x9e37_79b9_7f4a_7c15)
    }
}

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `seed` with one to four random edits.
    pub fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut input = seed.to_vec();
        for _ in 0..1 + self.next() % 4 {
            let at = (self.next() as usize) % input.len().max(1);
            match self.next() % 5 {
                0 if !input.is_empty() => input[at] ^= 1 << (self.next() % 8),
                1 => input.insert(at.min(input.len()), self.next() as u8),
                2 if !input.is_empty() => drop(input.remove(at)),
                3 => input.truncate(at),
                _ => {
                    let end = (at + (self.next() as usize) % 64).min(input.len());
                    let chunk = input[at.min(end)..end].to_vec();
                    input.splice(at.min(input.len())..at.min(input.len()), chunk);
                }
            }
        }
        input
    }
}

#[cfg(test)]
mod tests {
    use super::Mutator;

    /// The SMTP grammar, the DATA reader, the spool reader and the configuration loader on
    /// mutated inputs: answers or errors, never a panic.
    #[test]
    fn parsers_survive_mutated_input() {
        let mut m = Mutator::default();
        let commands: [&[u8]; 6] =
            [b"EHLO client.test\r\n", b"MAIL FROM:<dev@example.test> SIZE=1000 BODY=8BITMIME\r\n", b"RCPT TO:<a@b.test>\r\n", b"AUTH PLAIN AGRldgBzZWNyZXQ=\r\n", b"DATA\r\n", b"STARTTLS\r\n"];
        for seed in commands {
            for _ in 0..5_000 {
                let _ = crate::smtp::command::parse(&m.mutate(seed));
            }
        }
        let data = b"Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n";
        for _ in 0..5_000 {
            let input = m.mutate(data);
            let mut r = crate::smtp::dotstuff::DataReader::new(4096, 1000);
            let split = input.len() / 2;
            let _ = r.feed(&input[..split]);
            let _ = r.feed(&input[split..]);
        }
        let keys = cascade_core::seal::KeyRing::parse("k1 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
        let sealed = cascade_core::seal::seal(&keys, "q1", b"{}", &[b"message"]).unwrap();
        for _ in 0..5_000 {
            let _ = cascade_core::seal::open(&keys, "q1", m.mutate(&sealed));
        }
        let config = "hostname: relay.test\ntls: {certFile: c.pem, keyFile: k.pem}\nspool: {dir: /tmp/x, keyFile: s.key}\nlimits: {maxRecipients: 5}\n";
        for _ in 0..2_000 {
            let text = String::from_utf8_lossy(&m.mutate(config.as_bytes())).into_owned();
            let _ = crate::config::parse("fuzz.yaml", &text);
        }
    }
}
