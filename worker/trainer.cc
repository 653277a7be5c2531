#include "worker/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "worker/checkpoint.h"
#include "worker/clipping.h"
#include "worker/fixed_front_cache.h"
#include "worker/secure_random.h"

namespace dpfleet::worker {
namespace {

// This rank's share [begin, end) of n items split into world_size near-equal contiguous parts.
std::pair<int64_t, int64_t> RankShare(int64_t n, const Reducer& reducer) {
  return {n * reducer.rank() / reducer.world_size(),
          n * (reducer.rank() + 1) / reducer.world_size()};
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardTrainer>> ShardTrainer::Create(
    const TrainerOptions& options, std::shared_ptr<const Dataset> dataset,
    std::unique_ptr<Reducer> reducer) {
  if (!(options.sampling_rate > 0 && options.sampling_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling_rate must be in (0, 1], got ", options.sampling_rate));
  }
  if (!std::isfinite(options.noise_multiplier) || options.noise_multiplier < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise_multiplier must be finite and >= 0, got ", options.noise_multiplier));
  }
  if (!std::isfinite(options.clipping.clip_norm) || options.clipping.clip_norm <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("clip_norm must be finite and > 0, got ", options.clipping.clip_norm));
  }
  if (!std::isfinite(options.loss_noise_multiplier) || options.loss_noise_multiplier < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "loss_noise_multiplier must be finite and >= 0, got ", options.loss_noise_multiplier));
  }
  if (options.loss_noise_multiplier > 0 &&
      !(std::isfinite(options.clipping.loss_clip) && options.clipping.loss_clip > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss_clip must be finite and > 0 to release a noised loss, got ",
                     options.clipping.loss_clip));
  }
  if (!(options.ema_decay >= 0 && options.ema_decay < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.ema_decay must be in [0, 1), got ", options.ema_decay));
  }
  if (options.micro_batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro_batch_size must be > 0, got ", options.micro_batch_size));
  }
  DPFLEET_RETURN_IF_ERROR(ValidateAugmentation(options.augmentation, dataset->ExampleShape()));
  if (options.clipping.views_per_example != 1) {
    return absl::InvalidArgumentError(
        "set augmentation.views, not clipping.views_per_example: the trainer makes the views");
  }
  TrainerOptions resolved = options;
  resolved.clipping.views_per_example = options.augmentation.views;
  if (resolved.shard_end == 0) {
    std::tie(resolved.shard_begin, resolved.shard_end) =
        RankShare(dataset->train_examples, *reducer);
  }
  if (resolved.shard_begin < dataset->held_begin() || resolved.shard_end > dataset->held_end() ||
      resolved.shard_begin >= resolved.shard_end) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", reducer->rank(), " is to sample training rows [", resolved.shard_begin, ", ",
        resolved.shard_end, ") of dataset '", dataset->name, "', but this worker holds rows [",
        dataset->held_begin(), ", ", dataset->held_end(), ")"));
  }
  DPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<models::Model> model,
                           models::CreateModel(options.model,
                                               {.input_shape = dataset->ExampleShape(),
                                                .num_classes = dataset->num_classes},
                                               options.seed));
  DPFLEET_RETURN_IF_ERROR(CheckPrivatelyTrainable(
      *model, model->Preprocess(dataset->TrainingRows({resolved.shard_begin}).first)));
  if (options.zero_init_head) {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor>& parameters = model->parameters();
    for (size_t i = parameters.size() - 2; i < parameters.size(); ++i) parameters[i].zero_();
  }
  DPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> optimizer,
                           CreateOptimizer(options.optimizer));
  return std::unique_ptr<ShardTrainer>(new ShardTrainer(
      resolved, std::move(dataset), std::move(reducer), std::move(model), std::move(optimizer)));
}

