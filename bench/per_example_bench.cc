// Cost of DP training per batch, side by side in one run, for each model:
//   plain       a non-private step: forward, backward, SGD-with-momentum update;
//   dp, ghost   the whole DP step a job runs (ShardTrainer::RunStep on one rank, full batch):
//               Poisson sampling, per-example norms and the clipped sum (book-keeping, or
//               low-memory ghost clipping), the CSPRNG noise, the all-reduce (a one-rank Gloo
//               group), the division by the expected batch and the same SGD update;
//   naive-clip  the per-example reference for the clipping alone (per-example backward passes).
// Each measurement runs in a fresh child process, so its peak memory (VmHWM minus the resident
// size after set-up) is its own. A step that fails aborts the bench.
//
//   bazel run -c opt //bench:per_example_bench -- [--threads 2] [--reps 3] [--models cnn_tb,linear]
//       [--batches 256,1024] [--allocator caching|default]
//
// The naive reference times per-example backward passes over the first 16 examples and scales to
// the batch (its cost is linear in the batch by construction).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "models/model.h"
#include "worker/caching_allocator.h"
#include "worker/dataset.h"
#include "worker/gloo_reducer.h"
#include "worker/optimizer.h"
#include "worker/trainer.h"

extern char** environ;

namespace dpfleet {
namespace {

constexpr int kNaiveExamples = 16;

struct ModelCase {
  std::string name;
  std::vector<int64_t> shape;
};

const std::vector<ModelCase>& Cases() {
  static const auto* cases = new std::vector<ModelCase>{
      {"linear", {1, 28, 28}},  {"mlp", {1, 28, 28}},    {"cnn_tb", {1, 28, 28}},
      {"wrn16_4", {3, 32, 32}}, {"eq_cnn", {1, 28, 28}}, {"eq_resnet9", {3, 32, 32}}};
  return *cases;
}

int64_t KilobytesOf(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(field.size()));
  }
  return 0;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Child: one measurement. Prints "median_seconds peak_extra_kb".
int Measure(const std::string& model_name, int64_t batch, const std::string& mode, int reps) {
  const ModelCase* model_case = nullptr;
  for (const ModelCase& c : Cases()) {
    if (c.name == model_name) model_case = &c;
  }
  auto model =
      *models::CreateModel(model_name, {.input_shape = model_case->shape, .num_classes = 10}, 1);
  std::vector<int64_t> shape = {batch};
  shape.insert(shape.end(), model_case->shape.begin(), model_case->shape.end());
  const at::Tensor inputs = at::randn(shape);
  const at::Tensor labels = at::randint(0, 10, {batch}, at::kLong);
  std::vector<at::Tensor> sums;
  for (const at::Tensor& p : model->parameters()) sums.push_back(at::zeros_like(p).detach());
  const worker::OptimizerOptions sgd{
      .kind = worker::OptimizerKind::kSgd, .learning_rate = 0.1, .momentum = 0.9};
  auto optimizer = *worker::CreateOptimizer(sgd);

  // The DP modes run the trainer a job runs, on the batch as a full-batch dataset of one rank.
  std::unique_ptr<worker::ShardTrainer> trainer;
  if (mode == "dp" || mode == "ghost") {
    auto dataset = std::make_shared<worker::Dataset>();
    dataset->name = "bench";
    dataset->SetTrainingSplit(inputs, labels);
    dataset->test_inputs = inputs.slice(0, 0, 1);
    dataset->test_labels = labels.slice(0, 0, 1);
    dataset->num_classes = 10;
    int port = 0;
    const worker::RendezvousOptions rendezvous{.world_size = 1};
    auto store = worker::ServeRendezvousStore(rendezvous, &port);
    if (!store.ok()) {
      std::fprintf(stderr, "rendezvous: %s\n", store.status().ToString().c_str());
      std::abort();
    }
    auto reducer = *worker::CreateGlooReducer(rendezvous, *store);
    auto created =
        worker::ShardTrainer::Create({.model = model_name,
                                      .seed = 1,
                                      .sampling_rate = 1.0,
                                      .noise_multiplier = 1.0,
                                      .clipping = {.clip_norm = 1.0, .low_memory = mode == "ghost"},
                                      .micro_batch_size = batch,
                                      .optimizer = sgd},
                                     dataset, std::move(reducer));
    if (!created.ok()) {
      std::fprintf(stderr, "trainer: %s\n", created.status().ToString().c_str());
      std::abort();
    }
    trainer = *std::move(created);
  }

  auto step = [&] {
    if (mode == "plain") {
      const at::Tensor loss =
          at::cross_entropy_loss(model->Forward(inputs, nullptr), labels, {}, at::Reduction::Sum);
      std::vector<at::Tensor> grads = torch::autograd::grad({loss}, model->parameters());
      at::NoGradGuard no_grad;
      optimizer->Step(model->parameters(), grads);
    } else if (trainer != nullptr) {
      if (const auto stepped = trainer->RunStep(); !stepped.ok()) {
        std::fprintf(stderr, "DP step failed: %s\n", stepped.status().ToString().c_str());
        std::abort();
      }
    } else {  // naive-clip: per-example backward, clip, sum, over kNaiveExamples examples.
      for (int64_t i = 0; i < std::min<int64_t>(batch, kNaiveExamples); ++i) {
        const at::Tensor loss =
            at::cross_entropy_loss(model->Forward(inputs.slice(0, i, i + 1), nullptr),
                                   labels.slice(0, i, i + 1), {}, at::Reduction::Sum);
        const std::vector<at::Tensor> grads = torch::autograd::grad({loss}, model->parameters());
        double squared = 0;
        for (const at::Tensor& g : grads) squared += g.pow(2).sum().item<double>();
        const double factor = std::min(1.0, 1.0 / (std::sqrt(squared) + 1e-6));
        at::NoGradGuard no_grad;
        for (size_t p = 0; p < grads.size(); ++p) sums[p].add_(grads[p] * factor);
      }
    }
  };
  const int64_t baseline_kb = KilobytesOf("VmRSS:");  // Model and batch in place, nothing computed.
  step();                                             // Warm-up.
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    step();
    times.push_back(Seconds(start));
  }
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2];
  if (mode == "naive-clip")
    median *= static_cast<double>(batch) / std::min<int64_t>(batch, kNaiveExamples);
  std::printf("%.6f %lld\n", median, static_cast<long long>(KilobytesOf("VmHWM:") - baseline_kb));
  return 0;
}

