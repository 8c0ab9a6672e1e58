/* The fortunes loader's file list, for the labelled view of the corpus
 * (fortunes_classes.c): the files in the order, and with the sizes, they
 * were concatenated. */
#ifndef SPARQ_DATA_FORTUNES_INTERNAL_H
#define SPARQ_DATA_FORTUNES_INTERNAL_H

#include <stddef.h>

#include "sparq/data.h"

typedef struct fortunes_file {
  char *name;  /* owned */
  size_t size; /* bytes taken from it into the corpus */
} fortunes_file;

/* sparq_fortunes_load, handing back the files too when files is non-NULL
 * (free them with fortunes_files_free; NULL and 0 on failure). */
sparq_status fortunes_load_files(const char *dir, sparq_text_corpus *out, fortunes_file **files, size_t *count);
void fortunes_files_free(fortunes_file *files, size_t count);

#endif
