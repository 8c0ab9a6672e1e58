/* A program outside the tree, built against an installed sparq through
 * pkg-config: proves the headers, library and sparq.pc are complete. */
#include <sparq/sparq.h>
#include <stdio.h>

int main(void) {
  float a[4] = {1, 2, 3, 4}, c[4];
  sparq_status s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 2, 1, a, 2, a, 2, 0, c, 2);
  printf("sparq %s: %s, c[3] = %g\n", sparq_version(), sparq_status_name(s), c[3]);
  return s == SPARQ_OK && c[3] == 22.0f ? 0 : 1;
}
