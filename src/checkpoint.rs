//! Checkpoint and restore of the whole posterior state: alpha, beta, the prior (constant or per
//! task), the reference features (f16 or f32, as the pool holds them), mu (including "unset"), rho, the step counter, the seed, and
//! the [`Config`] (embedded as JSON). Restoring a checkpoint and continuing selects exactly the tasks
//! an uninterrupted run would have selected (selection at step t is a pure function of
//! (seed, t, state); see `tests/checkpoint.rs`).
//!
//! # File format, version 3
//!
//! All integers and floats are **little-endian**; arrays are written as `bytemuck` casts of the
//! in-memory slices (byte-swapped on a big-endian host).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"BOTSCKPT"` |
//! | 8 | 4 | version, u32 = 3 (version 1 and 2 files are read too: see below) |
//! | 12 | 4 | flags, u32: bit 0 `PER_TASK_PRIOR`, bit 1 `FEATURES`, bit 2 `MU_SET`, bit 3 `FEATURES_F32` (only with `FEATURES`); other bits must be 0 |
//! | 16 | 8 | N, u64: number of tasks (1 ..= 2^32 - 1) |
//! | 24 | 8 | step, u64 |
//! | 32 | 8 | seed, u64 (equal to the config's seed) |
//! | 40 | 4 | mu, f32 (0 when `MU_SET` is clear) |
//! | 44 | 4 | rho, f32 (the current rho, halved by adaptive rho where it fired) |
//! | 48 | 4 | alpha0, f32: the constant prior (0 with `PER_TASK_PRIOR`) |
//! | 52 | 4 | beta0, f32: likewise |
//! | 56 | 4 | C, u32: length in bytes of the config JSON (at most 1 MiB) |
//! | 60 | 4 | K, u32: feature columns (1 ..= 64 with `FEATURES`, equal to the config's `feature_keys` length; 0 without) |
//! | 64 | 4 | k_nn, u32: out-neighbours per task of the stored neighbour graph (1 ..= 64), 0 without one |
//! | 68 | 8 | reserved, 0 |
//! | 76 | 4 | header CRC-32 (IEEE, `crc32fast`) over bytes 0..76 followed by the C config bytes |
//! | 80 | C | the [`Config`] as UTF-8 JSON, then zero padding to a multiple of 8 bytes |
//! | P | 4N | alpha, f32\[N\] |
//! | | 4N | beta, f32\[N\] |
//! | | 4N | alpha0, f32\[N\], only with `PER_TASK_PRIOR` |
//! | | 4N | beta0, f32\[N\], only with `PER_TASK_PRIOR` |
//! | | K × (2N or 4N) | the K feature columns, weakest first, each f16\[N\] (f32\[N\] with `FEATURES_F32`), only with `FEATURES` |
//! | | 0 or 2 | zero padding to a multiple of 4 bytes |
//! | | 4 N k_nn | neighbour ids, u32\[N·k_nn\], row by row (`u32::MAX` in empty slots), only with k_nn > 0 |
//! | | 4 N k_nn | neighbour weights, f32\[N·k_nn\], only with k_nn > 0 |
//! | end - 4 | 4 | file CRC-32 over every byte before it (header, config, padding and payload) |
//!
//! Version 2 has a 64-byte header: bytes 0..60 as above, then the header CRC-32 over bytes 0..60 and
//! the config, with the config at offset 64; its features are always K = 2 columns (weak, strong).
//! Version 1 is version 2 without `FEATURES_F32` (features always f16). [`load`] reads all three, and
//! [`save`] always writes version 3.
//!
//! So the file length is a function of (C, N, flags, K, k_nn) alone: a reader computes it from the header and
//! refuses any file whose length differs **before** allocating anything of size N.
//!
//! # Guarantees
//! - [`save`] is atomic ([`crate::atomic::write_atomic`], the crate's one writer): it writes a temporary
//!   file `.<name>.<pid>.<counter>.tmp` in the target's folder, fsyncs it, renames it over the target
//!   and fsyncs the folder. A crash at any point leaves
//!   either the old or the new checkpoint at the target path, never a mix; a crashed writer may leave
//!   its temporary file behind (safe to delete; never read as a checkpoint, and its name never equals
//!   the target's).
//! - [`load`] returns a state only after the whole file has been read, both checksums verified, and
//!   the config and state validated; a truncated, extended, bit-flipped, wrong-magic or
//!   wrong-version file is a [`BotsError::Checkpoint`] naming the file and what is wrong.
//! - CRC-32 (IEEE) detects every error of 1 or 2 bits and every burst of up to 32 bits, in a file of
//!   any length this format allows; every 3-bit error only in files up to 91 607 bits (about 11 KiB:
//!   Koopman's Hamming-distance tables for this polynomial), so not in a checkpoint of a real pool.
//!   Other damage slips through with probability about 2^-32, and is then still refused where it
//!   makes a value invalid.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use bytemuck::Pod;
use half::f16;
use serde::Serialize;

