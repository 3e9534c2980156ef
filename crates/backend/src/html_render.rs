//! Rendering of the built-in page: `index.html` and `feed.atom` from a [`PageDoc`].
//!
//! Invariants:
//! - Every text that came from Monit or the config passes through [`escape`] (HTML and XML
//!   alike), in element content and attribute values; the output is well-formed XML for any
//!   input (characters XML 1.0 forbids are dropped).
//! - No JavaScript: the page is complete as served. State is never shown by colour alone: each
//!   badge has a symbol and words, and each day bar has a text equivalent (`aria-label`).
//! - Rendering is a pure function of the document and `now`.

use std::fmt::Write;

use statusrelay_core::State;
use statusrelay_core::time::rfc3339;

use crate::html::{Outage, PageComponent, PageDoc, worst_in};

const DAY_MS: i64 = 86_400_000;

/// Escape text for HTML/XML element content and attribute values. What XML 1.0 forbids, and
/// nobody can read anyway, is dropped: control characters but tab and newline (an ANSI colour
/// sequence from `check program` output goes whole, not only its ESC), C1 controls and the
/// non-characters U+FFFE and U+FFFF. A feed with one such byte is invalid XML, and feed readers
/// drop the whole feed.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{1b}' => {
                // CSI: ESC [ parameters... final byte in @..~
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for f in chars.by_ref() {
                        if ('@'..='~').contains(&f) {
                            break;
                        }
                    }
                }
            }
            '\t' | '\n' => out.push(c),
            '\r' => {}
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A symbol per state, so the state reads without colour.
fn symbol(s: State) -> &'static str {
    match s {
        State::Operational => "✓",
        State::PerformanceIssues => "!",
        State::PartialOutage => "▲",
        State::MajorOutage => "✕",
        State::UnderMaintenance => "⚙",
        State::Unknown => "?",
    }
}

fn badge(s: State) -> String {
    format!(
        "<span class=\"badge {st}\"><span aria-hidden=\"true\">{sym}</span> {label}</span>",
        st = s.as_str(),
        sym = symbol(s),
        label = escape(s.label())
    )
}

fn time(ms: i64) -> String {
    let t = rfc3339(ms);
    format!(
        "<time datetime=\"{t}\">{}</time>",
        t.replacen('T', " ", 1).replace('Z', " UTC")
    )
}

