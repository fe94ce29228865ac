// CPU side of scripts/emu/run.sh: the same scenarios as emu_main.cpp, on the CPU backend, same output.
use bots::{Backend, Config, CpuPool, Evidence, FeatureForm, Features};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a[1].parse().unwrap();
    let batch: usize = a[2].parse().unwrap();
    let steps: u32 = a[3].parse().unwrap();
    let tau: f32 = a[4].parse().unwrap();
    let do_sample = a[5] == "1";
    let rho: f32 = a[6].parse().unwrap();
    let adaptive = a[7] == "1";
    // 0 none, 1 f16 (j/64), 2 f32 (j/10); FORM:C for C columns (default 2), as emu_main.cpp.
    let (features, cols): (u32, usize) = match a[8].split_once(':') {
        Some((f, c)) => (f.parse().unwrap(), c.parse().unwrap()),
        None => (a[8].parse().unwrap(), 2),
    };
    let counts = a[9] == "1";
    let c: f32 = a[10].parse().unwrap();
    let ks: Vec<usize> = a[11..].iter().map(|s| s.parse().unwrap()).collect();
    let feature_keys = if features == 0 { Config::default().feature_keys } else { (0..cols).map(|c| format!("ref{c}")).collect() };
    let cfg = Config { batch, seed: 7, tau, do_sample, rho, adaptive_rho: adaptive, prior_strength: (c >= 0.0).then_some(c), feature_keys, ..Default::default() };
    // Column c of task t: min(1, w + x_c) (c = 1 of two columns: the strong column of before).
    let column = |c: usize| -> Vec<f32> {
        (0..n)
            .map(|t| match features {
                1 => (((t * 37) % 65) as f32 / 64.0 + ((t * 11 * c) % 33) as f32 / 64.0).min(1.0),
                _ => (((t * 37) % 11) as f32 / 10.0 + ((t * 11 * c) % 7) as f32 / 10.0).min(1.0),
            })
            .collect()
    };
    let f = (features != 0).then(|| {
        let cs: Vec<Vec<f32>> = (0..cols).map(column).collect();
        let refs: Vec<&[f32]> = cs.iter().map(Vec::as_slice).collect();
        let f = Features::from_columns(&refs).unwrap();
        let want = if features == 1 { FeatureForm::F16 } else { FeatureForm::F32 };
        assert_eq!(f.form(), want, "j/64 are f16 values, tenths are not");
        f
    });
    let mut pool = CpuPool::new(cfg, n, f).unwrap();
    for s in 0..steps {
        let sel = pool.select(batch).unwrap();
        print!("SEL {s} k={batch}");
        for t in &sel { print!(" {t}"); }
        println!();
        if s % 5 == 0 {
            for &k in &ks {
                if k < 1 || k > n { continue; }
                let o = pool.select(k).unwrap();
                print!("SEL {s} k={k}");
                for t in &o { print!(" {t}"); }
                println!();
            }
        }
        let ev = if counts {
            let (mut sv, mut fv) = (vec![], vec![]);
            for &t in &sel {
                let nk = 1 + (t * 3 + s) % 16;
                let sk = (t * 5 + s * 11) % (nk + 1);
                sv.push(sk as f32);
                fv.push((nk - sk) as f32);
            }
            Evidence::counts(sel.clone(), sv, fv)
        } else {
            Evidence::pass_rates(sel.clone(), sel.iter().map(|&t| ((t * 7 + s * 13) % 17) as f32 / 16.0).collect())
        };
        pool.update(&ev).unwrap();
    }
    let st = pool.to_host().unwrap();
    let g = st.globals;
    match g.mu {
        Some(mu) => println!("GLOBALS step={} mu={:08x} rho={:08x}", g.step, mu.to_bits(), g.rho.to_bits()),
        None => println!("GLOBALS step={} mu=none:{:08x} rho={:08x}", g.step, 0f32.to_bits(), g.rho.to_bits()),
    }
    for t in 0..n {
        println!("T {t} {:08x} {:08x}", st.alpha[t].to_bits(), st.beta[t].to_bits());
    }
}
