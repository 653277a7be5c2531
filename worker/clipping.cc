#include "worker/clipping.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <unordered_set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

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

// c = C' / (norm + stability) for automatic clipping, else min(1, C' / (norm + 1e-6)), with
// C' = C (1 - ClipMargin(dtype)) (the 1e-6 follows Opacus and only matters for zero gradients).
at::Tensor ClipFactors(const at::Tensor& squared_norms, double clip_norm,
                       const ClippingOptions& options, at::ScalarType dtype) {
  const at::Tensor norms = squared_norms.sqrt();
  const double target = clip_norm * (1 - ClipMargin(dtype));
  if (options.automatic) return target / (norms + options.automatic_stability);
  return (target / (norms + 1e-6)).clamp_max(1.0);
}

// The summed loss (as SummedLoss) and its gradient with respect to the logits, in closed form:
// softmax(z) - onehot(y) for softmax cross-entropy, sigmoid(z) - onehot(y) for the per-class
// sigmoid loss. Fused like this it costs a few passes over the logits, about half of autograd
// through the library's loss, which matters for linear heads over many classes.
// Returns the per-example losses [B] (in double) and the gradient of their sum w.r.t. `logits`.
std::pair<at::Tensor, at::Tensor> PerExampleLossAndGradient(const at::Tensor& logits,
                                                            const at::Tensor& labels, Loss loss) {
  at::NoGradGuard no_grad;
  const at::Tensor z = logits.detach();
  const at::Tensor index = labels.view({-1, 1});
  const at::Tensor label_logits = z.gather(1, index).squeeze(1).to(at::kDouble);
  at::Tensor gradient;
  at::Tensor losses;
  if (loss == Loss::kSigmoidCrossEntropy) {
    gradient = z.sigmoid();
    // sum_j softplus(z_ij) - z_{i,y_i}, with softplus(z) = max(z, 0) + log1p(exp(-|z|)).
    losses =
        (z.clamp_min(0) + z.abs().neg_().exp_().log1p_()).sum(1).to(at::kDouble) - label_logits;
  } else {
    const at::Tensor max = std::get<0>(z.max(1, /*keepdim=*/true));
    gradient = (z - max).exp_();
    const at::Tensor total = gradient.sum(1, /*keepdim=*/true);
    gradient.div_(total);
    // logsumexp(z_i) - z_{i,y_i}.
    losses = (max + total.log()).squeeze(1).to(at::kDouble) - label_logits;
  }
  gradient.scatter_add_(1, index, at::full({z.size(0), 1}, -1.0, z.options()));
  return {losses, gradient};
}

