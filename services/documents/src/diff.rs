//! The smallest single replacement that turns one text into another, in the
//! UTF-16 units that Yjs and Monaco count: everything outside the changed
//! middle is left alone, so concurrent edits there survive.

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
    use super::minimal_replacement;

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
}
