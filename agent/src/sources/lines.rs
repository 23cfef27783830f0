//! Splits a byte stream read in chunks into lines, with bounded memory.
//!
//! A line waits for its newline however long that takes (a file's writer may be in the
//! middle of it); only its first `max` bytes are kept, the rest up to the newline is
//! dropped and the line flagged as overflowed. So a partial line costs at most `max`
//! bytes of memory.

/// Splits chunks into lines; see the module documentation.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Bytes of the partial line consumed so far, dropped ones included.
    partial_bytes: u64,
    overflowed: bool,
    max: usize,
}

impl LineSplitter {
    /// A splitter keeping at most `max` bytes of each line.
    pub fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            partial_bytes: 0,
            overflowed: false,
            max: max.max(1),
        }
    }

    /// Bytes consumed since the last complete line (the partial line's length on disk).
    pub fn partial_bytes(&self) -> u64 {
        self.partial_bytes
    }

    /// Splits `chunk`; calls `line(text, overflowed, end)` for each complete line, where
    /// `end` is the index in `chunk` just past its newline.
    pub fn feed(&mut self, chunk: &[u8], mut line: impl FnMut(&[u8], bool, usize)) {
        let mut start = 0;
        while start < chunk.len() {
            let Some(pos) = find_newline(&chunk[start..]) else {
                self.keep(&chunk[start..]);
                return;
            };
            let end = start + pos;
            if self.partial_bytes == 0 {
                let text = &chunk[start..end];
                if text.len() > self.max {
                    line(&text[..self.max], true, end + 1);
                } else {
                    line(text, false, end + 1);
                }
            } else {
                self.keep(&chunk[start..end]);
                line(&self.partial, self.overflowed, end + 1);
                self.reset();
            }
            start = end + 1;
        }
    }

    /// Takes the partial line, if any (at the end of a stream that will not grow again).
    pub fn take_partial(&mut self) -> Option<(Vec<u8>, bool)> {
        if self.partial_bytes == 0 {
            return None;
        }
        let taken = (std::mem::take(&mut self.partial), self.overflowed);
        self.reset();
        Some(taken)
    }

    /// Forgets the partial line.
    pub fn reset(&mut self) {
        self.partial.clear();
        if self.partial.capacity() > 64 * 1024 {
            self.partial.shrink_to(64 * 1024);
        }
        self.partial_bytes = 0;
        self.overflowed = false;
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.partial_bytes += bytes.len() as u64;
        let room = self.max.saturating_sub(self.partial.len());
        let keep = room.min(bytes.len());
        self.partial.extend_from_slice(&bytes[..keep]);
        self.overflowed |= keep < bytes.len();
    }
}

/// Index of the first `\n` in `bytes`. Whole blocks are tested without an early exit
/// (which the compiler turns into vector compares) before the matching block is searched
/// byte by byte.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut offset = 0;
    for block in &mut blocks {
        if block.iter().fold(false, |found, b| found | (*b == b'\n')) {
            return block.iter().position(|b| *b == b'\n').map(|i| offset + i);
        }
        offset += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> (Vec<(Vec<u8>, bool, u64)>, LineSplitter) {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut offset = 0u64;
        for chunk in chunks {
            splitter.feed(chunk, |text, overflowed, end| {
                out.push((text.to_vec(), overflowed, offset + end as u64));
            });
            offset += chunk.len() as u64;
        }
        (out, splitter)
    }

    #[test]
    fn lines_across_chunks_with_end_offsets() {
        let (lines, splitter) = split(&[b"ab\ncd", b"e\n\nfg"], 100);
        assert_eq!(
            lines,
            [
                (b"ab".to_vec(), false, 3),
                (b"cde".to_vec(), false, 7),
                (Vec::new(), false, 8)
            ]
        );
        assert_eq!(splitter.partial_bytes(), 2);
    }

    #[test]
    fn long_lines_keep_their_start_and_are_flagged() {
        let (lines, _) = split(&[b"0123", b"456789\nok\n", b"abcdefgh\n"], 5);
        assert_eq!(
            lines,
            [
                (b"01234".to_vec(), true, 11),
                (b"ok".to_vec(), false, 14),
                (b"abcde".to_vec(), true, 23)
            ]
        );
    }

    #[test]
    fn partial_line_is_taken_at_the_end() {
        let (_, mut splitter) = split(&[b"a\nrest"], 100);
        assert_eq!(splitter.take_partial(), Some((b"rest".to_vec(), false)));
        assert_eq!(splitter.take_partial(), None);
        assert_eq!(splitter.partial_bytes(), 0);
    }

    #[test]
    fn newline_found_in_every_position_of_a_block() {
        for len in 0..100 {
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = b'\n';
                if at + 1 < len {
                    bytes[len - 1] = b'\n';
                }
                assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_newline(&vec![b'x'; len]), None, "len {len}");
        }
    }

    proptest! {
        #[test]
        fn find_newline_matches_a_plain_search(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..200),
        ) {
            prop_assert_eq!(find_newline(&bytes), bytes.iter().position(|b| *b == b'\n'));
        }

        #[test]
        fn same_lines_however_the_input_is_cut(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..8),
            max in 1usize..50,
        ) {
            let mut points: Vec<usize> = cuts.into_iter().filter(|c| *c <= data.len()).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&data[last..p]);
                last = p;
            }
            chunks.push(&data[last..]);
            let (got, splitter) = split(&chunks, max);
            let (whole, _) = split(&[&data], max);
            prop_assert_eq!(&got, &whole);
            let mut expected = Vec::new();
            let mut end = 0u64;
            for piece in data.split(|b| *b == b'\n') {
                end += piece.len() as u64 + 1;
                expected.push((piece[..piece.len().min(max)].to_vec(), piece.len() > max, end));
            }
            expected.pop();
            prop_assert_eq!(got, expected);
            let tail = data.iter().rposition(|b| *b == b'\n').map_or(data.len(), |i| data.len() - i - 1);
            prop_assert_eq!(splitter.partial_bytes(), tail as u64);
        }
    }
}
