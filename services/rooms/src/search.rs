//! Search across a room's files: the live text of each (from the documents service), line by
//! line, bounded in time and in matches.

use std::time::Duration;

use codesync_common::grpc::CallContext;
use codesync_common::identity::Caller;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::documents::v1::GetDocumentRequest;
use codesync_proto::rooms::v1 as pb;
use futures::StreamExt;

use crate::RoomsGrpcService;

use codesync_common::limits::{
    SEARCH_DEFAULT_RESULTS as DEFAULT_RESULTS, SEARCH_MAX_RESULTS as MAX_RESULTS,
    SEARCH_QUERY_MAX_CHARS as QUERY_MAX_CHARS,
};
/// A search answers what it found by then, marked truncated.
pub const SEARCH_TIME: Duration = Duration::from_secs(5);
/// Documents fetched at once.
const FETCH_CONCURRENCY: usize = 4;
const LINE_TEXT_MAX_CHARS: usize = 400;
/// What a compiled pattern may grow to: a hostile pattern is refused, not run.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// What to look for, compiled once.
#[derive(Debug)]
pub struct Matcher {
    regex: regex::Regex,
}

impl Matcher {
    pub fn new(request: &pb::SearchFilesRequest) -> ServiceResult<Self> {
        let invalid = |message: String| ServiceError::invalid(ErrorCode::InvalidQuery, message);
        if request.query.is_empty() {
            return Err(invalid("the query must not be empty".into()));
        }
        if request.query.chars().count() > QUERY_MAX_CHARS {
            return Err(invalid(format!("the query may be at most {QUERY_MAX_CHARS} characters")));
        }
        let pattern = if request.regex { request.query.clone() } else { regex::escape(&request.query) };
        let pattern = if request.whole_word { format!(r"\b(?:{pattern})\b") } else { pattern };
        let regex = regex::RegexBuilder::new(&pattern)
            .case_insensitive(!request.case_sensitive)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|error| invalid(format!("the query is not a valid regular expression: {error}")))?;
        // A pattern that can match empty text finds nothing worth showing there, and its empty
        // matches cost a scan of the rest of the line each: quadratic in a long line. Judged on
        // the pattern's shortest match, not on matching "": `(?:a*c)?\b` never matches "" yet
        // yields empty matches only.
        let shortest = regex_syntax::ParserBuilder::new()
            .case_insensitive(!request.case_sensitive)
            .build()
            .parse(&pattern)
            .map(|hir| hir.properties().minimum_len());
        if !matches!(shortest, Ok(Some(length)) if length > 0) {
            return Err(invalid("the query matches empty text; it must match at least one character".into()));
        }
        Ok(Self { regex })
    }

    /// The matches in `text`, at most `limit` of them, found before `deadline` (else the second
    /// value is true); empty matches are not matches. CPU-bound: call it off the async workers.
    pub fn find(
        &self,
        file: &pb::File,
        text: &str,
        limit: usize,
        deadline: std::time::Instant,
    ) -> (Vec<pb::SearchMatch>, bool) {
        let mut found = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if std::time::Instant::now() >= deadline {
                return (found, true);
            }
            for hit in self.regex.find_iter(line) {
                // Each search of a long line may scan the rest of it: the budget is checked per hit.
                if std::time::Instant::now() >= deadline {
                    return (found, true);
                }
                if hit.is_empty() {
                    continue;
                }
                if found.len() == limit {
                    return (found, false);
                }
                found.push(pb::SearchMatch {
                    file_id: file.id.clone(),
                    filename: file.filename.clone(),
                    line: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    column: utf16_len(&line[..hit.start()]) + 1,
                    length: utf16_len(hit.as_str()),
                    text: excerpt(line, hit.start()),
                });
            }
        }
        (found, false)
    }
}

fn utf16_len(text: &str) -> u32 {
    u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX)
}

