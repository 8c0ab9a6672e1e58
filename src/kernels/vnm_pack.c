/* The packed V:N:M format (layout documented at sparq_vnm_matrix in vnm.h):
 * pack from a mask, unpack to the masked dense matrix, and the invariant
 * checker every loaded file goes through. */
#include <stdlib.h>
#include <string.h>

#include "kernels/vnm_internal.h"
#include "sparq/base.h"

sparq_status vnm_matrix_alloc(int64_t rows, int64_t cols, sparq_vnm_pattern p, sparq_vnm_matrix **out) {
  *out = NULL;
  sparq_vnm_matrix *m = calloc(1, sizeof *m);
  if (!m) return sparq_fail(SPARQ_ERR_NOMEM, "sparq_vnm_matrix: out of memory");
  m->rows = rows;
  m->cols = cols;
  m->pattern = p;
  m->rows_pad = sparq_vnm_round_up(rows, p.v);
  m->cols_pad = sparq_vnm_round_up(cols, p.m);
  m->groups = m->cols_pad / p.m;
  m->column_blocks = p.m == 4 ? 1 : m->rows_pad / p.v;
  size_t cells = (size_t)m->rows_pad * (size_t)m->groups;
  /* +1 keeps every allocation non-empty for 0 x 0 layers */
  m->values = sparq_alloc((cells * 2 + 1) * sizeof(float), "vnm values");
  m->meta = sparq_alloc(cells + 1, "vnm meta");
  m->columns = sparq_alloc(((size_t)m->column_blocks * (size_t)m->groups * 4 + 1) * sizeof(int32_t), "vnm columns");
  m->row_perm = sparq_alloc(((size_t)m->rows_pad + 1) * sizeof(int32_t), "vnm row_perm");
  m->row_inv = sparq_alloc(((size_t)m->rows_pad + 1) * sizeof(int32_t), "vnm row_inv");
  m->col_perm = sparq_alloc(((size_t)m->cols_pad + 1) * sizeof(int32_t), "vnm col_perm");
  m->kpos = sparq_alloc((cells + 1) * sizeof(uint16_t), "vnm kpos");
  if (!m->values || !m->meta || !m->columns || !m->row_perm || !m->row_inv || !m->col_perm || !m->kpos) {
    sparq_vnm_free(m);
    return SPARQ_ERR_NOMEM;
  }
  *out = m;
  return SPARQ_OK;
}

sparq_status vnm_matrix_finish(sparq_vnm_matrix *m) {
  for (int64_t r = 0; r < m->rows_pad; r++) m->row_inv[m->row_perm[r]] = (int32_t)r;
  int32_t *col_inv = sparq_alloc(((size_t)m->cols_pad + 1) * sizeof(int32_t), "vnm col_inv");
  if (!col_inv) return SPARQ_ERR_NOMEM;
  for (int64_t c = 0; c < m->cols_pad; c++) col_inv[m->col_perm[c]] = (int32_t)c;
  const int v = m->pattern.v, mm = m->pattern.m;
  const int64_t groups = m->groups;
  /* the GEMM reads X^T in permuted column order, so it wants positions
   * inside the permuted group rather than slots of the kept 4 */
  for (int64_t r = 0; r < m->rows_pad; r++) {
    const int32_t *kept = m->columns + (m->column_blocks > 1 ? r / v : 0) * groups * 4;
    for (int64_t g = 0; g < groups; g++) {
      unsigned code = m->meta[r * groups + g];
      unsigned k0 = (unsigned)(col_inv[kept[g * 4 + (code & 3)]] - g * mm);
      unsigned k1 = (unsigned)(col_inv[kept[g * 4 + (code >> 2)]] - g * mm);
      m->kpos[r * groups + g] = (uint16_t)(k0 | k1 << 8);
    }
  }
  sparq_free(col_inv);
  return SPARQ_OK;
}

void sparq_vnm_free(sparq_vnm_matrix *m) {
  if (!m) return;
  sparq_free(m->values);
  sparq_free(m->meta);
  sparq_free(m->columns);
  sparq_free(m->row_perm);
  sparq_free(m->row_inv);
  sparq_free(m->col_perm);
  sparq_free(m->kpos);
  free(m);
}

