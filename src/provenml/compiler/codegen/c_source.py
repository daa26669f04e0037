"""The C text of the backend: the translation unit's header, the kernel signature, C
expressions of the elementwise ops, and the register-tile micro-kernel helper (survey Sec. 4.4,
"code generation")."""

from __future__ import annotations

from collections.abc import Callable

from provenml.compiler import loopir as L
from provenml.compiler.codegen.erf import ERF_C
from provenml.compiler.ir import MATH_UNARY, Node
from provenml.errors import ProvenmlError

SIGNATURE = (
    "const void** in, void** out, float* arena, const float* cst, const int tid, const int nth"
)
ARGS = "in, out, arena, cst, tid, nth"

# The largest scratch array a kernel declares on its thread's stack, in bytes. Arrays sized by
# the tensor (a reduction's per-column accumulators, a row buffer, a convolution's output
# plane) beyond it come from the heap (``pm_scratch``): a thread's stack is 8 MiB in all, and
# before stop 62 ``torch.cumsum(x, 0)`` of a (3, 1_500_000) tensor overflowed it (a
# segmentation fault). Every array of the experiments' models is far below the limit, so
# their generated code is unchanged.
STACK_SCRATCH_BYTES = 1 << 18
_C_SIZES = {"float": 4, "double": 8, "long long": 8}


def local_array(ctype: str, name: str, count: int | str) -> tuple[str, str]:
    """The C declaration of a kernel's scratch array ``name`` of ``count`` ``ctype`` values
    and the statement that releases it (empty for a stack array): on the stack up to
    :data:`STACK_SCRATCH_BYTES`, else from the heap."""
    if isinstance(count, int) and count * _C_SIZES[ctype] <= STACK_SCRATCH_BYTES:
        return f"{ctype} {name}[{count}];", ""
    return (
        f"{ctype}* restrict {name} = ({ctype}*)pm_scratch((size_t)({count}) * sizeof({ctype}));",
        f"free({name});",
    )


def released(*releases: str) -> list[L.Stmt]:
    """The statements that free a kernel's heap scratch arrays (:func:`local_array`'s second
    values; none for stack arrays), to end the loop body that declared them."""
    return [L.Stmt(r) for r in releases if r]


C_HEADER = (
    """/* glibc declares its vector maths (libmvec: expf, logf, tanhf, erff, ... over 4, 8 and
   16 floats) only where __FAST_MATH__ is defined, which -fno-finite-math-only (build.FLAGS,
   stop 68) turns off; defined here around <math.h> alone, the loops keep calling the vector
   forms (whose special cases, inf and NaN, follow the scalar functions) */
#ifndef __FAST_MATH__
#define __FAST_MATH__ 1
#include <math.h>
#undef __FAST_MATH__
#else
#include <math.h>
#endif
#include <string.h>
#include <stdlib.h>
#include <float.h>
#include <stdio.h>
#include <omp.h>
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
static int pm_threads = 1;
void pm_set_threads(int n) { pm_threads = n; }
/* Run-time errors (stop 60): the first out-of-range index or integer division by zero of a
   call, as (kind, site, value, limit); the kernel that meets one records it and goes on
   without reading or writing out of bounds, and the caller reads pm_error after the call
   (an exported array: one memory read, where a ctypes call cost 650 ns), clears it and
   raises. Kinds: PM_BAD_ROW (a row index of a gather or scatter; site: the node's number in
   the program's error sites), PM_ZERO_DIVISION, PM_BAD_INDEX (an index of one dimension,
   checked by the ``bounded`` op before it becomes a flat position), PM_BAD_WRAPPED_INDEX
   (stop 61: the same where a negative index counts from the end, ``bounded`` with
   ``wrap_negative``; the value recorded is the index as given, not wrapped). */
#define PM_BAD_ROW 1
#define PM_ZERO_DIVISION 2
#define PM_BAD_INDEX 3
#define PM_BAD_WRAPPED_INDEX 4
long long pm_error[4];
/* A kernel's scratch array too large for a thread's stack (codegen.c_source.local_array, stop
   62): taken from the heap and freed by the kernel; no memory ends the process with a
   message (as a stack overflow would have, without one). */
/* log|Gamma(x)| (torch.lgamma) through glibc's reentrant form: lgammaf writes the sign to a
   global, which the kernels' threads would share */
static inline float pm_lgamma(float x) {
  int sign;
  return lgammaf_r(x, &sign);
}
static inline void* pm_scratch(size_t bytes) {
  void* p = malloc(bytes);
  if (!p) {
    fprintf(stderr, "provenml: no memory for a kernel's %zu-byte scratch array\\n", bytes);
    abort();
  }
  return p;
}
static void pm_fail(long long kind, long long site, long long value, long long limit) {
  long long none = 0;
  if (__atomic_compare_exchange_n(&pm_error[0], &none, kind, 0, __ATOMIC_RELAXED,
                                  __ATOMIC_RELAXED)) {
    pm_error[1] = site;
    pm_error[2] = value;
    pm_error[3] = limit;
  }
}
/* an index of a dimension of ``n``: itself when 0 <= i < n, else recorded (``site``: the
   node's number, 0 if none) and 0 */
static inline long long pm_bounded(long long i, long long n, long long site) {
  if (i < 0 || i >= n) {
    pm_fail(PM_BAD_INDEX, site, i, n);
    return 0;
  }
  return i;
}
/* an index of a dimension of ``n`` where a negative one counts from the end (``x[ids]``, ONNX's
   element gathers and scatters): i + n for -n <= i < 0, i for 0 <= i < n, else recorded as
   given and 0 */
static inline long long pm_bounded_wrap(long long i, long long n, long long site) {
  if (i < -n || i >= n) {
    pm_fail(PM_BAD_WRAPPED_INDEX, site, i, n);
    return 0;
  }
  return i < 0 ? i + n : i;
}
/* floor division and a remainder with the divisor's sign (Python's and PyTorch's); an integer
   division by zero is recorded (the caller raises, as PyTorch does) and gives 0 */
static inline long long pm_floor_divide(long long a, long long b) {
  if (b == 0) {
    pm_fail(PM_ZERO_DIVISION, 0, a, 0);
    return 0;
  }
  const long long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline long long pm_remainder(long long a, long long b) {
  if (b == 0) {
    pm_fail(PM_ZERO_DIVISION, 0, a, 0);
    return 0;
  }
  const long long r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline float pm_floor_dividef(float a, float b) {  /* Python's divmod algorithm */
  if (b == 0.f) return a / b;
  const float r = fmodf(a, b);
  float q = (a - r) / b;
  if (r != 0.f && ((r < 0.f) != (b < 0.f))) q -= 1.f;
  if (q == 0.f) return copysignf(0.f, a / b);
  const float f = floorf(q);
  return q - f > 0.5f ? f + 1.f : f;
}
/* C's truncating division and remainder of integers (ONNX's integer Div and Mod fmod=1,
   PyTorch's rounding_mode="trunc" and fmod; stop 60), a zero divisor recorded as above */
static inline long long pm_trunc_divide(long long a, long long b) {
  if (b == 0) {
    pm_fail(PM_ZERO_DIVISION, 0, a, 0);
    return 0;
  }
  return a / b;
}
static inline long long pm_fmod(long long a, long long b) {
  if (b == 0) {
    pm_fail(PM_ZERO_DIVISION, 0, a, 0);
    return 0;
  }
  return a % b;
}
/* PyTorch's trunc(a / b) of floats: the quotient in double, stored through a volatile so
   that -ffast-math can neither do it in float nor with float's approximate reciprocal (which
   gave -9 / -4.5 = 1.9999999, truncated to 1); double's error cannot move an exact integer
   quotient across it once rounded to float */
static inline float pm_trunc_dividef(float a, float b) {
  volatile double quotient = (double)a / (double)b;
  return truncf((float)quotient);
}
static inline float pm_remainderf(float a, float b) {
  const float r = fmodf(a, b);
  return (r != 0.f && ((r < 0.f) != (b < 0.f))) ? r + b : r;
}
/* NaN test on the float's bits (written when the kernels were built with finite-math, which
   folded x != x and isnan() to 0; exact either way) */
static inline int pm_isnan(float x) {
  unsigned int u;
  memcpy(&u, &x, sizeof u);
  return (u & 0x7fffffffu) > 0x7f800000u;
}
/* a NaN made from x's bits (exponent all ones, the quiet bit set; a NaN x keeps its payload):
   a max pool whose window held a NaN returns it of its maximum (stop 67) */
static inline float pm_as_nan(float x) {
  unsigned int u;
  memcpy(&u, &x, sizeof u);
  u |= 0x7fc00000u;
  memcpy(&x, &u, sizeof x);
  return x;
}
/* maximum / minimum as PyTorch's (stop 67): a NaN operand gives NaN. fmaxf / fminf return the
   other operand. Since stop 68 (IEEE comparisons: no finite-math) one NaN test suffices:
   `b > a ? b : a` is a when a is NaN (the comparison is false), and b's NaN is tested; with a
   constant b (ReLU's 0, a clamp's bound) the test folds away and the select is x86's
   maxps(b, a) / minps(b, a) exactly, which return their second operand for a NaN */
static inline float pm_maxf(float a, float b) {
  return pm_isnan(b) ? b : (b > a ? b : a);
}
static inline float pm_minf(float a, float b) {
  return pm_isnan(b) ? b : (b < a ? b : a);
}
/* topk / sort (stop 59): (value, position) pairs ordered by value, then position; a NaN is
   larger than any number, as PyTorch sorts it */
typedef struct { float v; long long i; } pm_pair;
static inline int pm_pair_order(const void* pa, const void* pb, int largest_first) {
  const pm_pair* a = (const pm_pair*)pa;
  const pm_pair* b = (const pm_pair*)pb;
  const int na = pm_isnan(a->v), nb = pm_isnan(b->v);
  if (na != nb) return (na == largest_first) ? -1 : 1;
  if (!na && a->v != b->v) return ((a->v > b->v) == largest_first) ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}
static int pm_pair_desc(const void* a, const void* b) { return pm_pair_order(a, b, 1); }
static int pm_pair_asc(const void* a, const void* b) { return pm_pair_order(a, b, 0); }
"""
    + ERF_C
    + L.PARTITION_C
    + "\n"
)

