use bellwether_stacktrace::{parse, Frame, Joiner, ParsedException};

use super::*;

fn frame(module: &str, function: &str, line: u32, in_app: bool) -> Frame {
    Frame {
        module: Some(module.to_owned()),
        function: function.to_owned(),
        file: Some("Checkout.java".to_owned()),
        line: Some(line),
        in_app,
    }
}

#[test]
fn placeholders() {
    let cases = [
        (
            "user 550e8400-e29b-41d4-a716-446655440000 not found",
            "user <uuid> not found",
        ),
        (
            "mail to bob.smith+x@example.co.uk failed.",
            "mail to <email> failed.",
        ),
        (
            "GET https://api.shop.io/v1/orders?id=5 returned 503",
            "GET <url> returned <int>",
        ),
        ("(see http://x.io/a)", "(see <url>)"),
        ("connect 10.0.3.7:443 refused", "connect <ip> refused"),
        ("from 192.168.1.1, retrying", "from <ip>, retrying"),
        ("dial [2001:db8::1]:8080 failed", "dial <ip> failed"),
        ("peer ::1 and fe80::1: gone", "peer <ip> and <ip>: gone"),
        ("at 2026-11-26T12:00:03.120Z boom", "at <time> boom"),
        ("at 2026-11-26 19:08:06,884 boom", "at <time> boom"),
        ("at 2026/11/26 19:08:25.281625 boom", "at <time> boom"),
        ("on 2026-11-26 at 12:00:01+02:00", "on <time> at <time>"),
        ("timed out after 3000ms", "timed out after <duration>"),
        (
            "timed out after 3000 ms for order 5",
            "timed out after <duration> for order <int>",
        ),
        ("took 2.5s", "took <duration>"),
        ("took 150 µs", "took <duration>"),
        (
            "took 1h30m5.5s then 2 seconds",
            "took <duration> then <duration>",
        ),
        ("addr=0x48b9be pc=0X1F", "addr=<hex> pc=<hex>"),
        (
            "commit 59807616e1fa2540724bfbac14d7976d7e4a3860",
            "commit <hex>",
        ),
        (
            "ratio 0.75 exceeded 1.5e-3",
            "ratio <float> exceeded <float>",
        ),
        (
            "index out of range [3] with length 1",
            "index out of range [<int>] with length <int>",
        ),
        (
            "sku A-1009 has 2 left, wanted 7",
            "sku A-<int> has <int> left, wanted <int>",
        ),
        (
            "error=\"ledger unavailable\" key='a b' x=\"\"",
            "error=<str> key=<str> x=<str>",
        ),
        ("version 1.2.3", "version <int>.<int>.<int>"),
        (
            "http2 sha256 user8812 3rd v2",
            "http2 sha256 user8812 3rd v2",
        ),
        (
            "deadbeef std::io rshop::ledger::post",
            "deadbeef std::io rshop::ledger::post",
        ),
        (
            "Cannot read properties of undefined (reading 'id')",
            "Cannot read properties of undefined (reading 'id')",
        ),
        ("naïve 12 café 3", "naïve <int> café <int>"),
        ("", ""),
    ];
    for (input, want) in cases {
        assert_eq!(parameterize(input), want, "input: {input}");
    }
}

#[test]
fn parameterize_is_idempotent() {
    for input in [
        "charge failed for order 981273 at 2026-11-26T12:00:03Z from 10.0.0.1:80",
        "sku A-1009 has 2 left",
    ] {
        let once = parameterize(input);
        assert_eq!(parameterize(&once), once);
    }
}

#[test]
fn same_error_with_other_values_has_one_fingerprint() {
    let frames = [frame("com.shop.Checkout", "charge", 22, true)];
    let a = Fingerprint::compute(
        "com.shop.PaymentException",
        "charge failed for order 981273 (request 550e8400-e29b-41d4-a716-446655440000) after 3000ms at 2026-11-26T12:00:01Z",
        &frames,
    );
    let b = Fingerprint::compute(
        "com.shop.PaymentException",
        "charge failed for order 5 (request 9b2f3c7e-0000-4000-8000-000000000001) after 12ms at 2027-01-02T03:04:05Z",
        &frames,
    );
    assert_eq!(a, b);
    assert_eq!(a.id.len(), 16);
    assert!(a
        .id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        a.title,
        "com.shop.PaymentException: charge failed for order <int> (request <uuid>) after <duration> at <time>"
    );
}