use crate::config::Config;
use crate::error::{BotsError, Result};
use crate::neighbours::{Neighbours, MAX_NEIGHBOURS};
use crate::pool::{FeatureForm, Features, Globals, PoolState, Prior, MAX_FEATURE_COLUMNS};

/// The 8 bytes every checkpoint starts with.
pub const MAGIC: [u8; 8] = *b"BOTSCKPT";
/// The format version this build writes (it reads this one, version 2 and [`VERSION_1`]).
pub const VERSION: u32 = 3;
/// The first version: as version 2, features always f16 (no `FLAG_FEATURES_F32`).
pub const VERSION_1: u32 = 1;
/// Size of the fixed header in bytes (of version 3; versions 1 and 2 have 64).
pub const HEADER_LEN: usize = 80;
/// Size of the fixed header of versions 1 and 2.
const HEADER_LEN_V2: usize = 64;

/// The header length of a version.
fn header_len(version: u32) -> usize {
    if version >= VERSION {
        HEADER_LEN
    } else {
        HEADER_LEN_V2
    }
}
/// Largest accepted embedded config (bytes).
pub const MAX_CONFIG_LEN: u32 = 1 << 20;
/// Flag: the prior is per task (alpha0 and beta0 arrays follow beta).
pub const FLAG_PER_TASK_PRIOR: u32 = 1 << 0;
/// Flag: the pool has reference features (two f16 arrays, or f32 with [`FLAG_FEATURES_F32`]).
pub const FLAG_FEATURES: u32 = 1 << 1;
/// Flag: mu is set (an update with features has happened).
pub const FLAG_MU_SET: u32 = 1 << 2;
/// Flag (version 2): the features are f32 arrays ([`FeatureForm::F32`]); only with [`FLAG_FEATURES`].
pub const FLAG_FEATURES_F32: u32 = 1 << 3;

/// The flag bits a file of `version` may set.
fn known_flags(version: u32) -> u32 {
    let v1 = FLAG_PER_TASK_PRIOR | FLAG_FEATURES | FLAG_MU_SET;
    if version == VERSION_1 {
        v1
    } else {
        v1 | FLAG_FEATURES_F32
    }
}

/// The feature form the flags say, `None` without features.
fn feature_form(flags: u32) -> Option<FeatureForm> {
    match (flags & FLAG_FEATURES != 0, flags & FLAG_FEATURES_F32 != 0) {
        (false, _) => None,
        (true, false) => Some(FeatureForm::F16),
        (true, true) => Some(FeatureForm::F32),
    }
}

/// What a checkpoint's header says, verified against its own checksum and the file length.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Raw flag bits (`FLAG_*`).
    pub flags: u32,
    /// Number of tasks.
    pub n: u64,
    /// Updates applied when the checkpoint was taken.
    pub step: u64,
    /// The Philox seed.
    pub seed: u64,
    /// Capability estimate; `None` before the first update.
    pub mu: Option<f32>,
    /// Current rho.
    pub rho: f32,
    /// The constant prior `(alpha0, beta0)`, or `None` for a per-task prior.
    pub constant_prior: Option<(f32, f32)>,
    /// Whether reference features are stored, and in which form.
    pub features: Option<FeatureForm>,
    /// K, the number of feature columns (0 without features; 2 in version 1 and 2 files with features).
    pub feature_columns: usize,
    /// k_nn, out-neighbours per task of the stored neighbour graph (0 without one).
    pub neighbour_k: usize,
    /// The hyper-parameters the pool ran with.
    pub config: Config,
    /// Total file length in bytes.
    pub file_len: u64,
}

