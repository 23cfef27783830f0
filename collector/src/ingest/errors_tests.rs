use super::*;
use bellwether_proto::otlp::trace::span::Event;
use bellwether_proto::otlp::trace::status::StatusCode;
use bellwether_proto::otlp::trace::Status;

const JAVA: &str = "java.lang.IllegalStateException: cart 5531 is empty\n\
\tat com.shop.Checkout.verify(Checkout.java:41)\n\
\tat com.shop.Checkout.main(Checkout.java:29)";

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn log(severity: i32, body: &str, attributes: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        severity_number: severity,
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        attributes,
        ..LogRecord::default()
    }
}

fn span(name: &str, status: Option<(StatusCode, &str)>, events: Vec<Event>) -> Span {
    Span {
        name: name.into(),
        status: status.map(|(code, message)| Status {
            code: code as i32,
            message: message.into(),
        }),
        events,
        ..Span::default()
    }
}

fn exception_event(attributes: Vec<KeyValue>) -> Event {
    Event {
        name: EXCEPTION_EVENT.into(),
        attributes,
        ..Event::default()
    }
}

#[test]
fn only_error_logs_are_errors() {
    assert!(log_error(&log(9, "fine", vec![])).is_none());
    assert!(
        log_error(&log(13, JAVA, vec![])).is_none(),
        "warn is no error"
    );
    assert!(log_error(&log(17, "boom", vec![])).is_some());
    let mut text_only = log(0, "boom", vec![]);
    text_only.severity_text = "FATAL".into();
    assert!(log_error(&text_only).is_some());
}

#[test]
fn attributes_win_over_the_parsed_body() -> Result<(), String> {
    let record = log(
        17,
        JAVA,
        vec![
            kv("exception.type", "shop.CartError"),
            kv("exception.message", "cart 77 is empty"),
        ],
    );
    let error = log_error(&record).ok_or("not an error")?;
    assert_eq!(error.exception_type, "shop.CartError");
    assert_eq!(error.message, "cart 77 is empty");
    assert_eq!(
        error.fingerprint.title,
        "shop.CartError: cart <int> is empty"
    );
    // Frames still come from the body's trace, and so does the stored stack.
    assert_eq!(error.stack, JAVA);
    let without_frames = log(
        17,
        "no trace here",
        vec![
            kv("exception.type", "shop.CartError"),
            kv("exception.message", "cart 77 is empty"),
        ],
    );
    let other = log_error(&without_frames).ok_or("not an error")?;
    assert_ne!(error.fingerprint.id, other.fingerprint.id, "frames count");
    Ok(())
}

#[test]
fn stacktrace_attribute_then_body_then_plain_message() -> Result<(), String> {
    // exception.stacktrace is parsed before the body.
    let record = log(
        17,
        "checkout failed",
        vec![kv("exception.stacktrace", JAVA)],
    );
    let error = log_error(&record).ok_or("not an error")?;
    assert_eq!(error.exception_type, "java.lang.IllegalStateException");
    assert_eq!(error.message, "cart 5531 is empty");
    assert_eq!(error.stack, JAVA);

    // The body's trace, after a log line.
    let body = format!("2024-01-01 ERROR checkout failed\n{JAVA}");
    let error = log_error(&log(17, &body, vec![])).ok_or("not an error")?;
    assert_eq!(error.exception_type, "java.lang.IllegalStateException");
    assert_eq!(error.stack, body);

    // No exception anywhere: the body is the message.
    let error = log_error(&log(17, "payment 42 declined", vec![])).ok_or("not an error")?;
    assert_eq!(error.exception_type, "");
    assert_eq!(error.message, "payment 42 declined");
    assert_eq!(error.fingerprint.title, "payment <int> declined");
    assert_eq!(error.stack, "");
    Ok(())
}

#[test]
fn code_attributes_make_a_fallback_frame() -> Result<(), String> {
    let with_code = |function: &str| {
        log(
            17,
            "payment declined",
            vec![
                kv("code.namespace", "shop.payments"),
                kv("code.function", function),
                kv("code.filepath", "shop/payments.py"),
            ],
        )
    };
    let a = log_error(&with_code("charge")).ok_or("not an error")?;
    let b = log_error(&with_code("refund")).ok_or("not an error")?;
    let plain = log_error(&log(17, "payment declined", vec![])).ok_or("not an error")?;
    assert_ne!(a.fingerprint.id, b.fingerprint.id);
    assert_ne!(a.fingerprint.id, plain.fingerprint.id);
    let frame = code_frame(&[kv("code.function.name", "f"), kv("code.lineno", "12")]);
    assert_eq!(
        frame.map(|f| (f.function, f.line)),
        Some(("f".into(), Some(12)))
    );
    assert_eq!(code_frame(&[kv("code.namespace", "x")]), None);
    Ok(())
}