#[test]
fn type_message_and_top_frames_tell_errors_apart() {
    let frames = [
        frame("com.shop.Checkout", "charge", 22, true),
        frame("com.shop.Checkout", "main", 31, true),
    ];
    let base = Fingerprint::compute("a.B", "failed", &frames);
    assert_ne!(base, Fingerprint::compute("a.C", "failed", &frames));
    assert_ne!(base, Fingerprint::compute("a.B", "failed badly", &frames));
    let other_top = [
        frame("com.shop.Checkout", "refund", 22, true),
        frame("com.shop.Checkout", "main", 31, true),
    ];
    assert_ne!(base, Fingerprint::compute("a.B", "failed", &other_top));
    assert_ne!(base, Fingerprint::compute("a.B", "failed", &frames[..1]));
}

#[test]
fn line_numbers_files_and_library_frames_do_not_matter() {
    let frames = [
        frame("java.util.HashMap", "get", 1, false),
        frame("com.shop.Checkout", "charge", 22, true),
        frame("com.shop.Checkout", "main", 31, true),
    ];
    let mut moved = frames.clone();
    moved[1].line = Some(40);
    moved[2].line = Some(57);
    moved[1].file = Some("Other.java".to_owned());
    moved[0] = frame("java.util.TreeMap", "get", 9, false);
    assert_eq!(
        Fingerprint::compute("a.B", "x", &frames),
        Fingerprint::compute("a.B", "x", &moved)
    );
}

#[test]
fn only_the_top_three_in_app_frames_count() {
    let mut frames: Vec<Frame> = (0..3)
        .map(|n| frame("app.M", &format!("f{n}"), 1, true))
        .collect();
    let three = Fingerprint::compute("E", "m", &frames);
    frames.push(frame("app.M", "deeper", 1, true));
    assert_eq!(three, Fingerprint::compute("E", "m", &frames));
}

#[test]
fn override_wins_and_blank_override_is_ignored() {
    let frames = [frame("com.shop.Checkout", "charge", 22, true)];
    let computed = Fingerprint::compute("E", "order 5 failed", &frames);
    let a = Fingerprint::resolve(Some("payments-down"), "E", "order 5 failed", &frames);
    let b = Fingerprint::resolve(Some(" payments-down "), "F", "other", &[]);
    assert_eq!(a.id, b.id);
    assert_ne!(a.id, computed.id);
    assert_eq!(a.title, "E: order <int> failed");
    assert_eq!(
        Fingerprint::resolve(Some("  "), "E", "order 6 failed", &frames),
        computed
    );
    assert_eq!(
        Fingerprint::resolve(None, "E", "order 7 failed", &frames),
        computed
    );
}

#[test]
fn ids_are_stable_across_builds() {
    // Pinned: a change here re-keys every stored issue.
    assert_eq!(
        Fingerprint::compute("E", "m", &[]).id,
        Fingerprint::compute("E", "m", &[]).id
    );
    let mut h = Fnv1a64::new();
    h.write(b"a");
    assert_eq!(h.hex(), "af63dc4c8601ec8c");
    assert_eq!(Fingerprint::compute("E", "m", &[]).id, "32c1b2e938f96ec0");
}

#[test]
fn titles_are_one_line_and_capped_on_a_char_boundary() {
    let long = "é".repeat(500);
    let fp = Fingerprint::compute("E", &format!("line one\nline two {long}"), &[]);
    assert_eq!(fp.title.chars().count(), MAX_TITLE_CHARS);
    assert!(fp.title.starts_with("E: line one line two é"));
    assert!(fp.title.ends_with('…'));
    assert_eq!(Fingerprint::compute("", "", &[]).title, "");
    assert_eq!(Fingerprint::compute("E", "  ", &[]).title, "E");
}

