#!/usr/bin/env python3
"""Static SASS cost model of the BOTS kernels (issue 23, part 1). Python stdlib only.

Input: `nvdisasm -gi` output of the sm_90 cubin (every instruction annotated with its source line and the
chain of inlined calls it came through) and the `ptxas -v` log. Output: markdown on stdout.

Paths are found from the sources, not from hard-coded line numbers: every `__device__`/`__global__`
function of kernels/*.cu[h] is located by name (its body by brace matching), and inside
`sample_gamma_mt`, `sample_beta` and `radix_filter` the statements are found by markers (`st.block(`,
`box_muller_scaled(`, `mt_squeeze(` ...; in `radix_filter` its task loops, `place`, the partial chunk,
the slot mask, the queue and its placement). An instruction is charged to the path of the innermost
frame of its inline chain that such a marker names.

Counts are static (instructions in the code), which for straight-line code is the cost of running that
path once per warp. The IEEE division / square-root slow paths (subroutines reached by CALL, run only for
operands near the edges of the range) are counted apart and left out of the path costs. For the task loop
of update_sample_score(_fast) the counts are also dynamic: its control-flow graph (basic blocks from the
branch targets) is walked with the branches that only the configuration decides resolved for the
benchmark's (DYN_CONFIG: a small table of source constructs, config_branches()), the div/sqrt tests on
their fast paths, the data-dependent branches (data_branches()) both ways; an unresolved branch is an
error. The projection is printed from both.

The projection (`--project`) weights the paths by how often a warp runs them (any lane of 32 that takes
a path makes the warp pay for it) from a frequency file (JSON, see FREQ_DEFAULTS) and prints memory
time, issue time and the step time for N tasks, k selected, on an H100 SXM.
"""
import argparse
import collections
import json
import math
import os
import re
import sys

ANNOT = re.compile(r'^\s*//## File "([^"]+)", line (\d+)(?: inlined at "([^"]+)", line (\d+))?')
INSN = re.compile(r'^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;')
FUNC_START = re.compile(r'^(?:extern\s+"C"\s+)?(?:__device__|__global__)\b(?:[^(]|__launch_bounds__\([^)]*\))*?\b(?!__launch_bounds__\b)([A-Za-z_][A-Za-z0-9_]*)\s*\(')
LABEL = re.compile(r'^\s*([.$A-Za-z_][^\s:]*):\s*$')
OTHER_SECTION = re.compile(r'^\s*(?:\.section\b|\.nv\.)')
SECTION = re.compile(r'^\s*\.text\.([A-Za-z_][A-Za-z0-9_]*):')
CALL = re.compile(r'\bCALL\.REL(?:\.NOINC)?\s+`\(([^)]+)\)')
DIV_TARGET = re.compile(r'\bBRA\.DIV\b[^`]*`\(([^)]+)\)')
COND_BRA = re.compile(r'^@!?U?P[0-9T]\s+BRA\b')


# ------------------------------------------------------------------------------------------------------
# Sources: functions and markers
class Sources:
    def __init__(self, kdir):
        self.funcs = {}  # basename -> [(start, end, name)]
        self.text = {}  # basename -> [lines] (1-based via index - 1)
        for fn in sorted(os.listdir(kdir)):
            if not (fn.endswith(".cu") or fn.endswith(".cuh")):
                continue
            lines = open(os.path.join(kdir, fn)).read().split("\n")
            self.text[fn] = lines
            self.funcs[fn] = self._functions(lines)

    @staticmethod
    def _functions(lines):
        out = []
        i = 0
        while i < len(lines):
            m = FUNC_START.match(lines[i])
            if not m or lines[i].rstrip().endswith(";"):
                i += 1
                continue
            name, depth, seen, j = m.group(1), 0, False, i
            while j < len(lines):
                code = lines[j].split("//")[0]
                for ch in code:
                    if ch == "{":
                        depth += 1
                        seen = True
                    elif ch == "}":
                        depth -= 1
                if seen and depth == 0:
                    break
                j += 1
            out.append((i + 1, j + 1, name))
            i = j + 1
        return out

    def func_at(self, fn, line):
        for s, e, name in self.funcs.get(fn, ()):
            if s <= line <= e:
                return name
        return None

    def line(self, fn, line):
        t = self.text.get(fn)
        return t[line - 1] if t and 0 < line <= len(t) else ""

    def has(self, name):
        return any(n == name for fs in self.funcs.values() for _, _, n in fs)

    def body(self, name):
        for fn, fs in self.funcs.items():
            for s, e, n in fs:
                if n == name:
                    return fn, s, e
        raise SystemExit(f"cost_model.py: function {name} not found in kernels/")

    def find(self, name, marker):
        """Lines of function `name` whose code contains `marker` (a substring or a compiled regex)."""
        fn, s, e = self.body(name)
        hits = []
        for ln in range(s, e + 1):
            code = self.line(fn, ln).split("//")[0]
            if (marker.search(code) if hasattr(marker, "search") else marker in code):
                hits.append(ln)
        if not hits:
            raise SystemExit(f"cost_model.py: marker {marker!r} not found in {name} ({fn}:{s}-{e})")
        return set(hits)


# ------------------------------------------------------------------------------------------------------
# SASS parsing
class Insn:
    __slots__ = ("addr", "text", "chain", "sub", "slow_test")

    def __init__(self, addr, text, chain):
        # sub: "" (runs on the path of its source line), "subroutine" (a called slow path), "call site"
        # (the argument moves and CALL after the test that skips them), "padding" (NOPs, the trailing BRA)
        self.addr, self.text, self.chain, self.sub = addr, text, chain, ""
        self.slow_test = False  # the conditional branch that skips a slow-path call site (FCHK's fast path)


def parse_sass(path):
    """{kernel: [Insn]}; chain = [(file basename, line), ...] innermost first."""
    kernels = collections.OrderedDict()
    cur, group, chain, in_group = None, [], [], False
    labels = {}
    for raw in open(path):
        m = SECTION.match(raw)
        if m:
            cur = m.group(1)
            kernels[cur] = []
            labels[cur] = {}
            group, chain, in_group = [], [], False
            continue
        if OTHER_SECTION.match(raw):
            cur = None
            continue
        if cur is None:
            continue
        m = ANNOT.match(raw)
        if m:
            if not in_group:
                group, in_group = [], True
            group.append((os.path.basename(m.group(1)), int(m.group(2))))
            continue
        m = LABEL.match(raw)
        if m:
            labels[cur][m.group(1)] = len(kernels[cur])
            continue
        m = INSN.match(raw)
        if m:
            if in_group:
                chain, in_group = group, False
            kernels[cur].append(Insn(int(m.group(1), 16), m.group(2), tuple(chain)))
    # Mark called subroutines (the IEEE div/rcp/sqrt slow paths): from a CALL target to its RET; their call
    # sites: from the conditional branch that skips the call to the next label; padding: NOPs and what
    # follows the last EXIT/RET that is not a subroutine.
    for k, insns in kernels.items():
        starts = set(labels[k].values())
        targets = set()
        for c, ins in enumerate(insns):
            m = CALL.search(ins.text)
            if not m:
                continue
            targets.add(m.group(1))
            b = c
            while b > 0 and c - b < 12 and not COND_BRA.match(insns[b].text):
                b -= 1
            if not COND_BRA.match(insns[b].text):
                continue
            insns[b].slow_test = True
            j = b + 1
            while j < len(insns) and (j <= c or j not in starts):
                insns[j].sub = "call site"
                j += 1
        first_sub = len(insns)
        for t in targets:
            j = labels[k].get(t)
            if j is None:
                continue
            first_sub = min(first_sub, j)
            while j < len(insns):
                insns[j].sub = "subroutine"
                if re.search(r"\bRET\b", insns[j].text):
                    break
                j += 1
        # The diverged-warp fallbacks of warp collectives: a BRA.DIV (taken only when the warp is not
        # converged at a __ballot_sync/__shfl_sync, which the kernels never are) jumps to an out-of-line block
        # that ends in a branch back.
        for ins in insns:
            m = DIV_TARGET.search(ins.text)
            j = labels[k].get(m.group(1)) if m else None
            while j is not None and j < len(insns) and not insns[j].sub:
                insns[j].sub = "diverged-warp fallback"
                if re.match(r"BRA\b", insns[j].text):
                    break
                j += 1
        for ins in insns:
            if ins.text.startswith("NOP"):
                ins.sub = "padding"
        last = max((i for i, ins in enumerate(insns) if re.search(r"\b(EXIT|RET\S*)\b", ins.text)), default=-1)
        for ins in insns[last + 1:]:
            if not ins.sub:
                ins.sub = "padding"
    return kernels, labels


