//! Hostile input: whatever Monit's environment, a config file or Monit's status XML contains,
//! parsing answers Ok or a clear error. Never a panic, never a hang.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use proptest::prelude::*;
use statusrelay_core::{Config, RawEvent, mapping, monit_status};

fn env_strategy() -> impl Strategy<Value = Vec<(OsString, OsString)>> {
    let key = prop_oneof![
        Just("MONIT_SERVICE".to_string()),
        Just("MONIT_EVENT".to_string()),
        Just("MONIT_DESCRIPTION".to_string()),
        Just("MONIT_HOST".to_string()),
        Just("MONIT_DATE".to_string()),
        "MONIT_[A-Z_]{0,12}",
        "[A-Z_]{1,8}",
    ];
    // An environment string cannot hold NUL: map it away rather than reject (keeps every case).
    let value = prop::collection::vec(any::<u8>(), 0..300).prop_map(|v| {
        v.into_iter()
            .map(|b| if b == 0 { 1 } else { b })
            .collect::<Vec<u8>>()
    });
    prop::collection::vec((key, value), 0..8).prop_map(|kv| {
        kv.into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from_vec(v)))
            .collect()
    })
}

proptest! {
    // 2,000 cases in the suite; scripts/fuzz raises it with PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_monit_environment_is_read_without_panicking(env in env_strategy()) {
        let raw = RawEvent::from_env(env);
        if let Ok(ev) = raw.validate() {
            let _ = mapping::classify(&ev.event, &ev.description);
        }
        // The raw event always serialises for the spool.
        prop_assert!(serde_json::to_string(&raw).is_ok());
    }

    #[test]
    fn any_event_string_and_description_classify_without_panicking(ev in ".{0,80}", desc in ".{0,400}") {
        if let Some(c) = mapping::classify(&ev, &desc) {
            prop_assert!(!c.test.as_str().is_empty());
        }
    }

    #[test]
    fn any_config_text_parses_or_is_a_named_error(text in ".{0,600}") {
        if let Err(e) = Config::parse(&text, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().starts_with("config fuzz.toml"), "{}", e);
        }
    }

    #[test]
    fn config_like_text_parses_or_is_a_named_error(
        lines in prop::collection::vec(prop_oneof![
            Just("[backend]".to_string()), Just("kind = \"cachet\"".to_string()), Just("kind = \"html\"".to_string()),
            Just("[[component]]".to_string()), Just("name = \"db\"".to_string()), "services = \\[\"[a-z*?]{0,6}\"\\]",
            "[a-z_]{1,10} = \"[^\"\\\\]{0,10}\"", "[a-z_]{1,10} = [0-9]{1,4}", Just("[mapping]".to_string()),
            "[a-z_]{3,12} = \"[a-z_]{3,18}\"", Just("[delivery]".to_string()), "backoff_[a-z]{3,4} = \"[0-9]{1,3}[smhd]?\"",
        ], 0..14)
    ) {
        let text = lines.join("\n");
        if let Err(e) = Config::parse(&text, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().starts_with("config fuzz.toml"), "{}", e);
        }
    }

    #[test]
    fn any_bytes_as_monit_status_xml_are_ok_or_a_clear_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Err(e) = monit_status::parse(&bytes) {
            prop_assert!(e.to_string().starts_with("Monit status XML:"), "{}", e);
        }
    }

    #[test]
    fn monit_shaped_xml_with_hostile_fields_parses_or_errs(name in ".{0,30}", status in ".{0,12}", kind in ".{0,4}") {
        let xml = format!("<monit><service type=\"{kind}\"><name>{name}</name><status>{status}</status><monitor>1</monitor></service></monit>");
        let _ = monit_status::parse(xml.as_bytes());
    }
}