sparq_status sparq_vnm_pack(const float *w, int64_t rows, int64_t cols, int64_t ldw, sparq_vnm_pattern p,
                            const uint8_t *mask, const int32_t *row_perm, const int32_t *col_perm,
                            sparq_vnm_matrix **out) {
  const char *who = "sparq_vnm_pack";
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL output", who);
  *out = NULL;
  sparq_status st = vnm_check_problem(who, NULL, 0, 0, p, NULL, NULL);
  if (st != SPARQ_OK) return st;
  if (rows < 0 || cols < 0 || rows > INT32_MAX - SPARQ_VNM_MAX_V || cols > INT32_MAX - SPARQ_VNM_MAX_M)
    return sparq_fail(SPARQ_ERR_ARG, "%s: bad shape %lld x %lld", who, (long long)rows, (long long)cols);
  if (ldw < cols)
    return sparq_fail(SPARQ_ERR_ARG, "%s: ldw %lld is smaller than the %lld columns", who, (long long)ldw,
                      (long long)cols);
  int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
  if ((rows * cols > 0 && !w) || (rp * cp > 0 && !mask)) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL matrix", who);
  if ((st = vnm_check_perm(who, "row_perm", row_perm, rp)) != SPARQ_OK) return st;
  if ((st = vnm_check_perm(who, "col_perm", col_perm, cp)) != SPARQ_OK) return st;
  if ((st = sparq_vnm_mask_check(mask, rp, cp, p)) != SPARQ_OK) return st;
  sparq_vnm_matrix *m;
  if ((st = vnm_matrix_alloc(rows, cols, p, &m)) != SPARQ_OK) return st;
  for (int64_t r = 0; r < rp; r++) m->row_perm[r] = row_perm ? row_perm[r] : (int32_t)r;
  for (int64_t c = 0; c < cp; c++) m->col_perm[c] = col_perm ? col_perm[c] : (int32_t)c;
  const int64_t groups = m->groups;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < rp / p.v; b++)
    for (int64_t g = 0; g < groups; g++) {
      uint64_t used = 0;
      for (int64_t r = b * p.v; r < (b + 1) * p.v; r++)
        for (int j = 0; j < p.m; j++)
          if (mask[r * cp + g * p.m + j]) used |= (uint64_t)1 << j;
      /* fewer than 4 used columns: complete with the lowest unused ones */
      for (int j = 0; j < p.m && __builtin_popcountll(used) < 4; j++) used |= (uint64_t)1 << j;
      int pos[4], slot_of[SPARQ_VNM_MAX_M], n = 0;
      for (int j = 0; j < p.m; j++)
        if (used >> j & 1) slot_of[j] = n, pos[n++] = j;
      if (p.m > 4 || b == 0) {
        int32_t *colrow = m->columns + ((p.m > 4 ? b : 0) * groups + g) * 4;
        for (int i = 0; i < 4; i++) colrow[i] = m->col_perm[g * p.m + pos[i]];
      }
      for (int64_t r = b * p.v; r < (b + 1) * p.v; r++) {
        int k[2], nk = 0;
        for (int j = 0; j < p.m && nk < 2; j++)
          if (mask[r * cp + g * p.m + j]) k[nk++] = j;
        m->meta[r * groups + g] = (uint8_t)(slot_of[k[0]] | slot_of[k[1]] << 2);
        int64_t i = m->row_perm[r];
        for (int e = 0; e < 2; e++) {
          int64_t j = m->col_perm[g * p.m + k[e]];
          float *dst = m->values + (r * groups + g) * 2 + e;
          if (i < rows && j < cols)
            memcpy(dst, w + i * ldw + j, sizeof(float)); /* bit for bit, NaN payloads too */
          else
            *dst = 0.0f;
        }
      }
    }
  if ((st = vnm_matrix_finish(m)) != SPARQ_OK) {
    sparq_vnm_free(m);
    return st;
  }
  *out = m;
  return SPARQ_OK;
}

