# `sparq prune`, `sparq vnm-matmul` and `sparq bench vnm`: exit codes,
# messages and the printed figures, on the committed fixtures of
# tools/gen_vnm_fixtures.py. Uses sparq_cli_test() from cli_core_tests.cmake.
set(VNM_FIX ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/vnm)
set(VNM_TMP ${SPARQ_TEST_TMP}/cli_vnm)
file(MAKE_DIRECTORY ${VNM_TMP})

sparq_cli_test(help_prune 0 ARGS help prune STDOUT_REGEX "usage: sparq prune --in")
sparq_cli_test(help_vnm_matmul 0 ARGS help vnm-matmul STDOUT_REGEX "usage: sparq vnm-matmul --w")
sparq_cli_test(help_bench_vnm 0 ARGS help bench STDOUT_REGEX "sparq bench vnm \\[--json\\]")

# Pruning prints the retained-score ratio and, with --permute, its gain.
sparq_cli_test(prune_ria_permute 0
  ARGS prune --in ${VNM_FIX}/w.npy --pattern 8:2:5 --score ria --calib ${VNM_FIX}/x.npy --permute
       --out ${VNM_TMP}/w.vnm.safetensors
  STDOUT_REGEX "pruned to 8:2:5 \\(density 40.0%\\), RIA scores, joint selection\n  retained score ratio 0\\.[0-9]+ \\(without permutation 0\\.[0-9]+, gain \\+[0-9.]+ = \\+[0-9.]+%")
set_tests_properties(cli_prune_ria_permute PROPERTIES FIXTURES_SETUP vnm_packed)
sparq_cli_test(prune_safetensors_twostep 0
  ARGS prune --in ${VNM_FIX}/ria.safetensors --tensor w --pattern 16:2:8 --select twostep
       --out ${VNM_TMP}/w2.vnm.safetensors
  STDOUT_REGEX "'w' \\[24 x 40\\] pruned to 16:2:8 \\(density 25.0%\\), ABS scores, twostep selection\n  retained score ratio 0\\.[0-9]+\n")
sparq_cli_test(prune_2_4 0 ARGS prune --in ${VNM_FIX}/w.npy --pattern 2:4 --out ${VNM_TMP}/w24.vnm.safetensors
  STDOUT_REGEX "pruned to 2:4 \\(density 50.0%\\)")

# The packed file multiplies back in the original feature order.
sparq_cli_test(vnm_matmul_check 0
  ARGS vnm-matmul --w ${VNM_TMP}/w.vnm.safetensors --x ${VNM_FIX}/x.npy --out ${VNM_TMP}/y.npy --check
  STDOUT_REGEX "X \\[33 x 40\\], W 8:2:5 \\[24 x 40\\] -> Y \\[33 x 24\\].*max relative difference [0-9.e-]+\n")
