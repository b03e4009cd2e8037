//! The DATA byte stream (RFC 5321 sections 2.3.8, 4.1.1.4, 4.5.2): finds the one true end of data
//! (`CRLF.CRLF`), removes dot-stuffing, and refuses any bare LF, bare CR or NUL. Only CRLF ends a line:
//! a bare CR or LF is part of the line it is in, so it never puts the reader "at the start of a line"
//! and never completes a dot line. `<LF>.<LF>`, `<CR><LF><CR>.<CR><LF>`, `<CR><LF>.<CR><CR><LF>` and
//! friends can therefore never end the message early (SMTP smuggling). Pure: bytes in, message or
//! error out.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    BareLf,
    BareCr,
    /// NUL is not text (RFC 5322 2.3) and ends strings in lenient downstream parsers.
    Nul,
    TooLarge,
    LineTooLong,
}

#[derive(Debug)]
pub struct DataReader {
    out: Vec<u8>,
    max_size: usize,
    max_line: usize,
    line_len: usize,
    at_line_start: bool,
    dot_line: bool,
    pending_cr: bool,
    error: Option<DataError>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    NeedMore,
    /// The end of data was found after `consumed` bytes of the last input.
    Done {
        consumed: usize,
    },
}

impl DataReader {
    pub fn new(max_size: usize, max_line: usize) -> Self {
        Self { out: Vec::with_capacity(8192), max_size, max_line, line_len: 0, at_line_start: true, dot_line: false, pending_cr: false, error: None }
    }

    fn fail(&mut self, e: DataError) {
        if self.error.is_none() {
            self.error = Some(e);
            self.out = Vec::new();
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.out.len() + bytes.len() > self.max_size {
            self.fail(DataError::TooLarge);
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Feeds bytes; stops at the end of data so what follows (pipelined commands) stays unread.
    pub fn feed(&mut self, input: &[u8]) -> Progress {
        for (i, &b) in input.iter().enumerate() {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    if self.dot_line {
                        return Progress::Done { consumed: i + 1 };
                    }
                    self.push(b"\r\n");
                    self.at_line_start = true;
                    self.line_len = 0;
                    continue;
                }
                // A bare CR is line content: the line it is in is neither at its start nor a dot line.
                self.fail(DataError::BareCr);
                self.at_line_start = false;
                self.dot_line = false;
                self.line_len += 1;
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'.' if self.at_line_start => {
                    self.at_line_start = false;
                    self.dot_line = true;
                    self.line_len += 1;
                }
                _ => {
                    self.at_line_start = false;
                    self.dot_line = false;
                    self.line_len += 1;
                    if b == b'\n' {
                        self.fail(DataError::BareLf);
                    } else if b == 0 {
                        self.fail(DataError::Nul);
                    } else if self.line_len + 2 > self.max_line {
                        self.fail(DataError::LineTooLong);
                    }
                    self.push(&[b]);
                }
            }
        }
        Progress::NeedMore
    }

    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> (Progress, Result<Vec<u8>, DataError>) {
        let mut r = DataReader::new(1 << 20, 1000);
        let p = r.feed(input);
        (p, r.finish())
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_leaves_the_rest() {
        let input = b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
        let (p, msg) = read(input);
        assert_eq!(p, Progress::Done { consumed: input.len() - 6 });
        assert_eq!(msg.unwrap(), b"Subject: x\r\n\r\nhello\r\n");
    }

    #[test]
    fn removes_dot_stuffing() {
        let (p, msg) = read(b"a\r\n..b\r\n...\r\n.\r\n");
        assert!(matches!(p, Progress::Done { .. }));
        assert_eq!(msg.unwrap(), b"a\r\n.b\r\n..\r\n");
    }

    #[test]
    fn an_empty_message_ends_at_the_first_dot_line() {
        let (p, msg) = read(b".\r\n");
        assert_eq!(p, Progress::Done { consumed: 3 });
        assert_eq!(msg.unwrap(), b"");
    }

    #[test]
    fn works_byte_by_byte() {
        let input = b"x: y\r\n\r\n.a\r\n.\r\n";
        let mut r = DataReader::new(1024, 1000);
        let mut done = false;
        for chunk in input.chunks(1) {
            if let Progress::Done { consumed } = r.feed(chunk) {
                assert_eq!(consumed, 1);
                done = true;
            }
        }
        assert!(done);
        assert_eq!(r.finish().unwrap(), b"x: y\r\n\r\na\r\n");
    }

    #[test]
    fn smuggling_variants_never_end_data_and_are_refused() {
        // Each would end the message early in a lenient server and smuggle a second one.
        let cases: &[(&[u8], DataError)] = &[
            (b"a\n.\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareLf),
            (b"a\r\n.\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareLf),
            (b"a\n.\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareLf),
            (b"a\r.\rMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareCr),
            (b"a\r\n.\rMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareCr),
            (b"a\r.\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareCr),
            (b"a\r\n\0.\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::Nul),
            // A bare CR right after a CRLF, then a dot line (the review's demonstration).
            (b"a\r\n\r.\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareCr),
            // A dot line whose CRLF is preceded by a second CR.
            (b"a\r\n.\r\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareCr),
            (b"a\r\r\n.\r\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareCr),
            (b"a\r\n.\r\0\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareCr),
            (b"a\r\n\n.\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareLf),
            (b"a\r\n.\n\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::BareLf),
            (b"a\r\n.\0\r\nMAIL FROM:<x@evil.test>\r\n.\r\n", DataError::Nul),
        ];
        for (input, err) in cases {
            let (p, msg) = read(input);
            assert_eq!(p, Progress::Done { consumed: input.len() }, "{}", String::from_utf8_lossy(input));
            assert_eq!(msg.unwrap_err(), *err, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn only_crlf_dot_crlf_ends_data_whatever_precedes_it() {
        // Every prefix of bare CR/LF/NUL combinations followed by a dot line that is not preceded
        // by a real CRLF must leave the reader waiting for the real end.
        let pieces: &[&[u8]] = &[b"\r", b"\n", b"\0", b".", b"\r\n", b"x"];
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            inputs = inputs.iter().flat_map(|p| pieces.iter().map(move |q| [p.as_slice(), q].concat())).collect();
        }
        for input in inputs {
            let mut r = DataReader::new(1 << 20, 1000);
            if let Progress::Done { consumed } = r.feed(&input) {
                let ends_with_real_end = input[..consumed].ends_with(b"\r\n.\r\n") || &input[..consumed] == b".\r\n";
                assert!(ends_with_real_end, "ended early on {:?}", String::from_utf8_lossy(&input));
            }
        }
    }

    #[test]
    fn enforces_size_and_line_length() {
        let mut r = DataReader::new(10, 1000);
        assert_eq!(r.feed(b"0123456789abc\r\n.\r\n"), Progress::Done { consumed: 18 });
        assert_eq!(r.finish().unwrap_err(), DataError::TooLarge);
        let mut r = DataReader::new(1 << 20, 10);
        r.feed(b"0123456789\r\n.\r\n");
        assert_eq!(r.finish().unwrap_err(), DataError::LineTooLong);
    }
}
