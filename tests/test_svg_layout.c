/* Sparse VideoGen layout (spec §2, §4, §8 tests 1-3): options and their
 * checks, the band-width formula and its edge cases, the frame-major <->
 * token-major permutation, the temporal mask in both coordinate systems, the
 * per-query key intervals against the mask predicate, measured density
 * against the budget, and the FP64 masked reference. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kernels/svg_internal.h"
#include "sparq/attention.h"
#include "sparq/base.h"

static const sparq_svg_sink sinks[] = {SPARQ_SVG_SINK_OFF, SPARQ_SVG_SINK_PARITY, SPARQ_SVG_SINK_FRAME0};
static const sparq_svg_head heads[] = {SPARQ_SVG_SPATIAL, SPARQ_SVG_TEMPORAL, SPARQ_SVG_DENSE};

/* Small layouts with odd F, P and every text placement. */
typedef struct small_case {
  int64_t F, P, L;
  sparq_svg_text text;
} small_case;
static const small_case smalls[] = {
    {3, 5, 0, SPARQ_SVG_TEXT_NONE}, {3, 5, 4, SPARQ_SVG_TEXT_FIRST}, {5, 3, 2, SPARQ_SVG_TEXT_LAST},
    {1, 7, 3, SPARQ_SVG_TEXT_FIRST}, {7, 1, 0, SPARQ_SVG_TEXT_NONE}, {4, 6, 5, SPARQ_SVG_TEXT_LAST},
    {2, 9, 1, SPARQ_SVG_TEXT_FIRST}, {6, 4, 3, SPARQ_SVG_TEXT_LAST},
};
enum { NSMALL = sizeof smalls / sizeof smalls[0] };

static sparq_svg_options small_opts(const small_case *c) {
  sparq_svg_options o = sparq_svg_options_default(c->F, c->P);
  o.text_tokens = c->L;
  o.text = c->text;
  return o;
}

static svg_geom geom(const sparq_svg_options *o, int64_t wt) {
  svg_geom g;
  if (svg_geom_make(o, wt, "test", &g) != SPARQ_OK) fail_msg("geom: %s", sparq_last_error());
  return g;
}

static void defaults(void **state) {
  (void)state;
  sparq_svg_options o = sparq_svg_options_default(8, 256);
  assert_int_equal(o.frames, 8);
  assert_int_equal(o.frame_tokens, 256);
  assert_int_equal(o.text_tokens, 0);
  assert_int_equal(o.text, SPARQ_SVG_TEXT_NONE);
  assert_true(o.budget == 0.25);
  assert_int_equal(o.block, 64);
  assert_false(o.inclusive_width);
  assert_int_equal(o.profile_rows, 32);
  assert_int_equal(o.sink, SPARQ_SVG_SINK_OFF);
  assert_int_equal(o.inner, SPARQ_ATTN_FLASH_F32);
  assert_true(o.seed == 0 && o.force == NULL);
  assert_int_equal(svg_check_options(&o, "t"), SPARQ_OK);
  svg_geom g = geom(&o, -1);
  assert_int_equal(g.S, 2048);
  assert_int_equal(g.wt, 256);
  o.text = SPARQ_SVG_TEXT_LAST, o.text_tokens = 10;
  g = geom(&o, -1);
  assert_int_equal(g.voff, 0);
  assert_int_equal(g.t0, 2048);
  assert_int_equal(g.t1, 2058);
  o.text = SPARQ_SVG_TEXT_FIRST;
  g = geom(&o, 5000);
  assert_int_equal(g.voff, 10);
  assert_int_equal(g.t0, 0);
  assert_int_equal(g.wt, 2058); /* clamped to S */
}

