"""The C text of the backend: the translation unit's header, the kernel signature, C
expressions of the elementwise ops, and the register-tile micro-kernel helper (survey Sec. 4.4,
"code generation")."""

from __future__ import annotations

from provenml.compiler import loopir as L
from provenml.compiler.ir import Node
from provenml.errors import ProvenmlError

SIGNATURE = (
    "const void** in, void** out, float* arena, const float* cst, const int tid, const int nth"
)
ARGS = "in, out, arena, cst, tid, nth"

C_HEADER = (
    """#include <math.h>
#include <string.h>
#include <float.h>
#include <omp.h>
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
static int pm_threads = 1;
void pm_set_threads(int n) { pm_threads = n; }
"""
    + L.PARTITION_C
    + "\n"
)

VLEN = 8  # floats per vector of the micro-kernel (256-bit)


def microkernel(mr: int, nr: int, ku: int) -> tuple[str, str]:
    """C source of the ``mr x nr`` register-tile micro-kernel (name, code).

    ``acc[mr][nr] += A[mr, K] @ B[K, nr]`` with ``A`` rows ``lda`` apart and ``B`` rows ``ldb``
    apart: ``mr * nr / 8`` accumulators are named vector locals (never an array, which gcc may
    keep on the stack), each k step loads ``nr / 8`` vectors of ``B``, broadcasts one ``A``
    element per row and issues ``mr * nr / 8`` fused multiply-adds. It accumulates into ``acc``
    so a caller can split K (the convolution's kh/kw loops). Guarded by a macro so several
    kernels (or tuning candidates) in one translation unit share it."""
    nv = nr // VLEN
    name = f"pm_ukr_{mr}x{nr}_u{ku}"
    guard = name.upper()
    cs = [[f"c{i}_{j}" for j in range(nv)] for i in range(mr)]
    lines = [
        "#ifndef PM_V8_DEFINED",
        "#define PM_V8_DEFINED",
        f"typedef float pm_v8 __attribute__((vector_size({4 * VLEN}), aligned(4)));",
        "#endif",
        f"#ifndef {guard}",
        f"#define {guard}",
        f"static inline __attribute__((always_inline)) void {name}(long K, const float* restrict a,"
        " long lda, const float* restrict b, long ldb, float* restrict acc) {",
    ]
    for i in range(mr):
        for j in range(nv):
            lines.append(f"  pm_v8 {cs[i][j]} = *(const pm_v8*)(acc + {i * nr + j * VLEN});")
    lines += [f"  #pragma GCC unroll {max(1, ku)}", "  for (long k = 0; k < K; ++k) {"]
    for j in range(nv):
        lines.append(f"    const pm_v8 b{j} = *(const pm_v8*)(b + k*ldb + {j * VLEN});")
    for i in range(mr):
        bcast = ", ".join(["s"] * VLEN)
        upd = " ".join(f"{cs[i][j]} += av * b{j};" for j in range(nv))
        lines.append(
            f"    {{ const float s = a[{i}*lda + k]; const pm_v8 av = {{{bcast}}}; {upd} }}"
        )
    lines.append("  }")
    for i in range(mr):
        for j in range(nv):
            lines.append(f"  *(pm_v8*)(acc + {i * nr + j * VLEN}) = {cs[i][j]};")
    lines += ["}", "#endif"]
    return name, "\n".join(lines)


