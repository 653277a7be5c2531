// Distributed DP steps on this machine: step time and throughput for 1, 2 and 4 worker processes
// (Gloo over loopback, one intra-op thread each), and the all-reduce time inside a step against a
// bare c10d all-reduce of the same bytes between the same processes.
//
//   bazel run -c opt //bench:distributed_bench -- [--model mlp] [--batch 4096] [--steps 10]
//
// Data is synthetic (Fashion-MNIST's shape and size): the cost of a step does not depend on it.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "worker/gloo_reducer.h"
#include "worker/trainer.h"

extern char** environ;

namespace dpfleet::worker {
namespace {

constexpr int64_t kExamples = 60000;

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// One worker process: prints "step_ms allreduce_ms bare_allreduce_ms" (rank 0 only).
int RunRank(int rank, int world, int port, const std::string& model, int64_t batch, int steps) {
  at::set_num_threads(1);
  at::manual_seed(1);  // Synthetic data only; the trainer's privacy randomness comes from the OS.
  auto dataset = std::make_shared<Dataset>();
  dataset->train_inputs = at::randn({kExamples, 1, 28, 28});
  dataset->train_labels = at::randint(0, 10, {kExamples}, at::kLong);
  dataset->test_inputs = dataset->train_inputs.slice(0, 0, 100);
  dataset->test_labels = dataset->train_labels.slice(0, 0, 100);
  RendezvousOptions options{.store_port = port, .rank = rank, .world_size = world};
  auto store = ConnectRendezvousStore(options);
  if (!store.ok()) return 1;
  auto reducer = CreateGlooReducer(options, *store);
  if (!reducer.ok()) return 1;
  Reducer* bare = reducer->get();
  TrainerOptions trainer_options{
      .model = model,
      .seed = 1,
      .sampling_rate = static_cast<double>(batch) / kExamples,
      .noise_multiplier = 1.0,
      .clipping = {.clip_norm = 1.0},
      .micro_batch_size = 512,
      .optimizer = {.kind = OptimizerKind::kSgd, .learning_rate = 0.1, .momentum = 0.9}};
  auto trainer = ShardTrainer::Create(trainer_options, dataset, std::move(*reducer));
  if (!trainer.ok()) return 1;
  std::vector<double> step_seconds, allreduce_seconds;
  for (int step = 0; step < steps + 2; ++step) {
    const absl::Time start = absl::Now();
    auto result = (*trainer)->RunStep();
    if (!result.ok()) return 1;
    if (step < 2) continue;  // Warm-up.
    step_seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    allreduce_seconds.push_back(result->allreduce_seconds);
  }
  int64_t parameters = 0;
  for (const at::Tensor& p : (*trainer)->Parameters()) parameters += p.numel();
  std::vector<double> bare_seconds;
  at::Tensor buffer = at::zeros({parameters});
  for (int i = 0; i < steps + 2; ++i) {
    const absl::Time start = absl::Now();
    if (!bare->AllReduceSum(buffer).ok()) return 1;
    if (i >= 2) bare_seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (rank == 0) {
    std::printf("%.3f %.3f %.3f %lld\n", 1000 * Median(step_seconds),
                1000 * Median(allreduce_seconds), 1000 * Median(bare_seconds),
                static_cast<long long>(parameters));
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::string model = "mlp";
  int64_t batch = 4096;
  int steps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--rank" && i + 6 < argc) {
      return RunRank(std::stoi(argv[i + 1]), std::stoi(argv[i + 2]), std::stoi(argv[i + 3]),
                     argv[i + 4], std::stoll(argv[i + 5]), std::stoi(argv[i + 6]));
    }
    if (flag == "--model" && i + 1 < argc) model = argv[++i];
    if (flag == "--batch" && i + 1 < argc) batch = std::stoll(argv[++i]);
    if (flag == "--steps" && i + 1 < argc) steps = std::stoi(argv[++i]);
  }
  std::printf(
      "model %s, expected batch %lld of %lld, Gloo on loopback, 1 intra-op thread per worker, "
      "median of %d steps\n",
      model.c_str(), static_cast<long long>(batch), static_cast<long long>(kExamples), steps);
  // The all-reduce inside a step also waits for the slowest peer (Poisson batches differ in size).
  std::printf("%7s %10s %12s %16s %14s %9s\n", "workers", "step ms", "examples/s",
              "allreduce+wait ms", "bare c10d ms", "overhead");
  for (int world : {1, 2, 4}) {
    int port = 0;
    auto store = ServeRendezvousStore({.store_port = 0, .world_size = world}, &port);
    if (!store.ok()) return 1;
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return 1;
    std::vector<pid_t> children;
    for (int rank = 0; rank < world; ++rank) {
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      if (rank == 0) posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
      posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
      std::vector<std::string> args = {
          "distributed_bench",  "--rank", std::to_string(rank),  std::to_string(world),
          std::to_string(port), model,    std::to_string(batch), std::to_string(steps)};
      std::vector<char*> argv_child;
      for (std::string& a : args) argv_child.push_back(a.data());
      argv_child.push_back(nullptr);
      pid_t pid;
      posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv_child.data(), environ);
      posix_spawn_file_actions_destroy(&actions);
      children.push_back(pid);
    }
    close(pipe_fds[1]);
    std::string output;
    char buffer[256];
    ssize_t got;
    while ((got = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) output.append(buffer, got);
    close(pipe_fds[0]);
    for (pid_t pid : children) waitpid(pid, nullptr, 0);
    double step_ms = 0, allreduce_ms = 0, bare_ms = 0;
    long long parameters = 0;
    if (std::sscanf(output.c_str(), "%lf %lf %lf %lld", &step_ms, &allreduce_ms, &bare_ms,
                    &parameters) != 4) {
      std::printf("%7d failed\n", world);
      continue;
    }
    std::printf("%7d %10.1f %12.0f %16.2f %14.2f %8.0f%%   (%lld floats)\n", world, step_ms,
                batch / (step_ms / 1000), allreduce_ms, bare_ms,
                bare_ms > 0 ? 100 * (allreduce_ms / bare_ms - 1) : 0.0, parameters);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace dpfleet::worker

int main(int argc, char** argv) { return dpfleet::worker::Main(argc, argv); }
