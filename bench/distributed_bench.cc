// Distributed DP steps on this machine: step time and throughput for 1, 2 and 4 worker processes
// (Gloo over loopback, one intra-op thread each), and the all-reduce time inside a step against a
// bare c10d all-reduce of the same bytes between the same processes, timed in the same step (so
// under the same conditions) and back to back after the steps. All are timed after a barrier, so
// waiting for the slowest peer is reported on its own.
//
//   bazel run -c opt //bench:distributed_bench -- [--model mlp] [--batch 4096] [--steps 10]
//       [--bucket-bytes B]   (buckets of B bytes overlapping the computation; no wait/transfer
//       split)
//
// With --features D --classes K --rows N1,N2,...: full-batch steps of a linear head on synthetic
// float16 features (ImageNet's shape is 1281167 x 2048, 1000 classes) over 2 workers, against the
// bare float32 matrix products of a non-private step on the same shard (logits, weight gradient).
//
// With --hosts: every worker on a host of its own (a Linux network namespace with its own address,
// made by tests/netns_hosts.sh; needs root), the rendezvous store on another, so the all-reduce
// crosses veth pairs and a bridge instead of loopback; 2 and 4 hosts.
//
// Data is synthetic: the cost of a step does not depend on it.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "worker/caching_allocator.h"
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

struct FeatureShape {
  int64_t dim = 0;  // 0: image mode.
  int64_t classes = 0;
  int64_t rows = 0;
};

int64_t PeakKilobytes() {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  char line[256];
  long long kb = 0;
  while (status != nullptr && std::fgets(line, sizeof(line), status) != nullptr) {
    if (std::sscanf(line, "VmHWM: %lld", &kb) == 1) break;
  }
  if (status != nullptr) std::fclose(status);
  return kb;
}