ShardTrainer::ShardTrainer(const TrainerOptions& options, std::shared_ptr<const Dataset> dataset,
                           std::unique_ptr<Reducer> reducer, std::unique_ptr<models::Model> model,
                           std::unique_ptr<Optimizer> optimizer)
    : options_(options),
      dataset_(std::move(dataset)),
      reducer_(std::move(reducer)),
      model_(std::move(model)),
      optimizer_(std::move(optimizer)) {
  int64_t total = 0;
  for (const at::Tensor& p : model_->parameters()) total += p.numel();
  flat_gradient_ = at::zeros({total}, at::kFloat);
  int64_t offset = 0;
  const std::vector<at::Tensor>& parameters = model_->parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    const at::Tensor& p = parameters[i];
    gradient_views_.push_back(flat_gradient_.slice(0, offset, offset + p.numel()).view(p.sizes()));
    if (buckets_.empty() ||
        (buckets_.back().end - buckets_.back().begin) * 4 >= options_.bucket_bytes) {
      buckets_.push_back({static_cast<int>(i), static_cast<int>(i), offset, offset});
    }
    buckets_.back().end_parameter = static_cast<int>(i) + 1;
    buckets_.back().end = offset + p.numel();
    bucket_of_parameter_.push_back(static_cast<int>(buckets_.size()) - 1);
    offset += p.numel();
  }
  if (options_.ema_decay > 0) {
    average_ = std::make_unique<ParameterAverage>(model_->parameters(), options_.ema_decay);
  }
  if (model_->has_fixed_front()) {
    if (options_.augmentation.views == 1) {
      training_front_ =
          std::make_unique<FixedFrontCache>(*model_, options_.shard_begin, options_.shard_end);
    }
    const int64_t test_rows = dataset_->test_inputs.defined() ? dataset_->test_inputs.size(0) : 0;
    test_front_ = std::make_unique<FixedFrontCache>(*model_, 0, test_rows);
  }
  if (options_.augmentation.views > 1) {
    uint64_t seed = 0;
    FillSecureRandomBytes(&seed, sizeof(seed));
    augmentation_generator_ = at::make_generator<at::CPUGeneratorImpl>(seed);
  }
}

