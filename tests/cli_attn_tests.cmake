# `sparq attn` and `sparq bench attn`: both modes of attn, the backward and
# dump options, the usage and runtime errors, and a small benchmark.
# Uses sparq_cli_test() and run_cli.cmake from cli_core_tests.cmake.
set(ATTN_TMP ${SPARQ_TEST_TMP}/cli-attn)

sparq_cli_test(help_attn 0 ARGS help attn STDOUT_REGEX "sparq attn --case D0..D5")
sparq_cli_test(help_bench_attn 0 ARGS help bench STDOUT_REGEX "sparq bench attn")

# generated cases: metrics against ref_f64
sparq_cli_test(attn_case_flash 0 ARGS --threads 2 attn --case D1 --shape 1,2,130,64 --variant flash_f32
  STDOUT_REGEX "flash_f32 on D1.*CosSim (0\\.99999|1\\.00000)[0-9]*  RelL1 [0-9.e-]+  RMSE [0-9.e-]+  max\\|err\\| [0-9.e-]+  non-finite 0\n  time [0-9.]+ ms")
sparq_cli_test(attn_case_gqa_causal_nhd 0 ARGS attn --case D4 --shape 2,4,77,48 --kv-heads 2 --causal --layout NHD
  STDOUT_REGEX "heads 4/2, Nq 77, Nk 77, d 48, NHD, causal.*CosSim (0\\.99999|1\\.00000)")
# sage_cpu's K residual pass: forced on for a sharp case; refused by other variants
sparq_cli_test(attn_case_refine_k 0 ARGS attn --case D4 --shape 1,2,200,64 --variant sage_cpu --refine-k on
  STDOUT_REGEX "sage_cpu on D4.*CosSim 0\\.999[5-9]")
sparq_cli_test(attn_case_refine_k_sage1 1 ARGS attn --case D4 --shape 1,1,64,32 --variant sage1 --refine-k on
  STDERR_ONE_LINE STDERR_REGEX "refine_k applies to sage_cpu only, not to sage1")
sparq_cli_test(attn_case_offset 0 ARGS attn --case D2 --shape 1,2,50,32 --kv-len 90 --causal --causal-offset 40
  --variant ref_f64 STDOUT_REGEX "Nq 50, Nk 90.*CosSim 1\\.0000000  RelL1 0  ")

# files: a saved case goes through the file mode, forward + LSE and backward
sparq_cli_test(attn_case_save 0 ARGS attn --case D3 --shape 1,2,70,40 --save ${ATTN_TMP}
  STDOUT_REGEX "CosSim (0\\.99999|1\\.00000)")
set_tests_properties(cli_attn_case_save PROPERTIES FIXTURES_SETUP attn_npy)
sparq_cli_test(attn_files_forward 0 ARGS attn --q ${ATTN_TMP}/q.npy --k ${ATTN_TMP}/k.npy --v ${ATTN_TMP}/v.npy
  --causal --out ${ATTN_TMP}/o_causal.npy --lse ${ATTN_TMP}/lse.npy
  STDOUT_REGEX "o_causal.npy: flash_f32, B 1, heads 2/2, Nq 70, Nk 70, d 40, HND, F32, causal: [0-9.]+ ms\n.*lse.npy: LSE \\[1, 2, 70\\]")
sparq_cli_test(attn_files_backward 0 ARGS attn --q ${ATTN_TMP}/q.npy --k ${ATTN_TMP}/k.npy --v ${ATTN_TMP}/v.npy
  --out ${ATTN_TMP}/o2.npy --dout ${ATTN_TMP}/o_ref.npy --dq ${ATTN_TMP}/dq.npy --dk ${ATTN_TMP}/dk.npy
  --dv ${ATTN_TMP}/dv.npy --variant ref_f64 STDOUT_REGEX "dv.npy: backward [0-9.]+ ms")
sparq_cli_test(attn_files_nhd_scale 0 ARGS attn --q ${ATTN_TMP}/q.npy --k ${ATTN_TMP}/k.npy --v ${ATTN_TMP}/v.npy
  --layout NHD --scale 0.05 --out ${ATTN_TMP}/o3.npy STDOUT_REGEX "heads 70/70, Nq 2, Nk 2, d 40, NHD")
sparq_cli_test(attn_files_bad_shape 1 ARGS attn --q ${ATTN_TMP}/q.npy --k ${ATTN_TMP}/k.npy --v ${ATTN_TMP}/lse.npy
  --out ${ATTN_TMP}/o4.npy STDERR_ONE_LINE STDERR_REGEX "^sparq: .*lse.npy: attention inputs are 4-D")
