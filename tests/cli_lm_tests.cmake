# `sparq train lm`, `generate`, `eval lm`, `plot` and `bench train` on tiny
# configurations. The train test sets up the run directory the others use.
# Uses sparq_cli_test() from cli_core_tests.cmake.
set(LM_RUN ${SPARQ_TEST_TMP}/lm-run)

sparq_cli_test(help_train 0 ARGS help train STDOUT_REGEX "sparq train lm --out RUN_DIR")
sparq_cli_test(train_missing_kind 2 ARGS train --out ${LM_RUN} STDERR_REGEX "expected a model kind: lm")
sparq_cli_test(train_missing_out 2 ARGS train lm --steps 2 STDERR_REGEX "--out RUN_DIR is required")
sparq_cli_test(train_bad_heads 1 ARGS train lm --dim 30 --heads 4 --steps 1 --out ${SPARQ_TEST_TMP}/lm-bad
  STDERR_ONE_LINE STDERR_REGEX "^sparq: GPT config: n_embd 30 is not a multiple of n_head 4")
sparq_cli_test(train_missing_data 1 ARGS train lm --data /nonexistent/text --steps 1 --out ${SPARQ_TEST_TMP}/lm-bad
  STDERR_ONE_LINE STDERR_REGEX "^sparq: /nonexistent/text: ")
sparq_cli_test(train_resume_nothing 1 ARGS train lm --resume --out ${SPARQ_TEST_TMP}/lm-none
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*lm-none/ckpt.safetensors")

sparq_cli_test(train_lm_tiny 0 ARGS --threads 2 train lm --layers 2 --heads 2 --dim 32 --seq 32 --batch 4
  --steps 12 --warmup 2 --eval-every 6 --eval-batches 2 --ckpt-every 5 --out ${LM_RUN}
  STDOUT_REGEX "GPT 2 layers, 2 heads, dim 32, context 32.*done: step 12, train loss [0-9.]+, held-out loss [0-9.]+ nats/byte")
set_tests_properties(cli_train_lm_tiny PROPERTIES FIXTURES_SETUP lm_run)

sparq_cli_test(generate_tiny 0 ARGS generate --ckpt ${LM_RUN}/ckpt.safetensors --prompt "Hello" --tokens 20
  STDOUT_REGEX "^Hello")
sparq_cli_test(eval_lm_json 0 ARGS eval lm --ckpt ${LM_RUN}/ckpt.safetensors --json
  STDOUT_REGEX "^\\{\"loss_nats\":[0-9.]+,\"bits_per_byte\":[0-9.]+,\"tokens\":[0-9]+\\}")
sparq_cli_test(eval_lm_file 0 ARGS eval lm --ckpt ${LM_RUN}/ckpt.safetensors --data ${CMAKE_CURRENT_SOURCE_DIR}/CMakeLists.txt
  STDOUT_REGEX "nats/byte = [0-9.]+ bits/byte over [0-9]+ bytes")
sparq_cli_test(eval_lm_short_file 1 ARGS eval lm --ckpt ${LM_RUN}/ckpt.safetensors --data ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/bad/idx_truncated_data.idx
  STDERR_ONE_LINE STDERR_REGEX "^sparq: ")
sparq_cli_test(generate_not_a_ckpt 1 ARGS generate --ckpt ${CMAKE_CURRENT_SOURCE_DIR}/CMakeLists.txt
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*CMakeLists.txt")
sparq_cli_test(plot_missing_log 1 ARGS plot /nonexistent/log.jsonl --out ${SPARQ_TEST_TMP}/x.png
  STDERR_ONE_LINE STDERR_REGEX "^sparq: /nonexistent/log.jsonl: ")
set_tests_properties(cli_generate_tiny cli_eval_lm_json cli_eval_lm_file cli_eval_lm_short_file PROPERTIES FIXTURES_REQUIRED lm_run)

# A resumed run continues from the step the first one stopped at.
sparq_cli_test(train_lm_stop 0 ARGS --threads 2 train lm --layers 1 --heads 2 --dim 16 --seq 16 --batch 2
  --steps 8 --stop-at 4 --eval-every 0 --eval-batches 1 --out ${SPARQ_TEST_TMP}/lm-resume STDOUT_REGEX "done: step 4,")
sparq_cli_test(train_lm_resume 0 ARGS --threads 2 train lm --layers 1 --heads 2 --dim 16 --seq 16 --batch 2
  --steps 8 --eval-every 0 --eval-batches 1 --resume --out ${SPARQ_TEST_TMP}/lm-resume STDOUT_REGEX "done: step 8,")
set_tests_properties(cli_train_lm_stop PROPERTIES FIXTURES_SETUP lm_resume)
set_tests_properties(cli_train_lm_resume PROPERTIES FIXTURES_REQUIRED lm_resume)

sparq_cli_test(bench_train_small 0 ARGS --threads 2 bench train --layers 1 --heads 2 --dim 32 --seq 32 --batch 2 --steps 2 --json
  STDOUT_REGEX "^\\{\"tokens_per_s\":[0-9.]+,\"ms_per_step\":[0-9.]+,\"mfu\":[0-9.]+,\"threads\":2")
