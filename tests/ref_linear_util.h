/* The double-precision linear layer the model tests' references share. */
#ifndef SPARQ_TEST_REF_LINEAR_UTIL_H
#define SPARQ_TEST_REF_LINEAR_UTIL_H

/* out[N,OC] = in[N,Cin] w[OC,Cin]^T + b */
static void ref_linear(double *out, const double *in, const double *w, const double *b, int N, int Cin, int OC) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b ? b[o] : 0.0;
      for (int i = 0; i < Cin; i++) s += in[n * Cin + i] * w[o * Cin + i];
      out[n * OC + o] = s;
    }
}

#endif
