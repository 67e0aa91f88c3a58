// Checkpoints that disagree with the model or with themselves, one disagreement at a time: each
// is refused with one dae::Error line naming the file, the first mismatching object and both
// sides. Complements test_checkpoint.cpp (shapes of /model, versions, foreign files).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <limits>

#include "dae/train/checkpoint.hpp"
#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/io/h5.hpp"
#include "dae/model/model.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

constexpr H5Storage kChecked{1u << 20, 0, true};

// A complete checkpoint of ConvDae for `world` ranks, written by the project's writer; `tweak`
// then edits the file.
void write_checkpoint(const std::string& path, int world,
                      const std::function<void(H5File&)>& tweak = {}) {
  torch::manual_seed(5);
  ConvDae model;
  torch::optim::Adam adam(model->parameters());
  torch::mse_loss(model->forward(torch::rand({2, 1, 28, 28})), torch::zeros({2, 1, 28, 28}))
      .backward();
  adam.step();
  CheckpointData data;
  data.step = 3;
  data.world_size = world;
  data.last_loss = 0.1;
  for (int r = 0; r < world; ++r) {
    data.cursors.push_back({0, 0});
    data.noise_states.push_back(at::make_generator<at::CPUGeneratorImpl>().get_state());
  }
  write_checkpoint_file(path, *model, adam, data, "test");
  if (!tweak) return;
  H5File file = H5File::open_read_write(path);
  tweak(file);
  file.close();
}

std::string load_error(const std::string& path) { return testing::checkpoint_load_error(path); }

void remove_object(H5File& file, const std::string& name) {
  ASSERT_GE(H5Ldelete(file.id(), name.c_str(), H5P_DEFAULT), 0) << name;
}

class CheckpointMismatch : public ::testing::Test {
 protected:
  // Writes a checkpoint with `tweak` applied and returns the loader's error (empty: loaded).
  std::string refusal(const std::function<void(H5File&)>& tweak, int world = 2) {
    const std::string path = dir.file("ckpt.h5");
    write_checkpoint(path, world, tweak);
    return load_error(path);
  }
  testing::TempDir dir;
};

TEST_F(CheckpointMismatch, TheUntouchedCheckpointLoads) {
  // The control: every refusal below is caused by its one edit, not by the writer.
  EXPECT_EQ(refusal({}), "");
  EXPECT_EQ(refusal({}, 4), "");
}

