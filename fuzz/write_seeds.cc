// Writes the seed corpora of the harnesses under fuzz/corpus/<harness>/: small valid inputs of
// each format, so that fuzzing starts past the first checks. Run from the repository root:
//   bazel run //fuzz:write_seeds -- "$PWD/fuzz/corpus"
// Crashers the fuzzers find are added to the same folders by hand (fuzz/README.md).

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/admission_ticket.h"
#include "features/feature_shard.h"
#include "features/jpeg.h"
#include "features/npy_testing.h"
#include "fuzz/fuzz_support.h"
#include "fuzz/harness_key.h"
#include "fuzz/toy_trainer.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::fuzz {
namespace {

std::string root;

std::string Folder(const std::string& harness) {
  const std::string folder = root + "/" + harness;
  std::filesystem::create_directories(folder);
  return folder;
}

void Seed(const std::string& harness, const std::string& name, const std::string& bytes) {
  WriteFileOrDie(Folder(harness) + "/" + name, bytes);
}

std::string ReadFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  Require(file != nullptr, "cannot read " + path);
  std::string bytes;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), file)) > 0) bytes.append(buffer, got);
  std::fclose(file);
  return bytes;
}

v1::JobSpec SampledSpec() {
  v1::JobSpec spec;
  spec.set_dataset("fashion-mnist");
  spec.set_model("mlp");
  spec.mutable_optimizer()->set_type(v1::DP_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.5);
  spec.set_expected_batch_size(512);
  spec.set_epochs(2);
  spec.set_clip_norm(1.0);
  spec.set_target_epsilon(2.0);
  spec.set_delta(1e-5);
  spec.set_num_workers(2);
  return spec;
}

void JobSpecs() {
  Seed("job_spec_fuzz", "sampled", SampledSpec().SerializeAsString());
  v1::JobSpec full = SampledSpec();
  full.set_model("linear");
  full.clear_expected_batch_size();
  full.clear_epochs();
  full.set_full_batch(true);
  full.set_steps(10);
  full.clear_target_epsilon();
  full.set_noise_multiplier(20);
  full.set_loss_noise_multiplier(40);
  full.set_loss_clip(5);
  Seed("job_spec_fuzz", "full_batch", full.SerializeAsString());
}

// One accountant record: [kind + 11 * caller][length][request].
std::string Record(int kind, int caller, const google::protobuf::MessageLite& request) {
  const std::string bytes = request.SerializeAsString();
  Require(bytes.size() < 256, "a seed request over 255 bytes");
  return std::string(1, static_cast<char>(kind + 11 * caller)) +
         std::string(1, static_cast<char>(bytes.size())) + bytes;
}

void AccountantCalls() {
  constexpr int kAdmin = 0, kCoordinator = 1;
  v1::RegisterDatasetRequest dataset;
  dataset.set_dataset("d");
  dataset.set_epsilon_budget(8);
  dataset.set_delta(1e-5);
  v1::GrantAccessRequest grant;
  grant.set_dataset("d");
  grant.set_principal("alice");
  v1::ReserveRequest reserve;
  reserve.set_dataset("d");
  reserve.set_job_id("j");
  reserve.mutable_mechanism()->set_sampling_rate(0.01);
  reserve.mutable_mechanism()->set_noise_multiplier(1.0);
  reserve.mutable_mechanism()->set_steps(100);
  reserve.set_idempotency_key("k");
  reserve.set_clip_norm(1);
  reserve.set_submitter("alice");
  v1::GetBudgetRequest budget;
  budget.set_dataset("d");
  *budget.mutable_mechanism() = reserve.mechanism();
  v1::CommitRequest commit;
  commit.set_reservation_id("res-unknown");
  commit.set_steps_run(10);
  v1::LeaseRequest lease;
  lease.set_reservation_id("res-unknown");
  lease.add_rank_nonces(std::string(16, 'n'));
  lease.add_shards()->set_end(100);
  lease.set_end_step(8);
  v1::ComputeEpsilonRequest epsilon;
  *epsilon.mutable_mechanism() = reserve.mechanism();
  epsilon.set_delta(1e-5);
  v1::CalibrateNoiseRequest calibrate;
  calibrate.set_sampling_rate(1.0);
  calibrate.set_steps(10);
  calibrate.set_target_epsilon(2);
  calibrate.set_delta(1e-5);
  calibrate.set_method(v1::ACCOUNTING_EXACT);
  Seed("accountant_fuzz", "session",
       Record(0, kAdmin, dataset) + Record(6, kAdmin, grant) + Record(2, kCoordinator, reserve) +
           Record(1, kAdmin, budget) + Record(3, kCoordinator, lease) +
           Record(4, kCoordinator, commit) + Record(8, kAdmin, epsilon) +
           Record(9, kAdmin, calibrate));
  const std::string filter = "renyi:6.2000000000000002:0.5,renyi:3.6000000000000001:0.5";
  Seed("accountant_fuzz", "filter",
       std::string("\x0a") + static_cast<char>(filter.size()) + filter);
}

