// Hostile or mistaken inputs, one class at a time (issue "faults and bad input"): each is refused
// with one dae::Error line naming the thing and the problem, quickly, before anything is read
// that its header or its kind could make unbounded.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <fstream>

#include "dae/core/config.hpp"
#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/idx.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

template <typename Work>
std::string error_of(Work work) {
  try {
    work();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

std::string config_error(std::vector<std::string> args) {
  args.insert(args.begin(), "dae_dist");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return error_of([&] { parse_config(static_cast<int>(argv.size()), argv.data()); });
}

TEST(HostileConfig, NonFiniteAndAbsurdValuesAreRefusedNamingTheOption) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--lr", "inf"}, "config: lr: must be a finite number"},
      {{"--lr", "nan"}, "config: lr: must be a finite number"},
      {{"--noise", "inf"}, "config: noise: must be a finite number"},
      {{"--init-bias", "nan"}, "config: init-bias: must be a finite number"},
      {{"--collective-timeout", "nan"}, "config: collective-timeout: must be a finite number"},
      {{"--collective-timeout", "-1"}, "config: collective-timeout: must be >= 0"},
      {{"--eval-noise", "0,nan"}, "config: eval-noise: 'nan' is not a finite number"},
      {{"--eval-noise", "1e308"}, "config: eval-noise: levels must be >= 0 and at most 100"},
      {{"--noise", "1e308"}, "config: noise: must be >= 0 and at most 100"},
      {{"--threads", "1000000"}, "config: threads: must be >= 0 and at most 1024"},
      {{"--batch-size", "1000000000"}, "config: batch-size: must be > 0 and at most 1048576"},
      {{"--eval-batch", "1000000000"}, "config: eval-batch: must be > 0 and at most 1048576"},
  };
  for (const auto& [args, expected] : cases) {
    std::vector<std::string> full = {"--data", "d.h5"};
    full.insert(full.end(), args.begin(), args.end());
    const std::string message = config_error(full);
    EXPECT_NE(message.find(expected), std::string::npos) << args[0] << " " << args[1] << ": "
                                                         << message;
  }
}

TEST(HostileConfig, OnlyARegularFileOfBoundedSizeIsReadAsTheConfig) {
  TempDir dir;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_NE(config_error({"--config", "/dev/zero"}).find("/dev/zero: not a regular file"),
            std::string::npos);
  EXPECT_NE(config_error({"--config", dir.path().string()}).find("is a directory"),
            std::string::npos);
  const std::string fifo = dir.file("fifo.ini");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(config_error({"--config", fifo}).find("fifo.ini: not a regular file"),
            std::string::npos);
  std::ofstream(dir.file("huge.ini")) << std::string(kMaxConfigFileBytes + 1, '#');
  EXPECT_NE(config_error({"--config", dir.file("huge.ini")}).find("bytes, more than the"),
            std::string::npos);
  EXPECT_NE(config_error({"--config", dir.file("missing.ini")}).find("missing.ini: cannot open"),
            std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 10);
}

TEST(DurableWrite, ReplacesTheFileWholeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  write_file_durably(path, std::string("first"));
  write_file_durably(path, std::string("second version"));
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "second version");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
  const std::string message =
      error_of([&] { write_file_durably(dir.file("no/such/dir/out.txt"), std::string("x")); });
  EXPECT_NE(message.find("no/such/dir/out.txt: cannot create (No such file or directory)"),
            std::string::npos)
      << message;
}

TEST(DurableWrite, AFullDiskKeepsTheOldFileAndNamesTheReason) {
  TempDir dir;
  const fs::path disk = dir.path() / "disk";
  fs::create_directories(disk);
  if (testing::run_command("mount -t tmpfs -o size=64k dae_test_tmpfs " + disk.string())
          .exit_code != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  const std::string path = (disk / "summary.json").string();
  write_file_durably(path, std::string("old"));
  const std::string message =
      error_of([&] { write_file_durably(path, std::string(256 * 1024, 'x')); });
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(disk)) names.push_back(entry.path().filename());
  std::ifstream in(path);
  const std::string kept(std::istreambuf_iterator<char>(in), {});
  testing::run_command("umount " + disk.string());
  EXPECT_NE(message.find("summary.json: write failed (No space left on device)"),
            std::string::npos)
      << message;
  EXPECT_EQ(names, std::vector<std::string>{"summary.json"});
  EXPECT_EQ(kept, "old");
}

