// An emulated CUDA driver (libcuda.so) for tests: the part of the driver API this crate calls through
// cudarc, implemented on the CPU with the real kernels/bots.cu compiled by g++ (scripts/emu/cuda_shim.h).
// It lets CI run the crate's Rust host code (what is launched, in what order, with which arguments and
// buffers) with no GPU. A test tool, not a backend: slow is fine, strict is the point.
//
// Built and used by scripts/emu-driver/test.sh, which puts it first on LD_LIBRARY_PATH (cudarc loads
// `libcuda.so` by name with dlopen); nothing else ever finds it.
//
// What it checks, beyond running the kernels (see cuda_shim.h for barriers, shared memory, thread order):
// - Module load parses the PTX the crate embeds and compares every `.entry`'s parameter list (count and
//   byte sizes) with the emulated kernel's C++ signature, both ways; a mismatch fails the load with
//   CUDA_ERROR_INVALID_PTX and says why in the JIT error log. A launch reads each argument with the
//   size the PTX declares, and every pointer argument, and every pointer field of a `Pool` or `Batch`
//   argument (the generated abi.cuh), must be null or inside a live allocation.
// - Streams are queues that run only when something waits for them: cuStreamSynchronize,
//   cuCtxSynchronize, cuEventSynchronize, a device-to-host copy (which, into pageable memory, returns
//   once the copy is done, as on a GPU, so it runs its stream up to itself) or a stream waiting on an
//   event of another stream. Work on a stream nobody waited for has not happened yet: a missing wait or
//   synchronize reads stale data, as it can on a GPU. The NULL handle and CU_STREAM_LEGACY are one
//   legacy stream, which (unlike a GPU's, for blocking streams) never synchronizes implicitly with the
//   others; CU_STREAM_PER_THREAD is a different queue on every OS thread, as on a GPU.
// - Device buffers end at a guard page (an access past the end faults; the fault is reported with the
//   kernel's name), the few bytes of alignment slack and the rest of the first page are canaries checked
//   after every kernel, fresh allocations are filled with 0xFF (NaN), freed ones are unmapped.
// - Stream capture records into a graph that cuGraphLaunch replays. The legacy NULL stream cannot be
//   captured and may not be used while a capture is active (CUDA_ERROR_STREAM_CAPTURE_IMPLICIT), a
//   synchronize, allocation, free or host copy on a capturing stream invalidates the capture, and an
//   event last recorded inside a capture cannot be waited on or synchronized outside it
//   (CUDA_ERROR_CAPTURED_EVENT). Stricter than a GPU in one place: allocations inside a capture are
//   refused (this crate promises none).
// - Errors inside a kernel are sticky, as on a GPU: every later call returns CUDA_ERROR_LAUNCH_FAILED.
// - The driver's CUDA version (cuDriverGetVersion) bounds the PTX ISA it loads, as on a GPU: a module
//   whose `.version` is newer than that release's is refused with CUDA_ERROR_UNSUPPORTED_PTX_VERSION
//   and ptxas's message in the JIT error log (scripts/wheel-check.sh loads the wheel's PTX as driver 535).
//
// Environment: BOTS_EMU_SMS (multiprocessors reported, default 2), BOTS_EMU_SEED (thread order),
// BOTS_EMU_DRIVER_VERSION (the CUDA version reported, 1000*major + 10*minor, default 13000: 12020 is
// driver 535 / CUDA 12.2).
#include "cuda_shim.h"
#include "../../kernels/bots.cu"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cinttypes>
#include <cstdarg>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <type_traits>
#include <utility>

#define API extern "C" __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum : int {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_PTX = 218,
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_ILLEGAL_STATE = 401,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_READY = 600,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_LAUNCH_FAILED = 719,
    CUDA_ERROR_NOT_SUPPORTED = 801,
    CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
    CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901,
    CUDA_ERROR_STREAM_CAPTURE_IMPLICIT = 906,
    CUDA_ERROR_CAPTURED_EVENT = 907,
};