/* Expects svg_check_options to fail with SPARQ_ERR_ARG and a message naming `where` and `needle`. */
static void expect_bad(const sparq_svg_options *o, const char *needle) {
  sparq_status st = svg_check_options(o, "svg_where");
  const char *e = sparq_last_error();
  if (st != SPARQ_ERR_ARG || !strstr(e, needle) || !strstr(e, "svg_where"))
    fail_msg("expected an argument error naming '%s', got %d '%s'", needle, st, e);
  /* the public entry points refuse the same options */
  float x[4] = {0}, y[4];
  st = sparq_svg_permute(o, x, y, 1, false);
  if (st != SPARQ_ERR_ARG || !strstr(sparq_last_error(), "sparq_svg_permute"))
    fail_msg("sparq_svg_permute accepted bad options (%s): %d '%s'", needle, st, sparq_last_error());
  assert_false(sparq_svg_visible(o, SPARQ_SVG_DENSE, 0, 0, 0));
}

static void bad_options_are_named(void **state) {
  (void)state;
  expect_bad(NULL, "opts is NULL");
  const sparq_svg_options ok = sparq_svg_options_default(2, 2);
  sparq_svg_options o = ok;
  o.frames = 0;
  expect_bad(&o, "frames 0");
  o = ok, o.frame_tokens = -3;
  expect_bad(&o, "frame_tokens -3");
  o = ok, o.text_tokens = -1, o.text = SPARQ_SVG_TEXT_FIRST;
  expect_bad(&o, "text_tokens -1");
  o = ok, o.text_tokens = 5;
  expect_bad(&o, "text_tokens 5 needs a text placement");
  o = ok, o.text = SPARQ_SVG_TEXT_LAST;
  expect_bad(&o, "text_tokens 0; use text none");
  o = ok, o.text = (sparq_svg_text)7;
  expect_bad(&o, "unknown text placement 7");
  o = ok, o.frames = INT64_MAX / 2, o.frame_tokens = 3;
  expect_bad(&o, "overflows int64");
  o = ok, o.frames = 1, o.frame_tokens = INT64_MAX, o.text_tokens = 1, o.text = SPARQ_SVG_TEXT_FIRST;
  expect_bad(&o, "overflows int64");
  o = ok, o.frames = (int64_t)1 << 20, o.frame_tokens = (int64_t)1 << 20;
  expect_bad(&o, "too long");
  o = ok, o.budget = 0;
  expect_bad(&o, "budget 0 must be in (0, 1]");
  o.budget = 1.5;
  expect_bad(&o, "budget 1.5");
  o.budget = NAN;
  expect_bad(&o, "budget nan");
  o = ok, o.block = 0;
  expect_bad(&o, "block 0");
  o = ok, o.profile_rows = 0;
  expect_bad(&o, "profile_rows 0");
  o = ok, o.sink = (sparq_svg_sink)3;
  expect_bad(&o, "unknown sink 3");
  o = ok, o.inner = SPARQ_ATTN_SAGE1;
  expect_bad(&o, "inner variant sage1");
  o = ok, o.inner = (sparq_attn_variant)99;
  expect_bad(&o, "(99) is not supported");
  /* the extremes that are fine */
  o = ok, o.budget = 1.0, o.block = 1, o.profile_rows = 1, o.inner = SPARQ_ATTN_SAGE_CPU, o.frames = 1;
  o.frame_tokens = 1, o.sink = SPARQ_SVG_SINK_FRAME0, o.inclusive_width = true;
  assert_int_equal(svg_check_options(&o, "t"), SPARQ_OK);
}

