use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[test]
fn encodes_query_components() {
    assert_eq!(encode_component("a b/c&d=é"), "a%20b%2Fc%26d%3D%C3%A9");
    assert_eq!(encode_component("v1.2-rc_3~"), "v1.2-rc_3~");
}

#[test]
fn rejects_unusable_urls() {
    for url in ["https://x:1", "127.0.0.1:8480", "not a url", ""] {
        let code = ApiClient::new(url).err().map(|e| e.exit_code());
        assert_eq!(code, Some(2), "{url}");
    }
    assert!(ApiClient::new("http://127.0.0.1:8480/").is_ok());
}

#[test]
fn takes_repeated_and_comma_separated_urls_in_order() -> TestResult {
    let urls = parse_urls(&[
        "http://10.0.0.1:8480, http://10.0.0.2:8480/",
        "http://10.0.0.3:8480/prefix/",
        "http://10.0.0.1:8480",
    ])?;
    assert_eq!(
        urls,
        [
            "http://10.0.0.1:8480",
            "http://10.0.0.2:8480",
            "http://10.0.0.3:8480/prefix"
        ]
    );
    let client = ApiClient::new("http://a:1,http://b:2")?;
    assert_eq!(client.urls(), ["http://a:1", "http://b:2"]);
    assert_eq!(parse_urls(&["http://a:1/"])?, ["http://a:1"]);
    Ok(())
}

#[test]
fn one_bad_entry_rejects_the_whole_list_and_is_named() {
    let cases: [(&[&str], &str); 4] = [
        (&["http://a:1,https://b:2"], "\"https://b:2\": scheme https"),
        (&["http://a:1", "b:2"], "\"b:2\": expected http://HOST:PORT"),
        (&["http://a:1,,http://b:2"], "empty entry"),
        (&["http://a:1,"], "empty entry"),
    ];
    for (values, expected) in cases {
        let error = parse_urls(values).expect_err("a bad list");
        assert_eq!(error.exit_code(), 2, "{values:?}");
        let text = error.to_string();
        assert!(
            text.starts_with("invalid --url") && text.contains(expected),
            "{values:?}: {text}"
        );
    }
    let none: [&str; 0] = [];
    assert!(matches!(parse_urls(&none), Err(ClientError::Usage(_))));
}

/// A loopback port that nothing listens on (bound, then released).
fn closed_port_url() -> Result<String, std::io::Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("http://127.0.0.1:{port}"))
}

/// A real HTTP server on a loopback port, serving `router` until the test ends.
async fn serve(router: Router) -> Result<String, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(url)
}

/// A collector stand-in: `GET /healthz`, `POST /echo` (the body and the Authorization
/// header back) and `GET /missing` (a 404 with the API's error shape); counts requests.
async fn node(hits: Arc<AtomicUsize>) -> Result<String, std::io::Error> {
    async fn healthz(State(hits): State<Arc<AtomicUsize>>) -> Json<Value> {
        hits.fetch_add(1, Ordering::SeqCst);
        Json(json!({"status": "ok"}))
    }
    async fn echo(
        State(hits): State<Arc<AtomicUsize>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        hits.fetch_add(1, Ordering::SeqCst);
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Json(json!({"body": body, "authorization": authorization}))
    }
    async fn missing(State(hits): State<Arc<AtomicUsize>>) -> (StatusCode, Json<Value>) {
        hits.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such release"})),
        )
    }
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/echo", post(echo))
        .route("/missing", get(missing))
        .with_state(hits);
    serve(router).await
}

/// A TCP server that reads each request and closes the connection without answering;
/// counts connections.
async fn closes_without_answering(accepted: Arc<AtomicUsize>) -> Result<String, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
        }
    });
    Ok(url)
}

/// A TCP server that accepts connections and never answers on them.
async fn never_answers() -> Result<String, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    Ok(url)
}

