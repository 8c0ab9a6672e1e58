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

# Class-conditional LMs on the fortunes classes: the CFG baseline (--cond), a
# GFT fine-tune of it (--gft --init), GFT from scratch, and sampling with
# --class and --beta (one forward per token) or --cfg (two).
set(LM_COND ${SPARQ_TEST_TMP}/lm-cond)
set(LM_GFT ${SPARQ_TEST_TMP}/lm-gft)
sparq_cli_test(train_lm_cond_tiny 0 ARGS --threads 2 train lm --cond --layers 1 --heads 2 --dim 16 --seq 16
  --batch 4 --steps 6 --warmup 1 --eval-every 3 --eval-batches 1 --out ${LM_COND}
  STDOUT_REGEX "class-conditional \\(CFG baseline\\) on [0-9]+ fortunes classes.*done: step 6,")
set_tests_properties(cli_train_lm_cond_tiny PROPERTIES FIXTURES_SETUP lm_cond_run)
sparq_cli_test(train_lm_gft_init 0 ARGS --threads 2 train lm --gft --init ${LM_COND}/ckpt.safetensors --batch 4
  --steps 4 --warmup 1 --eval-every 2 --eval-batches 1 --out ${LM_GFT}
  STDOUT_REGEX "GPT 1 layers, 2 heads, dim 16, context 16.*guidance-free training \\(GFT\\).*from .*lm-cond/ckpt.safetensors.*done: step 4,")
set_tests_properties(cli_train_lm_gft_init PROPERTIES FIXTURES_REQUIRED lm_cond_run FIXTURES_SETUP lm_gft_run)
sparq_cli_test(train_lm_gft_scratch 0 ARGS --threads 2 train lm --gft --layers 1 --heads 2 --dim 16 --seq 16
  --batch 4 --steps 3 --warmup 1 --eval-every 0 --eval-batches 1 --out ${SPARQ_TEST_TMP}/lm-gft-scratch
  STDOUT_REGEX "guidance-free training \\(GFT\\).*done: step 3,")

sparq_cli_test(generate_gft_beta 0 ARGS generate --ckpt ${LM_GFT}/ckpt.safetensors --class linux --beta 0.5
  --prompt "Linux" --tokens 20 STDOUT_REGEX "^Linux" STDERR_REGEX "gft_beta 0.5: NFE 1 per token")
sparq_cli_test(generate_cond_cfg 0 ARGS generate --ckpt ${LM_COND}/ckpt.safetensors --class 2 --cfg 2
  --prompt "A" --tokens 20 STDOUT_REGEX "^A" STDERR_REGEX "class 2, CFG w 2: NFE 2 per token")
sparq_cli_test(generate_beta_not_gft 2 ARGS generate --ckpt ${LM_COND}/ckpt.safetensors --class 2 --beta 0.5
  STDERR_REGEX "--beta needs a GFT checkpoint")
sparq_cli_test(generate_beta_above_1 2 ARGS generate --ckpt ${LM_GFT}/ckpt.safetensors --class 2 --beta 1.5
  STDERR_REGEX "gft_beta 1.5 is outside \\(0, 1\\]")
sparq_cli_test(generate_cfg_below_1 2 ARGS generate --ckpt ${LM_COND}/ckpt.safetensors --class 2 --cfg 0.5
  STDERR_REGEX "--cfg 0.5 is below 1")
sparq_cli_test(generate_class_range 2 ARGS generate --ckpt ${LM_GFT}/ckpt.safetensors --class 999
  STDERR_REGEX "--class 999 is outside 0\\.\\.[0-9]+")
sparq_cli_test(generate_class_name 2 ARGS generate --ckpt ${LM_GFT}/ckpt.safetensors --class no-such-file
  STDERR_REGEX "--class 'no-such-file' is not one of the checkpoint's classes \\(art,")
sparq_cli_test(generate_class_uncond 2 ARGS generate --ckpt ${LM_RUN}/ckpt.safetensors --class 1
  STDERR_REGEX "need a class-conditional checkpoint")
set_tests_properties(cli_generate_cond_cfg cli_generate_beta_not_gft cli_generate_cfg_below_1
  PROPERTIES FIXTURES_REQUIRED lm_cond_run)
set_tests_properties(cli_generate_gft_beta cli_generate_beta_above_1 cli_generate_class_range
  cli_generate_class_name PROPERTIES FIXTURES_REQUIRED lm_gft_run)
set_tests_properties(cli_generate_class_uncond PROPERTIES FIXTURES_REQUIRED lm_run)

sparq_cli_test(train_lm_gft_data_file 2 ARGS train lm --gft --data ${CMAKE_CURRENT_SOURCE_DIR}/CMakeLists.txt
  --steps 1 --out ${SPARQ_TEST_TMP}/lm-bad STDERR_REGEX "has no class labels")
sparq_cli_test(train_lm_init_needs_gft 2 ARGS train lm --cond --init ${SPARQ_TEST_TMP}/none.safetensors --steps 1
  --out ${SPARQ_TEST_TMP}/lm-bad STDERR_REGEX "--init CKPT starts a --gft run")
sparq_cli_test(train_lm_gft_init_uncond 1 ARGS --threads 2 train lm --gft --init ${LM_RUN}/ckpt.safetensors --steps 1
  --out ${SPARQ_TEST_TMP}/lm-bad STDERR_ONE_LINE STDERR_REGEX "^sparq: .*--init needs a conditional checkpoint")
set_tests_properties(cli_train_lm_gft_init_uncond PROPERTIES FIXTURES_REQUIRED lm_run)