pub(crate) fn ckpt_err(path: &Path, reason: impl Into<String>) -> BotsError {
    BotsError::Checkpoint { path: path.to_path_buf(), reason: reason.into() }
}

fn pad_to(len: u64, align: u64) -> u64 {
    len.div_ceil(align) * align
}

/// The exact file length implied by (version, config length, N, flags, K), or `None` on overflow.
fn expected_len(version: u32, config_len: u32, n: u64, flags: u32, columns: usize, k_nn: usize) -> Option<u64> {
    let mut per_task: u64 = 8; // alpha, beta
    if flags & FLAG_PER_TASK_PRIOR != 0 {
        per_task += 8;
    }
    if let Some(form) = feature_form(flags) {
        per_task += (form.bytes_per_task() / 2 * columns) as u64;
    }
    let payload = pad_to(n.checked_mul(per_task)?, 4).checked_add(n.checked_mul(8 * k_nn as u64)?)?;
    (header_len(version) as u64 + pad_to(config_len as u64, 8)).checked_add(payload)?.checked_add(4)
}

/// A value that is written as little-endian bytes.
trait Word: Pod {
    fn swap(self) -> Self;
}
impl Word for f32 {
    fn swap(self) -> Self {
        f32::from_bits(self.to_bits().swap_bytes())
    }
}
impl Word for u32 {
    fn swap(self) -> Self {
        self.swap_bytes()
    }
}
impl Word for f16 {
    fn swap(self) -> Self {
        f16::from_bits(self.to_bits().swap_bytes())
    }
}

/// Writes bytes to the temporary file, feeding the checksum, and (test-only) pauses part way.
struct Sink<'a, W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    written: u64,
    pause: Option<(u64, &'a mut dyn FnMut())>,
}

impl<W: Write> Sink<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if let Some((at, _)) = &self.pause {
            if self.written >= *at {
                self.out.flush()?;
                let (_, hook) = self.pause.take().expect("checked above");
                hook();
            }
        }
        Ok(())
    }

    fn put_words<T: Word>(&mut self, words: &[T]) -> std::io::Result<()> {
        if cfg!(target_endian = "little") {
            // Large slices are written in pieces so a test pause can land inside an array.
            for chunk in words.chunks(1 << 16) {
                self.put(bytemuck::cast_slice(chunk))?;
            }
        } else {
            for chunk in words.chunks(1 << 12) {
                let swapped: Vec<T> = chunk.iter().map(|w| w.swap()).collect();
                self.put(bytemuck::cast_slice(&swapped))?;
            }
        }
        Ok(())
    }
}

fn header_bytes(config: &Config, state: &PoolState, config_json: &[u8]) -> Result<[u8; HEADER_LEN]> {
    let g = state.globals;
    let mut flags = 0;
    let (a0, b0) = match &state.prior {
        Prior::Constant { alpha0, beta0 } => (*alpha0, *beta0),
        Prior::PerTask { .. } => {
            flags |= FLAG_PER_TASK_PRIOR;
            (0.0, 0.0)
        }
    };
    match state.features.as_ref().map(Features::form) {
        Some(FeatureForm::F16) => flags |= FLAG_FEATURES,
        Some(FeatureForm::F32) => flags |= FLAG_FEATURES | FLAG_FEATURES_F32,
        None => {}
    }
    if g.mu.is_some() {
        flags |= FLAG_MU_SET;
    }
    let columns = state.features.as_ref().map_or(0, Features::n_columns) as u32;
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&(state.len() as u64).to_le_bytes());
    h[24..32].copy_from_slice(&g.step.to_le_bytes());
    h[32..40].copy_from_slice(&config.seed.to_le_bytes());
    h[40..44].copy_from_slice(&g.mu.unwrap_or(0.0).to_le_bytes());
    h[44..48].copy_from_slice(&g.rho.to_le_bytes());
    h[48..52].copy_from_slice(&a0.to_le_bytes());
    h[52..56].copy_from_slice(&b0.to_le_bytes());
    h[56..60].copy_from_slice(&(config_json.len() as u32).to_le_bytes());
    h[60..64].copy_from_slice(&columns.to_le_bytes());
    let k_nn = state.neighbours.as_ref().map_or(0, Neighbours::k) as u32;
    h[64..68].copy_from_slice(&k_nn.to_le_bytes());
    // 68..76 reserved stay 0.
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[0..HEADER_LEN - 4]);
    crc.update(config_json);
    h[HEADER_LEN - 4..].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(h)
}

