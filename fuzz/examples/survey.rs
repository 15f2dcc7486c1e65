//! Run seeded random inputs through one target and summarise the distinct failures:
//! `cargo run --example survey -- <target> [count] [seed]`. Failing inputs are saved in
//! the system temp directory.
use std::collections::BTreeMap;

use maple_fuzz::input::SplitMix64;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "vmlock_ops".to_string());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let run: fn(&[u8]) = match target.as_str() {
        "maple_ops" => maple_fuzz::run_maple_ops,
        "maple_alloc" => maple_fuzz::run_maple_alloc,
        "vmlock_ops" => maple_fuzz::run_vmlock_ops,
        "maple_rcu" => maple_fuzz::run_maple_rcu,
        "vmlock_rcu" => maple_fuzz::run_vmlock_rcu,
        _ => {
            eprintln!("unknown target {target}");
            std::process::exit(2);
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = SplitMix64(seed);
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for i in 0..n {
        let len = (rng.next_u64() % 2048) as usize;
        let data = rng.bytes(len);
        if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            // The first line, numbers blanked (a run of digits becomes one `#`), groups failures of one kind.
            let mut key = String::new();
            for c in msg.lines().next().unwrap_or("").chars().take(100) {
                if !c.is_ascii_digit() {
                    key.push(c);
                } else if !key.ends_with('#') {
                    key.push('#');
                }
            }
            let entry = seen.entry(key).or_insert((i, 0));
            entry.1 += 1;
            if entry.1 == 1 {
                let p = std::env::temp_dir().join(format!("{target}-survey-{i}.bin"));
                let _ = std::fs::write(&p, &data);
            }
        }
    }
    for (k, (first, count)) in &seen {
        println!("{count:5} x  first #{first}  {k}");
    }
    println!("{n} inputs, {} distinct failures", seen.len());
}