BRA_TARGET = re.compile(r'\bBRA\b[^`]*`\(([^)]+)\)')


def loop_range(insns, labels, fn, lo, hi):
    """Index range [t, b] of the innermost SASS loop (a branch back to a label) that encloses every
    instruction whose outermost frame is in fn, lines lo..hi (a loop body found in the source)."""
    body = [i for i, ins in enumerate(insns) if not ins.sub and any(f == fn and lo <= l <= hi for f, l in ins.chain)]
    if not body:
        return None
    # the backward branch whose range holds the most of the body (hoisted invariants may sit before it)
    best, key = None, None
    for b, ins in enumerate(insns):
        m = BRA_TARGET.search(ins.text)
        if not m or ins.sub:
            continue
        t = labels.get(m.group(1))
        if t is None or t > b:
            continue
        inside = sum(1 for i in body if t <= i <= b)
        k = (inside, -(b - t))
        if key is None or k > key:
            best, key = (t, b), k
    if best is not None and key[0] < 0.9 * len(body):
        raise SystemExit(f"cost_model.py: the loop found holds only {key[0]} of {len(body)} body instructions")
    return best


def parse_ptxas(path):
    regs = {}
    cur = None
    for line in open(path):
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            cur = m.group(1)
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            regs.setdefault(cur, {})["regs"] = int(m.group(1))
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and cur:
            regs.setdefault(cur, {})["spill"] = int(m.group(2)) + int(m.group(3))
            regs[cur]["stack"] = int(m.group(1))
        m = re.search(r"(\d+) bytes smem", line)
        if m and cur:
            regs.setdefault(cur, {})["smem"] = int(m.group(1))
    return regs


# ------------------------------------------------------------------------------------------------------
# Path classification
SCAN_LOOP = "radix scan: chunk loop, 16-byte load, test, warp OR (every warp iteration: 256 tasks)"
CAND_LOOP = "radix: candidate loop + read"
OUTER = "radix scan: back from the chunk loop (per chunk with a live task, and per queue placed)"
QUEUE = "radix scan: queue a live task (per live task)"
FLUSH = "radix scan: place the queue (per 32 live tasks, and the rest at the end)"
MASK = "radix scan: slot mask (lanes with a digit reaching the prefix)"
PARTIAL = "radix scan: partial chunk, digit by digit (first and last chunk)"
PLACE = "radix: place key (prefix, digit, histogram)"
SLOT_BALLOT = "radix: warp slot ballot (each placement round, 2 per round)"
SLOT_ATOMIC = "radix: warp slot atomic (2 per round; 1 runs when a lane places)"
SETUP = "once per thread: setup, shared histogram zero/flush (outside the task loop)"
FIXED = "fixed (loads, stores, loop, histogram)"
DEFER = "first try: deferral (the task's bit, atomicOr)"


