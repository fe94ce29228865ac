//! The boundary between the Rust host code and the CUDA kernels, declared once: the by-value
//! parameter block, the device scalars, the device error codes, the radix-select shape, the model
//! constants the kernels share with the CPU twin, and the kernels in launch-table order.
//!
//! `build.rs` includes this file too (`#[path]`) and renders [`abi_cuh`] into `$OUT_DIR/include/abi.cuh`,
//! which the kernels include (and the CPU emulators, through `scripts/abi-header.sh`). So a change here
//! reaches both sides, and nothing here may name the rest of the crate. Some declarations are used
//! only in the rendered header (the kernels' side), hence `dead_code` is allowed here.
#![allow(dead_code)]

/// Declares a `#[repr(C)]` struct and the text of its C twin (`C_DECL`), field by field.
macro_rules! c_struct {
    ($(#[$m:meta])* $name:ident = $cname:literal { $($(#[$fm:meta])* $f:ident : $t:ty = $ct:literal $([$len:literal])?,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
        impl $name {
            /// The C declaration of this struct (in the generated `abi.cuh`).
            pub const C_DECL: &'static str = concat!(
                "struct ", $cname, " {\n",
                $("    ", $ct, " ", stringify!($f), $("[", $len, "]",)? ";\n",)*
                "};\n"
            );
            /// The C name of this struct.
            pub const C_NAME: &'static str = $cname;
            /// Each field: name, C type, byte offset.
            pub const FIELDS: &'static [(&'static str, &'static str, usize)] =
                &[$((stringify!($f), $ct, std::mem::offset_of!($name, $f)),)*];
        }
    };
}

c_struct! {
    /// Hyper-parameters, passed by value to the kernels (`struct Params`).
    KernelParams = "Params" {
        seed: u64 = "unsigned long long",
        /// Tasks in the pool.
        n: u64 = "unsigned long long",
        lambda: f32 = "float",
        /// Rollouts per task, as f32.
        m: f32 = "float",
        target: f32 = "float",
        tau: f32 = "float",
        gamma: f32 = "float",
        /// The constant prior (used when the per-task prior pointers are null).
        alpha0: f32 = "float",
        beta0: f32 = "float",
        do_sample: u32 = "uint32_t",
        adaptive_rho: u32 = "uint32_t",
        /// The pool's feature form: [`FEATURES_NONE`], [`FEATURES_F16`] or [`FEATURES_F32`].
        feature_form: u32 = "uint32_t",
        /// K, the feature columns of `DevicePtrs::feat` (1 to [`MAX_FEATURE_COLUMNS`]; 0 without
        /// features). The kernels read no feature when it is out of that range.
        n_features: u32 = "uint32_t",
        /// k_nn, the slots of each row of `DevicePtrs::nbr_ids` (0: no neighbour graph, the neighbour
        /// kernels do nothing).
        nbr_k: u32 = "uint32_t",
        /// eta, `Config::neighbour_weight` (docs/EVIDENCE-SOURCES.md §2.2).
        eta: f32 = "float",
        /// The graph's largest in-degree (the longest reverse list): `nbr_push` runs `len · nbr_max_in`
        /// threads over a batch's reverse edges.
        nbr_max_in: u32 = "uint32_t",
        /// Capacity of `DevicePtrs::touched` (tasks).
        nbr_touched_cap: u64 = "unsigned long long",
        /// Slots of `DevicePtrs::batch_hash` (a power of two, at least twice the largest batch).
        nbr_hash_slots: u64 = "unsigned long long",
        /// The Philox4x32-10 round keys of `seed` (`crate::twin::philox::round_keys`): the kernels read
        /// them as operands from the parameter bank, rather than keep twenty registers through a task
        /// loop or derive them again for every block.
        philox_keys: [u32; 20] = "uint32_t" [20],
    }
}

