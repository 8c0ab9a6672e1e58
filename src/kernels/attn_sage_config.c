/* A Sage variant's knobs resolved against its defaults (spec §3), and the
 * PV path each pv_accum mode selects (spec §2.6, §5). */
#include <string.h>

#include "kernels/attn_sage_internal.h"
#include "sparq/base.h"

/* FP8 path: sigma puts max P-tilde at 2^8.807 ~ 448, E4M3's largest value. */
#define SIGMA_FP8 8.807f

static const char *pv_name(sparq_attn_pv_accum a) {
  switch (a) {
    case SPARQ_ATTN_PV_BF16_F32: return "bf16+f32";
    case SPARQ_ATTN_PV_U8: return "u8";
    default: return sparq_attn_pv_accum_name(a);
  }
}

static void set_pv(sage_config *c, sage_pv_kind kind, sage_accum accum, sage_round round, float sigma, float vr) {
  c->pv = kind, c->accum = accum, c->round = round, c->sigma = sigma, c->v_range = vr;
}

/* sage_cpu's default PV: the spec's FP16 block accumulator where the CPU
 * runs it natively (AVX512-FP16: vfmadd231ph at ~1.75x the FP32 FMA rate);
 * elsewhere BF16 blocks: P-tilde and V in BF16, vdpbf16ps sums per 64-key
 * block flushed into FP32. Measured on Zen 4 (AVX-512 BF16, no FP16), B 1,
 * H 8, N 2048, 1 thread, against flash_f32 in the same process:
 *   bf16+f32  2.18x (d 128), 2.03x (d 64), CosSim >= 0.99954 on D1-D5;
 *   u8        2.67x, 2.40x, but CosSim 0.99945 on D4 and 1.5-7x the RelL1
 *             (P in 8 linear bits drops small probabilities);
 *   f16+f32   0.17x, 0.18x: the FP16 accumulator can only be emulated here,
 *             at the same accuracy as bf16+f32 to 4 digits.
 * Decided by the hardware alone, not by SPARQ_ISA, so capping the ISA runs
 * the same arithmetic through the scalar twins. */
static sparq_attn_pv_accum cpu_default_pv(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_cpu()->avx512fp16 && sage_pv_f16_hw_built()) return SPARQ_ATTN_PV_F16_F32;
#endif
  return SPARQ_ATTN_PV_BF16_F32;
}