class Classifier:
    def __init__(self, src):
        self.src = src
        g = "sample_gamma_mt"
        self.gamma = {
            "constants": src.find(g, "mt_constants("),
            "philox": src.find(g, "st.block("),
            "box_muller": src.find(g, "box_muller_scaled("),
            "test": src.find(g, "mt_squeeze("),
            "attempt": src.find(g, "x <= -1.0f") | src.find(g, "u01(us[") | src.find(g, "xs[j]") | src.find(g, "us[2]"),
            "loop": src.find(g, re.compile(r"\bfor\s*\(\s*uint32_t\s+blk")),
        }
        b = "sample_beta"
        self.beta = {
            "alpha": src.find(b, "PURPOSE_GAMMA_ALPHA"),
            "beta": src.find(b, "PURPOSE_GAMMA_BETA"),
            "linear": src.find(b, "gb / ga"),
            # both Gammas' first attempts (the shared block of PURPOSE_FIRST)
            "constants": src.find(b, "mt_constants("),
            "philox": src.find(b, "PURPOSE_FIRST"),
            "box_muller": src.find(b, "box_muller_scaled_pair("),
            "first": src.find(b, "mt_first_attempt<"),
        }
        # The kernels' bodies (templates on FAST: the exact and the fast entries inline the same body).
        rf = "radix_filter_body"
        fn, _, _ = src.body(rf)
        self.rf_file = fn
        # Two task loops: over the candidate buffer, and the pool scan (8 tasks per lane and chunk: the chunk
        # loop inside an outer loop that queues live tasks and places full queues); `place` (a lambda) is the
        # per-key logic of both.
        self.rf_cand_loop = self.block(rf, re.compile(r"\bfor\s*\(.*\bbase\s*<\s*src_n\b"))
        self.rf_scan_loop = self.block(rf, re.compile(r"\bfor\s*\(\s*;;\s*\)"))
        self.rf_place = self.block(rf, "auto place = [")
        self.rf_partial = self.block(rf, "else if (c < chunks)")
        self.rf_scan_inner = self.block(rf, re.compile(r"\bwhile\s*\(\s*\(todo \| from\) == 0"))
        self.rf_queue = self.block(rf, re.compile(r"\bwhile\s*\(\s*\(todo \| from\) != 0"))
        self.rf_flush = self.block(rf, "if (queued == 32 ||")
        self.rf_mask = src.find(rf, "digits_reach(")
        self.uss_body = "update_sample_score_body"
        self.uss_file, _, _ = src.body(self.uss_body)
        self.uss_loop = self.block(self.uss_body, "GRID_STRIDE(")
        self.uss_defer = src.find(self.uss_body, "atomicOr(&defer[")
        fb = "sample_beta_fast"
        self.fast = {
            "philox": src.find(fb, "PURPOSE_FIRST"),
            "box_muller": src.find(fb, "box_muller_fast(w."),
            "constants": src.find(fb, "mt_constants_fast("),
            "first": src.find(fb, "u01(w.z)") | src.find(fb, "u01(w.w)") | src.find(fb, "float ga = da"),
            "retry": set(range(*(lambda b: (b[0], b[1] + 1))(self.block(fb, re.compile(r"\bwhile\s*\("))))),
            "linear": set(range(*(lambda b: (b[0], b[1] + 1))(self.block(fb, "if (beta_in_linear_space("))))
            if "{" in src.line(*self._first(fb, "if (beta_in_linear_space(")) else src.find(fb, "beta_in_linear_space("),
            "exact": src.find("mt_attempt_fast", "if (!ok)"),
            "second": src.find(fb, "u01(v.w)"),
            "bail": src.find(fb, "if (FIRST &&"),
        }
        self.beta_bail = src.find(b, "return false;")
        # attempts unrolled per Philox block: `j < (FIRST ? 1 : 2)` (the first try's copy, the whole draw's)
        jl = self.src.line(*self._first("sample_gamma_mt", re.compile(r"for\s*\(\s*int\s+j\s*=")))
        m = re.search(r"j\s*<\s*\(\s*FIRST\s*\?\s*(\d+)\s*:\s*(\d+)\s*\)", jl)
        if m:
            self.attempts_first, self.attempts_per_block = int(m.group(1)), int(m.group(2))
        else:
            m = re.search(r"j\s*<\s*(\d+)", jl)
            self.attempts_first = self.attempts_per_block = int(m.group(1))
        # finish_deferred's body: the queue's draw loop (`for (uint32_t r = lane; ...)`) and the rest
        self.fd_body = "finish_deferred_body"
        self.fd_file, _, _ = src.body(self.fd_body)
        self.fd_draw = self.block(self.fd_body, re.compile(r"\bfor\s*\(\s*uint32_t r = lane\b"))
        self.fd_fill = self.block(self.fd_body, re.compile(r"\bwhile\s*\(\s*bits\[j\] != 0u\s*\)"))
        self.fd_loop = self.block(self.fd_body, re.compile(r"\bfor\s*\(\s*unsigned long long span\b"))
        m = re.search(r"SPAN = (\d+);", "\n".join(src.text[self.fd_file]))
        self.fd_span = int(m.group(1))
        self.slot_ballot = src.find("warp_slot", "__ballot_sync(") | src.find("warp_slot", "ballot == 0")

    def _first(self, name, marker):
        fn, _, _ = self.src.body(name)
        return fn, min(self.src.find(name, marker))

    def block(self, name, marker):
        """(first, last) source lines of the brace-matched block that starts at `marker` in `name` (braces
        counted from the marker on: `} else if (...) {` opens a block)."""
        fn, start = self._first(name, marker)
        depth, seen = 0, False
        for ln in range(start, len(self.src.text[fn]) + 1):
            code = self.src.line(fn, ln).split("//")[0]
            if ln == start:
                m = marker.search(code) if hasattr(marker, "search") else None
                code = code[m.start():] if m else code[code.index(marker):]
            for ch in code:
                if ch == "{":
                    depth, seen = depth + 1, True
                elif ch == "}":
                    depth -= 1
            if seen and depth == 0:
                return start, ln
        raise SystemExit(f"cost_model.py: no block at {marker!r} in {name}")

    def classify(self, kernel, insn):
        """(path, draw) for one instruction; draw is 'alpha', 'beta' or ''. The fused pass's deferral of a
        task (its bit in `defer`) is DEFER."""
        path, draw = self._classify(kernel, insn)
        if path == FIXED and kernel.startswith("update_sample_score") and any(
                self.src.func_at(f, l) == self.uss_body and l in self.uss_defer for f, l in insn.chain):
            return DEFER, ""
        return path, draw

    @staticmethod
    def _first_attempts(mode, lines, l, exact):
        """The path of line `l` of a Beta draw's first-attempt code (sample_beta, sample_beta_fast: the shared
        block, its Box-Muller pair, the shape constants, the two first attempts), or None."""
        for key, what in (("philox", "Philox block (both first attempts)"), ("box_muller", "Box-Muller pair (z_alpha, z_beta)"),
                          ("constants", "shape constants")):
            if l in lines[key]:
                return f"{mode}: {what}"
        if l in lines["first"]:
            return f"{mode}: first attempt's exact test" if exact else f"{mode}: first attempt (x, squeeze, value)"
        return None

    def _classify(self, kernel, insn):
        """(path, draw) for one instruction; draw is 'alpha', 'beta' or ''."""
        if insn.sub == "padding":
            return "padding (NOP, trailing BRA)", ""
        if insn.sub == "diverged-warp fallback":
            return "rare: diverged-warp fallback of a warp collective (BRA.DIV)", ""
        if insn.sub:
            return "rare: IEEE div/rcp/sqrt slow path (" + insn.sub + ")", ""
        frames = [(f, l, self.src.func_at(f, l)) for f, l in insn.chain]
        names = [n for _, _, n in frames]
        draw = ""
        for f, l, n in frames:
            if n == "sample_beta":
                if l in self.beta["alpha"]:
                    draw = "alpha"
                elif l in self.beta["beta"]:
                    draw = "beta"
        for i, (f, l, n) in enumerate(frames):
            if n == "sample_beta_fast":
                fs = self.fast
                exact = any(nn == "mt_attempt_fast" and ll in fs["exact"] for _, ll, nn in frames[:i])
                if l in fs["retry"]:
                    if l in fs["second"]:
                        return "fast: retry, the block's second attempt", ""
                    if exact:
                        return "fast: retry, first attempt's exact test", ""
                    return "fast: retry loop (Philox, Box-Muller, first attempt)", ""
                if l in fs["bail"]:
                    return "fast: first try's test (a first attempt rejected: deferred)", ""
                path = self._first_attempts("fast", fs, l, exact)
                if path:
                    return path, ""
                if l in fs["linear"]:
                    return "fast: linear combine", ""
                return "fast: log-space combine + boosts", ""
        # the exact Beta draw: its first attempts (sample_beta's own lines), a Gamma drawn whole
        # (sample_gamma_mt, where a first attempt rejected)
        if "sample_gamma_mt" in names and "sample_beta" in names:
            return "exact: a Gamma drawn whole after its first attempt rejected (sample_gamma_mt)", ""
        for i, (f, l, n) in enumerate(frames):
            if n == "sample_beta" and "sample_gamma_mt" not in names:
                path = self._first_attempts("exact", self.beta, l, "mt_exact" in names[:i])
                if path:
                    return path, ""
        # innermost-first: the frame in sample_gamma_mt and the one just inside it
        for i, (f, l, n) in enumerate(frames):
            if n == "sample_gamma_mt":
                inner = names[i - 1] if i > 0 else None
                g = self.gamma
                if l in g["constants"]:
                    return "gamma: shape constants", draw
                if l in g["philox"]:
                    return "gamma: Philox block", draw
                if l in g["box_muller"]:
                    return "gamma: Box-Muller", draw
                if l in g["test"]:
                    if inner == "mt_squeeze":
                        return "gamma: squeeze", draw
                    if inner == "mt_exact" or (inner or "").startswith("bots_"):
                        return "gamma: exact test", draw
                    if inner == "mt_value":
                        return "gamma: accepted value", draw
                    return "gamma: attempt (x, u, branch)", draw
                if l in g["attempt"]:
                    return "gamma: attempt (x, u, branch)", draw
                if l in g["loop"]:
                    return "gamma: block loop (retry back-edge)", draw
                return "gamma: other", draw
        if "gamma_boost" in names:
            return "beta: boost (shape < 1)", draw
        if "sample_beta" in names:
            for f, l, n in frames:
                if n == "sample_beta":
                    if l in self.beta_bail:
                        return "beta: first try's test (a Gamma needs more: deferred)", ""
                    if l in self.beta["linear"]:
                        return "beta: linear combine", ""
                    return "beta: log-space combine", ""
        if "sample_gumbel" in names or "sample_gumbel_fast" in names:
            return "gumbel (tau > 0)", ""
        inside = lambda rng, l: rng[0] <= l <= rng[1]  # noqa: E731
        # radix_filter_body's outermost frame (the statement of the body the instruction comes from); `place`
        # and its warp slots are inlined into both loops: each copy is charged to its loop.
        body = [(f, l) for f, l, n in frames if n == "radix_filter_body" and f == self.rf_file]
        outer = body[-1] if body else None
        loop = ""
        if kernel.startswith("radix_filter") and outer:
            loop = " [pool scan]" if inside(self.rf_scan_loop, outer[1]) else " [candidates]" if inside(self.rf_cand_loop, outer[1]) else ""
        if "warp_slot" in names:
            for f, l, n in frames:
                if n == "warp_slot":
                    if l in self.slot_ballot:
                        return SLOT_BALLOT + loop, ""
                    return SLOT_ATOMIC + loop, ""
        if kernel.startswith("radix_filter"):
            if "score_task" in names or "score_key" in names:
                return "radix: recompute key (pool scan, live lanes)", ""
            if any(inside(self.rf_place, l) for _, l in body):
                return PLACE + loop, ""
            if outer:
                l = outer[1]
                if "digits_reach" in names or l in self.rf_mask:
                    return MASK, ""
                # innermost block first: the scan's outer loop holds the others
                for rng, path in ((self.rf_partial, PARTIAL), (self.rf_scan_inner, SCAN_LOOP), (self.rf_queue, QUEUE),
                                  (self.rf_flush, FLUSH), (self.rf_scan_loop, OUTER), (self.rf_cand_loop, CAND_LOOP)):
                    if inside(rng, l):
                        return path, ""
            return "radix: setup + histogram flush", ""
        if "apply_pending_task" in names:
            return "pending update", ""
        if "score_task" in names:
            return "score (p_hat, target, key setup)", ""
        if "score_key" in names:
            return "key", ""
        return FIXED, ""