TEST(RunDirLockTest, ASecondHolderIsRefusedNamingTheFirstAndMayTakeItOnceReleased) {
  TempDir dir;
  {
    const RunDirLock first(dir.path().string());
    const std::string message = error_of([&] { RunDirLock second(dir.path().string()); });
    EXPECT_NE(message.find("in use by another dae_dist job (host "), std::string::npos) << message;
    EXPECT_NE(message.find(", pid " + std::to_string(::getpid()) + ")"), std::string::npos)
        << message;
  }
  EXPECT_EQ(error_of([&] { RunDirLock again(dir.path().string()); }), "");
}

// A data file made by our writer, then edited with raw HDF5 calls.
class HostileDataFile : public ::testing::Test {
 protected:
  void SetUp() override {
    write_data_file(path, testing::synthetic_split(40, 1), testing::synthetic_split(10, 2), "t");
  }
  // Replaces `dataset` by one of `dims` chunked by `chunk` of which only the first `rows_written`
  // rows are written (uint8, or float when `as_float`).
  void replace(const std::string& dataset, std::vector<hsize_t> dims, std::vector<hsize_t> chunk,
               hsize_t rows_written, bool as_float = false) {
    H5File file = H5File::open_read_write(path);
    ASSERT_GE(H5Ldelete(file.id(), dataset.c_str(), H5P_DEFAULT), 0);
    const H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                         H5Sclose);
    const H5Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(create.get(), static_cast<int>(chunk.size()), chunk.data());
    const hid_t type = as_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
    const H5Handle data(H5Dcreate2(file.id(), dataset.c_str(), type, space.get(), H5P_DEFAULT,
                                   create.get(), H5P_DEFAULT),
                        H5Dclose);
    ASSERT_TRUE(data.valid());
    if (rows_written > 0) {
      std::vector<hsize_t> start(dims.size(), 0), count = dims;
      count[0] = rows_written;
      std::size_t elements = 1;
      for (hsize_t n : count) elements *= n;
      std::vector<float> values(elements, 0.5f);
      const H5Handle file_space(H5Dget_space(data.get()), H5Sclose);
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                          nullptr);
      const H5Handle memory(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                            H5Sclose);
      ASSERT_GE(H5Dwrite(data.get(), H5T_NATIVE_FLOAT, memory.get(), file_space.get(),
                         H5P_DEFAULT, values.data()),
                0);
    }
    file.close();
  }
  std::string check_error() {
    return error_of([&] { check_data_file(path); });
  }
  TempDir dir;
  std::string path = dir.file("data.h5");
};

TEST_F(HostileDataFile, TheUntouchedFilePasses) { EXPECT_EQ(check_error(), ""); }

TEST_F(HostileDataFile, FloatImagesAreRefusedBeforeTraining) {
  replace("/test/images", {10, 28, 28}, {10, 28, 28}, 10, /*as_float=*/true);
  EXPECT_NE(check_error().find("/test/images: stored as float of 4 bytes, expected uint8"),
            std::string::npos)
      << check_error();
}

TEST_F(HostileDataFile, RowsDeclaredButNeverWrittenAreRefusedQuickly) {
  replace("/test/images", {100000000, 28, 28}, {1000, 28, 28}, 0);
  replace("/test/labels", {100000000}, {1000}, 0);
  const auto started = std::chrono::steady_clock::now();
  const std::string message = check_error();
  EXPECT_NE(message.find("/test/images: split into more than"), std::string::npos) << message;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 10);

  replace("/test/images", {5000, 28, 28}, {1000, 28, 28}, 1000);
  replace("/test/labels", {5000}, {1000}, 5000);
  EXPECT_NE(check_error().find("/test/images: holds 1 of its 5 chunks (rows declared but never "
                               "written)"),
            std::string::npos)
      << check_error();
}