TEST_F(CheckpointMismatch, ARenamedParameterIsNamedAsMissing) {
  const std::string message = refusal([](H5File& file) {
    ASSERT_GE(H5Lmove(file.id(), "/model/encoder2.bias", file.id(), "/model/encoder2.offset",
                      H5P_DEFAULT, H5P_DEFAULT),
              0);
  });
  EXPECT_NE(message.find("ckpt.h5: /model/encoder2.bias: missing"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST_F(CheckpointMismatch, AnExtraParameterIsCounted) {
  const std::string message = refusal([](H5File& file) {
    const float value = 1;
    file.write<float>("/model/encoder3.weight", {1}, &value, kChecked);
  });
  EXPECT_NE(message.find("/model holds 7 parameters, the model has 6"), std::string::npos)
      << message;
}

TEST_F(CheckpointMismatch, AnOptimizerMomentOfAnotherShapeIsNamedWithBothShapes) {
  const std::string message = refusal([](H5File& file) {
    remove_object(file, "/optimizer/decoder1.weight/exp_avg_sq");
    const std::vector<float> values(16 * 32 * 25, 0.f);
    file.write<float>("/optimizer/decoder1.weight/exp_avg_sq", {16, 32, 5, 5}, values.data(),
                      kChecked);
  });
  EXPECT_NE(message.find("/optimizer/decoder1.weight/exp_avg_sq: shape [16,32,5,5] does not "
                         "match the model's [32,16,5,5]"),
            std::string::npos)
      << message;
}

TEST_F(CheckpointMismatch, AnAdamStepCountThatIsNotOneValueIsRefused) {
  const std::string message = refusal([](H5File& file) {
    remove_object(file, "/optimizer/encoder1.bias/step");
    const std::int64_t steps[2] = {3, 3};
    file.write<std::int64_t>("/optimizer/encoder1.bias/step", {2}, steps, kChecked);
  });
  EXPECT_NE(message.find("/optimizer/encoder1.bias/step: shape [2], expected [1]"),
            std::string::npos)
      << message;
}

TEST_F(CheckpointMismatch, PerRankStateOfAnotherSizeThanTheWorldIsRefused) {
  const std::string epochs = refusal([](H5File& file) {
    remove_object(file, "/state/epoch");
    const std::int64_t three[3] = {0, 0, 0};
    file.write<std::int64_t>("/state/epoch", {3}, three, kChecked);
  });
  EXPECT_NE(epochs.find("/state/epoch: shape [3], expected [2]"), std::string::npos) << epochs;

  // A state per rank is required; its size may differ (CPU and CUDA generators differ), within
  // a bound, and the trainer re-derives a stream whose state does not fit its generator.
  const auto generator_bytes = at::make_generator<at::CPUGeneratorImpl>().get_state().numel();
  const std::string noise = refusal([generator_bytes](H5File& file) {
    remove_object(file, "/state/noise_rng");
    const std::vector<std::uint8_t> bytes(3 * generator_bytes, 0);
    file.write<std::uint8_t>("/state/noise_rng", {3, static_cast<std::uint64_t>(generator_bytes)},
                             bytes.data(), kChecked);
  });
  EXPECT_NE(noise.find("/state/noise_rng: shape [3," + std::to_string(generator_bytes) +
                       "], expected [2," + std::to_string(generator_bytes) + "]"),
            std::string::npos)
      << noise;
  const std::string huge = refusal([](H5File& file) {
    remove_object(file, "/state/noise_rng");
    const std::vector<std::uint8_t> bytes(2 * 70000, 0);
    file.write<std::uint8_t>("/state/noise_rng", {2, 70000}, bytes.data(), kChecked);
  });
  EXPECT_NE(huge.find("/state/noise_rng: shape [2,70000] is not [ranks, generator bytes]"),
            std::string::npos)
      << huge;
}

TEST_F(CheckpointMismatch, AnEmptyLossOrAnImpossibleWorldSizeIsAnErrorNotACrash) {
  // Before, an empty /state/last_loss escaped as std::out_of_range from vector::at.
  const std::string loss = refusal([](H5File& file) {
    remove_object(file, "/state/last_loss");
    file.write<double>("/state/last_loss", {0}, nullptr, kChecked);
  });
  EXPECT_NE(loss.find("/state/last_loss: shape [0], expected [1]"), std::string::npos) << loss;

  for (const std::int64_t world : {std::int64_t{0}, std::int64_t{1} << 40}) {
    const std::string message = refusal([world](H5File& file) {
      remove_object(file, "/state/world_size");
      file.write<std::int64_t>("/state/world_size", {1}, &world, kChecked);
    });
    EXPECT_NE(message.find("/state/world_size: " + std::to_string(world) +
                           " is not a number of ranks"),
              std::string::npos)
        << message;
  }
}

TEST_F(CheckpointMismatch, LinksToOtherObjectsOrFilesAreNotFollowed) {
  // An external link would make HDF5 open whatever file the checkpoint names.
  const std::string external = refusal([](H5File& file) {
    remove_object(file, "/model/encoder1.bias");
    ASSERT_GE(H5Lcreate_external("/etc/hostname", "/x", file.id(), "/model/encoder1.bias",
                                 H5P_DEFAULT, H5P_DEFAULT),
              0);
  });
  EXPECT_NE(external.find("/model/encoder1.bias: a soft or external link (not followed)"),
            std::string::npos)
      << external;
  const std::string soft = refusal([](H5File& file) {
    remove_object(file, "/model/encoder1.bias");
    ASSERT_GE(H5Lcreate_soft("/model/decoder1.weight", file.id(), "/model/encoder1.bias",
                             H5P_DEFAULT, H5P_DEFAULT),
              0);
  });
  EXPECT_NE(soft.find("a soft or external link"), std::string::npos) << soft;
}

// Rewrites float32 dataset `name` with `edit` applied to its values, keeping its checksum.
void rewrite_floats(H5File& file, const std::string& name,
                    const std::function<void(std::vector<float>&)>& edit) {
  const std::vector<std::uint64_t> dims = file.dims(name);
  std::vector<float> values = file.read<float>(name);
  edit(values);
  remove_object(file, name);
  file.write<float>(name, dims, values.data(), kChecked);
}

TEST_F(CheckpointMismatch, NonFiniteWeightsOrMomentsAreRefusedThoughTheirChecksumsVerify) {
  for (const char* name : {"/model/encoder1.weight", "/optimizer/decoder2.weight/exp_avg"})
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity()}) {
      const std::string message = refusal(
          [&](H5File& file) { rewrite_floats(file, name, [&](auto& v) { v.at(1) = bad; }); });
      EXPECT_NE(message.find(std::string(name) + ": holds a non-finite value"), std::string::npos)
          << message;
    }
}

TEST_F(CheckpointMismatch, ANegativeSecondMomentIsRefused) {
  const std::string message = refusal([](H5File& file) {
    rewrite_floats(file, "/optimizer/encoder2.weight/exp_avg_sq",
                   [](auto& v) { v.at(0) = -1e-3f; });
  });
  EXPECT_NE(message.find("/optimizer/encoder2.weight/exp_avg_sq: holds negative values"),
            std::string::npos)
      << message;
}

TEST_F(CheckpointMismatch, ADatasetWithoutItsChecksumIsRefused) {
  const std::string message = refusal([](H5File& file) {
    const double loss = 0.1;
    remove_object(file, "/state/last_loss");
    file.write<double>("/state/last_loss", {1}, &loss);  // contiguous: no Fletcher32
  });
  EXPECT_NE(message.find("/state/last_loss: no Fletcher32 checksum"), std::string::npos)
      << message;
}

TEST_F(CheckpointMismatch, ALossHistoryDeclaringMoreRowsThanStepsIsRefusedBeforeReading) {
  const auto started = std::chrono::steady_clock::now();
  const std::string message = refusal([](H5File& file) {
    remove_object(file, "/state/loss_history");
    // 10^9 rows declared, none written: reading them would allocate 16 GB.
    const hsize_t dims[2] = {1000000000, 2}, chunk[2] = {1 << 16, 2};
    const H5Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
    const H5Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(create.get(), 2, chunk);
    H5Pset_fletcher32(create.get());
    const H5Handle data(H5Dcreate2(file.id(), "/state/loss_history", H5T_NATIVE_DOUBLE,
                                   space.get(), H5P_DEFAULT, create.get(), H5P_DEFAULT),
                        H5Dclose);
    ASSERT_TRUE(data.valid());
  });
  EXPECT_NE(message.find("/state/loss_history: 1000000000 rows for a checkpoint of step 3"),
            std::string::npos)
      << message;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 30);
}

