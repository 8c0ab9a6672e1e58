# `sparq train dit` (Fashion-MNIST and the 2-D toy), `sparq sample` and
# `sparq eval fd` on tiny configurations. The train test sets up the run
# directory the others use. Uses sparq_cli_test() from cli_core_tests.cmake.
set(DIT_RUN ${SPARQ_TEST_TMP}/dit-run)

sparq_cli_test(help_train_dit 0 ARGS help train STDOUT_REGEX "sparq train dit --out RUN_DIR")
sparq_cli_test(help_sample 0 ARGS help sample STDOUT_REGEX "sparq sample --ckpt CKPT")
sparq_cli_test(help_eval_fd 0 ARGS help eval STDOUT_REGEX "sparq eval fd --ckpt CKPT")
sparq_cli_test(train_dit_missing_out 2 ARGS train dit --steps 2 STDERR_REGEX "--out RUN_DIR is required")
sparq_cli_test(train_dit_bad_heads 1 ARGS train dit --dim 30 --heads 4 --steps 1 --out ${SPARQ_TEST_TMP}/dit-bad
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*hidden_size")
sparq_cli_test(train_dit_bad_schedule 2 ARGS train dit --schedule cosine --out ${SPARQ_TEST_TMP}/dit-bad
  STDERR_REGEX "schedule")

sparq_cli_test(train_dit_tiny 0 ARGS --threads 2 train dit --dim 32 --depth 1 --heads 2 --batch 8 --steps 4
  --warmup 1 --eval-every 2 --eval-batches 1 --ckpt-every 2 --out ${DIT_RUN}
  STDOUT_REGEX "DiT patch 4 \\(49 tokens\\), dim 32, depth 1, 2 heads.*done: step 4, train loss [0-9.]+, held-out loss [0-9.]+")
set_tests_properties(cli_train_dit_tiny PROPERTIES FIXTURES_SETUP dit_run)

# CFG doubles the network work; Heun makes 2 steps - 1 evaluations.
sparq_cli_test(sample_cfg 0 ARGS sample --ckpt ${DIT_RUN}/ckpt.safetensors --n 12 --steps 3 --cfg 2
  --grid ${SPARQ_TEST_TMP}/dit-grid.png --npy ${SPARQ_TEST_TMP}/dit-samples.npy --gif ${SPARQ_TEST_TMP}/dit-traj.gif
  STDOUT_REGEX "NFE 6 per image \\(3 network calls\\).*grid: .*npy: .*gif: ")
sparq_cli_test(sample_heun_sage 0 ARGS sample --ckpt ${DIT_RUN}/ema.safetensors --n 4 --steps 3 --sampler heun
  --attn sage_cpu --class 7 --npy ${SPARQ_TEST_TMP}/dit-heun.npy STDOUT_REGEX "heun 3 steps.*sage_cpu: NFE 5 per image")
sparq_cli_test(sample_bad_class 2 ARGS sample --ckpt ${DIT_RUN}/ckpt.safetensors --class 10 --npy ${SPARQ_TEST_TMP}/x.npy
  STDERR_REGEX "--class must be all or a class in 0..9")
sparq_cli_test(sample_no_output 2 ARGS sample --ckpt ${DIT_RUN}/ckpt.safetensors STDERR_REGEX "at least one of")
sparq_cli_test(sample_not_a_ckpt 1 ARGS sample --ckpt ${CMAKE_CURRENT_SOURCE_DIR}/CMakeLists.txt --npy ${SPARQ_TEST_TMP}/x.npy
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*CMakeLists.txt")
sparq_cli_test(eval_fd_json 0 ARGS eval fd --ckpt ${DIT_RUN}/ema.safetensors --n 20 --steps 2 --cfg 1,2 --json
  STDOUT_REGEX "\"what\":\"train images\".*\n\\{\"model\":\"[^\"]*ema.safetensors\",\"guidance\":\"cfg\",\"beta\":1,\"cfg\":1,\"n\":20,\"fd\":[0-9.]+,\"acc\":[0-9.]+,\"is\":[0-9.]+,\"nfe\":2,.*\n\\{[^\n]*\"beta\":0.5,\"cfg\":2,.*\"nfe\":4,")
sparq_cli_test(eval_fd_bad_scales 2 ARGS eval fd --ckpt ${DIT_RUN}/ema.safetensors --cfg 1,x STDERR_REGEX "--cfg takes")
set_tests_properties(cli_sample_cfg cli_sample_heun_sage cli_sample_bad_class cli_sample_no_output cli_eval_fd_json
  cli_eval_fd_bad_scales PROPERTIES FIXTURES_REQUIRED dit_run)

# A resumed run continues from the step the first one stopped at.
sparq_cli_test(train_dit_stop 0 ARGS --threads 2 train dit --dim 16 --depth 1 --heads 2 --batch 4 --steps 4
  --stop-at 2 --eval-every 0 --eval-batches 1 --out ${SPARQ_TEST_TMP}/dit-resume STDOUT_REGEX "done: step 2,")
sparq_cli_test(train_dit_resume 0 ARGS --threads 2 train dit --dim 16 --depth 1 --heads 2 --batch 4 --steps 4
  --eval-every 0 --eval-batches 1 --resume --out ${SPARQ_TEST_TMP}/dit-resume STDOUT_REGEX "done: step 4,")
set_tests_properties(cli_train_dit_stop PROPERTIES FIXTURES_SETUP dit_resume)
set_tests_properties(cli_train_dit_resume PROPERTIES FIXTURES_REQUIRED dit_resume)

# The toy: a short run ends with the exact evaluation table.
sparq_cli_test(train_toy2d_tiny 0 ARGS --threads 1 train dit --data toy2d --steps 60 --batch 64 --eval-every 30
  --ema 0.9 --out ${SPARQ_TEST_TMP}/toy-run
  STDOUT_REGEX "MLP 3 x 128 SiLU.*done: step 60.*exact evaluation.*\n +1\\.0 +[0-9.]+ .*\n +2\\.0 .* 100\n +4\\.0 ")

# export: the EMA weights alone in FP16, which sample reads back.
sparq_cli_test(export_dit_f16 0 ARGS export dit --ckpt ${DIT_RUN}/ckpt.safetensors --out ${SPARQ_TEST_TMP}/dit-f16.safetensors
  --dtype f16 STDOUT_REGEX "the EMA weights of .*f16")
sparq_cli_test(export_bad_kind 2 ARGS export gpt --ckpt x --out y STDERR_REGEX "expected a model kind: dit")
set_tests_properties(cli_export_dit_f16 PROPERTIES FIXTURES_REQUIRED dit_run FIXTURES_SETUP dit_f16)
sparq_cli_test(sample_f16_export 0 ARGS sample --ckpt ${SPARQ_TEST_TMP}/dit-f16.safetensors --n 2 --steps 2
  --npy ${SPARQ_TEST_TMP}/dit-f16.npy STDOUT_REGEX "NFE 2 per image")
set_tests_properties(cli_sample_f16_export PROPERTIES FIXTURES_REQUIRED dit_f16)

# Guidance-free training: fine-tuned from the CFG run (zero beta projection),
# sampled with one network evaluation per step at beta = 1 / w.
sparq_cli_test(train_dit_gft_init 0 ARGS --threads 2 train dit --guidance gft --init ${DIT_RUN}/ckpt.safetensors
  --batch 8 --steps 3 --warmup 1 --eval-every 0 --eval-batches 1 --out ${SPARQ_TEST_TMP}/dit-gft
  STDOUT_REGEX "dim 32, depth 1, 2 heads.*GFT.*from .*dit-run/ckpt.safetensors.*done: step 3,")
set_tests_properties(cli_train_dit_gft_init PROPERTIES FIXTURES_REQUIRED dit_run FIXTURES_SETUP dit_gft)
sparq_cli_test(sample_gft_beta 0 ARGS sample --ckpt ${SPARQ_TEST_TMP}/dit-gft/ckpt.safetensors --beta 0.5 --steps 3
  --n 4 --npy ${SPARQ_TEST_TMP}/dit-gft.npy STDOUT_REGEX "GFT beta 0.5, attention flash_f32: NFE 3 per image \\(3 network calls\\)")
sparq_cli_test(sample_gft_cfg 0 ARGS sample --ckpt ${SPARQ_TEST_TMP}/dit-gft/ckpt.safetensors --cfg 4 --steps 3
  --n 4 --npy ${SPARQ_TEST_TMP}/dit-gft.npy STDOUT_REGEX "GFT beta 0.25, .*NFE 3 per image")
sparq_cli_test(sample_gft_beta_above_one 2 ARGS sample --ckpt ${SPARQ_TEST_TMP}/dit-gft/ckpt.safetensors --cfg 0.5
  --npy ${SPARQ_TEST_TMP}/dit-gft.npy STDERR_REGEX "beta in \\(0, 1\\]")
# GFT and CFG side by side on the same sweep: CFG at w = 1/beta with 2 NFE
# per step, GFT at beta with 1.
sparq_cli_test(eval_fd_gft_vs_cfg 0 ARGS eval fd --ckpt ${DIT_RUN}/ema.safetensors,${SPARQ_TEST_TMP}/dit-gft/ema.safetensors
  --beta 1,0.5 --n 20 --steps 2 --jsonl ${SPARQ_TEST_TMP}/gft-sweep.jsonl
  STDOUT_REGEX "\n +1.000 +1  cfg .* 2 .*dit-run/ema.safetensors\n +1.000 +1  gft .* 2 .*dit-gft/ema.safetensors\n +0.500 +2  cfg .* 4 .*\n +0.500 +2  gft .* 2 .*summary.*\\[2\\] vs \\[1\\]: best FD ratio [0-9.]+, largest accuracy gap at matched beta [0-9.]+ points, sampling time ratio [0-9.]+")
sparq_cli_test(eval_fd_beta_above_one 2 ARGS eval fd --ckpt ${SPARQ_TEST_TMP}/dit-gft/ema.safetensors --beta 1,1.5
  STDERR_REGEX "--beta takes .* in \\(0, 1\\]")
sparq_cli_test(eval_fd_beta_and_cfg 2 ARGS eval fd --ckpt ${SPARQ_TEST_TMP}/dit-gft/ema.safetensors --beta 1 --cfg 2
  STDERR_REGEX "give one")
set_tests_properties(cli_sample_gft_beta cli_sample_gft_cfg cli_sample_gft_beta_above_one cli_eval_fd_gft_vs_cfg
  cli_eval_fd_beta_above_one cli_eval_fd_beta_and_cfg PROPERTIES FIXTURES_REQUIRED dit_gft)
set_tests_properties(cli_eval_fd_gft_vs_cfg PROPERTIES FIXTURES_SETUP gft_sweep)
sparq_cli_test(sample_beta_needs_gft 2 ARGS sample --ckpt ${DIT_RUN}/ckpt.safetensors --beta 0.5
  --npy ${SPARQ_TEST_TMP}/x.npy STDERR_REGEX "--beta needs a GFT checkpoint")
set_tests_properties(cli_sample_beta_needs_gft PROPERTIES FIXTURES_REQUIRED dit_run)
sparq_cli_test(train_dit_gft_no_null 1 ARGS train dit --guidance gft --p-uncond 0 --dim 16 --depth 1 --heads 2
  --batch 2 --steps 1 --out ${SPARQ_TEST_TMP}/dit-gft-bad STDERR_ONE_LINE STDERR_REGEX "^sparq: .*null class")
sparq_cli_test(train_toy2d_gft 0 ARGS --threads 1 train dit --data toy2d --guidance gft --steps 40 --batch 64
  --eval-every 20 --ema 0.9 --out ${SPARQ_TEST_TMP}/toy-gft
  STDOUT_REGEX "GFT, batch 64.*exact evaluation.*\n +2\\.0 .* 50\n")

# `sparq plot` on an `eval fd --json` sweep draws FD against accuracy, one
# curve per checkpoint (only where gnuplot is installed).
find_program(SPARQ_GNUPLOT gnuplot)
if(SPARQ_GNUPLOT)
  sparq_cli_test(plot_fd_sweep 0 ARGS plot ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/fd_sweep.jsonl
    --out ${SPARQ_TEST_TMP}/fd-sweep.png STDOUT_REGEX "plot: .*fd-sweep.png \\(FD against accuracy, 4 points")
  # the --jsonl file of the side-by-side sweep above: 2 checkpoints x 2 betas
  sparq_cli_test(plot_gft_sweep 0 ARGS plot ${SPARQ_TEST_TMP}/gft-sweep.jsonl --out ${SPARQ_TEST_TMP}/gft-sweep.png
    STDOUT_REGEX "FD against accuracy, 4 points")
  set_tests_properties(cli_plot_gft_sweep PROPERTIES FIXTURES_REQUIRED gft_sweep)
endif()