TEST_F(HostileDataFile, TinyChunksAreRefusedBeforeTheirIndexIsWalked) {
  replace("/train/images", {40, 28, 28}, {1, 1, 1}, 40);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_NE(check_error().find("/train/images: split into more than"), std::string::npos)
      << check_error();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 10);
}

TEST_F(HostileDataFile, AnEmptyTestSplitIsRefusedBeforeTraining) {
  {
    H5File file = H5File::open_read_write(path);
    for (const char* name : {"/test/images", "/test/labels"})
      ASSERT_GE(H5Ldelete(file.id(), name, H5P_DEFAULT), 0);
    file.write<std::uint8_t>("/test/images", {0, 28, 28}, nullptr);
    file.write<std::uint8_t>("/test/labels", {0}, nullptr);
  }
  EXPECT_NE(check_error().find("data.h5: /test has no rows"), std::string::npos) << check_error();
}

TEST_F(HostileDataFile, AnotherOrAMissingFormatVersionIsRefused) {
  {
    H5File file = H5File::open_read_write(path);
    ASSERT_GE(H5Adelete(file.id(), "format_version"), 0);
    file.write_attribute("/", "format_version", std::int64_t{2});
  }
  EXPECT_NE(check_error().find("data format version 2, this dae_dist reads version 1"),
            std::string::npos)
      << check_error();
  {
    H5File file = H5File::open_read_write(path);
    ASSERT_GE(H5Adelete(file.id(), "format_version"), 0);
  }
  EXPECT_NE(check_error().find("no format_version attribute"), std::string::npos)
      << check_error();
}

TEST_F(HostileDataFile, AVirtualDatasetReadingAnotherFileIsRefused) {
  const std::string other = dir.file("other.h5");
  write_data_file(other, testing::synthetic_split(10, 3), testing::synthetic_split(10, 4), "o");
  {
    H5File file = H5File::open_read_write(path);
    ASSERT_GE(H5Ldelete(file.id(), "/test/images", H5P_DEFAULT), 0);
    const hsize_t dims[3] = {10, 28, 28};
    const H5Handle space(H5Screate_simple(3, dims, nullptr), H5Sclose);
    const H5Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    ASSERT_GE(H5Pset_virtual(create.get(), space.get(), other.c_str(), "/test/images",
                             space.get()),
              0);
    const H5Handle data(H5Dcreate2(file.id(), "/test/images", H5T_NATIVE_UINT8, space.get(),
                                   H5P_DEFAULT, create.get(), H5P_DEFAULT),
                        H5Dclose);
    ASSERT_TRUE(data.valid());
  }
  const std::string message = error_of([&] {
    check_data_file(path);
    Shard::read(path, "test", 0, 10);
  });
  EXPECT_NE(message.find("/test/images: a virtual dataset"), std::string::npos) << message;
}

TEST_F(HostileDataFile, AFilterThisHdf5LacksIsNamedNotCalledCorrupt) {
  {
    H5File file = H5File::open_read_write(path);
    ASSERT_GE(H5Ldelete(file.id(), "/test/images", H5P_DEFAULT), 0);
    const hsize_t dims[3] = {10, 28, 28};
    const H5Handle space(H5Screate_simple(3, dims, nullptr), H5Sclose);
    const H5Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(create.get(), 3, dims);
    // 32001 is Blosc's registered id, a plugin this build never loads; optional, so HDF5 writes
    // the dataset without applying it but records it in the pipeline.
    ASSERT_GE(H5Pset_filter(create.get(), 32001, H5Z_FLAG_OPTIONAL, 0, nullptr), 0);
    const H5Handle data(H5Dcreate2(file.id(), "/test/images", H5T_NATIVE_UINT8, space.get(),
                                   H5P_DEFAULT, create.get(), H5P_DEFAULT),
                        H5Dclose);
    ASSERT_TRUE(data.valid());
    const std::vector<std::uint8_t> pixels(10 * 28 * 28, 7);
    H5Dwrite(data.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, pixels.data());
  }
  EXPECT_NE(check_error().find("/test/images: stored with HDF5 filter 32001"), std::string::npos)
      << check_error();
}

