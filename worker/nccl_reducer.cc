#include "worker/nccl_reducer.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace dpfleet::worker {
namespace {

constexpr char kUniqueIdKey[] = "dpfleet/nccl_unique_id";

absl::Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": ", cudaGetErrorString(error)));
}

absl::Status NcclStatus(ncclResult_t result, const char* what) {
  if (result == ncclSuccess) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": ", ncclGetErrorString(result)));
}

class NcclReducer final : public Reducer {
 public:
  NcclReducer(ncclComm_t comm, cudaStream_t stream, int device, int rank, int world_size)
      : comm_(comm), stream_(stream), device_(device), rank_(rank), world_size_(world_size) {}

  ~NcclReducer() override {
    cudaSetDevice(device_);
    if (device_buffer_ != nullptr) cudaFree(device_buffer_);
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }

  absl::Status AllReduceSum(at::Tensor& buffer) override {
    if (!buffer.is_contiguous() || buffer.scalar_type() != at::kFloat || !buffer.is_cpu()) {
      return absl::InvalidArgumentError("NCCL all-reduce needs a contiguous float32 CPU buffer");
    }
    const size_t bytes = buffer.numel() * sizeof(float);
    if (absl::Status s = CudaStatus(cudaSetDevice(device_), "cudaSetDevice"); !s.ok()) return s;
    if (bytes > capacity_) {
      if (device_buffer_ != nullptr) cudaFree(device_buffer_);
      device_buffer_ = nullptr;
      if (absl::Status s = CudaStatus(cudaMalloc(&device_buffer_, bytes), "cudaMalloc"); !s.ok()) {
        capacity_ = 0;
        return s;
      }
      capacity_ = bytes;
    }
    void* host = buffer.data_ptr();
    if (absl::Status s = CudaStatus(
            cudaMemcpyAsync(device_buffer_, host, bytes, cudaMemcpyHostToDevice, stream_),
            "copy to GPU");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = NcclStatus(ncclAllReduce(device_buffer_, device_buffer_, buffer.numel(),
                                                  ncclFloat, ncclSum, comm_, stream_),
                                    "ncclAllReduce");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CudaStatus(
            cudaMemcpyAsync(host, device_buffer_, bytes, cudaMemcpyDeviceToHost, stream_),
            "copy to host");
        !s.ok()) {
      return s;
    }
    return CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }

 private:
  ncclComm_t comm_;
  cudaStream_t stream_;
  const int device_;
  const int rank_;
  const int world_size_;
  void* device_buffer_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Reducer>> CreateNcclReducer(const RendezvousOptions& options,
                                                           c10::intrusive_ptr<c10d::Store> store,
                                                           int device) {
  if (absl::Status s = CudaStatus(cudaSetDevice(device), "cudaSetDevice"); !s.ok()) return s;
  ncclUniqueId id;
  try {
    if (options.rank == 0) {
      if (absl::Status s = NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"); !s.ok()) return s;
      store->set(kUniqueIdKey, std::vector<uint8_t>(reinterpret_cast<uint8_t*>(&id),
                                                    reinterpret_cast<uint8_t*>(&id) + sizeof(id)));
    } else {
      store->wait({kUniqueIdKey}, options.timeout);
      const std::vector<uint8_t> bytes = store->get(kUniqueIdKey);
      if (bytes.size() != sizeof(id))
        return absl::UnavailableError("malformed NCCL unique id in store");
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("NCCL id exchange failed on rank ", options.rank, ": ", e.what()));
  }
  cudaStream_t stream;
  if (absl::Status s = CudaStatus(cudaStreamCreate(&stream), "cudaStreamCreate"); !s.ok()) return s;
  ncclComm_t comm;
  if (absl::Status s = NcclStatus(ncclCommInitRank(&comm, options.world_size, id, options.rank),
                                  "ncclCommInitRank");
      !s.ok()) {
    cudaStreamDestroy(stream);
    return s;
  }
  return std::unique_ptr<Reducer>(
      new NcclReducer(comm, stream, device, options.rank, options.world_size));
}

}  // namespace dpfleet::worker
