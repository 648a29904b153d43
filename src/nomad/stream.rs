//! Splits a JSON array arriving in chunks into its top-level elements, so
//! that list endpoints (`/v1/jobs` with 100k jobs, a node's allocations with
//! their embedded jobs) are decoded one element at a time: memory is bounded
//! by the largest element, not by the list. Only framing lives here; each
//! element is then handed to `serde_json::from_slice`, which validates it.

/// Why the byte stream is not a JSON array of values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("expected a JSON array, found byte {0:?} at offset {1}")]
    NotAnArray(char, u64),
    #[error("unexpected byte {0:?} between array elements at offset {1}")]
    BadSeparator(char, u64),
    #[error("an array element is larger than {0} bytes")]
    ElementTooLarge(usize),
    #[error("the body ended inside the JSON array (truncated)")]
    Truncated,
    #[error("unexpected data after the end of the JSON array at offset {0}")]
    TrailingData(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `[`.
    Start,
    /// After `[` or `,`: whitespace, then an element (or `]` right after `[`).
    ExpectValue { first: bool },
    /// Inside an element.
    InValue,
    /// After an element: `,` or `]`.
    AfterValue,
    /// After the closing `]`: only whitespace may follow.
    Done,
}

/// Incremental framer: feed it chunks, collect complete elements.
#[derive(Debug)]
pub struct ArrayFramer {
    state: State,
    element: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    max_element: usize,
    offset: u64,
}

impl ArrayFramer {
    /// A framer that refuses elements larger than `max_element` bytes.
    #[must_use]
    pub fn new(max_element: usize) -> Self {
        Self {
            state: State::Start,
            element: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            max_element,
            offset: 0,
        }
    }

    /// Feeds one chunk; calls `on_element` with the bytes of every element
    /// completed in it.
    ///
    /// # Errors
    ///
    /// The first framing error; the framer must not be fed after one.
    pub fn feed<E>(
        &mut self,
        mut chunk: &[u8],
        on_element: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        while !chunk.is_empty() {
            match self.state {
                State::InValue => {
                    let used = self.scan_value(chunk);
                    let (taken, rest) = chunk.split_at(used);
                    if self.element.len() + taken.len() > self.max_element {
                        return Err(FeedError::Frame(FrameError::ElementTooLarge(
                            self.max_element,
                        )));
                    }
                    self.element.extend_from_slice(taken);
                    self.offset += used as u64;
                    chunk = rest;
                    if self.depth == 0 && !self.in_string && self.value_complete(rest) {
                        self.finish_element(on_element)?;
                    }
                }
                _ => {
                    let byte = chunk[0];
                    self.structural(byte)?;
                    self.offset += 1;
                    chunk = &chunk[1..];
                }
            }
        }
        Ok(())
    }

    /// Call at end of body.
    ///
    /// # Errors
    ///
    /// `Truncated` unless the closing `]` was seen.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }

    fn structural<E>(&mut self, byte: u8) -> Result<(), FeedError<E>> {
        let ws = matches!(byte, b' ' | b'\n' | b'\r' | b'\t');
        match self.state {
            State::Start if ws => {}
            State::Start if byte == b'[' => self.state = State::ExpectValue { first: true },
            State::Start => {
                return Err(FeedError::Frame(FrameError::NotAnArray(
                    char::from(byte),
                    self.offset,
                )))
            }
            State::ExpectValue { .. } if ws => {}
            State::ExpectValue { first: true } if byte == b']' => self.state = State::Done,
            State::ExpectValue { .. } if matches!(byte, b',' | b']') => {
                return Err(FeedError::Frame(FrameError::BadSeparator(
                    char::from(byte),
                    self.offset,
                )))
            }
            State::ExpectValue { .. } => {
                // The first byte of an element: open a string or structure,
                // or start a scalar that its delimiter will end.
                self.state = State::InValue;
                self.element.clear();
                self.depth = 0;
                self.in_string = false;
                self.escaped = false;
                self.scan_value(&[byte]);
                self.element.push(byte);
            }
            State::AfterValue if ws => {}
            State::AfterValue if byte == b',' => self.state = State::ExpectValue { first: false },
            State::AfterValue if byte == b']' => self.state = State::Done,
            State::AfterValue => {
                return Err(FeedError::Frame(FrameError::BadSeparator(
                    char::from(byte),
                    self.offset,
                )))
            }
            State::Done if ws => {}
            State::Done => return Err(FeedError::Frame(FrameError::TrailingData(self.offset))),
            State::InValue => unreachable!("handled by feed"),
        }
        Ok(())
    }

