#include "worker/clipping.h"

#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dpfleet::worker {
namespace {

// Returns OK when the traced layers of `trace` train every parameter exactly once and nothing mixes
// examples.
absl::Status CheckTrace(const models::Model& model, const models::ForwardTrace& trace) {
  if (!trace.example_mixing_modules.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot train privately: ", absl::StrJoin(trace.example_mixing_modules, ", "),
                     " mixes the examples of a batch (use GroupNorm or LayerNorm)"));
  }
  std::vector<int> owners(model.parameters().size(), 0);
  for (const auto& layer : trace.layers) {
    for (int index : layer->parameter_indices()) {
      if (++owners[index] > 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("parameter ", model.parameter_names()[index],
                         " is trained by two layers; shared "
                         "parameters are not supported by per-example clipping"));
      }
    }
  }
  for (size_t i = 0; i < owners.size(); ++i) {
    if (owners[i] == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("parameter ", model.parameter_names()[i],
                       " is not trained by any traced layer, so its "
                       "per-example gradients cannot be clipped"));
    }
  }
  return absl::OkStatus();
}

// c = C / (norm + stability) for automatic clipping, else min(1, C / (norm + 1e-6)) (the 1e-6
// follows Opacus and only matters for zero gradients).
at::Tensor ClipFactors(const at::Tensor& squared_norms, double clip_norm,
                       const ClippingOptions& options) {
  const at::Tensor norms = squared_norms.sqrt();
  if (options.automatic) return clip_norm / (norms + options.automatic_stability);
  return (clip_norm / (norms + 1e-6)).clamp_max(1.0);
}

// The summed loss (as SummedLoss) and its gradient with respect to the logits, in closed form:
// softmax(z) - onehot(y) for softmax cross-entropy, sigmoid(z) - onehot(y) for the per-class
// sigmoid loss. Fused like this it costs a few passes over the logits, about half of autograd
// through the library's loss, which matters for linear heads over many classes.
std::pair<double, at::Tensor> SummedLossAndGradient(const at::Tensor& logits,
                                                    const at::Tensor& labels, Loss loss) {
  at::NoGradGuard no_grad;
  const at::Tensor z = logits.detach();
  const at::Tensor index = labels.view({-1, 1});
  const double label_logits = z.gather(1, index).sum().item<double>();
  at::Tensor gradient;
  double loss_sum;
  if (loss == Loss::kSigmoidCrossEntropy) {
    gradient = z.sigmoid();
    // sum_ij softplus(z_ij) - sum_i z_{i,y_i}, with softplus(z) = max(z, 0) + log1p(exp(-|z|)).
    loss_sum = z.clamp_min(0).sum().item<double>() +
               z.abs().neg_().exp_().log1p_().sum().item<double>() - label_logits;
  } else {
    const at::Tensor max = std::get<0>(z.max(1, /*keepdim=*/true));
    gradient = (z - max).exp_();
    const at::Tensor total = gradient.sum(1, /*keepdim=*/true);
    gradient.div_(total);
    // sum_i logsumexp(z_i) - z_{i,y_i}.
    loss_sum = (max.sum() + total.log_().sum()).item<double>() - label_logits;
  }
  gradient.scatter_add_(1, index, at::full({z.size(0), 1}, -1.0, z.options()));
  return {loss_sum, gradient};
}

// Ghost clipping (ClippingOptions::low_memory), flat clipping only. Pass 1: hooks on the layer
// outputs take the per-example norms while a backward to the inputs runs, so no output gradient
// outlives its use. Pass 2: the ordinary parameter gradient of sum_i c_i loss_i, with c_i from
// pass 1, is the clipped sum sum_i c_i g_i.
absl::Status GhostClippedSum(models::Model& model, models::ForwardTrace& trace,
                             const at::Tensor& inputs, const at::Tensor& logits,
                             const at::Tensor& logit_gradient, const ClippingOptions& options,
                             std::vector<at::Tensor>& sums) {
  if (options.mode != ClippingMode::kFlat) {
    return absl::InvalidArgumentError(
        "low-memory (ghost) clipping supports flat clipping only: per-layer factors would need a "
        "backward pass per layer");
  }
  const size_t layers = trace.layers.size();
  std::vector<at::Tensor> layer_squared(layers);
  std::vector<unsigned> hooks(layers);
  for (size_t l = 0; l < layers; ++l) {
    hooks[l] = trace.layers[l]->output().register_hook([&, l](const at::Tensor& gradient) {
      at::NoGradGuard no_grad;
      layer_squared[l] = trace.layers[l]->SquaredNorms(gradient);
    });
  }
  torch::autograd::grad({logits}, {inputs}, {logit_gradient}, /*retain_graph=*/true,
                        /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t l = 0; l < layers; ++l) trace.layers[l]->output().remove_hook(hooks[l]);
  at::Tensor squared = at::zeros({logits.size(0)}, logits.options().dtype(at::kDouble));
  for (size_t l = 0; l < layers; ++l) {
    if (!layer_squared[l].defined()) {
      return absl::FailedPreconditionError(
          absl::StrCat("low-memory clipping: layer ", trace.layers[l]->name(),
                       " does not depend on the inputs through differentiable operations"));
    }
    squared += layer_squared[l];
  }
  const at::Tensor factors = ClipFactors(squared, options.clip_norm, options);
  const at::Tensor weighted =
      logit_gradient * factors.to(logit_gradient.scalar_type()).view({-1, 1});
  const std::vector<at::Tensor> gradients =
      torch::autograd::grad({logits}, model.parameters(), {weighted}, /*retain_graph=*/false,
                            /*create_graph=*/false, /*allow_unused=*/true);
  at::NoGradGuard no_grad;
  for (size_t p = 0; p < sums.size(); ++p) {
    if (gradients[p].defined()) sums[p].add_(gradients[p]);
  }
  return absl::OkStatus();
}

}  // namespace