#[test]
fn fingerprint_attribute_overrides() -> Result<(), String> {
    let a = log_error(&log(
        17,
        "timeout 1",
        vec![kv(OVERRIDE_ATTRIBUTE, "gateway-timeouts")],
    ))
    .ok_or("not an error")?;
    let b = log_error(&log(
        17,
        "something else entirely",
        vec![kv(OVERRIDE_ATTRIBUTE, "gateway-timeouts")],
    ))
    .ok_or("not an error")?;
    assert_eq!(a.fingerprint.id, b.fingerprint.id);
    assert_ne!(a.fingerprint.title, b.fingerprint.title);
    Ok(())
}

#[test]
fn span_exception_events_are_the_errors_of_a_span() {
    // Each exception event is one error, whether or not the span failed.
    let events = vec![
        exception_event(vec![kv("exception.stacktrace", JAVA)]),
        Event {
            name: "retry".into(),
            ..Event::default()
        },
        exception_event(vec![
            kv("exception.type", "TimeoutError"),
            kv("exception.message", "upstream timed out"),
        ]),
    ];
    let errors = span_errors(&span("GET /cart", Some((StatusCode::Error, "")), events));
    let types: Vec<&str> = errors.iter().map(|e| e.exception_type.as_str()).collect();
    assert_eq!(types, ["java.lang.IllegalStateException", "TimeoutError"]);
    assert_eq!(errors[0].stack, JAVA);

    let ok_span = span(
        "GET /cart",
        Some((StatusCode::Ok, "")),
        vec![exception_event(vec![kv("exception.type", "Handled")])],
    );
    assert_eq!(
        span_errors(&ok_span).len(),
        1,
        "an event counts on an ok span"
    );

    // An event without fields takes the status message, else the span name.
    let bare = span_errors(&span(
        "GET /cart",
        Some((StatusCode::Error, "db down")),
        vec![exception_event(vec![])],
    ));
    assert_eq!(bare.first().map(|e| e.message.as_str()), Some("db down"));
}

#[test]
fn failed_spans_without_events_are_one_error() {
    let failed = span_errors(&span(
        "GET /cart",
        Some((StatusCode::Error, "db down")),
        vec![],
    ));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].message, "db down");
    assert_eq!(failed[0].exception_type, "");
    let unnamed = span_errors(&span("GET /cart", Some((StatusCode::Error, "")), vec![]));
    assert_eq!(unnamed[0].message, "GET /cart");
    assert!(span_errors(&span("GET /cart", Some((StatusCode::Ok, "")), vec![])).is_empty());
    assert!(span_errors(&span("GET /cart", None, vec![])).is_empty());

    // The span's override applies to its events too.
    let mut with_override = span("x", None, vec![exception_event(vec![])]);
    with_override.attributes = vec![kv(OVERRIDE_ATTRIBUTE, "fixed")];
    let mut other = span(
        "y",
        None,
        vec![exception_event(vec![kv("exception.type", "E")])],
    );
    other.attributes = vec![kv(OVERRIDE_ATTRIBUTE, "fixed")];
    assert_eq!(
        span_errors(&with_override)[0].fingerprint.id,
        span_errors(&other)[0].fingerprint.id
    );
}

#[test]
fn stored_text_is_bounded() -> Result<(), String> {
    let long = format!(
        "{JAVA}{}",
        "\n\tat com.shop.Deep.call(Deep.java:1)".repeat(2_000)
    );
    let error = log_error(&log(
        17,
        &"é".repeat(5_000),
        vec![kv("exception.stacktrace", &long)],
    ))
    .ok_or("not an error")?;
    assert!(error.stack.len() <= MAX_STACK_BYTES);
    let error = log_error(&log(17, &"é".repeat(5_000), vec![])).ok_or("not an error")?;
    assert!(error.message.len() <= MAX_MESSAGE_BYTES);
    assert!(error.message.chars().all(|c| c == 'é'));
    Ok(())
}
