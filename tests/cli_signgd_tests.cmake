# `sparq signgd`: usage errors, runtime errors, a small run, a small
# --reproduce grid, and the missing-gnuplot path. Uses sparq_cli_test() from
# cli_core_tests.cmake. Plots are drawn only where gnuplot is installed; no
# test needs it.
set(SG_TMP ${SPARQ_TEST_TMP})

sparq_cli_test(help_signgd 0 ARGS help signgd STDOUT_REGEX "sparq signgd --reproduce --out DIR")
sparq_cli_test(signgd_missing_out 2 ARGS signgd --steps 3 STDERR_REGEX "missing --out DIR.*usage: sparq signgd")
sparq_cli_test(signgd_unknown_flag 2 ARGS signgd --frob --out ${SG_TMP}/sg STDERR_REGEX "unknown option '--frob'")
sparq_cli_test(signgd_bad_optim 2 ARGS signgd --optim sgd --out ${SG_TMP}/sg
  STDERR_REGEX "--optim must be one of signgd\\|adam\\|gd")
sparq_cli_test(signgd_reproduce_fixes_snr 2 ARGS signgd --reproduce --snr 0.3 --out ${SG_TMP}/sg
  STDERR_REGEX "--snr does not apply to --reproduce")
sparq_cli_test(signgd_s_not_below_d 2 ARGS signgd --d 10 --s 10 --out ${SG_TMP}/sg STDERR_REGEX "--s 10 must be smaller than d")
sparq_cli_test(signgd_bad_lr 2 ARGS signgd --lr 0 --out ${SG_TMP}/sg STDERR_REGEX "--lr 0 is out of range")
# A directory below a regular file cannot be created: one line, exit 1.
sparq_cli_test(signgd_unwritable_out 1 ARGS signgd --d 50 --s 5 --steps 2 --out ${CMAKE_CURRENT_SOURCE_DIR}/CMakeLists.txt/sg
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*CMakeLists.txt")

sparq_cli_test(signgd_small_run 0 ARGS --threads 1 signgd --optim adam --d 200 --s 8 --n 8 --steps 40 --no-plots
  --out ${SG_TMP}/signgd-small STDOUT_REGEX "sparq signgd: adam, SNR 1.*step 40: train loss .*wrote .*log.jsonl")
# Draws the figures when gnuplot is installed (a broken script fails here).
sparq_cli_test(signgd_small_reproduce 0 ARGS signgd --reproduce --d 100 --steps 12 --out ${SG_TMP}/signgd-reproduce
  STDOUT_REGEX "60 runs.*\\| signgd \\| 0.1 \\|.*\\| gd \\| 1 \\|.*## Acceptance checks.*plots")
# Without gnuplot on the PATH: one clear line, the data still written, exit 0.
add_test(NAME cli_signgd_without_gnuplot COMMAND ${CMAKE_COMMAND} -DPROG=${CMAKE_COMMAND}
  "-DARGS=-E|env|PATH=/nonexistent|$<TARGET_FILE:sparq_cli>|signgd|--d|60|--s|4|--n|4|--steps|3|--out|${SG_TMP}/signgd-nognuplot"
  -DEXPECT_RC=0 "-DSTDOUT_REGEX=plots skipped: gnuplot not found \\(install gnuplot-nox" -P ${CMAKE_CURRENT_SOURCE_DIR}/run_cli.cmake)
