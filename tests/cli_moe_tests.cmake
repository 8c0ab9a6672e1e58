# `sparq train lm --moe relu|topk` (ReMoE and the TopK baseline), eval and
# generate on an MoE checkpoint, resume, the MoE plot, `bench remoe` on a
# tiny configuration, and the flag checks. Uses sparq_cli_test() from
# cli_core_tests.cmake. One thread: these runs are a few milliseconds of
# work each, where two threads only add synchronisation.
set(MOE_RUN ${SPARQ_TEST_TMP}/moe-relu)
set(MOE_TINY --layers 2 --heads 2 --dim 16 --seq 16 --batch 4 --warmup 2 --eval-batches 1)

sparq_cli_test(train_moe_relu 0 ARGS --threads 1 train lm --moe relu --experts 4 --topk 1 ${MOE_TINY}
  --steps 12 --eval-every 6 --lambda0 1e-3 --out ${MOE_RUN}
  STDOUT_REGEX "MoE \\(relu router\\) in 2 of 2 blocks, 4 experts, top-k 1.*done: step 12,.*active experts per byte: [0-9.]+ for the 8 most frequent bytes")
set_tests_properties(cli_train_moe_relu PROPERTIES FIXTURES_SETUP moe_run)
sparq_cli_test(train_moe_topk 0 ARGS --threads 1 train lm --moe topk --experts 3 --topk 2 --moe-layers 1 --aux 0.05
  ${MOE_TINY} --steps 4 --eval-every 0 --out ${SPARQ_TEST_TMP}/moe-topk
  STDOUT_REGEX "MoE \\(topk router\\) in 1 of 2 blocks, 3 experts, top-k 2.*done: step 4,")
sparq_cli_test(eval_lm_moe 0 ARGS --threads 1 eval lm --ckpt ${MOE_RUN}/ckpt.safetensors --data ${CMAKE_CURRENT_SOURCE_DIR}/CMakeLists.txt
  STDOUT_REGEX "nats/byte = [0-9.]+ bits/byte over [0-9]+ bytes")
sparq_cli_test(generate_moe 0 ARGS --threads 1 generate --ckpt ${MOE_RUN}/ckpt.safetensors --prompt "The " --tokens 16
  STDOUT_REGEX "^The ")
sparq_cli_test(plot_moe 0 ARGS plot ${MOE_RUN}/log.jsonl --out ${SPARQ_TEST_TMP}/moe-relu.png
  STDOUT_REGEX "plot: .*moe-relu.png \\(12 MoE steps: sparsity and lambda")
sparq_cli_test(inspect_moe 0 ARGS inspect --no-stats ${MOE_RUN}/ckpt.safetensors
  STDOUT_REGEX "transformer.h.1.mlp.experts.c_fc.weight +F32 +\\[4, 64, 16\\].*moe_lambda = [0-9.e+-]+")
set_tests_properties(cli_eval_lm_moe cli_generate_moe cli_plot_moe cli_inspect_moe PROPERTIES FIXTURES_REQUIRED moe_run)
# gnuplot is optional on a build machine
find_program(SPARQ_GNUPLOT gnuplot)
if(NOT SPARQ_GNUPLOT)
  set_tests_properties(cli_plot_moe PROPERTIES DISABLED TRUE)
endif()

# stop and resume: lambda and the logs continue (the bit-exactness is checked in test_moe_gpt)
sparq_cli_test(train_moe_stop 0 ARGS --threads 1 train lm --moe relu --experts 3 ${MOE_TINY} --steps 8 --stop-at 4
  --eval-every 0 --out ${SPARQ_TEST_TMP}/moe-resume STDOUT_REGEX "done: step 4,")
sparq_cli_test(train_moe_resume 0 ARGS --threads 1 train lm --resume ${MOE_TINY} --steps 8 --eval-every 0
  --out ${SPARQ_TEST_TMP}/moe-resume STDOUT_REGEX "MoE \\(relu router\\).*done: step 8,")
set_tests_properties(cli_train_moe_stop PROPERTIES FIXTURES_SETUP moe_resume)
set_tests_properties(cli_train_moe_resume PROPERTIES FIXTURES_REQUIRED moe_resume)

sparq_cli_test(bench_remoe_tiny 0 ARGS --threads 1 bench remoe --out ${SPARQ_TEST_TMP}/bench-remoe --layers 1 --dim 16
  --heads 2 --seq 16 --batch 4 --steps 6 --warmup 1 --eval-every 3 --eval-batches 1 --experts 4
  --throughput-steps 1 --throughput-rounds 1
  STDOUT_REGEX "\\| remoe-lb \\| [0-9.]+ \\|.*\\| remoe-plain \\|.*throughput .*TopK k=1 of E=4 [0-9]+ tokens/s \\([0-9.]+x dense\\), ReMoE checkpoint")

# flag checks: usage errors (exit 2) with a message naming the problem
set(MOE_BAD ${SPARQ_TEST_TMP}/moe-bad)
sparq_cli_test(train_moe_bad_router 2 ARGS train lm --moe softmax --out ${MOE_BAD}
  STDERR_REGEX "--moe must be one of relu\\|topk, got 'softmax'")
sparq_cli_test(train_moe_topk_gt_experts 2 ARGS train lm --moe relu --experts 2 --topk 3 --out ${MOE_BAD}
  STDERR_REGEX "--topk 3 is more than --experts 2")
sparq_cli_test(train_moe_flags_without_moe 2 ARGS train lm --experts 4 --out ${MOE_BAD}
  STDERR_REGEX "need --moe relu\\|topk")
sparq_cli_test(train_moe_aux_on_relu 2 ARGS train lm --moe relu --aux 0.01 --out ${MOE_BAD}
  STDERR_REGEX "--aux is TopK's aux-loss coefficient")
sparq_cli_test(train_moe_l1_on_topk 2 ARGS train lm --moe topk --l1 plain --out ${MOE_BAD}
  STDERR_REGEX "--l1, --lambda0 and --alpha set ReMoE's regulariser")
sparq_cli_test(train_moe_bad_layers 2 ARGS train lm --moe relu --layers 2 --moe-layers 0,2 --out ${MOE_BAD}
  STDERR_REGEX "--moe-layers '0,2' is not 'all' or a comma list of layers 0..1")
sparq_cli_test(train_moe_with_cond 2 ARGS train lm --moe relu --cond --out ${MOE_BAD}
  STDERR_REGEX "--moe does not combine with --cond or --gft")
sparq_cli_test(train_moe_bad_alpha 2 ARGS train lm --moe relu --alpha 1 --out ${MOE_BAD}
  STDERR_REGEX "--alpha 1 is out of range")
sparq_cli_test(train_moe_bad_experts 2 ARGS train lm --moe relu --experts 0 --out ${MOE_BAD}
  STDERR_REGEX "--experts 0 is out of range")