/// The line, or 400 characters of it starting a little before the match.
fn excerpt(line: &str, match_start: usize) -> String {
    if line.chars().count() <= LINE_TEXT_MAX_CHARS {
        return line.to_string();
    }
    let before = line[..match_start].chars().count();
    line.chars().skip(before.saturating_sub(LINE_TEXT_MAX_CHARS / 4)).take(LINE_TEXT_MAX_CHARS).collect()
}

impl RoomsGrpcService {
    pub(crate) async fn search_files(
        &self,
        caller: Option<Caller>,
        context: &CallContext,
        request: pb::SearchFilesRequest,
    ) -> ServiceResult<pb::SearchFilesResponse> {
        // A turn first, before even the room is read: a flood of refused searches costs next to
        // nothing. Then the pattern, compiled (a large Unicode automaton can take a while) on the
        // CPU pool like the matching.
        let _turn = self.expensive_turn(caller.as_ref(), context).await?;
        let access = self.room_access(&request.room_id, caller.as_ref()).await?;
        let compiling = request.clone();
        let matcher =
            codesync_common::budget::off_the_workers("compiling a search", move || Matcher::new(&compiling)).await??;
        let matcher = std::sync::Arc::new(matcher);
        let limit = match request.max_results {
            0 => DEFAULT_RESULTS,
            wanted => wanted.min(MAX_RESULTS),
        } as usize;
        let files = self.store.list_files(&access.room().id).await?;
        let deadline = tokio::time::Instant::now() + SEARCH_TIME;
        let match_deadline = deadline.into_std();
        let documents = self.documents.clone();
        let mut texts = futures::stream::iter(files)
            .map(|file| {
                let mut documents = documents.clone();
                let fetch = context.request(GetDocumentRequest { file_id: file.id.clone(), include_state: false });
                async move {
                    let text = documents.get_document(fetch).await.map(|answer| answer.into_inner().text);
                    (file, text)
                }
            })
            .buffered(FETCH_CONCURRENCY);
        let mut answer = pb::SearchFilesResponse::default();
        loop {
            let next = match tokio::time::timeout_at(deadline, texts.next()).await {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(_) => {
                    answer.truncated = true;
                    break;
                }
            };
            let (file, text) = next;
            let text = match text {
                Ok(text) => text,
                // Deleted since it was listed: nothing to search.
                Err(status) if status.code() == tonic::Code::NotFound => continue,
                Err(status) => return Err(ServiceError::from_peer("documents", status)),
            };
            let file = crate::messages::file_message(file);
            answer.files_searched += 1;
            let room_left = limit - answer.matches.len();
            // One more than fits tells whether the answer is cut.
            let matcher = matcher.clone();
            let (mut found, out_of_time) = codesync_common::budget::off_the_workers("a search", move || {
                matcher.find(&file, &text, room_left + 1, match_deadline)
            })
            .await?;
            if out_of_time {
                found.truncate(room_left);
                answer.matches.extend(found);
                answer.truncated = true;
                break;
            }
            if found.len() > room_left {
                found.truncate(room_left);
                answer.matches.extend(found);
                answer.truncated = true;
                break;
            }
            answer.matches.extend(found);
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> pb::SearchFilesRequest {
        pb::SearchFilesRequest { query: query.into(), ..Default::default() }
    }

    fn file() -> pb::File {
        pb::File { id: "f".into(), filename: "src/main.py".into(), ..Default::default() }
    }

    fn hits(matcher: Matcher, text: &str, limit: usize) -> Vec<pb::SearchMatch> {
        let (found, out_of_time) = matcher.find(&file(), text, limit, far());
        assert!(!out_of_time);
        found
    }

    fn far() -> std::time::Instant {
        std::time::Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn plain_text_is_literal_and_case_insensitive_unless_asked() {
        let text = "def main():\n    print('a.b')\r\n    MAIN = 1\n";
        let found = hits(Matcher::new(&request("main")).unwrap(), text, 10);
        assert_eq!(found.iter().map(|m| (m.line, m.column, m.length)).collect::<Vec<_>>(), [(1, 5, 4), (3, 5, 4)]);
        assert_eq!(found[1].text, "    MAIN = 1");
        let exact = pb::SearchFilesRequest { case_sensitive: true, ..request("main") };
        assert_eq!(hits(Matcher::new(&exact).unwrap(), text, 10).len(), 1);
        // A dot is a dot in plain text.
        assert_eq!(hits(Matcher::new(&request("a.b")).unwrap(), "axb a.b", 10)[0].column, 5);
    }

    #[test]
    fn regular_expressions_whole_words_and_limits() {
        let regex = pb::SearchFilesRequest { regex: true, ..request(r"print\(\w+\)") };
        assert_eq!(hits(Matcher::new(&regex).unwrap(), "print(x) print(yy)", 10).len(), 2);
        let word = pb::SearchFilesRequest { whole_word: true, ..request("id") };
        let found = hits(Matcher::new(&word).unwrap(), "id idx user_id (id)", 10);
        assert_eq!(found.iter().map(|m| m.column).collect::<Vec<_>>(), [1, 17]);
        assert_eq!(hits(Matcher::new(&request("x")).unwrap(), &"x".repeat(50), 7).len(), 7);
        // A pattern that can match empty text is refused, even one that never matches "" itself.
        for empty in ["z*", "(?:a*c)?", "^", "x|", r"(?:a*c)?\b", r"\bz*"] {
            let empty = pb::SearchFilesRequest { regex: true, ..request(empty) };
            assert_eq!(Matcher::new(&empty).unwrap_err().code(), ErrorCode::InvalidQuery);
        }
        let whole_word_of_optional = pb::SearchFilesRequest { regex: true, whole_word: true, ..request("(?:a*c)?") };
        assert_eq!(Matcher::new(&whole_word_of_optional).unwrap_err().code(), ErrorCode::InvalidQuery);
        assert!(Matcher::new(&pb::SearchFilesRequest { regex: true, ..request(r"\bz+") }).is_ok());
    }

    #[test]
    fn columns_count_utf16_units_and_long_lines_are_cut() {
        let found = hits(Matcher::new(&request("x")).unwrap(), "é😀x", 10);
        assert_eq!(found[0].column, 4);
        let line = format!("{}needle{}", "a".repeat(1000), "b".repeat(1000));
        let found = hits(Matcher::new(&request("needle")).unwrap(), &line, 10);
        assert_eq!(found[0].text.chars().count(), LINE_TEXT_MAX_CHARS);
        assert!(found[0].text.contains("needle"));
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        for bad in [request(""), request(&"x".repeat(QUERY_MAX_CHARS + 1))] {
            assert_eq!(Matcher::new(&bad).unwrap_err().code(), ErrorCode::InvalidQuery);
        }
        let unbalanced = pb::SearchFilesRequest { regex: true, ..request("(a") };
        assert_eq!(Matcher::new(&unbalanced).unwrap_err().code(), ErrorCode::InvalidQuery);
        let huge = pb::SearchFilesRequest { regex: true, ..request(r"\w{1000}\w{1000}\w{1000}") };
        assert_eq!(Matcher::new(&huge).unwrap_err().code(), ErrorCode::InvalidQuery);
    }

    #[test]
    fn a_search_stops_at_its_deadline_even_inside_one_long_line() {
        // Each search of this line scans to its end for a `c` that never comes.
        let matcher = Matcher::new(&pb::SearchFilesRequest { regex: true, ..request("a|a*c") }).unwrap();
        let line = "a".repeat(1 << 20);
        let (found, out_of_time) = matcher.find(&file(), &line, usize::MAX, std::time::Instant::now());
        assert!(out_of_time);
        assert!(found.is_empty());
    }
}
