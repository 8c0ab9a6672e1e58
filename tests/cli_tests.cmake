# `sparq inspect` against the committed fixtures (tools/gen_fixtures.py).
# Uses sparq_cli_test() and run_cli.cmake from cli_core_tests.cmake.

# Every malformed file: exit 1 and one "sparq: FILE: ..." line on stderr.
file(GLOB SPARQ_BAD_FIXTURES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/bad/*)
foreach(bad ${SPARQ_BAD_FIXTURES})
  get_filename_component(name ${bad} NAME)
  add_test(NAME cli_inspect_bad_${name}
    COMMAND ${CMAKE_COMMAND} -DPROG=$<TARGET_FILE:sparq_cli> -DFILE=${bad} -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_fail.cmake)
endforeach()

# Every valid file: exit 0 and a summary line naming it.
file(GLOB SPARQ_GOOD_FIXTURES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/io/*)
foreach(good ${SPARQ_GOOD_FIXTURES})
  get_filename_component(name ${good} NAME)
  if(name STREQUAL "expected.json")
    continue()
  endif()
  sparq_cli_test(inspect_ok_${name} 0 ARGS inspect ${good}
    STDOUT_REGEX "^[^\n]*${name}: (safetensors|npy|IDX)[^\n]*, [0-9]+ tensors?")
endforeach()

set(SPARQ_FIX ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/io)
# Stats are NaN-aware: NaN and infinities are counted, not averaged.
sparq_cli_test(inspect_stats_nan_aware 0 ARGS inspect ${SPARQ_FIX}/st_basic.safetensors
  STDOUT_REGEX "special +F32 +\\[4\\] +min 1  max 1  mean 1  std 0  nan 1  \\+inf 1  -inf 1\n")
sparq_cli_test(inspect_stats_u8 0 ARGS inspect ${SPARQ_FIX}/idx_images_u8.idx.gz
  STDOUT_REGEX "data +U8 +\\[2, 4, 3\\] +min 0  max 230  mean 115  std 69.2219\n")
sparq_cli_test(inspect_metadata 0 ARGS inspect ${SPARQ_FIX}/st_basic.safetensors
  STDOUT_REGEX "metadata:\n  format = pt\n")
sparq_cli_test(inspect_no_stats 0 ARGS inspect --no-stats ${SPARQ_FIX}/st_halfs.safetensors
  STDOUT_REGEX "^[^\n]*\n  h  F16  \\[2, 3\\]\n  bf  BF16  \\[3, 2\\]\n  e4m3  F8_E4M3  \\[8\\]\n  e5m2  F8_E5M2  \\[2, 4\\]\n$")
sparq_cli_test(inspect_empty_tensor 0 ARGS inspect ${SPARQ_FIX}/st_edge.safetensors STDOUT_REGEX "empty +F32 +\\[0, 3\\] +empty\n")
sparq_cli_test(inspect_gzip_by_content 0 ARGS inspect ${SPARQ_FIX}/idx_gzip_no_ext.idx STDOUT_REGEX "IDX \\(gzip\\)")

# Usage errors exit 2 with the usage text.
sparq_cli_test(inspect_unknown_flag 2 ARGS inspect --frob ${SPARQ_FIX}/npy_f4.npy STDERR_REGEX "unknown option '--frob'.*usage: sparq inspect")
sparq_cli_test(inspect_no_file 2 ARGS inspect STDERR_REGEX "missing FILE.*usage: sparq inspect")
sparq_cli_test(inspect_two_files 2 ARGS inspect a b STDERR_REGEX "unexpected argument 'b'")
sparq_cli_test(inspect_contradiction 2 ARGS inspect --stats --no-stats x STDERR_REGEX "contradict")
# A missing file or a directory is a runtime error: one line, exit 1.
sparq_cli_test(inspect_missing_file 1 ARGS inspect ${CMAKE_CURRENT_BINARY_DIR}/no-such-file.npy
  STDERR_ONE_LINE STDERR_REGEX "^sparq: .*no-such-file.npy: cannot open")
sparq_cli_test(inspect_directory 1 ARGS inspect ${CMAKE_CURRENT_SOURCE_DIR} STDERR_ONE_LINE STDERR_REGEX "^sparq: ")