/// How long an outage lasted, as people say it: seconds under a minute (a 5 s outage is not
/// "1 min"), minutes under an hour, then hours and days.
fn duration(ms: i64) -> String {
    if ms < 1000 {
        return "under 1 s".into();
    }
    if ms < 60_000 {
        return format!("{} s", ms / 1000);
    }
    let m = ms / 60_000;
    match (m / 1440, (m / 60) % 24, m % 60) {
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

fn first_line(m: &str) -> &str {
    m.lines().next().unwrap_or("")
}

/// The day bar of a component: one cell per day, oldest first, with a text equivalent.
fn days(c: &PageComponent, days: u32, now: i64) -> String {
    let today = now.div_euclid(DAY_MS);
    let mut cells = String::new();
    for d in (0..i64::from(days)).rev() {
        let from = (today - d) * DAY_MS;
        let worst = worst_in(&c.history, from, (from + DAY_MS).min(now + 1));
        let (class, label) = match worst {
            Some(s) => (s.as_str(), s.label()),
            None => ("nodata", "No data"),
        };
        let _ = write!(
            cells,
            "<span class=\"day {class}\" title=\"{}: {label}\"></span>",
            &rfc3339(from)[..10]
        );
    }
    // The time the figure covers: the whole window once the page has seen it, else since the
    // first state it knows (a fresh install's 10 s blip is not "84% over 90 days").
    let window_start = (today - i64::from(days) + 1) * DAY_MS;
    let over = match c.history.first() {
        Some(first) if first.at_ms > window_start => {
            let t = rfc3339(first.at_ms);
            format!("since {} {} UTC", &t[..10], &t[11..16])
        }
        _ => format!("over the last {days} days"),
    };
    let up = c
        .uptime
        .map(|u| format!("{u:.2}% uptime {over}"))
        .unwrap_or_else(|| "no data yet".into());
    format!(
        "<div class=\"history\"><div class=\"bar\" role=\"img\" aria-label=\"{name}: {up}\">{cells}</div><div class=\"legend\"><span>{days} days ago</span><span class=\"uptime\">{up}</span><span>today</span></div></div>",
        name = escape(&c.name)
    )
}

fn component(c: &PageComponent, doc: &PageDoc, now: i64) -> String {
    let msg = c
        .message
        .as_deref()
        .filter(|m| !m.is_empty() && c.state != State::Operational)
        .map(|m| format!("<p class=\"message\">{}</p>", escape(first_line(m))))
        .unwrap_or_default();
    format!(
        "<li class=\"component\" data-state=\"{st}\"><div class=\"row\"><span class=\"name\">{name}</span>{badge}</div>{msg}{days}</li>\n",
        st = c.state.as_str(),
        name = escape(&c.name),
        badge = badge(c.state),
        days = days(c, doc.history_days, now),
    )
}

fn outage(o: &Outage, now: i64) -> String {
    let mut updates = String::new();
    for u in o.updates.iter().rev() {
        let text = u.message.as_deref().map(first_line).unwrap_or("");
        let _ = write!(
            updates,
            "<li>{} {} {}</li>",
            time(u.at_ms),
            badge(u.state),
            escape(text)
        );
    }
    let span = match o.resolved_at_ms {
        Some(t) => format!(
            "{} to {} ({})",
            time(o.started_at_ms),
            time(t),
            duration(t - o.started_at_ms)
        ),
        None => format!(
            "since {} ({})",
            time(o.started_at_ms),
            duration(now - o.started_at_ms)
        ),
    };
    format!(
        "<article class=\"incident\" data-state=\"{st}\" data-resolved=\"{res}\"><h3>{name}: {label}</h3><p class=\"span\">{span}</p><ul class=\"updates\">{updates}</ul></article>\n",
        st = o.state.as_str(),
        res = o.resolved_at_ms.is_some(),
        name = escape(&o.component),
        label = escape(o.state.label()),
    )
}

/// `index.html`.
pub fn page(doc: &PageDoc, now: i64) -> String {
    let mut body = String::new();
    open_and_maintenance(&mut body, doc, now);
    groups(&mut body, doc, now);
    past(&mut body, doc, now);
    let headline = match doc.overall {
        State::Operational => "All systems operational".to_string(),
        s => s.label().to_string(),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title}</title>
<link rel="alternate" type="application/atom+xml" title="Incidents" href="feed.atom">
<style>
{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="overall {ost}" role="status" data-state="{ost}"><span aria-hidden="true">{osym}</span> {headline}</p>
</header>
<main>
{body}</main>
<footer>Last updated {upd}. Machine-readable: <a href="status.json">status.json</a> · Incidents feed: <a href="feed.atom">feed.atom</a></footer>
</body>
</html>
"#,
        title = escape(&doc.title),
        ost = doc.overall.as_str(),
        osym = symbol(doc.overall),
        headline = escape(&headline),
        upd = time(now),
        style = STYLE,
    )
}

/// The open incidents and the components under maintenance, at the top.
fn open_and_maintenance(body: &mut String, doc: &PageDoc, now: i64) {
    let open: Vec<&Outage> = doc
        .incidents
        .iter()
        .filter(|o| o.resolved_at_ms.is_none())
        .collect();
    if !open.is_empty() {
        body.push_str("<section class=\"open\" aria-labelledby=\"h-open\"><h2 id=\"h-open\">Open incidents</h2>\n");
        for o in open.iter().rev() {
            body.push_str(&outage(o, now));
        }
        body.push_str("</section>\n");
    }
    let maint: Vec<&PageComponent> = doc
        .components
        .iter()
        .filter(|c| c.state == State::UnderMaintenance)
        .collect();
    if !maint.is_empty() {
        body.push_str("<section class=\"maintenance\" aria-labelledby=\"h-maint\"><h2 id=\"h-maint\">Maintenance in progress</h2><ul>\n");
        for c in maint {
            let _ = writeln!(
                body,
                "<li>{} {}{}</li>",
                escape(&c.name),
                c.history
                    .last()
                    .map(|h| format!(" since {}", time(h.at_ms)))
                    .unwrap_or_default(),
                c.message
                    .as_deref()
                    .map(|m| format!(": {}", escape(first_line(m))))
                    .unwrap_or_default()
            );
        }
        body.push_str("</ul></section>\n");
    }
}

/// The components, by group (the ungrouped last, as "Other"), each group with its worst state.
fn groups(body: &mut String, doc: &PageDoc, now: i64) {
    let find = |n: &str| doc.components.iter().find(|c| c.name == n);
    let grouped: Vec<&str> = doc
        .groups
        .iter()
        .flat_map(|g| g.components.iter().map(String::as_str))
        .collect();
    let mut sections: Vec<(String, Vec<&PageComponent>)> = doc
        .groups
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                g.components.iter().filter_map(|n| find(n)).collect(),
            )
        })
        .collect();
    let rest: Vec<&PageComponent> = doc
        .components
        .iter()
        .filter(|c| !grouped.contains(&c.name.as_str()))
        .collect();
    if !rest.is_empty() {
        let name = if sections.is_empty() {
            "Components"
        } else {
            "Other"
        };
        sections.push((name.into(), rest));
    }
    for (i, (name, comps)) in sections.iter().enumerate() {
        let worst = comps
            .iter()
            .map(|c| c.state)
            .fold(State::Operational, State::worst);
        let _ = writeln!(
            body,
            "<section class=\"group\" aria-labelledby=\"h-g{i}\"><h2 id=\"h-g{i}\">{} {}</h2><ul class=\"components\">",
            escape(name),
            badge(worst)
        );
        for c in comps {
            body.push_str(&component(c, doc, now));
        }
        body.push_str("</ul></section>\n");
    }
}

