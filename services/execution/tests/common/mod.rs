//! What the sandbox tests of every backend share.

/// Per language: its name, the entry file, and a program that prints "hello" then echoes stdin.
pub const HELLO_AND_ECHO: &[(&str, &str, &str)] = &[
    ("python", "main.py", "import sys\nprint('hello')\nprint(sys.stdin.read(), end='')\n"),
    ("javascript", "main.js", "console.log('hello');\nprocess.stdout.write(require('fs').readFileSync(0, 'utf8'));\n"),
    (
        "java",
        "Main.java",
        "import java.io.*;\npublic class Main { public static void main(String[] a) throws IOException {\n\
         System.out.println(\"hello\"); System.out.print(new String(System.in.readAllBytes())); } }\n",
    ),
    (
        "cpp",
        "main.cpp",
        "#include <iostream>\n#include <string>\nint main(){std::cout<<\"hello\\n\";std::string l;while(std::getline(std::cin,l))std::cout<<l<<\"\\n\";}\n",
    ),
    (
        "c",
        "main.c",
        "#include <stdio.h>\nint main(void){puts(\"hello\");int c;while((c=getchar())!=EOF)putchar(c);return 0;}\n",
    ),
    ("bash", "main.sh", "echo hello\ncat\n"),
    ("perl", "main.pl", "print \"hello\\n\";\nprint while <STDIN>;\n"),
];

/// Python that runs each attack and prints "NAME refused ERROR" or "NAME ALLOWED".
pub const ATTEMPT: &str = r#"
import os, socket
def attempt(name, action):
    try:
        action()
        print(name, "ALLOWED")
    except Exception as error:
        print(name, "refused", type(error).__name__)
def one_gigabyte():
    # 1 GiB in 1 MiB writes (one 1 GiB buffer would hit the memory limit first).
    chunk = b"x" * (1024 * 1024)
    with open("/work/big", "wb") as big:
        for _ in range(1024):
            big.write(chunk)
def fill(directory):
    # 128 MiB in 8 MiB files; removed again, so that one capped filesystem does not eat the
    # memory the next attempt needs (tmpfs pages count against the run's memory).
    paths = []
    try:
        for index in range(16):
            paths.append(f"{directory}/fill{index}")
            with open(paths[-1], "wb") as file:
                file.write(b"x" * (8 * 1024 * 1024))
    finally:
        for path in paths:
            try:
                os.remove(path)
            except OSError:
                pass
"#;