static void band_width_formula_and_edges(void **state) {
  (void)state;
  /* S = 2048, rho 0.25: W = 2048 (1 - sqrt(0.75)) = 274.37 */
  assert_int_equal(sparq_svg_band_width(2048, 0, 0.25, 64, false), 256);
  assert_int_equal(sparq_svg_band_width(2048, 0, 0.25, 64, true), 320);
  assert_int_equal(sparq_svg_band_width(2048, 0, 0.25, 1, false), 274);
  assert_int_equal(sparq_svg_band_width(2048, 0, 0.25, 1, true), 275);
  /* a width that is exactly 2 blocks: rho' = 1 - 0.875^2 at S = 1024 gives W = 128 */
  assert_int_equal(sparq_svg_band_width(1024, 0, 0.234375, 64, false), 128);
  assert_int_equal(sparq_svg_band_width(1024, 0, 0.234375, 64, true), 128);
  /* text takes its share first: rho' = 0.3 - 2 * 226 / 17776 */
  {
    const double rho2 = 0.3 - 2.0 * 226.0 / 17776.0, w = 17776.0 * (1.0 - sqrt(1.0 - rho2));
    assert_int_equal(sparq_svg_band_width(17776, 226, 0.3, 64, false), (int64_t)floor(w / 64) * 64);
    assert_int_equal(sparq_svg_band_width(17776, 226, 0.3, 64, true), (int64_t)ceil(w / 64) * 64);
  }
  /* rho' <= 0: text only */
  assert_int_equal(sparq_svg_band_width(100, 20, 0.3, 4, false), 0);
  assert_int_equal(sparq_svg_band_width(100, 20, 0.4, 4, true), 0);
  /* rho' >= 1: everything */
  assert_int_equal(sparq_svg_band_width(100, 0, 1.0, 64, false), 100);
  assert_int_equal(sparq_svg_band_width(100, 0, 1.0, 64, true), 100);
  /* a block wider than W: floor gives 0, ceil one block, clamped to S */
  assert_int_equal(sparq_svg_band_width(1000, 0, 0.05, 64, false), 0);
  assert_int_equal(sparq_svg_band_width(1000, 0, 0.05, 64, true), 64);
  assert_int_equal(sparq_svg_band_width(100, 0, 0.5, 128, true), 100);
  assert_int_equal(sparq_svg_band_width(1, 0, 0.5, 1, true), 1);
  /* monotone in the budget */
  int64_t last = 0;
  for (int r = 1; r <= 100; r++) {
    const int64_t w = sparq_svg_band_width(4096, 100, r / 100.0, 64, false);
    assert_true(w >= last && w % 64 == 0 && w <= 4096);
    last = w;
  }
  /* bad arguments: -1 and a message */
  assert_int_equal(sparq_svg_band_width(0, 0, 0.25, 64, false), -1);
  assert_non_null(strstr(sparq_last_error(), "sparq_svg_band_width"));
  assert_int_equal(sparq_svg_band_width(10, 11, 0.25, 64, false), -1);
  assert_int_equal(sparq_svg_band_width(10, -1, 0.25, 64, false), -1);
  assert_int_equal(sparq_svg_band_width(10, 0, 0.25, 0, false), -1);
  assert_int_equal(sparq_svg_band_width(10, 0, NAN, 64, false), -1);
}

/* Spec §8 test 1: token-major(frame-major(x)) == x and the explicit map, with
 * text first, last and none, odd F, P and d. */
