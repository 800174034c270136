//! The eight modes' instructions, and the context each request carries: the file's name and
//! language, its content (a window around the cursor when the file is long), the selection,
//! the cursor, and the user's prompt. `complete` sends the text before and after the cursor.

use codesync_proto::assistant::v1::Mode;

use crate::provider::Prompt;

/// Characters of a file sent at most; longer files are cut to a window around the cursor.
pub const MAX_CONTEXT_CHARS: usize = 24_000;
/// Earlier turns sent at most, and their characters together.
const MAX_HISTORY_TURNS: usize = 12;
const MAX_HISTORY_CHARS: usize = 16_000;
/// `complete`: characters before and after the cursor.
const COMPLETE_BEFORE_CHARS: usize = 6_000;
const COMPLETE_AFTER_CHARS: usize = 2_000;
/// Where the cursor is, in the code shown to the model.
const CURSOR_MARK: &str = "<|cursor|>";

/// A position as the editor gives it: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Context {
    pub filename: String,
    pub language: String,
    pub content: String,
    pub selection: Option<(Position, Position)>,
    pub cursor: Option<Position>,
    pub prompt: String,
    /// Earlier turns, oldest first: (from the assistant, text).
    pub history: Vec<(bool, String)>,
}

/// The latest turns that fit, oldest first, starting with one of the user's (providers want
/// the conversation to open with the user).
fn recent_history(history: &[(bool, String)]) -> Vec<(bool, String)> {
    let mut kept = Vec::new();
    let mut size = 0;
    for turn in history.iter().rev().take(MAX_HISTORY_TURNS) {
        size += turn.1.chars().count();
        if size > MAX_HISTORY_CHARS {
            break;
        }
        kept.push(turn.clone());
    }
    kept.reverse();
    while kept.first().is_some_and(|(from_assistant, _)| *from_assistant) {
        kept.remove(0);
    }
    kept
}

fn instructions(mode: Mode, language: &str) -> String {
    let language = if language.is_empty() { "the file's language" } else { language };
    let task = match mode {
        Mode::Generate => format!(
            "Write the code the user asks for, in {language}, fitting the file it goes into. Answer with one fenced code block, then at most two sentences."
        ),
        Mode::Chat => "Answer the user's question about the file. Be concise; quote code in fenced blocks.".to_string(),
        Mode::Review => "Review the code (the selection if there is one) for bugs, security problems and unclear parts. List each finding with its line number, why it matters, and the fix.".to_string(),
        Mode::Debug => "Find the cause of the problem the user describes. Explain the cause in a few sentences, then give the corrected code in one fenced block.".to_string(),
        Mode::Explain => "Explain what the code (the selection if there is one) does, step by step, for a developer who has not seen it.".to_string(),
        Mode::Refactor => "Refactor the selection (or the file) for clarity without changing what it does. Answer with the new code in one fenced block, then a short list of the changes.".to_string(),
        Mode::Docs => format!(
            "Write documentation comments for the selection (or the file), in the idiomatic style of {language}. Answer with the documented code in one fenced block."
        ),
        Mode::Complete => format!(
            "Continue the code at {CURSOR_MARK}. Answer with only the text to insert there: no fences, no explanation, nothing that is already before or after the cursor."
        ),
        Mode::Unspecified => String::new(),
    };
    format!("You are the coding assistant of CodeSync, a collaborative code editor. Mode: {}. {task}", mode.api_name())
}

/// The character index of a 1-based position in `text` (clamped to the text).
fn char_index(text: &str, position: Position) -> usize {
    let mut line = 1;
    let mut index = 0;
    for (offset, character) in text.chars().enumerate() {
        if line == position.line {
            let column = usize::try_from(position.column.max(1) - 1).unwrap_or(0);
            let line_length = text.chars().skip(offset).take_while(|character| *character != '\n').count();
            return offset + column.min(line_length);
        }
        if character == '\n' {
            line += 1;
        }
        index = offset + 1;
    }
    index
}

/// At most `limit` characters of `content` around `center` (a character index), with a note
/// of what was left out on each side.
fn window(content: &str, center: usize, limit: usize) -> String {
    let total = content.chars().count();
    if total <= limit {
        return content.to_string();
    }
    let start = center.saturating_sub(limit / 2).min(total - limit);
    let shown: String = content.chars().skip(start).take(limit).collect();
    let mut text = String::new();
    if start > 0 {
        text.push_str(&format!("[{start} characters above not shown]\n"));
    }
    text.push_str(&shown);
    if start + limit < total {
        text.push_str(&format!("\n[{} characters below not shown]", total - start - limit));
    }
    text
}

