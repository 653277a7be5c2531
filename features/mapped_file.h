#ifndef DPFLEET_FEATURES_MAPPED_FILE_H_
#define DPFLEET_FEATURES_MAPPED_FILE_H_

// A read-only memory mapping of a whole file: feature data far larger than memory is read through
// the page cache, shared by every process on the machine that maps it.

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace dpfleet::features {

class MappedFile {
 public:
  // Maps `path` read-only. Errors: kNotFound for a file that cannot be opened; kInternal when it
  // cannot be mapped.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return static_cast<const unsigned char*>(data_); }
  size_t size() const { return size_; }

 private:
  MappedFile(void* data, size_t size) : data_(data), size_(size) {}
  void* data_;
  size_t size_;
};

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_MAPPED_FILE_H_