at::Tensor SummedLoss(const at::Tensor& logits, const at::Tensor& labels, Loss loss) {
  if (loss == Loss::kSigmoidCrossEntropy) {
    const at::Tensor targets = at::one_hot(labels, logits.size(1)).to(logits.scalar_type());
    return at::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::Sum);
  }
  return at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum);
}

absl::Status CheckPrivatelyTrainable(models::Model& model, const at::Tensor& example_batch) {
  models::ForwardTrace trace;
  at::NoGradGuard no_grad;
  model.Forward(example_batch, &trace);
  return CheckTrace(model, trace);
}

absl::StatusOr<ClippedBatch> AccumulateClippedGradients(
    models::Model& model, const at::Tensor& inputs, const at::Tensor& labels,
    const ClippingOptions& options, std::vector<at::Tensor>& sums,
    const std::function<void(const std::vector<int>&)>& on_accumulated) {
  if (!std::isfinite(options.clip_norm) || options.clip_norm <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("clip_norm must be finite and > 0, got ", options.clip_norm));
  }
  if (inputs.size(0) != labels.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch of ", inputs.size(0), " inputs but ", labels.size(0), " labels"));
  }
  if (sums.size() != model.parameters().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("need ", model.parameters().size(), " gradient sums, got ", sums.size()));
  }
  ClippedBatch batch;
  batch.examples = inputs.size(0);
  if (batch.examples == 0) return batch;

  models::ForwardTrace trace;
  // Ghost clipping's first pass differentiates with respect to the inputs, which reaches every
  // layer's output.
  const at::Tensor differentiable_inputs =
      options.low_memory ? inputs.detach().requires_grad_(true) : inputs;
  const at::Tensor logits = model.Forward(differentiable_inputs, &trace);
  if (absl::Status valid = CheckTrace(model, trace); !valid.ok()) return valid;
  // Summed (not averaged) loss: the gradient w.r.t. each layer output is then exactly the
  // per-example output gradient, row by row.
  auto [loss_sum, logit_gradient] = SummedLossAndGradient(logits, labels, options.loss);
  batch.loss_sum = loss_sum;

  if (options.low_memory) {
    const absl::Status summed =
        GhostClippedSum(model, trace, differentiable_inputs, logits, logit_gradient, options, sums);
    if (!summed.ok()) return summed;
    if (on_accumulated) {
      for (const auto& layer : trace.layers) on_accumulated(layer->parameter_indices());
    }
    return batch;
  }

  std::vector<at::Tensor> outputs;
  outputs.reserve(trace.layers.size());
  for (const auto& layer : trace.layers) outputs.push_back(layer->output());
  std::vector<at::Tensor> output_grads =
      torch::autograd::grad({logits}, outputs, {logit_gradient}, /*retain_graph=*/false,
                            /*create_graph=*/false, /*allow_unused=*/true);

  at::NoGradGuard no_grad;
  for (size_t l = 0; l < outputs.size(); ++l) {
    if (!output_grads[l].defined()) output_grads[l] = at::zeros_like(outputs[l]);
  }
  if (options.mode == ClippingMode::kFlat) {
    at::Tensor squared = at::zeros({batch.examples}, logits.options().dtype(at::kDouble));
    for (size_t l = 0; l < trace.layers.size(); ++l)
      squared += trace.layers[l]->SquaredNorms(output_grads[l]);
    const at::Tensor factors = ClipFactors(squared, options.clip_norm, options);
    for (size_t l = 0; l < trace.layers.size(); ++l) {
      trace.layers[l]->AccumulateScaled(output_grads[l], factors, sums);
      if (on_accumulated) on_accumulated(trace.layers[l]->parameter_indices());
    }
  } else {
    const double per_layer_norm =
        options.clip_norm / std::sqrt(static_cast<double>(trace.layers.size()));
    for (size_t l = 0; l < trace.layers.size(); ++l) {
      const at::Tensor factors =
          ClipFactors(trace.layers[l]->SquaredNorms(output_grads[l]), per_layer_norm, options);
      trace.layers[l]->AccumulateScaled(output_grads[l], factors, sums);
      if (on_accumulated) on_accumulated(trace.layers[l]->parameter_indices());
    }
  }
  return batch;
}

}  // namespace dpfleet::worker
