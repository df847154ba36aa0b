// The emulator runtime: cores with L1 and circular buffers, DRAM tensors, DST registers, tile math, and the
// job runner that starts one host thread per (core, kernel). Errors name the kernel, the core and the CB.
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../emu/runtime.h"
#include "datapath.h"
#include "sfpu.h"
#include "formats.h"
#include "perf_counters.h"

namespace tgemu {

namespace {

constexpr uint32_t L1_SIZE = 1536 * 1024;
constexpr uint32_t L1_CB_BASE = 64 * 1024;  // CBs start above the firmware-reserved low L1, as on a card
constexpr uint32_t NUM_CBS = 32;
constexpr uint64_t L1_NOC_BIT = uint64_t(1) << 63;
// Semaphores: NUM_SEMAPHORES words per core (tt-metal's host constant), one per L1_ALIGNMENT bytes as get_semaphore
// spaces them (Wormhole B0 L1_ALIGNMENT = 16), in the firmware-reserved low L1 just below the CBs.
constexpr uint32_t NUM_SEMAPHORES = 16;
constexpr uint32_t L1_ALIGNMENT = 16;
constexpr uint32_t L1_SEM_BASE = L1_CB_BASE - NUM_SEMAPHORES * L1_ALIGNMENT;
// A multicast NoC address (get_noc_multicast_addr): L1 bit + this bit, the NOC0 rectangle in bits 32..55 (6 bits
// per coordinate: x_start, y_start, x_end, y_end from high to low) and the L1 offset within each core in bits 0..31.
constexpr uint64_t L1_MCAST_BIT = uint64_t(1) << 62;

struct Abort {};  // unwinds a kernel thread after an error anywhere

struct CB {
    bool defined = false;
    uint32_t fmt = 0, page_size = 0, num_pages = 0;
    uint8_t* base = nullptr;
    uint64_t pushed = 0, popped = 0;  // pages ever pushed / popped
    uint32_t wr_page = 0, rd_page = 0;
    uint32_t reserved = 0;  // pages reserved by the producer and not yet pushed
    uint32_t waited = 0;    // pages the consumer waited for and has not yet popped
    uint32_t pack_seq = 0;  // sequential pack_tile position in the reserved region
    uint32_t packed_hi = 0; // 1 + highest reserved-region position packed since the last push
    std::condition_variable cv;
    uint32_t available() const { return uint32_t(pushed - popped); }
};

struct Core {
    uint32_t x = 0, y = 0;          // logical coordinates (the program description's)
    uint32_t noc_x = 0, noc_y = 0;  // NOC0 coordinates (the job's map, runtime/emulator.py)
    uint8_t* l1 = nullptr;
    CB cbs[NUM_CBS];
    bool sem_defined[NUM_SEMAPHORES] = {};
    std::condition_variable sem_cv;  // semaphore waiters of this core
    uint32_t* sem_word(uint32_t id) const { return reinterpret_cast<uint32_t*>(l1 + L1_SEM_BASE + id * L1_ALIGNMENT); }
};

struct Tensor {
    std::string name;
    uint32_t addr = 0, page_size = 0, num_pages = 0;
    std::vector<uint8_t> data;
    std::string in_path, out_path;
};

enum DstState { DST_IDLE, DST_MATH, DST_COMMITTED, DST_PACK, DST_LEGACY };

// What the three TRISCs of a compute kernel have programmed into the Tensix, as the hardware holds it (the
// formats are register state: an op unpacks / packs with whatever the last (re)configuration set, not with the
// format of the CB it is handed). TRISC0 the unpacker: the SrcA / SrcB formats and which copy_init mode
// (unpack-to-dest or through SrcA) is loaded; TRISC1 math: the op of its last init (Thread::fpu_kind/fpu_a/fpu_b),
// fidelity and DST accumulation mode; TRISC2 the packer: output format, edge masks (Thread::pack_mask), L1
// accumulation. Set by compute_kernel_hw_startup, reconfig_data_format*, pack_reconfig_data_format and the inits.
struct SrcConfig {
    int cb = -1;         // the CB whose format was programmed (-1: never)
    uint32_t fmt = 0;
    std::string by;      // the call that programmed it, for messages
};
struct UnpackConfig {
    SrcConfig src[2];            // [SRC_A], [SRC_B]
    int copy_cb = -1;            // CB of the last copy_init
    bool copy_to_dest = false;   // that copy_init loaded the unpack-to-dest (fp32 straight into DST) path
};
struct MathConfig {
    uint32_t fidelity = 4;
    bool fp32_dest_acc = false;
};
struct PackConfig {
    int cb = -1;
    uint32_t fmt = 0;
    std::string by;
    bool l1_acc = false;
};
struct ConfigState {
    bool started = false;  // compute_kernel_hw_startup ran
    UnpackConfig unpack;
    MathConfig math;
    PackConfig pack;
};

struct Thread {
    Core* core = nullptr;
    std::string role, kernel;
    std::vector<uint32_t> args;
    void (*entry)() = nullptr;
    // blocking state (guarded by the global mutex)
    bool blocked = false, done = false;
    std::string wait_desc;  // the blocking call, e.g. "cb_wait_front(16, 1)"
    int wait_cb = -1;       // the CB it waits on (its state is printed live in reports)
    int wait_sem = -1;      // or the semaphore of its own core it waits on
    std::function<bool()> wait_pred;
    // outstanding NoC transfers (checked against pushes / pops)
    std::vector<std::pair<uint8_t*, uint32_t>> reads_in_flight, writes_in_flight;
    // compute only
    DstState dst_state = DST_IDLE;
    std::vector<float> dst;
    std::vector<bool> dst_fresh;
    uint32_t mm_transpose = 0;  // set by matmul_init
    uint32_t fpu_kind = K_NONE, fpu_a = 0, fpu_b = 0;  // the last FPU op init
    uint32_t pack_mask = 0;                          // 1 + ReduceDim while reduce_init's packer edge masks apply
    uint32_t sfpu_kind = ~0u;                        // the last SFPU init
    ConfigState cfg;                                 // unpacker / math / packer configuration
    PerfCounters perf;                               // what this thread did, for the performance model
};

struct Machine {
    bool fp32_dest_acc = false, approx = false, full_sync = false;
    uint32_t math_fidelity = 4;
    bool unpack_to_dest[NUM_CBS] = {};  // ComputeConfig.unpack_to_dest_fp32: CBs unpacked straight to DST as fp32
    double timeout_s = 60;
    std::string program;
    std::vector<std::unique_ptr<Core>> cores;
    std::vector<std::unique_ptr<Tensor>> tensors;
    std::vector<std::unique_ptr<Thread>> threads;
    std::vector<uint32_t> worker_noc_x, worker_noc_y;  // NOC0 columns / rows of worker cores (the job's layout)
    std::mutex mu;
    std::condition_variable all_done;
    int alive = 0;
    std::atomic<bool> aborted{false};
    std::string error;
    uint32_t dst_tiles() const {
        uint32_t t = fp32_dest_acc ? 8 : 16;
        return full_sync ? t : t / 2;
    }
};

Machine M;
thread_local Thread* T = nullptr;

std::string where(const Thread* t) {
    std::ostringstream s;
    s << "kernel " << t->kernel << " (" << t->role << ") on core (" << t->core->x << "," << t->core->y << ")";
    return s.str();
}

std::string fmt_str(const char* f, va_list ap) {
    char buf[2048];
    vsnprintf(buf, sizeof buf, f, ap);
    return buf;
}

void notify_all_locked() {
    for (auto& c : M.cores) {
        for (auto& cb : c->cbs) cb.cv.notify_all();
        c->sem_cv.notify_all();
    }
}

// Record the first error, wake everyone, unwind this thread.
[[noreturn]] void raise_locked(const std::string& msg) {
    if (!M.aborted.exchange(true)) M.error = msg;
    notify_all_locked();
    throw Abort{};
}

[[noreturn]] void failf(const char* f, ...) {
    va_list ap;
    va_start(ap, f);
    std::string msg = where(T) + ": " + fmt_str(f, ap);
    va_end(ap);
    std::lock_guard<std::mutex> lk(M.mu);
    raise_locked(msg);
}

inline void check_abort() {
    if (M.aborted.load(std::memory_order_relaxed)) throw Abort{};
}

std::string cb_state(const CB& cb, uint32_t i) {
    std::ostringstream s;
    s << "CB " << i << " [" << cb.num_pages << " pages: " << cb.available() << " filled, pushed " << cb.pushed
      << ", popped " << cb.popped << "]";
    return s.str();
}

// Every unfinished thread and what it waits for (at most 32 lines; finished threads are counted).
std::string wait_report_locked() {
    std::ostringstream s;
    int shown = 0, hidden = 0, finished = 0;
    for (auto& t : M.threads) {
        if (t->done) {
            finished++;
            continue;
        }
        if (shown == 32) {
            hidden++;
            continue;
        }
        shown++;
        s << "\n  " << where(t.get()) << ": ";
        if (t->blocked && t->wait_sem >= 0)
            s << "blocked in " << t->wait_desc << " on semaphore " << t->wait_sem << " of core (" << t->core->x << ","
              << t->core->y << "), whose value is " << __atomic_load_n(t->core->sem_word(t->wait_sem), __ATOMIC_ACQUIRE);
        else if (t->blocked)
            s << "blocked in " << t->wait_desc << " on " << cb_state(t->core->cbs[t->wait_cb], t->wait_cb);
        else
            s << "running";
    }
    if (hidden) s << "\n  ... and " << hidden << " more waiting threads";
    if (finished) s << "\n  (" << finished << " kernel threads finished)";
    return s.str();
}

// Deadlock = every live thread blocked on a condition that is still false.
void check_deadlock_locked() {
    if (M.aborted) return;
    int blocked = 0;
    for (auto& t : M.threads)
        if (!t->done && t->blocked) {
            if (t->wait_pred()) return;  // woken but not yet running
            blocked++;
        }
    if (blocked > 0 && blocked == M.alive) {
        M.aborted = true;
        M.error = "deadlock: every running kernel thread waits on a circular buffer that nothing will fill or drain, "
                  "or on a semaphore that nothing will signal" + wait_report_locked();
        notify_all_locked();
    }
}

// Block the calling thread until pred() holds, woken through cv; a wait on a CB (cb >= 0) or a semaphore of this
// core (sem >= 0) takes part in deadlock detection and is named in the reports.
void block_on(std::condition_variable& cv, int cb, int sem, const std::function<bool()>& pred, const std::string& desc,
              const std::string& perf_key) {
    std::unique_lock<std::mutex> lk(M.mu);
    if (pred()) return;
    T->blocked = true;
    T->perf.add(perf_key);
    T->wait_desc = desc;
    T->wait_cb = cb;
    T->wait_sem = sem;
    T->wait_pred = pred;
    check_deadlock_locked();
    while (!pred()) {
        if (M.aborted) {
            T->blocked = false;
            throw Abort{};
        }
        cv.wait_for(lk, std::chrono::milliseconds(200));
    }
    T->blocked = false;
}

void block_until(uint32_t cbi, const std::function<bool()>& pred, const std::string& desc) {
    block_on(T->core->cbs[cbi].cv, int(cbi), -1, pred, desc,
             perf_cb(cbi, desc.substr(0, desc.find('(')).c_str()) + ".blocked");
}

Core& core() { return *T->core; }

CB& get_cb(uint32_t i, const char* api) {
    check_abort();
    if (i >= NUM_CBS) failf("%s: CB index %u out of range 0..31", api, i);
    CB& cb = core().cbs[i];
    if (!cb.defined) failf("%s: CB %u is not defined on this core (add it to the program description)", api, i);
    return cb;
}

std::string cbname(uint32_t i) { return "CB " + std::to_string(i); }

// ---------------------------------------------------------------- DRAM and L1 address translation
uint8_t* l1_ptr(uint32_t addr, uint32_t size, const char* api) {
    uint8_t* p = reinterpret_cast<uint8_t*>(uintptr_t(addr));
    for (auto& c : M.cores)
        if (p >= c->l1 && p + size <= c->l1 + L1_SIZE) return p;
    failf("%s: L1 address 0x%x (+%u bytes) is outside every core's L1", api, addr, size);
}

uint8_t* dram_ptr(uint64_t addr, uint32_t size, const char* api) {
    for (auto& t : M.tensors) {
        uint64_t base = t->addr, end = base + t->data.size();
        if (addr < base || addr >= end) continue;
        if (addr + size > end)
            failf("%s: %u bytes at DRAM 0x%llx run past the end of tensor '%s' (%u pages of %u bytes)", api, size,
                  (unsigned long long)addr, t->name.c_str(), t->num_pages, t->page_size);
        // Interleaved pages sit in different DRAM banks on a card: one transfer must stay inside one page.
        uint64_t first = (addr - base) / t->page_size, last = (addr + size - 1 - base) / t->page_size;
        if (size && first != last)
            failf("%s: %u bytes at page %llu of tensor '%s' cross into page %llu; interleaved pages live in "
                  "different DRAM banks, so read/write one page (%u bytes) per transfer", api, size,
                  (unsigned long long)first, t->name.c_str(), (unsigned long long)last, t->page_size);
        return t->data.data() + (addr - base);
    }
    failf("%s: DRAM address 0x%llx is not inside any tensor", api, (unsigned long long)addr);
}

uint8_t* noc_ptr(uint64_t a, uint32_t size, const char* api) {
    if (a & L1_MCAST_BIT)
        failf("%s: NoC address 0x%llx is a multicast address (get_noc_multicast_addr); only the multicast writes "
              "(noc_async_write_multicast, noc_semaphore_set_multicast, ...) take one", api, (unsigned long long)a);
    if (a & L1_NOC_BIT) return l1_ptr(uint32_t(a), size, api);
    return dram_ptr(a, size, api);
}

bool overlaps(uint8_t* a, uint32_t an, uint8_t* b, uint32_t bn) { return a < b + bn && b < a + an; }

// ---------------------------------------------------------------- cores by NoC coordinate, semaphores, L1 regions
Core* core_at_noc(uint32_t nx, uint32_t ny) {
    for (auto& c : M.cores)
        if (c->noc_x == nx && c->noc_y == ny) return c.get();
    return nullptr;
}

Core* core_holding(const uint8_t* p) {
    for (auto& c : M.cores)
        if (p >= c->l1 && p < c->l1 + L1_SIZE) return c.get();
    return nullptr;
}

// An L1 address the calling kernel names (its own L1: as on a card, the same offset addresses every core's L1).
uint32_t local_l1_offset(uint32_t addr, const char* api) {
    uint8_t* p = reinterpret_cast<uint8_t*>(uintptr_t(addr));
    if (p < core().l1 || p >= core().l1 + L1_SIZE)
        failf("%s: 0x%x is not an address in this core's L1 (use get_write_ptr / get_read_ptr / get_semaphore)", api,
              addr);
    return uint32_t(p - core().l1);
}

// The semaphore id of the word at L1 offset `off` of core c, or -1.
int sem_at(const Core& c, uint32_t off) {
    if (off < L1_SEM_BASE || off >= L1_SEM_BASE + NUM_SEMAPHORES * L1_ALIGNMENT || (off - L1_SEM_BASE) % L1_ALIGNMENT)
        return -1;
    uint32_t id = (off - L1_SEM_BASE) / L1_ALIGNMENT;
    return c.sem_defined[id] ? int(id) : -1;
}

// The semaphore of this core at host address `addr` (what get_semaphore returned, cast to a pointer).
uint32_t local_sem(uintptr_t addr, const char* api) {
    uint8_t* p = reinterpret_cast<uint8_t*>(addr);
    int id = p >= core().l1 && p < core().l1 + L1_SIZE ? sem_at(core(), uint32_t(p - core().l1)) : -1;
    if (id < 0)
        failf("%s: address 0x%llx is not a semaphore of this core; pass get_semaphore(id) for an id of "
              "ProgramDescription.semaphores that covers core (%u,%u)", api, (unsigned long long)addr, core().x,
              core().y);
    return uint32_t(id);
}

std::string core_name(const Core& c) {
    std::ostringstream s;
    s << "core (" << c.x << "," << c.y << ") at NOC0 (" << c.noc_x << "," << c.noc_y << ")";
    return s.str();
}

// Where a NoC write may land in a core's L1: inside one circular buffer or on defined semaphore words. Anything else
// is memory the program does not own (firmware, kernel binaries, stacks) on a card.
void check_l1_dest(const Core& c, const uint8_t* d, uint32_t size, const char* api) {
    uint32_t off = uint32_t(d - c.l1);
    if (size == 4 && sem_at(c, off) >= 0) return;
    for (uint32_t i = 0; i < NUM_CBS; i++) {
        const CB& cb = c.cbs[i];
        if (cb.defined && d >= cb.base && d + size <= cb.base + size_t(cb.num_pages) * cb.page_size) return;
    }
    failf("%s: %u bytes at L1 offset 0x%x of %s lie outside every circular buffer and semaphore defined there; a card "
          "would overwrite memory the program does not own (write into a CB's pages or onto a semaphore word)", api,
          size, off, core_name(c).c_str());
}

struct McastRect {
    uint32_t xs, ys, xe, ye, off;
};
McastRect decode_mcast(uint64_t a) {
    return {uint32_t(a >> 50) & 63, uint32_t(a >> 44) & 63, uint32_t(a >> 38) & 63, uint32_t(a >> 32) & 63,
            uint32_t(a)};
}

// The cores a multicast to `a` reaches (NOC0 rectangle, start <= end), checked against num_dests as a card counts
// acks: the sender is excluded unless `loopback` (the *_loopback_src variants).
std::vector<Core*> mcast_receivers(uint64_t a, uint32_t num_dests, bool loopback, uint8_t noc, const char* api) {
    if (!(a & L1_MCAST_BIT))
        failf("%s: 0x%llx is not a multicast NoC address; build it with get_noc_multicast_addr(x_start, y_start, "
              "x_end, y_end, addr)", api, (unsigned long long)a);
    if (noc != 0)
        failf("%s on NOC %u: the emulator models NOC0 multicast only (NOC1 takes the rectangle end -> start); use "
              "noc 0", api, unsigned(noc));
    McastRect r = decode_mcast(a);
    char rect[96];
    std::snprintf(rect, sizeof rect, "NOC0 rectangle (%u,%u)-(%u,%u)", r.xs, r.ys, r.xe, r.ye);
    if (r.xs > r.xe || r.ys > r.ye)
        failf("%s: %s is reversed: on NOC0 the start corner must be <= the end corner in x and in y (a card would "
              "misroute the packet); swap the corners", api, rect);
    std::vector<Core*> out;
    uint32_t in_rect = 0;
    bool self_in = false;
    for (uint32_t ny : M.worker_noc_y)
        for (uint32_t nx : M.worker_noc_x) {
            if (nx < r.xs || nx > r.xe || ny < r.ys || ny > r.ye) continue;
            in_rect++;
            Core* c = core_at_noc(nx, ny);
            if (!c)
                failf("%s: %s covers the worker core at NOC0 (%u,%u), which runs no kernel of this program; a card "
                      "would write into its L1 too: shrink the rectangle to the program's cores", api, rect, nx, ny);
            if (c == T->core) {
                self_in = true;
                if (!loopback) continue;
            }
            out.push_back(c);
        }
    if (out.empty())
        failf("%s: %s holds no receiving core (%u worker core(s), the sender %s); a multicast needs at least one other "
              "destination", api, rect, in_rect, self_in ? "excluded" : "outside");
    if (num_dests != out.size())
        failf("%s: num_dests is %u, but %s holds %zu receiving worker core(s) (%s); a card would wait for %u acks "
              "and hang", api, num_dests, rect, out.size(),
              loopback ? "the sender counted: loopback variant" : self_in ? "the sender excluded" : "the sender outside",
              num_dests);
    return out;
}

// Performance counters of one NoC transfer: bytes and count by endpoint kind, DRAM bytes by page class (bank).
void perf_noc(const char* dir, uint64_t remote, uint32_t size) {
    std::string key = std::string("noc.") + dir + ((remote & L1_NOC_BIT) ? ".l1" : ".dram");
    T->perf.add(key + ".bytes", size);
    T->perf.add(key + ".n");
    if (remote & L1_NOC_BIT) return;
    for (auto& t : M.tensors)
        if (remote >= t->addr && remote < t->addr + t->data.size()) {
            uint64_t page = (remote - t->addr) / t->page_size;
            T->perf.add("dram.page_class." + std::to_string(page % PERF_DRAM_PAGE_CLASSES) + ".bytes", size);
            return;
        }
}

// ---------------------------------------------------------------- compute helpers
void need_dst(uint32_t idst, const char* api, bool pack) {
    check_abort();
    if (T->role != "compute") failf("%s is a compute API, called from a %s kernel", api, T->role.c_str());
    if (T->dst_state != DST_LEGACY) {
        if (!pack && T->dst_state != DST_MATH)
            failf("%s on DST[%u] outside tile_regs_acquire()..tile_regs_commit()", api, idst);
        if (pack && T->dst_state != DST_PACK)
            failf("%s from DST[%u] outside tile_regs_wait()..tile_regs_release()", api, idst);
    }
    if (idst >= M.dst_tiles())
        failf("%s: DST index %u out of range: DST holds %u tiles (%s, %s)", api, idst, M.dst_tiles(),
              M.fp32_dest_acc ? "fp32_dest_acc_en" : "bf16 dest", M.full_sync ? "full sync" : "double-buffered");
}

float* dst_tile(uint32_t i) { return T->dst.data() + size_t(i) * TILE_HW; }

// DST holds fp32 bit patterns; without fp32_dest_acc_en only their top 16 bits (bf16).
inline uint32_t dst_bits(uint32_t i, int e) { return fbits(dst_tile(i)[e]); }
inline void set_dst_bits(uint32_t i, int e, uint32_t u) { dst_tile(i)[e] = from_fbits(u); }

// An SFPU result written back to DST: the LLK's SFPU functions round fp32 -> bf16 to nearest even (SFP_STOCH_RND)
// before SFPSTORE when DST is bf16; SFPSTORE flushes denormals to signed zero.
inline float dst_round(float v) {
    if (!M.fp32_dest_acc) v = round_bf16(v);
    return from_fbits(datapath::flush_denormal(fbits(v)));
}

// The CB tile `itile` (relative to the read pointer) of a CB the compute kernel waited for.
const uint8_t* waited_tile(uint32_t cbi, uint32_t itile, const char* api) {
    CB& cb = get_cb(cbi, api);
    if (itile >= cb.waited)
        failf("%s: reads tile %u of %s, but only %u pages were waited for with cb_wait_front (%s)", api, itile,
              cbname(cbi).c_str(), cb.waited, cb_state(cb, cbi).c_str());
    if (cb.rd_page + itile >= cb.num_pages)
        failf("%s: tile %u of %s lies past the end of the CB (read pointer at page %u of %u): its page count is "
              "not a multiple of the block waited for", api, itile, cbname(cbi).c_str(), cb.rd_page, cb.num_pages);
    if (cb.page_size != tile_bytes(cb.fmt))
        failf("%s: %s has %u-byte pages, not one %u-byte tile of its format", api, cbname(cbi).c_str(), cb.page_size,
              tile_bytes(cb.fmt));
    T->perf.add(std::string("unpack.") + perf_fmt(cb.fmt));
    return cb.base + size_t(cb.rd_page + itile) * cb.page_size;
}

// Unpack a tile into a source register (SrcA or SrcB) as the hardware holds it (datapath.h): float32 as TF32 with
// fp32_dest_acc_en, else as bf16 (both truncated); bf16 as is; bfloat8_b through the unpacker's bf16 conversion.
void unpack_src(uint32_t cbi, uint32_t itile, uint32_t* out, const char* api) {
    const uint8_t* p = waited_tile(cbi, itile, api);
    if (M.unpack_to_dest[cbi])
        failf("%s reads %s through a source register, but the program unpacks that CB straight to DST "
              "(ComputeConfig.unpack_to_dest_fp32): only copy_tile can read it; drop the CB from "
              "unpack_to_dest_fp32 or copy it to DST first", api, cbname(cbi).c_str());
    datapath::unpack_tile_to_src(core().cbs[cbi].fmt, p, M.fp32_dest_acc, out);
}
std::string fpu_init_name(uint32_t kind, uint32_t a, uint32_t b) {
    static const char* ops[] = {"add", "sub", "mul"};
    static const char* dims[] = {"none", "cols", "rows", "scalar"};
    static const char* pools[] = {"SUM", "AVG", "MAX", "MIN"};
    static const char* rdims[] = {"REDUCE_ROW", "REDUCE_COL", "REDUCE_SCALAR"};
    switch (kind) {
        case K_COPY: return "copy_init";
        case K_BINARY: return std::string(ops[a % 3]) + "_init";
        case K_BCAST: return std::string(ops[a % 3]) + "_bcast_" + dims[b % 4] + "_init";
        case K_MATMUL: return "matmul_init";
        case K_REDUCE: return std::string("reduce_init<") + pools[a % 4] + ", " + rdims[b % 3] + ">";
        case K_TRANSPOSE: return "transpose_init";
    }
    return "no op init (only compute_kernel_hw_startup)";
}

// The FPU is programmed for one op by its init: anything else runs the wrong macro-op on a card.
void need_fpu(const char* api, uint32_t kind, uint32_t a, uint32_t b) {
    if (T->fpu_kind != kind || T->fpu_a != a || T->fpu_b != b)
        failf("%s after %s: call %s first (on a card the unpacker and math are still set up for the previous op)",
              api, fpu_init_name(T->fpu_kind, T->fpu_a, T->fpu_b).c_str(), fpu_init_name(kind, a, b).c_str());
}

const char* sfpu_init_name(uint32_t kind) {
    static const char* unary[] = {"exp", "recip", "rsqrt", "sqrt", "sigmoid", "silu", "tanh", "negative", "square",
                                  "abs", "log", "fill", "", "", "", "", "", "relu", "gelu", "exp2", "power"};
    static const char* binary[] = {"add_binary", "sub_binary", "mul_binary", "binary_max", "binary_min",
                                   "div_binary", "rsub_binary"};
    static thread_local char buf[64];
    if (kind == ~0u) return "no SFPU init";
    if (kind == SFPU_SCALAR) return "binop_with_scalar_tile_init()";
    if (kind >= SFPU_BINARY) std::snprintf(buf, sizeof buf, "%s_tile_init()", binary[(kind - SFPU_BINARY) % 7]);
    else std::snprintf(buf, sizeof buf, "%s_tile_init()", unary[kind % 21]);
    return buf;
}

void need_sfpu(const char* api, uint32_t kind) {
    if (T->sfpu_kind != kind)
        failf("%s after %s: call %s first (SFPU ops need their own init)", api, sfpu_init_name(T->sfpu_kind),
              sfpu_init_name(kind));
}

// ---------------------------------------------------------------- configuration state checks
const char* fmt_name(uint32_t f) {
    return f == FMT_FLOAT32 ? "float32" : f == FMT_FLOAT16_B ? "bfloat16" : f == FMT_BFP8_B ? "bfloat8_b" : "?";
}
const char* src_name(uint32_t reg) { return reg == SRC_A ? "SrcA" : "SrcB"; }

void need_compute(const char* api) {
    check_abort();
    if (T->role != "compute") failf("%s is a compute API, called from a %s kernel", api, T->role.c_str());
}

void need_started(const char* api) {
    if (!T->cfg.started)
        failf("%s before compute_kernel_hw_startup: the unpacker, math and packer are unconfigured (call "
              "compute_kernel_hw_startup(in0, in1, out) once at the start of kernel_main)", api);
}

// Operand `what` of `api`, CB cbi, is unpacked through source register `reg`: the unpacker must be configured
// for that CB's format. `mapping` says how the op maps its operands onto SrcA / SrcB (tt-metal's LLK).
void need_src_format(const char* api, uint32_t reg, uint32_t cbi, const char* what, const char* mapping) {
    need_started(api);
    CB& cb = get_cb(cbi, api);
    const SrcConfig& s = T->cfg.unpack.src[reg];
    if (s.fmt != cb.fmt)
        failf("%s: %s CB %u holds %s, but the unpacker's %s is configured for %s (by %s); reconfigure %s to CB %u "
              "first (%s)", api, what, cbi, fmt_name(cb.fmt), src_name(reg), fmt_name(s.fmt), s.by.c_str(),
              src_name(reg), cbi, mapping);
}

// The packer writes DST out in the format it was configured for, into whatever CB it is handed.
void need_pack_format(const char* api, uint32_t cbi) {
    need_started(api);
    CB& cb = get_cb(cbi, api);
    const PackConfig& p = T->cfg.pack;
    if (p.fmt != cb.fmt)
        failf("%s: output CB %u holds %s, but the packer is configured for %s (by %s); call "
              "pack_reconfig_data_format(%u) first", api, cbi, fmt_name(cb.fmt), fmt_name(p.fmt), p.by.c_str(), cbi);
    if (p.l1_acc)
        failf("%s: pack_reconfig_l1_acc(1) is in effect: L1 accumulation is tracked but not emulated", api);
}

// copy_init loads one of two unpacker paths for CB `cb`: unpack-to-dest (a float32 CB listed in
// ComputeConfig.unpack_to_dest_fp32: 32-bit datums straight into DST) or through SrcA (LLK should_unpack_to_dest).
bool copies_to_dest(uint32_t cbi) { return M.unpack_to_dest[cbi] && core().cbs[cbi].fmt == FMT_FLOAT32; }

void need_copy_path(const char* api, uint32_t cbi) {
    const UnpackConfig& u = T->cfg.unpack;
    bool want = copies_to_dest(cbi);
    if (u.copy_cb >= 0 && u.copy_to_dest != want)
        failf("%s: CB %u is unpacked %s, but the last copy_init(%d) loaded the %s path; call copy_init(%u) first",
              api, cbi, want ? "straight to DST (unpack_to_dest_fp32)" : "through SrcA", u.copy_cb,
              u.copy_to_dest ? "unpack-to-DST" : "SrcA", cbi);
}

// The SFPU functions modelled as the Wormhole LLK computes them (sfpu.cpp): the DST bit pattern SFPSTORE
// writes, or false for the ops still evaluated in fp32 below (then rounded to DST by dst_round).
bool sfpu_modelled(uint32_t op, float x, float p, float& out) {
    const uint32_t in = fbits(x);
    const bool fp32 = M.fp32_dest_acc, approx = M.approx;
    uint32_t r;
    switch (op) {
        case U_EXP:
        case U_EXP_APPROX: r = sfpu::exp(in, uint16_t(fbits(p) >> 16), op == U_EXP_APPROX, fp32); break;
        case U_RECIP: r = sfpu::recip(in, approx, fp32); break;
        case U_RSQRT: r = sfpu::rsqrt(in, approx, fp32); break;
        case U_SQRT: r = sfpu::sqrt(in, approx, fp32); break;
        case U_SIGMOID: r = sfpu::sigmoid(in, fp32); break;
        case U_SILU: r = sfpu::silu(in, fp32); break;
        case U_LOG: r = sfpu::log(in, fp32); break;
        default: return false;
    }
    out = from_fbits(r);
    return true;
}

float sfpu_apply(uint32_t op, float x, float p) {
    switch (op) {
        case U_TANH: return std::tanh(x);
        case U_NEG: return -x;
        case U_SQUARE: return x * x;
        case U_ABS: return std::fabs(x);
        case U_FILL: return p;
        case U_ADD_SCALAR: return x + p;
        case U_SUB_SCALAR: return x - p;
        case U_MUL_SCALAR: return x * p;
        case U_DIV_SCALAR: return x / p;
        case U_RSUB_SCALAR: return p - x;
        case U_RELU: return x > 0 ? x : 0.0f;
        case U_GELU: return 0.5f * x * (1.0f + std::erf(x / std::sqrt(2.0f)));
        case U_EXP2: return std::exp2(x);
        case U_POWER: return std::pow(x, p);
    }
    failf("unknown SFPU op %u", op);
}

}  // namespace

// ================================================================ kernel-facing API
void fail(const char* what) { failf("%s", what); }

uint32_t arg(uint32_t i) {
    check_abort();
    if (i >= T->args.size())
        failf("get_arg_val(%u): only %zu runtime args were given to this core", i, T->args.size());
    return T->args[i];
}
uint32_t* arg_addr(uint32_t i) {
    arg(i);
    return &T->args[i];
}
uint32_t common_arg(uint32_t i) { failf("get_common_arg_val(%u): common runtime args are not supported", i); }
uint32_t my_x() { return T->core->x; }
uint32_t my_y() { return T->core->y; }

void check_cb(uint32_t cb, const char* api) { get_cb(cb, api); }

void cb_reserve_back(uint32_t i, uint32_t n) {
    CB& cb = get_cb(i, "cb_reserve_back");
    T->perf.max(perf_cb(i, "reserve_max"), n);
    if (n > cb.num_pages)
        failf("cb_reserve_back(%u, %u): %s holds only %u pages; this can never succeed", i, n, cbname(i).c_str(),
              cb.num_pages);
    if (cb.wr_page + n > cb.num_pages)
        failf("cb_reserve_back(%u, %u): the block would run past the end of %s (write pointer at page %u of %u): "
              "make its page count a multiple of %u", i, n, cbname(i).c_str(), cb.wr_page, cb.num_pages, n);
    block_until(i, [&cb, n] { return cb.num_pages - cb.available() >= n; },
                "cb_reserve_back(" + std::to_string(i) + ", " + std::to_string(n) + ")");
    std::lock_guard<std::mutex> lk(M.mu);
    cb.reserved = std::max(cb.reserved, n);
}

void cb_push_back(uint32_t i, uint32_t n) {
    CB& cb = get_cb(i, "cb_push_back");
    T->perf.add(perf_cb(i, "pushed"), n);
    std::lock_guard<std::mutex> lk(M.mu);
    if (n > cb.reserved)
        raise_locked(where(T) + ": cb_push_back(" + std::to_string(i) + ", " + std::to_string(n) + ") pushes more pages than " +
                     "were reserved with cb_reserve_back (" + std::to_string(cb.reserved) + ") on " + cb_state(cb, i));
    if (cb.available() + n > cb.num_pages)
        raise_locked(where(T) + ": cb_push_back(" + std::to_string(i) + ", " + std::to_string(n) + ") overflows " +
                     cb_state(cb, i));
    uint8_t* lo = cb.base + size_t(cb.wr_page) * cb.page_size;
    for (auto& r : T->reads_in_flight)
        if (overlaps(r.first, r.second, lo, n * cb.page_size))
            raise_locked(where(T) + ": cb_push_back(" + std::to_string(i) + ", " + std::to_string(n) +
                         ") while a NoC read into those pages is in flight: call noc_async_read_barrier() first");
    if (T->role == "compute" && cb.packed_hi < n)
        raise_locked(where(T) + ": cb_push_back(" + std::to_string(i) + ", " + std::to_string(n) + ") but only " +
                     std::to_string(cb.packed_hi) + " tile(s) were packed into the reserved pages: the rest would be "
                     "stale data on a card");
    cb.packed_hi = cb.packed_hi > n ? cb.packed_hi - n : 0;
    cb.reserved -= n;
    cb.pushed += n;
    cb.wr_page = (cb.wr_page + n) % cb.num_pages;
    cb.pack_seq = 0;
    cb.cv.notify_all();
}

void cb_wait_front(uint32_t i, uint32_t n) {
    CB& cb = get_cb(i, "cb_wait_front");
    T->perf.max(perf_cb(i, "wait_max"), n);
    if (n > cb.num_pages)
        failf("cb_wait_front(%u, %u): %s holds only %u pages; this can never succeed", i, n, cbname(i).c_str(),
              cb.num_pages);
    if (cb.rd_page + n > cb.num_pages)
        failf("cb_wait_front(%u, %u): the block would run past the end of %s (read pointer at page %u of %u): "
              "make its page count a multiple of %u", i, n, cbname(i).c_str(), cb.rd_page, cb.num_pages, n);
    block_until(i, [&cb, n] { return cb.available() >= n; },
                "cb_wait_front(" + std::to_string(i) + ", " + std::to_string(n) + ")");
    std::lock_guard<std::mutex> lk(M.mu);
    cb.waited = std::max(cb.waited, n);
}

void cb_pop_front(uint32_t i, uint32_t n) {
    CB& cb = get_cb(i, "cb_pop_front");
    T->perf.add(perf_cb(i, "popped"), n);
    std::lock_guard<std::mutex> lk(M.mu);
    if (n > cb.available())
        raise_locked(where(T) + ": cb_pop_front(" + std::to_string(i) + ", " + std::to_string(n) +
                     ") pops more pages than were pushed: " + cb_state(cb, i));
    if (n > cb.waited)
        raise_locked(where(T) + ": cb_pop_front(" + std::to_string(i) + ", " + std::to_string(n) +
                     ") pops pages it never waited for with cb_wait_front (waited " + std::to_string(cb.waited) +
                     ") on " + cb_state(cb, i));
    uint8_t* lo = cb.base + size_t(cb.rd_page) * cb.page_size;
    for (auto& w : T->writes_in_flight)
        if (overlaps(w.first, w.second, lo, n * cb.page_size))
            raise_locked(where(T) + ": cb_pop_front(" + std::to_string(i) + ", " + std::to_string(n) +
                         ") while a NoC write from those pages is in flight: call noc_async_write_barrier() first");
    cb.waited -= n;
    cb.popped += n;
    cb.rd_page = (cb.rd_page + n) % cb.num_pages;
    cb.cv.notify_all();
}

bool cb_pages_reservable_at_back(uint32_t i, uint32_t n) {
    CB& cb = get_cb(i, "cb_pages_reservable_at_back");
    std::lock_guard<std::mutex> lk(M.mu);
    return cb.num_pages - cb.available() >= n;
}
bool cb_pages_available_at_front(uint32_t i, uint32_t n) {
    CB& cb = get_cb(i, "cb_pages_available_at_front");
    std::lock_guard<std::mutex> lk(M.mu);
    return cb.available() >= n;
}

uint32_t get_write_ptr(uint32_t i) {
    CB& cb = get_cb(i, "get_write_ptr");
    return uint32_t(uintptr_t(cb.base + size_t(cb.wr_page) * cb.page_size));
}
uint32_t get_read_ptr(uint32_t i) {
    CB& cb = get_cb(i, "get_read_ptr");
    return uint32_t(uintptr_t(cb.base + size_t(cb.rd_page) * cb.page_size));
}
uint32_t get_tile_size(uint32_t i) { return get_cb(i, "get_tile_size").page_size; }
uint32_t get_dataformat(uint32_t i) { return get_cb(i, "get_dataformat").fmt; }

uint64_t dram_page_noc_addr(uint32_t bank_base, uint32_t page_size, uint32_t page_id, uint32_t offset) {
    check_abort();
    if (page_size == 0) failf("address generator for DRAM 0x%x has page size 0", bank_base);
    for (auto& t : M.tensors)
        if (t->addr == bank_base && t->page_size != page_size)
            failf("address generator for tensor '%s' has page size %u, but its pages are %u bytes", t->name.c_str(),
                  page_size, t->page_size);
    return uint64_t(bank_base) + uint64_t(page_id) * page_size + offset;
}

uint64_t l1_noc_addr(uint32_t x, uint32_t y, uint32_t addr) {
    check_abort();
    uint32_t off = local_l1_offset(addr, "get_noc_addr");
    if (Core* c = core_at_noc(x, y)) return L1_NOC_BIT | uint32_t(uintptr_t(c->l1 + off));
    failf("get_noc_addr(%u, %u, 0x%x): no core of this program sits at NOC0 (%u,%u); pass NoC coordinates (the "
          "NocX / NocY runtime-arg placeholders), not logical ones", x, y, addr, x, y);
}
uint64_t local_l1_noc_addr(uint32_t addr) { return l1_noc_addr(core().noc_x, core().noc_y, addr); }

// A NoC transfer into (out of) a CB of this core must stay inside the pages reserved (waited for): anything else
// overwrites pages the consumer may still read (reads pages the producer has not pushed).
static void check_cb_region(uint8_t* p, uint32_t size, bool into, const char* api) {
    Core& c = core();
    for (uint32_t i = 0; i < NUM_CBS; i++) {
        CB& cb = c.cbs[i];
        if (!cb.defined || !overlaps(p, size, cb.base, cb.num_pages * cb.page_size)) continue;
        uint32_t first = into ? cb.wr_page : cb.rd_page, count = into ? cb.reserved : cb.waited;
        uint8_t* lo = cb.base + size_t(first) * cb.page_size;
        if (p < lo || p + size > lo + size_t(count) * cb.page_size)
            failf("%s: %u bytes at page %u of %s are outside the %u page(s) %s (from page %u): %s first", api, size,
                  uint32_t((p - cb.base) / cb.page_size), cbname(i).c_str(), count,
                  into ? "reserved for writing" : "waited for", first,
                  into ? "cb_reserve_back" : "cb_wait_front");
    }
}

// A transfer out of this core's CB pages that the calling thread holds: reserved (written, not yet pushed) or waited for.
static void check_cb_owned(uint8_t* p, uint32_t size, const char* api) {
    Core& c = core();
    for (uint32_t i = 0; i < NUM_CBS; i++) {
        CB& cb = c.cbs[i];
        if (!cb.defined || !overlaps(p, size, cb.base, cb.num_pages * cb.page_size)) continue;
        uint8_t* w = cb.base + size_t(cb.wr_page) * cb.page_size;
        uint8_t* r = cb.base + size_t(cb.rd_page) * cb.page_size;
        bool in_reserved = p >= w && p + size <= w + size_t(cb.reserved) * cb.page_size;
        bool in_waited = p >= r && p + size <= r + size_t(cb.waited) * cb.page_size;
        if (!in_reserved && !in_waited)
            failf("%s: %u bytes at page %u of %s are neither in the %u page(s) reserved (from page %u) nor in the %u "
                  "waited for (from page %u): cb_reserve_back or cb_wait_front first", api, size,
                  uint32_t((p - cb.base) / cb.page_size), cbname(i).c_str(), cb.reserved, cb.wr_page, cb.waited,
                  cb.rd_page);
        return;
    }
    failf("%s: the source (%u bytes at L1 offset 0x%x) is neither in a CB nor a semaphore of this core", api, size,
          uint32_t(p - c.l1));
}

void noc_read(uint64_t src, uint32_t dst_l1, uint32_t size) {
    check_abort();
    uint8_t* s = noc_ptr(src, size, "noc_async_read");
    perf_noc("read", src, size);
    uint8_t* d = l1_ptr(dst_l1, size, "noc_async_read");
    check_cb_region(d, size, true, "noc_async_read");
    if (src & L1_NOC_BIT) {
        // reading out of a local CB: it must have been waited for
        uint8_t* me = core().l1;
        if (s >= me && s < me + L1_SIZE) check_cb_region(s, size, false, "noc_async_read (source)");
    }
    std::memcpy(d, s, size);
    T->reads_in_flight.emplace_back(d, size);
}
void noc_write(uint32_t src_l1, uint64_t dst, uint32_t size) {
    check_abort();
    uint8_t* s = l1_ptr(src_l1, size, "noc_async_write");
    uint8_t* d = noc_ptr(dst, size, "noc_async_write");
    perf_noc("write", dst, size);
    check_cb_region(s, size, false, "noc_async_write");
    if (dst & L1_NOC_BIT) {
        // Into a core's L1 (a CB or a semaphore, e.g. noc_semaphore_set_remote): under the lock, so a semaphore
        // waiter that sees the new value also sees every write this thread issued before it.
        Core* c = core_holding(d);
        check_l1_dest(*c, d, size, "noc_async_write");
        std::lock_guard<std::mutex> lk(M.mu);
        std::memmove(d, s, size);
        c->sem_cv.notify_all();
    } else {
        std::memcpy(d, s, size);
    }
    T->writes_in_flight.emplace_back(s, size);
}

// ---- semaphores and multicast
// As on a card, the address is the same arithmetic on every core (a receiver computes the sender's semaphore
// address this way); the id must belong to the program. Using it locally needs it defined on this core (local_sem).
uint32_t semaphore_addr(uint32_t id) {
    check_abort();
    bool known = false;
    for (auto& c : M.cores) known |= id < NUM_SEMAPHORES && c->sem_defined[id];
    if (!known)
        failf("get_semaphore(%u): the program defines no semaphore %u; add a SemaphoreSpec to "
              "ProgramDescription.semaphores (a semaphore's id is its index there)", id, id);
    return uint32_t(uintptr_t(core().sem_word(id)));
}

void sem_wait(uintptr_t addr, uint32_t val, bool at_least) {
    check_abort();
    const char* api = at_least ? "noc_semaphore_wait_min" : "noc_semaphore_wait";
    uint32_t id = local_sem(addr, api);
    uint32_t* w = core().sem_word(id);
    T->perf.add("sem.wait");
    block_on(core().sem_cv, -1, int(id), [w, val, at_least] {
        uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
        return at_least ? v >= val : v == val;
    }, std::string(api) + "(semaphore " + std::to_string(id) + ", " + std::to_string(val) + ")", "sem.wait.blocked");
}

void sem_set_local(uintptr_t addr, uint32_t val) {
    check_abort();
    uint32_t id = local_sem(addr, "noc_semaphore_set");
    std::lock_guard<std::mutex> lk(M.mu);
    __atomic_store_n(core().sem_word(id), val, __ATOMIC_RELEASE);
    core().sem_cv.notify_all();
}

uint64_t mcast_noc_addr(uint32_t xs, uint32_t ys, uint32_t xe, uint32_t ye, uint32_t addr) {
    check_abort();
    uint32_t off = local_l1_offset(addr, "get_noc_multicast_addr");
    for (uint32_t v : {xs, ys, xe, ye})
        if (v > 63)
            failf("get_noc_multicast_addr(%u, %u, %u, %u, ...): NoC coordinate %u is out of range (a NOC0 "
                  "coordinate is below 64)", xs, ys, xe, ye, v);
    return L1_NOC_BIT | L1_MCAST_BIT | uint64_t(xs) << 50 | uint64_t(ys) << 44 | uint64_t(xe) << 38 |
           uint64_t(ye) << 32 | off;
}

void noc_write_mcast(uint32_t src_l1, uint64_t dst, uint32_t size, uint32_t num_dests, bool loopback, uint8_t noc,
                     const char* api) {
    check_abort();
    std::vector<Core*> to = mcast_receivers(dst, num_dests, loopback, noc, api);
    uint8_t* s = core().l1 + local_l1_offset(src_l1, api);
    if (uint64_t(s - core().l1) + size > L1_SIZE) failf("%s: %u bytes from 0x%x run past this core's L1", api, size, src_l1);
    // The source: CB pages this thread holds (reserved, e.g. just read from DRAM, or waited for), or a semaphore word.
    if (!(size == 4 && sem_at(core(), uint32_t(s - core().l1)) >= 0)) check_cb_owned(s, size, api);
    uint32_t off = decode_mcast(dst).off;
    for (Core* c : to) {
        if (uint64_t(off) + size > L1_SIZE) failf("%s: %u bytes at L1 offset 0x%x run past the end of L1", api, size, off);
        check_l1_dest(*c, c->l1 + off, size, api);
    }
    // Counted once, at the sender: one NoC transfer whatever the number of receivers.
    T->perf.add("noc.write.mcast.bytes", size);
    T->perf.add("noc.write.mcast.n");
    T->perf.add("noc.write.mcast.dests", num_dests);
    std::lock_guard<std::mutex> lk(M.mu);  // as unicast L1 writes: visible before any later semaphore signal
    for (Core* c : to) {
        std::memmove(c->l1 + off, s, size);
        c->sem_cv.notify_all();
    }
    T->writes_in_flight.emplace_back(s, size);
}

void sem_inc(uint64_t dst, uint32_t incr) {
    check_abort();
    uint8_t* d = noc_ptr(dst, 4, "noc_semaphore_inc");
    Core* c = (dst & L1_NOC_BIT) ? core_holding(d) : nullptr;
    int id = c ? sem_at(*c, uint32_t(d - c->l1)) : -1;
    if (id < 0)
        failf("noc_semaphore_inc: NoC address 0x%llx is not a semaphore word of a core of this program; build it with "
              "get_noc_addr(noc_x, noc_y, get_semaphore(id))", (unsigned long long)dst);
    T->perf.add("noc.atomic.n");
    std::lock_guard<std::mutex> lk(M.mu);
    __atomic_fetch_add(c->sem_word(uint32_t(id)), incr, __ATOMIC_ACQ_REL);  // 32-bit wrap, as the NoC atomic
    c->sem_cv.notify_all();
}

void sem_inc_mcast(uint64_t dst, uint32_t incr, uint32_t num_dests, uint8_t noc) {
    check_abort();
    const char* api = "noc_semaphore_inc_multicast";
    std::vector<Core*> to = mcast_receivers(dst, num_dests, false, noc, api);
    uint32_t off = decode_mcast(dst).off;
    for (Core* c : to) {
        if (c == T->core)
            failf("%s: the sender %s lies inside the rectangle; this API cannot include the sender", api,
                  core_name(*c).c_str());
        if (sem_at(*c, off) < 0)
            failf("%s: L1 offset 0x%x is not a semaphore on %s", api, off, core_name(*c).c_str());
    }
    T->perf.add("noc.atomic.n");
    T->perf.add("noc.atomic.mcast.dests", num_dests);
    std::lock_guard<std::mutex> lk(M.mu);
    for (Core* c : to) {
        __atomic_fetch_add(c->sem_word((off - L1_SEM_BASE) / L1_ALIGNMENT), incr, __ATOMIC_ACQ_REL);
        c->sem_cv.notify_all();
    }
}
void noc_read_barrier() {
    check_abort();
    T->perf.add("noc.read_barrier");
    T->reads_in_flight.clear();
}
void noc_write_barrier() {
    check_abort();
    T->perf.add("noc.write_barrier");
    T->writes_in_flight.clear();
}

void dprint_emit(const std::string& text) {
    std::ostringstream line;
    line << "[emu core (" << T->core->x << "," << T->core->y << ") " << T->role << "] " << text;
    std::string out = line.str();
    if (out.empty() || out.back() != '\n') out += '\n';
    std::lock_guard<std::mutex> lk(M.mu);
    std::fwrite(out.data(), 1, out.size(), stderr);
}

// ---------------------------------------------------------------- DST protocol
static void dst_reset() {
    std::fill(T->dst.begin(), T->dst.end(), 0.0f);
    std::fill(T->dst_fresh.begin(), T->dst_fresh.end(), true);
}
void dst_acquire() {
    check_abort();
    if (T->dst_state != DST_IDLE) failf("tile_regs_acquire() while DST is still held: call tile_regs_release() first");
    dst_reset();
    T->dst_state = DST_MATH;
    T->perf.add("dst.acquire");
}
void dst_commit() {
    check_abort();
    if (T->dst_state != DST_MATH) failf("tile_regs_commit() without tile_regs_acquire()");
    T->dst_state = DST_COMMITTED;
}
void dst_wait() {
    check_abort();
    if (T->dst_state != DST_COMMITTED) failf("tile_regs_wait() without tile_regs_commit()");
    T->dst_state = DST_PACK;
}
void dst_release() {
    check_abort();
    if (T->dst_state != DST_PACK) failf("tile_regs_release() without tile_regs_wait()");
    T->dst_state = DST_IDLE;
}
void dst_acquire_legacy() {
    check_abort();
    if (T->dst_state != DST_IDLE) failf("acquire_dst() while DST is still held");
    dst_reset();
    T->dst_state = DST_LEGACY;
}
void dst_release_legacy() {
    check_abort();
    if (T->dst_state != DST_LEGACY) failf("release_dst() without acquire_dst()");
    T->dst_state = DST_IDLE;
}

// ---------------------------------------------------------------- FPU tile ops
// Reduce operands: REDUCE_ROW SUM/AVG runs MVMUL with swapped operands (scaler -> SrcA, data -> SrcB); every other
// reduce unpacks data -> SrcA, scaler -> SrcB (tt-metal 0.81.1 reduce.h). GMPOOL multiplies by the scaler before
// taking the max, so MAX needs a scaler of 1.0 (reduce.h: "all scaling factors should be 1").
static void need_reduce_config(uint32_t pool, uint32_t dim, uint32_t cb, uint32_t cbs, uint32_t its) {
    const bool swapped = dim == RED_ROW && pool != POOL_MAX;
    const char* mapping = swapped ? "REDUCE_ROW SUM/AVG maps the scaler -> SrcA, data -> SrcB: "
                                    "reconfig_data_format(scaler, data)"
                                  : "this reduce maps data -> SrcA, the scaler -> SrcB: reconfig_data_format(data, scaler)";
    need_src_format("reduce_tile", swapped ? SRC_B : SRC_A, cb, "data", mapping);
    need_src_format("reduce_tile", swapped ? SRC_A : SRC_B, cbs, "scaler", mapping);
}

// MOVA2D: a source datum into DST; denormals flush to +0, a bf16 DST keeps the top 16 bits.
inline uint32_t src_to_dst(uint32_t src) {
    const uint32_t u = datapath::src_to_fp32_bits(src);
    return (u & 0x7F800000u) ? u : 0;
}

void copy_tile(uint32_t cb, uint32_t itile, uint32_t idst) {
    need_dst(idst, "copy_tile", false);
    need_fpu("copy_tile", K_COPY, 0, 0);
    need_src_format("copy_tile", SRC_A, cb, "input", "copy_tile unpacks its CB into SrcA: reconfig_data_format_srca");
    need_copy_path("copy_tile", cb);
    T->perf.add("fpu.copy");
    if (M.unpack_to_dest[cb]) {
        // UnpackToDestFp32: the unpacker writes the float32 data into DST unchanged (no source register).
        const CB& c = core().cbs[cb];
        if (c.fmt != FMT_FLOAT32 || !M.fp32_dest_acc)
            failf("copy_tile: %s is in unpack_to_dest_fp32 but %s: unpacking to DST in fp32 needs a float32 CB and "
                  "fp32_dest_acc_en", cbname(cb).c_str(), c.fmt != FMT_FLOAT32 ? "is not float32" : "DST is bf16");
        // L1 holds the tile face-ordered, DST here is row-major: an exact float32 reorder, no rounding.
        unpack_tile_bytes(FMT_FLOAT32, waited_tile(cb, itile, "copy_tile"), dst_tile(idst));
        T->dst_fresh[idst] = false;
        return;
    }
    uint32_t a[TILE_HW];
    unpack_src(cb, itile, a, "copy_tile");
    for (int e = 0; e < TILE_HW; e++) set_dst_bits(idst, e, src_to_dst(a[e]));
    T->dst_fresh[idst] = false;
}

void transpose_tile(uint32_t cb, uint32_t itile, uint32_t idst) {
    need_dst(idst, "transpose_tile", false);
    need_fpu("transpose_tile", K_TRANSPOSE, 0, 0);
    need_src_format("transpose_tile", SRC_A, cb, "input", "transpose_tile unpacks its CB into SrcA: reconfig_data_format_srca");
    T->perf.add("fpu.transpose");
    uint32_t a[TILE_HW];
    unpack_src(cb, itile, a, "transpose_tile");
    for (int r = 0; r < 32; r++)
        for (int c = 0; c < 32; c++) set_dst_bits(idst, c * 32 + r, src_to_dst(a[r * 32 + c]));
    T->dst_fresh[idst] = false;
}

// add/sub/mul_tiles[_bcast]: in0 -> SrcA, in1 -> SrcB (broadcast from SrcB's column 0, row or first datum).
// ELWADD / ELWSUB overwrite DST (acc_to_dest off); ELWMUL always adds into DST, once per fidelity phase.
void binary_tiles(uint32_t op, uint32_t bcast, uint32_t cb0, uint32_t cb1, uint32_t t0, uint32_t t1, uint32_t idst,
                  uint32_t bcast_row) {
    const char* api = "binary tile op (add/sub/mul_tiles[_bcast])";
    need_dst(idst, api, false);
    static const char* names[4][3] = {{"add_tiles", "sub_tiles", "mul_tiles"},
                                      {"add_tiles_bcast_cols", "sub_tiles_bcast_cols", "mul_tiles_bcast_cols"},
                                      {"add_tiles_bcast_rows", "sub_tiles_bcast_rows", "mul_tiles_bcast_rows"},
                                      {"add_tiles_bcast_scalar", "sub_tiles_bcast_scalar", "mul_tiles_bcast_scalar"}};
    api = names[bcast % 4][op % 3];
    T->perf.add(std::string(bcast == BC_NONE ? "fpu.binary." : "fpu.bcast.") + perf_binary(op) + (op == OP_MUL ? std::string(".") + perf_fidelity(M.math_fidelity) : ""));
    if (bcast == BC_NONE) need_fpu(api, K_BINARY, op, 0);
    else need_fpu(api, K_BCAST, op, bcast);
    need_src_format(api, SRC_A, cb0, "in0", "eltwise binary and broadcast ops map in0 -> SrcA, in1 -> SrcB: reconfig_data_format(in0, in1)");
    need_src_format(api, SRC_B, cb1, "in1", "eltwise binary and broadcast ops map in0 -> SrcA, in1 -> SrcB: reconfig_data_format(in0, in1)");
    uint32_t a[TILE_HW], b[TILE_HW];
    unpack_src(cb0, t0, a, api);
    unpack_src(cb1, t1, b, api);
    const bool fp32 = M.fp32_dest_acc;
    const uint32_t phases = op == OP_MUL ? datapath::fidelity_phases(M.math_fidelity) : 1;
    for (int r = 0; r < 32; r++)
        for (int c = 0; c < 32; c++) {
            uint32_t bv;
            switch (bcast) {
                case BC_COL: bv = b[r * 32]; break;
                case BC_ROW: bv = b[bcast_row * 32 + c]; break;
                case BC_SCALAR: bv = b[0]; break;
                default: bv = b[r * 32 + c];
            }
            const int e = r * 32 + c;
            const uint32_t av = a[e];
            uint32_t d;
            if (op == OP_MUL) {
                d = dst_bits(idst, e);
                for (uint32_t ph = 0; ph < phases; ph++) d = datapath::elwmul(av, bv, d, fp32, ph);
            } else {
                d = op == OP_ADD ? datapath::elwadd(av, bv, 0, fp32, false) : datapath::elwsub(av, bv, 0, fp32, false);
            }
            set_dst_bits(idst, e, d);
        }
    T->dst_fresh[idst] = false;
}

// DST[idst] += in0 x in1 (x in1^T with transpose): MVMUL computes DST += SrcB x SrcA with in0 in SrcB and in1 in
// SrcA. Per fidelity phase (outer), each 16-deep face product (k 0..15, then 16..31) is one MVMUL into DST.
static void matmul_one(const uint32_t* in0, const uint32_t* in1, bool transpose_in1, uint32_t idst) {
    datapath::matmul_tile(in0, in1, transpose_in1, reinterpret_cast<uint32_t*>(dst_tile(idst)), M.fp32_dest_acc,
                          M.math_fidelity);
    T->dst_fresh[idst] = false;
}

void fpu_init(uint32_t kind, uint32_t a, uint32_t b) {
    check_abort();
    if (T->role != "compute") failf("%s is a compute API, called from a %s kernel", fpu_init_name(kind, a, b).c_str(), T->role.c_str());
    need_started(fpu_init_name(kind, a, b).c_str());
    if (kind == K_REDUCE && a == POOL_MIN)
        failf("%s: the FPU reduce has no MIN (the LLK static_asserts it: the hardware pools with GMPOOL = max and "
              "GAPOOL = sum/average only); negate and reduce MAX, or use binary_min_tile on the SFPU",
              fpu_init_name(kind, a, b).c_str());
    T->fpu_kind = kind;
    T->fpu_a = a;
    T->fpu_b = b;
    T->pack_mask = kind == K_REDUCE ? 1 + b : 0;
    T->perf.add("init.fpu");
}
void reduce_uninit() {
    check_abort();
    T->pack_mask = 0;
}
void sfpu_init(uint32_t kind) {
    check_abort();
    T->perf.add("init.sfpu");
    T->sfpu_kind = kind;
}

// ---------------------------------------------------------------- configuration (compute_kernel_hw_startup, reconfig)
// "reconfig_data_format (SrcA = CB 25)" or, for the (old, new) form, "reconfig_data_format (SrcA: CB 24 -> CB 25)".
static std::string cfg_by(const char* api, const char* what, int old_cb, uint32_t new_cb) {
    std::string s = std::string(api) + " (" + what + (old_cb >= 0 ? ": CB " + std::to_string(old_cb) + " -> " : " = ");
    return s + "CB " + std::to_string(new_cb) + ")";
}
static void set_src(uint32_t reg, uint32_t cbi, const std::string& by) {
    SrcConfig& s = T->cfg.unpack.src[reg];
    s.cb = int(cbi);
    s.fmt = get_cb(cbi, by.c_str()).fmt;
    s.by = by;
}
void hw_startup(uint32_t srca_cb, uint32_t srcb_cb, uint32_t pack_cb, const char* api) {
    need_compute(api);
    std::string by = std::string(api) + " (SrcA = CB " + std::to_string(srca_cb) + ", SrcB = CB " +
                     std::to_string(srcb_cb) + ", pack = CB " + std::to_string(pack_cb) + ")";
    set_src(SRC_A, srca_cb, by);
    set_src(SRC_B, srcb_cb, by);
    T->cfg.pack.cb = int(pack_cb);
    T->cfg.pack.fmt = get_cb(pack_cb, api).fmt;
    T->cfg.pack.by = by;
    T->cfg.pack.l1_acc = false;
    T->cfg.math.fidelity = M.math_fidelity;
    T->cfg.math.fp32_dest_acc = M.fp32_dest_acc;
    T->cfg.started = true;
}
// reconfig_data_format* for one source register. With an `old` operand (old_cb >= 0) the LLK compares the two
// operands' formats and reprograms nothing when they are equal: the caller's claim about the current state is
// trusted, so a stale `old` skips a needed reconfiguration -- as on a card.
// Only a reprogramming counts as a configuration call for the performance model (init.reconfig): the skipped
// (old, new) form is the LLK's format compare, no register writes (llk_unpack_reconfig_data_format_srca/srcb).
void unpack_reconfig(uint32_t reg, int old_cb, uint32_t new_cb, const char* api) {
    need_compute(api);
    need_started(api);
    CB& nw = get_cb(new_cb, api);
    if (old_cb >= 0 && get_cb(uint32_t(old_cb), api).fmt == nw.fmt) return;
    T->perf.add("init.reconfig");
    set_src(reg, new_cb, cfg_by(api, src_name(reg), old_cb, new_cb));
}
void pack_reconfig(int old_cb, uint32_t new_cb, const char* api) {
    need_compute(api);
    need_started(api);
    CB& nw = get_cb(new_cb, api);
    if (old_cb >= 0 && get_cb(uint32_t(old_cb), api).fmt == nw.fmt) return;
    T->perf.add("init.reconfig");
    T->cfg.pack.cb = int(new_cb);
    T->cfg.pack.fmt = nw.fmt;
    T->cfg.pack.by = cfg_by(api, "pack", old_cb, new_cb);
}
void pack_l1_acc(uint32_t enable) {
    need_compute("pack_reconfig_l1_acc");
    T->cfg.pack.l1_acc = enable != 0;
}
void copy_init_cb(uint32_t cbi) {
    need_compute("copy_init");
    get_cb(cbi, "copy_init");
    T->cfg.unpack.copy_cb = int(cbi);
    T->cfg.unpack.copy_to_dest = copies_to_dest(cbi);
}
void set_matmul_transpose(uint32_t t) { T->mm_transpose = t; }
uint32_t matmul_transpose() { return T->mm_transpose; }

void matmul_tiles(uint32_t cb0, uint32_t cb1, uint32_t t0, uint32_t t1, uint32_t idst, uint32_t transpose) {
    need_dst(idst, "matmul_tiles", false);
    need_fpu("matmul_tiles", K_MATMUL, 0, 0);
    T->perf.add(std::string("fpu.matmul.") + perf_fidelity(M.math_fidelity));
    need_src_format("matmul_tiles", SRC_A, cb1, "in1", "matmul maps in0 -> SrcB, in1 -> SrcA: reconfig_data_format(in1, in0)");
    need_src_format("matmul_tiles", SRC_B, cb0, "in0", "matmul maps in0 -> SrcB, in1 -> SrcA: reconfig_data_format(in1, in0)");
    uint32_t a[TILE_HW], b[TILE_HW];
    unpack_src(cb0, t0, a, "matmul_tiles");
    unpack_src(cb1, t1, b, "matmul_tiles");
    matmul_one(a, b, transpose != 0, idst);
}

void matmul_block(uint32_t cb0, uint32_t cb1, uint32_t t0, uint32_t t1, uint32_t idst, uint32_t transpose,
                  uint32_t ct, uint32_t rt, uint32_t kt) {
    if (ct * rt == 0) failf("matmul_block: ct_dim %u x rt_dim %u is empty", ct, rt);
    need_dst(idst + ct * rt - 1, "matmul_block", false);
    need_fpu("matmul_block", K_MATMUL, 0, 0);
    T->perf.add(std::string("fpu.matmul.") + perf_fidelity(M.math_fidelity), uint64_t(ct) * rt);
    need_src_format("matmul_block", SRC_A, cb1, "in1", "matmul maps in0 -> SrcB, in1 -> SrcA: reconfig_data_format(in1, in0)");
    need_src_format("matmul_block", SRC_B, cb0, "in0", "matmul maps in0 -> SrcB, in1 -> SrcA: reconfig_data_format(in1, in0)");
    uint32_t a[TILE_HW], b[TILE_HW];
    for (uint32_t r = 0; r < rt; r++) {
        unpack_src(cb0, t0 + r * kt, a, "matmul_block");
        for (uint32_t c = 0; c < ct; c++) {
            unpack_src(cb1, t1 + c, b, "matmul_block");
            matmul_one(a, b, transpose != 0, idst + r * ct + c);
        }
    }
}

// reduce_tile. SUM / AVG are matrix-engine dot products with the scaler (row 0 of each scaler face): REDUCE_ROW
// runs MVMUL with the data in SrcB and the scaler in SrcA, REDUCE_COL GAPOOL with the data in SrcA and the scaler
// in SrcB; REDUCE_SCALAR is a column pass then a row pass, each through DST. Fidelity phases outer, faces inner.
// MAX is GMPOOL, which requires the scaler to be exactly 1.0; the LLK has no MIN.
void reduce_tile(uint32_t pool, uint32_t dim, uint32_t cb, uint32_t cbs, uint32_t itile, uint32_t its, uint32_t idst) {
    need_dst(idst, "reduce_tile", false);
    need_fpu("reduce_tile", K_REDUCE, pool, dim);
    T->perf.add(pool == POOL_MAX ? std::string("fpu.reduce.max") : std::string("fpu.reduce.sum.") + perf_fidelity(M.math_fidelity));
    need_reduce_config(pool, dim, cb, cbs, its);
    uint32_t a[TILE_HW], s[TILE_HW];
    unpack_src(cb, itile, a, "reduce_tile");
    unpack_src(cbs, its, s, "reduce_tile (scaler)");
    const bool fp32 = M.fp32_dest_acc;
    const bool fresh = T->dst_fresh[idst];
    if (pool == POOL_MAX) {
        // GMPOOL multiplies by the scaler before taking the max (reduce.h: "all scaling factors should be 1").
        const uint32_t one = 0x3F800000u >> 13;
        for (int r : {0, 16})  // row 0 of every face: the rows the reduce scaler occupies
            for (int c = 0; c < 32; c++)
                if (s[r * 32 + c] != one)
                    failf("reduce_tile<MAX>: scaler CB %u tile %u holds %g at row %d, column %d; MAX multiplies by "
                          "the scaler before pooling, so its scaler must be 1.0 in row 0 of every face (use a "
                          "separate all-ones scaler tile for MAX)", cbs, its,
                          double(from_fbits(datapath::src_to_fp32_bits(s[r * 32 + c]))), r, c);
        // Running max: DST seen at source precision (TF32 truncation of an fp32 DST); a fresh DST starts below all.
        auto running = [&](int e) -> uint32_t {
            if (fresh) return 0xFFFFFFFFu;
            const uint32_t d = dst_bits(idst, e);
            return fp32 ? d & 0xFFFFE000u : d;
        };
        auto lane_max = [&](uint32_t m, const uint32_t* p, int stride) {
            for (int k = 0; k < 32; k++) m = datapath::gmpool_max(m, p[k * stride]);
            return m;
        };
        if (dim == RED_ROW) {
            for (int r = 0; r < 32; r++) set_dst_bits(idst, r * 32, lane_max(running(r * 32), a + r * 32, 1));
        } else if (dim == RED_COL) {
            for (int c = 0; c < 32; c++) set_dst_bits(idst, c, lane_max(running(c), a + c, 32));
        } else {
            uint32_t m = running(0);
            for (int r = 0; r < 32; r++) m = lane_max(m, a + r * 32, 1);
            set_dst_bits(idst, 0, m);
        }
        T->dst_fresh[idst] = false;
        return;
    }
    const uint32_t phases = datapath::fidelity_phases(M.math_fidelity);
    datapath::Operand scal_a[32], scal_b[32];  // the scaler's row 0 as SrcA lanes and as SrcB lanes
    for (int i = 0; i < 32; i++) {
        scal_a[i] = datapath::split_srca(s[i]);
        scal_b[i] = datapath::split_srcb(s[i]);
    }
    // A 32-long dot product with the scaler into `d`: two 16-lane faces per phase.
    auto pool_row = [&](const datapath::Operand* data_b, uint32_t d) {  // data in SrcB, scaler in SrcA
        for (uint32_t ph = 0; ph < phases; ph++)
            for (int f = 0; f < 2; f++) d = datapath::mvmul16_split(scal_a + 16 * f, data_b + 16 * f, d, fp32, ph);
        return d;
    };
    auto pool_col = [&](const datapath::Operand* data_a, uint32_t d) {  // data in SrcA, scaler in SrcB
        for (uint32_t ph = 0; ph < phases; ph++)
            for (int f = 0; f < 2; f++) d = datapath::mvmul16_split(data_a + 16 * f, scal_b + 16 * f, d, fp32, ph);
        return d;
    };
    datapath::Operand lanes[32];
    if (dim == RED_ROW) {
        for (int r = 0; r < 32; r++) {
            for (int k = 0; k < 32; k++) lanes[k] = datapath::split_srcb(a[r * 32 + k]);
            set_dst_bits(idst, r * 32, pool_row(lanes, dst_bits(idst, r * 32)));
        }
    } else if (dim == RED_COL) {
        for (int c = 0; c < 32; c++) {
            for (int k = 0; k < 32; k++) lanes[k] = datapath::split_srca(a[k * 32 + c]);
            set_dst_bits(idst, c, pool_col(lanes, dst_bits(idst, c)));
        }
    } else {
        uint32_t colsum[32];
        for (int c = 0; c < 32; c++) {
            for (int k = 0; k < 32; k++) lanes[k] = datapath::split_srca(a[k * 32 + c]);
            colsum[c] = pool_col(lanes, 0);
        }
        // The column sums come back from DST through a source register (TF32 of an fp32 DST, else bf16).
        for (int c = 0; c < 32; c++)
            lanes[c] = datapath::split_srcb(fp32 ? (colsum[c] & 0xFFFFE000u) >> 13 : (colsum[c] & 0xFFFF0000u) >> 13);
        set_dst_bits(idst, 0, pool_row(lanes, dst_bits(idst, 0)));
    }
    T->dst_fresh[idst] = false;
}

// ---------------------------------------------------------------- SFPU
void sfpu_unary(uint32_t op, uint32_t idst, float p, uint32_t vector_mode) {
    need_dst(idst, "SFPU unary op", false);
    static const uint32_t scalar_ops[] = {U_ADD_SCALAR, U_SUB_SCALAR, U_MUL_SCALAR, U_DIV_SCALAR, U_RSUB_SCALAR};
    bool is_scalar = std::find(std::begin(scalar_ops), std::end(scalar_ops), op) != std::end(scalar_ops);
    need_sfpu("SFPU op", is_scalar ? SFPU_SCALAR : op == U_EXP_APPROX ? U_EXP : op);
    T->perf.add("sfpu." + perf_unary(op) + ".faces", vector_mode == 1 || vector_mode == 2 ? 2 : 4);
    float* d = dst_tile(idst);
    // VectorMode: R = faces 0 and 1 (top rows), C = faces 0 and 2 (left columns), RC = all faces.
    for (int r = 0; r < 32; r++)
        for (int c = 0; c < 32; c++) {
            if (vector_mode == 1 && r >= 16) continue;
            if (vector_mode == 2 && c >= 16) continue;
            float& v = d[r * 32 + c];
            if (!sfpu_modelled(op, v, p, v)) v = dst_round(sfpu_apply(op, v, p));
        }
    T->dst_fresh[idst] = false;
}

void sfpu_binary(uint32_t op, uint32_t i0, uint32_t i1, uint32_t o) {
    need_dst(i0, "SFPU binary op", false);
    need_dst(i1, "SFPU binary op", false);
    need_dst(o, "SFPU binary op", false);
    need_sfpu("SFPU binary op", SFPU_BINARY + op);
    T->perf.add("sfpu.binary_" + perf_binary(op) + ".faces", 4);
    float* a = dst_tile(i0);
    float* b = dst_tile(i1);
    float* d = dst_tile(o);
    for (int e = 0; e < TILE_HW; e++) {
        float x = a[e], y = b[e], v;
        switch (op) {
            case OP_ADD: v = x + y; break;
            case OP_SUB: v = x - y; break;
            case OP_MUL: v = x * y; break;
            case OP_MAX: v = std::max(x, y); break;
            case OP_MIN: v = std::min(x, y); break;
            case OP_DIV: v = x / y; break;
            default: v = y - x;
        }
        d[e] = dst_round(v);
    }
    T->dst_fresh[o] = false;
}

void pack_tile(uint32_t idst, uint32_t cbi, uint32_t out_index, bool out_of_order) {
    need_dst(idst, "pack_tile", true);
    need_pack_format("pack_tile", cbi);
    CB& cb = get_cb(cbi, "pack_tile");
    T->perf.add(std::string("pack.") + perf_fmt(cb.fmt));
    uint32_t pos = out_of_order ? out_index : cb.pack_seq;
    if (pos >= cb.reserved)
        failf("pack_tile(%u, %u): writes tile %u of the reserved region of %s, but only %u pages were reserved "
              "with cb_reserve_back", idst, cbi, pos, cbname(cbi).c_str(), cb.reserved);
    if (cb.wr_page + pos >= cb.num_pages)
        failf("pack_tile(%u, %u): tile %u lies past the end of %s", idst, cbi, pos, cbname(cbi).c_str());
    if (cb.page_size != tile_bytes(cb.fmt))
        failf("pack_tile: %s has %u-byte pages, not one %u-byte tile of its format", cbname(cbi).c_str(), cb.page_size,
              tile_bytes(cb.fmt));
    uint32_t src[TILE_HW];
    std::memcpy(src, dst_tile(idst), sizeof src);
    if (T->pack_mask) {
        // reduce_init's packer edge masks zero every datum outside the reduce result until reduce_uninit or the
        // next non-reduce init (tt-metal 0.81.1 reduce.h "packer-zeroing contract").
        uint32_t dim = T->pack_mask - 1;
        for (int r = 0; r < 32; r++)
            for (int c = 0; c < 32; c++) {
                bool keep = dim == RED_ROW ? c == 0 : dim == RED_COL ? r == 0 : (r == 0 && c == 0);
                if (!keep) src[r * 32 + c] = 0;
            }
    }
    datapath::pack_tile_from_dst(cb.fmt, src, M.fp32_dest_acc, cb.base + size_t(cb.wr_page + pos) * cb.page_size);
    if (!out_of_order) cb.pack_seq++;
    cb.packed_hi = std::max(cb.packed_hi, pos + 1);
}

// ================================================================ the job runner
namespace {

char g_err_path[4096];

// A kernel that crashes (bad pointer, division by zero) takes the runner down; say which kernel and core.
void on_crash(int sig) {
    char msg[1024];
    const char* name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE"
                       : sig == SIGILL ? "SIGILL" : "SIGABRT";
    int n;
    if (T)
        n = std::snprintf(msg, sizeof msg, "kernel %s (%s) on core (%u,%u) crashed with %s (e.g. a pointer made from "
                          "an address outside its CBs, an array index out of range, or an integer division by zero)",
                          T->kernel.c_str(), T->role.c_str(), T->core->x, T->core->y, name);
    else
        n = std::snprintf(msg, sizeof msg, "the emulator crashed with %s outside any kernel", name);
    int fd = open(g_err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, msg, size_t(n));
        (void)w;
        close(fd);
    }
    _exit(1);
}

struct Loaded {
    void* handle;
    void (*entry)();
};

void thread_main(Thread* t) {
    T = t;
    try {
        t->entry();
        if (uint64_t hits = datapath::accumulate_erratum_hits()) t->perf.add("fpu.accumulate_erratum", hits);
        if (t->role == "compute" && t->dst_state != DST_IDLE)
            failf("finished while still holding DST (missing tile_regs_release/release_dst)");
    } catch (Abort&) {
    } catch (std::exception& e) {
        std::lock_guard<std::mutex> lk(M.mu);
        if (!M.aborted.exchange(true)) M.error = where(t) + ": C++ exception: " + e.what();
        notify_all_locked();
    }
    std::lock_guard<std::mutex> lk(M.mu);
    t->done = true;
    M.alive--;
    if (M.alive == 0) M.all_done.notify_all();
    check_deadlock_locked();
}

// Leftover pages are a kernel bug too: a CB that still holds pages was pushed more than it was popped.
std::string leftover_pages() {
    std::ostringstream s;
    for (auto& c : M.cores)
        for (uint32_t i = 0; i < NUM_CBS; i++) {
            CB& cb = c->cbs[i];
            if (cb.defined && cb.available())
                s << "\n  core (" << c->x << "," << c->y << ") " << cb_state(cb, i) << " still holds "
                  << cb.available() << " unpopped page(s)";
        }
    return s.str();
}

std::vector<std::string> tab_fields(const std::string& line) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t tab = line.find('\t', start);
        out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
        if (tab == std::string::npos) return out;
        start = tab + 1;
    }
}

