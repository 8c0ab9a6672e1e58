# `sparq attn --variant svg`: generated cases, .npy inputs, usage and file
# errors. Uses sparq_cli_test() from cli_core_tests.cmake.
set(SVG_TMP ${SPARQ_TEST_TMP}/svg)

sparq_cli_test(svg_case_mixed 0 ARGS --threads 2 attn --variant svg --case mixed --frames 4 --frame-tokens 128
  --shape 1,4,32 --reps 1
  STDOUT_REGEX "batch 0 head 0: [a-z]+ \\(planted spatial\\).*head 1: [a-z]+ \\(planted temporal\\).*profiling: [0-9] of 4 heads.*density 0\\.[0-9]+.*vs dense.*CosSim.*speedup")
sparq_cli_test(svg_case_sage 0 ARGS attn --variant svg --inner sage_cpu --case mixed --frames 4 --frame-tokens 128 --shape 1,2,64 --reps 1
  STDOUT_REGEX "vs dense FP32.*CosSim 0\\.99[0-9]+.*inner sage_cpu")
sparq_cli_test(svg_case_text_last 0 ARGS attn --variant svg --case temporal --frames 4 --frame-tokens 128
  --text-tokens 16 --text last --sink parity --shape 2,2,32 --reps 1 STDOUT_REGEX "batch 1 head 1: temporal")
sparq_cli_test(svg_warmup_dense 0 ARGS attn --variant svg --case mixed --frames 4 --frame-tokens 128 --shape 1,2,32
  --layer 0 --n-layers 40 --warmup-layers 0.025 --reps 1 STDOUT_REGEX "batch 0 head 1: dense.*0 spatial, 0 temporal, 2 dense heads")
sparq_cli_test(svg_missing_frames 2 ARGS attn --variant svg --case mixed STDERR_REGEX "needs --frames F and --frame-tokens P")
sparq_cli_test(svg_bad_sink 2 ARGS attn --variant svg --case mixed --frames 2 --frame-tokens 8 --sink sometimes
  STDERR_REGEX "--sink must be one of off\\|parity\\|frame0")
sparq_cli_test(svg_missing_inputs 2 ARGS attn --variant svg --frames 2 --frame-tokens 8 STDERR_REGEX "needs --q, --k and --v")

# .npy inputs: a D1 case saved by the plain attention CLI, read as 4 frames of 64 tokens.
sparq_cli_test(svg_save_inputs 0 ARGS attn --case D1 --shape 1,2,256,32 --save ${SVG_TMP} --reps 1 STDOUT_REGEX "CosSim")
set_tests_properties(cli_svg_save_inputs PROPERTIES FIXTURES_SETUP svg_inputs)
sparq_cli_test(svg_files 0 ARGS attn --variant svg --q ${SVG_TMP}/q.npy --k ${SVG_TMP}/k.npy --v ${SVG_TMP}/v.npy
  --frames 4 --frame-tokens 64 --budget 0.6 --out ${SVG_TMP}/o_svg.npy --reps 1
  STDOUT_REGEX "batch 0 head 1: (spatial|temporal)\n.*density")
sparq_cli_test(svg_files_wrong_s 1 ARGS attn --variant svg --q ${SVG_TMP}/q.npy --k ${SVG_TMP}/k.npy --v ${SVG_TMP}/v.npy
  --frames 4 --frame-tokens 60 STDERR_ONE_LINE STDERR_REGEX "^sparq: .*q.npy: S = 256 tokens, but L \\+ F P = 240")
set_tests_properties(cli_svg_files cli_svg_files_wrong_s PROPERTIES FIXTURES_REQUIRED svg_inputs)
