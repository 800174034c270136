//! The language of a file, from its name: what the editor highlights and what
//! the execution service runs it as.

/// The language name for `filename`, `plaintext` when unknown.
pub fn language_for_filename(path: &str) -> &'static str {
    let lowercase = codesync_common::paths::base_name(path).to_lowercase();
    match lowercase.as_str() {
        "makefile" | "gnumakefile" => return "makefile",
        "dockerfile" | "containerfile" => return "dockerfile",
        "cmakelists.txt" => return "cmake",
        _ => {}
    }
    let Some((stem, extension)) = lowercase.rsplit_once('.') else {
        return "plaintext";
    };
    if stem.is_empty() {
        // A dotfile such as `.gitignore` has no extension.
        return "plaintext";
    }
    match extension {
        "py" | "pyw" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "mts" | "cts" | "tsx" => "typescript",
        "java" => "java",
        "cpp" | "cc" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" => "cpp",
        "c" | "h" => "c",
        "rs" => "rust",
        "go" => "go",
        "rb" => "ruby",
        "php" => "php",
        "cs" => "csharp",
        "kt" | "kts" => "kotlin",
        "swift" => "swift",
        "scala" => "scala",
        "lua" => "lua",
        "r" => "r",
        "sh" | "bash" => "shell",
        "sql" => "sql",
        "html" | "htm" => "html",
        "css" => "css",
        "scss" => "scss",
        "json" => "json",
        "yaml" | "yml" => "yaml",
        "toml" => "toml",
        "xml" => "xml",
        "md" | "markdown" => "markdown",
        _ => "plaintext",
    }
}

#[cfg(test)]
mod tests {
    use super::language_for_filename;

    #[test]
    fn languages_follow_extensions() {
        let cases = [
            ("main.py", "python"),
            ("index.js", "javascript"),
            ("App.TSX", "typescript"),
            ("Main.java", "java"),
            ("solver.cpp", "cpp"),
            ("util.h", "c"),
            ("lib.rs", "rust"),
            ("Makefile", "makefile"),
            ("README", "plaintext"),
            (".gitignore", "plaintext"),
            ("archive.tar.gz", "plaintext"),
            ("données.py", "python"),
            ("src/app/main.py", "python"),
            ("build.d/Makefile", "makefile"),
            ("v1.2/README", "plaintext"),
        ];
        for (filename, language) in cases {
            assert_eq!(language_for_filename(filename), language, "{filename}");
        }
    }
}
