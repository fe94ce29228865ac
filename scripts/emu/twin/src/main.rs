// CPU side of scripts/emu/run.sh: the same scenarios as emu_main.cpp, on the CPU backend, same output.
use bots::{Backend, Config, CpuPool, Evidence, FeatureForm, Features, Neighbours};

/// The scenario's neighbour graph: emu_main.cpp's graph_rows, value for value (rows canonical as given).
fn graph_rows(n: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
    let (mut ids, mut w) = (vec![Neighbours::NONE; n * k], vec![0.0f32; n * k]);
    for t in 0..n {
        let l = (1 + (t * 5) % k).min(n - 1);
        for s in 0..l {
            let base = t as u64 * 2654435761 + s as u64 * 40503 + 12345;
            for a in 0u64.. {
                let j = if a == 0 && (t + s) % 4 == 0 { base % (n as u64).min(8) } else { (base + a) % n as u64 };
                if j as usize == t || ids[t * k..t * k + s].contains(&(j as u32)) {
                    continue;
                }
                ids[t * k + s] = j as u32;
                w[t * k + s] = (100 - 7 * s - t % 5) as f32 / 100.0;
                break;
            }
        }
    }
    (ids, w)
}

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
    // nbr=K:ETA: a neighbour graph (graph_rows) and neighbour_weight ETA, as emu_main.cpp.
    let nbr: Option<(usize, f32)> = a[11..].iter().find_map(|s| {
        let (k, eta) = s.strip_prefix("nbr=")?.split_once(':').unwrap_or((s.strip_prefix("nbr=")?, "0.5"));
        Some((k.parse().unwrap(), eta.parse().unwrap()))
    });
    let ks: Vec<usize> = a[11..].iter().filter(|s| !s.starts_with("nbr=")).map(|s| s.parse().unwrap()).collect();
    let feature_keys = if features == 0 { Config::default().feature_keys } else { (0..cols).map(|c| format!("ref{c}")).collect() };
    let neighbour_weight = nbr.map_or(0.0, |(_, eta)| eta);
    let cfg = Config { batch, seed: 7, tau, do_sample, rho, adaptive_rho: adaptive, prior_strength: (c >= 0.0).then_some(c), feature_keys, neighbour_weight, ..Default::default() };
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
    let graph = nbr.map(|(k, _)| {
        let (ids, w) = graph_rows(n, k);
        let g = Neighbours::from_lists(n, k, ids.clone(), w.clone()).unwrap();
        assert!(g.ids() == ids.as_slice() && g.weights() == w.as_slice(), "the rows are canonical as given");
        g
    });
    let mut pool = CpuPool::with_neighbours(cfg, n, f, graph).unwrap();
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
