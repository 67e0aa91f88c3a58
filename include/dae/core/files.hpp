// defines: dae::write_file_durably (the one way every output file reaches its final name),
//          dae::RunDirLock, dae::read_small_regular_file, dae::require_regular_file,
//          dae::json_number, dae::json_string
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dae {

// Writes `size` bytes to a temporary name beside `path` (O_EXCL, O_CLOEXEC), checks every
// write(2) (retrying EINTR and short writes), fsyncs and closes it, renames it over `path` and
// fsyncs the directory. Readers see the old file or the new one, never a partial one; on any
// failure the temporary is removed and dae::Error names `path` and the system's reason
// ("No space left on device"). Every output the job leaves goes through here, so outputs made by
// libraries (HDF5, libpng, MathGL) are built in memory first.
void write_file_durably(const std::string& path, const void* bytes, std::size_t size);
inline void write_file_durably(const std::string& path, const std::string& text) {
  write_file_durably(path, text.data(), text.size());
}
inline void write_file_durably(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  write_file_durably(path, bytes.data(), bytes.size());
}

// Throws dae::Error("<what>: <path>: ..."; "<path>: ..." when `what` is empty) unless `path` is a
// regular file (not a directory, FIFO or device, which would read as empty or block forever) of
// at most `max_bytes`.
void require_regular_file(const std::string& path, std::uint64_t max_bytes,
                          const std::string& what);
// The whole content of a regular file of at most `max_bytes`.
std::string read_small_regular_file(const std::string& path, std::uint64_t max_bytes,
                                    const std::string& what);

// An exclusive flock(2) on RUN_DIR/.lock, held for the object's life. The kernel drops it when
// the process dies, so a crashed job never leaves a stale lock. The file names the holder
// (host and pid) for the message a second job gets.
class RunDirLock {
 public:
  // Throws dae::Error naming the run dir and the holder if another process holds it.
  explicit RunDirLock(const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

// A JSON number with enough digits to round-trip a double; null for NaN and infinities.
std::string json_number(double value);
// A JSON string literal of `text`, quotes included: `"` and `\` escaped, control characters as
// \u00XX (a path may hold any byte but NUL and `/`).
std::string json_string(const std::string& text);

}  // namespace dae