# ------------------------------------------------------------------------------------------------------
# Dynamic counts: the control-flow graph of a kernel's hot loop, walked in the benchmark's configuration
#
# Static counts charge every instruction of a path, as if the path were straight-line. Inside the task loop
# of update_sample_score(_fast) some branches depend only on the launch's configuration (kernel parameters,
# the pool's scalars), the same for every warp: a warp runs one side. DYN_CONFIG states the configuration
# (`bots bench`'s), config_branches() names each such source construct and the side that configuration runs,
# data_branches() the data-dependent ones (both sides kept: their paths carry the measured per-warp
# frequencies of the projection). The IEEE div/rcp/sqrt tests (the branch that skips a slow-path call site)
# take the fast path; a BRA.DIV (a warp collective's diverged fallback) is not taken by a converged warp. A
# conditional branch of the hot loop that none of these resolves is an error, not a guess.
DYN_CONFIG = ("f16 features (feature_form = BOTS_FEATURES_F16), K = 2 columns, mu set (mu_set = 1), the constant "
              "prior (no per-task alpha0/beta0), no marked task (a >= 0), pending update on (pending = 1), "
              "do_sample on, tau = 0; div/rcp/sqrt fast paths (FCHK passes), converged warps (no BRA.DIV)")

BRANCH_TARGET = re.compile(r'`\(([^)]+)\)')


def _frames_in(src, ins):
    return [(f, l, src.func_at(f, l)) for f, l in ins.chain]


def _in_func(name, lines=None):
    """Predicate: the instruction has a frame in function `name` (at one of `lines`, if given)."""
    return lambda frames: any(n == name and (lines is None or l in lines) for _, l, n in frames)


def config_branches(src, cls):
    """(function, source lines, condition in the benchmark configuration, 'run' or 'skip', predicate): a
    branch whose innermost frame is at those lines runs the side whose code (the instructions reachable from
    it and not from the other side) has an instruction matching the predicate ('run'), or the other side
    ('skip'). Matching instructions must come from the same inlined copy as the branch."""
    apt, body = "apply_pending_task", cls.uss_body
    marked = cls.block(apt, "if (a < 0.0f)")
    either = lambda *ps: lambda fr: any(p(fr) for p in ps)  # noqa: E731
    f16_first, f32_first = min(src.find("segment_rate", "c.form == BOTS_FEATURES_F16")), \
        min(src.find("segment_rate", "c.form == BOTS_FEATURES_F32"))
    # the f16 block's loads and conversions (ptxas may attribute a conversion to segment_rate's line, not to half_to_float's)
    f16 = either(_in_func("half_to_float"), _in_func("segment_rate", set(range(f16_first + 1, f32_first))))
    f32_last = min(src.find("segment_rate", "return 0.0f;"))
    f32 = _in_func("segment_rate", set(range(f32_first + 1, f32_last)))
    return [
        (body, src.find(body, "if (pending)"),
         "if (pending): pending = 1", "run", _in_func(apt)),
        (apt, src.find(apt, "if (a < 0.0f)"), "if (a < 0.0f) (a marked task): no task marked", "skip",
         _in_func(apt, set(range(marked[0] + 1, marked[1] + 1)))),
        ("segment_rate", src.find("segment_rate", "c.form == BOTS_FEATURES_F16"),
         "segment_rate: form == BOTS_FEATURES_F16 (f16 features, mu set)", "run", f16),
        ("segment_rate", src.find("segment_rate", "c.form == BOTS_FEATURES_F32"),
         "segment_rate: form == BOTS_FEATURES_F32: no (f16; the test is not reached)", "skip", f32),
        ("segment_rate", src.find("segment_rate", "if (c.lo != nullptr)"), "segment_rate: c.lo != nullptr (K = 2, lo is a column)",
         "run", f16),
        ("score_task", src.find("score_task", "if (p.do_sample)"), "if (p.do_sample): do_sample on",
         "run", either(_in_func("sample_beta"), _in_func("sample_beta_fast"))),
        ("score_task", src.find("score_task", "if (p.tau > 0.0f)"), "if (p.tau > 0.0f) ... Gumbel: tau = 0", "skip",
         either(_in_func("sample_gumbel"), _in_func("sample_gumbel_fast"))),
    ]


def data_branches(src, cls):
    """(function, source lines, what decides it): data-dependent branches, both sides kept (the paths
    behind them are weighted by the measured per-warp frequencies, or are in the per-path counts)."""
    g, f, fb = "sample_gamma_mt", "mt_attempt_fast", "sample_beta_fast"
    body = cls.uss_body
    first_try = [
        (body, src.find(body, "if (score_task<FAST, true>("), "first try: the task's score, or the task deferred"),
        ("score_task", src.find("score_task", "if (!drawn) return false;"), "first try: a draw needs more"),
        ("sample_beta", cls.beta_bail, "first try: a Gamma needs more"),
    ]
    mf = "mt_first_attempt"
    first_try += [
        (mf, src.find(mf, "x <= -1.0f"), "first attempt: x <= -1 (rejected)"),
        (mf, src.find(mf, "mt_squeeze("), "first attempt: squeeze / exact test / accept"),
        ("sample_beta", src.find("sample_beta", "mt_first_attempt<"), "first attempt rejected: the Gamma drawn whole"),
    ]
    exact = first_try + [
        (g, src.find(g, "x <= -1.0f"), "attempt: x <= -1 (rejected)"),
        (g, src.find(g, "mt_squeeze("), "attempt: squeeze / exact test / accept"),
        (g, cls.gamma["loop"], "another Philox block (retry)"),
        ("sample_beta", src.find("sample_beta", "beta_in_linear_space("), "Beta: linear vs log space (a shape below 1)"),
        ("gamma_boost", src.find("gamma_boost", "shape < 1.0f"), "boost: shape < 1"),
    ]
    if not src.has(fb):  # sources before the fast kernels (a comparison at an older commit)
        return exact
    return exact + [
        (f, src.find(f, "if (!ok)") | src.find(f, "if (ok)"), "fast attempt: squeeze / exact test / accept"),
        (fb, cls.fast["retry"] | src.find(fb, "bool need_"), "fast: a first attempt rejected, the retry loop"),
        (fb, cls.fast["bail"], "fast first try: a first attempt rejected (deferred)"),
        (fb, cls.fast["linear"], "fast Beta: linear vs log space (a shape below 1)"),
        ("gamma_boost_fast", src.find("gamma_boost_fast", "shape < 1.0f"), "fast boost: shape < 1"),
    ]


def _cfg_edges(insns, labels, i):
    """(kind, successors) of instruction i: kind '' (falls through), 'bra' (unconditional), 'cond'
    (conditional branch: [fall-through, target]), 'div' (BRA.DIV: [fall-through, fallback]), 'end' (EXIT,
    RET), 'call'."""
    text = insns[i].text
    m = re.match(r'^(@!?U?P[0-9T]+\s+)?(\S+)\s*(.*)$', text)
    guard, op, rest = (m.group(1) or "").strip(), m.group(2), m.group(3)
    never, always = guard in ("@!PT", "@!UPT"), guard in ("", "@PT", "@UPT")
    if never:
        return "", [i + 1]
    if op.startswith("BRA"):
        t = BRANCH_TARGET.search(rest)
        if not t or t.group(1) not in labels:
            raise SystemExit(f"cost_model.py: branch without a known target: {text}")
        tgt = labels[t.group(1)]
        if op.startswith("BRA.DIV"):
            return "div", [i + 1, tgt]
        # `BRA Pn, target` (a predicate operand): conditional on it as well
        if always and not re.match(r'^!?U?P[0-9]+\s*,', rest):
            return "bra", [tgt]
        return "cond", [i + 1, tgt]
    if op.startswith(("JMP", "JMX", "BRX", "JMXU", "BRXU")):
        raise SystemExit(f"cost_model.py: indirect branch in the hot loop, not modelled: {text}")
    if op.startswith(("EXIT", "RET")):
        return "end", ([i + 1] if not always else [])
    if op.startswith("CALL"):
        return "call", [i + 1]
    return "", [i + 1]