TEST(CheckpointCrashingHdf5, IsRefusedWithOneLineInsteadOfKillingTheProcess) {
  // Found by fuzz_checkpoint: a chunk dimension of 0 makes HDF5 1.10 divide by zero inside
  // H5Dopen. The forked probe in H5File::open_read_only takes the crash instead of this process.
  const std::string path = std::string(DAE_SOURCE_DIR) +
                           "/fuzz/regressions/checkpoint/hdf5_zero_chunk_dimension_divides_by_zero_on_open";
  const std::string message = load_error(path);
  EXPECT_NE(message.find(path + ": corrupt file (the HDF5 library "), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(BatchOrderCursor, APositionOutsideTheShardIsAnErrorNotAnOutOfBoundsRead) {
  // A cursor restored from a checkpoint of a larger data file points past this shard.
  BatchOrder order(10, 1, 0);
  for (const BatchCursor cursor : {BatchCursor{0, 11}, BatchCursor{0, -1}, BatchCursor{-1, 0}}) {
    BatchCursor copy = cursor;
    try {
      order.next(4, copy);
      ADD_FAILURE() << "accepted position " << cursor.position << " of epoch " << cursor.epoch;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("outside this rank's 10-row shard"),
                std::string::npos)
          << error.what();
    }
  }
  BatchCursor at_end{0, 10};  // the end of an epoch is a valid place to be
  EXPECT_EQ(order.next(4, at_end).size(0), 4);
  EXPECT_EQ(at_end.epoch, 1);
}

}  // namespace
}  // namespace dae