/// The resolved incidents of the history window.
fn past(body: &mut String, doc: &PageDoc, now: i64) {
    let past: Vec<&Outage> = doc
        .incidents
        .iter()
        .filter(|o| o.resolved_at_ms.is_some())
        .collect();
    let _ = writeln!(
        body,
        "<section class=\"past\" aria-labelledby=\"h-past\"><h2 id=\"h-past\">Past incidents ({} days)</h2>",
        doc.history_days
    );
    if past.is_empty() {
        body.push_str("<p>No incidents.</p>\n");
    }
    for o in past.iter().rev() {
        body.push_str(&outage(o, now));
    }
    body.push_str("</section>\n");
}

/// The page's style: both colour schemes, the banner at WCAG AA contrast.
const STYLE: &str = r#":root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.4;
  --bg: #fff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --card: #f6f8fa;
  --ok: #1a7f37; --perf: #9a6700; --partial: #bc4c00; --major: #cf222e; --maint: #0969da; --unknown: #59636e; --nodata: #d1d9e0; }
@media (prefers-color-scheme: dark) { :root {
  --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --card: #151b23;
  --ok: #3fb950; --perf: #d29922; --partial: #f0883e; --major: #f85149; --maint: #58a6ff; --unknown: #9198a1; --nodata: #3d444d; } }
body { background: var(--bg); color: var(--fg); max-width: 56rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; display: flex; gap: .75rem; align-items: center; flex-wrap: wrap; }
h3 { font-size: 1rem; margin: 0 0 .25rem; }
ul { list-style: none; padding: 0; margin: 0; }
.overall { padding: 1rem; border-radius: .5rem; font-size: 1.2rem; font-weight: 600; background: var(--major); }
.overall.operational { background: var(--ok); } .overall.performance_issues { background: var(--perf); }
.overall.partial_outage { background: var(--partial); } .overall.under_maintenance { background: var(--maint); }
.overall.unknown { background: var(--unknown); }

.group ul.components { border: 1px solid var(--line); border-radius: .5rem; }
li.component { padding: .75rem 1rem; border-top: 1px solid var(--line); }
li.component:first-child { border-top: 0; }
.row { display: flex; justify-content: space-between; gap: .5rem; flex-wrap: wrap; }
.name { font-weight: 600; }
.badge { font-weight: 600; white-space: nowrap; }
.message { margin: .25rem 0 0; color: var(--muted); font-size: .9rem; overflow-wrap: anywhere; }
.operational { color: var(--ok); } .performance_issues { color: var(--perf); }
.partial_outage { color: var(--partial); } .major_outage { color: var(--major); }
.under_maintenance { color: var(--maint); } .unknown { color: var(--unknown); }
.overall .badge { color: inherit; }
/* The banner's text on its state colour, at WCAG AA (4.5:1) or better in both schemes: white
   on the light scheme's dark colours (4.9:1 at worst), near-black on the dark scheme's light
   ones (5.6:1). `p.overall` outranks the state classes that colour other text. */
p.overall { color: #fff; }
@media (prefers-color-scheme: dark) { p.overall { color: #0d1117; } }
.bar { display: flex; gap: 1px; height: 1.75rem; margin-top: .5rem; }
.day { flex: 1; border-radius: 1px; background: var(--nodata); }
.day.operational { background: var(--ok); } .day.performance_issues { background: var(--perf); }
.day.partial_outage { background: var(--partial); } .day.major_outage { background: var(--major); }
.day.under_maintenance { background: var(--maint); }
.legend { display: flex; justify-content: space-between; font-size: .75rem; color: var(--muted); }
.incident { background: var(--card); border: 1px solid var(--line); border-radius: .5rem; padding: .75rem 1rem; margin: .5rem 0; }
.incident .span, .updates { font-size: .85rem; color: var(--muted); overflow-wrap: anywhere; }
.updates li { margin-top: .25rem; }
footer { margin: 2rem 0 1rem; font-size: .85rem; color: var(--muted); }
a { color: var(--maint); }
@media (max-width: 40rem) { .bar { height: 1.25rem; } body { padding: .5rem; } }
"#;

/// `feed.atom`: one entry per outage, updated at its latest step.
pub fn atom(doc: &PageDoc, now: i64) -> String {
    let slug: String = doc
        .title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut entries = String::new();
    for o in doc.incidents.iter().rev() {
        let last = o.updates.last().map_or(o.started_at_ms, |u| u.at_ms);
        let title = match o.resolved_at_ms {
            Some(_) => format!("Resolved: {} ({})", o.component, o.state.label()),
            None => format!("{}: {}", o.component, o.state.label()),
        };
        let mut text = String::new();
        for u in &o.updates {
            let _ = writeln!(
                text,
                "{} {}: {}",
                rfc3339(u.at_ms),
                u.state.label(),
                u.message.as_deref().map(first_line).unwrap_or("")
            );
        }
        let _ = writeln!(
            entries,
            "<entry><id>urn:statusrelay:{slug}:incident:{id}:{start}</id><title>{title}</title><updated>{upd}</updated><published>{pubd}</published><content type=\"text\">{text}</content></entry>",
            id = o.id,
            start = o.started_at_ms,
            title = escape(&title),
            upd = rfc3339(last),
            pubd = rfc3339(o.started_at_ms),
            text = escape(&text),
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\"><id>urn:statusrelay:{slug}</id><title>{title} incidents</title><updated>{upd}</updated><author><name>statusrelay</name></author><link rel=\"alternate\" href=\"index.html\"/>\n{entries}</feed>\n",
        title = escape(&doc.title),
        upd = rfc3339(now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, item 6: an outage of a few seconds showed as "1 min".
    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(400), "under 1 s");
        assert_eq!(duration(4_200), "4 s");
        assert_eq!(duration(59_999), "59 s");
        assert_eq!(duration(60_000), "1 min");
        assert_eq!(duration(3_720_000), "1 h 2 min");
        assert_eq!(duration(90_000_000), "1 d 1 h");
    }
}
