/* The scalar oracle of sparq_vnm_gemm: one output at a time, straight from
 * the packed arrays, double accumulation in group order. */
#include "kernels/vnm_internal.h"

sparq_status sparq_vnm_gemm_ref(const sparq_vnm_matrix *m, int64_t tokens, const float *x, int64_t ldx, float *y,
                                int64_t ldy) {
  sparq_status st = vnm_gemm_check_args("sparq_vnm_gemm_ref", m, tokens, x, ldx, y, ldy);
  if (st != SPARQ_OK) return st;
  const int64_t groups = m->groups;
  for (int64_t t = 0; t < tokens; t++)
    for (int64_t r = 0; r < m->rows_pad; r++) {
      int64_t i = m->row_perm[r];
      if (i >= m->rows) continue;
      const int32_t *kept = m->columns + (m->column_blocks > 1 ? r / m->pattern.v : 0) * groups * 4;
      double acc = 0;
      for (int64_t g = 0; g < groups; g++) {
        unsigned code = m->meta[r * groups + g];
        int64_t j[2] = {kept[g * 4 + (code & 3)], kept[g * 4 + (code >> 2)]};
        for (int e = 0; e < 2; e++)
          if (j[e] < m->cols) acc += (double)m->values[(r * groups + g) * 2 + e] * (double)x[t * ldx + j[e]];
      }
      y[t * ldy + i] = (float)acc;
    }
  return SPARQ_OK;
}