def dynamic_loop(src, cls, kernel, insns, labels, rng):
    """The instructions one iteration of the hot loop [t, b] runs in the benchmark configuration (the set of
    indices reachable from t, config branches resolved, data branches both ways), and the list of resolved
    branches (index, how)."""
    t, b = rng
    edges = {i: _cfg_edges(insns, labels, i) for i in range(t, b + 1)}

    def forward(start, seen_other=frozenset()):
        out, todo = set(), [start]
        while todo:
            i = todo.pop()
            if i in out or not t <= i <= b or i in seen_other:
                continue
            out.add(i)
            todo += [j for j in edges[i][1] if j > i]
        return out

    configs, datas = config_branches(src, cls), data_branches(src, cls)
    decided, how = {}, []
    for i in range(t, b + 1):
        kind, succ = edges[i]
        if kind not in ("cond", "div") or i == b:
            continue
        ins = insns[i]
        if ins.sub:  # inside a slow-path call site or a fallback: unreachable when they are skipped
            continue
        if kind == "div":
            decided[i] = [succ[0]]
            how.append((i, "BRA.DIV: converged warp, not taken"))
            continue
        if ins.slow_test:
            if insns[i + 1].sub != "call site":
                raise SystemExit(f"cost_model.py: {kernel} {ins.addr:#x}: a slow-path test whose fall-through is not the call")
            decided[i] = [succ[1]]
            how.append((i, "div/rcp/sqrt: fast path"))
            continue
        frames = _frames_in(src, ins)
        if not frames:
            raise SystemExit(f"cost_model.py: {kernel} {ins.addr:#x} {ins.text}: a branch without line info")
        f0, l0, n0 = frames[0]
        hits = [("config", c) for c in configs if c[0] == n0 and l0 in c[1]] + \
               [("data", d) for d in datas if d[0] == n0 and l0 in d[1]]
        if len(hits) != 1:
            what = "no rule" if not hits else "several rules"
            raise SystemExit(f"cost_model.py: {kernel}: hot-loop branch {ins.addr:#06x} `{ins.text}` at {n0} "
                             f"({f0}:{l0}: {src.line(f0, l0).strip()}) has {what} in config_branches()/data_branches()")
        kind2, rule = hits[0]
        if kind2 == "data":
            how.append((i, "data: " + rule[2]))
            continue
        _, _, cond, mode, pred = rule
        outer = ins.chain[1:]
        regions = [forward(succ[0]), forward(succ[1])]
        excl = [regions[0] - regions[1], regions[1] - regions[0]]
        match = [any(insns[j].chain[len(insns[j].chain) - len(outer):] == outer and pred(_frames_in(src, insns[j]))
                     for j in e) for e in excl]
        if match.count(True) != 1:
            raise SystemExit(f"cost_model.py: {kernel}: branch {ins.addr:#06x} `{ins.text}` ({cond}): "
                             f"{'neither side holds' if not any(match) else 'both sides hold'} the code the rule names")
        side = match.index(True) if mode == "run" else match.index(False)
        decided[i] = [succ[side]]
        how.append((i, "config: " + cond))

    reached, todo = set(), [t]
    while todo:
        i = todo.pop()
        if i in reached:
            continue
        if not t <= i <= b:
            continue  # leaves the loop (its exit)
        reached.add(i)
        if insns[i].sub:
            raise SystemExit(f"cost_model.py: {kernel}: the configured path reaches {insns[i].sub} code at {insns[i].addr:#06x}")
        kind, succ = edges[i]
        if kind == "call":
            raise SystemExit(f"cost_model.py: {kernel}: the configured path reaches a CALL at {insns[i].addr:#06x}")
        if i == b:
            continue  # the back-edge: the next iteration
        todo += decided.get(i, succ)
    return reached, how


# ------------------------------------------------------------------------------------------------------
# The projection
H100 = {
    "name": "H100 SXM5 80 GB",
    "sms": 132,
    "schedulers_per_sm": 4,
    "clock_ghz": 1.755,  # a sustained SM clock under load (max boost 1.98 GHz); stated, not measured
    "mem_tb_s": 3.0,  # measured device-to-device copy (read + write), the figure of issue 23
}

# Per-warp frequencies: the chance that a warp of 32 consecutive tasks runs the path (any lane taking it
# makes the warp pay), per Gamma draw. PLACEHOLDERS until the CPU-twin measurement fills them (see
# docs/BENCHMARKS.md, "Cost model"): per lane, about 2% of attempts fail the squeeze in `bots bench`
# (docs/BENCHMARKS.md, issue 14 item 3); the rates of a rejected attempt and of a rejected block are guesses.
FREQ_DEFAULTS = {
    "source": "PLACEHOLDER per-lane rates (2% squeeze failures, from docs/BENCHMARKS.md), not measured per warp",
    "warp_exact": 1 - 0.98 ** 32,  # some lane fails attempt 0's squeeze: the warp runs the exact test
    "warp_attempt1": 1 - (1 - 0.002) ** 32,  # some lane rejects attempt 0: the warp runs attempt 1
    "warp_exact1": 1 - (1 - 0.0001) ** 32,  # some lane fails attempt 1's squeeze: its exact test
    "warp_retry": 1 - (1 - 0.0001) ** 32,  # some lane rejects both attempts of a block: a new block
    "warp_log_space": 0.0,  # some lane has a shape below 1: log-space Beta and boosts
    "warp_pending": 1.0,  # the pool-wide update is pending (every step of the training loop)
    "gumbel": 0.0,  # tau > 0
}


def gamma_costs(per, A):
    """Warp instructions of one Gamma draw's pieces; attempt pieces are unrolled A times per block."""
    c = lambda p: per.get(p, 0.0)  # noqa: E731
    attempt = (c("gamma: attempt (x, u, branch)") + c("gamma: squeeze")) / A
    exact = c("gamma: exact test") / A
    block = c("gamma: Philox block") + c("gamma: Box-Muller") + c("gamma: block loop (retry back-edge)")
    first = c("gamma: shape constants") + c("gamma: other") + block
    return first, attempt, exact, c("gamma: accepted value") / A, block


def _exact_parts(per, freq, middle):
    """The exact draw's parts by the names the model prints: both first attempts' block, pair and
    constants, the attempts, then `middle` (what the whole draw or the first try adds), then the Beta's
    combination and the score."""
    c = lambda p: per.get(p, 0.0)  # noqa: E731
    return {
        "exact: shape constants, Philox block, Box-Muller pair": c("exact: shape constants")
        + c("exact: Philox block (both first attempts)") + c("exact: Box-Muller pair (z_alpha, z_beta)"),
        "exact: 2 first attempts (x, squeeze, value)": c("exact: first attempt (x, squeeze, value)"),
        **middle(c),
        "Beta: linear combine": c("beta: linear combine"),
        "Beta: log space + boosts (x warps)": (c("beta: log-space combine") + c("beta: boost (shape < 1)")) * freq["warp_log_space"],
        "Gumbel (x tau > 0)": c("gumbel (tau > 0)") * freq["gumbel"],
        "score, key": c("score (p_hat, target, key setup)") + c("key"),
    }


def sample_warp(per, freq, A):
    """One warp's instructions for the exact sample + score, the whole draw (radix_filter's recompute,
    finish_deferred): both Gammas' first attempts from one block and one Box-Muller pair, each first
    attempt's exact test weighted by the chance that some lane of the warp runs it (warp_exact), a Gamma
    drawn whole after its first attempt rejected (every path of sample_gamma_mt charged, per copy) by the
    chance that some lane rejects (warp_attempt1)."""
    return _exact_parts(per, freq, lambda c: {
        "exact: first attempts' exact tests (x warps running each)": c("exact: first attempt's exact test") * freq["warp_exact"],
        "exact: a Gamma drawn whole (x warps)": c("exact: a Gamma drawn whole after its first attempt rejected (sample_gamma_mt)")
        * freq["warp_attempt1"],
    })


