//! Print the headline comparison tables as markdown.
//!
//! ```text
//! cargo run --release -p benches --bin compare [--quick|--full] [--list] [table names...]
//! ```
//!
//! Progress goes to stderr, the tables to stdout.

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

use benches::alloc::CountingAlloc;
use benches::tables::{self, memory, Ctx, Mode};
use benches::workload::Layout;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn usage() -> String {
    let mut s = String::from(
        "usage: compare [--quick|--full] [--list] [TABLE...]\n\n\
         --quick  small sizes, short batches (development)\n\
         --full   every size, longer batches\n\
         --list   list the tables\n\n\
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
    for arg in &args {
        match arg.as_str() {
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
    let mut failed = 0;
    println!(
        "## maple-rs compare ({:?} mode, {} cores)\n",
        mode,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for t in chosen {
        ctx.progress(format!("table {}", t.name));
        // A panicking table (a bug in a structure under test) is reported and skipped so
        // that the other tables still print.
        match panic::catch_unwind(AssertUnwindSafe(|| (t.run)(&ctx))) {
            Ok(tables) => {
                for table in tables {
                    println!("{table}");
                }
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| e.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                println!("### {}\n\nFAILED: the table panicked: {msg}\n", t.name);
                failed += 1;
            }
        }
    }
    ctx.progress(format!("done in {:.1}s", start.elapsed().as_secs_f64()));
    if failed > 0 {
        eprintln!("{failed} table(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