TEST_F(HostileDataFile, AFileAnotherProcessIsWritingIsReportedAsLockedNotCorrupt) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t writer = ::fork();
  if (writer == 0) {  // holds the file open for writing, as a running dae_prepare would
    H5File file = H5File::open_read_write(path);
    (void)!::write(ready[1], "x", 1);
    ::sleep(30);
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  const std::string message = error_of([&] { H5File::open_read_only(path); });
  ::kill(writer, SIGKILL);
  ::waitpid(writer, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  if (message.empty()) GTEST_SKIP() << "HDF5 file locking is off here (HDF5_USE_FILE_LOCKING)";
  EXPECT_NE(message.find("data.h5: locked by another process that is writing it"),
            std::string::npos)
      << message;
}

TEST(HostileIdx, DirectoriesFifosAndTwoVersionsOfOneFileAreRefused) {
  TempDir dir;
  testing::write_idx_dir(dir.path(), testing::synthetic_split(5, 1),
                         testing::synthetic_split(5, 2), /*gzip=*/false);
  const std::string images = dir.file("train-images-idx3-ubyte");
  EXPECT_NE(error_of([&] { read_idx(dir.path().string()); }).find("is a directory"),
            std::string::npos);
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { read_idx(fifo); }).find("fifo: not a regular file"),
            std::string::npos);
  fs::copy_file(images, images + ".gz");
  EXPECT_NE(error_of([&] { read_mnist_split(dir.path().string(), "train"); })
                .find("train-images-idx3-ubyte: both it and train-images-idx3-ubyte.gz exist"),
            std::string::npos);
}

TEST(HostileIdx, JunkAfterTheGzipStreamIsRefusedAndASecondMemberIsRead) {
  TempDir dir;
  const std::vector<std::uint8_t> data = {1, 2, 3, 4, 5, 6};
  const std::vector<std::uint8_t> bytes = testing::idx_bytes({2, 3}, data);
  testing::write_gzip(dir.path() / "one.gz", bytes);
  std::ifstream in(dir.file("one.gz"), std::ios::binary);
  const std::string member(std::istreambuf_iterator<char>(in), {});
  std::ofstream(dir.file("junk.gz"), std::ios::binary) << member << "trailing junk";
  EXPECT_NE(error_of([&] { read_idx(dir.file("junk.gz")); })
                .find("junk.gz: 13 bytes after the gzip stream that are not another gzip member"),
            std::string::npos);
  // Two members (`cat a.gz b.gz`): the header and the first half, then the rest.
  const std::vector<std::uint8_t> head(bytes.begin(), bytes.end() - 3);
  const std::vector<std::uint8_t> tail(bytes.end() - 3, bytes.end());
  testing::write_gzip(dir.path() / "a.gz", head);
  testing::write_gzip(dir.path() / "b.gz", tail);
  ASSERT_EQ(testing::run_command("cat " + dir.file("a.gz") + " " + dir.file("b.gz") + " > " +
                                 dir.file("two.gz"))
                .exit_code,
            0);
  EXPECT_EQ(read_idx(dir.file("two.gz")).data, data);
  std::ofstream(dir.file("cut.gz"), std::ios::binary) << member.substr(0, member.size() - 6);
  EXPECT_NE(error_of([&] { read_idx(dir.file("cut.gz")); }).find("corrupt or truncated"),
            std::string::npos);
}

TEST(HostileIdx, AHeaderPromisingGigabytesIsRefusedBeforeTheyAreRead) {
  TempDir dir;
  // 3 000 000 images promised by a small gzip file of zeros.
  std::vector<std::uint8_t> bytes = testing::idx_bytes({3000000, 28, 28}, {});
  bytes.resize(bytes.size() + (4u << 20), 0);
  testing::write_gzip(dir.path() / "big.gz", bytes);
  const auto started = std::chrono::steady_clock::now();
  const std::string message = error_of([&] { read_idx(dir.file("big.gz")); });
  EXPECT_NE(message.find("big.gz: header promises more than"), std::string::npos) << message;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 10);
}

}  // namespace
}  // namespace dae