static void permutation_round_trip(void **state) {
  (void)state;
  const int64_t dims[] = {1, 3, 7};
  for (int ci = 0; ci < NSMALL; ci++)
    for (int di = 0; di < 3; di++) {
      const small_case *c = &smalls[ci];
      const int64_t d = dims[di], S = c->L + c->F * c->P, voff = c->text == SPARQ_SVG_TEXT_FIRST ? c->L : 0;
      sparq_svg_options o = small_opts(c);
      float *x = malloc((size_t)(S * d) * sizeof(float)), *y = malloc((size_t)(S * d) * sizeof(float)),
            *z = malloc((size_t)(S * d) * sizeof(float));
      for (int64_t i = 0; i < S * d; i++) x[i] = (float)i;
      assert_int_equal(sparq_svg_permute(&o, x, y, d, false), SPARQ_OK);
      for (int64_t i = 0; i < S; i++) {
        int64_t from = i; /* the frame-major row that lands on row i */
        if (i >= voff && i < voff + c->F * c->P) {
          const int64_t u = i - voff, p = u / c->F, f = u % c->F;
          from = voff + f * c->P + p;
        }
        for (int64_t e = 0; e < d; e++)
          if (y[i * d + e] != x[from * d + e]) fail_msg("case %d d %lld: row %lld is not row %lld", ci, (long long)d,
                                                        (long long)i, (long long)from);
      }
      assert_int_equal(sparq_svg_permute(&o, y, z, d, true), SPARQ_OK);
      assert_memory_equal(x, z, (size_t)(S * d) * sizeof(float));
      assert_int_equal(sparq_svg_permute(&o, x, y, d, true), SPARQ_OK);
      assert_int_equal(sparq_svg_permute(&o, y, z, d, false), SPARQ_OK);
      assert_memory_equal(x, z, (size_t)(S * d) * sizeof(float));
      /* the index helpers agree with the permutation */
      svg_geom g = geom(&o, 0);
      for (int64_t i = 0; i < S; i++) {
        const int64_t cur = svg_to_current(&g, SPARQ_SVG_TEMPORAL, i);
        assert_int_equal(svg_from_current(&g, SPARQ_SVG_TEMPORAL, cur), i);
        assert_int_equal(svg_to_current(&g, SPARQ_SVG_SPATIAL, i), i);
        assert_int_equal(svg_to_current(&g, SPARQ_SVG_DENSE, i), i);
      }
      free(x), free(y), free(z);
    }
  /* arguments */
  sparq_svg_options o = sparq_svg_options_default(2, 3);
  float x[12] = {0}, y[12];
  assert_int_equal(sparq_svg_permute(&o, NULL, y, 2, false), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "must not be NULL"));
  assert_int_equal(sparq_svg_permute(&o, x, NULL, 2, false), SPARQ_ERR_ARG);
  assert_int_equal(sparq_svg_permute(&o, x, y, 0, false), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "d 0"));
  assert_int_equal(sparq_svg_permute(&o, x, x + 1, 1, false), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "out overlaps in"));
  assert_int_equal(sparq_svg_permute(&o, x, x + 6, 1, false), SPARQ_OK); /* adjacent is fine */
}

/* The predicate against the spec's definitions written out by hand. */
static bool by_hand(const small_case *c, sparq_svg_sink sink, bool incl, sparq_svg_head head, int64_t wt, int64_t i,
                    int64_t j) {
  const int64_t Sv = c->F * c->P, voff = c->text == SPARQ_SVG_TEXT_FIRST ? c->L : 0;
  const bool ti = i < voff || i >= voff + Sv, tj = j < voff || j >= voff + Sv;
  if (head == SPARQ_SVG_DENSE || ti || tj) return true;
  const int64_t vi = i - voff, vj = j - voff;
  const int64_t ui = (vi % c->P) * c->F + vi / c->P, uj = (vj % c->P) * c->F + vj / c->P;
  const int64_t xi = head == SPARQ_SVG_TEMPORAL ? ui : vi, xj = head == SPARQ_SVG_TEMPORAL ? uj : vj;
  const int64_t dx = llabs(xi - xj);
  if (incl ? dx <= wt : dx < wt) return true;
  if (sink == SPARQ_SVG_SINK_PARITY) return xj < c->P;
  if (sink == SPARQ_SVG_SINK_FRAME0) return vj < c->P;
  return false;
}

/* Spec §8 test 2: the temporal mask evaluated in frame-major coordinates
 * (|u(i) - u(j)| < Wt on the token-major indices of frame-major rows) equals
 * the band evaluated after the permutation (the spatial predicate on the
 * permuted rows), for every pair; with the frame-0 sink the permuted side
 * adds frame 0 explicitly. Also the predicate against the definitions. */