namespace {

const size_t kPage = 4096;

void note(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void note(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "emulated CUDA driver: ");
    std::vfprintf(stderr, fmt, ap);
    std::fprintf(stderr, "\n");
    va_end(ap);
}

// ---------------------------------------------------------------------------------------------------
// Kernels: name, parameter sizes from the C++ signature, and a call with arguments read from buffers.
// The device pointers one argument carries, with names: itself if it is a pointer, each pointer field
// if it is one of the ABI structs (field lists from the generated abi.cuh), else none.
using ArgPtrs = std::vector<std::pair<std::string, uint64_t>>;
template <class A> ArgPtrs arg_ptrs(const void* a) {
    using T = std::remove_cv_t<std::remove_reference_t<A>>;
    ArgPtrs out;
#define BOTS_EMU_FIELD(f) out.emplace_back("." #f, (uint64_t)(uintptr_t)v.f);
    if constexpr (std::is_pointer_v<T>) {
        out.emplace_back("", (uint64_t)(uintptr_t) * reinterpret_cast<const T*>(a));
    } else if constexpr (std::is_same_v<T, Pool>) {
        const Pool& v = *reinterpret_cast<const Pool*>(a);
        BOTS_POOL_PTRS(BOTS_EMU_FIELD)
    } else if constexpr (std::is_same_v<T, Batch>) {
        const Batch& v = *reinterpret_cast<const Batch*>(a);
        BOTS_BATCH_PTRS(BOTS_EMU_FIELD)
    }
#undef BOTS_EMU_FIELD
    return out;
}

struct KernelInfo {
    std::string name;
    std::vector<size_t> sizes;
    std::vector<ArgPtrs (*)(const void*)> ptrs;
    std::function<void(void* const*)> invoke;
};

template <class... A, size_t... I>
void invoke_with(void (*f)(A...), void* const* args, std::index_sequence<I...>) {
    f(*reinterpret_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

template <class... A> KernelInfo kernel(const char* name, void (*f)(A...)) {
    return KernelInfo{name, {sizeof(A)...}, {&arg_ptrs<A>...},
                      [f](void* const* args) { invoke_with(f, args, std::index_sequence_for<A...>{}); }};
}

// Every kernel of kernels/bots.cu, from the list in abi.cuh (generated from src/abi.rs by build.rs).
const std::vector<KernelInfo>& kernels() {
#define BOTS_EMU_KERNEL(name) kernel(#name, name),
    static const std::vector<KernelInfo> k = {BOTS_KERNELS(BOTS_EMU_KERNEL)};
#undef BOTS_EMU_KERNEL
    return k;
}

// ---------------------------------------------------------------------------------------------------
// Device memory.
struct Alloc {
    char* map;        // the whole mapping: [guard][canary .. base .. base+size .. slack][guard]
    size_t map_len;
    size_t size;
    char* base;
    bool freed = false;
};

struct Stream;
struct Graph;

struct Op {
    std::string what;
    std::function<CUresult()> run;
};

struct Event {
    Stream* stream = nullptr;  // last recorded on (outside capture)
    uint64_t seq = 0;          // complete when stream->done >= seq
    bool captured = false;     // last recorded inside a capture
    Graph* graph = nullptr;
};

struct Graph {
    std::vector<Op> ops;
};

struct Stream {
    unsigned flags = 0;
    std::deque<Op> queue;
    uint64_t enqueued = 0, done = 0;
    Graph* capture = nullptr;
    bool capture_invalid = false;
    bool legacy = false;
    bool per_thread = false;  // a thread's CU_STREAM_PER_THREAD queue (never destroyed)
};

struct Module {
    std::map<std::string, std::vector<size_t>> entries;  // PTX parameter sizes
};

struct Function {
    const KernelInfo* info;
    std::vector<size_t> ptx_sizes;
};

struct Driver {
    std::recursive_mutex mu;
    bool init = false;
    CUresult sticky = CUDA_SUCCESS;
    std::map<uintptr_t, Alloc> allocs;  // by base
    Stream legacy;
    std::set<Stream*> streams;
    std::set<Event*> events;
    std::set<Graph*> graphs;
    std::set<Module*> modules;
    std::vector<std::unique_ptr<Function>> functions;
    const char* running = nullptr;  // kernel being run, for the fault handler
    int sms = 2;
    Driver() {
        legacy.legacy = true;
        if (const char* s = std::getenv("BOTS_EMU_SMS")) sms = std::max(1, std::atoi(s));
    }
};

Driver& drv() {
    static Driver* d = new Driver();  // never destroyed: cudarc may call in from static destructors
    return *d;
}

int ctx_token;  // the one (primary) context
thread_local void* current_ctx = nullptr;

Alloc* find_alloc(uintptr_t p, bool include_freed = false) {
    auto& a = drv().allocs;
    auto it = a.upper_bound(p);
    if (it == a.begin()) return nullptr;
    --it;
    Alloc& al = it->second;
    if (al.freed && !include_freed) return nullptr;
    const uintptr_t b = (uintptr_t)al.base;
    if (p >= b && p < b + std::max<size_t>(al.size, 1)) return &al;
    return nullptr;
}

bool range_ok(CUdeviceptr p, size_t n) {
    Alloc* a = find_alloc(p);
    return a != nullptr && p + n <= (uintptr_t)a->base + a->size;
}

// __ldg in the kernels checks its reads against the live buffers (cuda_shim.h).
const bool ldg_checked = (emu_read_ok = [](unsigned long long p, size_t n) { return range_ok(p, n); }, true);

const unsigned char kCanary = 0xA5;

CUresult do_alloc(CUdeviceptr* out, size_t size) {
    const size_t placed = (std::max<size_t>(size, 1) + 7) & ~size_t(7);
    const size_t body = (placed + kPage - 1) & ~(kPage - 1);
    const size_t map_len = body + 2 * kPage;
    void* m = mmap(nullptr, map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    char* map = (char*)m;
    if (mprotect(map + kPage, body, PROT_READ | PROT_WRITE) != 0) {
        munmap(m, map_len);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    char* base = map + kPage + body - placed;
    // Canaries from the start of the accessible pages up to base, and the slack after the buffer.
    std::memset(map + kPage, kCanary, (size_t)(base - (map + kPage)));
    std::memset(base + size, kCanary, placed - size);
    std::memset(base, 0xFF, size);  // uninitialized device memory reads as NaN / all ones
    drv().allocs[(uintptr_t)base] = Alloc{map, map_len, size, base};
    *out = (CUdeviceptr)base;
    return CUDA_SUCCESS;
}

void do_free(Alloc& a) {
    a.freed = true;
    mprotect(a.map, a.map_len, PROT_NONE);
    madvise(a.map, a.map_len, MADV_DONTNEED);  // address space kept: a later use faults
}

bool canaries_ok(const Alloc& a, std::string* why) {
    const char* lo = a.map + kPage;
    for (const char* p = lo; p < a.base; ++p)
        if ((unsigned char)*p != kCanary) {
            *why = "a write " + std::to_string(a.base - p) + " bytes before the " + std::to_string(a.size) + "-byte buffer at " +
                   std::to_string((uintptr_t)a.base);
            return false;
        }
    const size_t placed = (std::max<size_t>(a.size, 1) + 7) & ~size_t(7);
    for (size_t i = a.size; i < placed; ++i)
        if ((unsigned char)a.base[i] != kCanary) {
            *why = "a write " + std::to_string(i - a.size) + " bytes past the end of the " + std::to_string(a.size) +
                   "-byte buffer at " + std::to_string((uintptr_t)a.base);
            return false;
        }
    return true;
}

// Out-of-bounds accesses that reach a guard page.
struct sigaction old_segv;
void on_segv(int sig, siginfo_t* si, void* uc) {
    Driver& d = drv();
    const uintptr_t addr = (uintptr_t)si->si_addr;
    for (auto& [b, a] : d.allocs) {
        if (addr >= (uintptr_t)a.map && addr < (uintptr_t)a.map + a.map_len) {
            char msg[512];
            const long off = (long)(addr - (uintptr_t)a.base);
            const int n = std::snprintf(msg, sizeof msg,
                                        "emulated CUDA driver: kernel %s: illegal address %#" PRIxPTR
                                        ": byte %ld of the %zu-byte device buffer at %#" PRIxPTR "%s\n",
                                        d.running ? d.running : "(none: host code)", addr, off, a.size, b,
                                        a.freed ? " (freed)" : " (out of bounds)");
            if (n > 0) (void)!write(2, msg, (size_t)n);
            signal(SIGABRT, SIG_DFL);
            abort();
        }
    }
    sigaction(SIGSEGV, &old_segv, nullptr);  // not ours: let the previous handler see the refault
    (void)sig;
    (void)uc;
}

void install_handler() {
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

// ---------------------------------------------------------------------------------------------------
// Streams and execution.
// The NULL handle and CU_STREAM_LEGACY are the one legacy stream; CU_STREAM_PER_THREAD is a different
// queue on every OS thread, as on a GPU: work a thread enqueued there is not on another thread's (a
// pool that moved threads and kept launching on the handle would lose its order, and this shows it).
Stream* S(void* h) {
    if (h == nullptr || h == (void*)0x1) return &drv().legacy;
    if (h == (void*)0x2) {
        thread_local Stream* mine = nullptr;
        if (mine == nullptr) {
            mine = new Stream();
            mine->per_thread = true;
            drv().streams.insert(mine);
        }
        return mine;
    }
    return (Stream*)h;
}

bool any_capture() {
    for (Stream* s : drv().streams)
        if (s->capture != nullptr) return true;
    return false;
}

void fail_sticky(CUresult r, const std::string& why) {
    Driver& d = drv();
    if (d.sticky == CUDA_SUCCESS) {
        note("%s; the context is now unusable (sticky error %d)", why.c_str(), r);
        d.sticky = r;
    }
    d.legacy.queue.clear();
    for (Stream* s : d.streams) s->queue.clear();
}

CUresult run_until(Stream* s, uint64_t seq) {
    Driver& d = drv();
    while (d.sticky == CUDA_SUCCESS && s->done < seq && !s->queue.empty()) {
        Op op = std::move(s->queue.front());
        s->queue.pop_front();
        s->done++;
        const CUresult r = op.run();
        if (r != CUDA_SUCCESS) fail_sticky(r, op.what);
    }
    if (d.sticky == CUDA_SUCCESS) s->done = std::max(s->done, std::min(seq, s->enqueued));
    return d.sticky;
}

CUresult run_all() {
    CUresult r = run_until(&drv().legacy, UINT64_MAX);
    for (Stream* s : drv().streams)
        if (r == CUDA_SUCCESS) r = run_until(s, UINT64_MAX);
    return r;
}

// Adds an op to a stream, or to the graph the stream is capturing.
CUresult enqueue(Stream* s, Op op) {
    if (s->legacy && any_capture()) {
        for (Stream* c : drv().streams)
            if (c->capture) c->capture_invalid = true;
        note("%s on the legacy NULL stream while a stream capture is active", op.what.c_str());
        return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    }
    if (s->capture != nullptr) {
        if (s->capture_invalid) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
        s->capture->ops.push_back(std::move(op));
        return CUDA_SUCCESS;
    }
    s->queue.push_back(std::move(op));
    s->enqueued++;
    return CUDA_SUCCESS;
}

// Operations a capture cannot hold (synchronizing calls, allocation, host copies).
CUresult refuse_in_capture(Stream* s, const char* what) {
    if (s->capture != nullptr) {
        s->capture_invalid = true;
        note("%s on a capturing stream: the capture is invalidated", what);
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    if (s->legacy && any_capture()) {
        for (Stream* c : drv().streams)
            if (c->capture) c->capture_invalid = true;
        note("%s on the legacy NULL stream while a stream capture is active", what);
        return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    }
    return CUDA_SUCCESS;
}

#define LOCK std::lock_guard<std::recursive_mutex> lock_(drv().mu)
#define CHECK_INIT                                           \
    do {                                                     \
        if (!drv().init) return CUDA_ERROR_NOT_INITIALIZED;  \
        if (drv().sticky) return drv().sticky;               \
    } while (0)

// ---------------------------------------------------------------------------------------------------
// PTX parsing: `.entry name(` followed by one `.param` line per parameter and a `)` line.
size_t ptx_type_size(const std::string& t) {
    if (t == ".u8" || t == ".s8" || t == ".b8") return 1;
    if (t == ".u16" || t == ".s16" || t == ".b16" || t == ".f16") return 2;
    if (t == ".u32" || t == ".s32" || t == ".b32" || t == ".f32") return 4;
    if (t == ".u64" || t == ".s64" || t == ".b64" || t == ".f64") return 8;
    return 0;
}

bool parse_ptx(const std::string& ptx, std::map<std::string, std::vector<size_t>>* out, std::string* err) {
    size_t pos = 0;
    while ((pos = ptx.find(".entry ", pos)) != std::string::npos) {
        pos += 7;
        const size_t paren = ptx.find('(', pos);
        if (paren == std::string::npos) { *err = "an .entry without a parameter list"; return false; }
        std::string name = ptx.substr(pos, paren - pos);
        while (!name.empty() && std::isspace((unsigned char)name.back())) name.pop_back();
        const size_t close = ptx.find(')', paren);
        if (close == std::string::npos) { *err = "unterminated parameter list of " + name; return false; }
        std::vector<size_t> sizes;
        size_t p = paren + 1;
        while (p < close) {
            size_t comma = ptx.find(',', p);
            if (comma == std::string::npos || comma > close) comma = close;
            std::string decl = ptx.substr(p, comma - p);
            p = comma + 1;
            if (decl.find(".param") == std::string::npos) continue;
            size_t size = 0;
            std::vector<std::string> toks;
            for (size_t i = 0; i < decl.size();) {
                while (i < decl.size() && std::isspace((unsigned char)decl[i])) ++i;
                size_t j = i;
                while (j < decl.size() && !std::isspace((unsigned char)decl[j])) ++j;
                if (j > i) toks.push_back(decl.substr(i, j - i));
                i = j;
            }
            for (const std::string& t : toks) size = std::max(size, ptx_type_size(t));
            const std::string& last = toks.back();
            const size_t lb = last.find('[');
            if (lb != std::string::npos) size *= std::strtoull(last.c_str() + lb + 1, nullptr, 10);
            if (size == 0) { *err = "cannot size parameter `" + decl + "` of " + name; return false; }
            sizes.push_back(size);
        }
        (*out)[name] = sizes;
        pos = close;
    }
    return true;
}

std::string sizes_str(const std::vector<size_t>& v) {
    std::string s = "(";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + ")";
}

std::string check_module(const std::map<std::string, std::vector<size_t>>& entries) {
    std::string err;
    for (const auto& [name, sizes] : entries) {
        const KernelInfo* k = nullptr;
        for (const KernelInfo& i : kernels())
            if (i.name == name) k = &i;
        if (k == nullptr) err += "PTX entry " + name + " has no emulated kernel; ";
        else if (k->sizes != sizes)
            err += "PTX entry " + name + " takes parameters of " + sizes_str(sizes) + " bytes, the kernel source " +
                   sizes_str(k->sizes) + "; ";
    }
    for (const KernelInfo& i : kernels())
        if (!entries.count(i.name)) err += "kernel " + i.name + " is missing from the PTX; ";
    if (entries.empty()) err += "no .entry in the module; ";
    return err;
}

// The CUDA version this driver reports (cuDriverGetVersion): BOTS_EMU_DRIVER_VERSION, default 13000.
int driver_version() {
    static const int v = [] {
        const char* s = std::getenv("BOTS_EMU_DRIVER_VERSION");
        return s && *s ? std::atoi(s) : 13000;
    }();
    return v;
}

// The newest PTX ISA (10*major + minor) a driver of CUDA `v` loads: the first CUDA release of each ISA
// (PTX ISA release notes, "PTX release history"), newest first; a driver newer than the table loads
// the newest ISA listed.
int max_ptx_isa(int v) {
    static const int table[][2] = {
        {13010, 91}, {13000, 90}, {12090, 88}, {12080, 87}, {12070, 86}, {12050, 85}, {12040, 84},
        {12030, 83}, {12020, 82}, {12010, 81}, {12000, 80}, {11080, 78}, {11070, 77}, {11060, 76},
        {11050, 75}, {11040, 74}, {11030, 73}, {11020, 72}, {11010, 71}, {11000, 70},
    };
    for (const auto& [cuda, isa] : table)
        if (v >= cuda) return isa;
    return 0;
}

// Refuses PTX whose `.version` this driver's JIT does not know, with ptxas's words.
CUresult check_ptx_version(const std::string& ptx, std::string* log) {
    const size_t at = ptx.find(".version");
    unsigned major = 0, minor = 0;
    if (at == std::string::npos || std::sscanf(ptx.c_str() + at, ".version %u.%u", &major, &minor) != 2) {
        *log = "emulated driver: ptxas fatal: no .version directive in the PTX";
        return CUDA_ERROR_INVALID_PTX;
    }
    const int isa = (int)(major * 10 + minor), max = max_ptx_isa(driver_version());
    if (isa <= max) return CUDA_SUCCESS;
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "emulated driver %d.%d: ptxas fatal: Unsupported .version %u.%u; current version is '%d.%d'",
                  driver_version() / 1000, driver_version() % 1000 / 10, major, minor, max / 10, max % 10);
    *log = buf;
    note("module load refused: %s", buf);
    return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
}

CUresult load_module(void** module, const void* image, std::string* log) {
    if (module == nullptr || image == nullptr) return CUDA_ERROR_INVALID_VALUE;
    const std::string ptx((const char*)image);
    if (const CUresult r = check_ptx_version(ptx, log); r != CUDA_SUCCESS) return r;
    auto m = std::make_unique<Module>();
    std::string err;
    if (!parse_ptx(ptx, &m->entries, &err) || !(err = check_module(m->entries)).empty()) {
        *log = "emulated driver: " + err;
        note("module load refused: %s", err.c_str());
        return CUDA_ERROR_INVALID_PTX;
    }
    *module = m.get();
    drv().modules.insert(m.release());
    return CUDA_SUCCESS;
}

// Runs one kernel now (from a stream's queue).
CUresult run_kernel(const Function& f, uint32_t grid, uint32_t block, const std::vector<std::vector<uint64_t>>& args) {
    Driver& d = drv();
    const KernelInfo& k = *f.info;
    std::vector<void*> ptrs(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
        ptrs[i] = (void*)args[i].data();
        for (const auto& [field, p] : k.ptrs[i](ptrs[i])) {
            if (p != 0 && find_alloc(p) == nullptr) {
                Alloc* freed = find_alloc(p, true);
                fail_sticky(CUDA_ERROR_ILLEGAL_ADDRESS, "kernel " + k.name + ": argument " + std::to_string(i) + field +
                                                            " (" + std::to_string(p) + ") is " +
                                                            (freed ? "a freed buffer" : "not a device buffer"));
                return d.sticky;
            }
        }
    }
    const std::function<void()> body = [&] { k.invoke(ptrs.data()); };
    d.running = k.name.c_str();
    const std::string err = emu::run(grid, block, body);
    d.running = nullptr;
    if (!err.empty()) {
        fail_sticky(CUDA_ERROR_LAUNCH_FAILED, "kernel " + k.name + ": " + err);
        return d.sticky;
    }
    for (const auto& [b, a] : d.allocs) {
        std::string why;
        if (!a.freed && !canaries_ok(a, &why)) {
            fail_sticky(CUDA_ERROR_ILLEGAL_ADDRESS, "kernel " + k.name + ": " + why);
            return d.sticky;
        }
    }
    return CUDA_SUCCESS;
}

}  // namespace

// ===================================================================================================
// The driver API.

API CUresult cuInit(unsigned flags) {
    LOCK;
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (!drv().init) {
        drv().init = true;
        install_handler();
    }
    return CUDA_SUCCESS;
}

API CUresult cuDriverGetVersion(int* v) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    *v = driver_version();
    return CUDA_SUCCESS;
}

API CUresult cuGetErrorName(CUresult e, const char** s) {
    static const std::map<int, const char*> names = {
        {0, "CUDA_SUCCESS"}, {1, "CUDA_ERROR_INVALID_VALUE"}, {2, "CUDA_ERROR_OUT_OF_MEMORY"},
        {3, "CUDA_ERROR_NOT_INITIALIZED"}, {101, "CUDA_ERROR_INVALID_DEVICE"}, {201, "CUDA_ERROR_INVALID_CONTEXT"},
        {218, "CUDA_ERROR_INVALID_PTX"}, {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
        {400, "CUDA_ERROR_INVALID_HANDLE"}, {401, "CUDA_ERROR_ILLEGAL_STATE"},
        {500, "CUDA_ERROR_NOT_FOUND"}, {600, "CUDA_ERROR_NOT_READY"}, {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
        {719, "CUDA_ERROR_LAUNCH_FAILED"}, {801, "CUDA_ERROR_NOT_SUPPORTED"},
        {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"}, {901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"},
        {906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT"}, {907, "CUDA_ERROR_CAPTURED_EVENT"},
    };
    if (!s) return CUDA_ERROR_INVALID_VALUE;
    auto it = names.find(e);
    if (it == names.end()) { *s = nullptr; return CUDA_ERROR_INVALID_VALUE; }
    *s = it->second;
    return CUDA_SUCCESS;
}

API CUresult cuGetErrorString(CUresult e, const char** s) { return cuGetErrorName(e, s); }

API CUresult cuDeviceGetCount(int* n) {
    LOCK;
    if (!drv().init) return CUDA_ERROR_NOT_INITIALIZED;
    if (!n) return CUDA_ERROR_INVALID_VALUE;
    *n = 1;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGet(CUdevice* dev, int ordinal) {
    LOCK;
    if (!drv().init) return CUDA_ERROR_NOT_INITIALIZED;
    if (!dev) return CUDA_ERROR_INVALID_VALUE;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *dev = 0;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice dev) {
    LOCK;
    CHECK_INIT;
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (attr) {
        case 1: *v = 1024; return CUDA_SUCCESS;           // max threads per block
        case 16: *v = drv().sms; return CUDA_SUCCESS;     // multiprocessors
        case 75: *v = 9; return CUDA_SUCCESS;             // compute capability
        case 76: *v = 0; return CUDA_SUCCESS;
        case 115: *v = 1; return CUDA_SUCCESS;            // memory pools (stream-ordered allocation)
        default: note("cuDeviceGetAttribute(%d) is not emulated", attr); return CUDA_ERROR_INVALID_VALUE;
    }
}

API CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    std::snprintf(name, (size_t)len, "emulated (bots test driver, CPU)");
    return CUDA_SUCCESS;
}

API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = (size_t)16 << 30;
    return CUDA_SUCCESS;
}

API CUresult cuMemGetInfo_v2(size_t* free_b, size_t* total) {
    LOCK;
    CHECK_INIT;
    size_t used = 0;
    for (auto& [b, a] : drv().allocs)
        if (!a.freed) used += a.size;
    const size_t t = (size_t)16 << 30;
    if (total) *total = t;
    if (free_b) *free_b = used < t ? t - used : 0;
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice dev) {
    LOCK;
    CHECK_INIT;
    if (!ctx) return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    *ctx = &ctx_token;
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) { return dev == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE; }

API CUresult cuCtxGetCurrent(void** ctx) {
    if (!ctx) return CUDA_ERROR_INVALID_VALUE;
    *ctx = current_ctx;
    return CUDA_SUCCESS;
}

API CUresult cuCtxSetCurrent(void* ctx) {
    if (ctx != nullptr && ctx != &ctx_token) return CUDA_ERROR_INVALID_CONTEXT;
    current_ctx = ctx;
    return CUDA_SUCCESS;
}

API CUresult cuCtxSynchronize() {
    LOCK;
    CHECK_INIT;
    if (any_capture()) {
        for (Stream* c : drv().streams)
            if (c->capture) c->capture_invalid = true;
        note("cuCtxSynchronize while a stream capture is active");
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    return run_all();
}

// ----- streams -----
API CUresult cuStreamCreate(void** s, unsigned flags) {
    LOCK;
    CHECK_INIT;
    if (!s) return CUDA_ERROR_INVALID_VALUE;
    Stream* st = new Stream();
    st->flags = flags;
    drv().streams.insert(st);
    *s = st;
    return CUDA_SUCCESS;
}

API CUresult cuStreamCreateWithPriority(void** s, unsigned flags, int) { return cuStreamCreate(s, flags); }

API CUresult cuStreamDestroy_v2(void* h) {
    LOCK;
    Stream* s = S(h);
    if (s->legacy || s->per_thread || !drv().streams.count(s)) return CUDA_ERROR_INVALID_HANDLE;
    run_until(s, UINT64_MAX);  // its work completes, as on a GPU
    drv().streams.erase(s);
    delete s;
    return drv().sticky;
}

API CUresult cuStreamSynchronize(void* h) {
    LOCK;
    CHECK_INIT;
    Stream* s = S(h);
    if (CUresult r = refuse_in_capture(s, "cuStreamSynchronize")) return r;
    return run_until(s, UINT64_MAX);
}

API CUresult cuStreamWaitEvent(void* h, void* ev, unsigned flags) {
    LOCK;
    CHECK_INIT;
    Stream* s = S(h);
    Event* e = (Event*)ev;
    if (!drv().events.count(e) || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (e->captured) {
        if (s->capture != nullptr && s->capture == e->graph) return CUDA_SUCCESS;  // in-stream order already
        note("cuStreamWaitEvent on an event last recorded inside a stream capture");
        return CUDA_ERROR_CAPTURED_EVENT;
    }
    if (s->capture != nullptr) return CUDA_SUCCESS;  // work recorded before the capture: nothing to add
    if (e->stream == nullptr || e->stream == s) return CUDA_SUCCESS;
    Stream* other = e->stream;
    const uint64_t seq = e->seq;
    return enqueue(s, Op{"waiting on an event", [other, seq] { return run_until(other, seq); }});
}

API CUresult cuStreamBeginCapture_v2(void* h, int mode) {
    LOCK;
    CHECK_INIT;
    Stream* s = S(h);
    if (s->legacy) {
        note("cuStreamBeginCapture on the legacy NULL stream, which cannot be captured");
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    if (s->capture != nullptr) return CUDA_ERROR_ILLEGAL_STATE;
    (void)mode;
    s->capture = new Graph();
    s->capture_invalid = false;
    return CUDA_SUCCESS;
}

API CUresult cuStreamEndCapture(void* h, void** graph) {
    LOCK;
    CHECK_INIT;
    Stream* s = S(h);
    if (!graph) return CUDA_ERROR_INVALID_VALUE;
    if (s->capture == nullptr) return CUDA_ERROR_ILLEGAL_STATE;
    Graph* g = s->capture;
    s->capture = nullptr;
    for (Event* e : drv().events)
        if (e->captured && e->graph == g) e->graph = nullptr;  // stays captured: unusable until re-recorded
    if (s->capture_invalid) {
        delete g;
        *graph = nullptr;
        return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    drv().graphs.insert(g);
    *graph = g;
    return CUDA_SUCCESS;
}

API CUresult cuStreamIsCapturing(void* h, int* status) {
    LOCK;
    if (!status) return CUDA_ERROR_INVALID_VALUE;
    Stream* s = S(h);
    *status = s->capture == nullptr ? 0 : (s->capture_invalid ? 2 : 1);
    return CUDA_SUCCESS;
}

// ----- events -----
API CUresult cuEventCreate(void** ev, unsigned flags) {
    LOCK;
    CHECK_INIT;
    if (!ev) return CUDA_ERROR_INVALID_VALUE;
    (void)flags;
    Event* e = new Event();
    drv().events.insert(e);
    *ev = e;
    return CUDA_SUCCESS;
}

API CUresult cuEventDestroy_v2(void* ev) {
    LOCK;
    Event* e = (Event*)ev;
    if (!drv().events.erase(e)) return CUDA_ERROR_INVALID_HANDLE;
    delete e;
    return CUDA_SUCCESS;
}

API CUresult cuEventRecord(void* ev, void* h) {
    LOCK;
    CHECK_INIT;
    Event* e = (Event*)ev;
    if (!drv().events.count(e)) return CUDA_ERROR_INVALID_HANDLE;
    Stream* s = S(h);
    if (s->legacy && any_capture()) return refuse_in_capture(s, "cuEventRecord");
    if (s->capture != nullptr) {
        e->captured = true;
        e->graph = s->capture;
        return s->capture_invalid ? CUDA_ERROR_STREAM_CAPTURE_INVALIDATED : CUDA_SUCCESS;
    }
    e->captured = false;
    e->graph = nullptr;
    e->stream = s;
    e->seq = s->enqueued;
    return CUDA_SUCCESS;
}

API CUresult cuEventSynchronize(void* ev) {
    LOCK;
    CHECK_INIT;
    Event* e = (Event*)ev;
    if (!drv().events.count(e)) return CUDA_ERROR_INVALID_HANDLE;
    if (e->captured) return CUDA_ERROR_CAPTURED_EVENT;
    if (e->stream == nullptr) return CUDA_SUCCESS;
    return run_until(e->stream, e->seq);
}

API CUresult cuEventQuery(void* ev) {
    LOCK;
    CHECK_INIT;
    Event* e = (Event*)ev;
    if (!drv().events.count(e)) return CUDA_ERROR_INVALID_HANDLE;
    if (e->captured) return CUDA_ERROR_CAPTURED_EVENT;
    if (e->stream == nullptr || e->stream->done >= e->seq) return CUDA_SUCCESS;
    return CUDA_ERROR_NOT_READY;
}

// ----- memory -----
API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    LOCK;
    CHECK_INIT;
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    return do_alloc(p, bytes);
}

API CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, void* h) {
    LOCK;
    CHECK_INIT;
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = refuse_in_capture(S(h), "cuMemAllocAsync")) return r;
    return do_alloc(p, bytes);  // usable on the stream at once; nothing to order
}

API CUresult cuMemFree_v2(CUdeviceptr p) {
    LOCK;
    CHECK_INIT;
    Alloc* a = find_alloc(p);
    if (a == nullptr || (uintptr_t)a->base != p) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = run_all()) return r;
    do_free(*a);
    return CUDA_SUCCESS;
}

API CUresult cuMemFreeAsync(CUdeviceptr p, void* h) {
    LOCK;
    CHECK_INIT;
    Alloc* a = find_alloc(p);
    if (a == nullptr || (uintptr_t)a->base != p) return CUDA_ERROR_INVALID_VALUE;
    Stream* s = S(h);
    if (CUresult r = refuse_in_capture(s, "cuMemFreeAsync")) return r;
    return enqueue(s, Op{"cuMemFreeAsync", [p] {
                             Alloc* al = find_alloc(p);
                             if (al == nullptr) return CUDA_ERROR_INVALID_VALUE;
                             do_free(*al);
                             return CUDA_SUCCESS;
                         }});
}

API CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void* h) {
    LOCK;
    CHECK_INIT;
    if (!range_ok(p, n)) return CUDA_ERROR_INVALID_VALUE;
    return enqueue(S(h), Op{"cuMemsetD8Async", [p, v, n] {
                                if (!range_ok(p, n)) return CUDA_ERROR_ILLEGAL_ADDRESS;
                                std::memset((void*)p, v, n);
                                return CUDA_SUCCESS;
                            }});
}

API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, void* h) {
    LOCK;
    CHECK_INIT;
    if (!range_ok(dst, n) || (n > 0 && src == nullptr)) return CUDA_ERROR_INVALID_VALUE;
    Stream* s = S(h);
    if (CUresult r = refuse_in_capture(s, "cuMemcpyHtoDAsync from pageable memory")) return r;
    // Pageable source: staged at the call, so the caller may reuse it at once.
    auto staged = std::make_shared<std::vector<char>>((const char*)src, (const char*)src + n);
    return enqueue(s, Op{"cuMemcpyHtoDAsync", [dst, staged] {
                             if (!range_ok(dst, staged->size())) return CUDA_ERROR_ILLEGAL_ADDRESS;
                             std::memcpy((void*)dst, staged->data(), staged->size());
                             return CUDA_SUCCESS;
                         }});
}

API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, void* h) {
    LOCK;
    CHECK_INIT;
    if (!range_ok(src, n) || (n > 0 && dst == nullptr)) return CUDA_ERROR_INVALID_VALUE;
    Stream* s = S(h);
    if (CUresult r = refuse_in_capture(s, "cuMemcpyDtoHAsync to pageable memory")) return r;
    if (CUresult r = enqueue(s, Op{"cuMemcpyDtoHAsync", [dst, src, n] {
                                       if (!range_ok(src, n)) return CUDA_ERROR_ILLEGAL_ADDRESS;
                                       std::memcpy(dst, (const void*)src, n);
                                       return CUDA_SUCCESS;
                                   }}))
        return r;
    // Pageable destination: the call returns once the copy is done (its stream runs up to it).
    return run_until(s, s->enqueued);
}

API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void* h) {
    LOCK;
    CHECK_INIT;
    if (!range_ok(dst, n) || !range_ok(src, n)) return CUDA_ERROR_INVALID_VALUE;
    return enqueue(S(h), Op{"cuMemcpyDtoDAsync", [dst, src, n] {
                                if (!range_ok(dst, n) || !range_ok(src, n)) return CUDA_ERROR_ILLEGAL_ADDRESS;
                                std::memmove((void*)dst, (const void*)src, n);
                                return CUDA_SUCCESS;
                            }});
}

API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
    LOCK;
    if (CUresult r = cuMemcpyHtoDAsync_v2(dst, src, n, nullptr)) return r;
    return run_until(&drv().legacy, UINT64_MAX);
}

API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
    LOCK;
    CHECK_INIT;
    if (CUresult r = run_all()) return r;
    return cuMemcpyDtoHAsync_v2(dst, src, n, nullptr);
}

