/* Where the shipped classifier weights live (see
 * sparq_classifier_default_path in classifier.h). The build passes both
 * candidate paths in: SPARQ_CLASSIFIER_SOURCE_PATH (models/ of the source
 * tree) and SPARQ_CLASSIFIER_INSTALL_PATH (DATADIR/sparq of the install
 * prefix); a build without them only has the environment variable. */
#include <stdlib.h>
#include <unistd.h>

#include "sparq/classifier.h"

const char *sparq_classifier_default_path(void) {
  const char *env = getenv(SPARQ_CLASSIFIER_ENV);
  if (env && *env) return env;
  static const char *const candidates[] = {
#ifdef SPARQ_CLASSIFIER_SOURCE_PATH
      SPARQ_CLASSIFIER_SOURCE_PATH,
#endif
#ifdef SPARQ_CLASSIFIER_INSTALL_PATH
      SPARQ_CLASSIFIER_INSTALL_PATH,
#endif
      NULL};
  /* the source tree first: a developer's freshly trained file beats an
   * older installed copy, and an installed build without its source tree
   * falls through to DATADIR */
  for (int i = 0; candidates[i]; i++)
    if (access(candidates[i], R_OK) == 0) return candidates[i];
  sparq_fail(SPARQ_ERR_NOT_FOUND,
             "the classifier weights " SPARQ_CLASSIFIER_FILE " are neither in the source tree's models/ nor in "
             "the install's data directory; set " SPARQ_CLASSIFIER_ENV " to the file or train one with "
             "`sparq train classifier`");
  return NULL;
}