VLEN = 8  # floats per vector of the micro-kernel's default (256-bit) path
VLEN_WIDE = 16  # floats per vector of the 512-bit path (AVX-512 build machines, schedule vec=16)


def microkernel(mr: int, nr: int, ku: int, vlen: int = VLEN) -> tuple[str, str]:
    """C source of the ``mr x nr`` register-tile micro-kernel (name, code).

    ``acc[mr][nr] += A[mr, K] @ B[K, nr]`` with ``A`` rows ``lda`` apart and ``B`` rows ``ldb``
    apart: ``mr * nr / vlen`` accumulators are named vector locals (never an array, which gcc
    may keep on the stack), each k step loads ``nr / vlen`` vectors of ``B``, broadcasts one
    ``A`` element per row and issues ``mr * nr / vlen`` fused multiply-adds. ``vlen`` is the
    vector width in floats: 8 (256-bit, ymm) or 16 (512-bit, zmm; the caller offers it only
    where the build machine has AVX-512, elsewhere gcc would split each vector in two). Every
    accumulator element sums over k in the same order whatever ``vlen``, ``mr`` or ``nr``.
    It accumulates into ``acc`` so a caller can split K (the convolution's kh/kw loops).
    Guarded by a macro so several kernels (or tuning candidates) in one translation unit
    share it."""
    if vlen not in (VLEN, VLEN_WIDE) or nr % vlen:
        raise ProvenmlError(f"codegen: micro-kernel nr={nr} is not a multiple of vlen={vlen}")
    nv = nr // vlen
    vt = f"pm_v{vlen}"
    name = f"pm_ukr_{mr}x{nr}_u{ku}" + ("" if vlen == VLEN else f"_v{vlen}")
    guard = name.upper()
    cs = [[f"c{i}_{j}" for j in range(nv)] for i in range(mr)]
    lines = [
        f"#ifndef {vt.upper()}_DEFINED",
        f"#define {vt.upper()}_DEFINED",
        f"typedef float {vt} __attribute__((vector_size({4 * vlen}), aligned(4)));",
        "#endif",
        f"#ifndef {guard}",
        f"#define {guard}",
        f"static inline __attribute__((always_inline)) void {name}(long K, const float* restrict a,"
        " long lda, const float* restrict b, long ldb, float* restrict acc) {",
    ]
    for i in range(mr):
        for j in range(nv):
            lines.append(f"  {vt} {cs[i][j]} = *(const {vt}*)(acc + {i * nr + j * vlen});")
    lines += [f"  #pragma GCC unroll {max(1, ku)}", "  for (long k = 0; k < K; ++k) {"]
    for j in range(nv):
        lines.append(f"    const {vt} b{j} = *(const {vt}*)(b + k*ldb + {j * vlen});")
    for i in range(mr):
        bcast = ", ".join(["s"] * vlen)
        upd = " ".join(f"{cs[i][j]} += av * b{j};" for j in range(nv))
        lines.append(
            f"    {{ const float s = a[{i}*lda + k]; const {vt} av = {{{bcast}}}; {upd} }}"
        )
    lines.append("  }")
    for i in range(mr):
        for j in range(nv):
            lines.append(f"  *({vt}*)(acc + {i * nr + j * vlen}) = {cs[i][j]};")
    lines += ["}", "#endif"]
    return name, "\n".join(lines)