// ----- modules and launches -----
API CUresult cuModuleLoadData(void** module, const void* image) {
    LOCK;
    CHECK_INIT;
    std::string log;
    return load_module(module, image, &log);
}

API CUresult cuModuleLoadDataEx(void** module, const void* image, unsigned n, int* options, void** values) {
    LOCK;
    CHECK_INIT;
    std::string log;
    const CUresult r = load_module(module, image, &log);
    char* buf = nullptr;
    size_t cap = 0;
    for (unsigned i = 0; i < n && options && values; ++i) {
        if (options[i] == 5) buf = (char*)values[i];                     // CU_JIT_ERROR_LOG_BUFFER
        if (options[i] == 6) cap = (size_t)(uintptr_t)values[i];         // ..._SIZE_BYTES (by value)
    }
    if (buf && cap > 0) {
        const size_t len = std::min(cap - 1, log.size());
        std::memcpy(buf, log.data(), len);
        buf[len] = 0;
    }
    return r;
}

API CUresult cuModuleGetFunction(void** fn, void* module, const char* name) {
    LOCK;
    CHECK_INIT;
    Module* m = (Module*)module;
    if (!fn || !name || !drv().modules.count(m)) return CUDA_ERROR_INVALID_VALUE;
    auto it = m->entries.find(name);
    if (it == m->entries.end()) return CUDA_ERROR_NOT_FOUND;
    for (const KernelInfo& k : kernels())
        if (k.name == name) {
            drv().functions.push_back(std::make_unique<Function>(Function{&k, it->second}));
            *fn = drv().functions.back().get();
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_NOT_FOUND;
}

API CUresult cuModuleUnload(void* module) {
    LOCK;
    Module* m = (Module*)module;
    if (!drv().modules.erase(m)) return CUDA_ERROR_INVALID_HANDLE;
    delete m;
    return CUDA_SUCCESS;
}

API CUresult cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned shmem, void* h, void** params, void** extra) {
    LOCK;
    CHECK_INIT;
    const Function* f = (const Function*)fn;
    bool known = false;
    for (auto& p : drv().functions) known |= p.get() == f;
    if (!known) return CUDA_ERROR_INVALID_HANDLE;
    if (gy != 1 || gz != 1 || by != 1 || bz != 1 || gx == 0 || bx == 0 || bx > 1024 || gx > 0x7fffffffu ||
        shmem != 0 || extra != nullptr || (params == nullptr && !f->ptx_sizes.empty())) {
        note("cuLaunchKernel(%s): unsupported or invalid launch (grid %u,%u,%u block %u,%u,%u, %u bytes of dynamic "
             "shared memory)", f->info->name.c_str(), gx, gy, gz, bx, by, bz, shmem);
        return CUDA_ERROR_INVALID_VALUE;
    }
    // Arguments are copied at the launch, each with the size the PTX declares.
    std::vector<std::vector<uint64_t>> args(f->ptx_sizes.size());
    for (size_t i = 0; i < args.size(); ++i) {
        args[i].assign((f->ptx_sizes[i] + 7) / 8, 0);
        std::memcpy(args[i].data(), params[i], f->ptx_sizes[i]);
    }
    return enqueue(S(h), Op{"kernel " + f->info->name, [f, gx, bx, args] { return run_kernel(*f, gx, bx, args); }});
}