void FeatureShards() {
  const at::Tensor features = at::arange(12, at::kFloat).reshape({3, 4}).div(7);
  const at::Tensor labels = at::tensor(std::vector<int64_t>{0, 2, 1});
  for (const auto& [name, dtype] :
       {std::pair{"float32", at::kFloat}, std::pair{"float16", at::kHalf}}) {
    const std::string path = Folder("feature_shard_fuzz") + "/" + name;
    Require(features::WriteFeatureShard(path, features, labels, 3, dtype,
                                        {.first_row = 2, .total_rows = 9})
                .ok(),
            "write a shard seed");
  }
}

void NpyFiles() {
  const TempFile scratch("", "unused");
  const float features[] = {0.5f, -1, 2, 0, 1, 3};
  features::WriteNpy(scratch.folder() + "/f.npy", "<f4", "(2, 3)", features, sizeof(features));
  const int64_t labels[] = {0, 1};
  features::WriteNpy(scratch.folder() + "/l.npy", "<i8", "(2,)", labels, sizeof(labels));
  Seed("npy_fuzz", "features", std::string(1, '\x00') + ReadFile(scratch.folder() + "/f.npy"));
  Seed("npy_fuzz", "labels", std::string(1, '\x01') + ReadFile(scratch.folder() + "/l.npy"));
}

std::string BigEndian(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
          static_cast<char>(value >> 8), static_cast<char>(value)};
}

void IdxFiles() {
  const std::string images =
      BigEndian(2051) + BigEndian(3) + BigEndian(2) + BigEndian(2) + std::string(12, '\x40');
  const std::string labels = BigEndian(2049) + BigEndian(3) + std::string("\x00\x05\x09", 3);
  Seed("idx_fuzz", "train_images", std::string(1, '\x00') + images);
  Seed("idx_fuzz", "train_labels", std::string(1, '\x01') + labels);
  Seed("idx_fuzz", "test_images", std::string(1, '\x02') + images);
  Seed("idx_fuzz", "test_labels", std::string(1, '\x03') + labels);
}

void Jpegs() {
  const TempFile scratch("", "unused");
  for (const auto& [name, height, width] : {std::tuple{"8x8", 8, 8}, std::tuple{"12x20", 12, 20}}) {
    const at::Tensor rgb = at::arange(height * width * 3, at::kLong)
                               .remainder(251)
                               .to(at::kByte)
                               .reshape({height, width, 3});
    const std::string path = scratch.folder() + "/" + name + ".jpg";
    Require(features::EncodeJpeg(path, rgb).ok(), "encode a JPEG seed");
    Seed("jpeg_fuzz", name, ReadFile(path));
  }
}

void Checkpoints() {
  auto trainer = ToyTrainer();
  Require(trainer->RunStep().ok(), "a step of the toy trainer");
  const absl::StatusOr<std::string> checkpoint = trainer->Checkpoint();
  Require(checkpoint.ok(), "checkpoint the toy trainer");
  Seed("checkpoint_fuzz", "after_one_step", *checkpoint);
}

void Admissions() {
  v1::TicketBody body;
  body.set_job_id("job-1");
  body.set_dataset("d");
  body.set_reservation_id("res-1");
  body.set_sampling_rate(0.01);
  body.set_noise_multiplier(1.0);
  body.set_clip_norm(1.0);
  body.add_rank_nonces(std::string(16, 'n'));
  auto* shard = body.add_shards();
  shard->set_end(100);
  body.set_first_step(0);
  body.set_end_step(8);
  body.set_expires_unix_ms(int64_t{1} << 40);
  const auto signer = TicketSigner::FromPem(kHarnessTicketPrivateKey);
  Require(signer.ok(), "the harness key");
  const absl::StatusOr<v1::AdmissionTicket> ticket = (*signer)->Sign(body);
  Require(ticket.ok(), "sign a seed ticket");
  Seed("admission_fuzz", "ticket", std::string(1, '\x00') + ticket->SerializeAsString());
  v1::ShardAssignment assignment;
  assignment.set_job_id("job-1");
  assignment.mutable_spec()->set_dataset("d");
  assignment.mutable_spec()->set_clip_norm(1.0);
  assignment.set_sampling_rate(0.01);
  assignment.set_noise_multiplier(1.0);
  assignment.set_shard_end(100);
  const std::string body_bytes = body.SerializeAsString();
  Seed("admission_fuzz", "covers",
       std::string(1, '\x01') + std::string(1, static_cast<char>(body_bytes.size())) + body_bytes +
           assignment.SerializeAsString());
  Seed("admission_fuzz", "principal",
       std::string("\x02"
                   "alice\0coordinator.dpfleet",
                   26));
}

}  // namespace
}  // namespace dpfleet::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_seeds CORPUS_FOLDER\n");
    return 2;
  }
  using namespace dpfleet::fuzz;
  root = argv[1];
  JobSpecs();
  AccountantCalls();
  FeatureShards();
  NpyFiles();
  IdxFiles();
  Jpegs();
  Checkpoints();
  Admissions();
  std::printf("write_seeds: wrote the seed corpora under %s\n", argv[1]);
  return 0;
}
