//! Run one input file through a target: `cargo run --example run_one -- <target> <file>`.
fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: run_one <maple_ops|maple_alloc|vmlock_ops|maple_rcu|vmlock_rcu> <file>");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    match target.as_str() {
        "maple_ops" => maple_fuzz::run_maple_ops(&data),
        "maple_alloc" => maple_fuzz::run_maple_alloc(&data),
        "vmlock_ops" => maple_fuzz::run_vmlock_ops(&data),
        "maple_rcu" => maple_fuzz::run_maple_rcu(&data),
        "vmlock_rcu" => maple_fuzz::run_vmlock_rcu(&data),
        _ => {
            eprintln!("unknown target {target}");
            std::process::exit(2);
        }
    }
    println!("ok");
}
