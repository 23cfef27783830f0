//! JVM traces: `Type: message`, `\tat pkg.Class.method(File.java:N)`, `Caused by: …`,
//! `Suppressed: …`, `\t... N more`.

use super::lines::{exception_header, is_at_frame, is_indented, is_jvm_trailer};
use super::{find_header, split_file_line, Frame, ParsedException, Runtime};

/// Packages of the JDK and of widespread frameworks and libraries.
const LIBRARY_PREFIXES: &[&str] = &[
    "java.",
    "javax.",
    "jakarta.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "groovy.",
    "org.springframework.",
    "org.apache.",
    "org.hibernate.",
    "org.eclipse.",
    "org.glassfish.",
    "org.junit.",
    "junit.",
    "org.mockito.",
    "org.slf4j.",
    "ch.qos.logback.",
    "io.netty.",
    "io.grpc.",
    "io.micrometer.",
    "io.undertow.",
    "io.reactivex.",
    "reactor.",
    "com.fasterxml.",
    "com.google.",
    "com.zaxxer.",
    "okhttp3.",
    "net.bytebuddy.",
    "org.aspectj.",
    "org.postgresql.",
    "com.mysql.",
];

/// A JVM frame has no space before its `(`: `at com.shop.Checkout.charge(Checkout.java:22)`.
/// (A V8 frame has `at fn (file:…)` or no parenthesis at all.)
pub(super) fn is_frame(line: &str) -> bool {
    let content = frame_content(line);
    match content.find('(') {
        Some(open) => open > 0 && !content[..open].contains(char::is_whitespace),
        None => false,
    }
}

fn frame_content(line: &str) -> &str {
    let t = line.trim_start();
    t.strip_prefix("at ").unwrap_or(t).trim()
}

/// Parses the trace whose first frame is `all[first_frame]`.
pub(super) fn parse(all: &[&str], first_frame: usize) -> ParsedException {
    let (message, header) = match find_header(all, first_frame) {
        Some((message, header)) => (message, Some(header)),
        None => (String::new(), None),
    };
    let exception_type = header.map(|h| h.exception_type).unwrap_or("");
    let mut parsed = ParsedException::new(Runtime::Java, exception_type, &message);

    let rest = all.get(first_frame..).unwrap_or(&[]);
    let mut own_frames = true;
    for line in rest {
        if is_at_frame(line) {
            if own_frames {
                parsed.frames.push(parse_frame(line));
            }
        } else if let Some(cause) = line.strip_prefix("Caused by: ") {
            // Only unindented `Caused by:` lines belong to the reported exception's chain;
            // indented ones sit inside `Suppressed:` blocks.
            own_frames = false;
            let cause_type = exception_header(cause)
                .map(|h| h.exception_type)
                .unwrap_or_else(|| cause.split(':').next().unwrap_or(cause).trim());
            if !cause_type.is_empty() {
                parsed.caused_by.push(cause_type.to_owned());
            }
        } else if is_jvm_trailer(line) || is_indented(line) {
            if line.trim_start().starts_with("Suppressed: ") {
                own_frames = false;
            }
        } else {
            break;
        }
    }
    parsed
}

fn parse_frame(line: &str) -> Frame {
    let content = frame_content(line);
    let (symbol, location) = match content.split_once('(') {
        Some((symbol, rest)) => (symbol, rest.split(')').next().unwrap_or("")),
        None => (content, ""),
    };
    // `java.base/java.lang.Thread.run`, `app//com.shop.Main.main`: drop the module /
    // class-loader prefix.
    let symbol = symbol.rsplit('/').next().unwrap_or(symbol);
    let (module, function) = match symbol.rsplit_once('.') {
        Some((module, function)) => (Some(module.to_owned()), function.to_owned()),
        None => (None, symbol.to_owned()),
    };
    let (file, line_number) = match location {
        "Native Method" | "Unknown Source" | "" => (None, None),
        other => split_file_line(other),
    };
    let in_app = match &module {
        Some(m) => !LIBRARY_PREFIXES.iter().any(|p| m.starts_with(p)),
        None => true,
    };
    Frame {
        module,
        function,
        file,
        line: line_number,
        in_app,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let f = parse_frame("\tat java.base/java.lang.Thread.run(Thread.java:833)");
        assert_eq!(f.module.as_deref(), Some("java.lang.Thread"));
        assert_eq!(f.function, "run");
        assert_eq!(f.file.as_deref(), Some("Thread.java"));
        assert_eq!(f.line, Some(833));
        assert!(!f.in_app);

        let f = parse_frame("    at com.shop.Checkout$Cart.total(Checkout.java:10) ~[app.jar:1.0]");
        assert_eq!(f.module.as_deref(), Some("com.shop.Checkout$Cart"));
        assert_eq!(f.function, "total");
        assert_eq!(f.line, Some(10));
        assert!(f.in_app);

        let f = parse_frame("\tat jdk.internal.reflect.Foo.invoke0(Native Method)");
        assert_eq!(f.file, None);
        assert!(!f.in_app);
    }

    #[test]
    fn suppressed_and_nested_causes_stay_out_of_the_chain() {
        let text = "java.io.IOException: outer\n\tat a.B.c(B.java:1)\n\tSuppressed: java.lang.IllegalStateException: s\n\t\tat a.B.d(B.java:2)\n\t\tCaused by: java.lang.Error: nested\nCaused by: java.net.SocketException: reset\n\tat a.B.e(B.java:3)";
        let all: Vec<&str> = text.lines().collect();
        let p = parse(&all, 1);
        assert_eq!(p.exception_type, "java.io.IOException");
        assert_eq!(p.caused_by, vec!["java.net.SocketException".to_owned()]);
        assert_eq!(p.frames.len(), 1);
        assert_eq!(p.frames[0].function, "c");
    }
}
