# COAT (spec coat-fp8.md) from the command line: `train lm` with the FP8
# optimizers and FP8 activations, its checkpoint's F8 tensors, stop and
# resume, the memory ledger line, `bench coat` and `bench optim` on a tiny
# configuration, and the flag checks. Uses sparq_cli_test() from cli_core_tests.cmake.
set(COAT_RUN ${SPARQ_TEST_TMP}/coat-act)
set(COAT_TINY --layers 2 --heads 2 --dim 32 --seq 16 --batch 4 --warmup 2 --eval-batches 1)

sparq_cli_test(train_coat_act 0 ARGS --threads 1 train lm --optim adamw-fp8 --fp8-act ${COAT_TINY} --steps 6
  --eval-every 3 --out ${COAT_RUN}
  STDOUT_REGEX "adamw-fp8.*FP8 activations.*done: step 6,.*memory: parameters 136704 B, gradients 136704 B, optimizer state 75024 B, saved activations [0-9]+ B")
set_tests_properties(cli_train_coat_act PROPERTIES FIXTURES_SETUP coat_run)
sparq_cli_test(inspect_coat 0 ARGS inspect --no-stats ${COAT_RUN}/ckpt.safetensors
  STDOUT_REGEX "optimizer.exp_avg.transformer.wte.weight +F8_E4M3 +\\[256, 32\\].*optimizer.expand_exp_avg_sq.transformer.wte.weight +F32 +\\[64\\].*fp8_activations = true")
set_tests_properties(cli_inspect_coat PROPERTIES FIXTURES_REQUIRED coat_run)

sparq_cli_test(train_coat_nodre_e5m2 0 ARGS --threads 1 train lm --optim adamw-fp8-nodre --fp8-m e5m2 --fp8-v e5m2
  --fp8-shadow ${COAT_TINY} --steps 3 --eval-every 0 --out ${SPARQ_TEST_TMP}/coat-nodre STDOUT_REGEX "done: step 3,")

# stop and resume (bit-exactness itself is checked in test_coat_trainer)
# (the resume keeps FP8 activations from the checkpoint's metadata without the flag)
sparq_cli_test(train_coat_stop 0 ARGS --threads 1 train lm --optim adamw-fp8 --fp8-act ${COAT_TINY} --steps 6
  --stop-at 3 --eval-every 0 --out ${SPARQ_TEST_TMP}/coat-resume STDOUT_REGEX "done: step 3,")
sparq_cli_test(train_coat_resume 0 ARGS --threads 1 train lm --resume --optim adamw-fp8 ${COAT_TINY} --steps 6
  --eval-every 0 --out ${SPARQ_TEST_TMP}/coat-resume STDOUT_REGEX "FP8 activations saved for backward.*done: step 6,")
sparq_cli_test(train_coat_resume_wrong_optim 1 ARGS --threads 1 train lm --resume --optim adamw ${COAT_TINY}
  --steps 6 --eval-every 0 --out ${SPARQ_TEST_TMP}/coat-resume STDERR_REGEX "optimizer")
set_tests_properties(cli_train_coat_stop PROPERTIES FIXTURES_SETUP coat_resume)
set_tests_properties(cli_train_coat_resume cli_train_coat_resume_wrong_optim PROPERTIES FIXTURES_REQUIRED coat_resume)
set_tests_properties(cli_train_coat_resume PROPERTIES DEPENDS cli_train_coat_resume_wrong_optim)

sparq_cli_test(bench_coat_tiny 0 ARGS --threads 1 bench coat --out ${SPARQ_TEST_TMP}/bench-coat --layers 1 --dim 32
  --heads 2 --seq 16 --batch 4 --steps 4 --warmup 1 --eval-every 2 --eval-batches 1
  STDOUT_REGEX "\\| fp32 \\| [0-9.]+ \\| \\+0.00% .*\\| fp8-nodre \\| .*\\| coat \\| .*\\| coat-act \\| [0-9.]+ \\| [+-][0-9.]+% \\| [0-9.]+ MB \\([0-9.]+x\\)")

sparq_cli_test(bench_optim_tiny 0 ARGS --threads 1 bench optim --layers 1 --dim 32 --heads 2 --seq 16 --reps 2 --json
  STDOUT_REGEX "\"optim\":\"adamw\".*\"vs_adamw\":1.000.*\"optim\":\"adamw-fp8-nodre\".*\"optim\":\"adamw-fp8\",\"params\":[0-9]+")
sparq_cli_test(bench_optim_bad_reps 2 ARGS bench optim --reps 0 STDERR_REGEX "reps")

sparq_cli_test(train_fp8_shadow_needs_fp8 2 ARGS train lm --fp8-shadow --out ${SPARQ_TEST_TMP}/coat-bad
  STDERR_REGEX "--fp8-shadow.*adamw-fp8")
sparq_cli_test(train_fp8_act_moe 2 ARGS train lm --fp8-act --moe relu --out ${SPARQ_TEST_TMP}/coat-bad
  STDERR_REGEX "--fp8-act")
sparq_cli_test(train_fp8_bad_format 2 ARGS train lm --optim adamw-fp8 --fp8-m e3m4 --out ${SPARQ_TEST_TMP}/coat-bad
  STDERR_REGEX "fp8-m")
