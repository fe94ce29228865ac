//! Helpers shared by the integration tests.

pub mod fuzz;

/// Says on the test process's real stderr that the running test skipped its checks, and why. libtest
/// captures `println!`/`eprintln!` of passing tests; a write to `std::io::stderr()` is not captured, so
/// `cargo test` shows the line even when the test passes.
#[allow(dead_code)]
pub fn skip(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// True when the CUDA backend can run here: kernels compiled in, a driver and a device present.
/// Otherwise says `SKIPPED <test>: no CUDA driver` on stderr (see [`skip`]) and returns false, or panics
/// under `BOTS_REQUIRE_GPU=1`.
#[allow(dead_code)]
pub fn gpu_available() -> bool {
    let ok = bots::cuda_usable() && cudarc::driver::CudaContext::device_count().map(|c| c > 0).unwrap_or(false);
    if !ok {
        if std::env::var("BOTS_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("BOTS_REQUIRE_GPU=1 but no CUDA driver/device is usable (or the crate was built without nvcc)");
        }
        skip("no CUDA driver (or built without nvcc): GPU checks not run");
    }
    ok
}

/// Recomputes a checkpoint's file checksum (its last 4 bytes) after a deliberate edit.
#[allow(dead_code)]
pub fn reseal_file_only(b: &mut [u8]) {
    let end = b.len() - 4;
    let fc = crc32fast::hash(&b[..end]);
    b[end..].copy_from_slice(&fc.to_le_bytes());
}

/// Recomputes both checksums of a checkpoint (header + config, and the whole file) after a deliberate
/// edit, so the edit reaches the validation behind them. Inputs too short to hold them are left as
/// they are; a header CRC whose config length runs past the end is left stale.
#[allow(dead_code)]
pub fn reseal(b: &mut [u8]) {
    let header = bots::checkpoint::HEADER_LEN;
    if b.len() < header + 4 {
        return;
    }
    let c = u32::from_le_bytes(b[56..60].try_into().unwrap()) as usize;
    if header + c <= b.len() {
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..60]);
        h.update(&b[header..header + c]);
        b[60..64].copy_from_slice(&h.finalize().to_le_bytes());
    }
    reseal_file_only(b);
}
