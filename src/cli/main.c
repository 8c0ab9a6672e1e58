/* sparq: the command-line front end. Each subcommand lives in its own file;
 * this one dispatches, handles the global flags and prints help. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

const cli_command cli_commands[] = {
    {"inspect", cli_inspect, "show the tensors in a safetensors, npy or IDX file",
     "usage: sparq inspect FILE [--stats|--no-stats]\n"
     "  Lists names, dtypes, shapes and (by default) min/max/mean/std of every\n"
     "  tensor in FILE, plus the safetensors __metadata__. FILE is recognised by\n"
     "  its content: safetensors, .npy (format 1.0-3.0) or IDX (plain or .gz).\n"
     "example: sparq inspect /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\n"},
    {"data", cli_data, "look at the built-in data sets",
     "usage: sparq data fashion-mnist --grid OUT.png [--n 64] [--split train|test] [--pad32]\n"
     "  Writes a labelled grid of the first N samples (N in 1..1024) as a PNG.\n"
     "       sparq data text [--split train|val]\n"
     "  Prints the size and a sample of the byte-level fortunes corpus.\n"
     "example: sparq data fashion-mnist --grid grid.png --n 64 --split test\n"},
    {"bench", cli_bench, "measure the machine's peak and sparq's kernels",
     "usage: sparq bench peak [--jsonl FILE]\n"
     "  FP32 FMA, INT8 VNNI, BF16 dot and FP16 FMA rates at 1 and N threads.\n"
     "       sparq bench gemm [--size N] [--reps R] [--jsonl FILE]\n"
     "  N x N x N FP32 GEMM through sparq_sgemm: GFLOP/s and fraction of the\n"
     "  FP32 peak measured at the same thread count (default N 2048, R 10).\n"
     "  --jsonl FILE appends the results as one JSON line.\n"
     "       sparq bench attn [--json] [--n 1024,2048,4096] [--d 64,128] [--causal off|on|both]\n"
     "                        [--variants V,V,...] [--rounds 5] [--ref-rows 128] [--heads 8]\n"
     "  Every attention variant, the three-pass FP32 baseline (sgemm, softmax,\n"
     "  sgemm) and flash_f32 at B 1, H heads, each N and d, causal off and on,\n"
     "  interleaved; median of the rounds after a warm-up: ms, GFLOP/s (4 B H N^2 d,\n"
     "  halved for causal), fraction of the FP32 peak, speedups over flash_f32 and\n"
     "  the three-pass baseline, CosSim/RelL1 on D1 against ref_f64 evaluated on\n"
     "  the last --ref-rows query rows of every head. --json prints one object per\n"
     "  row. ref_f64 is not timed unless named in --variants (it is slow).\n"
     "       sparq bench vnm [--json] [--reps 7] [--shape R,C,T] [--pattern P]\n"
     "  sparq_vnm_gemm against sparq_sgemm on the same random R x C layer (pruned\n"
     "  by ABS, joint) at T tokens, interleaved, best of the runs after 2 warm-ups:\n"
     "  ms, dense and useful GFLOP/s (useful = 2/M of dense) and speedup, over the\n"
     "  shapes (768,768,256) (3072,768,256) (768,3072,256) (4096,4096,512)\n"
     "  (768,768,16) and patterns 2:4 64:2:5 64:2:6 64:2:8 unless --shape and\n"
     "  --pattern narrow them. --json prints one object per row.\n"
     "       sparq bench train [--json] [--steps 10] [--layers 6 --heads 6 --dim 384 --seq 256 --batch 8]\n"
     "  GPT training steps (forward, backward, clipping, AdamW) on random bytes:\n"
     "  median ms/step, tokens/s, model FLOPs utilisation (6 N + 6 L T C per token,\n"
     "  N without the position embedding, over the FP32 peak) and the time split\n"
     "  into GEMM, attention and the rest. --json prints one object with keys\n"
     "  tokens_per_s, ms_per_step, mfu, threads (and the split).\n"
     "       sparq bench remoe [--out DIR] [--runs dense,topk,remoe-lb,remoe-plain] [--steps 1200]\n"
     "                         [--layers 4 --heads 4 --dim 128 --seq 128 --batch 16] [--experts 8 --topk 1]\n"
     "                         [--eval-every 100 --eval-batches 64] [--throughput-steps 3] [--no-train] [--json]\n"
     "  Spec remoe.md 8: trains dense, TopK (aux 1e-2), ReMoE LB-L1 and ReMoE plain L1\n"
     "  (AdamW lr 1e-3, warm-up 50, cosine to 1e-4, lambda0 1e-8, alpha 1.2) on the\n"
     "  same batches into DIR/<run>, prints the table (held-out loss, active experts,\n"
     "  sparsity stages, load max/mean), then the training tokens/s of TopK k of E\n"
     "  and of the trained ReMoE checkpoint against dense, interleaved.\n"
     "       sparq bench coat [--out DIR] [--runs fp32,fp8-nodre,coat,coat-act] [--steps 1000]\n"
     "                        [--layers 4 --heads 4 --dim 128 --seq 128 --batch 8] [--lr 1e-3 --min-lr 1e-4]\n"
     "                        [--eval-every 100 --eval-batches 64] [--no-train] [--json]\n"
     "  Spec coat-fp8.md 8: trains FP32 AdamW, plain per-group E4M3 moments, COAT's\n"
     "  FP8 AdamW (DRE) and COAT's AdamW with --fp8-act on the same batches (betas\n"
     "  0.9/0.95, wd 0.1, warm-up 50, cosine), each as its own process into\n"
     "  DIR/<run>, then prints held-out loss, the memory ledger (optimizer state,\n"
     "  saved activations, total), the peak RSS (also above the bare process's, that\n"
     "  of `sparq --version`, and above the RSS at the start of training) and tokens/s\n"
     "  side by side with the FP32 run's over each. --no-train re-reads finished runs.\n"
     "       sparq bench optim [--json] [--reps 30] [--layers 4 --heads 4 --dim 128 --seq 128]\n"
     "  One optimizer step over the GPT's parameters for FP32 AdamW, plain per-group\n"
     "  FP8 moments and COAT's DRE moments, interleaved on the same gradients after\n"
     "  three untimed steps: median and best ms, ns per parameter and the time\n"
     "  over AdamW's. --json prints one object per optimizer.\n"
     "       sparq bench svg [--json] [--reps 5] [--sink off|parity|frame0] [--inner both|flash_f32|sage_cpu]\n"
     "                       [--forced] [--heads 4] [--d 64]\n"
     "  Sparse VideoGen at (F, P) in {(8, 256), (16, 256)} and budgets 0.1, 0.25, 0.5\n"
     "  on generated mixed heads, inner FP32 and Sage: dense FP32 ms (the same kernel\n"
     "  over all keys; the baseline of every speedup), sparse ms\n"
     "  (profiling included unless --forced), speedup, measured density, profiling\n"
     "  and layout shares, rel-L2 against dense. --json prints one object per row\n"
     "  (F, P, budget, inner, threads, dense_ms, sparse_ms, speedup, density,\n"
     "  profile_frac, rel_l2).\n"
     "example: sparq --threads 2 bench gemm --size 2048\n"
     "         sparq --threads 2 bench attn --n 2048 --d 128 --variants sage_cpu\n"
     "         sparq --threads 1 bench vnm --shape 768,768,256 --pattern 64:2:8\n"},
    {"attn", cli_attn, "scaled dot-product attention: flash_f32, ref_f64 and the SageAttention variants",
     "usage: sparq attn --q Q.npy --k K.npy --v V.npy --out O.npy [--lse LSE.npy]\n"
     "                  [--variant V] [--layout HND|NHD] [--causal [--causal-offset N]]\n"
     "                  [--scale S] [--granularity G] [--pv-accum A] [--smooth-k on|off]\n"
     "                  [--smooth-q on|off] [--smooth-v on|off] [--refine-k auto|on|off]\n"
     "                  [--dump DIR]\n"
     "                  [--dout dO.npy --dq dQ.npy --dk dK.npy --dv dV.npy]\n"
     "  O = softmax(scale Q K^T + mask) V on 4-D .npy inputs (F32, F16 or F64):\n"
     "  HND [B,H,N,d] or NHD [B,N,H,d], GQA when K/V have fewer heads, any d <= 256.\n"
     "  V: ref_f64, flash_f32 (default), sage1, sage2_8b, sage2_4b, sage_cpu.\n"
     "  G: per_thread, per_warp, per_block, per_token.\n"
     "  A: f32, f22, f22+f32, f16+f32 (FP8 PV); bf16+f32, u8 (sage_cpu only).\n"
     "  --causal masks key j > query i + N (N = 0 by default; Nq != Nk needs\n"
     "  --causal-offset, Nk - Nq aligns bottom-right). --lse writes the natural-log\n"
     "  LSE [B,H,Nq]. --dout... runs the backward (ref_f64, flash_f32) and writes\n"
     "  the gradients. --dump DIR writes the Sage variants' quantized Q/K, their\n"
     "  scales, delta-S and the smoothing means as .npy. --refine-k (sage_cpu):\n"
     "  a second INT8 pass over K's rounding residual; auto refines the heads whose\n"
     "  estimated score error from K exceeds 0.05 nats (see attention.h).\n"
     "       sparq attn --case D0..D5 --shape B,H,N,d [--kv-heads h] [--kv-len Nk]\n"
     "                  [--variant V] [--causal] [--seed S] [--reps R] [--save DIR] [knobs]\n"
     "  Generates the spec's distribution, runs the variant and ref_f64 and prints\n"
     "  CosSim, RelL1, RMSE, max error, non-finite count and the best time of R.\n"
     "  --save DIR writes q, k, v, o_ref (ref_f64) and o (the variant) as .npy.\n"
     "       sparq attn --variant svg --frames F --frame-tokens P (--q Q.npy --k K.npy --v V.npy\n"
     "                  [--out O.npy] | --case spatial|temporal|mixed [--shape B,H,d])\n"
     "                  [--text-tokens L --text first|last] [--budget R] [--profile-rows T]\n"
     "                  [--sink off|parity|frame0] [--inner flash_f32|sage_cpu] [--block 64]\n"
     "                  [--inclusive-width] [--seed S] [--reps R]\n"
     "                  [--layer l --n-layers n --warmup-layers X] [--step s --n-steps n --warmup-steps X]\n"
     "  Sparse VideoGen on [B,H,S,d] inputs, S = L + F P, video tokens frame-major:\n"
     "  every head is profiled on T sampled query rows (default 32) and runs as a\n"
     "  spatial (same and nearby frames) or temporal (same and nearby positions in\n"
     "  every frame, through the frame-major -> token-major permutation) band that\n"
     "  keeps the budget R (default 0.25) of the scores. Prints one line per head\n"
     "  with its decision, the measured density, the error against the dense\n"
     "  baseline (the same kernel over all keys) and both times. Dense warm-up:\n"
     "  the call runs dense when layer < floor(X n_layers) or step < floor(X n_steps).\n"
     "example: sparq attn --case D1 --shape 1,8,1024,128 --variant sage_cpu\n"
     "         sparq attn --variant svg --case mixed --frames 8 --frame-tokens 256 --shape 1,4,64\n"
     "         sparq attn --q q.npy --k k.npy --v v.npy --causal --out o.npy --lse lse.npy\n"},
    {"prune", cli_prune, "prune a weight matrix to V:N:M sparsity and pack it",
     "usage: sparq prune --in W.safetensors|W.npy [--tensor NAME] --pattern V:2:M|2:4|auto\n"
     "                   [--score abs|ria --calib X.npy [--power 0.5]] [--select joint|twostep]\n"
     "                   [--permute [--permute-tries N] [--seed S]] [--speedup S --tokens T]\n"
     "                   --out OUT.safetensors [--name NAME]\n"
     "  W is out-features x in-features (any numeric dtype). Scores: ABS |w| or RIA\n"
     "  (relative importance x ||X[:, j]||^power, X tokens x in-features). Selection:\n"
     "  joint (best of all 4-column subsets per block, M <= 16) or twostep.\n"
     "  --permute searches input and output channel permutations that raise the\n"
     "  retained score; they are folded into the packed indices. Prints the\n"
     "  retained-score ratio (kept / total score) and the permutation's gain.\n"
     "  --pattern auto measures V in {16,32,64,128} x M in {5,6,7,8} on W's shape\n"
     "  at T tokens (default 256) and keeps the most diverse pattern whose speedup\n"
     "  reaches S (default 1.5). OUT holds NAME.vnm.* (default: the tensor name,\n"
     "  or 'weight' for .npy).\n"
     "example: sparq prune --in w.npy --pattern 64:2:8 --score ria --calib x.npy --permute --out w.vnm.safetensors\n"},
    {"vnm-matmul", cli_vnm_matmul, "Y = X W^T with a V:N:M-packed weight",
     "usage: sparq vnm-matmul --w PACKED.safetensors [--name NAME] --x X.npy --out Y.npy [--check]\n"
     "  X is tokens x in-features (.npy or safetensors, any numeric dtype); Y is\n"
     "  tokens x out-features in the original, unpermuted feature order. --check\n"
     "  compares with sparq_sgemm on the unpacked masked matrix.\n"
     "example: sparq vnm-matmul --w w.vnm.safetensors --x x.npy --out y.npy --check\n"},
    {"train", cli_train, "train a model: lm (GPT on bytes), dit (diffusion), classifier (the evaluation CNN)",
     "usage: sparq train lm --out RUN_DIR [--data fortunes|PATH] [--layers L] [--heads H] [--dim C]\n"
     "                      [--seq T] [--batch B] [--steps S] [--lr X] [--min-lr X] [--warmup W]\n"
     "                      [--wd X] [--clip X] [--beta1 X] [--beta2 X] [--eps X] [--accum A]\n"
     "                      [--eval-every N] [--eval-batches N] [--ckpt-every N] [--seed S]\n"
     "                      [--optim adamw|signgd|adamw-fp8|adamw-fp8-nodre] [--momentum B]\n"
     "                      [--fp8-m e4m3|e5m2] [--fp8-v e4m3|e5m2] [--fp8-shadow] [--fp8-act]\n"
     "                      [--bias on|off] [--stop-at N] [--resume]\n"
     "                      [--cond | --gft [--init CKPT]] [--p-uncond P]\n"
     "                      [--moe relu|topk [--experts E] [--topk K] [--moe-layers all|LIST]\n"
     "                       [--l1 lb|plain] [--lambda0 X] [--alpha X] [--aux COEF]]\n"
     "  GPT with nanoGPT's architecture, initialisation and state_dict names on bytes\n"
     "  (vocabulary 256) of the fortunes corpus (default) or of any file, split 90/10\n"
     "  into training and held-out bytes. AdamW with PyTorch's semantics (decay on\n"
     "  2-D parameters only), linear warm-up then cosine decay to --min-lr (default\n"
     "  lr/10) at the last step, global-norm clipping, gradient accumulation, random\n"
     "  training windows from --seed. Defaults (about 7 minutes on 2 cores): 4 layers,\n"
     "  4 heads, dim 256, seq 128, batch 16, 1500 steps, lr 2e-3, warm-up 100, wd 0.1,\n"
     "  clip 1, betas 0.9/0.99, eval every 250 steps on 16 held-out batches.\n"
     "  --optim signgd: p -= lr sign(g) with the same decoupled weight decay and\n"
     "  schedule (use a smaller lr, e.g. 3e-4); --momentum B (0 = off) takes the\n"
     "  sign of m = B m + (1 - B) g instead (Signum).\n"
     "  Writes RUN_DIR/log.jsonl (one record per step and per evaluation) and\n"
     "  RUN_DIR/ckpt.safetensors (every --ckpt-every steps and at the end, atomically;\n"
     "  nanoGPT tensor names, AdamW moments, config and data position in the\n"
     "  metadata). --stop-at N ends this invocation after step N; --resume continues\n"
     "  from the checkpoint bit-exactly (pass the same flags and thread count).\n"
     "  A NaN or Inf loss or gradient stops the run with an error naming the step.\n"
     "  --cond: class-conditional on the fortunes classes (one per file of at least\n"
     "  4096 bytes, each split 90/10; windows stay inside a class), LlamaGen's class\n"
     "  prefix token, label dropout --p-uncond (default 0.1) to a null class: the CFG\n"
     "  baseline. --gft: Guidance-Free Training (spec gft.md 3, autoregressive): a\n"
     "  gft_beta input (t_embedder.cond_proj on 1000 beta at width 256) added to the\n"
     "  prefix, beta ~ U(0, 1) per sequence, cross-entropy of softmax(beta l +\n"
     "  (1 - beta) sg[l(null, 1)]); the log adds loss_s and loss_u. --init CKPT\n"
     "  starts a --gft run from a --cond checkpoint (its architecture, the beta\n"
     "  projection zeroed: a fine-tune). Neither takes --data PATH (no labels).\n"
     "  --moe relu|topk (spec remoe.md): the MLPs of --moe-layers (default all) become\n"
     "  E experts (--experts, default 8) of the MLP's shape behind a bias-free router:\n"
     "  relu is ReMoE (gates ReLU(x W_r), with lambda times the L1 regulariser --l1 lb\n"
     "  (load-balanced, default) or plain, averaged over blocks; lambda starts at\n"
     "  --lambda0 (1e-8) and is multiplied by --alpha (1.2) after each step whose\n"
     "  sparsity is below 1 - K/E (--topk K, default 1), divided otherwise); topk is\n"
     "  softmax then top-K, unnormalised, with Switch's aux loss times --aux (1e-2)\n"
     "  summed over blocks. The log adds loss_lm, loss_reg, lambda, lambda_reg,\n"
     "  sparsity, active_mean, active_zero, load_max_mean and aux_loss; RUN_DIR/\n"
     "  moe.jsonl has per-block sparsity and expert loads; at the end RUN_DIR/\n"
     "  moe_bytes.tsv has the mean active experts per byte value with its frequency.\n"
     "  --optim adamw-fp8 (COAT, spec coat-fp8.md): AdamW whose m and v are stored as\n"
     "  FP8 codes (--fp8-m/--fp8-v, default e4m3) in groups of 128 with an FP32 scale\n"
     "  and Dynamic Range Expansion x -> sign(x)|x/c|^k per group; adamw-fp8-nodre\n"
     "  scales the groups plainly. Checkpoints hold the codes as F8_E4M3/F8_E5M2\n"
     "  tensors under COAT's names; the log adds nan_params, nan_m, nan_v, v_flush\n"
     "  and RUN_DIR/coat.jsonl the k histograms every 50 steps (--fp8-shadow adds\n"
     "  the relative errors against FP32 moments). --fp8-act keeps what backward\n"
     "  needs in FP8 (E4M3 per tensor for linear inputs, 1x16 groups for LayerNorm\n"
     "  and GELU inputs, q/k/v/attention output in BF16, E5M2 gradients into the\n"
     "  linear layers; the forward is unchanged). Every run writes its memory\n"
     "  ledger and peak RSS to RUN_DIR/memory.json.\n"
     "example: sparq train lm --out runs/lm\n"
     "         sparq train lm --out runs/big --layers 6 --heads 6 --dim 384 --seq 256 --batch 8\n"
     "         sparq train lm --out runs/sign --optim signgd --lr 3e-4 --momentum 0.9\n"
     "         sparq train lm --out runs/cfg --cond && sparq train lm --out runs/gft --gft \\\n"
     "           --init runs/cfg/ckpt.safetensors --steps 150\n"     "         sparq train lm --out runs/remoe --moe relu --experts 8 --topk 1 --dim 128\n"
     "         sparq train lm --out runs/coat --optim adamw-fp8 --fp8-act --dim 128 --beta2 0.95\n"
     "       sparq train classifier --out RUN_DIR [--data DIR] [--epochs E] [--batch B] [--lr X]\n"
     "                              [--min-lr X] [--warmup W] [--wd X] [--seed S] [--stop-at N] [--resume]\n"
     "                              [--export FILE [--export-dtype f16|f32]]\n"
     "  The Fashion-MNIST evaluation CNN of the generation metrics (conv 32, conv 64,\n"
     "  fc 128 = the feature, fc 10; PyTorch names): shuffled epochs, AdamW (betas\n"
     "  0.9/0.999), warm-up then cosine to --min-lr (default lr/100), test-set loss\n"
     "  every epoch, test accuracy at the end. Defaults: 5 epochs, batch 128, lr 2e-3,\n"
     "  warm-up 100, wd 0.05, seed 1. Writes RUN_DIR/log.jsonl and ckpt.safetensors;\n"
     "  --export writes the parameters alone (default FP16) for shipping.\n"
     "         sparq train classifier --out runs/cls --export models/fmnist-classifier.safetensors\n"
     "       sparq train dit --out RUN_DIR [--data fashion-mnist|toy2d] [--data-dir DIR]\n"
     "                       [--schedule vp|edm] [--pred eps|x0|v] [--patch P] [--dim D] [--depth L]\n"
     "                       [--heads H] [--steps S] [--batch B] [--lr X] [--min-lr X] [--warmup W]\n"
     "                       [--wd X] [--clip X] [--ema X] [--p-uncond P] [--eval-every N]\n"
     "                       [--eval-batches N] [--ckpt-every N] [--seed S] [--stop-at N] [--resume]\n"
     "                       [--guidance cfg|gft] [--init CKPT]\n"
     "  A class-conditional DiT (facebookresearch/DiT's architecture, initialisation\n"
     "  and state_dict names, learn_sigma off) on Fashion-MNIST 28 x 28 in [-1, 1]:\n"
     "  VP (DDPM linear betas, 1000 steps) or EDM (Karras preconditioning), eps, x0\n"
     "  or v head, MSE, CFG label dropout --p-uncond, AdamW (betas 0.9/0.999, wd 0),\n"
     "  warm-up then cosine to --min-lr (default lr/10), EMA of the weights.\n"
     "  Defaults: patch 4 (49 tokens), dim 128, depth 4, 4 heads, 8000 steps, batch\n"
     "  128, lr 1e-3, warm-up 200, clip 1, EMA 0.999, p-uncond 0.1, vp eps.\n"
     "  Writes RUN_DIR/log.jsonl, ckpt.safetensors (weights, AdamW moments, EMA as\n"
     "  ema.<name>, config and formulation in the metadata) and ema.safetensors (the\n"
     "  EMA weights under DiT's names: sample with these).\n"
     "  --guidance gft trains guidance-free (spec gft.md): a gft_beta input (t_embedder.\n"
     "  cond_proj, 1000 beta at width 512), beta ~ U(0, 1) per row, the loss on\n"
     "  beta out + (1 - beta) sg[out(null, 1)]. --init CKPT starts from a checkpoint's\n"
     "  (EMA) weights and architecture, the beta projection zeroed (a fine-tune).\n"
     "  --data toy2d trains the MLP denoiser of the 2-D class-conditional mixture\n"
     "  (spec gft.md 8.1: 3 x 128 SiLU, Adam 1e-3, batch 512, 20000 steps, EMA 0.999)\n"
     "  and ends with its exact evaluation: epsilon error against the exact CFG\n"
     "  target and DDIM samples against the exact-CFG reference, at w = 1, 2, 4.\n"
     "         sparq train dit --out runs/dit\n"
     "         sparq train dit --data toy2d --out runs/toy\n"},
    {"sample", cli_sample, "class-conditional images from a DiT checkpoint (any sampler, CFG, attention kernel)",
     "usage: sparq sample --ckpt CKPT [--sampler ddim|euler|heun|dpmpp2m] [--steps N] [--cfg W]\n"
     "                    [--eta X] [--class C|all] [--n N] [--seed S] [--attn VARIANT] [--raw]\n"
     "                    [--beta B] [--grid OUT.png] [--npy OUT.npy] [--gif TRAJECTORY.gif]\n"
     "  Samples from a `sparq train dit` checkpoint (its EMA weights unless --raw;\n"
     "  RUN_DIR/ema.safetensors holds them alone). The formulation (VP or EDM, head)\n"
     "  comes from the checkpoint. DDIM runs on the model's own timesteps (--eta 0:\n"
     "  deterministic); Euler, Heun (EDM's 2nd order) and DPM-Solver++(2M) on the\n"
     "  Karras grid (rho 7). --cfg W > 1: eps_u + W (eps_c - eps_u), conditional and\n"
     "  unconditional rows batched into one network call (2 NFE per step).\n"
     "  --class all cycles the classes over the images. --attn picks the attention\n"
     "  kernel (flash_f32, sage_cpu, ...). Prints NFE per image and the time.\n"
     "  A GFT checkpoint samples with --beta B in (0, 1] (or --cfg W as beta = 1/W)\n"
     "  at one network evaluation per step.\n"
     "  Defaults: ddim, 50 steps, cfg 1, 64 images, seed 0, flash_f32.\n"
     "example: sparq sample --ckpt runs/dit/ema.safetensors --cfg 2 --grid grid.png\n"
     "         sparq sample --ckpt runs/dit/ema.safetensors --sampler dpmpp2m --steps 25 --class 7 --gif t.gif\n"},
    {"export", cli_export, "a DiT checkpoint's (EMA) weights alone, in FP32, FP16 or BF16",
     "usage: sparq export dit --ckpt CKPT --out FILE [--dtype f32|f16|bf16] [--raw]\n"
     "  Writes the DiT's parameters under DiT's state_dict names with its config\n"
     "  and formulation as metadata, no optimizer state: the EMA weights of a\n"
     "  training checkpoint unless --raw. sparq sample and eval fd read the file.\n"
     "example: sparq export dit --ckpt runs/dit/ckpt.safetensors --out dit.safetensors --dtype f16\n"},
    {"generate", cli_generate, "sample text from a trained GPT checkpoint",
     "usage: sparq generate --ckpt CKPT [--prompt TEXT] [--tokens N] [--temperature T]\n"
     "                      [--top-k K] [--seed S] [--class NAME|INDEX [--beta B | --cfg W]]\n"
     "  nanoGPT's sampling: context cropped to block_size, logits / T, top-k, a\n"
     "  multinomial draw (T 0 = greedy). Prints the prompt and N new bytes.\n"
     "  Defaults: prompt newline, 300 tokens, T 0.8, top-k 200, seed 1337.\n"
     "  A conditional checkpoint (train lm --cond or --gft) samples --class (a\n"
     "  fortunes file name or its index; without it the null class, unconditional).\n"
     "  --beta B in (0, 1] (GFT checkpoints): softmax(l(c, B)), one forward per\n"
     "  token; B = 1/w matches CFG at w. --cfg W >= 1: l_u + W (l_c - l_u), two\n"
     "  forwards per token. The NFE per token goes to stderr.\n"
     "example: sparq generate --ckpt runs/lm/ckpt.safetensors --prompt 'The ' --tokens 200\n"
     "         sparq generate --ckpt runs/gft/ckpt.safetensors --class linux --beta 0.5\n"},
    {"eval", cli_eval, "score a checkpoint: lm (nats per byte), fd (FD, accuracy, IS of a DiT's samples)",
     "usage: sparq eval lm --ckpt CKPT [--data fortunes|FILE] [--json]\n"
     "  The mean cross-entropy as nanoGPT would score it: windows i = 0, T, 2T, ...\n"
     "  while i + T + 1 <= length, inputs [i, i+T), targets [i+1, i+T+1), T the\n"
     "  model's context. fortunes scores the held-out 10%; a FILE is scored whole.\n"
     "  A conditional checkpoint is scored through its null class (unconditional).\n"
     "  --json prints {\"loss_nats\":..,\"bits_per_byte\":..,\"tokens\":..}.\n"
     "       sparq eval fd --ckpt CKPT[,CKPT...] [--beta B[,B...] | --cfg W[,W...]] [--n 10000] [--sampler S]\n"
     "                     [--steps N] [--eta X] [--seed S] [--attn VARIANT] [--raw] [--classifier PATH]\n"
     "                     [--data-dir DIR] [--json | --jsonl FILE]\n"
     "  Generation metrics of DiT checkpoints with the shipped Fashion-MNIST\n"
     "  classifier (spec gft.md 8.2): N samples with balanced classes per point of\n"
     "  the guidance sweep, Frechet distance of the classifier's 128-d features\n"
     "  against the 10k test images, class accuracy, IS-analog\n"
     "  exp E KL(p(y|x) || p(y)), NFE and sampling seconds; first the same figures\n"
     "  for N real training images (the floor). Several checkpoints (up to 8) run\n"
     "  side by side on the same noise: a CFG checkpoint at w = 1/beta (2 NFE per\n"
     "  step), a GFT one at beta (1 NFE per step); --cfg W is the same sweep as\n"
     "  --beta 1/W (W >= 1). A summary compares each checkpoint with the first:\n"
     "  best FD ratio, largest accuracy gap at matched beta, sampling time ratio.\n"
     "  --json prints one object per line instead of the table, --jsonl FILE writes\n"
     "  them to FILE next to it (`sparq plot FILE` draws FD against accuracy).\n"
     "example: sparq eval lm --ckpt runs/lm/ckpt.safetensors\n"
     "         sparq eval fd --ckpt runs/dit/ema.safetensors --cfg 1,1.5,2,3,4 --n 2000 --sampler dpmpp2m --steps 25\n"
     "         sparq eval fd --ckpt runs/dit/ema.safetensors,runs/gft/ema.safetensors --beta 1,.8,.67,.5,.4,.33,.25\n"
     "              --sampler dpmpp2m --steps 25 --jsonl sweep.jsonl\n"},
    {"plot", cli_plot, "draw a training log's loss curve or an `eval fd` sweep with gnuplot",
     "usage: sparq plot LOG.jsonl|SWEEP.jsonl --out PLOT.png\n"
     "  A training log: training loss per step and held-out loss per evaluation.\n"
     "  An `eval fd --json` sweep: FD against class accuracy, one curve per\n"
     "  checkpoint, each point labelled with its beta (= 1/w). Writes the gnuplot\n"
     "  script next to the PNG (PLOT.png.gp); without gnuplot it says so and fails.\n"
     "example: sparq plot runs/lm/log.jsonl --out runs/lm/loss.png\n"
     "         sparq plot sweep.jsonl --out fd-acc.png\n"},
    {"demo", cli_demo, "the main job: run every finished capability on built-in data",
     "usage: sparq demo [--out DIR]\n"
     "  Writes its outputs under DIR (default sparq-out/): a Fashion-MNIST grid,\n"
     "  the peak probe, the GEMM benchmark, a short attention table and a\n"
     "  V:N:M-pruned random layer with its sparse-vs-dense speedup row, and a small\n"
     "  byte-level GPT trained for about a minute on fortunes (DIR/lm: checkpoint,\n"
     "  log, loss.png) with a sample of its text, and a class-conditional grid from\n"
     "  the shipped DiT with CFG (DIR/dit) with its FD line.\n"
     "example: sparq demo --out sparq-out\n"},
    {"signgd", cli_signgd, "SignGD vs Adam vs GD on a two-layer transformer: the training-dynamics study",
     "usage: sparq signgd --out DIR [--optim signgd|adam|gd] [--snr X] [--d D] [--s S] [--n N]\n"
     "                    [--sigma-p X] [--m M] [--sigma0 X] [--steps T] [--lr X] [--eps X]\n"
     "                    [--seed K] [--random-position] [--no-plots]\n"
     "  One full-batch run on the synthetic data of Li et al. (ICLR 2025): a signal\n"
     "  patch y*mu and an s-sparse noise patch, SNR = ||mu|| / (sigma_p sqrt(s)),\n"
     "  softmax attention with trainable W_Q, W_K and two value matrices, logistic\n"
     "  loss. Defaults are the spec's: SNR 1, d 2000, s 40, n 32, sigma_p 1, m 8,\n"
     "  sigma0 0.01, T 600, lr 1e-3 (signgd, adam) or 0.5 (gd), Adam eps 1e-15.\n"
     "  Writes DIR/log.jsonl (the stage quantities at every step up to 50, then\n"
     "  every 10, and at t_conv), DIR/table.md, DIR/runs.csv, DIR/trace.dat and\n"
     "  DIR/plots.gp, and draws DIR/*.png with gnuplot when it is installed.\n"
     "       sparq signgd --reproduce --out DIR [--d D] [--steps T] [--random-position]\n"
     "                    [--no-plots]\n"
     "  The spec's protocol: SNR 0.1, 0.25, 0.5, 1 x seeds 0-4 x SignGD, Adam, GD\n"
     "  (60 runs across the threads). Writes DIR/table.md (t_conv, test loss at\n"
     "  t_conv and at T, stage markers, acceptance checks), DIR/runs.csv,\n"
     "  DIR/runs/*.jsonl and the four stage figures losses.png, signal_noise.png,\n"
     "  alignment.png and softmax.png. --d 8000 and --random-position are the\n"
     "  spec's variants.\n"
     "example: sparq signgd --reproduce --out sparq-out/signgd\n"
     "         sparq signgd --optim adam --snr 0.5 --out sparq-out/adam-snr0.5\n"},
    {"gft-toy", cli_gft_toy, "guidance-free training vs CFG on the 2-D toy: the arms of spec gft.md 8.1, exact metrics",
     "usage: sparq gft-toy --out DIR [--steps 20000] [--finetune-steps N] [--n 10000] [--seed S]\n"
     "                     [--csv FILE] [--json]\n"
     "  Trains three toy MLPs (3 x 128 SiLU, vp eps, Adam 1e-3, batch 512, EMA 0.999)\n"
     "  with the same seed: A CFG (label dropout 0.1) and B GFT from scratch for\n"
     "  --steps each, C GFT fine-tuned from A's EMA weights (beta projection zero)\n"
     "  for --finetune-steps (default 10% of --steps), into DIR/A-cfg, DIR/B-gft and\n"
     "  DIR/C-gft-finetune (checkpoints and log.jsonl). A finished run whose settings\n"
     "  match is reused, not retrained, so re-running the evaluation is cheap.\n"
     "  Then samples every arm's EMA weights at beta 1, .67, .5, .33, .25 (A at\n"
     "  w = 1/beta, 2 NFE per step; B and C with gft_beta, 1 NFE) with DDIM 50\n"
     "  steps, --n samples per class of all 4 classes, from the same noise as the\n"
     "  exact-CFG reference (DDIM 500 steps), and prints per arm and beta: the eps\n"
     "  error against eps*_u + w (eps*_c - eps*_u), the paired endpoint distance and\n"
     "  the energy distance to the reference, the exact log p(x|c), the Bayes\n"
     "  accuracy, the modes covered, NFE per sample and the sampling seconds; then\n"
     "  the acceptance lines (eps error of B and C at beta 0.5 within 1.2 x A's at\n"
     "  w 2; spec 9.9: B's below 0.05 E||eps_w*||^2). --csv writes the table,\n"
     "  --json prints one object per row and per check (the rest goes to stderr).\n"
     "example: sparq --threads 1 gft-toy --out runs/gft-toy\n"
     "         sparq gft-toy --out /tmp/gft-small --steps 2000 --n 1000 --csv /tmp/gft-small.csv\n"},
};
const int cli_command_count = (int)(sizeof cli_commands / sizeof cli_commands[0]);

const cli_command *cli_find(const char *name) {
  for (int i = 0; i < cli_command_count; i++)
    if (!strcmp(cli_commands[i].name, name)) return &cli_commands[i];
  return NULL;
}

void cli_usage(const char *command, bool to_stdout) {
  const cli_command *c = cli_find(command);
  if (c) fputs(c->usage, to_stdout ? stdout : stderr);
}

static void print_overview(FILE *out) {
  fprintf(out,
          "sparq %s: efficient generative transformer methods on the CPU\n\n"
          "usage: sparq [--threads N] <command> [options]\n"
          "       sparq help <command>\n"
          "       sparq --version\n\ncommands:\n",
          sparq_version());
  for (int i = 0; i < cli_command_count; i++)
    fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
  fprintf(out,
          "\nglobal options:\n"
          "  --threads N   OpenMP threads (default: $SPARQ_THREADS, else all processors)\n"
          "environment:\n"
          "  SPARQ_THREADS  thread count;  SPARQ_ISA=scalar|avx2|avx512  cap the SIMD level\n");
}

/* Removes "--threads N" / "--threads=N" from argv (before any "--") and applies it. */
static int take_threads_flag(int *argc, char **argv) {
  long threads = 0;
  for (int i = 1; i < *argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    const char *value = NULL;
    int consumed = 0;
    if (!strcmp(argv[i], "--threads")) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "sparq: --threads needs a value\n");
        return CLI_USAGE;
      }
      value = argv[i + 1], consumed = 2;
    } else if (!strncmp(argv[i], "--threads=", 10)) {
      value = argv[i] + 10, consumed = 1;
    } else {
      continue;
    }
    char *end;
    errno = 0;
    threads = strtol(value, &end, 10);
    if (errno || end == value || *end || threads < 1 || threads > 4096) {
      fprintf(stderr, "sparq: --threads expects a count in 1..4096, got '%s'\n", value);
      return CLI_USAGE;
    }
    memmove(&argv[i], &argv[i + consumed], (size_t)(*argc - i - consumed + 1) * sizeof *argv);
    *argc -= consumed;
    i--;
  }
  if (sparq_set_threads((int)threads) < 0) {
    fprintf(stderr, "sparq: %s\n", sparq_last_error());
    return CLI_USAGE;
  }
  return CLI_OK;
}

int main(int argc, char **argv) {
  int rc = take_threads_flag(&argc, argv);
  if (rc != CLI_OK) return rc;
  if (argc < 2) {
    print_overview(stderr);
    return CLI_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--version") || !strcmp(name, "version")) {
    printf("sparq %s\n", sparq_version());
    return CLI_OK;
  }
  if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
    print_overview(stdout);
    return CLI_OK;
  }
  if (!strcmp(name, "help")) {
    if (argc < 3) {
      print_overview(stdout);
      return CLI_OK;
    }
    if (!cli_find(argv[2])) {
      fprintf(stderr, "sparq: unknown command '%s'\n", argv[2]);
      return CLI_USAGE;
    }
    cli_usage(argv[2], true);
    return CLI_OK;
  }
  const cli_command *c = cli_find(name);
  if (!c) {
    fprintf(stderr, "sparq: unknown command '%s'\n\n", name);
    print_overview(stderr);
    return CLI_USAGE;
  }
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      cli_usage(name, true);
      return CLI_OK;
    }
  return c->run(argc - 1, argv + 1);
}