/// Saves the whole state and its config to `path`, atomically (see the module docs).
///
/// The state is validated first (lengths, positive finite parameters, rho in [0, 1]); an invalid
/// state is refused and nothing is written.
///
/// ```
/// use bots::{checkpoint, Config, PoolState};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("pool.ckpt");
/// let cfg = Config { rho: 0.0, ..Default::default() };
/// let state = PoolState::new(&cfg, 10, None).unwrap();
/// checkpoint::save(&path, &cfg, &state).unwrap();
/// let (cfg2, state2) = checkpoint::load(&path).unwrap();
/// assert_eq!((cfg2, state2), (cfg, state));
/// ```
pub fn save(path: &Path, config: &Config, state: &PoolState) -> Result<()> {
    save_impl(path, config, state, None)
}

/// Test support: like [`save`], but calls `hook` once after at least `after_bytes` bytes of the
/// temporary file have been written and flushed to it (before the fsync and the rename). The crash
/// test lets the hook block so a child process can be SIGKILLed mid-write. Not part of the API.
#[doc(hidden)]
pub fn save_pausing(
    path: &Path,
    config: &Config,
    state: &PoolState,
    after_bytes: u64,
    hook: &mut dyn FnMut(),
) -> Result<()> {
    save_impl(path, config, state, Some((after_bytes, hook)))
}

fn save_impl(path: &Path, config: &Config, state: &PoolState, pause: Option<(u64, &mut dyn FnMut())>) -> Result<()> {
    config.validate()?;
    state.check_fits(config)?;
    let config_json =
        serde_json::to_vec(config).map_err(|e| ckpt_err(path, format!("cannot encode the config: {e}")))?;
    if config_json.len() > MAX_CONFIG_LEN as usize {
        return Err(ckpt_err(
            path,
            format!("the config encodes to {} bytes, over the {MAX_CONFIG_LEN} allowed", config_json.len()),
        ));
    }
    let header = header_bytes(config, state, &config_json)?;

    if path.file_name().is_none() {
        return Err(ckpt_err(path, "the path names no file"));
    }
    crate::atomic::write_atomic(path, |file| {
        let io = |e: std::io::Error| BotsError::io(path, e);
        let mut sink =
            Sink { out: BufWriter::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new(), written: 0, pause };
        sink.put(&header).map_err(io)?;
        sink.put(&config_json).map_err(io)?;
        let cfg_pad = (pad_to(config_json.len() as u64, 8) - config_json.len() as u64) as usize;
        sink.put(&[0u8; 8][..cfg_pad]).map_err(io)?;
        sink.put_words(&state.alpha).map_err(io)?;
        sink.put_words(&state.beta).map_err(io)?;
        let mut payload = state.len() as u64 * 8;
        if let Prior::PerTask { alpha0, beta0 } = &state.prior {
            sink.put_words(alpha0).map_err(io)?;
            sink.put_words(beta0).map_err(io)?;
            payload += state.len() as u64 * 8;
        }
        match &state.features {
            Some(Features::F16 { columns }) => {
                for col in columns {
                    sink.put_words(col).map_err(io)?;
                }
            }
            Some(Features::F32 { columns }) => {
                for col in columns {
                    sink.put_words(col).map_err(io)?;
                }
            }
            None => {}
        }
        if let Some(f) = &state.features {
            payload += state.len() as u64 * f.bytes_per_task() as u64;
        }
        let pad = (pad_to(payload, 4) - payload) as usize;
        sink.put(&[0u8; 4][..pad]).map_err(io)?;
        if let Some(g) = &state.neighbours {
            sink.put_words(g.ids()).map_err(io)?;
            sink.put_words(g.weights()).map_err(io)?;
        }
        let crc = sink.crc.clone().finalize();
        sink.out.write_all(&crc.to_le_bytes()).map_err(io)?;
        sink.out.into_inner().map_err(|e| io(e.into_error()))
    })
}