# The worker-pool runtime (``compile(..., runtime="pool")``, issue 23 item 1): persistent
# threads instead of one OpenMP fork/join per call; every kernel piece ("stage") is cut into
# chunks that threads claim with an atomic counter, and a stage waits only for the completion
# counters of the stages it depends on (no barrier, no join), so a thread that loses its core
# delays only the chunk it holds. Idle workers spin, then yield, then sleep on a futex. Claims
# carry the call's generation in their upper 32 bits, so a worker that wakes up late can never
# run a chunk of a call that has ended. Linux (futex) and GCC atomics.
#
# Adaptive fallback (issue 23 item 1, "a runtime that does not wait for a descheduled thread"):
# every team call measures its wall time, the time the caller waited for chunks other threads
# held, and how many chunks it ran itself; (working time) x (all chunks / its chunks) estimates
# the call on one thread. When the running mean of team call times exceeds that of the
# estimates by PM_AD_MARGIN (judged after PM_AD_WINDOW calls), the next calls run on the caller
# alone, every stage whole (the one-thread path, the same bits), workers left parked, for a
# back-off that doubles after each losing probe (PM_AD_FIRST .. PM_AD_CAP calls); then the team
# is probed again. Only the schedule changes, never the numbers.
POOL_RUNTIME_C = r"""
#include <pthread.h>
#include <sched.h>
#include <limits.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
typedef void (*pm_stage_fn)(const void**, void**, float*, const float*, const int, const int);
typedef struct { pm_stage_fn fn; int nchunks; int dep0; int ndeps; } pm_stage_t;
typedef struct {
  const pm_stage_t* stages; const int* deps; int nstages; int ranges;
  unsigned long long* next; int* done;
  const void** in; void** out; float* arena; const float* cst;
} pm_job_t;
static pm_job_t pm_job;
static int pm_gen = 0;          /* the current call's generation (futex word) */
static int pm_sleepers = 0;     /* workers asleep on pm_gen */
static int pm_park = 0;         /* 1: idle workers sleep at once (a back-off has begun) */
static int pm_workers = 0;      /* worker threads started */
static int pm_team = 0;         /* workers taking part in calls (pm_threads - 1) */
static pthread_mutex_t pm_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pm_call_lock = PTHREAD_MUTEX_INITIALIZER;  /* one call at a time */
#define PM_SPIN 4000
/* Chunk claiming with affinity: a stage's chunks are cut into one contiguous range per
   thread (at most PM_RANGES), each with its own claim counter (``next[s * PM_RANGES + r]``).
   A thread claims from its own range first and then from the others', so on an idle machine
   thread t runs the same chunks every call (the weights and outputs it touched stay in its
   core's cache), and a thread that loses its core still has its range finished by the rest. */
#define PM_RANGES 8
/* Adaptive fallback: state read and written only under pm_call_lock. */
#define PM_AD_WINDOW 4      /* team calls measured before the first verdict (a probe) */
#define PM_AD_FIRST 16      /* the first back-off, in calls run by the caller alone */
#define PM_AD_CAP 1024      /* the longest back-off, in calls ... */
#define PM_AD_CAP_NS 250000000.0  /* ... or in time, if longer: a probe that lands on a busy
                                     core costs about one scheduler slice (a few ms), so short
                                     calls back off for up to 0.25 s, not 1024 calls */
#define PM_AD_PROBE_COST 128.0  /* a back-off lasts at least this x the lost probe's time, */
#define PM_AD_SHORT_NS 100000.0  /* for calls shorter than this alone (100 us), where one lost
                                    scheduler slice costs hundreds of calls. Longer calls
                                    only double: with the floor, a transformer block (0.6 ms)
                                    that lost one probe idle ran ~330 calls alone, and
                                    compiler.end_to_end timed it at one-thread speed (stop 35) */
#define PM_AD_MARGIN 1.00   /* the team loses when its mean time > this x the one-thread
                               estimate (stop 34 tried the measured alone calls instead: the
                               team then lost transient contests idle; docs/compiler_history.md).
                               1.05 until stop 39, when the estimate was calibrated per build
                               (pm_set_one_scale): with an unbiased estimate a margin above 1
                               keeps a team slower than one thread. Stop 37's reason for 1.05
                               (mlp:1's idle gain, 1.10 -> 1.00) was gone by stop 39 (idle
                               0.98-1.01 at 1.05); under the background load, alternating
                               builds: transformer 2T/1T 0.94-1.00 at 1.05, 0.97-1.00 at 1.00 */
#define PM_AD_EWMA 8        /* running means: plain mean of the first 8 samples, then 1/8 ... */
#define PM_AD_SPAN_NS 4000000.0  /* ... or, for short calls, 1/N with N calls of the team's mean
                                    filling 4 ms (at most PM_AD_EWMA_MAX). With 1/8 one idle
                                    hiccup of ~100 us lost the verdict of a 14 us call (mlp:8,
                                    team 14 us, alone 20 us), every few thousand calls, and the
                                    back-off ran it alone 27-60% of an idle run (stop 45); a
                                    4 ms memory absorbs such spikes, while one scheduler slice
                                    of a busy core (ms) still loses it at once */
#define PM_AD_EWMA_MAX 512
/* Load-aware probes (stop 40): when a back-off runs out, the team is probed only if a core is
   free for it. Over a back-off of at least PM_AD_IDLE_MIN_NS the machine's idle CPU time
   (/proc/stat) must reach PM_AD_IDLE_SHARE of what the team's other threads would need, and
   at the moment of the probe the runnable threads (/proc/loadavg, the caller among them) plus
   the team's other threads must fit the online CPUs; else a back-off twice as long starts
   without waking the team. Under a steady background load a probe cost up to a scheduler
   slice each (the woken worker preempted the caller or found no core), 1-3% of a short
   call's time; an idle machine probes as before. What cannot be read does not block a
   probe. A fresh state's first call applies the runnable-thread test too (stop 41). */
#define PM_AD_IDLE_MIN_NS 50000000LL  /* /proc/stat counts in 10 ms ticks: judge >= 50 ms */
#define PM_AD_IDLE_SHARE 0.5
static int pm_adaptive = 1;          /* 0: the team runs every call (pm_set_adaptive) */
static int pm_ad_force = 0;          /* test hook: 1 every verdict lost, -1 won, 0 measured */
static double pm_ad_scale = 1.0;     /* the one-thread estimate x this (pm_set_one_scale) */
static int pm_ad_threads = 0;        /* the thread count the state below belongs to */
static int pm_ad_n = 0;              /* team calls judged since the team was (re)started */
static int pm_ad_samples = 0;        /* of those, calls that gave an estimate */
static double pm_ad_team = 0.0;      /* running mean of team call times (ns) */
static double pm_ad_one = 0.0;       /* running mean of their one-thread estimates (ns) */
static double pm_ad_alone = 0.0;     /* running mean of the calls run alone (ns; reported) */
static int pm_ad_alone_n = 0;        /* alone calls in that mean */
static int pm_ad_walls = 0;          /* team calls timed since the probe began */
static int pm_ad_last_woke = 0;      /* the last team call had to wake sleeping workers */
static long long pm_ad_left = 0;     /* calls still to run alone */
static long long pm_ad_backoff = 0;  /* length of the last back-off (0: none since a win) */
static long long pm_ad_team_calls = 0, pm_ad_alone_calls = 0, pm_ad_losses = 0;
static long long pm_ad_skipped = 0;  /* probes skipped because the other cores were busy */
static int pm_ad_force_busy = 0;     /* test hook: 1 the other cores count as busy, -1 idle */
static int pm_ad_started = 0;        /* a call has run since the state was (re)set */
static double pm_cpu_idle0 = -1.0;   /* idle CPU seconds (all CPUs) when the back-off began */
static long long pm_cpu_t0 = 0;      /* ... and when (ns) */
static double pm_cpu_own0 = 0.0;     /* ... and this process's other threads' CPU seconds */
static inline long long pm_now(void) {  /* monotonic ns (vDSO: no system call) */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
/* The profiler (CompiledGraph.profile): while on, every chunk run appends (thread, stage,
   chunk, start ns, end ns); one predictable branch per chunk while off. */
#define PM_PROF_MAX 262144
static long long pm_prof[PM_PROF_MAX][5];
static int pm_prof_n = 0, pm_prof_on = 0;
void pm_profile(int on) { if (on) pm_prof_n = 0; pm_prof_on = on; }
int pm_profile_count(void) { return pm_prof_n < PM_PROF_MAX ? pm_prof_n : PM_PROF_MAX; }
int pm_profile_get(long long* out, int max) {
  const int n = pm_prof_n < PM_PROF_MAX ? pm_prof_n : PM_PROF_MAX;
  const int m = n < max ? n : max;
  memcpy(out, pm_prof, sizeof(long long) * 5 * (size_t)m);
  return m;
}
static inline void pm_prof_add(int id, int stage, int chunk, long long t0) {
  const int i = __atomic_fetch_add(&pm_prof_n, 1, __ATOMIC_RELAXED);
  if (i >= PM_PROF_MAX) return;
  pm_prof[i][0] = id; pm_prof[i][1] = stage; pm_prof[i][2] = chunk;
  pm_prof[i][3] = t0; pm_prof[i][4] = pm_now();
}
/* The start of a small /proc file, NUL-terminated, in buf; 0 where it cannot be read. */
static int pm_read_proc(const char* path, char* buf, int size) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const ssize_t n = read(fd, buf, (size_t)size - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  return 1;
}
/* The machine's idle CPU time so far, in seconds summed over CPUs (idle + iowait of the
   aggregate "cpu" line of /proc/stat); -1 where it cannot be read. */
double pm_cpu_idle_seconds(void) {
  char buf[256];
  unsigned long long user, nice, sys, idle, iowait;
  if (!pm_read_proc("/proc/stat", buf, sizeof buf) ||
      sscanf(buf, "cpu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait) != 5)
    return -1.0;
  const long hz = sysconf(_SC_CLK_TCK);
  return (double)(idle + iowait) / (double)(hz > 0 ? hz : 100);
}
/* Threads runnable on the machine right now (the fourth field of /proc/loadavg, "R/T"; the
   reading thread is one of them); -1 where it cannot be read. */
int pm_cpu_running(void) {
  char buf[128];
  int running = -1;
  if (!pm_read_proc("/proc/loadavg", buf, sizeof buf) ||
      sscanf(buf, "%*f %*f %*f %d/", &running) != 1)
    return -1;
  return running;
}
/* CPU seconds of this process's threads other than the calling one (the process's CPU clock
   less the caller's): the program's own work between compiled calls, e.g. PyTorch's or ONNX
   Runtime's threads, which do not run beside a compiled call and so are no load on it. */
double pm_cpu_own_others_seconds(void) {
  struct timespec proc, self;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &proc) != 0 ||
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &self) != 0)
    return 0.0;
  const double others = (double)(proc.tv_sec - self.tv_sec) +
                        1e-9 * (double)(proc.tv_nsec - self.tv_nsec);
  return others > 0.0 ? others : 0.0;
}
static void pm_cpu_snapshot(void) {  /* a back-off begins (lock held) */
  pm_cpu_idle0 = pm_ad_force_busy || pm_ad_force ? 0.0 : pm_cpu_idle_seconds();
  pm_cpu_own0 = pm_cpu_own_others_seconds();
  pm_cpu_t0 = pm_now();
}
/* 1 if the threads runnable right now (the caller among them) leave no core for the team's
   other threads; 0 if they do, or if that cannot be read. The test hooks decide instead
   when set (forced verdicts: the load is not measured either). */
static int pm_cpu_no_free_core(void) {
  if (pm_ad_force_busy) return pm_ad_force_busy > 0;
  if (pm_ad_force) return 0;
  const int running = pm_cpu_running();
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return running > 0 && cpus > 0 && running + pm_threads - 1 > cpus;
}
/* A back-off has run out (lock held): 1 if the other cores were too busy over it for the
   team to win (skip the probe, and start the next interval), 0 to probe. */
static int pm_cpu_busy(void) {
  if (pm_ad_force_busy || pm_ad_force) return pm_cpu_no_free_core();  /* the test hooks */
  const long long elapsed = pm_now() - pm_cpu_t0;
  if (pm_cpu_idle0 >= 0.0 && elapsed >= PM_AD_IDLE_MIN_NS) {
    const double idle = pm_cpu_idle_seconds();
    if (idle >= 0.0) {
      /* the other cores' time that was idle or ran this program's own other threads (stop
         45: compiler.end_to_end's eager and ONNX Runtime arms, timed between this build's
         samples, counted as a busy machine, every probe was skipped and a build stayed
         alone at one-thread speed for the rest of its rounds) */
      const double own = pm_cpu_own_others_seconds();
      const double seconds = 1e-9 * (double)elapsed;
      double own_share = own - pm_cpu_own0;
      if (own_share < 0.0) own_share = 0.0;  /* another calling thread: its clock differs */
      const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
      if (cpus > 1 && own_share > seconds * (double)(cpus - 1))
        own_share = seconds * (double)(cpus - 1);
      const double need = PM_AD_IDLE_SHARE * seconds * (double)(pm_threads - 1);
      const int busy = idle - pm_cpu_idle0 + own_share < need;
      pm_cpu_idle0 = idle;
      pm_cpu_own0 = own;
      pm_cpu_t0 = pm_now();
      if (busy) return 1;
    }
  }
  return pm_cpu_no_free_core();
}
/* A back-off of ``calls`` calls begins (lock held): the workers would spin for about a
   millisecond before sleeping, competing with the caller for the busy cores, so they are
   sent to sleep now; the machine's idle time is read for the probe that ends it. */
static void pm_ad_begin_backoff(long long calls) {
  pm_ad_backoff = pm_ad_left = calls;
  __atomic_store_n(&pm_park, 1, __ATOMIC_RELEASE);
  pm_cpu_snapshot();
}
/* Idle workers sleep now instead of spinning for a few milliseconds: called between the
   samples of builds timed against each other in one process (api.settle_ties), so that one
   build's spinning workers do not share a core with the next build's call. */
void pm_pool_park(void) { __atomic_store_n(&pm_park, 1, __ATOMIC_RELEASE); }
/* Test hook: 1 makes every ended back-off (and a fresh state's first call) find the other
   cores busy, -1 idle, 0 measures. */
void pm_debug_force_busy(int busy) {
  pthread_mutex_lock(&pm_call_lock);
  pm_ad_force_busy = busy > 0 ? 1 : (busy < 0 ? -1 : 0);
  pthread_mutex_unlock(&pm_call_lock);
}
static inline void pm_run_alone(const pm_stage_t* stages, int nstages, const void** in,
                                void** out, float* arena, const float* cst) {
  for (int s = 0; s < nstages; ++s) {
    const long long t0 = pm_prof_on ? pm_now() : 0;
    stages[s].fn(in, out, arena, cst, 0, 1);
    if (pm_prof_on) pm_prof_add(0, s, 0, t0);
  }
}
static void pm_ad_reset(void) {  /* forget the measurements and any back-off (lock held) */
  pm_ad_n = pm_ad_samples = pm_ad_walls = 0;
  pm_ad_team = pm_ad_one = pm_ad_alone = 0.0;
  pm_ad_alone_n = 0;
  pm_ad_left = pm_ad_backoff = 0;
  pm_ad_threads = pm_threads;
  pm_ad_started = 0;
}
/* Adaptation on (1, the default) or off (0: the team runs every call); resets its state. */
void pm_set_adaptive(int on) {
  pthread_mutex_lock(&pm_call_lock);
  pm_adaptive = on != 0;
  pm_ad_reset();
  pthread_mutex_unlock(&pm_call_lock);
}
/* Test hook: 1 makes every verdict "the team lost", -1 "the team won", 0 measures again. */
void pm_debug_force_verdict(int verdict) {
  pthread_mutex_lock(&pm_call_lock);
  pm_ad_force = verdict > 0 ? 1 : (verdict < 0 ? -1 : 0);
  pthread_mutex_unlock(&pm_call_lock);
}
/* The caller's chunks run 5-10% longer in a team than alone (they read what the other core
   wrote), so the estimate "the caller's chunk time x chunks / chunks it ran" overstates a
   one-thread call by that much, and the team was kept while up to ~13% slower than one
   thread (stop 39). The build measures the factor idle (CompiledGraph.calibrate_fallback)
   and sets it here; this also forgets the measurements made with the old factor. */
void pm_set_one_scale(double scale) {
  pthread_mutex_lock(&pm_call_lock);
  pm_ad_scale = scale > 0.0 ? scale : 1.0;
  pm_ad_n = pm_ad_samples = pm_ad_walls = 0;
  pm_ad_team = pm_ad_one = 0.0;
  pthread_mutex_unlock(&pm_call_lock);
}
/* out[0] calls run as a team, out[1] calls run alone by the fallback, out[2] the last
   back-off (calls; 0 since a won probe), out[3] calls still to run alone, out[4] verdicts
   lost, out[5] 1000 x team mean / one-thread estimate (-1 before a sample), out[6] adaptive,
   out[7] the mean of the calls run alone (ns; -1 before any), out[8] the team's mean call
   time (ns; -1 before any), out[9] 1000 x the one-thread estimate's scale, out[10] probes
   skipped because the other cores were busy. */
void pm_pool_stats(long long* out) {
  pthread_mutex_lock(&pm_call_lock);
  out[0] = pm_ad_team_calls;
  out[1] = pm_ad_alone_calls;
  out[2] = pm_ad_backoff;
  out[3] = pm_ad_left;
  out[4] = pm_ad_losses;
  out[5] = pm_ad_samples > 0 && pm_ad_one > 0.0
               ? (long long)(1000.0 * pm_ad_team / pm_ad_one) : -1;
  out[6] = pm_adaptive;
  out[7] = pm_ad_alone_n > 0 ? (long long)pm_ad_alone : -1;
  out[8] = pm_ad_walls > 0 ? (long long)pm_ad_team : -1;
  out[9] = (long long)(1000.0 * pm_ad_scale + 0.5);
  out[10] = pm_ad_skipped;
  pthread_mutex_unlock(&pm_call_lock);
}
/* The back-off (calls) after a lost probe: twice the last one (PM_AD_FIRST the first time),
   for calls shorter than PM_AD_SHORT_NS at least PM_AD_PROBE_COST x the lost probe's time
   (``probe_ns``) in calls of ``alone_ns`` each, and at most PM_AD_CAP calls or
   PM_AD_CAP_NS of calls alone, whichever is longer.
   With no times (``alone_ns`` <= 0) it only doubles, up to PM_AD_CAP. */
long long pm_ad_next_backoff(long long last, double probe_ns, double alone_ns) {
  long long next = last ? 2 * last : PM_AD_FIRST;
  long long cap = PM_AD_CAP;
  if (alone_ns > 0.0) {
    if (PM_AD_CAP_NS / alone_ns > (double)cap) cap = (long long)(PM_AD_CAP_NS / alone_ns);
    const double floor_calls =
        alone_ns < PM_AD_SHORT_NS ? PM_AD_PROBE_COST * probe_ns / alone_ns : 0.0;
    if (floor_calls > (double)next) next = floor_calls < (double)cap ? (long long)floor_calls : cap;
  }
  return next < cap ? next : cap;
}
/* The running means' weight for their ``n``-th sample: a plain mean of the first samples, then
   an EWMA whose memory is PM_AD_EWMA calls, or PM_AD_SPAN_NS of calls at the team's mean if
   that is more (short calls), at most PM_AD_EWMA_MAX. */
static double pm_ad_weight(int n) {
  const double span = pm_ad_team > 0.0 ? PM_AD_SPAN_NS / pm_ad_team : 0.0;
  const double memory =
      span < PM_AD_EWMA ? PM_AD_EWMA : (span < PM_AD_EWMA_MAX ? span : PM_AD_EWMA_MAX);
  return 1.0 / ((double)n < memory ? (double)n : memory);
}
/* One team call measured (lock held): ``wall`` its time, ``work`` the caller's time in
   pm_work less its dependency waits, ``ran`` of ``total`` chunks run by the caller; ``fresh``
   when the call started worker threads or woke the ones a back-off parked (its time says
   nothing about the team's steady state). */
static void pm_ad_judge(long long wall, long long work, int ran, int total, int fresh) {
  const int valid = !fresh && ran > 0 && work > 0;
  if (fresh && !pm_ad_force) return;
  ++pm_ad_n;
  const double a_one = pm_ad_weight(pm_ad_samples + 1);  /* both means on one memory */
  if (!fresh) {  /* the team's wall time */
    ++pm_ad_walls;
    pm_ad_team += pm_ad_weight(pm_ad_walls) * ((double)wall - pm_ad_team);
  }
  if (valid) {  /* one thread would have run all chunks at the caller's pace */
    const double one = pm_ad_scale * (double)work * (double)total / (double)ran;
    ++pm_ad_samples;
    pm_ad_one += a_one * (one - pm_ad_one);
  }
  if (pm_ad_n < PM_AD_WINDOW) return;
  const int lost = pm_ad_force ? pm_ad_force > 0
                               : pm_ad_samples > 0 && pm_ad_team > PM_AD_MARGIN * pm_ad_one;
  if (lost) {  /* back off: run alone, twice as long as last time (capped) */
    /* a forced verdict (tests) only doubles; a measured one also weighs the probe's cost */
    const double one = pm_ad_force ? 0.0 : pm_ad_one;
    /* the lost probe's cost: its PM_AD_WINDOW calls at the team's mean (a verdict lost
       after a long winning run is not a probe of thousands of calls: pm_ad_walls counted
       them all, and every such loss backed off for the 0.25 s cap) */
    const int probe_calls = pm_ad_walls < PM_AD_WINDOW ? pm_ad_walls : PM_AD_WINDOW;
    pm_ad_begin_backoff(pm_ad_next_backoff(pm_ad_backoff, pm_ad_team * probe_calls, one));
    ++pm_ad_losses;
    pm_ad_n = pm_ad_samples = pm_ad_walls = 0;  /* the next probe starts from fresh means */
  } else if (pm_ad_n == PM_AD_WINDOW) {  /* a won probe halves the next back-off */
    pm_ad_backoff /= 2;
    if (pm_ad_backoff < PM_AD_FIRST) pm_ad_backoff = 0;
  }
}
/* Test hook: judge one team call with the given times (ns), as a measured call would be. */
void pm_debug_judge(long long wall, long long work, int ran, int total) {
  pthread_mutex_lock(&pm_call_lock);
  pm_ad_judge(wall, work, ran, total, 0);
  pthread_mutex_unlock(&pm_call_lock);
}
static inline void pm_relax(int* spins) {
#if defined(__x86_64__) || defined(__i386__)
  if (++*spins < PM_SPIN) { __builtin_ia32_pause(); return; }
#else
  if (++*spins < PM_SPIN) return;
#endif
  sched_yield();
}
/* Run the call's chunks until none is left to claim. The caller passes ``waited`` and
   ``ran`` (workers NULL): time spent waiting for dependencies (ns) and chunks it ran. */
static void pm_work(const pm_job_t* job, int id, int gen, long long* waited, int* ran) {
  for (int s = 0; s < job->nstages; ++s) {
    const pm_stage_t* st = &job->stages[s];
    for (int d = 0; d < st->ndeps; ++d) {
      const int dep = job->deps[st->dep0 + d];
      int spins = 0;
      long long w0 = 0;  /* when this wait began (clock read only if it waits at all) */
      while (__atomic_load_n(&job->done[dep], __ATOMIC_ACQUIRE) < job->stages[dep].nchunks) {
        if (__atomic_load_n(&pm_gen, __ATOMIC_RELAXED) != gen) return;  /* workers only */
        if (waited && !w0) w0 = pm_now();
        pm_relax(&spins);
      }
      if (w0) *waited += pm_now() - w0;
    }
    const int n = st->nchunks;
    const int nr = job->ranges < n ? job->ranges : n;
    for (int k = 0; k < nr; ++k) {  /* its own range first, then the others' */
      const int r = (id + k) % nr;
      const unsigned lo = (unsigned)(r * n / nr), len = (unsigned)((r + 1) * n / nr) - lo;
      unsigned long long* counter = &job->next[s * PM_RANGES + r];
      for (;;) {
        unsigned long long v = __atomic_load_n(counter, __ATOMIC_ACQUIRE);
        if ((int)(v >> 32) != gen) return;           /* a later call: this one has ended */
        const unsigned c = (unsigned)v;
        if (c >= len) break;                          /* this range is taken: the next one */
        if (!__atomic_compare_exchange_n(counter, &v, v + 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) continue;
        const long long c0 = pm_prof_on ? pm_now() : 0;
        st->fn(job->in, job->out, job->arena, job->cst, (int)(lo + c), n);
        if (pm_prof_on) pm_prof_add(id, s, (int)(lo + c), c0);
        __atomic_fetch_add(&job->done[s], 1, __ATOMIC_RELEASE);
        if (ran) ++*ran;
      }
    }
  }
}
static void* pm_worker(void* arg) {
  const int id = (int)(long)arg;
  int seen = __atomic_load_n(&pm_gen, __ATOMIC_ACQUIRE);
  for (;;) {
    int spins = 0, gen;
    while ((gen = __atomic_load_n(&pm_gen, __ATOMIC_ACQUIRE)) == seen) {
      if (++spins < 20 * PM_SPIN && !__atomic_load_n(&pm_park, __ATOMIC_ACQUIRE)) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (spins % PM_SPIN == 0) sched_yield();
        continue;
      }
      __atomic_fetch_add(&pm_sleepers, 1, __ATOMIC_SEQ_CST);
      syscall(SYS_futex, &pm_gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
      __atomic_fetch_sub(&pm_sleepers, 1, __ATOMIC_SEQ_CST);
      spins = 0;
    }
    seen = gen;
    if (id >= __atomic_load_n(&pm_team, __ATOMIC_ACQUIRE)) continue;
    pm_job_t job = pm_job;
    if (__atomic_load_n(&pm_gen, __ATOMIC_ACQUIRE) != gen) continue;  /* torn copy: skip */
    pm_work(&job, id + 1, gen, NULL, NULL);
  }
  return NULL;
}
static void pm_pool_size(int team) {
  pthread_mutex_lock(&pm_pool_lock);
  while (pm_workers < team) {
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, pm_worker, (void*)(long)pm_workers) != 0) {
      pthread_attr_destroy(&attr);
      break;  /* no more threads: the team is what exists */
    }
    pthread_attr_destroy(&attr);
    ++pm_workers;
  }
  __atomic_store_n(&pm_team, team < pm_workers ? team : pm_workers, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&pm_pool_lock);
}
static void pm_pool_run(const pm_stage_t* stages, const int* deps, int nstages,
                        unsigned long long* next, int* done, const void** in, void** out,
                        float* arena, const float* cst) {
  if (pm_threads <= 1) {  /* one thread: every stage whole, in order */
    pm_run_alone(stages, nstages, in, out, arena, cst);
    return;
  }
  pthread_mutex_lock(&pm_call_lock);
  if (pm_ad_threads != pm_threads) pm_ad_reset();  /* a new team size: measure it afresh */
  if (pm_adaptive && !pm_ad_started) {
    /* A fresh state used to start as a team until its first verdict; under a steady
       background load that first probe ran 5-800 team calls (stop 41). Now it starts as
       a skipped probe would when no core is free for the team right now. */
    pm_ad_started = 1;
    if (pm_cpu_no_free_core()) {
      pm_ad_begin_backoff(PM_AD_FIRST);
      ++pm_ad_skipped;
    }
  }
  if (pm_adaptive && pm_ad_left > 0) {  /* backing off: the caller alone, workers not woken */
    if (--pm_ad_left == 0 && pm_cpu_busy()) {  /* no free core to probe on: wait again, */
      /* twice as long (capped), as after a lost probe that cost nothing */
      const double alone = !pm_ad_force && pm_ad_alone_n > 0 ? pm_ad_alone : 0.0;
      pm_ad_backoff = pm_ad_next_backoff(pm_ad_backoff, 0.0, alone);
      pm_ad_left = pm_ad_backoff;
      ++pm_ad_skipped;
    }
    /* every 64th alone call is timed, for the back-off's length and pm_pool_stats: timing
       every 4th made an alone call of mlp:1 (7 us) 2% slower than the same call on one
       thread, where the clock reads were expected to cost 0.2% (stop 37) */
    const int timed = (pm_ad_alone_calls++ & 63) == 0;
    const long long a0 = timed ? pm_now() : 0;
    pm_run_alone(stages, nstages, in, out, arena, cst);
    if (timed) {
      ++pm_ad_alone_n;
      const double a = 1.0 / (pm_ad_alone_n < PM_AD_EWMA ? pm_ad_alone_n : PM_AD_EWMA);
      pm_ad_alone += a * ((double)(pm_now() - a0) - pm_ad_alone);
    }
    pthread_mutex_unlock(&pm_call_lock);
    return;
  }
  const int measure = pm_adaptive;
  const long long t0 = measure ? pm_now() : 0;
  int fresh = 0;  /* this call starts worker threads (or wakes those the fallback parked) */
  if (__atomic_load_n(&pm_team, __ATOMIC_ACQUIRE) != pm_threads - 1) {
    pm_pool_size(pm_threads - 1);
    fresh = 1;
  }
  /* a call that wakes sleeping workers pays for the wake-up (tens of us): not judged when
     the fallback parked them (a probe's first call; idle, it made every probe of a 15 us call
     lose) or when the previous team call found them awake (a pause between bursts of calls,
     e.g. a benchmark's samples); judged when calls keep finding them asleep (calls far apart,
     where every call pays the wake-up and running alone may well be faster) */
  const int parked = __atomic_load_n(&pm_park, __ATOMIC_RELAXED);
  __atomic_store_n(&pm_park, 0, __ATOMIC_RELAXED);  /* a team call: workers spin again */
  const int gen = (__atomic_load_n(&pm_gen, __ATOMIC_RELAXED) + 1) & 0x7fffffff;
  const int ranges = pm_threads < PM_RANGES ? pm_threads : PM_RANGES;
  int total = 0;  /* chunks in the call */
  for (int s = 0; s < nstages; ++s) {
    __atomic_store_n(&done[s], 0, __ATOMIC_RELAXED);
    for (int r = 0; r < ranges; ++r)  /* only the counters this call's threads read */
      __atomic_store_n(&next[s * PM_RANGES + r], (unsigned long long)gen << 32, __ATOMIC_RELAXED);
    total += stages[s].nchunks;
  }
  pm_job.stages = stages; pm_job.deps = deps; pm_job.nstages = nstages;
  pm_job.ranges = ranges;
  pm_job.next = next; pm_job.done = done;
  pm_job.in = in; pm_job.out = out; pm_job.arena = arena; pm_job.cst = cst;
  __atomic_store_n(&pm_gen, gen, __ATOMIC_SEQ_CST);
  const int woke = __atomic_load_n(&pm_sleepers, __ATOMIC_SEQ_CST) > 0;
  if (woke) {
    syscall(SYS_futex, &pm_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    if (parked || !pm_ad_last_woke) fresh = 1;
  }
  pm_ad_last_woke = woke;
  pm_job_t job = pm_job;
  long long waited = 0;  /* the caller's dependency waits (ns) */
  int ran = 0;           /* chunks the caller ran */
  const long long t1 = measure ? pm_now() : 0;
  pm_work(&job, 0, gen, measure ? &waited : NULL, measure ? &ran : NULL);
  const long long t2 = measure ? pm_now() : 0;
  for (int s = 0; s < nstages; ++s) {  /* wait for chunks other threads still hold */
    int spins = 0;
    while (__atomic_load_n(&done[s], __ATOMIC_ACQUIRE) < stages[s].nchunks) pm_relax(&spins);
  }
  ++pm_ad_team_calls;
  if (measure) pm_ad_judge(pm_now() - t0, t2 - t1 - waited, ran, total, fresh);
  pthread_mutex_unlock(&pm_call_lock);
}
"""


