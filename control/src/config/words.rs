//! Words as pppd reads its options files and chap-secrets (pppd `options.c`, `getword`).
//!
//! * Words are separated by white space. `#` where a word could start, or right after an
//!   unquoted word, comments out the rest of the line; inside a word it is an ordinary
//!   character only when quoted or escaped.
//! * A word that starts with `"` or `'` runs to the same quote, white space and `#`
//!   included; the quotes are not part of it. A quote elsewhere is an ordinary character.
//! * `\` escapes, inside quotes too: `\a \b \f \n \r \t` and `\s` (space) as in C, `\ddd`
//!   up to three octal digits, `\xHH` up to two hex digits, a backslash-newline is removed,
//!   and any other character stands for itself (`\"`, `\\`, `\#`).
//! * pppd truncates words of 1024 bytes or more with a warning; we refuse them, since a
//!   truncated secret fails every login without saying why.
//!
//! Each word keeps its line and whether it is the first of its line, which chap-secrets
//! needs (an entry is the words of one line).

/// pppd's MAXWORDLEN: a word must be shorter.
pub const MAX_WORD_LEN: usize = 1024;

/// One word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Its bytes, quotes removed and escapes resolved.
    pub text: Vec<u8>,
    /// The line (1-based) where it starts.
    pub line: usize,
    /// Whether a newline (or the start of the file) comes between the previous word and
    /// this one.
    pub starts_line: bool,
}

impl Word {
    /// The word as text (lossy: only for messages and keyword matching).
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// A word longer than pppd allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordTooLong {
    /// The line where the word starts.
    pub line: usize,
}

/// Splits `data` into words.
pub fn split(data: &[u8]) -> Result<Vec<Word>, WordTooLong> {
    let mut reader = Reader {
        data,
        pos: 0,
        line: 1,
    };
    let mut words = Vec::new();
    let mut first = true;
    while let Some(mut word) = reader.next_word()? {
        word.starts_line |= first;
        first = false;
        words.push(word);
    }
    Ok(words)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn next_word(&mut self) -> Result<Option<Word>, WordTooLong> {
        let mut starts_line = false;
        let mut comment = false;
        let mut escape = false;
        // Skip white space and comments up to the first character of a word.
        let start_line;
        loop {
            // The end of the file (after a lone trailing backslash too: pppd ends there).
            let Some(c) = self.peek() else {
                return Ok(None);
            };
            if c == b'\n' {
                self.bump();
                if escape {
                    escape = false;
                } else {
                    starts_line = true;
                    comment = false;
                }
                continue;
            }
            if comment {
                self.bump();
                continue;
            }
            if escape {
                start_line = self.line;
                break;
            }
            if c == b'\\' {
                self.bump();
                escape = true;
                continue;
            }
            if c == b'#' {
                self.bump();
                comment = true;
                continue;
            }
            if !c.is_ascii_whitespace() {
                start_line = self.line;
                break;
            }
            self.bump();
        }

        let mut quoted = None;
        if !escape && let Some(q @ (b'"' | b'\'')) = self.peek() {
            quoted = Some(q);
            self.bump();
        }
        let mut text = Vec::new();
        while let Some(c) = self.peek() {
            if escape {
                escape = false;
                self.bump();
                let value = match c {
                    b'\n' => continue,
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b's' => b' ',
                    b't' => b'\t',
                    b'0'..=b'7' => {
                        let mut value = u32::from(c - b'0');
                        for _ in 0..2 {
                            match self.peek() {
                                Some(d @ b'0'..=b'7') => {
                                    value = (value << 3) | u32::from(d - b'0');
                                    self.bump();
                                }
                                _ => break,
                            }
                        }
                        // pppd stores the value in a char: only the low byte is kept.
                        (value & 0xff) as u8
                    }
                    b'x' => {
                        let mut value = 0u8;
                        for _ in 0..2 {
                            match self.peek().and_then(|d| (d as char).to_digit(16)) {
                                Some(digit) => {
                                    value = (value << 4) | digit as u8;
                                    self.bump();
                                }
                                None => break,
                            }
                        }
                        value
                    }
                    other => other,
                };
                text.push(value);
            } else {
                match quoted {
                    Some(q) if c == q => {
                        self.bump();
                        break;
                    }
                    Some(_) => {}
                    None if c.is_ascii_whitespace() || c == b'#' => break,
                    None => {}
                }
                self.bump();
                if c == b'\\' {
                    escape = true;
                    continue;
                }
                text.push(c);
            }
            if text.len() >= MAX_WORD_LEN {
                return Err(WordTooLong { line: start_line });
            }
        }
        if text.len() >= MAX_WORD_LEN {
            return Err(WordTooLong { line: start_line });
        }
        Ok(Some(Word {
            text,
            line: start_line,
            starts_line,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(data: &str) -> Vec<String> {
        split(data.as_bytes())
            .unwrap()
            .iter()
            .map(Word::lossy)
            .collect()
    }

    #[test]
    fn white_space_and_comments_separate_words() {
        assert_eq!(texts("a  b\tc\n# x y\n d#e\nf"), ["a", "b", "c", "d", "f"]);
    }

    #[test]
    fn quotes_keep_spaces_and_hashes() {
        assert_eq!(texts(r#""a b#c" 'd"e' x"y"#), ["a b#c", "d\"e", "x\"y"]);
        assert_eq!(texts(r#""""#), [""]);
    }

    #[test]
    fn escapes_are_resolved_as_pppd_does() {
        assert_eq!(
            split(
                br"\a\b\f\n\r\s\t \101\x41\x4 \q\\\# a\
b"
            )
            .unwrap()
            .iter()
            .map(|w| w.text.clone())
            .collect::<Vec<_>>(),
            vec![
                b"\x07\x08\x0c\n\r \t".to_vec(),
                b"AA\x04".to_vec(),
                b"q\\#".to_vec(),
                b"ab".to_vec(),
            ]
        );
        assert_eq!(texts(r#""a\"b""#), ["a\"b"]);
        assert_eq!(split(br"\777").unwrap()[0].text, vec![0xff]);
    }

    #[test]
    fn lines_and_line_starts_are_tracked() {
        let words = split(b"a b\n\n  c \\\n d\n\"e\nf\" g").unwrap();
        let summary: Vec<_> = words
            .iter()
            .map(|w| (w.lossy(), w.line, w.starts_line))
            .collect();
        assert_eq!(
            summary,
            [
                ("a".to_string(), 1, true),
                ("b".to_string(), 1, false),
                ("c".to_string(), 3, true),
                ("d".to_string(), 4, false),
                ("e\nf".to_string(), 5, true),
                ("g".to_string(), 6, false),
            ]
        );
    }

    #[test]
    fn over_long_words_are_refused() {
        let long = "x".repeat(MAX_WORD_LEN);
        assert_eq!(
            split(format!("ok\n{long}").as_bytes()),
            Err(WordTooLong { line: 2 })
        );
        assert!(split("x".repeat(MAX_WORD_LEN - 1).as_bytes()).is_ok());
    }

    #[test]
    fn a_trailing_backslash_is_no_word() {
        assert_eq!(texts("a \\"), ["a"]);
    }
}