// The non-private step's matrix products on this rank's shard, micro-batch by micro-batch:
// logits X W^T and the weight gradient dY^T X, in float32 like the DP step.
double BareMatmulSeconds(const Dataset& dataset, int64_t classes, int64_t micro_batch) {
  const at::Tensor& inputs = dataset.train_blocks.front().inputs;
  const int64_t rows = inputs.size(0);
  const at::Tensor weight = at::randn({classes, inputs.size(1)});
  at::Tensor gradient = at::zeros_like(weight);
  const absl::Time start = absl::Now();
  for (int64_t b = 0; b < rows; b += micro_batch) {
    const at::Tensor x = inputs.slice(0, b, std::min(rows, b + micro_batch)).to(at::kFloat);
    const at::Tensor logits = x.mm(weight.t());
    gradient.add_(logits.t().mm(x));
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

// Splits the trainer's all-reduce into waiting for the slowest peer (a one-float all-reduce, a
// barrier) and the transfer itself. In the same step, after another barrier, it also times a bare
// c10d all-reduce of a buffer of the same size, first on even steps and second on odd ones, so
// the two are compared under the same conditions (just after the step's computation) and neither
// always pays for being first. With `overlap`, the trainer's buckets go straight to the inner
// reducer instead, overlapping with its computation as in a worker (and nothing is split out).
class BarrierTimedReducer : public Reducer {
 public:
  BarrierTimedReducer(std::unique_ptr<Reducer> inner, bool overlap)
      : inner_(std::move(inner)), overlap_(overlap) {}

  std::unique_ptr<PendingAllReduce> StartAllReduceSum(at::Tensor& buffer) override {
    return overlap_ ? inner_->StartAllReduceSum(buffer) : Reducer::StartAllReduceSum(buffer);
  }

  absl::Status AllReduceSum(at::Tensor& buffer) override {
    const absl::Time arrived = absl::Now();
    DPFLEET_RETURN_IF_ERROR(Barrier());
    last_wait_seconds_ = absl::ToDoubleSeconds(absl::Now() - arrived);
    at::Tensor bare = at::zeros_like(buffer);
    const bool bare_first = calls_++ % 2 == 0;
    absl::Duration bare_total;  // Kept out of the step's time.
    if (bare_first) {
      DPFLEET_ASSIGN_OR_RETURN(last_bare_seconds_, TimedBare(bare, bare_total));
    }
    DPFLEET_ASSIGN_OR_RETURN(last_transfer_seconds_, TimedAfterBarrier(buffer));
    if (!bare_first) {
      DPFLEET_ASSIGN_OR_RETURN(last_bare_seconds_, TimedBare(bare, bare_total));
    }
    last_bare_total_seconds_ = absl::ToDoubleSeconds(bare_total);
    return absl::OkStatus();
  }

  // A bare all-reduce of `buffer` after a barrier, right after the previous one: back to back.
  absl::StatusOr<double> TimedAfterBarrier(at::Tensor& buffer) {
    DPFLEET_RETURN_IF_ERROR(Barrier());
    const absl::Time start = absl::Now();
    DPFLEET_RETURN_IF_ERROR(inner_->AllReduceSum(buffer));
    return absl::ToDoubleSeconds(absl::Now() - start);
  }

  // TimedAfterBarrier, adding the time it took, barrier included, to `total`.
  absl::StatusOr<double> TimedBare(at::Tensor& buffer, absl::Duration& total) {
    const absl::Time start = absl::Now();
    absl::StatusOr<double> seconds = TimedAfterBarrier(buffer);
    total += absl::Now() - start;
    return seconds;
  }

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }

  double last_wait_seconds() const { return last_wait_seconds_; }
  double last_transfer_seconds() const { return last_transfer_seconds_; }
  double last_bare_seconds() const { return last_bare_seconds_; }
  double last_bare_total_seconds() const { return last_bare_total_seconds_; }

 private:
  absl::Status Barrier() {
    at::Tensor token = at::zeros({1});
    return inner_->AllReduceSum(token);
  }

  std::unique_ptr<Reducer> inner_;
  const bool overlap_;
  int64_t calls_ = 0;
  double last_wait_seconds_ = 0;
  double last_transfer_seconds_ = 0;
  double last_bare_seconds_ = 0;
  double last_bare_total_seconds_ = 0;
};

// One worker process: prints "step_ms wait_ms transfer_ms bare_allreduce_ms parameters
// bare_matmul_ms peak_mb" (rank 0 only).
int RunRank(int rank, int world, const std::string& store_host, int port,
            const std::string& local_host, const std::string& model, int64_t batch, int steps,
            const FeatureShape& features, int64_t bucket_bytes) {
  at::set_num_threads(1);
  InstallCachingCpuAllocator();  // As dpfleet-worker does.
  at::manual_seed(1);  // Synthetic data only; the trainer's privacy randomness comes from the OS.
  auto dataset = std::make_shared<Dataset>();
  if (features.dim > 0) {
    // Each rank holds only its own part, as a worker given one part of a feature dataset does.
    const int64_t begin = features.rows * rank / world, end = features.rows * (rank + 1) / world;
    at::Tensor inputs = at::empty({end - begin, features.dim}, at::kHalf);
    for (int64_t b = 0; b < end - begin; b += 16384) {
      inputs.slice(0, b, std::min(end - begin, b + 16384)).normal_();
    }
    dataset->train_examples = features.rows;
    dataset->train_blocks = {
        TrainingBlock{begin, inputs, at::randint(0, features.classes, {end - begin}, at::kLong)}};
    dataset->num_classes = features.classes;
  } else {
    dataset->SetTrainingSplit(at::randn({kExamples, 1, 28, 28}),
                              at::randint(0, 10, {kExamples}, at::kLong));
    dataset->num_classes = 10;
  }
  dataset->test_inputs = dataset->train_blocks.front().inputs.slice(0, 0, 100);
  dataset->test_labels = dataset->train_blocks.front().labels.slice(0, 0, 100);
  const int64_t examples = dataset->train_examples;
  RendezvousOptions options{.store_host = store_host,
                            .store_port = port,
                            .local_host = local_host,
                            .rank = rank,
                            .world_size = world};
  auto store = ConnectRendezvousStore(options);
  if (!store.ok()) return 1;
  auto reducer = CreateGlooReducer(options, *store);
  if (!reducer.ok()) return 1;
  auto timed = std::make_unique<BarrierTimedReducer>(std::move(*reducer), bucket_bytes > 0);
  BarrierTimedReducer* timed_view = timed.get();
  TrainerOptions trainer_options{
      .model = model,
      .seed = 1,
      .sampling_rate = std::min(1.0, static_cast<double>(batch) / examples),
      .noise_multiplier = 1.0,
      .clipping = {.clip_norm = 1.0},
      .micro_batch_size = features.dim > 0 ? 8192 : 512,
      .optimizer = {.kind = OptimizerKind::kSgd, .learning_rate = 0.1, .momentum = 0.9}};
  if (bucket_bytes > 0) trainer_options.bucket_bytes = bucket_bytes;
  auto trainer = ShardTrainer::Create(trainer_options, dataset, std::move(timed));
  if (!trainer.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, trainer.status().ToString().c_str());
    return 1;
  }
  std::vector<double> step_seconds, wait_seconds, transfer_seconds, bare_seconds,
      back_to_back_seconds;
  for (int step = 0; step < steps + 2; ++step) {
    const absl::Time start = absl::Now();
    auto result = (*trainer)->RunStep();
    if (!result.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", rank, result.status().ToString().c_str());
      return 1;
    }
    if (step < 2) continue;  // Warm-up.
    step_seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start) -
                           timed_view->last_bare_total_seconds());
    transfer_seconds.push_back(timed_view->last_transfer_seconds());
    bare_seconds.push_back(timed_view->last_bare_seconds());
    // With overlapping buckets nothing is split out: the column holds the communication left
    // after this rank's computation.
    wait_seconds.push_back(bucket_bytes > 0 ? result->allreduce_seconds
                                            : timed_view->last_wait_seconds());
  }
  int64_t parameters = 0;
  for (const at::Tensor& p : (*trainer)->Parameters()) parameters += p.numel();
  // The same bare all-reduce again, back to back after the steps, with nothing computed between.
  at::Tensor buffer = at::zeros({parameters});
  for (int i = 0; i < steps + 2; ++i) {
    const absl::StatusOr<double> seconds = timed_view->TimedAfterBarrier(buffer);
    if (!seconds.ok()) return 1;
    if (i >= 2) back_to_back_seconds.push_back(*seconds);
  }
  if (rank == 0) {
    std::vector<double> matmul_seconds = {0.0};
    if (features.dim > 0) {
      matmul_seconds.clear();
      for (int i = 0; i < steps + 1; ++i) {  // The first is a warm-up.
        const double seconds =
            BareMatmulSeconds(*dataset, features.classes, trainer_options.micro_batch_size);
        if (i > 0) matmul_seconds.push_back(seconds);
      }
    }
    std::printf("%.3f %.3f %.3f %.3f %.3f %lld %.3f %.1f\n", 1000 * Median(step_seconds),
                1000 * Median(wait_seconds), 1000 * Median(transfer_seconds),
                1000 * Median(bare_seconds), 1000 * Median(back_to_back_seconds),
                static_cast<long long>(parameters), 1000 * Median(matmul_seconds),
                PeakKilobytes() / 1024.0);
  }
  return 0;
}

