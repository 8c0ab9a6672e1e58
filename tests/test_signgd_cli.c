/* `sparq signgd` end to end on a small problem: the log's keys and shape,
 * the files a run leaves, and determinism across thread counts through the
 * command line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_file_util.h"

static char *slurp(const char *path) {
  char *text = test_slurp(path, NULL);
  if (!text) fail_msg("cannot read %s", path);
  return text;
}

static int run(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' %s >'%s/signgd_cli.out' 2>&1", SPARQ_CLI, args, SPARQ_TEST_TMP);
  int rc = system(cmd);
  assert_true(WIFEXITED(rc));
  return WEXITSTATUS(rc);
}

static void the_log_has_every_key_on_every_line(void **state) {
  (void)state;
  char dir[512], args[1024], path[600];
  snprintf(dir, sizeof dir, "%s/signgd_cli_run", SPARQ_TEST_TMP);
  snprintf(args, sizeof args, "signgd --d 200 --s 8 --n 8 --m 3 --steps 70 --snr 0.5 --no-plots --out '%s'", dir);
  assert_int_equal(run(args), 0);
  snprintf(path, sizeof path, "%s/log.jsonl", dir);
  char *log = slurp(path);
  static const char *const keys[] = {"step", "train_loss", "test_loss", "test_error", "value_signal", "value_noise",
                                     "q_signal", "k_signal", "q_noise", "k_noise", "q_noise_pos", "k_noise_pos",
                                     "alignment", "s11", "s21", "q_vote", "k_vote", "q_flip", "k_flip"};
  int lines = 0, last_step = -1;
  for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"), lines++) {
    cJSON *obj = cJSON_Parse(line);
    if (!obj || !cJSON_IsObject(obj)) fail_msg("line %d is not a JSON object: %s", lines + 1, line);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
      if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, keys[k])))
        fail_msg("line %d: no number for key %s", lines + 1, keys[k]);
    const int step = cJSON_GetObjectItemCaseSensitive(obj, "step")->valueint;
    assert_true(step > last_step);
    last_step = step;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "q_signal_neuron");
    assert_true(cJSON_IsArray(q) && cJSON_GetArraySize(q) == 3);
    cJSON_Delete(obj);
  }
  /* steps 0..50, then 60 and 70, plus t_conv when it falls between */
  assert_true(lines == 53 || lines == 54);
  assert_int_equal(last_step, 70);
  free(log);
  const char *files[] = {"table.md", "runs.csv", "trace.dat", "plots.gp"};
  for (size_t i = 0; i < 4; i++) {
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 0);
  }
}

static void the_log_is_the_same_at_any_thread_count(void **state) {
  (void)state;
  char a[512], b[512], args[1024];
  snprintf(a, sizeof a, "%s/signgd_cli_t1", SPARQ_TEST_TMP);
  snprintf(b, sizeof b, "%s/signgd_cli_t2", SPARQ_TEST_TMP);
  snprintf(args, sizeof args, "--threads 1 signgd --optim gd --d 150 --s 6 --n 8 --steps 30 --no-plots --out '%s'", a);
  assert_int_equal(run(args), 0);
  snprintf(args, sizeof args, "--threads 2 signgd --optim gd --d 150 --s 6 --n 8 --steps 30 --no-plots --out '%s'", b);
  assert_int_equal(run(args), 0);
  char pa[600], pb[600];
  snprintf(pa, sizeof pa, "%s/log.jsonl", a);
  snprintf(pb, sizeof pb, "%s/log.jsonl", b);
  char *la = slurp(pa), *lb = slurp(pb);
  assert_string_equal(la, lb);
  free(la);
  free(lb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(the_log_has_every_key_on_every_line),
      cmocka_unit_test(the_log_is_the_same_at_any_thread_count),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
