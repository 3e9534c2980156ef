//! `cargo run -p statusrelay-xtask -- assets DIR`: man pages (DIR/man/*.1) and shell completions
//! (DIR/completions/) generated from the same clap definitions the binary parses with, so the
//! packaged docs can never drift from the real flags.

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
    println!(
        "{pages} man pages in {}, completions in {}",
        man.display(),
        comp.display()
    );
    Ok(())
}