// Runs the backward pass from `logits`, seeded with `logit_gradient`, just far enough to reach the
// output of every traced layer, and calls visit(l, dL/d(output of layer l)) once for each layer
// whose output reaches the loss, as soon as that gradient is final (from a hook). No parameter
// gradient is computed, and an output gradient outlives its layer's turn only if visit keeps it.
// Returns which layers were visited.
//
// The backward is taken with respect to the outputs of the "source" layers, those that depend on
// no other traced layer: every other layer that reaches the loss lies between the loss and a
// source, so the engine runs its node and fires its hook. Differentiating with respect to the
// model's inputs instead would cost an input gradient (for a linear head on features, as much as
// its weight gradient) and miss layers fed by integer ids.
std::vector<bool> VisitOutputGradients(
    const models::ForwardTrace& trace, const at::Tensor& logits, const at::Tensor& logit_gradient,
    bool retain_graph, const std::function<void(size_t, const at::Tensor&)>& visit) {
  using torch::autograd::Edge;
  using torch::autograd::Node;
  const size_t layers = trace.layers.size();
  std::unordered_set<const Node*> layer_nodes;
  for (const auto& layer : trace.layers) {
    if (layer->output_edge().is_valid()) layer_nodes.insert(layer->output_edge().function.get());
  }
  std::vector<Edge> sources;
  std::vector<size_t> source_layers;
  for (size_t l = 0; l < layers; ++l) {
    const Edge& own = trace.layers[l]->output_edge();
    if (!own.is_valid()) continue;  // Nothing upstream of it requires a gradient.
    std::unordered_set<const Node*> seen;
    std::vector<const Node*> pending = {own.function.get()};
    bool depends_on_a_layer = false;
    while (!pending.empty() && !depends_on_a_layer) {
      const Node* node = pending.back();
      pending.pop_back();
      for (const Edge& edge : node->next_edges()) {
        const Node* next = edge.function.get();
        if (next == nullptr || !seen.insert(next).second) continue;
        if (layer_nodes.count(next) > 0) depends_on_a_layer = true;
        pending.push_back(next);
      }
    }
    if (!depends_on_a_layer) {
      sources.push_back(own);
      source_layers.push_back(l);
    }
  }
  std::vector<bool> visited(layers, false);
  if (sources.empty()) return visited;
  auto visit_once = [&](size_t l, const at::Tensor& gradient) {
    at::NoGradGuard no_grad;
    visited[l] = true;
    visit(l, gradient);
  };
  for (size_t l = 0; l < layers; ++l) {
    trace.layers[l]->SetGradientVisitor(
        [&, l](const at::Tensor& gradient) { visit_once(l, gradient); });
  }
  // The hooks live in the graph: never leave them pointing at this frame, even on a throw.
  const absl::Cleanup unhook = [&] {
    for (const auto& layer : trace.layers) layer->SetGradientVisitor(nullptr);
  };
  const std::vector<at::Tensor> captured = torch::autograd::Engine::get_default_engine().execute(
      {torch::autograd::impl::gradient_edge(logits)}, {logit_gradient}, retain_graph,
      /*create_graph=*/false, /*accumulate_grad=*/false, sources);
  // The engine captures the gradients of the edges it differentiates with respect to without
  // running their hooks: visit those here.
  for (size_t k = 0; k < sources.size(); ++k) {
    const size_t l = source_layers[k];
    if (!visited[l] && captured[k].defined()) visit_once(l, captured[k]);
  }
  return visited;
}

// Ghost clipping's second pass (ClippingOptions::low_memory): the ordinary parameter gradient of
// sum_i c_i loss_i, with the factors c_i from the first pass's norms, is the clipped sum
// sum_i c_i g_i.
void GhostClippedSum(models::Model& model, const at::Tensor& logits,
                     const at::Tensor& logit_gradient, const at::Tensor& factors,
                     std::vector<at::Tensor>& sums) {
  const at::Tensor weighted =
      logit_gradient * factors.to(logit_gradient.scalar_type()).view({-1, 1});
  const std::vector<at::Tensor> gradients =
      torch::autograd::grad({logits}, model.parameters(), {weighted}, /*retain_graph=*/false,
                            /*create_graph=*/false, /*allow_unused=*/true);
  at::NoGradGuard no_grad;
  for (size_t p = 0; p < sums.size(); ++p) {
    if (gradients[p].defined()) sums[p].add_(gradients[p]);
  }
}

}  // namespace

double ClipMargin(at::ScalarType dtype) { return dtype == at::kDouble ? 1e-10 : 1e-4; }

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

