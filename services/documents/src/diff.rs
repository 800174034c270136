//! The edits that turn one text into another, in the UTF-16 units that Yjs and Monaco count:
//! the lines a line diff finds changed, each cut down to the characters that differ, so that
//! everything else is left alone and concurrent edits there survive (a restore of an old
//! version, an assistant's answer replacing a selection).

use similar::{DiffOp, TextDiff};

/// A line diff that takes longer than this settles for a coarser one.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(200);

/// One replacement: remove `removed` UTF-16 units at `start` (of the text before any edit of
/// the list is applied) and insert `inserted` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: u32,
    pub removed: u32,
    pub inserted: String,
}

/// The edits from `current` to `target`, in ascending order and not overlapping: apply them from
/// the last to the first, so that each one's `start` still holds.
pub fn minimal_edits(current: &str, target: &str) -> Vec<Edit> {
    let diff = TextDiff::configure().deadline(std::time::Instant::now() + DIFF_DEADLINE).diff_lines(current, target);
    let old_lines = diff.old_slices();
    let new_lines = diff.new_slices();
    // Byte ranges of the changed hunks: (old start, old end, new start, new end).
    let mut hunks: Vec<(usize, usize, usize, usize)> = Vec::new();
    let (mut old_offset, mut new_offset) = (0_usize, 0_usize);
    for op in diff.ops() {
        let (old_range, new_range) = (op.old_range(), op.new_range());
        let old_length: usize = old_lines[old_range].iter().map(|line| line.len()).sum();
        let new_length: usize = new_lines[new_range].iter().map(|line| line.len()).sum();
        if !matches!(op, DiffOp::Equal { .. }) {
            match hunks.last_mut() {
                Some(last) if last.1 == old_offset && last.3 == new_offset => {
                    last.1 += old_length;
                    last.3 += new_length;
                }
                _ => hunks.push((old_offset, old_offset + old_length, new_offset, new_offset + new_length)),
            }
        }
        old_offset += old_length;
        new_offset += new_length;
    }
    let mut edits = Vec::with_capacity(hunks.len());
    // UTF-16 offsets are counted as the hunks go, never from the start again.
    let (mut counted_bytes, mut counted_units) = (0_usize, 0_u32);
    for (old_start, old_end, new_start, new_end) in hunks {
        let (start_in_hunk, removed, inserted) =
            minimal_replacement(&current[old_start..old_end], &target[new_start..new_end]);
        if removed == 0 && inserted.is_empty() {
            continue;
        }
        counted_units += utf16_len(&current[counted_bytes..old_start]);
        counted_bytes = old_start;
        edits.push(Edit { start: counted_units + start_in_hunk, removed, inserted: inserted.to_string() });
    }
    edits
}

/// `(start, removed, inserted)`: remove `removed` UTF-16 units at `start` of
/// `current` and insert `inserted` there to obtain `target`.
pub fn minimal_replacement<'a>(current: &str, target: &'a str) -> (u32, u32, &'a str) {
    let prefix_bytes = current
        .char_indices()
        .zip(target.chars())
        .find(|((_, current_char), target_char)| current_char != target_char)
        .map_or_else(|| current.len().min(target.len()), |((index, _), _)| index);
    // The prefix ends on a char boundary of both texts: they agree up to it.
    let current_rest = &current[prefix_bytes..];
    let target_rest = &target[prefix_bytes..];
    let suffix_bytes = current_rest
        .chars()
        .rev()
        .zip(target_rest.chars().rev())
        .take_while(|(current_char, target_char)| current_char == target_char)
        .map(|(current_char, _)| current_char.len_utf8())
        .sum::<usize>();
    let removed = &current_rest[..current_rest.len() - suffix_bytes];
    let inserted = &target_rest[..target_rest.len() - suffix_bytes];
    (utf16_len(&current[..prefix_bytes]), utf16_len(removed), inserted)
}

fn utf16_len(text: &str) -> u32 {
    u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::{minimal_edits, minimal_replacement};

    fn apply(current: &str, start: u32, removed: u32, inserted: &str) -> String {
        let units: Vec<u16> = current.encode_utf16().collect();
        let (start, removed) = (start as usize, removed as usize);
        let mut result: Vec<u16> = units[..start].to_vec();
        result.extend(inserted.encode_utf16());
        result.extend(&units[start + removed..]);
        String::from_utf16(&result).unwrap()
    }

    #[test]
    fn replacements_are_minimal_and_correct() {
        let cases = [
            ("hello world", "hello brave world", (6, 0, "brave ")),
            ("abc", "abc", (3, 0, "")),
            ("", "new", (0, 0, "new")),
            ("old", "", (0, 3, "")),
            ("aaa", "aa", (2, 1, "")),
            ("x😀y", "x😃y", (1, 2, "😃")),
            ("é🎉z", "é🎉", (3, 1, "")),
        ];
        for (current, target, expected) in cases {
            let (start, removed, inserted) = minimal_replacement(current, target);
            assert_eq!((start, removed, inserted), expected, "{current:?} -> {target:?}");
            assert_eq!(apply(current, start, removed, inserted), target);
        }
    }

    #[test]
    fn edits_touch_only_the_lines_that_differ() {
        let current = "one\ntwo\nthree\nfour\nfive\n";
        let target = "one\nTWO\nthree\nfour\nfive!\n";
        let edits = minimal_edits(current, target);
        assert_eq!(edits.len(), 2, "{edits:?}");
        assert_eq!((edits[0].start, edits[0].removed, edits[0].inserted.as_str()), (4, 3, "TWO"));
        assert_eq!((edits[1].start, edits[1].removed, edits[1].inserted.as_str()), (23, 0, "!"));
        let cases = [
            ("", "a\nb\n"),
            ("a\nb\n", ""),
            ("😀 one\ntwo\n", "😀 one\n2\nthree 🎉\n"),
            ("x\ny\nz", "x\nz\ny"),
            ("same", "same"),
        ];
        for (current, target) in cases {
            let mut text = current.to_string();
            for edit in minimal_edits(current, target).iter().rev() {
                text = apply(&text, edit.start, edit.removed, &edit.inserted);
            }
            assert_eq!(text, target, "{current:?} -> {target:?}");
        }
    }
}
