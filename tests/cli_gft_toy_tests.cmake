# `sparq gft-toy`: the 2-D toy arms of spec gft.md 8.1 on a tiny budget. The
# first run trains all three arms and prints the whole table; the re-runs
# reuse the finished arms (and retrain only the one whose settings changed).
# Uses sparq_cli_test() from cli_core_tests.cmake.
set(GFT_TOY_RUN ${SPARQ_TEST_TMP}/gft-toy)

sparq_cli_test(help_gft_toy 0 ARGS help gft-toy STDOUT_REGEX "sparq gft-toy --out DIR")
sparq_cli_test(gft_toy_missing_out 2 ARGS gft-toy --steps 60 STDERR_REGEX "--out DIR is required")
sparq_cli_test(gft_toy_few_steps 2 ARGS gft-toy --out ${GFT_TOY_RUN}-bad --steps 5
  STDERR_REGEX "--steps 5 is out of range.*usage: sparq gft-toy")
sparq_cli_test(gft_toy_no_samples 2 ARGS gft-toy --out ${GFT_TOY_RUN}-bad --n 0 STDERR_REGEX "--n 0 is out of range")
sparq_cli_test(gft_toy_unknown_flag 2 ARGS gft-toy --out ${GFT_TOY_RUN}-bad --beta 0.5
  STDERR_REGEX "unknown option '--beta'")
sparq_cli_test(gft_toy_unwritable_csv 1 ARGS --threads 1 gft-toy --out ${GFT_TOY_RUN}-csv --steps 10 --n 2
  --csv /nonexistent-dir/t.csv STDERR_ONE_LINE STDERR_REGEX "^sparq: /nonexistent-dir/t.csv: ")

# A stale run directory from an earlier ctest run would be reused.
add_test(NAME cli_gft_toy_clean COMMAND ${CMAKE_COMMAND} -E rm -rf ${GFT_TOY_RUN})
set_tests_properties(cli_gft_toy_clean PROPERTIES FIXTURES_SETUP gft_toy_clean)

# 60 steps cannot fit the toy; this checks the plumbing: every arm trained,
# every arm x beta row, the Ref rows, the verdict lines and the CSV.
sparq_cli_test(gft_toy_tiny 0 ARGS --threads 1 gft-toy --out ${GFT_TOY_RUN} --steps 60 --n 200
  --csv ${SPARQ_TEST_TMP}/gft-toy.csv
  STDOUT_REGEX "arm A \\(CFG.*trained in.*arm B \\(GFT from scratch\\): 60 steps.*trained in.*arm C \\(GFT fine-tuned[^\n]*: 6 steps.*trained in.*\nA CFG +1\\.00 +1\\.00 [^\n]* [0-9]+/10 +50 .*\nA CFG +0\\.50 +2\\.00 [^\n]* 100 [^\n]*\n.*\nB GFT +0\\.50 +2\\.00 [^\n]* 50 [^\n]*\n.*\nC GFT-ft +0\\.25 +4\\.00 [^\n]* 50 [^\n]*\nRef +1\\.00 +1\\.00 +0\\.000000 +0\\.00000 +- .* 500 .*\nRef +0\\.25 +4\\.00 [^\n]* 1000 .*eps-error: GFT\\(B\\) at beta 0\\.5 = [0-9.]+, CFG\\(A\\) at w 2 = [0-9.]+, ratio [0-9.]+ \\(limit 1\\.2\\): (pass|FAIL)\neps-error: GFT\\(C\\) .*toy convergence \\(spec 9\\.9.*table: ")
set_tests_properties(cli_gft_toy_tiny PROPERTIES FIXTURES_REQUIRED gft_toy_clean FIXTURES_SETUP gft_toy_run)

# The same flags again: nothing retrained; --json puts one object per row on stdout.
sparq_cli_test(gft_toy_reuse 0 ARGS --threads 1 gft-toy --out ${GFT_TOY_RUN} --steps 60 --n 200 --json
  STDOUT_REGEX "^\\{\"arm\":\"A\",\"method\":\"cfg\",\"beta\":1,\"w\":1,\"n\":800,\"eps_error\":[0-9.e-]+,.*\"nfe\":50,.*\"reused\":true\\}\n.*\\{\"arm\":\"Ref\",\"method\":\"exact-cfg\",\"beta\":0\\.25,.*\"endpoint_dist\":null,.*\n\\{\"check\":\"eps_ratio\",\"arm\":\"B\",\"beta\":0\\.5,.*\n\\{\"check\":\"eps_ratio\",\"arm\":\"C\".*\n\\{\"check\":\"convergence\",\"arm\":\"B\",.*\\}\n$"
  STDERR_REGEX "arm A [^\n]*\n  reused the finished run.*arm B [^\n]*\n  reused the finished run.*arm C [^\n]*\n  reused the finished run")
# Another fine-tune length retrains C only.
sparq_cli_test(gft_toy_retrain_c 0 ARGS --threads 1 gft-toy --out ${GFT_TOY_RUN} --steps 60 --finetune-steps 7 --n 20
  STDOUT_REGEX "arm A [^\n]*\n  reused.*arm B [^\n]*\n  reused.*arm C [^\n]*7 steps[^\n]*\n  note: the run in the directory has other settings[^\n]*\n  trained in")
set_tests_properties(cli_gft_toy_reuse cli_gft_toy_retrain_c PROPERTIES FIXTURES_REQUIRED gft_toy_run)
set_tests_properties(cli_gft_toy_retrain_c PROPERTIES DEPENDS cli_gft_toy_reuse)
