//! The languages the service runs, read from `languages.toml` (data, not code branches): how to
//! recognise a language, how to compile and run it, and its limits where they differ.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The table compiled into the binary.
const EMBEDDED_TABLE: &str = include_str!("../languages.toml");

/// The placeholders a command may use (see `languages.toml`).
const PLACEHOLDERS: [&str; 3] = ["{entry}", "{entry_stem}", "{sources}"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    pub name: String,
    pub display_name: String,
    pub extensions: Vec<String>,
    #[serde(default)]
    pub compile: Option<Vec<String>>,
    pub run: Vec<String>,
    pub version: Vec<String>,
    pub requires: Vec<String>,
    #[serde(default)]
    pub compile_time_limit_ms: Option<u64>,
    #[serde(default)]
    pub run_time_limit_ms: Option<u64>,
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    language: Vec<Language>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    #[error("the language table is not valid TOML of the expected shape: {0}")]
    Parse(String),
    #[error("language {0:?} appears twice")]
    DuplicateName(String),
    #[error("extension {extension:?} belongs to both {first:?} and {second:?}")]
    DuplicateExtension { extension: String, first: String, second: String },
    #[error("language {language:?}: {problem}")]
    Invalid { language: String, problem: String },
}

/// The files of one run, as the commands see them.
pub struct CommandContext<'a> {
    pub entry: &'a str,
    pub sources: &'a [String],
}

impl Language {
    /// Whether every binary the language needs is installed on this host.
    pub fn available(&self) -> bool {
        self.requires.iter().all(|binary| Path::new(binary).is_file())
    }

    pub fn compile_command(&self, context: &CommandContext<'_>) -> Option<Vec<String>> {
        self.compile.as_ref().map(|command| expand(command, context))
    }

    pub fn run_command(&self, context: &CommandContext<'_>) -> Vec<String> {
        expand(&self.run, context)
    }

    pub fn handles(&self, filename: &str) -> bool {
        extension_of(filename).is_some_and(|extension| self.extensions.contains(&extension))
    }

    fn validate(&self) -> Result<(), TableError> {
        let invalid = |problem: &str| TableError::Invalid { language: self.name.clone(), problem: problem.to_string() };
        if self.name.is_empty() || !self.name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit()) {
            return Err(invalid("the name must be lowercase letters and digits"));
        }
        if self.extensions.is_empty() {
            return Err(invalid("it has no file extensions"));
        }
        let commands = std::iter::once(&self.run).chain(self.compile.iter()).chain(std::iter::once(&self.version));
        for command in commands {
            let Some(program) = command.first() else { return Err(invalid("a command is empty")) };
            // The sandbox sees /usr and the work directory only.
            if !(program.starts_with("/usr/") || program.starts_with("./")) {
                return Err(invalid("commands start with a binary under /usr, or ./ for a compiled program"));
            }
            for argument in command {
                let mut rest = argument.as_str();
                while let Some(start) = rest.find('{') {
                    let placeholder = rest[start..].split_inclusive('}').next().unwrap_or_default();
                    if !PLACEHOLDERS.contains(&placeholder) {
                        return Err(invalid(&format!("unknown placeholder in {argument:?}")));
                    }
                    rest = &rest[start + placeholder.len()..];
                }
            }
        }
        if self.requires.iter().any(|binary| !binary.starts_with("/usr/")) {
            return Err(invalid("required binaries must be under /usr"));
        }
        Ok(())
    }
}

/// Every `{placeholder}` replaced; `{sources}` alone in an argument becomes one argument per file.
fn expand(command: &[String], context: &CommandContext<'_>) -> Vec<String> {
    // The entry's own name, without its folders: Java's class `Main` of `src/Main.java`.
    let name = context.entry.rsplit('/').next().unwrap_or(context.entry);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let mut expanded = Vec::with_capacity(command.len() + context.sources.len());
    for argument in command {
        if argument == "{sources}" {
            expanded.extend(context.sources.iter().cloned());
            continue;
        }
        expanded.push(argument.replace("{entry_stem}", stem).replace("{entry}", context.entry));
    }
    expanded
}

fn extension_of(filename: &str) -> Option<String> {
    let name = filename.rsplit('/').next().unwrap_or(filename);
    let (_, extension) = name.rsplit_once('.')?;
    (!extension.is_empty()).then(|| extension.to_ascii_lowercase())
}

/// The languages, checked once: unique names and extensions, known placeholders, binaries under /usr.
#[derive(Debug, Clone)]
pub struct LanguageTable {
    languages: Vec<Language>,
}