absl::StatusOr<ShardTrainer::StepResult> ShardTrainer::RunStep() {
  const std::vector<int64_t> sample =
      SecurePoissonSample(options_.shard_end - options_.shard_begin, options_.sampling_rate);
  flat_gradient_.zero_();
  StepResult result;
  result.batch_size = static_cast<int64_t>(sample.size());
  double clipped_loss_sum = 0;

  // Buckets are noised and started strictly in order, so that every rank starts the same
  // all-reduces in the same order whatever its sample.
  std::vector<int> parameters_left(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    parameters_left[b] = buckets_[b].end_parameter - buckets_[b].first_parameter;
  }
  std::vector<std::unique_ptr<PendingAllReduce>> pending;
  auto start_ready_buckets = [&](bool all) {
    while (pending.size() < buckets_.size() && (all || parameters_left[pending.size()] == 0)) {
      const Bucket& bucket = buckets_[pending.size()];
      at::Tensor range = flat_gradient_.slice(0, bucket.begin, bucket.end);
      // The noise is added exactly once, before the sum: each rank noises its own 1/W slice of
      // the bucket, so the all-reduced buffer is sum_i clip(g_i) + N(0, (sigma C)^2 I) on every
      // rank, and the sampler's cost is shared instead of making one rank the straggler.
      if (options_.noise_multiplier > 0) {
        const auto [begin, end] = RankShare(range.numel(), *reducer_);
        AddSecureGaussianNoise(range.data_ptr<float>() + begin, end - begin,
                               options_.noise_multiplier * options_.clipping.clip_norm);
      }
      pending.push_back(reducer_->StartAllReduceSum(range));
    }
  };
  // Called once the last micro-batch has made a layer's sums final.
  const std::function<void(const std::vector<int>&)> on_final =
      [&](const std::vector<int>& parameter_indices) {
        for (int index : parameter_indices) --parameters_left[bucket_of_parameter_[index]];
        start_ready_buckets(/*all=*/false);
      };

  absl::Status computed;
  const int64_t views = options_.augmentation.views;
  const size_t examples_at_once =
      static_cast<size_t>(std::max<int64_t>(1, options_.micro_batch_size / views));
  for (size_t start = 0; start < sample.size() && computed.ok(); start += examples_at_once) {
    const size_t end = std::min(sample.size(), start + examples_at_once);
    std::vector<int64_t> rows(sample.begin() + start, sample.begin() + end);
    for (int64_t& row : rows) row += options_.shard_begin;
    const auto [examples, labels] = dataset_->TrainingRows(rows);
    at::Tensor inputs;
    if (views > 1) {
      inputs = model_->Preprocess(
          AugmentedViews(examples, options_.augmentation, augmentation_generator_));
    } else {
      inputs = training_front_ != nullptr ? training_front_->Inputs(rows, examples) : examples;
    }
    const absl::StatusOr<ClippedBatch> batch =
        AccumulateClippedGradients(*model_, inputs, labels, options_.clipping, gradient_views_,
                                   end == sample.size() ? on_final : nullptr);
    if (batch.ok()) {
      result.loss_sum += batch->loss_sum;
      result.non_finite_examples += batch->non_finite_examples;
      clipped_loss_sum += batch->clipped_loss_sum;
    }
    computed = batch.status();
  }
  // Started all-reduces must be finished on every rank, even when this one failed.
  const absl::Time reduce_start = absl::Now();
  if (computed.ok()) start_ready_buckets(/*all=*/true);
  // After the gradient's, on every rank in the same order; one rank adds the loss's noise.
  at::Tensor noised_loss;
  if (computed.ok() && options_.loss_noise_multiplier > 0) {
    noised_loss = at::full({1}, clipped_loss_sum, at::kFloat);
    if (const auto [begin, end] = RankShare(1, *reducer_); end > begin) {
      AddSecureGaussianNoise(noised_loss.data_ptr<float>(), 1,
                             options_.loss_noise_multiplier * options_.clipping.loss_clip);
    }
    pending.push_back(reducer_->StartAllReduceSum(noised_loss));
  }
  absl::Status reduced;
  for (const std::unique_ptr<PendingAllReduce>& reduce : pending) {
    if (absl::Status status = reduce->Wait(); reduced.ok()) reduced = status;
  }
  DPFLEET_RETURN_IF_ERROR(computed);
  DPFLEET_RETURN_IF_ERROR(reduced);
  result.allreduce_seconds = absl::ToDoubleSeconds(absl::Now() - reduce_start);
  if (noised_loss.defined()) result.noised_loss_sum = noised_loss.item<double>();
  const double expected_batch_size =
      options_.sampling_rate * static_cast<double>(dataset_->train_examples);
  flat_gradient_.div_(expected_batch_size);
  optimizer_->Step(model_->parameters(), gradient_views_);
  if (average_ != nullptr) average_->Update(model_->parameters());
  ++steps_done_;
  return result;
}

absl::StatusOr<std::string> ShardTrainer::Checkpoint() const {
  TrainerCheckpoint checkpoint;
  checkpoint.steps_done = steps_done_;
  for (const at::Tensor& parameter : model_->parameters()) {
    checkpoint.parameters.push_back(parameter.detach());
  }
  OptimizerState optimizer = optimizer_->Save();
  checkpoint.optimizer_steps = optimizer.steps;
  checkpoint.optimizer_tensors = std::move(optimizer.tensors);
  if (average_ != nullptr) checkpoint.average = average_->average();
  return EncodeCheckpoint(checkpoint);
}

