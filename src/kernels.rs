//! The PTX of the CUDA kernels, embedded at build time (`build.rs` compiles `kernels/*.cu` with nvcc).
//! Host code only sees the text: it never knows how the PTX was made.
//!
//! Built without nvcc, [`BOTS_PTX`] is `None` and the CUDA backend answers
//! [`crate::BotsError::CudaUnavailable`].

/// `kernels/bots.cu` as PTX (`.version` <= 9.0 for driver 580 / CUDA 13.0), or `None` when the crate
/// was built without nvcc.
#[cfg(bots_ptx)]
pub const BOTS_PTX: Option<&str> = Some(include_str!(concat!(env!("OUT_DIR"), "/bots.ptx")));
/// `kernels/bots.cu` as PTX, or `None` when the crate was built without nvcc.
#[cfg(not(bots_ptx))]
pub const BOTS_PTX: Option<&str> = None;

/// Why [`BOTS_PTX`] is missing, for the `CudaUnavailable` error.
pub const NO_PTX_REASON: &str = "built without nvcc: the kernels were not compiled; set NVCC or CUDA_HOME and rebuild";

/// Whether this build carries the CUDA kernels: `Ok` with the PTX's ISA version (`"9.0"`, say: the
/// oldest driver that loads it is the one of that CUDA version), or `Err` saying why not and what to do.
/// A driver and a device are still needed at run time ([`crate::cuda_usable`], [`crate::CudaPool::new`]).
///
/// ```
/// match bots::cuda_kernels() {
///     Ok(version) => println!("kernels built, PTX ISA {version}"),
///     Err(why) => println!("no CUDA backend in this build: {why}"),
/// }
/// ```
pub fn cuda_kernels() -> std::result::Result<&'static str, &'static str> {
    match BOTS_PTX {
        Some(ptx) => Ok(ptx.lines().find_map(|l| l.trim().strip_prefix(".version ")).map(str::trim).unwrap_or("?")),
        None => Err(NO_PTX_REASON),
    }
}

#[cfg(test)]
mod tests {
    /// When the PTX is present, every listed entry point is in it and its ISA version is <= 9.0.
    #[test]
    fn entries_are_in_the_ptx() {
        let Some(ptx) = super::BOTS_PTX else {
            crate::test_skip("built without nvcc: no PTX to check");
            return;
        };
        for k in crate::abi::Kernel::ALL {
            assert!(ptx.contains(&format!(".entry {}(", k.name())), "missing .entry {}", k.name());
        }
        let v = ptx.lines().find_map(|l| l.trim().strip_prefix(".version ")).expect(".version line");
        let (maj, min) = v.trim().split_once('.').expect("major.minor");
        let (maj, min): (u32, u32) = (maj.parse().unwrap(), min.parse().unwrap());
        assert!((maj, min) <= (9, 0), "PTX .version {v} is newer than 9.0");
    }

    /// Approximate arithmetic (`.approx`) and fused multiply-adds (`fma.`) appear in the fast entries
    /// (`KernelMode::Fast`) and nowhere else: the exact entries stay bit for bit with the CPU twin.
    #[test]
    fn only_the_fast_entries_approximate() {
        let Some(ptx) = super::BOTS_PTX else {
            crate::test_skip("built without nvcc: no PTX to check");
            return;
        };
        let fast = [crate::abi::Kernel::UpdateSampleScoreFast, crate::abi::Kernel::RadixFilterFast];
        assert_eq!(ptx.split(".entry ").count() - 1, crate::abi::Kernel::ALL.len(), "one .entry per kernel");
        for k in crate::abi::Kernel::ALL {
            let body = ptx
                .split(".entry ")
                .find(|b| b.starts_with(&format!("{}(", k.name())))
                .unwrap_or_else(|| panic!("missing .entry {}", k.name()));
            let approx = body.contains(".approx") || body.contains("fma.");
            assert_eq!(
                approx,
                fast.contains(k),
                "{}: .approx or fma {}",
                k.name(),
                if approx { "present" } else { "absent" }
            );
        }
    }
}