def deferral_rate(freq, fast):
    """The chance that the fused pass defers a task's draw (its first try needs more), per task: exact, a
    Gamma's first attempt not accepted by the squeeze (the per-lane rate behind warp_exact); fast, a first
    attempt rejected (behind warp_attempt1); either of the two Gammas."""
    lane = 1 - (1 - freq["warp_attempt1" if fast else "warp_exact"]) ** (1 / 32)
    return 1 - (1 - lane) ** 2


def sample_warp_first(per, freq, A):
    """The fused pass's first try (update_sample_score: sample_beta<true>): both Gammas' first attempts
    from one block and one Box-Muller pair, the squeeze only; a draw that needs more is deferred to
    finish_deferred."""
    return _exact_parts(per, freq, lambda c: {
        "first try's tests (deferred when a Gamma needs more)": c("beta: first try's test (a Gamma needs more: deferred)"),
    })


def sample_warp_fast_first(per, freq, A):
    """The fused pass's fast first try (sample_beta_fast<true>): one Philox block and one Box-Muller pair,
    both first attempts with their exact tests (weighted as sample_warp_fast's); a rejection defers the
    draw to finish_deferred_fast."""
    c = lambda p: per.get(p, 0.0)  # noqa: E731
    return {
        "fast: shape constants, Philox block, Box-Muller pair": c("fast: shape constants")
        + c("fast: Philox block (both first attempts)") + c("fast: Box-Muller pair (z_alpha, z_beta)"),
        "fast: 2 first attempts (x, squeeze, value)": c("fast: first attempt (x, squeeze, value)"),
        "fast: first attempts' exact tests (x warps running each)": c("fast: first attempt's exact test") * freq["warp_exact"],
        "fast: first try's test (deferred when a first attempt rejects)": c("fast: first try's test (a first attempt rejected: deferred)"),
        "Beta: linear combine": c("fast: linear combine"),
        "Beta: log space + boosts (x warps)": c("fast: log-space combine + boosts") * freq["warp_log_space"],
        "Gumbel (x tau > 0)": c("gumbel (tau > 0)") * freq["gumbel"],
        "score, key": c("score (p_hat, target, key setup)") + c("key"),
    }


def sample_warp_fast(per, freq, A):
    """One warp's instructions for the fast sample + score (sample_beta_fast): one Philox block and one
    Box-Muller pair for both first attempts; each first attempt's exact test weighted as the exact mode's
    (the same per-lane law), the retry loop by the chance that some lane of the warp rejects either first
    attempt (per lane and Gamma p = 1 - (1 - warp_attempt1)^(1/32); 64 draws per warp), run once; inside
    it, the exact test and the block's second attempt by the chance that the (about one) lane retrying
    needs them: the per-lane rates of a failed squeeze and of a rejection (from warp_exact, warp_attempt1)."""
    c = lambda p: per.get(p, 0.0)  # noqa: E731
    lane = lambda w: 1 - (1 - w) ** (1 / 32)  # noqa: E731
    p_lane = lane(freq["warp_attempt1"])
    warp_retry = 1 - (1 - p_lane) ** 64
    retry_exact, retry_second = warp_retry * lane(freq["warp_exact"]), warp_retry * p_lane
    return {
        "fast: shape constants, Philox block, Box-Muller pair": c("fast: shape constants")
        + c("fast: Philox block (both first attempts)") + c("fast: Box-Muller pair (z_alpha, z_beta)"),
        "fast: 2 first attempts (x, squeeze, value)": c("fast: first attempt (x, squeeze, value)"),
        "fast: first attempts' exact tests (x warps running each)": c("fast: first attempt's exact test") * freq["warp_exact"],
        f"fast: retry loop (x {warp_retry:.3f} of warps)": c("fast: retry loop (Philox, Box-Muller, first attempt)") * warp_retry,
        "fast: retry's exact test and second attempt (x warps)": c("fast: retry, first attempt's exact test") * retry_exact
        + c("fast: retry, the block's second attempt") * retry_second,
        "Beta: linear combine": c("fast: linear combine"),
        "Beta: log space + boosts (x warps)": c("fast: log-space combine + boosts") * freq["warp_log_space"],
        "Gumbel (x tau > 0)": c("gumbel (tau > 0)") * freq["gumbel"],
        "score, key": c("score (p_hat, target, key setup)") + c("key"),
    }


