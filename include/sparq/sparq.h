/* sparq: efficient generative transformer methods on the CPU.
 * Include this for the whole public API. */
#ifndef SPARQ_H
#define SPARQ_H

#include "sparq/status.h"
#include "sparq/base.h"
#include "sparq/tensor.h"
#include "sparq/num.h"
#include "sparq/io.h"
#include "sparq/image.h"
#include "sparq/kernels.h"
#include "sparq/vnm.h"
#include "sparq/attention.h"
#include "sparq/svg.h"
#include "sparq/data.h"
#include "sparq/nn.h"
#include "sparq/coat.h"
#include "sparq/train.h"
#include "sparq/gpt.h"
#include "sparq/lm.h"
#include "sparq/eval.h"
#include "sparq/signgd.h"
#include "sparq/dit.h"
#include "sparq/diffusion.h"
#include "sparq/gft.h"
#include "sparq/gft_toy.h"
#include "sparq/dit_task.h"
#include "sparq/toy2d.h"
#include "sparq/toy_mlp.h"
#include "sparq/toy_metrics.h"
#include "sparq/classifier.h"
#include "sparq/gen_metrics.h"

#endif