static void temporal_mask_equals_permuted_band(void **state) {
  (void)state;
  const int64_t wts[] = {0, 1, 2, 3, 5, 8, 1000};
  for (int ci = 0; ci < NSMALL; ci++)
    for (int si = 0; si < 3; si++)
      for (int incl = 0; incl < 2; incl++)
        for (int wi = 0; wi < 7; wi++) {
          const small_case *c = &smalls[ci];
          sparq_svg_options o = small_opts(c);
          o.sink = sinks[si], o.inclusive_width = incl;
          sparq_svg_options no_sink = o;
          no_sink.sink = SPARQ_SVG_SINK_OFF;
          const int64_t wt = wts[wi];
          const svg_geom g = geom(&o, wt);
          for (int64_t i = 0; i < g.S; i++)
            for (int64_t j = 0; j < g.S; j++) {
              for (int h = 0; h < 3; h++)
                if (sparq_svg_visible(&o, heads[h], wt, i, j) != by_hand(c, o.sink, incl, heads[h], wt, i, j))
                  fail_msg("case %d sink %d incl %d wt %lld head %d: (%lld, %lld) differs from the definition", ci,
                           si, incl, (long long)wt, h, (long long)i, (long long)j);
              const bool temporal = sparq_svg_visible(&o, SPARQ_SVG_TEMPORAL, wt, i, j);
              const int64_t pi = svg_to_current(&g, SPARQ_SVG_TEMPORAL, i), pj = svg_to_current(&g, SPARQ_SVG_TEMPORAL, j);
              bool permuted;
              if (o.sink == SPARQ_SVG_SINK_FRAME0)
                permuted = sparq_svg_visible(&no_sink, SPARQ_SVG_SPATIAL, wt, pi, pj) ||
                           (!svg_is_text(&g, j) && j - g.voff < g.P);
              else
                permuted = sparq_svg_visible(&o, SPARQ_SVG_SPATIAL, wt, pi, pj);
              if (temporal != permuted)
                fail_msg("case %d sink %d incl %d wt %lld: temporal (%lld, %lld) %d but permuted band %d", ci, si,
                         incl, (long long)wt, (long long)i, (long long)j, temporal, permuted);
            }
        }
  /* out of range and unknown heads see nothing */
  sparq_svg_options o = sparq_svg_options_default(2, 2);
  assert_false(sparq_svg_visible(&o, SPARQ_SVG_DENSE, 4, -1, 0));
  assert_false(sparq_svg_visible(&o, SPARQ_SVG_DENSE, 4, 0, 4));
  assert_false(sparq_svg_visible(&o, (sparq_svg_head)5, 4, 0, 0));
  assert_true(sparq_svg_visible(&o, SPARQ_SVG_SPATIAL, 2, 0, 1));
  assert_false(sparq_svg_visible(&o, SPARQ_SVG_SPATIAL, -2, 0, 1)); /* a negative width is 0 */
}

/* svg_keys_of gives, for every row of the current layout, exactly the keys
 * the predicate allows: every text placement, sink mode, head type, both
 * width rules and several widths. */
