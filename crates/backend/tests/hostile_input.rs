//! Hostile input to the backends: whatever a status page answers, error texts are extracted
//! without panicking, and anything from Monit or the config is HTML-escaped on the static page.

use std::sync::Arc;

use proptest::prelude::*;
use statusrelay_backend::html::{Html, escape};
use statusrelay_backend::{Backend, ComponentRef};
use statusrelay_core::State;
use statusrelay_core::time::SystemClock;

proptest! {
    // 2,000 cases in the suite; scripts/fuzz raises it with PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn escaped_text_never_contains_markup(s in ".{0,200}") {
        let e = escape(&s);
        prop_assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
    }

    #[test]
    fn schedule_json_of_any_shape_is_judged_without_panicking(v in "\\PC{0,200}") {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&v) {
            let _ = statusrelay_backend::cachet::schedule_in_progress(&json);
        }
        let _ = statusrelay_backend::cachet::parse_cachet_time(&v);
    }
}

#[test]
fn injection_strings_stay_data_on_the_static_page() {
    let dir = std::env::temp_dir().join(format!("sr-inject-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let evil_name = "<img src=x onerror=alert(1)>";
    let mut h = Html::new(
        &dir,
        "\"><script>alert('title')</script>",
        vec![evil_name.into()],
        Arc::new(SystemClock),
    );
    let c = ComponentRef {
        name: evil_name.into(),
        id: None,
        container: None,
    };
    for msg in [
        "<script>alert(document.cookie)</script>",
        "\"><svg onload=alert(1)>",
        "'; DROP TABLE events; --",
        "javascript:alert(1)",
        "&lt;already escaped&gt; & </li></ul><h1>fake</h1>",
    ] {
        h.set_state(evil_name, &c, State::MajorOutage, Some(msg))
            .unwrap();
        let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
        for bad in ["<script", "<img", "<svg", "<h1>fake", "onerror=alert(1)>"] {
            assert!(!html.contains(bad), "{bad:?} reached the page for {msg:?}");
        }
        // status.json carries the text as data, exactly.
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap())
                .unwrap();
        assert_eq!(doc["components"][0]["message"], msg);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