#[tokio::test]
async fn a_closed_port_first_moves_on_to_the_next_url() -> TestResult {
    let hits = Arc::new(AtomicUsize::new(0));
    let live = node(hits.clone()).await?;
    let client = ApiClient::from_urls(&[closed_port_url()?, live])?.with_token(Some("s3cret"))?;

    let health: Value = client.get("/healthz").await?;
    assert_eq!(health["status"], "ok");
    // The body and the token go to the node that answers.
    let echoed: Value = client
        .post("/echo", &json!({"service": "checkout"}))
        .await?;
    assert_eq!(echoed["body"]["service"], "checkout");
    assert_eq!(echoed["authorization"], "Bearer s3cret");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn a_connection_closed_before_the_answer_moves_on_and_the_next_request_starts_there(
) -> TestResult {
    let accepted = Arc::new(AtomicUsize::new(0));
    let dying = closes_without_answering(accepted.clone()).await?;
    let hits = Arc::new(AtomicUsize::new(0));
    let live = node(hits.clone()).await?;
    let client = ApiClient::from_urls(&[dying, live])?;

    for _ in 0..3 {
        let health: Value = client.get("/healthz").await?;
        assert_eq!(health["status"], "ok");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Only the first request went to the node that closes connections.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn no_answer_in_time_moves_on_to_the_next_url() -> TestResult {
    let hits = Arc::new(AtomicUsize::new(0));
    let live = node(hits.clone()).await?;
    let client = ApiClient::from_urls(&[never_answers().await?, live])?
        .with_timeout(Duration::from_millis(300));
    let health: Value = client.get("/healthz").await?;
    assert_eq!(health["status"], "ok");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn an_http_error_answer_is_never_asked_of_another_url() -> TestResult {
    let (first_hits, second_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let first = node(first_hits.clone()).await?;
    let second = node(second_hits.clone()).await?;
    let client = ApiClient::from_urls(&[first, second])?;

    let error = client
        .get::<Value>("/missing")
        .await
        .expect_err("a 404 answer");
    assert!(
        matches!(&error, ClientError::Api { status: 404, message } if message == "no such release"),
        "{error:?}"
    );
    assert_eq!(error.exit_code(), 1);
    // A route the node does not have: axum's own 404, still an answer.
    let error = client.get::<Value>("/nowhere").await.expect_err("a 404");
    assert!(
        matches!(error, ClientError::Api { status: 404, .. }),
        "{error:?}"
    );
    assert_eq!(first_hits.load(Ordering::SeqCst), 1);
    assert_eq!(second_hits.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn when_every_url_fails_the_error_names_each() -> TestResult {
    let (a, b) = (closed_port_url()?, closed_port_url()?);
    let client = ApiClient::from_urls(&[a.clone(), b.clone()])?;
    let error = client
        .get::<Value>("/healthz")
        .await
        .expect_err("nothing listens");
    assert_eq!(error.exit_code(), 2);
    let ClientError::Connection { url, message } = &error else {
        panic!("not a connection error: {error:?}");
    };
    assert_eq!(url, &format!("{a}, {b}"));
    assert!(
        message.starts_with(&format!("{a}: ")) && message.contains(&format!("; {b}: ")),
        "{message}"
    );

    // With one URL the error is the one it always was.
    let error = ApiClient::new(&a)?
        .get::<Value>("/healthz")
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot reach the collector at {a}: ")),
        "{text}"
    );
    assert!(!text.contains(&format!("{a}: {a}")), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_path_per_url_is_asked_of_each_url_and_the_answering_one_is_named() -> TestResult {
    let hits = Arc::new(AtomicUsize::new(0));
    let (dead, live) = (closed_port_url()?, node(hits.clone()).await?);
    let client = ApiClient::from_urls(&[dead.clone(), live.clone()])?;
    let asked = std::sync::Mutex::new(Vec::new());
    let path_for = |url: &str| {
        if let Ok(mut asked) = asked.lock() {
            asked.push(url.to_owned());
        }
        // Only the dead node would have been asked the missing path.
        if url == dead { "/missing" } else { "/healthz" }.to_owned()
    };
    let (health, from) = client.get_per_url::<Value>(path_for).await?;
    assert_eq!(health["status"], "ok");
    assert_eq!(from, live);
    assert_eq!(*asked.lock().map_err(|e| e.to_string())?, [dead, live]);
    Ok(())
}