static void intervals_match_predicate(void **state) {
  (void)state;
  const int64_t wts[] = {0, 1, 2, 4, 7, 1000};
  unsigned char *seen = malloc(64);
  for (int ci = 0; ci < NSMALL; ci++)
    for (int si = 0; si < 3; si++)
      for (int incl = 0; incl < 2; incl++)
        for (int wi = 0; wi < 6; wi++)
          for (int h = 0; h < 3; h++) {
            const small_case *c = &smalls[ci];
            sparq_svg_options o = small_opts(c);
            o.sink = sinks[si], o.inclusive_width = incl;
            const int64_t wt = wts[wi];
            const sparq_svg_head head = heads[h];
            const svg_geom g = geom(&o, wt);
            assert_true(g.S <= 64);
            int64_t pairs = 0;
            for (int64_t i = 0; i < g.S; i++) {
              svg_keys keys;
              svg_keys_of(&g, head, i, &keys);
              assert_true(keys.nseg >= 0 && keys.nseg <= 3 && keys.nf0 >= 0 && keys.nf0 <= 2);
              if (keys.nf0) assert_true(head == SPARQ_SVG_TEMPORAL && o.sink == SPARQ_SVG_SINK_FRAME0);
              memset(seen, 0, 64);
              for (int s = 0; s < keys.nseg; s++) {
                const svg_interval iv = keys.seg[s];
                assert_true(0 <= iv.a && iv.a < iv.b && iv.b <= g.S);
                if (s > 0) assert_true(keys.seg[s - 1].b < iv.a); /* sorted, disjoint, not touching */
                for (int64_t x = iv.a; x < iv.b; x++) seen[x]++;
              }
              for (int s = 0; s < keys.nf0; s++) {
                const svg_interval iv = keys.f0[s];
                assert_true(0 <= iv.a && iv.a < iv.b && iv.b <= g.P);
                if (s > 0) assert_true(keys.f0[s - 1].b <= iv.a);
                for (int64_t p = iv.a; p < iv.b; p++) seen[g.voff + p * g.F]++;
              }
              const int64_t fi = svg_from_current(&g, head, i);
              for (int64_t x = 0; x < g.S; x++) {
                const bool vis = sparq_svg_visible(&o, head, wt, fi, svg_from_current(&g, head, x));
                if (seen[x] != vis)
                  fail_msg("case %d sink %d incl %d wt %lld head %d: row %lld key %lld counted %d, visible %d", ci,
                           si, incl, (long long)wt, h, (long long)i, (long long)x, seen[x], vis);
                pairs += vis;
              }
            }
            assert_int_equal(svg_visible_pairs(&g, head), pairs);
            /* with no frame-0 sink, a permuted temporal head is the spatial predicate on its rows */
            if (head == SPARQ_SVG_TEMPORAL && o.sink != SPARQ_SVG_SINK_FRAME0)
              assert_int_equal(pairs, svg_visible_pairs(&g, SPARQ_SVG_SPATIAL));
          }
  free(seen);
}

/* Spec §8 test 3: the density of a sparse head against the budget. With
 * Wt within one block of W, the band area differs from the formula's by at
 * most 2 Bs / S, the discrete |i - j| < Wt diagonal count by at most 1 / S,
 * and the formula counts the video band over all S rows while the text rows
 * and columns are already dense, a deficit of (L^2 + 2 L Wt) / S^2. So
 *   |density - rho| <= 2 Bs / S + 1 / S + (L^2 + 2 L Wt) / S^2,
 * with density <= rho for the strict (floor) rule. Exact counts are checked
 * against the closed form  2 L S - L^2 + Sv (2 Wt -+ 1) - Wt (Wt -+ 1). */
