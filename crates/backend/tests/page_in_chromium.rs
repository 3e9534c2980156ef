//! The built-in page as a browser sees it: 90 days of history written through the backend with
//! a controlled clock, rendered by headless Chromium (Debian's `chromium`), and the DOM checked
//! for the right states, groups, incidents and escaping. Also writes the README screenshot when
//! STATUSRELAY_SCREENSHOT names a file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use statusrelay_backend::html::{Html, PageDoc, PageGroup};
use statusrelay_backend::{Backend, ComponentRef};
use statusrelay_core::State;
use statusrelay_core::time::Clock;

const DAY: i64 = 86_400_000;
/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800_000;

struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn chromium() -> PathBuf {
    let p = PathBuf::from("/usr/bin/chromium");
    assert!(
        p.exists(),
        "this test renders the page in headless Chromium: apt-get install -y chromium (.ci/run does)"
    );
    p
}

fn browser(dir: &Path, extra: &[String]) -> String {
    let profile = dir.join("chromium-profile");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", dir.join("index.html").display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set(h: &mut Html, name: &str, state: State, msg: &str) {
    let c = ComponentRef {
        name: name.into(),
        id: None,
        container: None,
    };
    assert_eq!(h.set_state(name, &c, state, Some(msg)).unwrap(), state);
}