#[test]
fn unicode_and_huge_inputs_do_not_panic() {
    let mut seed: u64 = 7;
    let alphabet: Vec<char> = "aZ09 .:-_/@=\"'[]()xµμé𝄞\u{0}\n\t0x::%+".chars().collect();
    for _ in 0..3000 {
        let len = (seed % 80) as usize;
        let s: String = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                alphabet[(seed % alphabet.len() as u64) as usize]
            })
            .collect();
        let p = parameterize(&s);
        assert!(p.len() <= s.len() * 4 + 16);
        let _ = Fingerprint::compute(&s, &s, &[frame(&s, &s, 1, true)]);
    }
    let huge = "order 12345 failed at 10.0.0.1:80 ".repeat(20_000) + &"x".repeat(200_000);
    let fp = Fingerprint::compute("E", &huge, &[]);
    assert_eq!(fp.title.chars().count(), MAX_TITLE_CHARS);
    let digits = "1".repeat(300_000);
    assert_eq!(parameterize(&digits), "<int>");
    let dotted = "1.".repeat(100_000);
    assert!(parameterize(&dotted).starts_with("<int>.<int>."));
}

// The fixtures are real runtime output, shared with bellwether-proto's tests.
const FIXTURES: &[(&str, &str)] = &[
    (
        "java-spring.log",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/java-spring.log"),
    ),
    (
        "java-uncaught.txt",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/java-uncaught.txt"),
    ),
    (
        "python-logging.log",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/python-logging.log"),
    ),
    (
        "python-uncaught.txt",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/python-uncaught.txt"),
    ),
    (
        "node.log",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/node.log"),
    ),
    (
        "go-panic.log",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/go-panic.log"),
    ),
    (
        "go-panic-all-goroutines.log",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/go-panic-all-goroutines.log"),
    ),
    (
        "rust-panic-backtrace.log",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/rust-panic-backtrace.log"),
    ),
    (
        "rust-panic.log",
        include_str!("../../../stacktrace/tests/fixtures/stacktraces/rust-panic.log"),
    ),
];

/// A JSON log line carries the stack in a field; other records are traces as they are.
fn exception_of(record: &str) -> Option<ParsedException> {
    match serde_json::from_str::<serde_json::Value>(record) {
        Ok(serde_json::Value::Object(map)) => map
            .values()
            .filter_map(|v| v.get("stack").and_then(|s| s.as_str()))
            .find_map(parse),
        _ => parse(record),
    }
}

fn fixture_fingerprints() -> Vec<(String, Fingerprint)> {
    let mut out = Vec::new();
    for (name, text) in FIXTURES {
        let mut joiner = Joiner::default();
        let mut records: Vec<String> = Vec::new();
        for line in text.split('\n') {
            records.extend(joiner.push(line).into_iter().map(|r| r.text));
        }
        records.extend(joiner.flush().map(|r| r.text));
        for (n, record) in records.iter().enumerate() {
            if let Some(e) = exception_of(record) {
                let fp = Fingerprint::compute(&e.exception_type, &e.exception_message, &e.frames);
                out.push((format!("{name}#{n}"), fp));
            }
        }
    }
    out
}

#[test]
fn fixture_errors_get_one_fingerprint_each_and_node_repeats_share_one() {
    let fps = fixture_fingerprints();
    // 2 java-spring, 1 java-uncaught, 2 python-logging, 1 python-uncaught, 3 node,
    // 1 per Go and Rust file.
    assert_eq!(fps.len(), 13, "{fps:#?}");
    let node: Vec<&Fingerprint> = fps
        .iter()
        .filter(|(name, _)| name.starts_with("node.log"))
        .map(|(_, fp)| fp)
        .collect();
    assert_eq!(node.len(), 3);
    assert_eq!(node[0], node[1], "the logged and the bare InventoryError");
    assert_ne!(node[0], node[2]);
    assert_eq!(
        node[0].title,
        "InventoryError: stock reservation failed: sku A-<int> has <int> left, wanted <int>"
    );

    let mut ids: Vec<&str> = fps.iter().map(|(_, fp)| fp.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        fps.len() - 1,
        "all other errors differ: {fps:#?}"
    );
}

#[test]
fn an_inventory_error_with_other_numbers_matches_the_fixture() {
    let fps = fixture_fingerprints();
    let Some((_, fixture)) = fps.iter().find(|(name, _)| name == "node.log#1") else {
        panic!("node.log#1 missing: {fps:#?}");
    };
    let other = "InventoryError: stock reservation failed: sku A-2001 has 0 left, wanted 12\n    at reserve (/app/server.js:4:9)\n    at placeOrder (/app/server.js:8:3)\n    at async main (/app/server.js:12:5)";
    let Some(e) = parse(other) else {
        panic!("no exception in {other}");
    };
    assert_eq!(
        &Fingerprint::compute(&e.exception_type, &e.exception_message, &e.frames),
        fixture
    );
}