COMPARISON_C = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}
UNARY_C: dict[str, str] = {
    "relu": "pm_maxf({x}, 0.f)",
    "gelu": "(0.5f * {x} * (1.f + pm_erf({x} * 0.70710678118654752f)))",
    "gelu_tanh": (
        "(0.5f * {x} * (1.f + tanhf(0.7978845608028654f * ({x} + 0.044715f * {x} * {x} * {x}))))"
    ),
    "silu": "({x} / (1.f + expf(-{x})))",
    "tanh": "tanhf({x})",
    "sigmoid": "(1.f / (1.f + expf(-{x})))",
    "neg": "(-{x})",
    "exp": "expf({x})",
    "identity": "{x}",
    "to_float": "((float)({x}))",
    "to_int": "((long long)({x}))",  # truncation toward zero, as PyTorch's .long()
    "erf": "pm_erf({x})",
    "sqrt": "sqrtf({x})",
    "abs": "fabsf({x})",
    "log": "logf({x})",
    "rsqrt": "(1.f / sqrtf({x}))",
    "relu6": "pm_minf(pm_maxf({x}, 0.f), 6.f)",
    # PyTorch's forms: x * relu6(x + 3) / 6 and relu6(x + 3) / 6
    "hardsigmoid": "(pm_minf(pm_maxf({x} + 3.f, 0.f), 6.f) / 6.f)",
    "hardswish": "({x} * pm_minf(pm_maxf({x} + 3.f, 0.f), 6.f) / 6.f)",
    # softplus at PyTorch's defaults (beta 1, threshold 20): linear above the threshold
    "softplus": "({x} > 20.f ? {x} : log1pf(expf({x})))",
    "floor": "floorf({x})",
    "ceil": "ceilf({x})",
    "round": "nearbyintf({x})",  # the default rounding mode: to nearest, ties to even
    "trunc": "truncf({x})",
    # sign(nan) is 0, as PyTorch's: both comparisons are false for a NaN under IEEE (stop 68)
    "sign": "((float)(({x} > 0.f) - ({x} < 0.f)))",
    # stop 66: libm's float functions (ir.MATH_UNARY); lgamma is log|Gamma(x)|, as
    # torch.lgamma, through the reentrant lgammaf_r (the kernels' threads share no sign)
    **{op: f"{op}f({{x}})" for op in MATH_UNARY if op != "lgamma"},
    "lgamma": "pm_lgamma({x})",
}
BINARY_C: dict[str, str] = {
    "add": "({a} + {b})",
    "sub": "({a} - {b})",
    "mul": "({a} * {b})",
    "div": "({a} / {b})",
    "maximum": "pm_maxf({a}, {b})",
    "minimum": "pm_minf({a}, {b})",
    # comparisons as IEEE orders them: false with a NaN operand, except != (true); since
    # stop 68 the kernels are built without finite-math, so C's comparisons are IEEE's (the
    # explicit NaN tests of stops 55-67 are gone)
    **{op: f"({{a}} {sym} {{b}} ? 1.f : 0.f)" for op, sym in COMPARISON_C.items()},
    "keep_where": "({a} != 0.f ? {b} : 0.f)",
    "keep_where_not": "({a} != 0.f ? 0.f : {b})",
    "atan2": "atan2f({a}, {b})",
    "pow": "powf({a}, {b})",
    "hypot": "hypotf({a}, {b})",
    "copysign": "copysignf({a}, {b})",
    "trunc_divide": "pm_trunc_dividef({a}, {b})",
    "fmod": "fmodf({a}, {b})",
    "floor_divide": "pm_floor_dividef({a}, {b})",
    "remainder": "pm_remainderf({a}, {b})",
}
# the int64 forms of the ops whose C differs for integers (the rest work on long long as is)
INTEGER_BINARY_C: dict[str, str] = {
    "floor_divide": "pm_floor_divide({a}, {b})",
    "remainder": "pm_remainder({a}, {b})",
    "maximum": "({a} > {b} ? {a} : {b})",
    "minimum": "({a} < {b} ? {a} : {b})",
    "trunc_divide": "pm_trunc_divide({a}, {b})",
    "fmod": "pm_fmod({a}, {b})",
    # stop 68: where's halves keep the integer (the mask is a 0 / 1 float)
    "keep_where": "({a} != 0.f ? {b} : 0LL)",
    "keep_where_not": "({a} != 0.f ? 0LL : {b})",
}
INTEGER_UNARY_C: dict[str, str] = {  # stop 68 (neg and the moves need no integer form)
    "abs": "llabs({x})",
    "sign": "((long long)(({x} > 0) - ({x} < 0)))",
    "relu": "({x} > 0 ? {x} : 0LL)",  # stop 69: clamp(min=0) of integer positions
}


