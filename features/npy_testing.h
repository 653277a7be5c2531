#ifndef DPFLEET_FEATURES_NPY_TESTING_H_
#define DPFLEET_FEATURES_NPY_TESTING_H_

// Test helper: writes .npy files the way numpy.save does, for features "computed elsewhere".

#include <fstream>
#include <string>

namespace dpfleet::features {

// Writes a version-1 .npy file holding `bytes` bytes of `data` with dtype `descr` ("<f4") and
// `shape` written as a Python tuple ("(6, 4)").
inline void WriteNpy(const std::string& path, const std::string& descr, const std::string& shape,
                     const void* data, size_t bytes) {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out << "\x93NUMPY" << '\x01' << '\x00';
  out.put(static_cast<char>(header.size() & 0xff));
  out.put(static_cast<char>(header.size() >> 8));
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
}

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_NPY_TESTING_H_