/// Parses and checks the fixed header (magic, version, flags, N, header checksum, file length).
fn parse_header(path: &Path, h: &[u8], config_json: &[u8], file_len: u64) -> Result<Header> {
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let f32_at = |o: usize| f32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let crc_at = h.len() - 4;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[0..crc_at]);
    crc.update(config_json);
    let (stored, computed) = (u32_at(crc_at), crc.finalize());
    if stored != computed {
        return Err(ckpt_err(path, format!("header checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the header or embedded config is damaged")));
    }
    let flags = u32_at(12);
    let n = u64_at(16);
    let config_text =
        std::str::from_utf8(config_json).map_err(|e| ckpt_err(path, format!("embedded config is not UTF-8: {e}")))?;
    let config: Config = serde_json::from_str(config_text)
        .map_err(|e| ckpt_err(path, format!("embedded config does not parse: {e}")))?;
    config.validate().map_err(|e| ckpt_err(path, format!("embedded config is invalid: {e}")))?;
    let seed = u64_at(32);
    if seed != config.seed {
        return Err(ckpt_err(
            path,
            format!("header seed {seed} differs from the embedded config's seed {}", config.seed),
        ));
    }
    let mu = (flags & FLAG_MU_SET != 0).then(|| f32_at(40));
    let constant_prior = (flags & FLAG_PER_TASK_PRIOR == 0).then(|| (f32_at(48), f32_at(52)));
    Ok(Header {
        version: u32_at(8),
        flags,
        n,
        step: u64_at(24),
        seed,
        mu,
        rho: f32_at(44),
        constant_prior,
        features: feature_form(flags),
        feature_columns: feature_columns(u32_at(8), h, flags),
        neighbour_k: neighbour_k(u32_at(8), h),
        config,
        file_len,
    })
}

