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
    let features: u32 = a[8].parse().unwrap(); // 0 none, 1 f16 (j/64), 2 f32 (j/10)
    let counts = a[9] == "1";
    let c: f32 = a[10].parse().unwrap();
    let ks: Vec<usize> = a[11..].iter().map(|s| s.parse().unwrap()).collect();
    let cfg = Config { batch, seed: 7, tau, do_sample, rho, adaptive_rho: adaptive, prior_strength: (c >= 0.0).then_some(c), ..Default::default() };
    let f = match features {
        0 => None,
        1 => {
            let w: Vec<f32> = (0..n).map(|t| ((t * 37) % 65) as f32 / 64.0).collect();
            let s: Vec<f32> = (0..n).map(|t| (w[t] + ((t * 11) % 33) as f32 / 64.0).min(1.0)).collect();
            let f = Features::from_f32(&w, &s).unwrap();
            assert_eq!(f.form(), FeatureForm::F16);
            Some(f)
        }
        _ => {
            let w: Vec<f32> = (0..n).map(|t| ((t * 37) % 11) as f32 / 10.0).collect();
            let s: Vec<f32> = (0..n).map(|t| (w[t] + ((t * 11) % 7) as f32 / 10.0).min(1.0)).collect();
            let f = Features::from_f32(&w, &s).unwrap();
            assert_eq!(f.form(), FeatureForm::F32, "tenths are not f16 values");
            Some(f)
        }
    };
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