set_tests_properties(cli_vnm_matmul_check PROPERTIES FIXTURES_REQUIRED vnm_packed)
sparq_cli_test(vnm_matmul_wrong_features 1
  ARGS vnm-matmul --w ${VNM_TMP}/w.vnm.safetensors --x ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/io/npy_i4.npy
       --out ${VNM_TMP}/bad.npy
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*npy_i4.npy: X has 3 features, the packed matrix 40")
set_tests_properties(cli_vnm_matmul_wrong_features PROPERTIES FIXTURES_REQUIRED vnm_packed)
sparq_cli_test(vnm_matmul_not_packed 1
  ARGS vnm-matmul --w ${VNM_FIX}/ria.safetensors --x ${VNM_FIX}/x.npy --out ${VNM_TMP}/bad.npy
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*ria.safetensors: no packed V:N:M matrix")

# Usage errors: exit 2 with the usage text.
sparq_cli_test(prune_no_pattern 2 ARGS prune --in ${VNM_FIX}/w.npy --out ${VNM_TMP}/x.safetensors
  STDERR_REGEX "missing --pattern.*usage: sparq prune")
sparq_cli_test(prune_bad_pattern 2 ARGS prune --in ${VNM_FIX}/w.npy --pattern 64:3:8 --out ${VNM_TMP}/x.safetensors
  STDERR_REGEX "pattern '64:3:8': N must be 2.*usage: sparq prune")
sparq_cli_test(prune_ria_needs_calib 2 ARGS prune --in ${VNM_FIX}/w.npy --pattern 8:2:5 --score ria
  --out ${VNM_TMP}/x.safetensors STDERR_REGEX "--score ria needs --calib")
sparq_cli_test(prune_bad_select 2 ARGS prune --in ${VNM_FIX}/w.npy --pattern 8:2:5 --select best
  --out ${VNM_TMP}/x.safetensors STDERR_REGEX "--select must be one of joint\\|twostep")
sparq_cli_test(prune_unknown_flag 2 ARGS prune --frob STDERR_REGEX "unknown option '--frob'.*usage: sparq prune")
sparq_cli_test(vnm_matmul_no_x 2 ARGS vnm-matmul --w a --out b STDERR_REGEX "missing --x.*usage: sparq vnm-matmul")
sparq_cli_test(bench_vnm_bad_shape 2 ARGS bench vnm --shape 768,768 STDERR_REGEX "--shape expects R,C,T")
sparq_cli_test(bench_vnm_bad_pattern 2 ARGS bench vnm --pattern 2:3 STDERR_REGEX "M must be in 4")

# Runtime errors: one "sparq: ..." line, exit 1.
sparq_cli_test(prune_missing_file 1 ARGS prune --in ${VNM_TMP}/none.npy --pattern 2:4 --out ${VNM_TMP}/x.safetensors
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*none.npy")
sparq_cli_test(prune_not_a_matrix 1
  ARGS prune --in ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/io/npy_scalar.npy --pattern 2:4 --out ${VNM_TMP}/x.safetensors
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*npy_scalar.npy: expected a non-empty 2-D matrix")
sparq_cli_test(prune_which_tensor 1 ARGS prune --in ${VNM_FIX}/ria.safetensors --pattern 2:4 --out ${VNM_TMP}/x.safetensors
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*ria.safetensors: [0-9]+ two-dimensional tensors; name one with --tensor")
sparq_cli_test(prune_joint_m17 1 ARGS prune --in ${VNM_FIX}/w.npy --pattern 8:2:17 --out ${VNM_TMP}/x.safetensors
  STDERR_ONE_LINE STDERR_REGEX "^sparq: sparq_vnm_[a-z_]+: joint selection .* M <= 16, got 17")
sparq_cli_test(prune_calib_mismatch 1 ARGS prune --in ${VNM_FIX}/w.npy --pattern 8:2:5 --score ria
  --calib ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/io/npy_i4.npy --out ${VNM_TMP}/x.safetensors
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*npy_i4.npy: calibration activations have 3 features, the weights 40")

# One small benchmark row, in both output forms.
sparq_cli_test(bench_vnm_json 0 ARGS --threads 2 bench vnm --shape 96,80,16 --pattern 16:2:5 --reps 1 --json
  STDOUT_REGEX "^\\{\"bench\":\"vnm\",\"R\":96,\"C\":80,\"T\":16,\"pattern\":\"16:2:5\",\"threads\":2,\"dense_ms\":[0-9.]+,\"sparse_ms\":[0-9.]+,\"speedup\":[0-9.]+,[^\n]*\\}\n$")
sparq_cli_test(bench_vnm_table 0 ARGS bench vnm --shape 64,64,8 --pattern 2:4 --reps 1
  STDOUT_REGEX "dense ms sparse ms.*\n +64 +64 +8  2:4 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+x\n")

# --pattern auto: with target 0 every candidate qualifies, so the rule must
# pick the most diverse one (16:2:5); an unreachable target is an error.
sparq_cli_test(prune_auto_max_diversity 0
  ARGS prune --in ${VNM_FIX}/w.npy --pattern auto --speedup 0 --tokens 16 --out ${VNM_TMP}/auto.vnm.safetensors
  STDOUT_REGEX "choosing V:2:M for 24 x 40 at 16 tokens.*128:2:8 +0\\.228 .*pruned to 16:2:5 \\(density 40.0%\\)")
sparq_cli_test(prune_auto_unreachable 1
  ARGS prune --in ${VNM_FIX}/w.npy --pattern auto --speedup 1000 --tokens 16 --out ${VNM_TMP}/auto.vnm.safetensors
  STDERR_ONE_LINE STDERR_REGEX "^sparq: sparq_vnm_choose: no pattern reaches speedup 1000.00x")