// Parent: runs each measurement in a child (this binary with --measure ...), collects its line.
bool RunChild(const std::vector<std::string>& args, double* seconds, double* extra_mb) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return false;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  const int spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawned != 0) return false;
  std::string output;
  char buffer[256];
  ssize_t got;
  while ((got = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) output.append(buffer, got);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  long long kb = 0;
  if (std::sscanf(output.c_str(), "%lf %lld", seconds, &kb) != 2) return false;
  *extra_mb = kb / 1024.0;
  return true;
}

int Main(int argc, char** argv) {
  int threads = 2, reps = 3;
  std::string allocator = "caching";  // As in dpfleet-worker; "default" is LibTorch's.
  std::vector<std::string> models;
  for (const ModelCase& c : Cases()) models.push_back(c.name);
  std::vector<int64_t> batches = {256, 1024};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--measure" && i + 6 < argc) {
      if (std::string(argv[i + 6]) == "caching") worker::InstallCachingCpuAllocator();
      at::set_num_threads(std::stoi(argv[i + 4]));
      return Measure(argv[i + 1], std::stoll(argv[i + 2]), argv[i + 3], std::stoi(argv[i + 5]));
    }
    if (flag == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
    if (flag == "--reps" && i + 1 < argc) reps = std::stoi(argv[++i]);
    if (flag == "--allocator" && i + 1 < argc) allocator = argv[++i];
    if (flag == "--models" && i + 1 < argc) models = absl::StrSplit(argv[++i], ',');
    if (flag == "--batches" && i + 1 < argc) {
      batches.clear();
      for (absl::string_view b : absl::StrSplit(argv[++i], ','))
        batches.push_back(std::stoll(std::string(b)));
    }
  }
  std::printf(
      "threads %d (intra-op), %s CPU allocator, median of %d reps; naive scaled from %d "
      "examples\n",
      threads, allocator.c_str(), reps, kNaiveExamples);
  std::printf("%-8s %5s %-10s %11s %11s %9s %11s %9s\n", "model", "batch", "mode", "ms/batch",
              "examples/s", "x plain", "peak MB+", "x plain");
  for (const std::string& model : models) {
    for (int64_t batch : batches) {
      double plain_seconds = 0, plain_mb = 0;
      for (const char* mode : {"plain", "dp", "ghost", "naive-clip"}) {
        double seconds = 0, mb = 0;
        if (!RunChild({"per_example_bench", "--measure", model, std::to_string(batch), mode,
                       std::to_string(threads), std::to_string(reps), allocator},
                      &seconds, &mb)) {
          std::printf("%-8s %5lld %-10s failed\n", model.c_str(), static_cast<long long>(batch),
                      mode);
          return 1;  // A failing measurement fails the bench: no table with holes.
        }
        if (std::string(mode) == "plain") {
          plain_seconds = seconds;
          plain_mb = std::max(mb, 1.0);
        }
        std::printf("%-8s %5lld %-10s %11.1f %11.0f %9.2f %11.1f %9.2f\n", model.c_str(),
                    static_cast<long long>(batch), mode, 1000 * seconds, batch / seconds,
                    seconds / plain_seconds, mb,
                    std::string(mode) == "naive-clip" ? 0.0 : mb / plain_mb);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace dpfleet

int main(int argc, char** argv) { return dpfleet::Main(argc, argv); }
