#include "dae/core/files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "dae/core/error.hpp"

namespace dae {

namespace {

std::string reason() { return std::strerror(errno); }

// write(2) until everything is written; false with errno set on failure.
bool write_all(int fd, const char* bytes, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, bytes, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {  // no progress and no error: treat as a full device rather than loop forever
      errno = ENOSPC;
      return false;
    }
    bytes += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// A new name can only be relied on after the directory holding it reached the disk.
void fsync_directory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the file itself is durable; only the name may be lost in a crash
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_durably(const std::string& path, const void* bytes, std::size_t size) {
  const std::filesystem::path final_path(path);
  const std::string directory =
      final_path.has_parent_path() ? final_path.parent_path().string() : ".";
  // Hidden and unique: a listing of checkpoints or outputs never sees it under a final name.
  // (Appended piece by piece: a `"." + string` temporary trips GCC 12's -Wstringop-overflow.)
  std::string hidden = ".";
  hidden += final_path.filename().string();
  hidden += ".tmp.";
  hidden += std::to_string(::getpid());
  const std::string temporary = (std::filesystem::path(directory) / hidden).string();
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create (" + reason() + ")");
  bool ok = write_all(fd, static_cast<const char*>(bytes), size) && ::fsync(fd) == 0;
  int saved_errno = errno;
  // close(2) can report a deferred write error (NFS, quotas): it counts like any other.
  if (::close(fd) != 0 && ok) {
    ok = false;
    saved_errno = errno;
  }
  if (ok && ::rename(temporary.c_str(), path.c_str()) != 0) {
    ok = false;
    saved_errno = errno;
  }
  if (!ok) {
    ::unlink(temporary.c_str());
    throw Error(path + ": write failed (" + std::strerror(saved_errno) + ")");
  }
  fsync_directory(directory);
}

void require_regular_file(const std::string& path, std::uint64_t max_bytes,
                          const std::string& what) {
  const std::string name = (what.empty() ? "" : what + ": ") + path;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw Error(name + ": cannot open (" + reason() + ")");
  if (S_ISDIR(info.st_mode)) throw Error(name + ": is a directory, not a file");
  if (!S_ISREG(info.st_mode))
    throw Error(name + ": not a regular file (a FIFO, socket or device)");
  if (static_cast<std::uint64_t>(info.st_size) > max_bytes)
    throw Error(name + ": " + std::to_string(info.st_size) + " bytes, more than the " +
                std::to_string(max_bytes) + " allowed");
}

std::string read_small_regular_file(const std::string& path, std::uint64_t max_bytes,
                                    const std::string& what) {
  require_regular_file(path, max_bytes, what);
  const std::string name = (what.empty() ? "" : what + ": ") + path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(name + ": cannot open (" + reason() + ")");
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const bool failed = n < 0;
      const std::string why = failed ? reason() : "";
      ::close(fd);
      if (failed) throw Error(name + ": read failed (" + why + ")");
      return text;
    }
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {  // it grew since the stat
      ::close(fd);
      throw Error(name + ": more than the " + std::to_string(max_bytes) + " bytes allowed");
    }
  }
}

RunDirLock::RunDirLock(const std::string& run_dir) {
  const std::string path = run_dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("run-dir " + run_dir + ": cannot create " + path + " (" + reason() + ")");
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    const int saved_errno = errno;
    char holder[256] = {};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    std::string who = n > 0 ? std::string(holder, static_cast<std::size_t>(n)) : "unknown";
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (saved_errno == EWOULDBLOCK)
      throw Error("run-dir " + run_dir + ": in use by another dae_dist job (" + who +
                  "); wait for it to end or choose another --run-dir");
    throw Error("run-dir " + run_dir + ": cannot lock " + path + " (" +
                std::strerror(saved_errno) + ")");
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string holder = "host " + std::string(host) + ", pid " + std::to_string(::getpid()) + "\n";
  // Best effort: the lock itself is the flock, the text only helps the next job's message.
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, holder.data(), holder.size(), 0);
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", value);
  return text;
}

std::string json_string(const std::string& text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      quoted += escaped;
    } else {
      quoted += c;  // bytes >= 0x80 pass as they are: UTF-8 stays valid JSON
    }
  }
  return quoted + '"';
}

}  // namespace dae