// Test hosts in network namespaces (tests/netns_hosts.sh): host 0 serves the rendezvous store,
// and this process moves onto it; rank r runs on host r + 1.
class NetnsHosts {
 public:
  // Makes the switch and `count` hosts. Errors: kFailedPrecondition (not root, no iproute2).
  static absl::StatusOr<std::unique_ptr<NetnsHosts>> Create(int count) {
    auto hosts = std::unique_ptr<NetnsHosts>(new NetnsHosts());
    char exe[4096];
    const ssize_t length = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (length <= 0) return absl::InternalError("cannot find this binary");
    exe[length] = 0;
    hosts->script_ = absl::StrCat(exe, ".runfiles/dpfleet/tests/netns_hosts.sh");
    if (!hosts->Run("up")) {
      return absl::FailedPreconditionError("cannot make network namespaces (run as root)");
    }
    hosts->up_ = true;
    for (int host = 0; host < count; ++host) {
      if (!hosts->Run("add", std::to_string(host))) {
        return absl::FailedPreconditionError(absl::StrCat("cannot add test host ", host));
      }
    }
    const int fd = open(absl::StrCat("/run/netns/", hosts->prefix_, "-h0").c_str(), O_RDONLY);
    const bool entered = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
    if (!entered) return absl::FailedPreconditionError("cannot enter the store's host");
    return hosts;
  }
  ~NetnsHosts() {
    if (up_) Run("down");
  }

