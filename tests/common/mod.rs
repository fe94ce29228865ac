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

/// A version 3 checkpoint of a pool with two feature columns (or none) rewritten as a version 1 or 2
/// file: the 64-byte header of those versions (bytes 60..80 of version 3 dropped), resealed.
#[allow(dead_code)]
pub fn as_version(b: &[u8], version: u32) -> Vec<u8> {
    assert!(version < 3);
    assert!(matches!(u32::from_le_bytes(b[60..64].try_into().unwrap()), 0 | 2), "K = 2 or no features");
    let mut out = b[..60].to_vec();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&b[bots::checkpoint::HEADER_LEN..]);
    out[8..12].copy_from_slice(&version.to_le_bytes());
    reseal(&mut out);
    out
}

/// Recomputes both checksums of a checkpoint (header + config, and the whole file) after a deliberate
/// edit, so the edit reaches the validation behind them. Inputs too short to hold them are left as
/// they are; a header CRC whose config length runs past the end is left stale.
#[allow(dead_code)]
pub fn reseal(b: &mut [u8]) {
    if b.len() < 12 {
        return;
    }
    let version = u32::from_le_bytes(b[8..12].try_into().unwrap());
    let header = if version >= 3 {
        bots::checkpoint::HEADER_LEN
    } else {
        64 /* versions 1 and 2 */
    };
    if b.len() < header + 4 {
        return;
    }
    let c = u32::from_le_bytes(b[56..60].try_into().unwrap()) as usize;
    if header + c <= b.len() {
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..header - 4]);
        h.update(&b[header..header + c]);
        b[header - 4..header].copy_from_slice(&h.finalize().to_le_bytes());
    }
    reseal_file_only(b);
}

/// Two states are the same bit for bit: alpha, beta, step, rho, mu and the prior.
#[allow(dead_code)]
pub fn assert_bit_identical(a: &bots::PoolState, b: &bots::PoolState, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: N");
    for k in 0..a.len() {
        assert_eq!(a.alpha[k].to_bits(), b.alpha[k].to_bits(), "{what}: alpha[{k}]");
        assert_eq!(a.beta[k].to_bits(), b.beta[k].to_bits(), "{what}: beta[{k}]");
    }
    assert_eq!(a.globals.step, b.globals.step, "{what}: step");
    assert_eq!(a.globals.rho.to_bits(), b.globals.rho.to_bits(), "{what}: rho");
    assert_eq!(a.globals.mu.map(f32::to_bits), b.globals.mu.map(f32::to_bits), "{what}: mu");
    assert_eq!(a.prior, b.prior, "{what}: prior");
}