# The worker-pool runtime (``compile(..., runtime="pool")``, issue 23 item 1): persistent
# threads instead of one OpenMP fork/join per call; every kernel piece ("stage") is cut into
# chunks that threads claim with an atomic counter, and a stage waits only for the completion
# counters of the stages it depends on (no barrier, no join), so a thread that loses its core
# delays only the chunk it holds. Idle workers spin, then yield, then sleep on a futex. Claims
# carry the call's generation in their upper 32 bits, so a worker that wakes up late can never
# run a chunk of a call that has ended. Linux (futex) and GCC atomics.
POOL_RUNTIME_C = r"""
#include <pthread.h>
#include <sched.h>
#include <limits.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/futex.h>
typedef void (*pm_stage_fn)(const void**, void**, float*, const float*, const int, const int);
typedef struct { pm_stage_fn fn; int nchunks; int dep0; int ndeps; } pm_stage_t;
typedef struct {
  const pm_stage_t* stages; const int* deps; int nstages;
  unsigned long long* next; int* done;
  const void** in; void** out; float* arena; const float* cst;
} pm_job_t;
static pm_job_t pm_job;
static int pm_gen = 0;          /* the current call's generation (futex word) */
static int pm_sleepers = 0;     /* workers asleep on pm_gen */
static int pm_workers = 0;      /* worker threads started */
static int pm_team = 0;         /* workers taking part in calls (pm_threads - 1) */
static pthread_mutex_t pm_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pm_call_lock = PTHREAD_MUTEX_INITIALIZER;  /* one call at a time */
#define PM_SPIN 4000
static inline void pm_relax(int* spins) {
#if defined(__x86_64__) || defined(__i386__)
  if (++*spins < PM_SPIN) { __builtin_ia32_pause(); return; }
#else
  if (++*spins < PM_SPIN) return;
#endif
  sched_yield();
}
static void pm_work(const pm_job_t* job, int gen) {
  for (int s = 0; s < job->nstages; ++s) {
    const pm_stage_t* st = &job->stages[s];
    for (int d = 0; d < st->ndeps; ++d) {
      const int dep = job->deps[st->dep0 + d];
      int spins = 0;
      while (__atomic_load_n(&job->done[dep], __ATOMIC_ACQUIRE) < job->stages[dep].nchunks) {
        if (__atomic_load_n(&pm_gen, __ATOMIC_RELAXED) != gen) return;
        pm_relax(&spins);
      }
    }
    for (;;) {
      unsigned long long v = __atomic_load_n(&job->next[s], __ATOMIC_ACQUIRE);
      if ((int)(v >> 32) != gen) return;           /* a later call: this one has ended */
      const unsigned c = (unsigned)v;
      if (c >= (unsigned)st->nchunks) break;        /* every chunk is taken: next stage */
      if (!__atomic_compare_exchange_n(&job->next[s], &v, v + 1, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE)) continue;
      st->fn(job->in, job->out, job->arena, job->cst, (int)c, st->nchunks);
      __atomic_fetch_add(&job->done[s], 1, __ATOMIC_RELEASE);
    }
  }
}
static void* pm_worker(void* arg) {
  const int id = (int)(long)arg;
  int seen = __atomic_load_n(&pm_gen, __ATOMIC_ACQUIRE);
  for (;;) {
    int spins = 0, gen;
    while ((gen = __atomic_load_n(&pm_gen, __ATOMIC_ACQUIRE)) == seen) {
      if (++spins < 20 * PM_SPIN) {
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
    pm_work(&job, gen);
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
    for (int s = 0; s < nstages; ++s) stages[s].fn(in, out, arena, cst, 0, 1);
    return;
  }
  pthread_mutex_lock(&pm_call_lock);
  if (__atomic_load_n(&pm_team, __ATOMIC_ACQUIRE) != pm_threads - 1) pm_pool_size(pm_threads - 1);
  const int gen = (__atomic_load_n(&pm_gen, __ATOMIC_RELAXED) + 1) & 0x7fffffff;
  for (int s = 0; s < nstages; ++s) {
    __atomic_store_n(&done[s], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&next[s], (unsigned long long)gen << 32, __ATOMIC_RELAXED);
  }
  pm_job.stages = stages; pm_job.deps = deps; pm_job.nstages = nstages;
  pm_job.next = next; pm_job.done = done;
  pm_job.in = in; pm_job.out = out; pm_job.arena = arena; pm_job.cst = cst;
  __atomic_store_n(&pm_gen, gen, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&pm_sleepers, __ATOMIC_SEQ_CST) > 0)
    syscall(SYS_futex, &pm_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  pm_job_t job = pm_job;
  pm_work(&job, gen);
  for (int s = 0; s < nstages; ++s) {  /* wait for chunks other threads still hold */
    int spins = 0;
    while (__atomic_load_n(&done[s], __ATOMIC_ACQUIRE) < stages[s].nchunks) pm_relax(&spins);
  }
  pthread_mutex_unlock(&pm_call_lock);
}
"""


UNARY_C: dict[str, str] = {
    "relu": "({x} > 0.f ? {x} : 0.f)",
    "gelu": "(0.5f * {x} * (1.f + erff({x} * 0.70710678118654752f)))",
    "gelu_tanh": (
        "(0.5f * {x} * (1.f + tanhf(0.7978845608028654f * ({x} + 0.044715f * {x} * {x} * {x}))))"
    ),
    "silu": "({x} / (1.f + expf(-{x})))",
    "tanh": "tanhf({x})",
    "sigmoid": "(1.f / (1.f + expf(-{x})))",
    "neg": "(-{x})",
    "exp": "expf({x})",
    "identity": "{x}",
    "erf": "erff({x})",
    "sqrt": "sqrtf({x})",
}
BINARY_C: dict[str, str] = {
    "add": "({a} + {b})",
    "sub": "({a} - {b})",
    "mul": "({a} * {b})",
    "div": "({a} / {b})",
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


def chain(body: list[Node], load: dict[str, str], seed: dict[str, str]) -> tuple[list[str], str]:
    """C statements computing ``body`` elementwise; ``load`` maps external values to C
    expressions at the current element, ``seed`` maps already-computed values to C vars."""
    env = dict(seed)
    stmts = []
    for m in body:
        args = [env.get(i, load.get(i, "")) for i in m.inputs]
        if any(a == "" for a in args):
            raise ProvenmlError(f"codegen: operand of {m.name} not available")
        expr = c_unary(m.op, args[0]) if len(args) == 1 else c_binary(m.op, args[0], args[1])
        var = "t_" + cname(m.name)
        stmts.append(f"const float {var} = {expr};")
        env[m.name] = var
    return stmts, env[body[-1].name] if body else ""