  static std::string Address(int host) { return absl::StrCat("10.77.0.", host + 1); }
  std::string Namespace(int host) const { return absl::StrCat(prefix_, "-h", host); }

 private:
  NetnsHosts() : prefix_(absl::StrCat("dpb", getpid())) {}
  // Runs `netns_hosts.sh VERB PREFIX ARGUMENT`; returns whether it succeeded.
  bool Run(const std::string& verb, const std::string& argument = "") const {
    const std::string command =
        absl::StrCat("bash ", script_, " ", verb, " ", prefix_, " ", argument, " >/dev/null");
    return std::system(command.c_str()) == 0;
  }

  const std::string prefix_;
  std::string script_;
  bool up_ = false;
};

// Runs `world` worker processes (this binary with --rank ...), on hosts of their own when `hosts`
// is set, and returns rank 0's output line.
std::string RunWorkers(int world, const std::string& model, int64_t batch, int steps,
                       const FeatureShape& features, int64_t bucket_bytes,
                       const NetnsHosts* hosts) {
  const std::string store_host = hosts != nullptr ? NetnsHosts::Address(0) : "127.0.0.1";
  int port = 0;
  auto store =
      ServeRendezvousStore({.store_host = store_host, .store_port = 0, .world_size = world}, &port);
  if (!store.ok()) return "";
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return "";
  std::vector<pid_t> children;
  for (int rank = 0; rank < world; ++rank) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (rank == 0) posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    const std::string local_host =
        hosts != nullptr ? NetnsHosts::Address(rank + 1) : std::string("127.0.0.1");
    std::vector<std::string> args;
    if (hosts != nullptr) args = {"ip", "netns", "exec", hosts->Namespace(rank + 1)};
    char exe[4096];
    const ssize_t length = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[std::max<ssize_t>(length, 0)] = 0;
    for (const std::string& arg :
         {std::string(exe), std::string("--rank"), std::to_string(rank), std::to_string(world),
          store_host, std::to_string(port), local_host, model, std::to_string(batch),
          std::to_string(steps), std::to_string(features.dim), std::to_string(features.classes),
          std::to_string(features.rows), std::to_string(bucket_bytes)}) {
      args.push_back(arg);
    }
    std::vector<char*> argv_child;
    for (std::string& a : args) argv_child.push_back(a.data());
    argv_child.push_back(nullptr);
    pid_t pid;
    posix_spawnp(&pid, argv_child[0], &actions, nullptr, argv_child.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    children.push_back(pid);
  }
  close(pipe_fds[1]);
  std::string output;
  char buffer[256];
  ssize_t got;
  while ((got = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) output.append(buffer, got);
  close(pipe_fds[0]);
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (status != 0) std::fprintf(stderr, "a worker process ended with status %d\n", status);
  }
  return output;
}

