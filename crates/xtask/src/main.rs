//! `cargo run -p statusrelay-xtask -- assets DIR`: man pages (DIR/man/*.1) and shell completions
//! (DIR/completions/) generated from the same clap definitions the binary parses with, so the
//! packaged docs can never drift from the real flags; and the aggregator's template unit
//! (DIR/systemd/statusrelay-serve@.service) made from its plain unit, so the two units'
//! hardening can never drift apart either.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

fn write_man(cmd: &clap::Command, dir: &Path, prefix: &str) -> std::io::Result<usize> {
    let name = if prefix.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{prefix}-{}", cmd.get_name())
    };
    let page = cmd.clone().name(name.clone());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        n += write_man(sub, dir, &name)?;
    }
    Ok(n)
}

/// The aggregator's unit for several instances on one machine (`statusrelay-serve@agg1`):
/// the plain unit (`packaging/systemd/statusrelay-serve.service`), each instance reading its
/// own config, `/etc/statusrelay/serve-%i.toml` (its `[serve] listen`, its `[store]
/// instance`). None when the plain unit no longer has the lines this changes.
fn template_unit(plain: &str) -> Option<String> {
    let mut out = String::new();
    let (mut described, mut service) = (false, false);
    for line in plain.lines() {
        if let Some(d) = line.strip_prefix("Description=") {
            out.push_str(&format!(
                "Description={d} (instance %i, /etc/statusrelay/serve-%i.toml)\n"
            ));
            described = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line == "[Service]" {
            out.push_str(
                "# Each instance reads serve-%i.toml: its own listen address and [store] instance.\n\
                 Environment=STATUSRELAY_CONFIG=/etc/statusrelay/serve-%i.toml\n",
            );
            service = true;
        }
    }
    (described && service).then_some(out)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some("assets"), Some(out)) = (args.get(1).map(String::as_str), args.get(2)) else {
        eprintln!("usage: statusrelay-xtask assets DIR");
        std::process::exit(64);
    };
    let out = PathBuf::from(out);
    let man = out.join("man");
    let comp = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    let cmd = statusrelay::Cli::command();
    let pages = write_man(&cmd, &man, "")?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "statusrelay", &comp)?;
    }
    let units = out.join("systemd");
    std::fs::create_dir_all(&units)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plain = std::fs::read_to_string(root.join("packaging/systemd/statusrelay-serve.service"))?;
    let Some(template) = template_unit(&plain) else {
        eprintln!(
            "packaging/systemd/statusrelay-serve.service has no Description= or no [Service]: the template unit cannot be made from it"
        );
        std::process::exit(65);
    };
    std::fs::write(units.join("statusrelay-serve@.service"), template)?;
    println!(
        "{pages} man pages in {}, completions in {}, the template unit in {}",
        man.display(),
        comp.display(),
        units.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_the_plain_unit_with_a_config_per_instance() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let plain =
            std::fs::read_to_string(root.join("packaging/systemd/statusrelay-serve.service"))
                .unwrap();
        let t = template_unit(&plain).unwrap();
        assert!(t.contains("\nEnvironment=STATUSRELAY_CONFIG=/etc/statusrelay/serve-%i.toml\n"));
        assert!(t.contains("(instance %i, /etc/statusrelay/serve-%i.toml)\n"));
        // Every other line as shipped in the plain unit: its hardening above all.
        let kept: Vec<&str> = t
            .lines()
            .filter(|l| !l.starts_with("Description=") && !l.contains("serve-%i"))
            .collect();
        let plain: Vec<&str> = plain
            .lines()
            .filter(|l| !l.starts_with("Description="))
            .collect();
        assert_eq!(kept, plain);
        assert_eq!(template_unit("[Unit]\n[Service]\n"), None);
    }
}
