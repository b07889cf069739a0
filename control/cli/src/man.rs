//! `weir man`: the man pages, from the clap definitions, so the pages
//! never disagree with `--help`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output directory (created if missing).
    #[arg(long, default_value = "target/man")]
    out: PathBuf,
}

pub fn main(args: Args) -> ExitCode {
    match write_man_pages(&args.out) {
        Ok(n) => {
            let _ = writeln!(
                std::io::stdout().lock(),
                "{n} man page(s) in {}",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "weir man: {}: {e}",
                args.out.display()
            );
            ExitCode::from(1)
        }
    }
}

/// weir.1 and one page per subcommand (weir-run.1, …).
fn write_man_pages(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let cmd = crate::Cli::command();
    let mut pages = vec![("weir".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("weir-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in &pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(page.clone()).render(&mut roff)?;
        std::fs::write(dir.join(format!("{name}.1")), roff)?;
    }
    Ok(pages.len())
}