namespace {

// Returns the rows of a batch whose per-example squared norms or losses are not finite.
std::vector<int64_t> NonFiniteRows(const at::Tensor& squared_norms, const at::Tensor& losses) {
  const at::Tensor bad = squared_norms.isfinite().logical_and(losses.isfinite()).logical_not();
  const at::Tensor rows = bad.nonzero().view({-1}).to(at::kLong).contiguous();
  return std::vector<int64_t>(rows.data_ptr<int64_t>(), rows.data_ptr<int64_t>() + rows.numel());
}

// One pass over a batch: the forward pass, the per-example norms and, when every example's
// gradient norm and loss are finite, the clipped sums into `sums` (returns no row). Otherwise adds
// nothing, calls nothing, and returns the rows that are not finite: an example whose gradient has
// an inf or a NaN has no norm to clip to, and 0 * inf = NaN would carry it into the sum anyway.
absl::StatusOr<std::vector<int64_t>> AccumulateUnlessNonFinite(
    models::Model& model, const at::Tensor& inputs, const at::Tensor& labels,
    const ClippingOptions& options, std::vector<at::Tensor>& sums,
    const std::function<void(const std::vector<int>&)>& on_accumulated, ClippedBatch& batch) {
  models::ForwardTrace trace;
  const at::Tensor logits = model.Forward(inputs, &trace);
  if (absl::Status valid = CheckTrace(model, trace); !valid.ok()) return valid;
  // Summed (not averaged) loss over the examples, each the mean over its views: the gradient
  // w.r.t. each layer output is then exactly the per-example output gradient, row by row.
  const int64_t views = options.views_per_example;
  auto [losses, logit_gradient] = PerExampleLossAndGradient(
      logits, views == 1 ? labels : labels.repeat_interleave(views), options.loss);
  if (views > 1) {
    losses = losses.view({-1, views}).mean(1);
    logit_gradient.div_(static_cast<double>(views));
  }
  auto record_losses = [&, losses = losses] {
    batch.loss_sum = losses.sum().item<double>();
    if (options.loss_clip > 0) {
      // A cross-entropy is >= 0; rounding may leave it a hair below.
      batch.clipped_loss_sum = losses.clamp(0, options.loss_clip).sum().item<double>();
    }
  };
  const int64_t examples = labels.size(0);
  // The factors of AccumulateScaled and the ghost sum are per row.
  auto per_row = [views](const at::Tensor& factors) {
    return views == 1 ? factors : factors.repeat_interleave(views);
  };

  if (options.low_memory) {
    if (options.mode != ClippingMode::kFlat) {
      return absl::InvalidArgumentError(
          "low-memory (ghost) clipping supports flat clipping only: per-layer factors would need "
          "a backward pass per layer");
    }
    // Pass 1 takes the norms; pass 2 (GhostClippedSum) the sum, only once they are all finite.
    at::Tensor squared = at::zeros({examples}, logits.options().dtype(at::kDouble));
    VisitOutputGradients(trace, logits, logit_gradient, /*retain_graph=*/true,
                         [&](size_t l, const at::Tensor& gradient) {
                           squared += trace.layers[l]->SquaredNorms(gradient, views);
                         });
    if (std::vector<int64_t> bad = NonFiniteRows(squared, losses); !bad.empty()) return bad;
    GhostClippedSum(model, logits, logit_gradient,
                    per_row(ClipFactors(squared, options.clip_norm, options, logits.scalar_type())),
                    sums);
    if (on_accumulated) {
      for (const auto& layer : trace.layers) on_accumulated(layer->parameter_indices());
    }
    record_losses();
    return std::vector<int64_t>();
  }

  // What each layer keeps of its output gradient (layers.h, LayerTrace::Absorb), taken as the
  // backward pass goes, so output gradients that are not needed are freed at once.
  std::vector<at::Tensor> kept(trace.layers.size());
  const std::vector<bool> visited = VisitOutputGradients(
      trace, logits, logit_gradient, /*retain_graph=*/false,
      [&](size_t l, const at::Tensor& gradient) { kept[l] = trace.layers[l]->Absorb(gradient); });
  at::NoGradGuard no_grad;
  for (size_t l = 0; l < trace.layers.size(); ++l) {
    // A layer whose output does not reach the loss has zero gradients.
    if (!visited[l]) {
      kept[l] = trace.layers[l]->Absorb(
          at::zeros(trace.layers[l]->output_sizes(), trace.layers[l]->output_options()));
    }
  }
  // Every layer's norms first: nothing is added before every example is known to be finite.
  std::vector<at::Tensor> layer_squared;
  at::Tensor squared = at::zeros({examples}, logits.options().dtype(at::kDouble));
  for (size_t l = 0; l < trace.layers.size(); ++l) {
    layer_squared.push_back(trace.layers[l]->SquaredNorms(kept[l], views));
    squared += layer_squared.back();
  }
  if (std::vector<int64_t> bad = NonFiniteRows(squared, losses); !bad.empty()) return bad;
  // Per row, repeated over the views: the flat factors once, not once per layer.
  const at::Tensor flat_factors =
      options.mode == ClippingMode::kFlat
          ? per_row(ClipFactors(squared, options.clip_norm, options, logits.scalar_type()))
          : at::Tensor();
  const double per_layer_norm =
      options.clip_norm / std::sqrt(static_cast<double>(trace.layers.size()));
  for (size_t l = 0; l < trace.layers.size(); ++l) {
    const at::Tensor factors =
        options.mode == ClippingMode::kFlat
            ? flat_factors
            : per_row(ClipFactors(layer_squared[l], per_layer_norm, options, logits.scalar_type()));
    trace.layers[l]->AccumulateScaled(kept[l], factors, sums);
    kept[l].reset();  // Let go of what the layer kept as soon as its sum is in.
    if (on_accumulated) on_accumulated(trace.layers[l]->parameter_indices());
  }
  record_losses();
  return std::vector<int64_t>();
}

// The examples of `inputs` [B V, ...] (V views each) whose values are all finite (integer inputs
// always are).
at::Tensor FiniteExamples(const at::Tensor& inputs, int64_t examples) {
  if (!at::isFloatingType(inputs.scalar_type())) return at::arange(examples, at::kLong);
  return inputs.reshape({examples, -1}).isfinite().all(1).nonzero().view({-1});
}

// The rows of `inputs` [B V, ...] that hold the views of `examples`.
at::Tensor SelectExamples(const at::Tensor& inputs, const at::Tensor& examples, int64_t views) {
  if (views == 1) return inputs.index_select(0, examples);
  return inputs.unflatten(0, {-1, views}).index_select(0, examples).flatten(0, 1);
}

}  // namespace