c_struct! {
    /// The device-resident scalars (`struct Scalars`): the step, the batch statistics, the sticky error
    /// record and the radix-select state.
    DeviceScalars = "Scalars" {
        /// Updates applied so far (every kernel reads it from here).
        step: u64 = "unsigned long long",
        mu: f32 = "float",
        mu_set: u32 = "uint32_t",
        rho: f32 = "float",
        /// A pool-wide update waits for the next fused pass.
        pending: u32 = "uint32_t",
        /// Last batch's mean |p_tilde - r|.
        miss: f32 = "float",
        miss_set: u32 = "uint32_t",
        /// Sticky first error ([`DeviceError`] code, 0 = none), cleared by the host when it reports it.
        err_code: u32 = "uint32_t",
        err_pos: u32 = "uint32_t",
        err_task: u32 = "uint32_t",
        err_v0: f32 = "float",
        err_v1: f32 = "float",
        pad0: u32 = "uint32_t",
        /// This batch's smallest error key: `position << 8 | code` for a row's range or outcome error,
        /// `REPEAT_FLAG | task << 8 | code` for a repeated task, [`NO_ERROR`] = none.
        batch_err: u64 = "unsigned long long",
        /// Known high digits of the k-th largest key.
        prefix: u64 = "unsigned long long",
        /// Keys still to take from the current bin.
        k_rem: u64 = "unsigned long long",
        /// Size of the current bin.
        set_size: u64 = "unsigned long long",
        /// Keys written to the output so far.
        n_out: u64 = "unsigned long long",
        cand_cnt: [u64; 2] = "unsigned long long" [2],
        /// 0, or 1 + the pass whose bin completes the selection.
        done: u32 = "uint32_t",
        /// This pass reads the candidate buffer (1) or the pool (0).
        read_buf: u32 = "uint32_t",
        /// This pass appends its bin to the other candidate buffer.
        write_buf: u32 = "uint32_t",
        /// Tasks `nbr_push` appended to `DevicePtrs::touched` this batch (at most n: each is claimed
        /// once); reset to 0 by `nbr_clear`.
        n_touched: u32 = "uint32_t",
    }
}

c_struct! {
    /// The pool's own device buffers (`struct Pool`), passed by value as one parameter to every kernel
    /// that touches them. Null where the pool has none (per-task priors, features).
    DevicePtrs = "Pool" {
        alpha: u64 = "float*",
        beta: u64 = "float*",
        /// Per-task prior (null: the constant prior of [`KernelParams`]).
        alpha0: u64 = "const float*",
        beta0: u64 = "const float*",
        /// The K feature columns back to back (column j at element `j·n`, K·n values), weakest first,
        /// in the form of `KernelParams::feature_form` (null: none).
        feat: u64 = "const void*",
        scalars: u64 = "Scalars*",
        /// Top 16 bits of each task's key (2 bytes per task).
        digits: u64 = "unsigned short*",
        /// Duplicate-check bitmap, one bit per task.
        bitmap: u64 = "uint32_t*",
        /// The radix histograms, `(RADIX_PASSES + 1) * RADIX_BINS` counts.
        hist: u64 = "uint32_t*",
        /// The two candidate buffers of the radix select.
        cand: u64 = "unsigned long long*",
        /// The selected keys of the device verb (a power of two >= the k capacity).
        out_keys: u64 = "unsigned long long*",
        /// The neighbour graph's rows, `nbr_k` ids per task (`n · nbr_k`, empty slots
        /// [`NO_NEIGHBOUR`], every other id < n), and their weights (null: no graph).
        nbr_ids: u64 = "const uint32_t*",
        nbr_w: u64 = "const float*",
        /// The reverse lists as CSR: offsets (`n + 1`, non-decreasing, the last = the edges E) and
        /// source ids (E, each < n).
        rev_off: u64 = "const unsigned long long*",
        rev_ids: u64 = "const uint32_t*",
        /// Claim bitmap of `nbr_push`, one bit per task (all clear between batches).
        claim: u64 = "uint32_t*",
        /// The tasks that receive neighbour evidence this batch (`nbr_touched_cap`).
        touched: u64 = "uint32_t*",
        /// The batch lookup, task id to row: `nbr_hash_slots` entries `task << 32 | row`, open
        /// addressing, [`HASH_EMPTY`] when free (filled by `batch_validate`, emptied by `nbr_clear`).
        batch_hash: u64 = "unsigned long long*",
        /// The fused pass's deferred draws, one bit per task (32 tasks a word, every word rewritten by
        /// each fused pass; `finish_deferred` draws the set ones).
        defer: u64 = "uint32_t*",
    }
}