uint32_t parse_fmt(const std::string& s) {
    if (s == "float32") return FMT_FLOAT32;
    if (s == "bfloat16") return FMT_FLOAT16_B;
    if (s == "bfloat8_b") return FMT_BFP8_B;
    throw std::runtime_error("unknown format " + s);
}

}  // namespace

}  // namespace tgemu

using namespace tgemu;

// Runs one job file (written by runtime/emulator.py). Returns 0 on success; on failure writes the message to
// `err_path` and returns 1 (kernel error) or 2 (bad job).
extern "C" int tgemu_run_job(const char* job_path, const char* err_path) {
    auto write_err = [&](const std::string& m) {
        std::ofstream e(err_path);
        e << m;
    };
    std::snprintf(g_err_path, sizeof g_err_path, "%s", err_path);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) {
        struct sigaction sa {};
        sa.sa_handler = on_crash;
        sigaction(sig, &sa, nullptr);
    }
    std::ifstream in(job_path);
    if (!in) {
        write_err(std::string("cannot open job ") + job_path);
        return 2;
    }
    std::map<std::pair<uint32_t, uint32_t>, Core*> by_xy;
    std::vector<Loaded> kernels;
    std::vector<std::string> kernel_names;
    std::string line;
    std::string perf_path;  // where the performance counters go ("perf<TAB>PATH"; none without it)
    try {
        std::vector<std::tuple<uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t>> cb_lines;
        std::vector<std::array<uint32_t, 4>> core_list;  // logical x, y, NOC0 x, y
        std::vector<std::array<uint32_t, 4>> sem_lines;  // x, y, id, initial value
        std::vector<std::tuple<uint32_t, uint32_t, uint32_t, std::vector<uint32_t>>> runs;
        while (std::getline(in, line)) {
            std::istringstream ls(line);
            std::string kw;
            ls >> kw;
            if (kw.empty() || kw[0] == '#') continue;
            if (kw == "program") ls >> M.program;
            else if (kw == "fp32_dest_acc") ls >> M.fp32_dest_acc;
            else if (kw == "math_approx") ls >> M.approx;
            else if (kw == "dst_full_sync") ls >> M.full_sync;
            else if (kw == "math_fidelity") ls >> M.math_fidelity;
            else if (kw == "unpack_to_dest_fp32") {
                uint32_t cb;
                while (ls >> cb) {
                    if (cb >= NUM_CBS) throw std::runtime_error("unpack_to_dest_fp32: CB index out of range: " + line);
                    M.unpack_to_dest[cb] = true;
                }
            }
            else if (kw == "timeout_s") ls >> M.timeout_s;
            else if (kw == "perf") perf_path = tab_fields(line).back();
            else if (kw == "tensor") {
                auto t = std::make_unique<Tensor>();
                std::string fmt;
                ls >> t->name >> t->addr >> fmt >> t->num_pages >> t->page_size;
                auto fields = tab_fields(line);  // paths are the last two tab-separated fields (may hold spaces)
                if (fields.size() < 3) throw std::runtime_error("bad tensor line: " + line);
                t->in_path = fields[fields.size() - 2];
                t->out_path = fields.back();
                t->data.assign(size_t(t->num_pages) * t->page_size, 0xff);
                if (t->in_path != "-") {
                    std::ifstream f(t->in_path, std::ios::binary);
                    f.read(reinterpret_cast<char*>(t->data.data()), t->data.size());
                    if (f.gcount() != std::streamsize(t->data.size()))
                        throw std::runtime_error("short input file for tensor " + t->name);
                }
                M.tensors.push_back(std::move(t));
            } else if (kw == "core") {
                std::array<uint32_t, 4> c{};
                if (!(ls >> c[0] >> c[1] >> c[2] >> c[3])) throw std::runtime_error("bad core line: " + line);
                core_list.push_back(c);
            } else if (kw == "worker_noc_x" || kw == "worker_noc_y") {
                auto& v = kw == "worker_noc_x" ? M.worker_noc_x : M.worker_noc_y;
                for (uint32_t c; ls >> c;) v.push_back(c);
            } else if (kw == "sem") {
                std::array<uint32_t, 4> sl{};
                if (!(ls >> sl[0] >> sl[1] >> sl[2] >> sl[3]) || sl[2] >= NUM_SEMAPHORES)
                    throw std::runtime_error("bad sem line: " + line);
                sem_lines.push_back(sl);
            } else if (kw == "cb") {
                uint32_t x, y, idx, n, ps;
                std::string fmt;
                ls >> x >> y >> idx >> fmt >> n >> ps;
                cb_lines.emplace_back(x, y, idx, parse_fmt(fmt), n, ps);
            } else if (kw == "kernel") {
                auto fields = tab_fields(line);  // kernel<TAB>so path<TAB>role:source
                if (fields.size() != 3) throw std::runtime_error("bad kernel line: " + line);
                std::string so = fields[1], name = fields[2];
                void* h = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
                if (!h) throw std::runtime_error(std::string("dlopen failed: ") + dlerror());
                auto entry = reinterpret_cast<void (*)()>(dlsym(h, "_Z11kernel_mainv"));
                if (!entry) throw std::runtime_error("kernel " + name + " defines no `void kernel_main()`");
                kernels.push_back({h, entry});
                kernel_names.push_back(name);
            } else if (kw == "run") {
                uint32_t k, x, y, n;
                ls >> k >> x >> y >> n;
                std::vector<uint32_t> a(n);
                for (auto& v : a) ls >> v;
                runs.emplace_back(k, x, y, a);
            } else {
                throw std::runtime_error("unknown job line: " + line);
            }
        }
        // L1 of every core below 2 GB, so kernels may cast 32-bit L1 addresses to pointers as on a card.
        size_t total = core_list.size() * size_t(L1_SIZE);
        uint8_t* l1 = nullptr;
        if (total) {
            void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
            if (p == MAP_FAILED) throw std::runtime_error("cannot map L1 below 2 GB");
            l1 = static_cast<uint8_t*>(p);
        }
        for (size_t i = 0; i < core_list.size(); i++) {
            auto c = std::make_unique<Core>();
            c->x = core_list[i][0];
            c->y = core_list[i][1];
            c->noc_x = core_list[i][2];
            c->noc_y = core_list[i][3];
            c->l1 = l1 + i * L1_SIZE;
            by_xy[{c->x, c->y}] = c.get();
            M.cores.push_back(std::move(c));
        }
        for (auto& [x, y, id, value] : sem_lines) {
            auto it = by_xy.find({x, y});
            if (it == by_xy.end()) continue;  // a semaphore on a core that runs no kernel: nothing can use it
            it->second->sem_defined[id] = true;
            *it->second->sem_word(id) = value;
        }
        std::map<Core*, uint32_t> next;
        std::sort(cb_lines.begin(), cb_lines.end());
        for (auto& [x, y, idx, fmt, n, ps] : cb_lines) {
            Core* c = by_xy.at({x, y});
            uint32_t& off = next[c];
            if (!off) off = L1_CB_BASE;
            CB& cb = c->cbs[idx];
            cb.defined = true;
            cb.fmt = fmt;
            cb.num_pages = n;
            cb.page_size = ps;
            if (uint64_t(off) + uint64_t(n) * ps > L1_SIZE)
                throw std::runtime_error("CBs overflow L1 on core (" + std::to_string(x) + "," + std::to_string(y) + ")");
            cb.base = c->l1 + off;
            std::memset(cb.base, 0xff, size_t(n) * ps);  // unwritten CB pages read as NaN / garbage, as on a card
            off += (n * ps + 31) / 32 * 32;
        }
        for (auto& [k, x, y, a] : runs) {
            auto t = std::make_unique<Thread>();
            t->core = by_xy.at({x, y});
            std::string name = kernel_names.at(k);
            t->role = name.substr(0, name.find(':'));
            t->kernel = name.substr(name.find(':') + 1);
            t->entry = kernels.at(k).entry;
            t->args = a;
            if (t->role == "compute") {
                t->dst.assign(16 * size_t(TILE_HW), 0.0f);
                t->dst_fresh.assign(16, true);
            }
            M.threads.push_back(std::move(t));
        }
    } catch (std::exception& e) {
        write_err(std::string("bad emulator job: ") + e.what());
        return 2;
    }

    M.alive = int(M.threads.size());
    std::vector<std::thread> ths;
    for (auto& t : M.threads) ths.emplace_back(thread_main, t.get());
    // Watchdog: a kernel spinning without calling the API can't be interrupted; report and give up.
    auto start = std::chrono::steady_clock::now();
    while (true) {
        {
            std::unique_lock<std::mutex> lk(M.mu);
            M.all_done.wait_for(lk, std::chrono::milliseconds(100), [] { return M.alive == 0; });
            if (M.alive == 0) break;
            double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (el > M.timeout_s && !M.aborted) {
                M.aborted = true;
                M.error = "timeout after " + std::to_string(int(M.timeout_s)) +
                          " s (a kernel loops without progress)" + wait_report_locked();
                notify_all_locked();
            }
            if (M.aborted && el > M.timeout_s + 2) {
                write_err(M.error);
                std::fflush(nullptr);
                _exit(1);
            }
        }
    }
    for (auto& th : ths) th.join();
    if (M.aborted) {
        write_err(M.error);
        return 1;
    }
    std::string left = leftover_pages();
    if (!left.empty()) {
        write_err("program " + M.program + " finished with pages left in circular buffers (a missing cb_pop_front "
                  "or an extra cb_push_back):" + left);
        return 1;
    }
    for (auto& t : M.tensors) {
        if (t->out_path == "-") continue;
        std::ofstream f(t->out_path, std::ios::binary);
        f.write(reinterpret_cast<const char*>(t->data.data()), t->data.size());
    }
    if (!perf_path.empty()) {
        std::FILE* f = std::fopen(perf_path.c_str(), "w");
        if (!f) {
            write_err("cannot write the performance counters to " + perf_path);
            return 2;
        }
        for (auto& t : M.threads) {
            std::fprintf(f, "thread %u %u %s %s\n", t->core->x, t->core->y, t->role.c_str(), t->kernel.c_str());
            t->perf.write(f);
        }
        std::fclose(f);
    }
    return 0;
}