sparq_cli_test(attn_files_sage_knob_on_flash 1 ARGS attn --q ${ATTN_TMP}/q.npy --k ${ATTN_TMP}/k.npy
  --v ${ATTN_TMP}/v.npy --out ${ATTN_TMP}/o5.npy --granularity per_token
  STDERR_ONE_LINE STDERR_REGEX "^sparq: sparq_attention: granularity applies to the Sage variants only")
set_tests_properties(cli_attn_files_forward cli_attn_files_backward cli_attn_files_nhd_scale
  cli_attn_files_bad_shape cli_attn_files_sage_knob_on_flash PROPERTIES FIXTURES_REQUIRED attn_npy)

# usage errors (exit 2) and runtime errors (exit 1, one line naming the problem)
sparq_cli_test(attn_no_inputs 2 ARGS attn --variant flash_f32 STDERR_REGEX "--q, --k, --v and --out are required")
sparq_cli_test(attn_bad_variant 2 ARGS attn --case D1 --shape 1,1,8,8 --variant flash
  STDERR_REGEX "--variant must be one of")
sparq_cli_test(attn_bad_case 2 ARGS attn --case D9 --shape 1,1,8,8 STDERR_REGEX "--case must be D0..D5")
sparq_cli_test(attn_bad_shape 2 ARGS attn --case D1 --shape 1,1,8 STDERR_REGEX "--shape expects B,H,N,d")
sparq_cli_test(attn_partial_backward 2 ARGS attn --q a --k b --v c --out d --dout e STDERR_REGEX "needs all of")
sparq_cli_test(attn_missing_file 1 ARGS attn --q /nonexistent/q.npy --k k.npy --v v.npy --out o.npy
  STDERR_ONE_LINE STDERR_REGEX "^sparq: /nonexistent/q.npy: ")
sparq_cli_test(attn_causal_needs_offset 1 ARGS attn --case D1 --shape 1,1,8,8 --kv-len 16 --causal
  STDERR_ONE_LINE STDERR_REGEX "^sparq: sparq_attention: causal attention with q_len 8 != kv_len 16 needs an explicit diagonal")
sparq_cli_test(attn_gqa_mismatch 1 ARGS attn --case D1 --shape 1,3,8,8 --kv-heads 2
  STDERR_ONE_LINE STDERR_REGEX "q_heads 3 is not a multiple of kv_heads 2")
sparq_cli_test(attn_dump_on_flash 1 ARGS attn --q ${ATTN_TMP}/q.npy --k ${ATTN_TMP}/k.npy --v ${ATTN_TMP}/v.npy
  --out ${ATTN_TMP}/o6.npy --dump ${ATTN_TMP}/dump-flash STDERR_ONE_LINE STDERR_REGEX "dump_dir applies to the Sage")
sparq_cli_test(attn_dump_sage 0 ARGS attn --q ${ATTN_TMP}/q.npy --k ${ATTN_TMP}/k.npy --v ${ATTN_TMP}/v.npy
  --variant sage2_4b --out ${ATTN_TMP}/o7.npy --dump ${ATTN_TMP}/dump-sage
  STDOUT_REGEX "o7.npy: sage2_4b, .*dump-sage/: quantized Q/K, scales, delta-S and smoothing means")
set_tests_properties(cli_attn_dump_on_flash cli_attn_dump_sage PROPERTIES FIXTURES_REQUIRED attn_npy)

# the benchmark: table and JSON rows
sparq_cli_test(bench_attn_table 0 ARGS --threads 2 bench attn --n 200 --d 64 --variants flash_f32 --causal both
  STDOUT_REGEX "flash_f32 +1 +8 +200 +64 +off +[0-9.]+ +[0-9.]+ +[0-9.]+% +1\\.00 .*threepass +1 +8 +200 +64 +on ")
sparq_cli_test(bench_attn_json 0 ARGS bench attn --json --n 96 --d 32 --variants flash_f32 --causal on --heads 2
  STDOUT_REGEX "^\\{\"variant\":\"flash_f32\",\"B\":1,\"H\":2,\"N\":96,\"d\":32,\"causal\":true,\"threads\":[0-9]+,\"ms\":[0-9.]+,\"gflops\":[0-9.]+,\"peak_frac\":[0-9.]+,\"speedup_flash\":1\\.000,.*\"cos\":(0\\.99999|1\\.00000)[0-9]+,\"rel_l1\":")
sparq_cli_test(bench_attn_bad_list 2 ARGS bench attn --n 12x STDERR_REGEX "--n expects")
sparq_cli_test(bench_attn_bad_variant 2 ARGS bench attn --variants sage9 STDERR_REGEX "--variants expects")