c_struct! {
    /// One evidence batch in device memory (`struct Batch`), by value to the batch kernels.
    BatchArgs = "Batch" {
        tasks: u64 = "const uint32_t*",
        /// Pass rates (when `counts == 0`), else null.
        rates: u64 = "const float*",
        /// Success and failure counts (when `counts == 1`), else null.
        succ: u64 = "const float*",
        fail: u64 = "const float*",
        /// Rows of the batch.
        len: u64 = "unsigned long long",
        counts: u32 = "uint32_t",
        pad0: u32 = "uint32_t",
    }
}

/// 64-bit words of [`DeviceScalars`].
pub const SCALAR_WORDS: usize = std::mem::size_of::<DeviceScalars>() / 8;
const _: () = assert!(
    std::mem::size_of::<KernelParams>() == 168
        && std::mem::size_of::<DeviceScalars>() == 128
        && std::mem::size_of::<DevicePtrs>() == 152
        && std::mem::size_of::<BatchArgs>() == 48
);

/// `batch_err` when the batch is valid.
pub const NO_ERROR: u64 = u64::MAX;
/// High bit of a `batch_err` key that names a repeated task (by id) rather than a row (by position): it
/// ranks every repeat after every range or outcome error (`crate::evidence::validate_batch`'s rule).
pub const REPEAT_FLAG: u64 = 1 << 63;

/// What a device-side check found (the `err_code` of [`DeviceScalars`], the low 8 bits of `batch_err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DeviceError {
    OutOfRange = 1,
    Duplicate = 2,
    PassRate = 3,
    NotFinite = 4,
    Negative = 5,
    Empty = 6,
    TooMany = 7,
    /// The radix select came out inconsistent (never caused by input).
    Internal = 255,
}

impl DeviceError {
    /// Every code, for the C header.
    pub const ALL: [DeviceError; 8] = [
        DeviceError::OutOfRange,
        DeviceError::Duplicate,
        DeviceError::PassRate,
        DeviceError::NotFinite,
        DeviceError::Negative,
        DeviceError::Empty,
        DeviceError::TooMany,
        DeviceError::Internal,
    ];

    /// The code's name in C (`ERR_...`).
    pub fn c_name(self) -> &'static str {
        match self {
            DeviceError::OutOfRange => "ERR_OUT_OF_RANGE",
            DeviceError::Duplicate => "ERR_DUPLICATE",
            DeviceError::PassRate => "ERR_PASS_RATE",
            DeviceError::NotFinite => "ERR_NOT_FINITE",
            DeviceError::Negative => "ERR_NEGATIVE",
            DeviceError::Empty => "ERR_EMPTY",
            DeviceError::TooMany => "ERR_TOO_MANY",
            DeviceError::Internal => "ERR_INTERNAL",
        }
    }

    /// The code read back from the device, if it is one.
    pub fn from_code(code: u32) -> Option<DeviceError> {
        DeviceError::ALL.into_iter().find(|e| *e as u32 == code)
    }
}

