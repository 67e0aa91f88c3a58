#include "dae/io/tensorboard.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "dae/core/error.hpp"

namespace dae {

namespace {

// The Event and Summary messages are written with the protobuf wire format by hand: four
// messages of a few fields each do not justify a protobuf dependency. Field numbers are those of
// tensorflow/core/util/event.proto and framework/summary.proto.
enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, std::uint32_t field, WireType type) {
  put_varint(out, (std::uint64_t{field} << 3) | type);
}

void put_bytes(std::string& out, std::uint32_t field, const std::string& bytes) {
  put_key(out, field, kBytes);
  put_varint(out, bytes.size());
  out += bytes;
}

template <typename T>
void put_fixed(std::string& out, std::uint32_t field, T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "fixed32 or fixed64");
  put_key(out, field, sizeof(T) == 4 ? kFixed32 : kFixed64);
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));  // little-endian on every machine we build for
  out.append(raw, sizeof(T));
}

double now_seconds() {
  timeval time{};
  ::gettimeofday(&time, nullptr);
  return static_cast<double>(time.tv_sec) + 1e-6 * static_cast<double>(time.tv_usec);
}

// Event { wall_time = 1; step = 2; <what> }, `what` already serialized with its key.
std::string event(std::int64_t step, const std::string& what) {
  std::string out;
  put_fixed(out, 1, now_seconds());
  put_key(out, 2, kVarint);
  put_varint(out, static_cast<std::uint64_t>(step));
  return out + what;
}

// Event.summary (5) holding one Summary.Value (1) { tag = 1; `value` }.
std::string summary_of(const std::string& tag, const std::string& value) {
  std::string item;
  put_bytes(item, 1, tag);
  item += value;
  std::string summary;
  put_bytes(summary, 1, item);
  std::string out;
  put_bytes(out, 5, summary);
  return out;
}

std::uint32_t masked(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u; }

}  // namespace

std::uint32_t crc32c(const std::uint8_t* bytes, std::size_t size) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> entries{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t crc = i;
      for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
      entries[i] = crc;
    }
    return entries;
  }();
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& directory, std::int64_t resume_step) {
  std::filesystem::create_directories(directory);
  timeval time{};
  ::gettimeofday(&time, nullptr);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  char name[400];
  std::snprintf(name, sizeof name, "events.out.tfevents.%010lld.%06ld.%s",
                static_cast<long long>(time.tv_sec), static_cast<long>(time.tv_usec), host);
  path_ = (std::filesystem::path(directory) / name).string();
  file_ = std::fopen(path_.c_str(), "wbx");  // x: never append to another writer's file
  if (file_ == nullptr) throw Error(path_ + ": cannot create (" + std::strerror(errno) + ")");
  std::string version;
  put_bytes(version, 3, "brain.Event:2");  // file_version: TensorBoard's format marker
  write_event(event(0, version));
  if (resume_step >= 0) {
    std::string status;
    put_key(status, 1, kVarint);
    put_varint(status, 1);  // SessionLog.START
    std::string session_log;
    put_bytes(session_log, 7, status);
    // TensorBoard keeps only the events of steps below a START's step.
    write_event(event(resume_step + 1, session_log));
  }
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void TensorBoardWriter::scalar(const std::string& tag, std::int64_t step, double value) {
  std::string simple;
  put_fixed(simple, 2, static_cast<float>(value));  // Summary.Value.simple_value
  write_event(event(step, summary_of(tag, simple)));
}

void TensorBoardWriter::image(const std::string& tag, std::int64_t step, int width, int height,
                              int channels, const std::vector<std::uint8_t>& png) {
  std::string picture;  // Summary.Image
  put_key(picture, 1, kVarint);
  put_varint(picture, static_cast<std::uint64_t>(height));
  put_key(picture, 2, kVarint);
  put_varint(picture, static_cast<std::uint64_t>(width));
  put_key(picture, 3, kVarint);
  put_varint(picture, static_cast<std::uint64_t>(channels));  // colorspace: 1 gray, 3 RGB
  put_bytes(picture, 4, std::string(png.begin(), png.end()));
  std::string value;
  put_bytes(value, 4, picture);  // Summary.Value.image
  write_event(event(step, summary_of(tag, value)));
}

void TensorBoardWriter::write_event(const std::string& serialized) {
  std::uint8_t header[12];
  const std::uint64_t length = serialized.size();
  std::memcpy(header, &length, 8);
  const std::uint32_t length_crc = masked(crc32c(header, 8));
  std::memcpy(header + 8, &length_crc, 4);
  const std::uint32_t data_crc =
      masked(crc32c(reinterpret_cast<const std::uint8_t*>(serialized.data()), serialized.size()));
  if (std::fwrite(header, 1, sizeof header, file_) != sizeof header ||
      std::fwrite(serialized.data(), 1, serialized.size(), file_) != serialized.size() ||
      std::fwrite(&data_crc, 1, 4, file_) != 4)
    throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
}

void TensorBoardWriter::flush() {
  if (std::fflush(file_) != 0)
    throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
}

}  // namespace dae
