//! Compiles every `kernels/*.cu` to PTX with nvcc (candle-kernels style). The PTX goes to
//! `$OUT_DIR/<name>.ptx` and is embedded by `src/kernels.rs` when the `bots_ptx` cfg is set. Without
//! line info by default: `-lineinfo` adds only line tables (`.loc`/`.file`, ~40% of the PTX, which every
//! test binary embeds; the generated code is the same), so `BOTS_PTX_LINEINFO=1` turns it on for
//! compute-sanitizer and profiler source lines (`scripts/cost-model.sh` always compiles its own with it).
//! Each PTX is also written deflated (`<name>.ptx.deflate`, about a seventh of the text), which is what
//! `src/kernels.rs` embeds: every binary that links the crate carries the kernels, and the text would
//! be ~270 KB of each (the `.ptx` stays beside it for `scripts/check-ptx.sh` and the emulators).
//!
//! nvcc is found through `NVCC`, `CUDA_HOME/bin/nvcc`, `CUDA_PATH/bin/nvcc`, `/usr/local/cuda/bin/nvcc`,
//! then `PATH`. Target: `CUDA_ARCH` (default `compute_80`). `--fmad=false` keeps nvcc from contracting
//! `a*b + c` into FMAs, so the update arithmetic matches the CPU twin (Rust never contracts) bit for bit.
//! Without nvcc the crate still builds (with a warning) and the CUDA backend reports
//! `CudaUnavailable`; `BOTS_REQUIRE_NVCC=1` turns a missing or failing nvcc into a build error.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel boundary, shared with the crate (`src/abi.rs`), rendered into `$OUT_DIR/include/abi.cuh`.
#[path = "src/abi.rs"]
mod abi;

/// Writes `$OUT_DIR/include/abi.cuh` from `src/abi.rs` (the kernels include it through `-I`; a build
/// script writes nowhere else). A copy left in `kernels/` would shadow it (a quoted include searches
/// the including file's folder first), so one there is an error.
fn write_abi_header(out: &Path) -> PathBuf {
    if Path::new("kernels/abi.cuh").exists() {
        panic!("kernels/abi.cuh shadows the header build.rs generates into OUT_DIR: delete it");
    }
    let dir = out.join("include");
    std::fs::create_dir_all(&dir).expect("creating $OUT_DIR/include");
    std::fs::write(dir.join("abi.cuh"), abi::abi_cuh()).expect("writing $OUT_DIR/include/abi.cuh");
    dir
}

fn find_nvcc() -> Option<PathBuf> {
    let env_path = |v: &str| std::env::var_os(v).map(PathBuf::from);
    let candidates = [
        env_path("NVCC"),
        env_path("CUDA_HOME").map(|p| p.join("bin/nvcc")),
        env_path("CUDA_PATH").map(|p| p.join("bin/nvcc")),
        Some(PathBuf::from("/usr/local/cuda/bin/nvcc")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("nvcc")).find(|p| p.is_file()))
}

fn main() {
    println!("cargo:rustc-check-cfg=cfg(bots_ptx)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/abi.rs");
    println!("cargo:rerun-if-changed=kernels");
    for v in ["NVCC", "CUDA_HOME", "CUDA_PATH", "CUDA_ARCH", "BOTS_REQUIRE_NVCC", "BOTS_PTX_LINEINFO", "PATH"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let require = std::env::var("BOTS_REQUIRE_NVCC").is_ok_and(|v| v == "1");
    let fail = |msg: String| {
        if require {
            panic!("{msg} (BOTS_REQUIRE_NVCC=1)");
        }
        println!("cargo:warning={msg}; the CUDA backend will report CudaUnavailable");
    };
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("kernels")
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "cu")).collect())
        .unwrap_or_default();
    kernels.sort();
    for entry in std::fs::read_dir("kernels").into_iter().flatten().flatten() {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Written with or without nvcc: the CPU emulators of the kernels include it too
    // (scripts/abi-header.sh finds it).
    let include = write_abi_header(&out);
    // No stale PTX from an earlier build may outlive a build without nvcc (scripts/check-ptx.sh reads it).
    for entry in std::fs::read_dir(&out).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "ptx" || e == "deflate") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let Some(nvcc) = find_nvcc() else {
        return fail("built without nvcc: no nvcc in NVCC, CUDA_HOME, CUDA_PATH, /usr/local/cuda or PATH".into());
    };
    let arch = std::env::var("CUDA_ARCH").unwrap_or_else(|_| "compute_80".into());
    let lineinfo = std::env::var("BOTS_PTX_LINEINFO").is_ok_and(|v| v == "1");
    for cu in &kernels {
        let ptx = out.join(Path::new(cu.file_stem().expect("a .cu file name")).with_extension("ptx"));
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17", "--fmad=false", &format!("-arch={arch}"), "-Ikernels"])
            .args(lineinfo.then_some("-lineinfo"))
            .arg(format!("-I{}", include.display()))
            .arg("-o")
            .arg(&ptx)
            .arg(cu)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => return fail(format!("nvcc ({}) failed on {} with {s}", nvcc.display(), cu.display())),
            Err(e) => return fail(format!("could not run nvcc ({}): {e}", nvcc.display())),
        }
        let text = std::fs::read(&ptx).expect("reading the PTX nvcc wrote");
        let packed = miniz_oxide::deflate::compress_to_vec(&text, 9);
        std::fs::write(ptx.with_extension("ptx.deflate"), packed).expect("writing the deflated PTX");
    }
    println!("cargo:rustc-cfg=bots_ptx");
}
