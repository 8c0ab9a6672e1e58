/* The memory ledger of a training run (spec coat-fp8.md section 7): exact
 * bytes of parameters, gradients, optimizer state and saved activations,
 * and the process's resident memory as the kernel reports it. */
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sparq/train.h"
#include "train/trainer_internal.h"

sparq_memory_ledger sparq_memory_ledger_make(const sparq_param_list *pl, sparq_optim optim, float momentum,
                                             size_t activation_bytes) {
  const size_t n = pl ? sparq_params_count(pl) : 0;
  sparq_memory_ledger l = {.params_bytes = 4 * n, .grads_bytes = 4 * n, .activation_bytes = activation_bytes,
                           .activations_reported = true};
  switch (optim) {
    case SPARQ_OPTIM_ADAMW: l.optimizer_state_bytes = 8 * n; break;
    case SPARQ_OPTIM_SIGNGD: l.optimizer_state_bytes = momentum > 0 ? 4 * n : 0; break;
    case SPARQ_OPTIM_ADAMW_FP8:
    case SPARQ_OPTIM_ADAMW_FP8_NODRE: l.optimizer_state_bytes = sparq_adamw_fp8_state_bytes(pl); break;
  }
  l.total_bytes = l.params_bytes + l.grads_bytes + l.optimizer_state_bytes + l.activation_bytes;
  return l;
}

size_t trainer_rss_now(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int got = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  const long page = sysconf(_SC_PAGESIZE);
  return got == 2 && page > 0 ? (size_t)resident * (size_t)page : 0;
}

size_t trainer_rss_peak(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) return 0;
  return (size_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
}

sparq_status trainer_memory_json(const char *path, const sparq_memory_ledger *l, size_t peak_rss, size_t rss_start) {
  char line[512], act[32] = "null";
  if (l->activations_reported) snprintf(act, sizeof act, "%zu", l->activation_bytes);
  const int n = snprintf(line, sizeof line,
                         "{\"params_bytes\":%zu,\"grads_bytes\":%zu,\"optimizer_state_bytes\":%zu,"
                         "\"activation_bytes\":%s,\"total_bytes\":%zu,\"peak_rss_bytes\":%zu,\"rss_start_bytes\":%zu}\n",
                         l->params_bytes, l->grads_bytes, l->optimizer_state_bytes, act, l->total_bytes, peak_rss,
                         rss_start);
  if (n < 0 || (size_t)n >= sizeof line) return sparq_fail(SPARQ_ERR_IO, "%s: ledger line too long", path);
  return sparq_write_file_atomic(path, line, (size_t)n);
}
