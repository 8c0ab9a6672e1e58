/* Where the shipped classifier weights live (see
 * sparq_classifier_default_path in classifier.h). */
#include <stdlib.h>

#include "sparq/classifier.h"

const char *sparq_classifier_default_path(void) {
  const char *env = getenv(SPARQ_CLASSIFIER_ENV);
  if (env && *env) return env;
  static char path[4096];
  if (sparq_shipped_model_path(SPARQ_CLASSIFIER_FILE, path, sizeof path) == SPARQ_OK) return path;
  sparq_fail(SPARQ_ERR_NOT_FOUND,
             "the classifier weights " SPARQ_CLASSIFIER_FILE " are neither in the source tree's models/ nor in "
             "the install's data directory; set " SPARQ_CLASSIFIER_ENV " to the file or train one with "
             "`sparq train classifier`");
  return NULL;
}