#[test]
fn the_page_renders_states_groups_history_and_incidents_in_chromium() {
    let dir = std::env::temp_dir().join(format!("sr-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = Arc::new(TestClock(AtomicI64::new(NOW - 95 * DAY)));
    let names = ["db cluster", "api", "web <frontend>", "mail"];
    let mut h = Html::new(
        &dir,
        "Example & Co status",
        names.iter().map(|s| s.to_string()).collect(),
        clock.clone(),
    )
    .with_layout(
        vec![
            PageGroup {
                name: "Backend".into(),
                components: vec!["db cluster".into(), "api".into()],
            },
            PageGroup {
                name: "Frontend".into(),
                components: vec!["web <frontend>".into()],
            },
        ],
        90,
    );
    let at = |ms: i64| clock.0.store(ms, Ordering::SeqCst);
    for n in names {
        set(&mut h, n, State::Operational, "ok");
    }
    // db: a 6-hour major outage 40 days ago, resolved.
    at(NOW - 40 * DAY);
    set(
        &mut h,
        "db cluster",
        State::MajorOutage,
        "mysql: process is not running",
    );
    at(NOW - 40 * DAY + 6 * 3_600_000);
    set(
        &mut h,
        "db cluster",
        State::Operational,
        "mysql: process is running",
    );
    // api: degraded 3 days ago, resolved after an hour.
    at(NOW - 3 * DAY);
    set(
        &mut h,
        "api",
        State::PerformanceIssues,
        "response time 2.1s",
    );
    at(NOW - 3 * DAY + 3_600_000);
    set(&mut h, "api", State::Operational, "response time 80ms");
    // web: down right now, with hostile text in the message.
    at(NOW - 2 * 3_600_000);
    set(
        &mut h,
        "web <frontend>",
        State::PartialOutage,
        "<script>alert('x')</script> failed protocol test [HTTP] at [127.0.0.1]:80",
    );
    // mail: in maintenance.
    at(NOW - 3_600_000);
    set(&mut h, "mail", State::UnderMaintenance, "postfix upgrade");
    at(NOW);
    set(
        &mut h,
        "db cluster",
        State::Operational,
        "mysql: process is running",
    );

    let doc: PageDoc =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(doc.schema, 2);
    assert_eq!(doc.overall, State::UnderMaintenance);
    let db = doc
        .components
        .iter()
        .find(|c| c.name == "db cluster")
        .unwrap();
    // 6 hours down in the 90 days (the first 5 days of history are before the window).
    let expect = 100.0 * (90.0 * 24.0 - 6.0) / (90.0 * 24.0);
    assert!(
        (db.uptime.unwrap() - expect).abs() < 0.001,
        "{:?}",
        db.uptime
    );
    assert_eq!(doc.incidents.len(), 3, "db, api resolved; web open");

    let dom = browser(&dir, &["--dump-dom".into()]);
    let count = |needle: &str| dom.matches(needle).count();
    assert_eq!(count("class=\"component\""), 4, "{dom}");
    for (name, state) in [
        ("db cluster", "operational"),
        ("api", "operational"),
        ("web &lt;frontend&gt;", "partial_outage"),
        ("mail", "under_maintenance"),
    ] {
        let li = format!(
            "<li class=\"component\" data-state=\"{state}\"><div class=\"row\"><span class=\"name\">{name}</span>"
        );
        assert!(dom.contains(&li), "{name} as {state}:\n{dom}");
    }
    // Groups in the configured order, the ungrouped component after them.
    let pos = |s: &str| dom.find(s).unwrap_or_else(|| panic!("{s} missing:\n{dom}"));
    assert!(pos(">Backend ") < pos(">Frontend ") && pos(">Frontend ") < pos(">Other "));
    // State in words, not colour alone; the overall banner is a live region.
    assert!(dom.contains("role=\"status\" data-state=\"under_maintenance\""));
    assert!(dom.contains("Partial outage</span>"));
    // The open incident and the maintenance are listed; past incidents too.
    assert!(dom.contains("<h2 id=\"h-open\">Open incidents</h2>"));
    assert!(dom.contains("data-resolved=\"false\"><h3>web &lt;frontend&gt;: Partial outage</h3>"));
    assert!(dom.contains("Maintenance in progress") && dom.contains("postfix upgrade"));
    assert_eq!(count("data-resolved=\"true\""), 2);
    assert!(dom.contains("(6 h 0 min)"), "the db outage's duration");
    // Hostile text stayed text: no script element was created.
    assert!(!dom.contains("<script>"), "{dom}");
    assert!(dom.contains("&lt;script&gt;alert('x')&lt;/script&gt;"));
    // 90 day cells per component, with a text equivalent of the bar.
    assert_eq!(count("class=\"day "), 4 * 90);
    assert!(dom.contains(&format!(
        "aria-label=\"db cluster: {:.2}% uptime over the last 90 days\"",
        expect
    )));
    assert!(dom.contains("class=\"day major_outage\" title=\"2026-10-13: Major outage\""));
    // The feed is well-formed enough for a reader: one entry per incident, escaped.
    let feed = std::fs::read_to_string(dir.join("feed.atom")).unwrap();
    assert_eq!(feed.matches("<entry>").count(), 3);
    assert!(feed.contains("<title>Resolved: db cluster (Major outage)</title>"));
    assert!(feed.contains("web &lt;frontend&gt;: Partial outage") && !feed.contains("<script>"));

    if let Ok(shot) = std::env::var("STATUSRELAY_SCREENSHOT") {
        browser(
            &dir,
            &[
                format!("--screenshot={shot}"),
                "--window-size=1000,1500".into(),
            ],
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The overall banner's text against its state colour, as Chromium computes both from the
/// rendered page, for every state, in the light and the dark scheme: WCAG AA (4.5:1) at least.
/// A probe script is appended to a copy of the page (the page itself carries no script).
#[test]
fn the_banner_is_readable_in_both_schemes_in_chromium() {
    let dir = std::env::temp_dir().join(format!("sr-contrast-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = Arc::new(TestClock(AtomicI64::new(NOW)));
    let mut h = Html::new(&dir, "Status", vec!["db".into()], clock);
    set(&mut h, "db", State::MajorOutage, "down");
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(!page.contains("<script"), "the page itself has no script");
    let probe = r#"<script>
function lin(c) { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }
function lum(css) { const [r, g, b] = css.match(/\d+(\.\d+)?/g).map(Number);
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b); }
function ratio(a, b) { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); }
const p = document.querySelector('p.overall'); const out = [];
for (const s of ['operational', 'performance_issues', 'partial_outage', 'major_outage', 'under_maintenance', 'unknown']) {
  p.className = 'overall ' + s;
  const cs = getComputedStyle(p);
  out.push(s + '=' + ratio(cs.color, cs.backgroundColor).toFixed(2));
}
document.body.setAttribute('data-contrast', out.join(' '));
document.body.setAttribute('data-scheme', matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
</script>"#;
    std::fs::write(
        dir.join("index.html"),
        page.replace("</body>", &format!("{probe}</body>")),
    )
    .unwrap();
    for (scheme, flag) in [
        ("light", "--blink-settings=preferredColorScheme=1"),
        ("dark", "--blink-settings=preferredColorScheme=0"),
    ] {
        let dom = browser(&dir, &["--dump-dom".into(), flag.into()]);
        assert!(
            dom.contains(&format!("data-scheme=\"{scheme}\"")),
            "{scheme} not emulated:\n{dom}"
        );
        let figures = dom
            .split("data-contrast=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no figures:\n{dom}"));
        for f in figures.split(' ') {
            let (state, r) = f.split_once('=').unwrap();
            let r: f64 = r.parse().unwrap();
            assert!(
                r >= 4.5,
                "{scheme} scheme, {state}: the banner's text is {r}:1 on its colour (AA needs 4.5:1); all: {figures}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On a fresh install the uptime figure says the time it covers: a 10 s blip an hour after
/// the first state is not "99.72% over the last 90 days".
#[test]
fn uptime_says_since_when_until_a_whole_window_is_seen() {
    let dir = std::env::temp_dir().join(format!("sr-uptime-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = Arc::new(TestClock(AtomicI64::new(NOW - 3_600_000)));
    let at = |ms: i64| clock.0.store(ms, Ordering::SeqCst);
    let mut h = Html::new(&dir, "Status", vec!["db".into()], clock.clone());
    set(&mut h, "db", State::Operational, "ok");
    at(NOW - 10_000);
    set(&mut h, "db", State::MajorOutage, "down");
    at(NOW);
    set(&mut h, "db", State::Operational, "ok");
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        page.contains("uptime since 2026-11-22 11:00 UTC"),
        "{}",
        &page[page.find("class=\"uptime\"").unwrap_or(0)..][..120]
    );
    assert!(!page.contains("over the last 90 days"));
    std::fs::remove_dir_all(&dir).unwrap();
}