absl::Status ShardTrainer::Restore(const std::string& bytes) {
  // Everything is checked before anything changes, so a refused checkpoint leaves the trainer as
  // it was.
  DPFLEET_ASSIGN_OR_RETURN(TrainerCheckpoint checkpoint, DecodeCheckpoint(bytes));
  const std::vector<at::Tensor>& parameters = model_->parameters();
  const size_t count = parameters.size();
  const std::vector<std::string>& names = model_->parameter_names();
  if (checkpoint.parameters.size() != count) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint has ", checkpoint.parameters.size(), " parameters, this model ", count));
  }
  // Optimizers keep at most two tensors per parameter (Adam's moments), each of its shape.
  const size_t optimizer_tensors = checkpoint.optimizer_tensors.size();
  if (optimizer_tensors > 2 * count || (count > 0 && optimizer_tensors % count != 0)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint has ", optimizer_tensors, " optimizer tensors for ", count, " parameters"));
  }
  if (!checkpoint.average.empty() && checkpoint.average.size() != count) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint has a weight average of ",
                                                      checkpoint.average.size(), " tensors for ",
                                                      count, " parameters"));
  }
  for (size_t i = 0; i < count; ++i) {
    if (checkpoint.parameters[i].sizes() != parameters[i].sizes()) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint does not fit this model at parameter ", names[i]));
    }
    if (!checkpoint.average.empty() && checkpoint.average[i].sizes() != parameters[i].sizes()) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint's weight average does not fit parameter ", names[i]));
    }
  }
  for (size_t i = 0; i < optimizer_tensors; ++i) {
    if (checkpoint.optimizer_tensors[i].sizes() != parameters[i % count].sizes()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint's optimizer tensor ", i, " does not fit parameter ", names[i % count]));
    }
  }
  // A corrupted value must not become state: training from inf or NaN would release a function
  // of it at every step.
  for (const std::vector<at::Tensor>* tensors :
       {&checkpoint.parameters, &checkpoint.optimizer_tensors, &checkpoint.average}) {
    for (const at::Tensor& tensor : *tensors) {
      if (!at::isfinite(tensor).all().item<bool>()) {
        return absl::DataLossError("checkpoint holds a value that is not finite");
      }
    }
  }
  if (absl::Status loaded =
          optimizer_->Load({checkpoint.optimizer_steps, checkpoint.optimizer_tensors});
      !loaded.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint does not fit this optimizer: ", loaded.message()));
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < count; ++i) model_->parameters()[i].copy_(checkpoint.parameters[i]);
  if (average_ != nullptr) {
    // A checkpoint of a job without an average starts one from the restored parameters.
    average_->Reset(checkpoint.average.empty() ? checkpoint.parameters : checkpoint.average);
  }
  steps_done_ = checkpoint.steps_done;
  return absl::OkStatus();
}

std::vector<at::Tensor> ShardTrainer::Parameters() const {
  std::vector<at::Tensor> copies;
  for (const at::Tensor& p : model_->parameters()) copies.push_back(p.detach().clone());
  return copies;
}

ShardTrainer::Evaluation ShardTrainer::EvaluateTestShard() {
  at::NoGradGuard no_grad;
  // Evaluate the average by swapping it in, then restore the trained weights.
  std::vector<at::Tensor> trained;
  if (average_ != nullptr) {
    for (size_t i = 0; i < model_->parameters().size(); ++i) {
      trained.push_back(model_->parameters()[i].detach().clone());
      model_->parameters()[i].copy_(average_->average()[i]);
    }
  }
  const auto [begin, end] = RankShare(dataset_->test_inputs.size(0), *reducer_);
  Evaluation evaluation;
  for (int64_t start = begin; start < end; start += options_.micro_batch_size) {
    const int64_t stop = std::min(end, start + options_.micro_batch_size);
    at::Tensor inputs = dataset_->test_inputs.slice(0, start, stop).to(at::kFloat);
    if (test_front_ != nullptr) {
      std::vector<int64_t> rows(stop - start);
      std::iota(rows.begin(), rows.end(), start);
      inputs = test_front_->Inputs(rows, inputs);
    }
    const at::Tensor logits = model_->Forward(inputs, nullptr);
    const at::Tensor predictions = logits.argmax(1);
    evaluation.correct +=
        predictions.eq(dataset_->test_labels.slice(0, start, stop)).sum().item<int64_t>();
    evaluation.examples += stop - start;
  }
  for (size_t i = 0; i < trained.size(); ++i) model_->parameters()[i].copy_(trained[i]);
  return evaluation;
}

}  // namespace dpfleet::worker
