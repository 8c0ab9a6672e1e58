#include <stdlib.h>
#include <string.h>

#include "sparq/base.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

static void detect(sparq_cpu_features *f) {
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return;
  unsigned max_leaf = a;
  memcpy(f->vendor + 0, &b, 4);
  memcpy(f->vendor + 4, &d, 4);
  memcpy(f->vendor + 8, &c, 4);
  f->vendor[12] = '\0';

  __get_cpuid(1, &a, &b, &c, &d);
  bool osxsave = c & (1u << 27);
  f->fma = c & (1u << 12);
  f->f16c = c & (1u << 29);
  bool avx = c & (1u << 28);
  if (osxsave) {
    uint64_t xcr0 = read_xcr0();
    f->os_avx = avx && (xcr0 & 0x6) == 0x6;              /* xmm + ymm state */
    f->os_avx512 = f->os_avx && (xcr0 & 0xE0) == 0xE0;   /* opmask + zmm state */
  }
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f->avx2 = b & (1u << 5);
    f->avx512f = b & (1u << 16);
    f->avx512dq = b & (1u << 17);
    f->avx512bw = b & (1u << 30);
    f->avx512vl = b & (1u << 31);
    f->avx512vnni = c & (1u << 11);
    f->avx512fp16 = d & (1u << 23);
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    f->avx512bf16 = a & (1u << 5);
  }
  if (!f->os_avx) f->avx2 = f->fma = f->f16c = false;
  if (!f->os_avx512)
    f->avx512f = f->avx512dq = f->avx512bw = f->avx512vl = f->avx512vnni = f->avx512bf16 =
        f->avx512fp16 = false;

  unsigned ext = 0;
  __get_cpuid(0x80000000u, &ext, &b, &c, &d);
  if (ext >= 0x80000004u) {
    unsigned regs[12];
    for (unsigned i = 0; i < 3; i++)
      __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    memcpy(f->brand, regs, 48);
    f->brand[48] = '\0';
  }
}
#else
static void detect(sparq_cpu_features *f) { (void)f; }
#endif

static sparq_cpu_features features;
static sparq_isa hardware_isa;
static int env_cap = -1; /* -1: not read yet */
static sparq_isa user_cap = SPARQ_ISA_AVX512;

/* cpuid is cheap, but kernels ask on every call, so read it once. The race on
 * first use is benign: every thread computes the same values. */
static void ensure_detected(void) {
  static int done;
  if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return;
  sparq_cpu_features f;
  memset(&f, 0, sizeof f);
  detect(&f);
  sparq_isa isa = SPARQ_ISA_SCALAR;
#ifdef SPARQ_HAVE_X86_SIMD
  if (f.avx2 && f.fma && f.f16c) isa = SPARQ_ISA_AVX2;
  if (isa == SPARQ_ISA_AVX2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) isa = SPARQ_ISA_AVX512;
#endif
  int cap = SPARQ_ISA_AVX512;
  const char *env = getenv("SPARQ_ISA");
  if (env) {
    if (!strcmp(env, "scalar")) cap = SPARQ_ISA_SCALAR;
    else if (!strcmp(env, "avx2")) cap = SPARQ_ISA_AVX2;
  }
  features = f;
  hardware_isa = isa;
  env_cap = cap;
  __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

const sparq_cpu_features *sparq_cpu(void) {
  ensure_detected();
  return &features;
}

sparq_isa sparq_isa_active(void) {
  ensure_detected();
  sparq_isa isa = hardware_isa;
  if ((int)isa > env_cap) isa = (sparq_isa)env_cap;
  if (isa > user_cap) isa = user_cap;
  return isa;
}

void sparq_set_isa_cap(sparq_isa cap) { user_cap = cap; }

const char *sparq_isa_name(sparq_isa isa) {
  switch (isa) {
    case SPARQ_ISA_SCALAR: return "scalar";
    case SPARQ_ISA_AVX2: return "avx2";
    case SPARQ_ISA_AVX512: return "avx512";
  }
  return "?";
}

bool sparq_has_vnni(void) { return sparq_isa_active() == SPARQ_ISA_AVX512 && features.avx512vnni; }
bool sparq_has_bf16(void) { return sparq_isa_active() == SPARQ_ISA_AVX512 && features.avx512bf16; }
