//! Decodes a JSON array arriving in chunks one element at a time, so that
//! list endpoints (`/v1/jobs` with 100k jobs, 50k allocations) never sit in
//! memory: memory is bounded by the largest element plus one chunk. Each
//! element is decoded straight from the buffered bytes (no separate framing
//! pass): by the element type's fast path where it has one (job stubs, see
//! `skim`), else by serde_json. An element cut by a chunk boundary fails to
//! decode at the end of the buffer — as "EOF", or, inside a number that a
//! model skips (`-`, `0.`, `1e`), as an invalid number — and is decoded
//! again once at least as many bytes again have arrived, so a large element
//! split into many chunks costs O(size), not O(size²).

use super::skim::{ListElement, Skim};

/// Why the byte stream is not a JSON array of the expected elements.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
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
    #[error("array element at offset {offset} does not decode")]
    Element {
        offset: u64,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `[`.
    Start,
    /// After `[`: an element or `]`.
    First,
    /// After an element: `,` or `]`.
    Next,
    /// After `,`: an element.
    Element,
    /// After the closing `]`: only whitespace may follow.
    Done,
}

/// Incremental decoder: feed it chunks, get elements.
#[derive(Debug)]
pub struct ArrayDecoder {
    state: State,
    /// Bytes received but not consumed yet (at most one partial element).
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`, for error messages.
    offset: u64,
    max_element: usize,
    /// Do not try to decode again before `buf` holds this many bytes (an
    /// incomplete element at `buf[0]` waits for more data).
    need: usize,
    /// The body has ended: an element cut at the end is an error now.
    final_pass: bool,
}

impl ArrayDecoder {
    /// A decoder that refuses elements larger than `max_element` bytes.
    #[must_use]
    pub fn new(max_element: usize) -> Self {
        Self {
            state: State::Start,
            buf: Vec::new(),
            offset: 0,
            max_element,
            need: 0,
            final_pass: false,
        }
    }

    /// Feeds one chunk; hands every element completed in it to `on_element`.
    ///
    /// # Errors
    ///
    /// The first error; the decoder must not be fed after one.
    pub fn feed<T: ListElement>(
        &mut self,
        chunk: &[u8],
        on_element: &mut impl FnMut(T),
    ) -> Result<(), DecodeError> {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= self.need || self.buf.len() > self.max_element {
            self.need = 0;
            let mut pos = 0;
            let result = self.consume(&mut pos, on_element);
            self.buf.drain(..pos);
            self.offset += pos as u64;
            result?;
        }
        // What is left is one element still arriving.
        if self.buf.len() > self.max_element {
            return Err(DecodeError::ElementTooLarge(self.max_element));
        }
        Ok(())
    }

    /// Call at the end of the body: decodes what is still buffered (without
    /// waiting for more) and checks the array was closed.
    ///
    /// # Errors
    ///
    /// `Truncated` unless the closing `]` was seen, or the element error.
    pub fn finish<T: ListElement>(
        &mut self,
        on_element: &mut impl FnMut(T),
    ) -> Result<(), DecodeError> {
        self.need = 0;
        let mut pos = 0;
        self.final_pass = true;
        let result = self.consume(&mut pos, on_element);
        self.buf.drain(..pos);
        result?;
        if self.state == State::Done {
            Ok(())
        } else {
            Err(DecodeError::Truncated)
        }
    }

    fn consume<T: ListElement>(
        &mut self,
        pos: &mut usize,
        on_element: &mut impl FnMut(T),
    ) -> Result<(), DecodeError> {
        let buf = &self.buf;
        loop {
            while buf.get(*pos).is_some_and(u8::is_ascii_whitespace) {
                *pos += 1;
            }
            let Some(&byte) = buf.get(*pos) else {
                return Ok(());
            };
            let at = self.offset + *pos as u64;
            match (self.state, byte) {
                (State::Start, b'[') => self.state = State::First,
                (State::Start, b) => return Err(DecodeError::NotAnArray(char::from(b), at)),
                (State::First | State::Next, b']') => self.state = State::Done,
                (State::Next, b',') => self.state = State::Element,
                (State::Next | State::Element, b) if !starts_value(b) => {
                    return Err(DecodeError::BadSeparator(char::from(b), at))
                }
                (State::First | State::Element, b) if !starts_value(b) => {
                    return Err(DecodeError::BadSeparator(char::from(b), at))
                }
                (State::First | State::Element, _) => {
                    let rest = &buf[*pos..];
                    match T::skim(rest) {
                        Skim::Done(value, used) => {
                            on_element(value);
                            *pos += used;
                            self.state = State::Next;
                            continue;
                        }
                        Skim::Incomplete if !self.final_pass => {
                            self.need = rest.len() + rest.len().max(16 << 10);
                            return Ok(());
                        }
                        // serde_json decodes it, or says what is wrong.
                        Skim::Incomplete | Skim::Unsure => {}
                    }
                    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
                    match values.next() {
                        Some(Ok(value)) => {
                            let used = values.byte_offset();
                            // A number or literal that touches the end of what
                            // has arrived may continue in the next chunk.
                            if used == rest.len()
                                && !self.final_pass
                                && !matches!(byte, b'{' | b'[' | b'"')
                            {
                                return Ok(());
                            }
                            on_element(value);
                            *pos += used;
                            self.state = State::Next;
                            continue;
                        }
                        Some(Err(e)) if self.final_pass && e.is_eof() => {
                            return Err(DecodeError::Truncated)
                        }
                        Some(Err(e)) if !self.final_pass && (e.is_eof() || at_end(rest, &e)) => {
                            // Wait for at least as many bytes again (16 KiB at
                            // least) before decoding this element again.
                            // `need` counts from `buf[0]`, where this element
                            // will start once the bytes before it are drained.
                            self.need = rest.len() + rest.len().max(16 << 10);
                            return Ok(());
                        }
                        Some(Err(source)) => {
                            return Err(DecodeError::Element { offset: at, source })
                        }
                        None => return Ok(()),
                    }
                }
                (State::Next, b) => return Err(DecodeError::BadSeparator(char::from(b), at)),
                (State::Done, _) => return Err(DecodeError::TrailingData(at)),
            }
            *pos += 1;
        }
    }
}

/// Whether `err` points at the last byte of `data` or beyond: the element
/// may just be cut there (serde_json reports a number cut after `-`, `.` or
/// `e` as an invalid number, not as EOF, when it skips the value).
fn at_end(data: &[u8], err: &serde_json::Error) -> bool {
    let line_start = if err.line() <= 1 {
        0
    } else {
        data.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(err.line() - 2)
            .map_or(data.len(), |(i, _)| i + 1)
    };
    line_start + err.column() + 1 >= data.len()
}

fn starts_value(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn decode_all(body: &[u8], chunk: usize) -> Result<Vec<Value>, DecodeError> {
        let mut out = Vec::new();
        let mut decoder = ArrayDecoder::new(1 << 20);
        for part in body.chunks(chunk.max(1)) {
            decoder.feed(part, &mut |v: Value| out.push(v))?;
        }
        decoder.finish(&mut |v: Value| out.push(v))?;
        Ok(out)
    }

    #[test]
    fn decodes_elements_at_every_chunk_size() {
        let body = br#" [ {"a":"x,]}\"y","b":[1,{"c":2}]} ,{"d":null},"s\\",12 ,-3.5e2,true,[3]] "#;
        let expected: Vec<Value> = serde_json::from_slice(body).unwrap();
        for size in 1..=body.len() {
            assert_eq!(
                decode_all(body, size).unwrap(),
                expected,
                "chunk size {size}"
            );
        }
    }

    /// Typed models skip unknown fields with serde_json's `ignore_*` paths,
    /// which report a number cut at a chunk edge differently.
    #[test]
    fn typed_elements_with_skipped_numbers_at_every_chunk_size() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Item {
            id: u32,
        }
        impl ListElement for Item {}
        let body = br#"[{"x":-0.5e-05,"id":1,"y":[-12,0.25,1E+3,-0],"z":{"s":-1.5}},
            {"n":-7,"id":2,"f":123456.789e1},{"id":3,"t":true,"u":null,"v":"-1.5"}]"#;
        for size in 1..=body.len() {
            let mut got = Vec::new();
            let mut decoder = ArrayDecoder::new(1 << 20);
            for part in body.chunks(size) {
                decoder
                    .feed(part, &mut |i: Item| got.push(i.id))
                    .unwrap_or_else(|e| panic!("chunk size {size}: {e}"));
            }
            decoder
                .finish(&mut |i: Item| got.push(i.id))
                .unwrap_or_else(|e| panic!("chunk size {size}: {e}"));
            assert_eq!(got, [1, 2, 3], "chunk size {size}");
        }
    }

    #[test]
    fn a_large_element_in_small_chunks_is_not_decoded_over_and_over() {
        // 1 MiB element in 1 KiB chunks: without back-off this would be
        // ~1,000 decode attempts of up to 1 MiB each.
        let mut body = br#"[{"pad":""#.to_vec();
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        body.extend_from_slice(br#""}]"#);
        let mut decoder = ArrayDecoder::new(4 << 20);
        let mut n = 0;
        let mut attempts = 0;
        for part in body.chunks(1024) {
            let before = decoder.need;
            decoder.feed(part, &mut |_: Value| n += 1).unwrap();
            attempts += usize::from(decoder.need != before && decoder.need != 0);
        }
        decoder.finish(&mut |_: Value| n += 1).unwrap();
        assert_eq!(n, 1);
        assert!(attempts < 20, "{attempts} decode attempts");
    }

    #[test]
    fn empty_array_and_whitespace() {
        assert!(decode_all(b"[]", 1).unwrap().is_empty());
        assert!(decode_all(b"\n[ \n ]\n", 2).unwrap().is_empty());
    }

    #[test]
    fn rejects_what_is_not_an_array() {
        let err = |body: &[u8]| decode_all(body, 3).unwrap_err().to_string();
        assert!(err(b"<html>").contains("expected a JSON array, found byte '<'"));
        assert!(err(b"").contains("truncated"));
        assert!(err(br#"[{"a":1}"#).contains("truncated"));
        assert!(err(br#"[{"a":1"#).contains("truncated"));
        assert!(err(br#"[{"a":1} {"b":2}]"#).contains("byte '{'"));
        assert!(err(b"[1] x").contains("after the end"));
        assert!(err(b"[1,]").contains("byte ']'"));
        assert!(err(b"[,1]").contains("byte ','"));
        assert!(err(br#"[{"a":}]"#).contains("does not decode"));
    }

    #[test]
    fn elements_must_have_the_expected_shape() {
        #[derive(Debug, serde::Deserialize)]
        struct Item {
            #[allow(dead_code)]
            n: u32,
        }
        impl ListElement for Item {}
        let mut decoder = ArrayDecoder::new(1 << 20);
        let err = decoder
            .feed(br#"[{"n":1},{"n":"x"}]"#, &mut |_: Item| {})
            .unwrap_err();
        assert!(
            matches!(err, DecodeError::Element { offset: 9, .. }),
            "{err}"
        );
    }

    #[test]
    fn decodes_as_it_goes_and_keeps_only_the_partial_element() {
        let mut body = b"[".to_vec();
        for i in 0..2000 {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(format!(r#"{{"id":{i},"pad":"xxxxxxxx"}}"#).as_bytes());
        }
        body.push(b']');
        let mut decoder = ArrayDecoder::new(1 << 20);
        let mut n = 0;
        for part in body.chunks(20_000) {
            decoder.feed(part, &mut |_: Value| n += 1).unwrap();
            // Waiting for more data must hold one element, not pile up more.
            assert!(
                decoder.buf.len() < 20_000 / 2,
                "{} bytes buffered",
                decoder.buf.len()
            );
        }
        decoder.finish(&mut |_: Value| n += 1).unwrap();
        assert_eq!(n, 2000);
    }

    #[test]
    fn a_chunk_larger_than_the_element_cap_is_fine() {
        let mut body = b"[".to_vec();
        for i in 0..1000 {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(br#"{"id":12345}"#);
        }
        body.push(b']');
        let mut decoder = ArrayDecoder::new(64);
        let mut n = 0;
        decoder.feed(&body, &mut |_: Value| n += 1).unwrap();
        decoder.finish(&mut |_: Value| n += 1).unwrap();
        assert_eq!(n, 1000);
    }

    #[test]
    fn caps_element_size() {
        let mut decoder = ArrayDecoder::new(8);
        let err = decoder
            .feed(br#"[{"abcdefgh":1"#, &mut |_: Value| {})
            .unwrap_err();
        assert!(matches!(err, DecodeError::ElementTooLarge(8)));
    }
}