/// Reads the fixed header and checks what can be checked before the config is read: magic, version,
/// flags, N and the file length. Returns the header bytes and the config length.
fn read_fixed_header(path: &Path, reader: &mut impl Read, file_len: u64) -> Result<(Vec<u8>, u32)> {
    if file_len < HEADER_LEN_V2 as u64 + 4 {
        return Err(ckpt_err(path, format!("file is {file_len} bytes, too short for a checkpoint (truncated?)")));
    }
    let mut h = vec![0u8; HEADER_LEN_V2];
    reader.read_exact(&mut h).map_err(|e| BotsError::io(path, e))?;
    if h[0..8] != MAGIC {
        return Err(ckpt_err(
            path,
            format!("not a BOTS checkpoint: magic is {:?}, expected \"BOTSCKPT\"", String::from_utf8_lossy(&h[0..8])),
        ));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if !(VERSION_1..=VERSION).contains(&version) {
        return Err(ckpt_err(
            path,
            format!("unsupported checkpoint version {version}: this build reads versions {VERSION_1} to {VERSION}"),
        ));
    }
    if header_len(version) > HEADER_LEN_V2 {
        if file_len < header_len(version) as u64 + 4 {
            return Err(ckpt_err(path, format!("file is {file_len} bytes, too short for a checkpoint (truncated?)")));
        }
        h.resize(header_len(version), 0);
        reader.read_exact(&mut h[HEADER_LEN_V2..]).map_err(|e| BotsError::io(path, e))?;
    }
    let flags = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    let unknown = flags & !known_flags(version);
    if unknown != 0 {
        return Err(ckpt_err(
            path,
            format!(
                "unknown flag bits {unknown:#x} in a version {version} header (damaged, or written by a newer build)"
            ),
        ));
    }
    if flags & FLAG_FEATURES_F32 != 0 && flags & FLAG_FEATURES == 0 {
        return Err(ckpt_err(path, format!("flags {flags:#x} set FEATURES_F32 without FEATURES (damaged header?)")));
    }
    let n = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    if n == 0 || n > u32::MAX as u64 {
        return Err(ckpt_err(path, format!("header says N = {n} tasks; a pool has 1 to 2^32 - 1 (damaged header?)")));
    }
    let columns = feature_columns(version, &h, flags);
    if version >= VERSION {
        let word = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
        let has = flags & FLAG_FEATURES != 0;
        if has != (columns > 0) || columns > MAX_FEATURE_COLUMNS {
            return Err(ckpt_err(path, format!("header says K = {columns} feature columns with flags {flags:#x}; K is 1 to {MAX_FEATURE_COLUMNS} with FEATURES, 0 without (damaged header?)")));
        }
        if word(64) as usize > MAX_NEIGHBOURS {
            return Err(ckpt_err(
                path,
                format!(
                    "header says k_nn = {} neighbours per task; at most {MAX_NEIGHBOURS} (damaged header?)",
                    word(64)
                ),
            ));
        }
        if word(68) != 0 || word(72) != 0 {
            return Err(ckpt_err(
                path,
                "reserved header bytes 68..76 are not 0 (damaged, or written by a newer build)",
            ));
        }
    }
    let config_len = u32::from_le_bytes(h[56..60].try_into().expect("4 bytes"));
    if config_len > MAX_CONFIG_LEN {
        return Err(ckpt_err(
            path,
            format!(
                "header says the config is {config_len} bytes, over the {MAX_CONFIG_LEN} allowed (damaged header?)"
            ),
        ));
    }
    match expected_len(version, config_len, n, flags, columns, neighbour_k(version, &h)) {
        Some(expect) if expect == file_len => {}
        Some(expect) => {
            let what = if file_len < expect { "truncated" } else { "has trailing bytes" };
            return Err(ckpt_err(path, format!("file is {file_len} bytes but its header (N = {n}, flags = {flags:#x}) implies {expect}: the file {what} or the header is damaged")));
        }
        None => {
            return Err(ckpt_err(
                path,
                format!("header N = {n} implies a file larger than 2^64 bytes (damaged header?)"),
            ))
        }
    }
    Ok((h, config_len))
}

/// k_nn of a header: bytes 64..68 in version 3, no graph before.
fn neighbour_k(version: u32, h: &[u8]) -> usize {
    if version >= VERSION {
        u32::from_le_bytes(h[64..68].try_into().expect("4 bytes")) as usize
    } else {
        0
    }
}

/// K of a header: bytes 60..64 in version 3, two columns (with features) before.
fn feature_columns(version: u32, h: &[u8], flags: u32) -> usize {
    if version >= VERSION {
        u32::from_le_bytes(h[60..64].try_into().expect("4 bytes")) as usize
    } else if flags & FLAG_FEATURES != 0 {
        2
    } else {
        0
    }
}

/// Reads and verifies a checkpoint's header and embedded config (their own checksum, and that the
/// file length is the one the header implies), without reading the payload. Use [`load`] to verify
/// the whole file.
pub fn read_header(path: &Path) -> Result<Header> {
    let file = File::open(path).map_err(|e| BotsError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| BotsError::io(path, e))?.len();
    let mut reader = BufReader::new(file);
    let (h, config_len) = read_fixed_header(path, &mut reader, file_len)?;
    let mut config_json = vec![0u8; config_len as usize];
    reader.read_exact(&mut config_json).map_err(|e| BotsError::io(path, e))?;
    parse_header(path, &h, &config_json, file_len)
}

/// Reads checksummed bytes from the file.
struct Source<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Source<R> {
    fn fill(&mut self, path: &Path, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ckpt_err(path, "file ended early (truncated while being read?)")
            } else {
                BotsError::io(path, e)
            }
        })?;
        self.crc.update(buf);
        Ok(())
    }

    fn words<T: Word>(&mut self, path: &Path, n: usize) -> Result<Vec<T>> {
        let mut v = vec![T::zeroed(); n];
        self.fill(path, bytemuck::cast_slice_mut(&mut v))?;
        if cfg!(target_endian = "big") {
            v.iter_mut().for_each(|w| *w = w.swap());
        }
        Ok(v)
    }
}