impl LanguageTable {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_TABLE).expect("the embedded languages.toml is checked by its unit test")
    }

    pub fn parse(text: &str) -> Result<Self, TableError> {
        let file: TableFile = toml::from_str(text).map_err(|error| TableError::Parse(error.to_string()))?;
        let mut names = HashSet::new();
        let mut owners: Vec<(String, String)> = Vec::new();
        for language in &file.language {
            language.validate()?;
            if !names.insert(language.name.clone()) {
                return Err(TableError::DuplicateName(language.name.clone()));
            }
            for extension in &language.extensions {
                if let Some((_, first)) = owners.iter().find(|(known, _)| known == extension) {
                    return Err(TableError::DuplicateExtension {
                        extension: extension.clone(),
                        first: first.clone(),
                        second: language.name.clone(),
                    });
                }
                owners.push((extension.clone(), language.name.clone()));
            }
        }
        Ok(Self { languages: file.language })
    }

    pub fn all(&self) -> &[Language] {
        &self.languages
    }

    pub fn by_name(&self, name: &str) -> Option<&Language> {
        self.languages.iter().find(|language| language.name == name)
    }

    /// The language of a file, by its extension.
    pub fn for_file(&self, filename: &str) -> Option<&Language> {
        self.languages.iter().find(|language| language.handles(filename))
    }
}

/// The first line a language's version command prints (some print to stderr, as `java -version`).
pub async fn probe_version(language: &Language) -> Option<String> {
    let (program, arguments) = language.version.split_first()?;
    let output = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new(program).args(arguments).env_clear().kill_on_drop(true).output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = if output.stdout.is_empty() { output.stderr } else { output.stdout };
    let first_line = String::from_utf8_lossy(&text).lines().next()?.trim().to_string();
    (!first_line.is_empty()).then(|| first_line.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_is_valid_and_has_the_required_languages() {
        let table = LanguageTable::embedded();
        for name in ["python", "javascript", "java", "cpp", "c"] {
            assert!(table.by_name(name).is_some(), "{name}");
        }
        assert_eq!(table.for_file("Main.java").map(|language| language.name.as_str()), Some("java"));
        assert_eq!(table.for_file("solve.CPP").map(|language| language.name.as_str()), Some("cpp"));
        assert_eq!(table.for_file("notes.txt").map(|language| language.name.as_str()), None);
        assert_eq!(table.for_file("Makefile").map(|language| language.name.as_str()), None);
    }

    #[test]
    fn commands_expand_their_placeholders() {
        let table = LanguageTable::embedded();
        let sources = vec!["Main.java".to_string(), "Util.java".to_string()];
        let context = CommandContext { entry: "Main.java", sources: &sources };
        let java = table.by_name("java").unwrap();
        let compile = java.compile_command(&context).unwrap();
        assert_eq!(&compile[compile.len() - 2..], ["Main.java", "Util.java"]);
        assert_eq!(java.run_command(&context).last().map(String::as_str), Some("Main"));
        let python = table.by_name("python").unwrap();
        let context = CommandContext { entry: "main.py", sources: &[] };
        assert_eq!(python.run_command(&context), ["/usr/bin/python3", "-E", "-s", "-B", "main.py"]);
        assert!(python.compile_command(&context).is_none());
    }

    #[test]
    fn a_bad_table_is_refused_with_a_reason() {
        let language = |name: &str, extension: &str, run: &str| {
            format!(
                "[[language]]\nname = \"{name}\"\ndisplay_name = \"x\"\nextensions = [\"{extension}\"]\nrun = [{run}]\n\
                 version = [\"/usr/bin/x\"]\nrequires = [\"/usr/bin/x\"]\n"
            )
        };
        let ok_run = "\"/usr/bin/x\", \"{entry}\"";
        let twice = language("a", "a", ok_run) + &language("a", "b", ok_run);
        assert_eq!(LanguageTable::parse(&twice).unwrap_err(), TableError::DuplicateName("a".into()));
        let shared = language("a", "x", ok_run) + &language("b", "x", ok_run);
        assert!(matches!(LanguageTable::parse(&shared), Err(TableError::DuplicateExtension { .. })));
        let outside = language("a", "a", "\"/root/bin/x\"");
        assert!(matches!(LanguageTable::parse(&outside), Err(TableError::Invalid { .. })));
        let unknown = language("a", "a", "\"/usr/bin/x\", \"{secret}\"");
        assert!(matches!(LanguageTable::parse(&unknown), Err(TableError::Invalid { .. })));
        assert!(matches!(LanguageTable::parse("[[language]]\nname = 1"), Err(TableError::Parse(_))));
    }

    #[tokio::test]
    async fn installed_languages_report_a_version() {
        let table = LanguageTable::embedded();
        let bash = table.by_name("bash").unwrap();
        assert!(bash.available(), "bash is on every Debian host");
        assert!(probe_version(bash).await.is_some_and(|version| version.contains("bash")));
    }
}
