/* sparq export dit: a DiT checkpoint's weights alone (its EMA weights by
 * default), in FP32, FP16 or BF16, for shipping or for PyTorch. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

int cli_export(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "dit") != 0) return cli_usage_error("export", "expected a model kind: dit");
  const char *ckpt = NULL, *out = NULL, *dtype = "f32";
  bool raw = false;
  cli_dit_info info;
  const cli_opt opts[] = {
      {"ckpt", CLI_STRING, &ckpt, 0, 0, NULL},
      {"out", CLI_STRING, &out, 0, 0, NULL},
      {"dtype", CLI_CHOICE, &dtype, 0, 0, "f32|f16|bf16"},
      {"raw", CLI_BOOL, &raw, 0, 0, NULL},
  };
  int rc = cli_parse("export", argc, argv, 2, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  if (!ckpt || !out) return cli_usage_error("export", "--ckpt CKPT and --out FILE are required");
  sparq_dit *dit = NULL;
  sparq_diffusion diff = {0};
  if ((rc = cli_load_dit(ckpt, raw, &dit, &diff, &info))) return rc;
  const sparq_metadata_entry *dm = NULL;
  size_t dn = 0;
  sparq_dit_checkpoint_info(dit, &dm, &dn);
  sparq_metadata_entry meta[41];
  size_t n = 0;
  for (size_t i = 0; i < dn && n < 38; i++) meta[n++] = dm[i];
  meta[n++] = (sparq_metadata_entry){"schedule", sparq_diff_kind_name(diff.kind)};
  meta[n++] = (sparq_metadata_entry){"pred", sparq_diff_pred_name(diff.pred)};
  meta[n++] = (sparq_metadata_entry){"guidance", info.gft ? "gft" : "cfg"};
  const sparq_dtype dt = !strcmp(dtype, "f16") ? SPARQ_F16 : !strcmp(dtype, "bf16") ? SPARQ_BF16 : SPARQ_F32;
  if (sparq_params_export(out, sparq_dit_params(dit), dt, meta, n)) rc = cli_fail_last_error();
  else
    printf("export: %s (the %s weights of %s, %zu parameters, %s)\n", out, info.used_ema ? "EMA" : "plain", ckpt,
           sparq_params_count(sparq_dit_params(dit)), dtype);
  sparq_dit_free(dit);
  sparq_diffusion_free(&diff);
  return rc;
}