    /// Scans bytes of the current element; returns how many belong to it.
    /// Stops right after the byte that closes a structure at depth 0, or
    /// before the delimiter that ends a scalar.
    fn scan_value(&mut self, chunk: &[u8]) -> usize {
        for (i, &b) in chunk.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return i + 1;
                    }
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    if self.depth == 0 {
                        // Closing bracket of the outer array ends a scalar.
                        return i;
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        return i + 1;
                    }
                }
                b',' if self.depth == 0 => return i,
                _ => {}
            }
        }
        chunk.len()
    }

    /// Whether the element just scanned is complete: a closed structure or
    /// string is; a scalar is once its delimiter is in sight.
    fn value_complete(&self, rest: &[u8]) -> bool {
        match self.element.first() {
            Some(b'{' | b'[' | b'"') => true,
            Some(_) => !rest.is_empty(),
            None => false,
        }
    }

    fn finish_element<E>(
        &mut self,
        on_element: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        let trimmed = trim_ascii_end(&self.element);
        on_element(trimmed).map_err(FeedError::Element)?;
        self.element.clear();
        self.state = State::AfterValue;
        Ok(())
    }
}

fn trim_ascii_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// A framing error, or the error the element callback returned.
#[derive(Debug)]
pub enum FeedError<E> {
    Frame(FrameError),
    Element(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(body: &[u8], chunk: usize) -> Result<Vec<String>, FrameError> {
        let mut out = Vec::new();
        let mut framer = ArrayFramer::new(1 << 20);
        let mut push = |e: &[u8]| -> Result<(), ()> {
            out.push(String::from_utf8_lossy(e).into_owned());
            Ok(())
        };
        for part in body.chunks(chunk.max(1)) {
            framer.feed(part, &mut push).map_err(unwrap_frame)?;
        }
        framer.finish()?;
        Ok(out)
    }

    fn unwrap_frame(e: FeedError<()>) -> FrameError {
        match e {
            FeedError::Frame(f) => f,
            FeedError::Element(()) => panic!("callback never fails here"),
        }
    }

    #[test]
    fn splits_objects_at_every_chunk_size() {
        let body = br#" [ {"a":"x,]}\"y","b":[1,{"c":2}]} ,{"d":null},"s\\",12 ,true,[3]] "#;
        let expected = vec![
            r#"{"a":"x,]}\"y","b":[1,{"c":2}]}"#,
            r#"{"d":null}"#,
            r#""s\\""#,
            "12",
            "true",
            "[3]",
        ];
        for size in 1..body.len() + 1 {
            assert_eq!(
                frame_all(body, size).unwrap(),
                expected,
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn empty_array_and_whitespace() {
        assert_eq!(frame_all(b"[]", 1).unwrap(), Vec::<String>::new());
        assert_eq!(frame_all(b"\n[ \n ]\n", 2).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rejects_what_is_not_an_array() {
        assert_eq!(frame_all(b"<html>", 3), Err(FrameError::NotAnArray('<', 0)));
        assert_eq!(frame_all(b"", 3), Err(FrameError::Truncated));
        assert_eq!(frame_all(br#"[{"a":1}"#, 3), Err(FrameError::Truncated));
        assert_eq!(frame_all(br#"[{"a":1"#, 3), Err(FrameError::Truncated));
        assert_eq!(
            frame_all(br#"[{"a":1} {"b":2}]"#, 3),
            Err(FrameError::BadSeparator('{', 9))
        );
        assert_eq!(frame_all(b"[1] x", 1), Err(FrameError::TrailingData(4)));
        assert_eq!(frame_all(b"[1,]", 1), Err(FrameError::BadSeparator(']', 3)));
        assert_eq!(frame_all(b"[,1]", 1), Err(FrameError::BadSeparator(',', 1)));
    }

    #[test]
    fn caps_element_size() {
        let mut framer = ArrayFramer::new(8);
        let mut sink = |_: &[u8]| -> Result<(), ()> { Ok(()) };
        let err = framer.feed(br#"[{"abcdefgh":1}]"#, &mut sink).unwrap_err();
        assert!(matches!(
            err,
            FeedError::Frame(FrameError::ElementTooLarge(8))
        ));
    }
}