/// Loads a checkpoint: the config it was saved with and the whole state. Nothing is returned unless
/// the file is complete, both checksums match and the state is valid (see the module docs).
pub fn load(path: &Path) -> Result<(Config, PoolState)> {
    let file = File::open(path).map_err(|e| BotsError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| BotsError::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (h, config_len) = read_fixed_header(path, &mut reader, file_len)?;
    let mut src = Source { inner: reader, crc: crc32fast::Hasher::new() };
    src.crc.update(&h);
    let mut config_json = vec![0u8; pad_to(config_len as u64, 8) as usize];
    src.fill(path, &mut config_json)?;
    config_json.truncate(config_len as usize);
    let header = parse_header(path, &h, &config_json, file_len)?;
    let n = header.n as usize;
    let alpha = src.words::<f32>(path, n)?;
    let beta = src.words::<f32>(path, n)?;
    let mut payload = header.n * 8;
    let prior = match header.constant_prior {
        Some((alpha0, beta0)) => Prior::Constant { alpha0, beta0 },
        None => {
            payload += header.n * 8;
            Prior::PerTask { alpha0: src.words(path, n)?, beta0: src.words(path, n)? }
        }
    };
    let k = header.feature_columns;
    let features = match header.features {
        Some(FeatureForm::F16) => {
            Some(Features::F16 { columns: (0..k).map(|_| src.words(path, n)).collect::<Result<_>>()? })
        }
        Some(FeatureForm::F32) => {
            Some(Features::F32 { columns: (0..k).map(|_| src.words(path, n)).collect::<Result<_>>()? })
        }
        None => None,
    };
    payload += header.n * header.features.map_or(0, |f| (f.bytes_per_task() / 2 * k) as u64);
    let mut pad = [0u8; 4];
    src.fill(path, &mut pad[..(pad_to(payload, 4) - payload) as usize])?;
    let graph = match header.neighbour_k {
        0 => None,
        k_nn => Some((src.words::<u32>(path, n * k_nn)?, src.words::<f32>(path, n * k_nn)?)),
    };
    let computed = src.crc.clone().finalize();
    let mut stored = [0u8; 4];
    src.inner.read_exact(&mut stored).map_err(|e| BotsError::io(path, e))?;
    let stored = u32::from_le_bytes(stored);
    if stored != computed {
        return Err(ckpt_err(
            path,
            format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is damaged"),
        ));
    }
    if pad.iter().any(|&b| b != 0) {
        return Err(ckpt_err(path, "nonzero padding"));
    }
    let state = PoolState {
        alpha,
        beta,
        prior,
        features,
        neighbours: match graph {
            Some((ids, weights)) => Some(
                Neighbours::from_lists(n, header.neighbour_k, ids, weights)
                    .map_err(|e| ckpt_err(path, format!("stored neighbour graph is invalid: {e}")))?,
            ),
            None => None,
        },
        globals: Globals { mu: header.mu, rho: header.rho, step: header.step },
    };
    check_loaded(path, &header.config, &state)?;
    Ok((header.config, state))
}

/// Validation of a state whose bytes are intact (a writer bug or a hand-made file): the same checks
/// as every restore (`CpuPool::from_state`, `Backend::restore`), reported as a checkpoint error.
fn check_loaded(path: &Path, config: &Config, state: &PoolState) -> Result<()> {
    state.check_fits(config).map_err(|e| ckpt_err(path, format!("stored state is invalid: {e}")))
}