sparq_status sage_config_resolve(const attn_problem *p, sage_config *c) {
  const sparq_attn_options *o = p->opts;
  const char *vname = sparq_attn_variant_name(o->variant);
  memset(c, 0, sizeof *c);
  c->variant = o->variant;
  sparq_attn_granularity gran;
  bool smooth_q;
  switch (o->variant) {
    case SPARQ_ATTN_SAGE1: gran = SPARQ_ATTN_GRAN_PER_BLOCK, c->qmax = 127, smooth_q = false; break;
    case SPARQ_ATTN_SAGE2_8B: gran = SPARQ_ATTN_GRAN_PER_THREAD, c->qmax = 127, smooth_q = false; break;
    case SPARQ_ATTN_SAGE2_4B: gran = SPARQ_ATTN_GRAN_PER_THREAD, c->qmax = 7, smooth_q = true; break;
    case SPARQ_ATTN_SAGE_CPU: gran = SPARQ_ATTN_GRAN_PER_TOKEN, c->qmax = 127, smooth_q = false; break;
    default: return sparq_fail(SPARQ_ERR_ARG, "attn_forward_sage: %s is not a Sage variant", vname);
  }
  if ((int)o->granularity < 0 || o->granularity > SPARQ_ATTN_GRAN_PER_TOKEN)
    return sparq_fail(SPARQ_ERR_ARG, "attn_forward_sage: unknown granularity %d", (int)o->granularity);
  c->gran = o->granularity == SPARQ_ATTN_GRAN_DEFAULT ? gran : o->granularity;
  c->smooth_k = o->smooth_k != SPARQ_ATTN_OFF;
  c->smooth_q = o->smooth_q == SPARQ_ATTN_AUTO ? smooth_q : o->smooth_q == SPARQ_ATTN_ON;
  c->smooth_v = o->smooth_v == SPARQ_ATTN_ON;
  if (o->refine_k == SPARQ_ATTN_ON && o->variant != SPARQ_ATTN_SAGE_CPU)
    return sparq_fail(SPARQ_ERR_ARG, "attn_forward_sage: refine_k applies to sage_cpu only, not to %s", vname);
  c->refine = o->variant == SPARQ_ATTN_SAGE_CPU ? o->refine_k : SPARQ_ATTN_OFF;

  sparq_attn_pv_accum a = o->pv_accum;
  const char *bad = NULL;
  switch (o->variant) {
    case SPARQ_ATTN_SAGE1:
      /* SA1: P-tilde <= 1 and raw V in FP16, FP16 accumulator per key block */
      if (a == SPARQ_ATTN_PV_DEFAULT || a == SPARQ_ATTN_PV_F16_F32)
        set_pv(c, SAGE_PV_F16, SAGE_ACC_TWO_F16, SAGE_ROUND_F16, 0.0f, 0.0f);
      else
        bad = "sage1 accumulates PV in FP16 blocks only (f16+f32)";
      break;
    case SPARQ_ATTN_SAGE2_8B:
    case SPARQ_ATTN_SAGE2_4B:
      if (a == SPARQ_ATTN_PV_DEFAULT) a = SPARQ_ATTN_PV_F22_F32; /* SA2's two-level accumulation */
      switch (a) {
        /* E4M3 values are exact in BF16, and E4M3 x E4M3 products exact in
         * FP32, so vdpbf16ps computes the FP8 MMA's products exactly */
        case SPARQ_ATTN_PV_F32: set_pv(c, SAGE_PV_BF16, SAGE_ACC_SINGLE_F32, SAGE_ROUND_E4M3, SIGMA_FP8, 448.0f); break;
        case SPARQ_ATTN_PV_F22: set_pv(c, SAGE_PV_BF16, SAGE_ACC_SINGLE_F22, SAGE_ROUND_E4M3, SIGMA_FP8, 448.0f); break;
        case SPARQ_ATTN_PV_F22_F32: set_pv(c, SAGE_PV_BF16, SAGE_ACC_TWO_F22, SAGE_ROUND_E4M3, SIGMA_FP8, 448.0f); break;
        /* SA2++: Vr = 2.25 keeps 64 x 448 x 2.25 = 64512 inside FP16 */
        case SPARQ_ATTN_PV_F16_F32: set_pv(c, SAGE_PV_F16, SAGE_ACC_TWO_F16, SAGE_ROUND_E4M3, SIGMA_FP8, 2.25f); break;
        default: bad = "the FP8 PV accumulates in f32, f22, f22+f32 or f16+f32"; break;
      }
      break;
    default: /* sage_cpu */
      if (a == SPARQ_ATTN_PV_DEFAULT) a = cpu_default_pv();
      switch (a) {
        case SPARQ_ATTN_PV_BF16_F32: set_pv(c, SAGE_PV_BF16, SAGE_ACC_TWO_F32, SAGE_ROUND_BF16, 0.0f, 0.0f); break;
        /* spec §5: P-tilde <= 2^8, |V-hat| <= 3.75: 64 x 256 x 3.75 = 61440 < 65504 */
        case SPARQ_ATTN_PV_F16_F32: set_pv(c, SAGE_PV_F16, SAGE_ACC_TWO_F16, SAGE_ROUND_F16, 8.0f, 3.75f); break;
        case SPARQ_ATTN_PV_U8: set_pv(c, SAGE_PV_U8, SAGE_ACC_TWO_F32, SAGE_ROUND_U8, 8.0f, 127.0f); break;
        default: bad = "sage_cpu's PV is bf16+f32, f16+f32 or u8 (for FP8 PV use sage2_8b with per_token)"; break;
      }
      break;
  }
  if (bad)
    return sparq_fail(SPARQ_ERR_ARG, "attn_forward_sage: %s: pv_accum %s is not supported: %s", vname, pv_name(o->pv_accum),
                      bad);
#ifdef SPARQ_HAVE_X86_SIMD
  c->hw_f16 = c->pv == SAGE_PV_F16 && sparq_isa_active() == SPARQ_ISA_AVX512 && sparq_cpu()->avx512fp16 &&
              sage_pv_f16_hw_built();
#endif
  return SPARQ_OK;
}
