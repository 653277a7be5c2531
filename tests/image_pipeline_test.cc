// The headline pipeline end to end at small scale: JPEG folders and a TorchScript backbone made
// here, dpfleet-extract run once per machine (each worker gets only its part of the features),
// then full-batch DP finetuning of a linear head on the local cluster, and evaluation.

#include <signal.h>
#include <torch/script.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "accountant/gaussian.h"
#include "features/jpeg.h"
#include "gtest/gtest.h"
#include "tests/cluster_fixture.h"

namespace dpfleet {
namespace {
namespace fs = std::filesystem;

constexpr double kImageDelta = 1e-6;
constexpr int kClasses = 4;

// Noisy 40x56 pictures whose colour depends on the class.
void WriteImages(const fs::path& root, int per_class, int seed) {
  at::manual_seed(seed);  // Public synthetic data.
  const char* names[kClasses] = {"apple", "bolt", "cloud", "drum"};
  for (int label = 0; label < kClasses; ++label) {
    const fs::path folder = root / names[label];
    fs::create_directories(folder);
    for (int i = 0; i < per_class; ++i) {
      at::Tensor picture = at::randint(0, 150, {40, 56, 3}, at::kInt);
      if (label < 3) picture.select(2, label).add_(60);
      if (label == 3) picture.add_(40);
      ASSERT_TRUE(features::EncodeJpeg((folder / absl::StrCat(i, ".jpg")).string(),
                                       picture.clamp(0, 255).to(at::kByte))
                      .ok());
    }
  }
}

// A user's frozen backbone: a random convolution, ReLU and average pooling (16 features).
void WriteBackbone(const std::string& path) {
  torch::jit::Module module("Backbone");
  torch::manual_seed(7);
  module.register_parameter("weight", torch::randn({16, 3, 3, 3}), /*is_buffer=*/false);
  module.define(R"(
def forward(self, x):
    y = torch.relu(torch.conv2d(x, self.weight, None, [2, 2]))
    return torch.mean(y, [2, 3])
)");
  module.save(path);
}

class ImagePipelineTest : public LocalClusterTest {
 protected:
  std::string DataDir() override {
    const fs::path root = fs::path(std::getenv("TEST_TMPDIR")) / "pipeline";
    fs::remove_all(root);
    WriteImages(root / "images" / "train", 60, 1);
    WriteImages(root / "images" / "val", 25, 2);
    const std::string backbone = (root / "backbone.pt").string();
    WriteBackbone(backbone);
    // What each machine of a cluster runs: extract its own part, and the test split.
    for (int part = 0; part < 2; ++part) {
      std::string output;
      const std::string command = absl::StrCat(
          Runfiles(), "/features/dpfleet-extract --train ", (root / "images" / "train").string(),
          " --test ", (root / "images" / "val").string(), " --backbone ", backbone,
          " --resize 40 --crop 32 --batch_size 16 --threads 1 --parts 2 --part ", part, " --out ",
          (root / absl::StrCat("worker-", part) / "pets").string(), " 2>&1");
      EXPECT_EQ(RunCommand(command, &output), 0) << output;
    }
    return (root / "worker-%w").string();
  }

