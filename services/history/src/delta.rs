//! How a version's content is stored: most versions as a delta against the version before
//! (the lines kept are copied, the rest inserted), every few versions in full, so that reading
//! any version replays a short chain. The same line diff gives the lines added and removed.

use similar::{DiffOp, TextDiff};

/// Every this many versions (1, 33, 65, ...) the content is stored in full.
pub const FULL_EVERY: i64 = 32;

/// A line diff that takes longer than this falls back to a coarser one (similar's deadline).
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

const COPY: u8 = 0;
const INSERT: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeltaError {
    #[error("a stored delta is damaged: {0}")]
    Damaged(&'static str),
}

/// What changed from one content to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub lines_added: i64,
    pub lines_removed: i64,
    /// Turns the previous content into the next one with [`apply`].
    pub delta: Vec<u8>,
}

/// The line diff from `previous` to `next`, as counts and a delta.
pub fn change(previous: &str, next: &str) -> Change {
    let diff = TextDiff::configure().deadline(std::time::Instant::now() + DIFF_DEADLINE).diff_lines(previous, next);
    let old_offsets = line_offsets(diff.old_slices());
    let new_slices = diff.new_slices();
    let mut delta = Vec::new();
    let (mut lines_added, mut lines_removed) = (0_i64, 0_i64);
    // Adjacent copies (an Equal op split by the diff) become one.
    let mut pending_copy: Option<(usize, usize)> = None;
    for op in diff.ops() {
        match *op {
            DiffOp::Equal { old_index, len, .. } => {
                let start = old_offsets[old_index];
                let length = old_offsets[old_index + len] - start;
                match &mut pending_copy {
                    Some((copy_start, copy_length)) if *copy_start + *copy_length == start => *copy_length += length,
                    _ => {
                        flush_copy(&mut delta, &mut pending_copy);
                        pending_copy = Some((start, length));
                    }
                }
            }
            DiffOp::Delete { old_len, .. } => lines_removed += old_len as i64,
            DiffOp::Insert { new_index, new_len, .. } => {
                flush_copy(&mut delta, &mut pending_copy);
                lines_added += new_len as i64;
                insert(&mut delta, &new_slices[new_index..new_index + new_len]);
            }
            DiffOp::Replace { old_len, new_index, new_len, .. } => {
                flush_copy(&mut delta, &mut pending_copy);
                lines_removed += old_len as i64;
                lines_added += new_len as i64;
                insert(&mut delta, &new_slices[new_index..new_index + new_len]);
            }
        }
    }
    flush_copy(&mut delta, &mut pending_copy);
    Change { lines_added, lines_removed, delta }
}

fn flush_copy(delta: &mut Vec<u8>, pending: &mut Option<(usize, usize)>) {
    if let Some((start, length)) = pending.take() {
        delta.push(COPY);
        put_varint(delta, start as u64);
        put_varint(delta, length as u64);
    }
}

fn insert(delta: &mut Vec<u8>, lines: &[&str]) {
    let length: usize = lines.iter().map(|line| line.len()).sum();
    delta.push(INSERT);
    put_varint(delta, length as u64);
    for line in lines {
        delta.extend_from_slice(line.as_bytes());
    }
}

/// Byte offsets of each line's start, and of the end.
fn line_offsets(lines: &[&str]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(lines.len() + 1);
    let mut offset = 0;
    offsets.push(0);
    for line in lines {
        offset += line.len();
        offsets.push(offset);
    }
    offsets
}

/// The content a delta makes of `previous`.
pub fn apply(previous: &str, delta: &[u8]) -> Result<String, DeltaError> {
    let previous = previous.as_bytes();
    let mut next = Vec::with_capacity(previous.len());
    let mut cursor = delta;
    while let Some((&tag, rest)) = cursor.split_first() {
        cursor = rest;
        match tag {
            COPY => {
                let start = take_varint(&mut cursor)? as usize;
                let length = take_varint(&mut cursor)? as usize;
                let end = start.checked_add(length).ok_or(DeltaError::Damaged("a copy past the end"))?;
                let copied = previous.get(start..end).ok_or(DeltaError::Damaged("a copy past the end"))?;
                next.extend_from_slice(copied);
            }
            INSERT => {
                let length = take_varint(&mut cursor)? as usize;
                if length > cursor.len() {
                    return Err(DeltaError::Damaged("an insertion past the end"));
                }
                let (inserted, rest) = cursor.split_at(length);
                next.extend_from_slice(inserted);
                cursor = rest;
            }
            _ => return Err(DeltaError::Damaged("an unknown operation")),
        }
    }
    String::from_utf8(next).map_err(|_| DeltaError::Damaged("not UTF-8"))
}

fn put_varint(buffer: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buffer.push(byte);
            return;
        }
        buffer.push(byte | 0x80);
    }
}

fn take_varint(cursor: &mut &[u8]) -> Result<u64, DeltaError> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = cursor.split_first().ok_or(DeltaError::Damaged("a number cut short"))?;
        *cursor = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DeltaError::Damaged("a number too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_rebuild_the_next_content_and_count_lines() {
        let cases = [
            ("", "one\ntwo\n"),
            ("one\ntwo\n", ""),
            ("one\ntwo\nthree\n", "one\n2\nthree\nfour"),
            ("a\nb\nc\nd\ne\n", "a\nc\nd\nx\ne\n"),
            ("no newline", "no newline at all"),
            ("héllo ✓\nwörld\n", "héllo ✓\nwörld\n🦀\n"),
        ];
        for (previous, next) in cases {
            let change = change(previous, next);
            assert_eq!(apply(previous, &change.delta).unwrap(), next, "{previous:?} -> {next:?}");
        }
        let counted = change("one\ntwo\nthree\n", "one\n2\nthree\nfour\n");
        assert_eq!((counted.lines_added, counted.lines_removed), (2, 1));
        let unchanged = change("same\n", "same\n");
        assert_eq!((unchanged.lines_added, unchanged.lines_removed), (0, 0));
    }

    #[test]
    fn a_small_edit_to_a_large_text_is_a_small_delta() {
        let previous: String = (0..5000).map(|line| format!("line number {line}\n")).collect();
        let next = previous.replace("line number 2500\n", "line number 2500, edited\n");
        let change = change(&previous, &next);
        assert!(change.delta.len() < 64, "{} bytes", change.delta.len());
        assert_eq!(apply(&previous, &change.delta).unwrap(), next);
    }

    #[test]
    fn damaged_deltas_are_refused_not_trusted() {
        assert!(apply("abc", &[COPY, 1, 10]).is_err(), "past the end");
        assert!(apply("abc", &[INSERT, 5, b'x']).is_err());
        assert!(apply("abc", &[7]).is_err());
        assert!(apply("abc", &[COPY, 0x80]).is_err());
        assert!(apply("é", &[COPY, 0, 1]).is_err(), "half a character");
    }
}