/// `feature_form` of [`KernelParams`]: no features (the kernels read none).
pub const FEATURES_NONE: u32 = 0;
/// K columns of IEEE binary16 bits, 2 bytes per value.
pub const FEATURES_F16: u32 = 1;
/// K columns of f32, 4 bytes per value.
pub const FEATURES_F32: u32 = 2;
/// The most feature columns a pool may have (K, `KernelParams::n_features`): it bounds the checkpoint
/// header, `crate::Features` and the column sums of `batch_reduce` (a shared array of this size).
pub const MAX_FEATURE_COLUMNS: u32 = 64;
/// The lower column of a segment of K = 1 in the kernels' `segment`: the null model (pass rate 0),
/// which has no column.
pub const NO_COLUMN: u32 = u32::MAX;

/// An empty slot of a neighbour row (`crate::Neighbours::NONE`).
pub const NO_NEIGHBOUR: u32 = u32::MAX;
/// A free slot of the batch lookup (`DevicePtrs::batch_hash`): no entry has it (its task would be
/// 2^32 - 1, never a task id).
pub const HASH_EMPTY: u64 = u64::MAX;

/// Radix digits of the 64-bit keys, most significant first: 11, 11, 11, 11, 10, 10 bits.
pub const RADIX_PASSES: u32 = 6;
/// Bins of one radix histogram (the widest digit).
pub const RADIX_BINS: u32 = 2048;
/// Offset in the denominator of mu_est, as in Trinity-RFT.
pub const MU_EPS: f64 = 1e-6;
/// Adaptive rho halves rho when the batch's mean interpolation miss is at least this.
pub const ADAPTIVE_RHO_MISS: f64 = 0.25;
/// Philox blocks one Gamma draw may use (two Marsaglia-Tsang attempts per block).
pub const MAX_GAMMA_BLOCKS: u32 = 64;
/// Threads of the one `batch_reduce` block: lanes of the batch sums on both backends.
pub const BATCH_LANES: u32 = 256;

/// Philox4x32-10's round multipliers (Random123), of the CPU twin (`twin::philox`) and the kernels.
pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Philox4x32-10's Weyl key increments, added to the key between rounds.
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;
/// The purposes of a task's random words, bits 24.. of the second counter word (`TaskStream::block`):
/// the Gamma(alpha) and Gamma(beta) draws of the Beta sample, the Gumbel noise of Gumbel-top-k, and
/// one free for callers (the simulator's rollouts).
pub const PURPOSE_GAMMA_ALPHA: u32 = 0;
pub const PURPOSE_GAMMA_BETA: u32 = 1;
pub const PURPOSE_GUMBEL: u32 = 2;
pub const PURPOSE_USER: u32 = 3;
/// The Beta draw's one block for the first attempts of both Gammas (block 0: a Box-Muller pair, one
/// normal for each Gamma, and the two acceptance uniforms), in both kernel modes and on the CPU. A
/// Gamma whose first attempt rejects goes on with its own purpose's attempt blocks (1..), and a boost
/// reads block 0 of its own purpose.
pub const PURPOSE_FIRST: u32 = 4;