def c_unary(op: str, x: str) -> str:
    """C expression of an elementwise unary op."""
    return UNARY_C[op].format(x=x)


def c_binary(op: str, a: str, b: str) -> str:
    """C expression of an elementwise binary op."""
    return BINARY_C[op].format(a=a, b=b)


def cname(name: str) -> str:
    """A C identifier for an IR value name."""
    return "v_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def chain(
    body: list[Node],
    load: dict[str, str],
    seed: dict[str, str],
    dtypes: dict[str, str] | None = None,
    site_of: Callable[[Node], int] | None = None,
) -> tuple[list[str], str]:
    """C statements computing ``body`` elementwise; ``load`` maps external values to C
    expressions at the current element, ``seed`` maps already-computed values to C vars.
    ``dtypes`` gives members whose result is ``int64`` (integer add / sub / mul / neg,
    ``to_int``) a ``long long`` variable; the rest are float. C's conversions then do what
    PyTorch's type promotion does: an integer meeting a float is converted to float.
    ``site_of`` numbers a ``bounded`` member for the error it may report (the lowering's
    ``error_site``; 0 without it); one with ``wrap_negative`` also counts a negative index
    from the end (``pm_bounded_wrap``)."""
    env = dict(seed)
    stmts = []
    for m in body:
        args = [env.get(i, load.get(i, "")) for i in m.inputs]
        if any(a == "" for a in args):
            raise ProvenmlError(f"codegen: operand of {m.name} not available")
        integer = (dtypes or {}).get(m.name) == "int64"
        if m.op == "bounded":
            check = "pm_bounded_wrap" if m.attrs.get("wrap_negative") else "pm_bounded"
            expr = f"{check}({args[0]}, {args[1]}, {site_of(m) if site_of else 0})"
        elif integer and m.op in INTEGER_BINARY_C:
            expr = INTEGER_BINARY_C[m.op].format(a=args[0], b=args[1])
        elif integer and m.op in INTEGER_UNARY_C:
            expr = INTEGER_UNARY_C[m.op].format(x=args[0])
        else:
            expr = c_unary(m.op, args[0]) if len(args) == 1 else c_binary(m.op, args[0], args[1])
        var = "t_" + cname(m.name)
        ctype = "long long" if integer else "float"
        stmts.append(f"const {ctype} {var} = {expr};")
        env[m.name] = var
    return stmts, env[body[-1].name] if body else ""