int Main(int argc, char** argv) {
  std::string model = "mlp";
  int64_t batch = 4096;
  int steps = 10;
  int64_t bucket_bytes = 0;  // 0: the trainer's default, timed after a barrier.
  bool multi_host = false;
  FeatureShape features;
  std::vector<int64_t> feature_rows;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--rank" && i + 12 < argc) {
      try {
        return RunRank(std::stoi(argv[i + 1]), std::stoi(argv[i + 2]), argv[i + 3],
                       std::stoi(argv[i + 4]), argv[i + 5], argv[i + 6], std::stoll(argv[i + 7]),
                       std::stoi(argv[i + 8]),
                       {.dim = std::stoll(argv[i + 9]),
                        .classes = std::stoll(argv[i + 10]),
                        .rows = std::stoll(argv[i + 11])},
                       std::stoll(argv[i + 12]));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "worker failed: %s\n", e.what());
        return 1;
      }
    }
    if (flag == "--model" && i + 1 < argc) model = argv[++i];
    if (flag == "--hosts") multi_host = true;
    if (flag == "--bucket-bytes" && i + 1 < argc) bucket_bytes = std::stoll(argv[++i]);
    if (flag == "--batch" && i + 1 < argc) batch = std::stoll(argv[++i]);
    if (flag == "--steps" && i + 1 < argc) steps = std::stoi(argv[++i]);
    if (flag == "--features" && i + 1 < argc) features.dim = std::stoll(argv[++i]);
    if (flag == "--classes" && i + 1 < argc) features.classes = std::stoll(argv[++i]);
    if (flag == "--rows" && i + 1 < argc) {
      for (absl::string_view r : absl::StrSplit(argv[++i], ','))
        feature_rows.push_back(std::stoll(std::string(r)));
    }
  }
  double step_ms = 0, wait_ms = 0, transfer_ms = 0, bare_ms = 0, back_to_back_ms = 0, matmul_ms = 0,
         peak_mb = 0;
  long long parameters = 0;
  auto parse = [&](const std::string& output) {
    return std::sscanf(output.c_str(), "%lf %lf %lf %lf %lf %lld %lf %lf", &step_ms, &wait_ms,
                       &transfer_ms, &bare_ms, &back_to_back_ms, &parameters, &matmul_ms,
                       &peak_mb) == 8;
  };
  if (features.dim > 0) {
    std::printf(
        "linear head, full batch, %lld features (float16), %lld classes, 2 workers, 1 thread "
        "each, median of %d steps\n",
        static_cast<long long>(features.dim), static_cast<long long>(features.classes), steps);
    std::printf("%9s %10s %16s %9s %14s %12s\n", "rows", "step ms", "bare matmuls ms", "ratio",
                "wait+allreduce", "peak MB/rank");
    for (int64_t rows : feature_rows) {
      features.rows = rows;
      if (!parse(RunWorkers(2, "linear", rows, steps, features, bucket_bytes, nullptr))) {
        std::printf("%9lld failed\n", static_cast<long long>(rows));
        continue;
      }
      std::printf("%9lld %10.1f %16.1f %9.2f %14.2f %12.0f\n", static_cast<long long>(rows),
                  step_ms, matmul_ms, step_ms / matmul_ms, wait_ms + transfer_ms, peak_mb);
      std::fflush(stdout);
    }
    return 0;
  }
  std::unique_ptr<NetnsHosts> hosts;
  if (multi_host) {
    absl::StatusOr<std::unique_ptr<NetnsHosts>> made = NetnsHosts::Create(5);
    if (!made.ok()) {
      std::fprintf(stderr, "distributed_bench --hosts: %s\n", made.status().ToString().c_str());
      return 1;
    }
    hosts = std::move(*made);
  }
  std::printf(
      "model %s, expected batch %lld of %lld, Gloo %s, 1 intra-op thread per worker, "
      "median of %d steps\n",
      model.c_str(), static_cast<long long>(batch), static_cast<long long>(kExamples),
      multi_host ? "between hosts (network namespaces, veth + bridge)" : "on loopback", steps);
  // The all-reduce inside a step first waits for the slowest peer (Poisson batches differ in
  // size); a barrier separates that wait from the transfer, which is compared with a bare c10d
  // all-reduce of the same bytes in the same step, and with one back to back after the steps.
  std::printf("%7s %10s %12s %9s %13s %13s %9s %13s\n", "workers", "step ms", "examples/s",
              "wait ms", "allreduce ms", "bare c10d ms", "overhead", "back-to-back");
  const std::vector<int> worlds = multi_host ? std::vector<int>{2, 4} : std::vector<int>{1, 2, 4};
  for (int world : worlds) {
    if (!parse(RunWorkers(world, model, batch, steps, features, bucket_bytes, hosts.get()))) {
      std::printf("%7d failed\n", world);
      continue;
    }
    std::printf("%7d %10.1f %12.0f %9.2f %13.2f %13.2f %8.0f%% %13.2f   (%lld floats)\n", world,
                step_ms, batch / (step_ms / 1000), wait_ms, transfer_ms, bare_ms,
                bare_ms > 0 ? 100 * (transfer_ms / bare_ms - 1) : 0.0, back_to_back_ms, parameters);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace dpfleet::worker

int main(int argc, char** argv) { return dpfleet::worker::Main(argc, argv); }