/// Declares the kernel enum, in launch-table order, with each kernel's PTX entry name.
macro_rules! kernels {
    ($($(#[$m:meta])* $v:ident = $name:literal,)*) => {
        /// Every kernel entry point of the PTX, in launch-table order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Kernel { $($(#[$m])* $v,)* }
        impl Kernel {
            /// Every kernel, in order (`Kernel::ALL[k as usize] == k`).
            pub const ALL: &'static [Kernel] = &[$(Kernel::$v,)*];
            /// The `.entry` name in the PTX (`extern "C"` in `kernels/bots.cu`).
            pub const fn name(self) -> &'static str {
                match self { $(Kernel::$v => $name,)* }
            }
        }
    };
}

kernels! {
    UpdateSampleScore = "update_sample_score",
    ApplyPending = "apply_pending",
    ClearPending = "clear_pending",
    ClearError = "clear_error",
    SelectInit = "select_init",
    RadixFindBin = "radix_find_bin",
    RadixFilter = "radix_filter",
    BitonicSortBlock = "bitonic_sort_block",
    BitonicStep = "bitonic_step",
    KeysToTasks = "keys_to_tasks",
    BatchValidate = "batch_validate",
    BatchReduce = "batch_reduce",
    BatchScatter = "batch_scatter",
    NbrPush = "nbr_push",
    NbrPullApply = "nbr_pull_apply",
    NbrClear = "nbr_clear",
    BatchFinish = "batch_finish",
    /// `update_sample_score` with the fast draws (`crate::KernelMode::Fast`); the same parameters.
    UpdateSampleScoreFast = "update_sample_score_fast",
    /// `radix_filter` recomputing the fast keys (`crate::KernelMode::Fast`); the same parameters.
    RadixFilterFast = "radix_filter_fast",
    /// The draws `update_sample_score` deferred (`DevicePtrs::defer`), drawn whole: digits and hist0.
    FinishDeferred = "finish_deferred",
    /// `finish_deferred` after `update_sample_score_fast`.
    FinishDeferredFast = "finish_deferred_fast",
    /// `update_sample_score` for a pool with a prior per task (`DevicePtrs::alpha0`, `beta0`); the
    /// entries without the suffix take the constant prior of `KernelParams` and refuse such a pool.
    UpdateSampleScorePrior = "update_sample_score_prior",
    /// `update_sample_score_fast` for a pool with a prior per task.
    UpdateSampleScoreFastPrior = "update_sample_score_fast_prior",
}

/// A struct field as `c_struct!` lists it: name, C type, byte offset.
type Field = (&'static str, &'static str, usize);

/// The text of the kernels' `abi.cuh` (build.rs writes it to `$OUT_DIR/include/`).
pub fn abi_cuh() -> String {
    let mut s = String::from(
        "// GENERATED by build.rs from src/abi.rs: edit that file, not this one (a test checks they agree).\n\
         // The Rust/CUDA boundary: layouts, error codes, radix shape, shared constants, the kernel list.\n\
         #pragma once\n#include <stddef.h>\n#include <stdint.h>\n\n",
    );
    s += &format!("#define BOTS_NO_ERROR 0x{NO_ERROR:X}ull\n#define BOTS_REPEAT_FLAG 0x{REPEAT_FLAG:X}ull\n");
    for e in DeviceError::ALL {
        s += &format!("#define {} {}u\n", e.c_name(), e as u32);
    }
    s += &format!(
        "#define BOTS_FEATURES_NONE {FEATURES_NONE}u\n#define BOTS_FEATURES_F16 {FEATURES_F16}u\n#define BOTS_FEATURES_F32 {FEATURES_F32}u\n"
    );
    s += &format!("#define BOTS_MAX_FEATURE_COLUMNS {MAX_FEATURE_COLUMNS}u\n#define BOTS_NO_COLUMN 0x{NO_COLUMN:X}u\n");
    s += &format!("#define BOTS_NO_NEIGHBOUR 0x{NO_NEIGHBOUR:X}u\n#define BOTS_HASH_EMPTY 0x{HASH_EMPTY:X}ull\n");
    s += &format!("#define BOTS_RADIX_PASSES {RADIX_PASSES}\n#define BOTS_RADIX_BINS {RADIX_BINS}\n");
    s += &format!("#define BOTS_MU_EPS {MU_EPS:e}\n#define BOTS_ADAPTIVE_RHO_MISS {ADAPTIVE_RHO_MISS:?}\n");
    s += &format!("#define BOTS_MAX_GAMMA_BLOCKS {MAX_GAMMA_BLOCKS}u\n#define BOTS_BATCH_LANES {BATCH_LANES}u\n");
    s += &format!(
        "#define BOTS_PHILOX_M0 0x{PHILOX_M0:08X}u\n#define BOTS_PHILOX_M1 0x{PHILOX_M1:08X}u\n\
         #define BOTS_PHILOX_W0 0x{PHILOX_W0:08X}u\n#define BOTS_PHILOX_W1 0x{PHILOX_W1:08X}u\n"
    );
    s += &format!(
        "#define BOTS_PURPOSE_GAMMA_ALPHA {PURPOSE_GAMMA_ALPHA}u\n#define BOTS_PURPOSE_GAMMA_BETA {PURPOSE_GAMMA_BETA}u\n\
         #define BOTS_PURPOSE_GUMBEL {PURPOSE_GUMBEL}u\n#define BOTS_PURPOSE_USER {PURPOSE_USER}u\n\
         #define BOTS_PURPOSE_FIRST {PURPOSE_FIRST}u\n\n"
    );
    s += "// X-macro of every kernel, in launch-table order (scripts/emu-driver registers them from it).\n";
    s += "#define BOTS_KERNELS(X)";
    for k in Kernel::ALL {
        s += &format!(" X({})", k.name());
    }
    s += "\n\n";
    let structs: [(&str, &str, usize, &[Field]); 4] = [
        (KernelParams::C_NAME, KernelParams::C_DECL, std::mem::size_of::<KernelParams>(), KernelParams::FIELDS),
        (DeviceScalars::C_NAME, DeviceScalars::C_DECL, std::mem::size_of::<DeviceScalars>(), DeviceScalars::FIELDS),
        (DevicePtrs::C_NAME, DevicePtrs::C_DECL, std::mem::size_of::<DevicePtrs>(), DevicePtrs::FIELDS),
        (BatchArgs::C_NAME, BatchArgs::C_DECL, std::mem::size_of::<BatchArgs>(), BatchArgs::FIELDS),
    ];
    for (name, decl, size, fields) in structs {
        s += decl;
        s += &format!("static_assert(sizeof({name}) == {size}, \"{name} layout\");\n");
        for (f, _, off) in fields {
            s += &format!("static_assert(offsetof({name}, {f}) == {off}, \"{name}::{f} offset\");\n");
        }
        let ptrs: String =
            fields.iter().filter(|(_, t, _)| t.ends_with('*')).map(|(f, _, _)| format!(" X({f})")).collect();
        s += &format!("// The pointer fields of {name} (the emulated driver checks each is null or a live buffer).\n");
        s += &format!("#define BOTS_{}_PTRS(X){ptrs}\n\n", name.to_uppercase());
    }
    s
}

#[cfg(test)]
mod tests {
    /// The header the kernels were compiled with is what this module renders (build.rs wrote it from
    /// this very file; embedded at compile time, so the test also holds where no checkout is).
    #[test]
    fn abi_header_is_current() {
        let built = include_str!(concat!(env!("OUT_DIR"), "/include/abi.cuh"));
        assert_eq!(built, super::abi_cuh(), "the generated abi.cuh differs from what src/abi.rs renders");
    }

    #[test]
    fn kernels_are_in_order_and_codes_round_trip() {
        for (i, k) in super::Kernel::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for e in super::DeviceError::ALL {
            assert_eq!(super::DeviceError::from_code(e as u32), Some(e));
        }
        assert_eq!(super::DeviceError::from_code(0), None);
    }

    /// The pointer structs are packed 8-byte words in declaration order (what the C side asserts too),
    /// so nothing the kernels read falls in padding the host never sets.
    #[test]
    fn pointer_structs_are_packed_words() {
        use super::{BatchArgs, DevicePtrs};
        for (i, (f, t, off)) in DevicePtrs::FIELDS.iter().enumerate() {
            assert_eq!(*off, 8 * i, "Pool::{f}");
            assert!(t.ends_with('*'), "Pool::{f} is a pointer");
        }
        assert_eq!(std::mem::size_of::<DevicePtrs>(), 8 * DevicePtrs::FIELDS.len());
        let offs: Vec<usize> = BatchArgs::FIELDS.iter().map(|f| f.2).collect();
        assert_eq!(offs, [0, 8, 16, 24, 32, 40, 44]);
        assert_eq!(std::mem::offset_of!(BatchArgs, counts), 40);
    }
}
