use super::*;
use bellwether_model::change::Change;

fn change(sha: &str, subject: &str, files: &[&str]) -> Change {
    Change {
        sha: sha.to_owned(),
        author: "Ann".to_owned(),
        author_email: None,
        committed_at_unix_ms: 1_700_000_000_000,
        subject: subject.to_owned(),
        files: files.iter().map(|f| (*f).to_owned()).collect(),
    }
}

const PYTHON: &str = "Traceback (most recent call last):
  File \"/app/src/api/views.py\", line 40, in checkout
    total = billing.total(cart)
  File \"/app/src/billing/tax.py\", line 12, in total
    return round(amount * RATES[region], 2)
KeyError: 'eu-south'";

const JAVA: &str = "java.lang.IllegalStateException: cart 7 is empty
\tat com.shop.cart.Checkout.total(Checkout.java:42)
\tat com.shop.api.CartController.post(CartController.java:17)
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)";

#[test]
fn the_commit_that_changed_the_top_in_app_frame_comes_first() {
    let exception = bellwether_stacktrace::parse(PYTHON).expect("parses");
    let changes = ChangeSet {
        changes: vec![
            change("aaaaaaa1", "Docs", &["README.md"]),
            change("bbbbbbb2", "Views: new checkout", &["src/api/views.py"]),
            change(
                "ccccccc3",
                "Tax: eu-south",
                &["src/billing/tax.py", "src/billing/rates.py"],
            ),
        ],
        ..ChangeSet::default()
    };
    let suspects = suspect_commits(&exception, &changes);
    let shas: Vec<&str> = suspects.iter().map(|s| s.sha.as_str()).collect();
    assert_eq!(shas, ["ccccccc3", "bbbbbbb2"], "{suspects:#?}");
    assert_eq!(
        suspects[0].reason,
        "changed src/billing/tax.py, the top in-app frame"
    );
    assert!(
        suspects[1]
            .reason
            .starts_with("changed src/api/views.py, in-app frame 2"),
        "{}",
        suspects[1].reason
    );
}

#[test]
fn jvm_frames_match_their_package_path_and_library_frames_never() {
    let exception = bellwether_stacktrace::parse(JAVA).expect("parses");
    let changes = ChangeSet {
        changes: vec![
            change(
                "1111111",
                "Servlet patch",
                &["vendor/org/springframework/web/servlet/FrameworkServlet.java"],
            ),
            change(
                "2222222",
                "Cart: totals",
                &["src/main/java/com/shop/cart/Checkout.java"],
            ),
            change(
                "3333333",
                "Other Checkout",
                &["src/main/java/com/other/Checkout.java"],
            ),
        ],
        ..ChangeSet::default()
    };
    let suspects = suspect_commits(&exception, &changes);
    let shas: Vec<&str> = suspects.iter().map(|s| s.sha.as_str()).collect();
    assert_eq!(shas, ["2222222"], "{suspects:#?}");
    assert_eq!(
        suspects[0].reason,
        "changed src/main/java/com/shop/cart/Checkout.java, the top in-app frame"
    );
}

#[test]
fn unrelated_changes_and_bare_names_suspect_nothing() {
    let exception = bellwether_stacktrace::parse(PYTHON).expect("parses");
    let changes = ChangeSet {
        changes: vec![change("9999999", "Other tax", &["tools/tax.py", "tax.py"])],
        ..ChangeSet::default()
    };
    assert!(suspect_commits(&exception, &changes).is_empty());
}
