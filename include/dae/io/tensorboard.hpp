// defines: dae::TensorBoardWriter (TensorBoard event files: scalars and PNG images, written by
//          rank 0), dae::crc32c
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace dae {

// CRC-32C (Castagnoli) of `size` bytes, as TensorBoard's record framing uses it.
std::uint32_t crc32c(const std::uint8_t* bytes, std::size_t size);

// One event file in `directory` (events.out.tfevents.<seconds>.<microseconds>.<host>; the name
// sorts by creation time, which is the order TensorBoard reads a run's files in). Each record is
// TFRecord framing — length (uint64 LE), masked CRC-32C of the length, a serialized
// tensorflow.Event, masked CRC-32C of it — so `tensorboard --logdir RUN_DIR` reads it. The file
// is an append-only log (not written through write_file_durably): a crash leaves at most a
// truncated last record, which TensorBoard skips. Every write is checked; a failure throws
// dae::Error naming the file.
class TensorBoardWriter {
 public:
  // `resume_step` >= 0: the run continues from a checkpoint of that step, so a SessionLog START
  // at it comes first and TensorBoard drops what earlier files logged after that step (a crash
  // between a checkpoint and the next one logged steps that are now run again).
  TensorBoardWriter(const std::string& directory, std::int64_t resume_step);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(const std::string& tag, std::int64_t step, double value);
  // An encoded PNG (encode_png) shown in TensorBoard's image tab.
  void image(const std::string& tag, std::int64_t step, int width, int height, int channels,
             const std::vector<std::uint8_t>& png);
  // Pushes what was written to the kernel (called after each progress line and evaluation).
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event);

  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace dae