def per_run_counts(counts):
    """Static counts of one kernel summed over draws (a Gamma path: both inlined copies, alpha and beta,
    averaged to one draw)."""
    per = collections.defaultdict(float)
    for (p, d), v in counts.items():
        per[p] += v / 2.0 if d else v
    return per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sass", required=True)
    ap.add_argument("--ptxas-log", required=True)
    ap.add_argument("--kernels", default="kernels")
    ap.add_argument("--freq", help="JSON file of per-warp frequencies (keys of FREQ_DEFAULTS)")
    ap.add_argument("--tasks", type=float, default=1e8)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--json", help="also write the static counts here")
    a = ap.parse_args()

    src = Sources(a.kernels)
    cls = Classifier(src)
    kernels, labels = parse_sass(a.sass)
    res = parse_ptxas(a.ptxas_log)
    out = []
    w = out.append

    w("#### Kernels (sm_90, static SASS instructions)\n")
    w("| kernel | registers | stack | spill bytes | smem bytes | SASS instructions | div/rcp/sqrt slow paths | padding |")
    w("|---|---|---|---|---|---|---|---|")
    for k, insns in sorted(kernels.items()):
        r = res.get(k, {})
        nslow = sum(1 for i in insns if i.sub in ("subroutine", "call site"))
        npad = sum(1 for i in insns if i.sub == "padding")
        w(f"| `{k}` | {r.get('regs', '?')} | {r.get('stack', '?')} | {r.get('spill', '?')} | {r.get('smem', 0)} | "
          f"{len(insns)} | {nslow} | {npad} |")
    w("")

    # The task loops of each kernel, innermost first, with the path that a setup value recomputed inside one is
    # charged to (in the pool scan's outer loop: once per chunk with a live task and per queue placed).
    uss_loops = [(cls.uss_file, cls.uss_loop, None)]
    rf_loops = [(cls.rf_file, cls.rf_scan_inner, SCAN_LOOP), (cls.rf_file, cls.rf_queue, QUEUE),
                (cls.rf_file, cls.rf_cand_loop, CAND_LOOP), (cls.rf_file, cls.rf_scan_loop, OUTER)]
    loops = {"update_sample_score": uss_loops, "radix_filter": rf_loops,
             "update_sample_score_fast": uss_loops, "radix_filter_fast": rf_loops}
    counts, dyn, branches = {}, {}, {}
    for k, ls in loops.items():
        if k not in kernels:
            raise SystemExit(f"cost_model.py: kernel {k} not in the SASS")
        rngs = []
        for fn, (lo, hi), setup_path in ls:
            rng = loop_range(kernels[k], labels[k], fn, lo + 1, hi)
            if rng is None:
                raise SystemExit(f"cost_model.py: no SASS loop around {fn}:{lo}-{hi} in {k}")
            rngs.append((rng, setup_path))
        # update_sample_score(_fast): the instructions of its task loop that the benchmark configuration runs
        reached = None
        if k.startswith("update_sample_score"):
            reached, branches[k] = dynamic_loop(src, cls, k, kernels[k], labels[k], rngs[0][0])
        c, cd = collections.Counter(), collections.Counter()
        for idx, i in enumerate(kernels[k]):
            path, draw = cls.classify(k, i)
            within = [sp for (a, b), sp in rngs if a <= idx <= b]
            if not i.sub and not within:
                path, draw = SETUP, ""
            elif path in ("radix: setup + histogram flush", SCAN_LOOP) and within:
                path = within[0]  # a setup line's value recomputed inside the loop
            c[(path, draw)] += 1
            # dynamic: the loop's reached instructions and the setup (static: run once per thread)
            if reached is not None and (idx in reached if within else not i.sub):
                cd[(path, draw)] += 1
        counts[k] = c
        if reached is not None:
            dyn[k] = cd

    w("#### Paths (static SASS instructions inside each kernel; a Gamma draw is inlined twice, alpha and beta, "
      f"and its {cls.attempts_per_block} attempts per Philox block are unrolled)\n")
    for k, c in counts.items():
        w(f"`{k}`:\n")
        cd = dyn.get(k)
        if cd is None:
            w("| path | alpha draw | beta draw | total |")
            w("|---|---|---|---|")
        else:
            w("| path | alpha draw | beta draw | total | dynamic: run in the benchmark configuration (alpha / beta / total) |")
            w("|---|---|---|---|---|")
        for p in sorted({p for p, _ in c}):
            tot = sum(v for (pp, _), v in c.items() if pp == p)
            row = f"| {p} | {c.get((p, 'alpha'), 0) or ''} | {c.get((p, 'beta'), 0) or ''} | {tot} |"
            if cd is not None:
                da, db = cd.get((p, "alpha"), 0), cd.get((p, "beta"), 0)
                dt = sum(v for (pp, _), v in cd.items() if pp == p)
                row += f" {da} / {db} / {dt} |" if (p, "alpha") in c or (p, "beta") in c else f" {dt} |"
            w(row)
        w(f"| **total** | | | **{sum(c.values())}** |" + (f" **{sum(cd.values())}** |" if cd is not None else ""))
        w("")
        if cd is not None:
            tally = collections.Counter(h for _, h in branches[k])
            w(f"Conditional branches of `{k}`'s task loop, {sum(tally.values())}, resolved:\n")
            w("| branch (source construct) | how | count |")
            w("|---|---|---|")
            for h, v in sorted(tally.items()):
                kind, _, what = h.partition(": ")
                w(f"| {what} | {kind} | {v} |")
            w("")

    freq = dict(FREQ_DEFAULTS)
    if a.freq:
        freq.update(json.load(open(a.freq)))
    for suffix, sampler, first, mode in [("", sample_warp, sample_warp_first, "exact (default)"),
                                         ("_fast", sample_warp_fast, sample_warp_fast_first, "fast (KernelMode::Fast)")]:
        project(w, a, cls, freq, per_run_counts(counts["update_sample_score" + suffix]),
                per_run_counts(dyn["update_sample_score" + suffix]),
                per_run_counts(counts["radix_filter" + suffix]), sampler, suffix, mode, first,
                kernels["finish_deferred" + suffix])
    w("| mode (`bots bench`) | launches per step | also per step |")
    w("|---|---|---|")
    sel = ("select_init, update_sample_score, finish_deferred, 6 x (radix_find_bin, radix_filter), bitonic_sort_block, "
           "keys_to_tasks")
    upd = "apply_pending, clear_pending, batch_validate, batch_reduce, batch_scatter, batch_finish"
    w(f"| `--device-verbs` | 17 + 6 = 23 ({sel}; {upd}) | none |")
    w("| `--graph` | 1 graph launch of the same 23 kernels | none |")
    w("| host verbs (default) | the same 23 | k ids device-to-host, k outcomes host-to-device, a synchronization |")
    w("\n`--kernel-mode fast` launches `update_sample_score_fast`, `finish_deferred_fast` and `radix_filter_fast` in "
      "place of the exact three; a pool with a prior per task, `update_sample_score(_fast)_prior` (the table: the "
      "constant prior's entries).\n")
    print("\n".join(out))
    if a.json:
        asdict = lambda cs: {k: {f"{p}|{d}": v for (p, d), v in c.items()} for k, c in cs.items()}  # noqa: E731
        # the static counts per kernel as before; the dynamic ones (benchmark configuration) beside them
        json.dump({**asdict(counts), "_dynamic": asdict(dyn), "_dynamic_configuration": DYN_CONFIG},
                  open(a.json, "w"), indent=1)


def uss_warp_parts(uss, freq, sampler, A, rate):
    """update_sample_score's warp instructions per warp of 32 tasks, by part (rate: the per-task deferral
    rate; a warp runs the deferral when any of its 32 lanes defers)."""
    parts = {"loop, loads, stores, digit, histogram atomic": uss[FIXED],
             "pending update (x pending)": uss["pending update"] * freq["warp_pending"]}
    parts.update(sampler(uss, freq, A))
    parts[f"deferral: the task's bit (x {1 - (1 - rate) ** 32:.3f} of warps)"] = uss[DEFER] * (1 - (1 - rate) ** 32)
    return parts


def finish_costs(cls, insns, rate, n):
    """finish_deferred(_fast)'s warp instructions at N = n: (per warp iteration, per round of up to 32
    draws, rounds per warp iteration, total). A warp iteration reads 32·SPAN words (1024·SPAN tasks) and
    builds the queue (its fill loop unrolled SPAN times); each round draws 32 queued tasks whole. Per round, every path of the whole draw is charged
    once (a round's ~10-15 lanes between them need the exact tests, attempt 1 and retries of both Gammas),
    except the log-space Beta, the boosts and Gumbel (not in the benchmark configuration) and the IEEE slow
    paths. The queue fill runs per set bit of the busiest lane: charged mean + 2 sd + 1 times."""
    scan = fill = draw = 0
    for ins in insns:
        if ins.sub:
            continue
        lines = [l for f, l in ins.chain if f == cls.fd_file and cls.src.func_at(f, l) == cls.fd_body]
        if not lines:
            continue
        l = lines[-1]
        path, _ = cls.classify("finish_deferred", ins)
        if cls.fd_draw[0] <= l <= cls.fd_draw[1]:
            if any(x in path for x in ("log-space", "boost", "gumbel", "padding")):
                continue
            draw += 1
        elif cls.fd_fill[0] <= l <= cls.fd_fill[1]:
            fill += 1
        elif cls.fd_loop[0] <= l <= cls.fd_loop[1]:
            scan += 1
    lam = 1024.0 * cls.fd_span * rate  # deferred tasks per warp iteration (Poisson)
    # E[ceil(X / 32)], X ~ Poisson(lam)
    pk, rounds, cdf = math.exp(-lam), 0.0, 0.0
    for x in range(0, int(lam + 20 * math.sqrt(lam + 1) + 64)):
        if x > 0:
            pk *= lam / x
        rounds += pk * math.ceil(x / 32)
    per_lane = lam / 32.0 / cls.fd_span  # set bits per lane and word (the fill loop is unrolled per word)
    per_iter = scan + fill * (per_lane + 2 * math.sqrt(per_lane) + 1)
    iters = n / (1024.0 * cls.fd_span)
    return per_iter, draw, rounds, iters * (per_iter + rounds * draw)


