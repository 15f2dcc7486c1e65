//! Print the headline comparison tables as markdown, after a summary of the goals.
//!
//! ```text
//! cargo run --release -p benches --bin compare [--quick|--full] [--list] [--svg DIR] [table names...]
//! ```
//!
//! Progress goes to stderr; the summary (one line per goal verdict the tables report) and
//! then the tables go to stdout once every table has run. `--svg DIR` also writes charts of
//! the lookup, gap and hot-vma tables to `DIR`.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use benches::alloc::CountingAlloc;
use benches::report::{summary, Table};
use benches::tables::{self, memory, Ctx, Mode};
use benches::workload::Layout;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn usage() -> String {
    let mut s = String::from(
        "usage: compare [--quick|--full] [--list] [--svg DIR] [TABLE...]\n\n\
         --quick    small sizes, short batches (development)\n\
         --full     every size, longer batches\n\
         --list     list the tables\n\
         --svg DIR  also write charts (lookup.svg, gap.svg, hot-vma.svg) to DIR\n\n\
         tables (default: all):\n",
    );
    for t in tables::TABLES {
        s.push_str(&format!("  {:<8} {}\n", t.name, t.about));
    }
    s
}

/// `compare --memory-probe NAME N`: measure one structure of the memory table in this
/// fresh process and print the result line (used by the memory table, not by people).
fn memory_probe(args: &[String]) -> ExitCode {
    let (Some(name), Some(n)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: compare --memory-probe NAME N");
        return ExitCode::FAILURE;
    };
    match memory::probe(name, &Layout::new(n)) {
        Some(p) => {
            println!("{}", p.line());
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("unknown structure `{name}`");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory-probe") {
        return memory_probe(&args[1..]);
    }
    let mut mode = Mode::Default;
    let mut chosen = Vec::new();
    let mut svg_dir: Option<PathBuf> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--svg" => match args.next() {
                Some(dir) => svg_dir = Some(PathBuf::from(dir)),
                None => {
                    eprintln!("--svg needs a directory\n\n{}", usage());
                    return ExitCode::FAILURE;
                }
            },
            "--quick" => mode = Mode::Quick,
            "--full" => mode = Mode::Full,
            "--list" | "-h" | "--help" => {
                print!("{}", usage());
                return ExitCode::SUCCESS;
            }
            name => match tables::find(name) {
                Some(t) => chosen.push(t),
                None => {
                    eprintln!("unknown table or option `{name}`\n\n{}", usage());
                    return ExitCode::FAILURE;
                }
            },
        }
    }
    if chosen.is_empty() {
        chosen = tables::TABLES.iter().collect();
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful numbers");
    }
    let mut ctx = Ctx::new(mode);
    if let Ok(exe) = std::env::current_exe() {
        ctx = ctx.with_probe_exe(exe);
    }
    let start = Instant::now();
    // Every table is kept until all have run, so that the summary can come first.
    let mut tables: Vec<Table> = Vec::new();
    let mut output = String::new();
    let mut failed = Vec::new();
    for t in chosen {
        ctx.progress(format!("table {}", t.name));
        // A panicking table (a bug in a structure under test) is reported and skipped so
        // that the other tables still print.
        match panic::catch_unwind(AssertUnwindSafe(|| (t.run)(&ctx))) {
            Ok(ts) => {
                for table in ts {
                    output.push_str(&format!("{table}\n"));
                    tables.push(table);
                }
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| e.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                output.push_str(&format!(
                    "### {}\n\nFAILED: the table panicked: {msg}\n\n",
                    t.name
                ));
                failed.push(t.name);
            }
        }
    }
    ctx.progress(format!("done in {:.1}s", start.elapsed().as_secs_f64()));
    println!(
        "## maple-rs compare ({:?} mode, {} cores)\n",
        mode,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{}", summary(&tables, &failed));
    print!("{output}");
    let mut status = ExitCode::SUCCESS;
    if let Some(dir) = svg_dir {
        if let Err(e) = write_charts(&dir, &tables) {
            eprintln!("writing charts to {}: {e}", dir.display());
            status = ExitCode::FAILURE;
        }
    }
    if !failed.is_empty() {
        eprintln!("{} table(s) failed", failed.len());
        return ExitCode::FAILURE;
    }
    status
}

/// Write the charts of `tables` to `dir` (created if missing), with a progress line each.
fn write_charts(dir: &std::path::Path, tables: &[Table]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let charts = benches::svg::charts(tables);
    if charts.is_empty() {
        eprintln!("--svg: none of the chosen tables has a chart (lookup, gap, hot-vma)");
    }
    for (name, svg) in charts {
        let path = dir.join(name);
        std::fs::write(&path, svg)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
