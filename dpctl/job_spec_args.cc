#include "dpctl/job_spec_args.h"

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace dpfleet::dpctl {
namespace {

// Collects the first parse error with its position.
class FirstError final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (text_.empty()) text_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

absl::Status MergeSpecFile(const std::string& path, v1::JobSpec& spec) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read the spec file ", path));
  std::stringstream text;
  text << file.rdbuf();
  google::protobuf::TextFormat::Parser parser;
  FirstError error;
  parser.RecordErrorsTo(&error);
  if (!parser.MergeFromString(text.str(), &spec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", error.text(), " (a JobSpec in protobuf text format)"));
  }
  return absl::OkStatus();
}

// Each runs `set` with the flag's value when the flag is present.
void IfString(Args& args, const char* flag, const std::function<void(std::string)>& set) {
  if (args.Has(flag)) set(*args.String(flag));
}
absl::Status IfDouble(Args& args, const char* flag, const std::function<void(double)>& set) {
  if (!args.Has(flag)) return absl::OkStatus();
  DPFLEET_ASSIGN_OR_RETURN(const double value, args.Double(flag));
  set(value);
  return absl::OkStatus();
}
absl::Status IfInt(Args& args, const char* flag, const std::function<void(int64_t)>& set) {
  if (!args.Has(flag)) return absl::OkStatus();
  DPFLEET_ASSIGN_OR_RETURN(const int64_t value, args.Int(flag));
  set(value);
  return absl::OkStatus();
}
void IfBool(Args& args, const char* flag, const std::function<void()>& set) {
  if (args.Has(flag) && args.Bool(flag)) set();
}

// Runs the choice the flag's value names, when the flag is present.
absl::Status IfChoice(Args& args, const char* flag,
                      const std::vector<std::pair<std::string, std::function<void()>>>& choices) {
  if (!args.Has(flag)) return absl::OkStatus();
  const std::string value = *args.String(flag);
  std::vector<std::string> names;
  for (const auto& [name, choose] : choices) {
    if (name == value) {
      choose();
      return absl::OkStatus();
    }
    names.push_back(name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " must be one of ", absl::StrJoin(names, ", "), "; got ", value));
}

// Refuses two flags of one oneof: which one would win is not obvious.
absl::Status AtMostOne(const Args& args, const std::vector<std::string>& flags) {
  std::vector<std::string> given;
  for (const std::string& flag : flags) {
    if (args.Has(flag)) given.push_back("--" + flag);
  }
  if (given.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("choose one of ", absl::StrJoin(given, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::JobSpec> JobSpecFromArgs(Args& args) {
  v1::JobSpec spec;
  spec.mutable_optimizer()->set_type(v1::DP_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  spec.set_num_workers(1);
  if (args.Has("spec")) DPFLEET_RETURN_IF_ERROR(MergeSpecFile(*args.String("spec"), spec));
  for (const std::vector<std::string>& oneof :
       {std::vector<std::string>{"batch-size", "sampling-rate", "full-batch"},
        std::vector<std::string>{"steps", "epochs"},
        std::vector<std::string>{"noise-multiplier", "target-epsilon"}}) {
    DPFLEET_RETURN_IF_ERROR(AtMostOne(args, oneof));
  }
  v1::OptimizerSpec* optimizer = spec.mutable_optimizer();
  IfString(args, "dataset", [&](std::string v) { spec.set_dataset(v); });
  IfString(args, "model", [&](std::string v) { spec.set_model(v); });
  IfString(args, "name", [&](std::string v) { spec.set_display_name(v); });
  DPFLEET_RETURN_IF_ERROR(IfChoice(args, "optimizer",
                                   {{"sgd", [&] { optimizer->set_type(v1::DP_SGD); }},
                                    {"adam", [&] { optimizer->set_type(v1::DP_ADAM); }},
                                    {"lamb", [&] { optimizer->set_type(v1::DP_LAMB); }}}));
  DPFLEET_RETURN_IF_ERROR(
      IfDouble(args, "learning-rate", [&](double v) { optimizer->set_learning_rate(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfDouble(args, "momentum", [&](double v) { optimizer->set_momentum(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfDouble(args, "weight-decay", [&](double v) { optimizer->set_weight_decay(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfChoice(args, "schedule",
               {{"constant", [&] { optimizer->clear_schedule(); }},
                {"cosine", [&] { optimizer->set_schedule(v1::SCHEDULE_COSINE); }}}));
  DPFLEET_RETURN_IF_ERROR(
      IfInt(args, "warmup-steps", [&](int64_t v) { optimizer->set_warmup_steps(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfDouble(args, "ema-decay", [&](double v) { optimizer->set_ema_decay(v); }));
  DPFLEET_RETURN_IF_ERROR(IfDouble(args, "clip-norm", [&](double v) { spec.set_clip_norm(v); }));
  DPFLEET_RETURN_IF_ERROR(IfDouble(args, "delta", [&](double v) { spec.set_delta(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfChoice(args, "clipping",
               {{"flat", [&] { spec.clear_clipping_mode(); }},
                {"per-layer", [&] { spec.set_clipping_mode(v1::CLIPPING_PER_LAYER); }}}));
  IfBool(args, "automatic-clipping", [&] { spec.set_automatic_clipping(true); });
  DPFLEET_RETURN_IF_ERROR(
      IfChoice(args, "loss",
               {{"softmax", [&] { spec.clear_loss(); }},
                {"sigmoid", [&] { spec.set_loss(v1::LOSS_SIGMOID_CROSS_ENTROPY); }}}));
  IfBool(args, "zero-init-head", [&] { spec.set_zero_init_head(true); });
  IfBool(args, "low-memory-clipping", [&] { spec.set_low_memory_clipping(true); });
  DPFLEET_RETURN_IF_ERROR(IfDouble(args, "loss-noise-multiplier",
                                   [&](double v) { spec.set_loss_noise_multiplier(v); }));
  DPFLEET_RETURN_IF_ERROR(IfDouble(args, "loss-clip", [&](double v) { spec.set_loss_clip(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfInt(args, "batch-size", [&](int64_t v) { spec.set_expected_batch_size(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfDouble(args, "sampling-rate", [&](double v) { spec.set_sampling_rate(v); }));
  IfBool(args, "full-batch", [&] { spec.set_full_batch(true); });
  DPFLEET_RETURN_IF_ERROR(IfInt(args, "steps", [&](int64_t v) { spec.set_steps(v); }));
  DPFLEET_RETURN_IF_ERROR(IfDouble(args, "epochs", [&](double v) { spec.set_epochs(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfDouble(args, "noise-multiplier", [&](double v) { spec.set_noise_multiplier(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfDouble(args, "target-epsilon", [&](double v) { spec.set_target_epsilon(v); }));
  DPFLEET_RETURN_IF_ERROR(
      IfInt(args, "workers", [&](int64_t v) { spec.set_num_workers(static_cast<int32_t>(v)); }));
  DPFLEET_RETURN_IF_ERROR(
      IfInt(args, "seed", [&](int64_t v) { spec.set_seed(static_cast<uint64_t>(v)); }));
  DPFLEET_RETURN_IF_ERROR(IfInt(args, "micro-batch-size", [&](int64_t v) {
    spec.set_micro_batch_size(static_cast<int32_t>(v));
  }));
  DPFLEET_RETURN_IF_ERROR(
      IfInt(args, "evaluate-every", [&](int64_t v) { spec.set_evaluate_every_steps(v); }));
  v1::Augmentation* augmentation = spec.mutable_augmentation();
  DPFLEET_RETURN_IF_ERROR(IfInt(args, "augmentations", [&](int64_t v) {
    augmentation->set_views(static_cast<int32_t>(v));
    // De et al.'s transforms, unless the spec file chose some.
    if (augmentation->crop_padding() == 0 && !augmentation->horizontal_flip()) {
      augmentation->set_crop_padding(4);
      augmentation->set_horizontal_flip(true);
    }
  }));
  DPFLEET_RETURN_IF_ERROR(IfInt(args, "crop-padding", [&](int64_t v) {
    augmentation->set_crop_padding(static_cast<int32_t>(v));
  }));
  IfBool(args, "no-flip", [&] { augmentation->set_horizontal_flip(false); });
  if (augmentation->ByteSizeLong() == 0) spec.clear_augmentation();
  return spec;
}

}  // namespace dpfleet::dpctl