def project(w, a, cls, freq, uss, uss_dyn, rf, sampler, suffix, mode, first_sampler=None, fd_insns=None):
    """The projection of one kernel mode (exact: sample_warp; fast: sample_warp_fast), from the static counts
    of update_sample_score's paths (uss) and from the dynamic ones (uss_dyn: the benchmark configuration);
    radix_filter's counts are static."""
    n, kk, hw, A = a.tasks, a.batch, H100, cls.attempts_per_block
    warps = n / 32.0
    drate = deferral_rate(freq, suffix == "_fast")
    uss_parts = uss_warp_parts(uss, freq, first_sampler, cls.attempts_first, drate)
    uss_warp = sum(uss_parts.values())
    dyn_parts = uss_warp_parts(uss_dyn, freq, first_sampler, cls.attempts_first, drate)
    dyn_warp = sum(dyn_parts.values())
    fd_iter, fd_round, fd_rounds, fd_total = finish_costs(cls, fd_insns, drate, n)

    # radix_filter. Pass 0 scans the pool: a warp iteration of the chunk loop takes 256 tasks (8 digits per
    # lane, one 16-byte load) and runs the loop, the load, the test and a warp OR; an iteration where some
    # lane holds a task whose cached 16-bit digit reaches the chosen bin (about N / 2048 + k of them,
    # scattered: Poisson over the iterations) builds that lane's slot mask and leaves the chunk loop (the
    # outer loop's part, with the setup values it recomputes); each live task takes a round of the queue
    # loop (ballot, shuffle into the queue); each full queue, and the rest of each warp's queue at the end,
    # runs the outer loop's part, the key's recompute (the whole sample + score) and a placement, for 32
    # tasks at once. The partial first and last chunks (at most 2 lanes per launch) are left out. Passes
    # 1-5 read the candidate buffer, 32 keys per warp iteration.
    # Per launch of a pool-sized grid: 4 blocks of 8 warps per SM, each running the setup once.
    grid_warps = hw["sms"] * 4 * 8
    live = n / 2048.0 + kk
    groups = n / 256.0
    groups_live = groups * (1.0 - math.exp(-live / groups))
    scan_warps = min(grid_warps, math.ceil(groups / 32.0))  # warps with chunks to scan
    flushes = scan_warps * math.ceil(live / scan_warps / 32.0)
    scan, mask, per_live, outer = rf[SCAN_LOOP], rf[MASK], rf[QUEUE], rf[OUTER]
    rf_sample = sum(sampler(rf, freq, A).values()) + rf["radix: recompute key (pool scan, live lanes)"]
    # A placement round: the per-key logic and both warp-slot ballots; of the two atomics (out_keys, the
    # candidate buffer) only the one some lane places through runs (a live pool task goes to one of them).
    place = {w: rf[PLACE + w] + rf[SLOT_BALLOT + w] + rf[SLOT_ATOMIC + w] / 2 for w in (" [pool scan]", " [candidates]")}
    per_flush = rf[FLUSH] + rf_sample + place[" [pool scan]"]
    rf_pass0 = groups * scan + groups_live * (mask + outer) + live * per_live + flushes * (outer + per_flush)
    cand = live
    rf_later = 5 * (cand / 32.0) * (rf[CAND_LOOP] + place[" [candidates]"])
    setup_uss = grid_warps * uss[SETUP]
    setup_rf = grid_warps * rf[SETUP]

    sched = hw["sms"] * hw["schedulers_per_sm"]
    rate = sched * hw["clock_ghz"] * 1e9
    # bytes per task (bots bench's pool: f16 features, 2 columns): alpha, beta read and written (16), the two
    # features of the pending update (4), the digit cache written (2); pass 0 reads the digits (2) and, per
    # live task, alpha and beta again (two 32-byte sectors); later passes read and write 8-byte candidates.
    uss_bytes = n * (8 + (8 + 4) * freq["warp_pending"] + 2)
    # finish_deferred: the words read (and the non-zero ones cleared), per deferred task its alpha and beta
    # (two 32-byte sectors) and its digit (a sector written).
    deferred = n * drate
    fd_bytes = n / 8 + n / 8 * (1 - (1 - drate) ** 32) + deferred * 96
    rf_rows = [
        (f"finish_deferred{suffix} ({deferred / 1e6:.2f} M deferred draws)", fd_bytes, fd_total),
        (f"radix_filter{suffix} pass 0 (pool scan)", n * 2 + live * 64 + live * 8, rf_pass0 + setup_rf),
        (f"radix_filter{suffix} passes 1-5 (candidates)", 5 * cand * 16, rf_later + 5 * setup_rf),
    ]
    steps = [("static counts", f"update_sample_score{suffix}, static counts", warps * uss_warp + setup_uss),
             ("dynamic counts", f"update_sample_score{suffix}, dynamic counts", warps * dyn_warp + setup_uss)]

    w(f"#### Projection, {mode}: N = {n:.0e}, k = {kk}, {hw['name']}\n")
    w(f"Assumed: {hw['sms']} SMs x {hw['schedulers_per_sm']} schedulers at {hw['clock_ghz']} GHz = "
      f"{rate / 1e12:.3f} T warp instructions/s at 1 instruction per cycle per scheduler; memory "
      f"{hw['mem_tb_s']} TB/s (measured-copy figure). Frequencies: {freq['source']}: "
      + ", ".join(f"{k} = {v:.3g}" for k, v in freq.items() if isinstance(v, (int, float))) + ".\n")
    w(f"`update_sample_score{suffix}`, warp instructions per warp of 32 tasks (x: weighted by the per-warp frequency):\n")
    w("| part | warp instructions | dynamic: benchmark configuration |")
    w("|---|---|---|")
    for p, v in uss_parts.items():
        w(f"| {p} | {v:.1f} | {dyn_parts[p]:.1f} |")
    w(f"| **total** | **{uss_warp:.1f}** | **{dyn_warp:.1f}** |")
    w("")
    w(f"(Warp instructions: static counts, every instruction of a path charged; dynamic: the instructions of "
      f"update_sample_score{suffix}'s task loop that a warp runs in the benchmark configuration: {DYN_CONFIG}. "
      "The data-dependent paths keep their per-warp frequencies in both.)\n")
    w(f"`finish_deferred{suffix}`: {drate * 100:.2f}% of draws deferred ({deferred / 1e6:.2f} M at N = {n:.0e}); per warp "
      f"iteration of {32 * cls.fd_span} words ({1024 * cls.fd_span} tasks) {fd_iter:.0f} warp instructions (scan, queue), {fd_rounds:.2f} rounds of "
      f"{fd_round} (the whole draw for up to 32 queued tasks, every path once); {fd_total / n * 32:.1f} per 32 "
      "tasks of the pool.\n")
    w(f"`radix_filter{suffix}` pass 0: {scan:.0f} per warp iteration of 256 tasks for the scan ({scan / 8:.1f} per 32 "
      f"tasks), {mask + outer:.0f} more in an iteration where a lane holds a live task ({groups_live:.0f} of "
      f"{groups:.0f}), {per_live:.0f} per live task to queue it ({live:.0f}), {outer + per_flush:.0f} per placement of "
      f"a queue of up to 32 ({flushes:.0f}: {scan_warps} warps); in all, with the setup, "
      f"{(rf_pass0 + setup_rf) / n * 32:.1f} per 32 tasks.\n")
    w("| kernel | bytes | memory time (ms) | warp instructions | issue time, IPC 1 (ms) | IPC 0.8 (ms) | projected (ms) |")
    w("|---|---|---|---|---|---|---|")

    def times(b, ins):
        m = b / (hw["mem_tb_s"] * 1e12) * 1e3
        i1 = ins / rate * 1e3
        return m, i1, i1 / 0.8

    for _, name, ins in steps:
        m, i1, i8 = times(uss_bytes, ins)
        w(f"| {name} | {uss_bytes / 1e9:.3f} GB | {m:.3f} | {ins / 1e6:.1f} M | {i1:.3f} | {i8:.3f} | {max(m, i1):.3f} to {max(m, i8):.3f} |")
    for name, b, ins in rf_rows:
        m, i1, i8 = times(b, ins)
        w(f"| {name} | {b / 1e9:.3f} GB | {m:.3f} | {ins / 1e6:.1f} M | {i1:.3f} | {i8:.3f} | {max(m, i1):.3f} to {max(m, i8):.3f} |")
    for label, _, uss_ins in steps:
        tm = t1 = t8 = p1 = p8 = 0.0
        for b, ins in [(uss_bytes, uss_ins)] + [(b, ins) for _, b, ins in rf_rows]:
            m, i1, i8 = times(b, ins)
            tm, t1, t8, p1, p8 = tm + m, t1 + i1, t8 + i8, p1 + max(m, i1), p8 + max(m, i8)
        w(f"| **step, these kernels ({label})** | | **{tm:.3f}** | | **{t1:.3f}** | **{t8:.3f}** | **{p1:.3f} to {p8:.3f}** |")
    w("")
    w("Projected = the larger of memory and issue time, per kernel, at IPC 1 and 0.8 per scheduler; not counted: "
      "the one-block kernels (radix_find_bin x6, bitonic_sort_block, keys_to_tasks, select_init, the batch kernels), "
      "launch gaps, the tail of each grid.\n")


if __name__ == "__main__":
    main()