sparq_status sparq_vnm_unpack(const sparq_vnm_matrix *m, float *w, int64_t ldw) {
  if (!m) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_unpack: NULL matrix");
  if (ldw < m->cols)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_unpack: ldw %lld is smaller than the %lld columns", (long long)ldw,
                      (long long)m->cols);
  if (m->rows * m->cols > 0 && !w) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_unpack: NULL output");
  for (int64_t i = 0; i < m->rows; i++) memset(w + i * ldw, 0, (size_t)m->cols * sizeof(float));
  const int v = m->pattern.v;
  const int64_t groups = m->groups;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m->rows_pad; r++) {
    int64_t i = m->row_perm[r];
    if (i >= m->rows) continue;
    const int32_t *cols = m->columns + (m->column_blocks > 1 ? r / v : 0) * groups * 4;
    for (int64_t g = 0; g < groups; g++) {
      unsigned code = m->meta[r * groups + g];
      int64_t j0 = cols[g * 4 + (code & 3)], j1 = cols[g * 4 + (code >> 2 & 3)];
      if (j0 < m->cols) memcpy(w + i * ldw + j0, m->values + (r * groups + g) * 2, sizeof(float));
      if (j1 < m->cols) memcpy(w + i * ldw + j1, m->values + (r * groups + g) * 2 + 1, sizeof(float));
    }
  }
  return SPARQ_OK;
}

sparq_status sparq_vnm_validate(const sparq_vnm_matrix *m, const char *who) {
  if (!m) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL matrix", who);
  sparq_vnm_pattern p = m->pattern;
  sparq_status st = sparq_vnm_pattern_check(p, who);
  if (st != SPARQ_OK) return st;
  if (m->rows < 0 || m->cols < 0 || m->rows > INT32_MAX - SPARQ_VNM_MAX_V || m->cols > INT32_MAX - SPARQ_VNM_MAX_M ||
      m->rows_pad != sparq_vnm_round_up(m->rows, p.v) || m->cols_pad != sparq_vnm_round_up(m->cols, p.m) ||
      m->groups != m->cols_pad / p.m || m->column_blocks != (p.m == 4 ? 1 : m->rows_pad / p.v))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: inconsistent shape %lld x %lld (padded %lld x %lld) for pattern %d:2:%d",
                      who, (long long)m->rows, (long long)m->cols, (long long)m->rows_pad, (long long)m->cols_pad,
                      p.v, p.m);
  if ((st = vnm_check_perm(who, "row_perm", m->row_perm, m->rows_pad)) != SPARQ_OK) return st;
  if ((st = vnm_check_perm(who, "col_perm", m->col_perm, m->cols_pad)) != SPARQ_OK) return st;
  for (int64_t i = 0; i < m->rows_pad * m->groups; i++) {
    unsigned code = m->meta[i];
    if (code > 15 || (code & 3) >= (code >> 2))
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: meta[%lld][%lld] = %u is not two increasing positions 0..3", who,
                        (long long)(i / m->groups), (long long)(i % m->groups), code);
  }
  int32_t *col_inv = sparq_alloc(((size_t)m->cols_pad + 1) * sizeof(int32_t), who);
  if (!col_inv) return SPARQ_ERR_NOMEM;
  for (int64_t c = 0; c < m->cols_pad; c++) col_inv[m->col_perm[c]] = (int32_t)c;
  for (int64_t i = 0; i < m->column_blocks * m->groups && st == SPARQ_OK; i++) {
    int64_t g = i % m->groups;
    const int32_t *k = m->columns + i * 4;
    for (int a = 0; a < 4 && st == SPARQ_OK; a++) {
      bool ok = k[a] >= 0 && k[a] < m->cols_pad && col_inv[k[a]] / p.m == g;
      for (int b = 0; b < a; b++) ok = ok && k[b] != k[a];
      if (!ok)
        st = sparq_fail(SPARQ_ERR_FORMAT, "%s: kept column %d of block %lld, group %lld is %d: not a distinct "
                        "column of that group", who, a, (long long)(i / m->groups), (long long)g, (int)k[a]);
    }
  }
  sparq_free(col_inv);
  return st;
}
