/* Where the weights shipped in models/ live. The build passes both
 * candidate directories in: SPARQ_MODELS_SOURCE_DIR (models/ of the source
 * tree) and SPARQ_MODELS_INSTALL_DIR (DATADIR/sparq of the install prefix);
 * a build without them finds nothing. */
#include <stdio.h>
#include <unistd.h>

#include "sparq/io.h"

sparq_status sparq_shipped_model_path(const char *file, char *out, size_t size) {
  if (!file || !*file || !out || size == 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_shipped_model_path: bad argument");
  static const char *const dirs[] = {
#ifdef SPARQ_MODELS_SOURCE_DIR
      SPARQ_MODELS_SOURCE_DIR,
#endif
#ifdef SPARQ_MODELS_INSTALL_DIR
      SPARQ_MODELS_INSTALL_DIR,
#endif
      NULL};
  /* the source tree first: a developer's freshly trained file beats an
   * older installed copy, and an installed build without its source tree
   * falls through to DATADIR */
  for (int i = 0; dirs[i]; i++) {
    int n = snprintf(out, size, "%s/%s", dirs[i], file);
    if (n > 0 && (size_t)n < size && access(out, R_OK) == 0) return SPARQ_OK;
  }
  out[0] = '\0';
  return sparq_fail(SPARQ_ERR_NOT_FOUND,
                    "%s: the shipped weights are neither in the source tree's models/ nor in the install's data "
                    "directory",
                    file);
}