pub fn build(mode: Mode, context: &Context, max_tokens: u32) -> Prompt {
    let system = instructions(mode, &context.language);
    let fence = if context.language.is_empty() { String::new() } else { context.language.clone() };
    let name = if context.filename.is_empty() { "(unsaved snippet)".to_string() } else { context.filename.clone() };
    let cursor = context.cursor.map(|position| char_index(&context.content, position));
    let mut user =
        format!("File: {name} ({})\n", if context.language.is_empty() { "plain text" } else { &context.language });

    if mode == Mode::Complete {
        let at = cursor.unwrap_or_else(|| context.content.chars().count());
        let before: String = context.content.chars().take(at).collect();
        let after: String = context.content.chars().skip(at).collect();
        let before: String =
            before.chars().rev().take(COMPLETE_BEFORE_CHARS).collect::<Vec<_>>().into_iter().rev().collect();
        let after: String = after.chars().take(COMPLETE_AFTER_CHARS).collect();
        user.push_str(&format!("\n```{fence}\n{before}{CURSOR_MARK}{after}\n```\n"));
        if !context.prompt.is_empty() {
            user.push_str(&format!("\nHint: {}\n", context.prompt));
        }
        return Prompt { system, history: Vec::new(), user, max_tokens };
    }

    if !context.content.is_empty() {
        // The cursor is marked where there is one; the window follows the selection, else the cursor.
        let with_mark = match cursor {
            Some(at) => {
                let before: String = context.content.chars().take(at).collect();
                let after: String = context.content.chars().skip(at).collect();
                format!("{before}{CURSOR_MARK}{after}")
            }
            None => context.content.clone(),
        };
        let center = context.selection.map(|(start, _)| char_index(&context.content, start)).or(cursor).unwrap_or(0);
        user.push_str(&format!("\n```{fence}\n{}\n```\n", window(&with_mark, center, MAX_CONTEXT_CHARS)));
    }
    if let Some((start, end)) = context.selection {
        let from = char_index(&context.content, start);
        let to = char_index(&context.content, end).max(from);
        let selected: String = context.content.chars().skip(from).take(to - from).collect();
        if !selected.is_empty() {
            user.push_str(&format!(
                "\nSelected (lines {} to {}):\n```{fence}\n{}\n```\n",
                start.line,
                end.line,
                window(&selected, 0, MAX_CONTEXT_CHARS / 2)
            ));
        }
    }
    if !context.prompt.is_empty() {
        user.push_str(&format!("\nRequest: {}\n", context.prompt));
    }
    Prompt { system, history: recent_history(&context.history), user, max_tokens }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context {
            filename: "main.py".into(),
            language: "python".into(),
            content: "def add(a, b):\n    return a - b\n\nprint(add(1, 2))\n".into(),
            selection: Some((Position { line: 1, column: 1 }, Position { line: 2, column: 17 })),
            cursor: Some(Position { line: 2, column: 12 }),
            prompt: "why does this print -1?".into(),
            history: Vec::new(),
        }
    }

    #[test]
    fn every_mode_has_its_own_instructions_and_the_context() {
        let modes = [
            Mode::Generate,
            Mode::Chat,
            Mode::Review,
            Mode::Debug,
            Mode::Explain,
            Mode::Refactor,
            Mode::Complete,
            Mode::Docs,
        ];
        let systems: std::collections::HashSet<String> =
            modes.iter().map(|mode| build(*mode, &context(), 100).system).collect();
        assert_eq!(systems.len(), 8);
        let debug = build(Mode::Debug, &context(), 100);
        assert!(debug.system.contains("Mode: debug"));
        assert!(debug.user.contains("File: main.py (python)"));
        assert!(debug.user.contains("    return <|cursor|>a - b"), "{}", debug.user);
        assert!(
            debug.user.contains("Selected (lines 1 to 2):\n```python\ndef add(a, b):\n    return a - b\n```"),
            "{}",
            debug.user
        );
        assert!(debug.user.contains("Request: why does this print -1?"));
    }

    #[test]
    fn the_latest_turns_that_fit_are_sent_opening_with_the_user() {
        let history: Vec<(bool, String)> = (0..30).map(|index| (index % 2 == 1, format!("turn {index}"))).collect();
        let prompt = build(Mode::Chat, &Context { history, ..context() }, 100);
        assert_eq!(prompt.history.len(), 12);
        assert_eq!(prompt.history[0], (false, "turn 18".to_string()));
        assert_eq!(prompt.history[11], (true, "turn 29".to_string()));
        let long = vec![(false, "x".repeat(10_000)), (true, "y".repeat(10_000)), (false, "last question".into())];
        let prompt = build(Mode::Chat, &Context { history: long, ..context() }, 100);
        assert_eq!(prompt.history, [(false, "last question".to_string())], "an assistant turn never opens it");
    }

    #[test]
    fn complete_sends_the_text_around_the_cursor() {
        let prompt = build(Mode::Complete, &Context { cursor: Some(Position { line: 4, column: 7 }), ..context() }, 64);
        assert!(prompt.user.contains("print(<|cursor|>add(1, 2))"), "{}", prompt.user);
        assert!(!prompt.user.contains("Request:"));
    }

    #[test]
    fn long_files_are_cut_around_the_cursor() {
        let content: String = (0..10_000).map(|line| format!("line {line}\n")).collect();
        let context =
            Context { content, cursor: Some(Position { line: 5_000, column: 1 }), selection: None, ..context() };
        let prompt = build(Mode::Explain, &context, 100);
        assert!(prompt.user.contains("<|cursor|>line 4999"));
        assert!(
            prompt.user.contains("characters above not shown") && prompt.user.contains("characters below not shown")
        );
        assert!(prompt.user.chars().count() < MAX_CONTEXT_CHARS + 1_000);
        // Positions past the end are clamped, not a panic.
        let far = Context { cursor: Some(Position { line: 99_999, column: 500 }), ..context };
        assert!(build(Mode::Complete, &far, 10).user.contains("<|cursor|>"));
    }
}