absl::StatusOr<ClippedBatch> AccumulateClippedGradients(
    models::Model& model, const at::Tensor& inputs, const at::Tensor& labels,
    const ClippingOptions& options, std::vector<at::Tensor>& sums,
    const std::function<void(const std::vector<int>&)>& on_accumulated) {
  if (!std::isfinite(options.clip_norm) || options.clip_norm <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("clip_norm must be finite and > 0, got ", options.clip_norm));
  }
  const int64_t views = options.views_per_example;
  if (views < 1) {
    return absl::InvalidArgumentError(absl::StrCat("views_per_example must be >= 1, got ", views));
  }
  if (inputs.dim() == 0 || inputs.size(0) != labels.size(0) * views) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch of ", inputs.dim() == 0 ? 0 : inputs.size(0), " inputs but ",
                     labels.size(0), " labels with ", views, " views each"));
  }
  if (sums.size() != model.parameters().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("need ", model.parameters().size(), " gradient sums, got ", sums.size()));
  }
  ClippedBatch batch;
  batch.examples = labels.size(0);
  // Examples with a non-finite input, then those whose gradient turns out not finite, are left
  // out, and the rest run again without them: examples never interact (CheckTrace refuses
  // modules that mix them), so the others' gradients are unchanged.
  at::Tensor rows = FiniteExamples(inputs, batch.examples);
  while (rows.numel() > 0) {
    const bool all = rows.numel() == batch.examples;
    const at::Tensor kept_inputs = all ? inputs : SelectExamples(inputs, rows, views);
    const at::Tensor kept_labels = all ? labels : labels.index_select(0, rows);
    DPFLEET_ASSIGN_OR_RETURN(const std::vector<int64_t> bad,
                             AccumulateUnlessNonFinite(model, kept_inputs, kept_labels, options,
                                                       sums, on_accumulated, batch));
    if (bad.empty()) break;
    at::Tensor keep = at::ones({rows.numel()}, at::kBool);
    for (const int64_t row : bad) keep[row] = false;
    rows = rows.masked_select(keep);
  }
  batch.non_finite_examples = batch.examples - rows.numel();
  return batch;
}

}  // namespace dpfleet::worker