static void density_matches_budget(void **state) {
  (void)state;
  typedef struct dcase {
    int64_t F, P, L;
    sparq_svg_text text;
    double rho;
  } dcase;
  const dcase cases[] = {
      {8, 256, 0, SPARQ_SVG_TEXT_NONE, 0.25},    {16, 256, 0, SPARQ_SVG_TEXT_NONE, 0.25},
      {8, 256, 0, SPARQ_SVG_TEXT_NONE, 0.10},    {8, 256, 0, SPARQ_SVG_TEXT_NONE, 0.5},
      {13, 160, 226, SPARQ_SVG_TEXT_FIRST, 0.3}, {16, 256, 226, SPARQ_SVG_TEXT_FIRST, 0.25},
      {9, 200, 77, SPARQ_SVG_TEXT_LAST, 0.2},    {21, 128, 0, SPARQ_SVG_TEXT_NONE, 0.3},
      {4, 1000, 30, SPARQ_SVG_TEXT_LAST, 0.75},  {16, 256, 0, SPARQ_SVG_TEXT_NONE, 0.9},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
    for (int incl = 0; incl < 2; incl++) {
      const dcase *c = &cases[ci];
      sparq_svg_options o = sparq_svg_options_default(c->F, c->P);
      o.text_tokens = c->L, o.text = c->text, o.budget = c->rho, o.inclusive_width = incl;
      const svg_geom g = geom(&o, -1);
      const double S = (double)g.S, L = (double)g.L, Wt = (double)g.wt, Sv = (double)g.Sv;
      const int64_t sp = svg_visible_pairs(&g, SPARQ_SVG_SPATIAL), tp = svg_visible_pairs(&g, SPARQ_SVG_TEMPORAL);
      assert_int_equal(sp, tp); /* the permutation only moves the band */
      assert_true(g.wt <= g.Sv);
      const double sgn = incl ? 1.0 : -1.0;
      const double exact = 2 * L * S - L * L + Sv * (2 * Wt + sgn) - Wt * (Wt + sgn);
      if ((double)sp != exact) fail_msg("case %zu incl %d: %lld pairs, closed form %.0f (Wt %lld)", ci, incl, (long long)sp, exact, (long long)g.wt);
      const double density = (double)sp / (S * S);
      const double bound = 2.0 * (double)o.block / S + 1.0 / S + (L * L + 2 * L * Wt) / (S * S);
      if (!(fabs(density - c->rho) <= bound) || (!incl && density > c->rho))
        fail_msg("F %lld P %lld L %lld rho %.2f incl %d: density %.5f (Wt %lld), bound %.5f", (long long)c->F,
                 (long long)c->P, (long long)c->L, c->rho, incl, density, (long long)g.wt, bound);
    }
  /* rho' <= 0: the text rows and columns only (Wt 0), or the diagonal too when inclusive */
  for (int incl = 0; incl < 2; incl++) {
    sparq_svg_options o = sparq_svg_options_default(13, 60);
    o.text_tokens = 226, o.text = SPARQ_SVG_TEXT_FIRST, o.budget = 0.3, o.inclusive_width = incl;
    const svg_geom g = geom(&o, -1);
    assert_int_equal(g.wt, 0);
    assert_int_equal(svg_visible_pairs(&g, SPARQ_SVG_TEMPORAL), 2 * g.L * g.S - g.L * g.L + (incl ? g.Sv : 0));
  }
  /* the sink adds at most P keys per video row */
  sparq_svg_options o = sparq_svg_options_default(8, 256);
  const svg_geom off = geom(&o, -1);
  o.sink = SPARQ_SVG_SINK_PARITY;
  const svg_geom par = geom(&o, -1);
  const int64_t base = svg_visible_pairs(&off, SPARQ_SVG_SPATIAL);
  const int64_t with = svg_visible_pairs(&par, SPARQ_SVG_SPATIAL);
  assert_true(with > base && with <= base + off.Sv * off.P);
  /* a dense head is all S^2 pairs */
  assert_int_equal(svg_visible_pairs(&off, SPARQ_SVG_DENSE), off.S * off.S);
}

/* svg_attention_ref: a dense head equals the FP64 oracle of attention.h,
 * keys outside the mask do not matter, and empty rows give 0. */
static void masked_reference(void **state) {
  (void)state;
  sparq_svg_options o = sparq_svg_options_default(3, 10);
  o.text_tokens = 7, o.text = SPARQ_SVG_TEXT_LAST;
  const int64_t S = 37, d = 12;
  sparq_attn_shape shape = {1, 1, 1, S, S, d};
  float *q = sparq_alloc(S * d * 4, "q"), *k = sparq_alloc(S * d * 4, "k"), *v = sparq_alloc(S * d * 4, "v"),
        *o1 = sparq_alloc(S * d * 4, "o1"), *o2 = sparq_alloc(S * d * 4, "o2");
  double *lse = sparq_alloc(S * 8, "lse");
  assert_int_equal(sparq_attn_make_case(2, &shape, SPARQ_ATTN_HND, 5, q, k, v), SPARQ_OK);
  sparq_attn_options ao = sparq_attn_options_default();
  ao.variant = SPARQ_ATTN_REF_F64;
  assert_int_equal(sparq_attention(q, k, v, o1, &shape, &ao), SPARQ_OK);
  assert_int_equal(svg_attention_ref(&o, SPARQ_SVG_DENSE, -1, q, k, v, o2, NULL, d, 0.0), SPARQ_OK);
  for (int64_t i = 0; i < S * d; i++) assert_true(fabsf(o1[i] - o2[i]) <= 1e-6f * (1.0f + fabsf(o1[i])));
  /* a sparse head: changing invisible keys leaves each row alone */
  for (int h = 0; h < 2; h++) {
    const sparq_svg_head head = heads[h];
    const int64_t wt = 4;
    assert_int_equal(svg_attention_ref(&o, head, wt, q, k, v, o1, lse, d, 0.0), SPARQ_OK);
    const int64_t i = 12; /* a video row */
    float *k2 = sparq_alloc(S * d * 4, "k2"), *v2 = sparq_alloc(S * d * 4, "v2");
    memcpy(k2, k, S * d * 4), memcpy(v2, v, S * d * 4);
    int64_t hidden = 0;
    for (int64_t j = 0; j < S; j++)
      if (!sparq_svg_visible(&o, head, wt, i, j)) {
        for (int64_t e = 0; e < d; e++) k2[j * d + e] = 50.0f, v2[j * d + e] = 1e6f;
        hidden++;
      }
    assert_true(hidden > 0);
    assert_int_equal(svg_attention_ref(&o, head, wt, q, k2, v2, o2, NULL, d, 0.0), SPARQ_OK);
    assert_memory_equal(o1 + i * d, o2 + i * d, d * 4);
    assert_true(isfinite(lse[i]));
    sparq_free(k2), sparq_free(v2);
  }
  /* no text, no sink, width 0: video rows see nothing */
  sparq_svg_options e = sparq_svg_options_default(2, 5);
  assert_int_equal(svg_attention_ref(&e, SPARQ_SVG_SPATIAL, 0, q, k, v, o1, lse, d, 0.0), SPARQ_OK);
  for (int64_t i = 0; i < 10; i++) {
    assert_true(lse[i] == -INFINITY);
    for (int64_t c = 0; c < d; c++) assert_true(o1[i * d + c] == 0.0f);
  }
  /* arguments */
  assert_int_equal(svg_attention_ref(&e, SPARQ_SVG_SPATIAL, 0, NULL, k, v, o1, NULL, d, 0.0), SPARQ_ERR_ARG);
  assert_int_equal(svg_attention_ref(&e, (sparq_svg_head)9, 0, q, k, v, o1, NULL, d, 0.0), SPARQ_ERR_ARG);
  assert_int_equal(svg_attention_ref(&e, SPARQ_SVG_SPATIAL, 0, q, k, v, o1, NULL, 0, 0.0), SPARQ_ERR_ARG);
  assert_int_equal(svg_attention_ref(&e, SPARQ_SVG_SPATIAL, 0, q, k, v, o1, NULL, d, -1.0), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "svg_attention_ref: sm_scale"));
  sparq_free(q), sparq_free(k), sparq_free(v), sparq_free(o1), sparq_free(o2), sparq_free(lse);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults),
      cmocka_unit_test(bad_options_are_named),
      cmocka_unit_test(band_width_formula_and_edges),
      cmocka_unit_test(permutation_round_trip),
      cmocka_unit_test(temporal_mask_equals_permuted_band),
      cmocka_unit_test(intervals_match_predicate),
      cmocka_unit_test(density_matches_budget),
      cmocka_unit_test(masked_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