API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int* n, void* fn, int block, size_t dyn) {
    LOCK;
    CHECK_INIT;
    if (!n || !fn || block <= 0 || block > 1024 || dyn != 0) return CUDA_ERROR_INVALID_VALUE;
    *n = std::max(1, 1024 / block);
    return CUDA_SUCCESS;
}

// ----- graphs -----
API CUresult cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long flags) {
    LOCK;
    CHECK_INIT;
    Graph* g = (Graph*)graph;
    if (!exec || !drv().graphs.count(g) || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    Graph* e = new Graph(*g);
    drv().graphs.insert(e);
    *exec = e;
    return CUDA_SUCCESS;
}

API CUresult cuGraphLaunch(void* exec, void* h) {
    LOCK;
    CHECK_INIT;
    Graph* g = (Graph*)exec;
    if (!drv().graphs.count(g)) return CUDA_ERROR_INVALID_HANDLE;
    for (const Op& op : g->ops)
        if (CUresult r = enqueue(S(h), op)) return r;
    return CUDA_SUCCESS;
}

API CUresult cuGraphUpload(void* exec, void*) {
    LOCK;
    return drv().graphs.count((Graph*)exec) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

API CUresult cuGraphDestroy(void* graph) {
    LOCK;
    Graph* g = (Graph*)graph;
    if (!drv().graphs.erase(g)) return CUDA_ERROR_INVALID_HANDLE;
    delete g;
    return CUDA_SUCCESS;
}

API CUresult cuGraphExecDestroy(void* exec) { return cuGraphDestroy(exec); }
