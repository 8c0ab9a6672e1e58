/* Every malformed fixture in tests/fixtures/bad/ is refused by its reader
 * with the status and message fragment listed in bad_expected.json, and
 * the message starts with the file's path. The manifest and the directory
 * must list the same files, so a new fixture cannot go unchecked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "io_test_util.h"

static sparq_status read_with(const char *reader, const char *path) {
  if (!strcmp(reader, "safetensors")) {
    sparq_safetensors *st = (sparq_safetensors *)1;
    sparq_status s = sparq_safetensors_open(path, &st);
    if (!s) sparq_safetensors_close(st);
    else assert_null(st);
    return s;
  }
  sparq_tensor t = {.ndim = 5};
  sparq_status s = !strcmp(reader, "npy") ? sparq_npy_read(path, &t) : sparq_idx_read(path, &t);
  if (!s) sparq_tensor_free(&t);
  else assert_null(t.data);
  return s;
}

static void every_bad_fixture_is_refused(void **state) {
  (void)state;
  cJSON *manifest = io_load_json(SPARQ_FIXTURES "/bad_expected.json");
  assert_non_null(manifest);
  int count = 0, failures = 0;
  for (const cJSON *e = manifest->child; e; e = e->next, count++) {
    const char *reader = cJSON_GetObjectItem(e, "reader")->valuestring;
    const char *status = cJSON_GetObjectItem(e, "status")->valuestring;
    const char *contains = cJSON_GetObjectItem(e, "contains")->valuestring;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", IO_BAD, e->string);
    sparq_status s = read_with(reader, path);
    if (strcmp(sparq_status_name(s), status) || !io_error_names(path) || !strstr(sparq_last_error(), contains)) {
      fprintf(stderr, "%s: got %s '%s', expected %s containing '%s'\n", e->string, sparq_status_name(s),
              sparq_last_error(), status, contains);
      failures++;
    }
    /* from memory too, under another name */
    size_t size;
    char *bytes = test_slurp(path, &size);
    sparq_status m;
    if (!strcmp(reader, "safetensors")) {
      sparq_safetensors *st;
      m = sparq_safetensors_open_memory(bytes, size, "mem", &st);
    } else {
      sparq_tensor t;
      m = !strcmp(reader, "npy") ? sparq_npy_read_memory(bytes, size, "mem", &t) : sparq_idx_read_memory(bytes, size, "mem", &t);
    }
    if (m != s || !io_error_names("mem")) {
      fprintf(stderr, "%s: from memory got %s\n", e->string, sparq_status_name(m));
      failures++;
    }
    free(bytes);
  }
  assert_int_equal(failures, 0);
  assert_true(count >= 30);
  /* the directory holds exactly the manifest's files */
  assert_int_equal(io_count_files(IO_BAD, "."), count + 2); /* + "." and ".." */
  cJSON_Delete(manifest);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_bad_fixture_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
