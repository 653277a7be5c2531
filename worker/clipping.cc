#include "worker/clipping.h"

#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dpfleet::worker {

absl::StatusOr<ClippedBatch> AccumulateClippedGradients(models::Model& model, const at::Tensor& inputs,
                                                        const at::Tensor& labels, double clip_norm,
                                                        std::vector<at::Tensor>& sums) {
  if (!std::isfinite(clip_norm) || clip_norm <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("clip_norm must be finite and > 0, got ", clip_norm));
  }
  if (inputs.size(0) != labels.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("batch of ", inputs.size(0), " inputs but ",
                                                   labels.size(0), " labels"));
  }
  if (sums.size() != model.parameters().size()) {
    return absl::InvalidArgumentError(absl::StrCat("need ", model.parameters().size(),
                                                   " gradient sums, got ", sums.size()));
  }
  ClippedBatch batch;
  batch.examples = inputs.size(0);
  if (batch.examples == 0) return batch;

  models::ForwardTrace trace;
  const at::Tensor logits = model.Forward(inputs, &trace);
  // Summed (not averaged) loss: the gradient w.r.t. each layer output is then exactly the per-example
  // output gradient dy_i, row by row.
  const at::Tensor loss = at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum);
  batch.loss_sum = loss.item<double>();

  std::vector<at::Tensor> outputs;
  outputs.reserve(trace.linear_layers.size());
  for (const models::LinearLayerTrace& layer : trace.linear_layers) outputs.push_back(layer.output);
  const std::vector<at::Tensor> output_grads = torch::autograd::grad({loss}, outputs);

  at::NoGradGuard no_grad;
  at::Tensor squared_norms = at::zeros({batch.examples}, logits.options().dtype(at::kDouble));
  for (size_t l = 0; l < trace.linear_layers.size(); ++l) {
    const models::LinearLayerTrace& layer = trace.linear_layers[l];
    const at::Tensor dy_sq = output_grads[l].to(at::kDouble).pow(2).sum(1);
    const at::Tensor x_sq = layer.input.to(at::kDouble).pow(2).sum(1);
    squared_norms += dy_sq * x_sq;
    if (layer.bias_index >= 0) squared_norms += dy_sq;
  }
  // c_i = min(1, C / ||g_i||); the 1e-6 guard follows Opacus and only matters for zero gradients.
  const at::Tensor factors =
      (clip_norm / (squared_norms.sqrt() + 1e-6)).clamp_max(1.0).to(logits.scalar_type());
  for (size_t l = 0; l < trace.linear_layers.size(); ++l) {
    const models::LinearLayerTrace& layer = trace.linear_layers[l];
    const at::Tensor scaled = output_grads[l] * factors.unsqueeze(1);
    sums[layer.weight_index].add_(scaled.t().mm(layer.input));
    if (layer.bias_index >= 0) sums[layer.bias_index].add_(scaled.sum(0));
  }
  return batch;
}

}  // namespace dpfleet::worker