  // Runs a full-batch job of `steps` steps on the two part holders, SIGKILLs worker 1 (rows
  // 120-239) once `kill_after` steps have run, and returns in *job the first snapshot in which the
  // job, still running, says it waits for workers.
  void LoseAPartHolderMidJob(int64_t steps, int64_t kill_after, v1::Job* job) {
    RegisterDataset(100.0, "pets", kImageDelta);
    v1::JobSpec spec = LinearHeadJob("pets", kImageDelta);
    spec.set_steps(steps);
    ASSERT_TRUE(Submit(spec, job).ok());
    const std::string job_id = job->job_id();
    *job = WaitFor(job_id,
                   [&](const v1::Job& j) { return j.progress().step() >= kill_after || Ended(j); });
    ASSERT_EQ(job->state(), v1::RUNNING) << job->error();
    ASSERT_EQ(kill(std::stoi(ReadFile(state_dir_ + "/worker-1.pid")), SIGKILL), 0);
    *job = WaitFor(job_id, [](const v1::Job& j) {
      return j.error().find("waiting for workers") != std::string::npos || Ended(j);
    });
    ASSERT_EQ(job->state(), v1::RUNNING) << job->error();
  }
};

TEST_F(ImagePipelineTest, ExtractsPartsPerWorkerAndFinetunesAPrivateHead) {
  // Each worker holds only its half of the training features, and the coordinator knows it.
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(registry_->ListWorkers(Context().get(), {}, &workers).ok());
  ASSERT_EQ(workers.workers_size(), 2);
  int64_t held = 0;
  for (const v1::WorkerStatus& worker : workers.workers()) {
    ASSERT_EQ(worker.datasets_size(), 1);
    const v1::DatasetInfo& info = worker.datasets(0);
    EXPECT_EQ(info.train_examples(), 240);
    EXPECT_EQ(info.held_end() - info.held_begin(), 120);
    held += info.held_end() - info.held_begin();
  }
  EXPECT_EQ(held, 240);

  RegisterDataset(10.0, "pets", kImageDelta);
  const v1::JobSpec spec = LinearHeadJob("pets", kImageDelta);

  // One worker cannot run it: neither holds all the rows.
  v1::Job refused;
  v1::JobSpec one_worker = spec;
  one_worker.set_num_workers(1);
  const grpc::Status status = Submit(one_worker, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("num_workers must be 2"), std::string::npos)
      << status.error_message();

  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  job = WaitFor(job.job_id(), Ended);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error();
  const accountant::CalibratedNoise exact =
      *accountant::CalibrateFullBatchNoise(10, 4.0, kImageDelta);
  EXPECT_NEAR(job.result().epsilon_spent(), exact.epsilon, 1e-9);
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(1));
  EXPECT_GT(job.result().test_accuracy(), 0.6) << "chance is 0.25";
  std::printf("image pipeline: test accuracy %.3f at epsilon %.3f\n", job.result().test_accuracy(),
              job.result().epsilon_spent());
}

TEST_F(ImagePipelineTest, AJobWhosePartHolderDiedSaysWhichRowsItWaitsFor) {
  v1::Job job;
  ASSERT_NO_FATAL_FAILURE(LoseAPartHolderMidJob(/*steps=*/5000, /*kill_after=*/5, &job));
  const std::string job_id = job.job_id();
  // Worker 0 alone holds rows 0-119: the job cannot go on, and says so while it waits.
  EXPECT_NE(job.error().find("start at row 120"), std::string::npos) << job.error();
  EXPECT_NE(job.error().find("resuming from step"), std::string::npos) << job.error();

  ASSERT_TRUE(Cancel(job_id).ok());
  job = WaitFor(job_id, Ended);
  EXPECT_EQ(job.state(), v1::CANCELLED) << job.error();
  EXPECT_GE(job.result().steps_run(), 5);
  EXPECT_EQ(Budget("pets").open_reservations(), 0);
}

TEST_F(ImagePipelineTest, AReplacementPartHolderLetsTheJobFinishChargedForEveryStepThatRan) {
  constexpr int64_t kSteps = 1500;  // Checkpoints every 25 steps; still running when killed.
  v1::Job job;
  ASSERT_NO_FATAL_FAILURE(LoseAPartHolderMidJob(kSteps, /*kill_after=*/30, &job));
  const std::string job_id = job.job_id();

  // A new worker on the dead one's machine holds rows 120-239 again: the job resumes from its
  // last checkpoint on both and runs to the end.
  RestartWorker(1);
  job = WaitFor(job_id, Ended);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error();
  EXPECT_EQ(job.result().parameter_fingerprints_size(), 2);
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(1));
  EXPECT_GE(job.result().steps_run(), kSteps);
  EXPECT_LT(job.result().steps_run(), kSteps + 25);
  // Steps lost with the worker were charged too: the job's exact epsilon is that of every step
  // that ran at the noise calibrated for kSteps (the lost ones take it past the target).
  const double sigma =
      accountant::CalibrateFullBatchNoise(kSteps, 4.0, kImageDelta)->noise_multiplier;
  const double spent =
      *accountant::FullBatchEpsilon(sigma, job.result().steps_charged(), kImageDelta);
  EXPECT_LT(job.result().steps_charged(), job.result().steps_run() + kLeaseSteps);
  EXPECT_NEAR(job.result().epsilon_spent(), spent, 1e-9);
  const v1::GetBudgetResponse budget = Budget("pets");
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_GE(budget.epsilon_committed(), spent - 1e-9);
  std::printf("replacement part holder: %lld steps ran for %lld planned, epsilon %.4f\n",
              static_cast<long long>(job.result().steps_run()), static_cast<long long>(kSteps),
              job.result().epsilon_spent());
}

}  // namespace
}  // namespace dpfleet
