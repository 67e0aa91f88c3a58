#include "dae/train/checkpoint.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "dae/core/config.hpp"
#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/core/signals.hpp"
#include "dae/train/fused_adam.hpp"
#include "dae/io/h5.hpp"

namespace dae {

namespace fs = std::filesystem;

namespace {

// Small datasets are one chunk; chunking is what lets HDF5 attach the Fletcher32 checksum.
constexpr H5Storage kChecked{1u << 20, 0, true};

std::vector<std::uint64_t> dims_of(const torch::Tensor& tensor) {
  return {tensor.sizes().begin(), tensor.sizes().end()};
}

std::string shape_text(const std::vector<std::uint64_t>& dims) {
  std::string text = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) text += ',';  // (a `"," + to_string` temporary trips GCC 12's -Wstringop-overflow)
    text += std::to_string(dims[i]);
  }
  return text + "]";
}

std::string libtorch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

void write_tensor(H5File& file, const std::string& name, const torch::Tensor& tensor) {
  const torch::Tensor host = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  file.write<float>(name, dims_of(host), host.data_ptr<float>(), kChecked);
}

void write_int64s(H5File& file, const std::string& name, const std::vector<std::int64_t>& values) {
  file.write<std::int64_t>(name, {values.size()}, values.data(), kChecked);
}

// Every non-empty dataset we write carries a Fletcher32 checksum (HDF5 cannot chunk an empty
// one); one without it was not written by us.
void require_checksum(const H5File& file, const std::string& name) {
  const std::vector<std::uint64_t> dims = file.dims(name);
  const bool empty = std::find(dims.begin(), dims.end(), 0) != dims.end();
  if (!empty && !file.has_checksum(name))
    throw Error(file.path() + ": " + name + ": no Fletcher32 checksum (every checkpoint dataset "
                "has one: not written by dae_dist, or altered)");
}

// Reads a float32 dataset into `target` (same shape required), on target's device.
void read_tensor(const H5File& file, const std::string& name, torch::Tensor& target) {
  const std::vector<std::uint64_t> expected = dims_of(target);
  if (!file.has(name)) throw Error(file.path() + ": " + name + ": missing");
  const std::vector<std::uint64_t> found = file.dims(name);
  if (found != expected)
    throw Error(file.path() + ": " + name + ": shape " + shape_text(found) +
                " does not match the model's " + shape_text(expected));
  require_checksum(file, name);
  std::vector<float> values = file.read<float>(name);
  // A valid checksum says the bytes are the ones written, not that they can be trained on.
  for (float value : values)
    if (!std::isfinite(value))
      throw Error(file.path() + ": " + name + ": holds a non-finite value (NaN or infinity)");
  torch::NoGradGuard no_grad;
  target.copy_(torch::from_blob(values.data(), target.sizes(), torch::kFloat32));
}

// Reads a dataset after checking its shape is `expected`: a crafted file cannot then make us
// allocate what its header claims, and the error names the dataset and both shapes.
template <typename T>
std::vector<T> read_shaped(const H5File& file, const std::string& name,
                           const std::vector<std::uint64_t>& expected) {
  if (!file.has(name)) throw Error(file.path() + ": " + name + ": missing");
  const std::vector<std::uint64_t> found = file.dims(name);
  if (found != expected)
    throw Error(file.path() + ": " + name + ": shape " + shape_text(found) + ", expected " +
                shape_text(expected));
  require_checksum(file, name);
  return file.read<T>(name);
}

std::int64_t read_one_int64(const H5File& file, const std::string& name) {
  return read_shaped<std::int64_t>(file, name, {1}).at(0);
}

// More ranks than any job runs: only a corrupt file claims them (and their per-rank state).
constexpr std::int64_t kMaxWorldSize = 1 << 16;
// Far above any LibTorch generator's state (CPU: 5 056 bytes, CUDA: 16).
constexpr std::uint64_t kMaxGeneratorBytes = 1 << 16;
// A progress line every step for 16 M steps: more only in a crafted file.
constexpr std::uint64_t kMaxHistoryRows = 1 << 24;

}  // namespace

std::vector<std::uint8_t> checkpoint_image(const std::string& name, torch::nn::Module& model,
                                           torch::optim::Adam& optimizer,
                                           const CheckpointData& data,
                                           const std::string& config_text) {
  const std::int64_t streams = data.virtual_shards > 0 ? data.virtual_shards : data.world_size;
  DAE_CHECK(data.world_size >= 1 && data.cursors.size() == static_cast<std::size_t>(streams) &&
                data.noise_states.size() == data.cursors.size(),
            name +
                ": checkpoint needs a cursor and a noise state for each of its ranks (or "
                "virtual shards)");
  H5File file = H5File::create_in_memory(name);
  for (const auto& item : model.named_parameters()) {
    write_tensor(file, "/model/" + item.key(), item.value());
    const auto found = optimizer.state().find(item.value().unsafeGetTensorImpl());
    if (found == optimizer.state().end()) continue;  // before the first step
    const auto& adam = static_cast<const torch::optim::AdamParamState&>(*found->second);
    const std::string group = "/optimizer/" + item.key();
    write_tensor(file, group + "/exp_avg", adam.exp_avg());
    write_tensor(file, group + "/exp_avg_sq", adam.exp_avg_sq());
    write_int64s(file, group + "/step", {adam.step()});
  }
  const auto& options =
      static_cast<const torch::optim::AdamOptions&>(optimizer.param_groups()[0].options());
  file.create_group("/optimizer");
  file.write_attribute("/optimizer", "lr", options.lr());
  file.write_attribute("/optimizer", "beta1", std::get<0>(options.betas()));
  file.write_attribute("/optimizer", "beta2", std::get<1>(options.betas()));
  file.write_attribute("/optimizer", "eps", options.eps());
  file.write_attribute("/optimizer", "weight_decay", options.weight_decay());

  write_int64s(file, "/state/step", {data.step});
  write_int64s(file, "/state/world_size", {data.world_size});
  // Only in invariant mode: a per-rank checkpoint stays the file it always was.
  if (data.virtual_shards > 0) write_int64s(file, "/state/virtual_shards", {data.virtual_shards});
  std::vector<std::int64_t> epochs, positions;
  std::vector<std::uint8_t> noise;
  const std::int64_t noise_bytes = data.noise_states.front().numel();
  for (std::size_t r = 0; r < data.cursors.size(); ++r) {
    epochs.push_back(data.cursors[r].epoch);
    positions.push_back(data.cursors[r].position);
    const torch::Tensor state = data.noise_states[r].contiguous();
    DAE_CHECK(state.numel() == noise_bytes, name + ": ranks' noise states differ in size");
    noise.insert(noise.end(), state.data_ptr<std::uint8_t>(),
                 state.data_ptr<std::uint8_t>() + noise_bytes);
  }
  write_int64s(file, "/state/epoch", epochs);
  write_int64s(file, "/state/position", positions);
  file.write<std::uint8_t>("/state/noise_rng",
                           {data.cursors.size(), static_cast<std::uint64_t>(noise_bytes)},
                           noise.data(), kChecked);
  file.write<double>("/state/last_loss", {1}, &data.last_loss, kChecked);
  std::vector<double> history;
  for (const auto& [step, loss] : data.loss_history) {
    history.push_back(static_cast<double>(step));
    history.push_back(loss);
  }
  file.write<double>("/state/loss_history", {data.loss_history.size(), 2}, history.data(),
                     kChecked);

  file.write_attribute("/", "format_version", kCheckpointFormatVersion);
  file.write_attribute("/", "libtorch_version", libtorch_version());
  file.write_attribute("/", "config", config_text);
  file.write_attribute("/", "complete", std::int64_t{1});  // written last
  std::vector<std::uint8_t> image = file.image();
  file.close();
  return image;
}

void write_checkpoint_file(const std::string& path, torch::nn::Module& model,
                           torch::optim::Adam& optimizer, const CheckpointData& data,
                           const std::string& config_text) {
  write_file_durably(path, checkpoint_image(path, model, optimizer, data, config_text));
}

Checkpointer::Checkpointer(const Communicator& comm, std::string run_dir, long keep,
                           std::string config_text)
    : comm_(comm),
      run_dir_(run_dir),
      directory_((fs::path(run_dir) / "checkpoints").string()),
      keep_(keep),
      config_text_(std::move(config_text)) {}

std::string Checkpointer::save(torch::nn::Module& model, torch::optim::Adam& optimizer,
                               const TrainState& state) {
  // Gather every rank's stream positions and noise generators to rank 0: one per rank, or in
  // invariant mode one per virtual shard (each rank holding V / W consecutive ones).
  const int world = comm_.size();
  const bool shards = state.virtual_shards > 0;
  const std::vector<BatchCursor> own_cursors =
      shards ? state.shard_cursors : std::vector<BatchCursor>{state.cursor};
  const std::vector<torch::Tensor> own_noise =
      shards ? state.shard_noise_states : std::vector<torch::Tensor>{state.noise_state};
  const int per_rank = static_cast<int>(own_cursors.size());
  std::vector<std::int64_t> mine;
  for (const BatchCursor& cursor : own_cursors) {
    mine.push_back(cursor.epoch);
    mine.push_back(cursor.position);
  }
  const std::vector<std::int64_t> cursors = comm_.gather_to_root(mine);
  const torch::Tensor noise = torch::cat(own_noise).contiguous();
  const auto* noise_begin = noise.data_ptr<std::uint8_t>();
  const std::vector<std::uint8_t> noise_states =
      comm_.gather_to_root(std::vector<std::uint8_t>(noise_begin, noise_begin + noise.numel()));
  const std::int64_t noise_bytes = own_noise.front().numel();
  CheckpointData saved;
  saved.step = state.step;
  saved.world_size = world;
  saved.virtual_shards = state.virtual_shards;
  if (comm_.rank() == 0) {
    for (int e = 0; e < per_rank * world; ++e) {
      saved.cursors.push_back({cursors[2 * e], cursors[2 * e + 1]});
      saved.noise_states.push_back(
          torch::from_blob(const_cast<std::uint8_t*>(noise_states.data()) + e * noise_bytes,
                           {noise_bytes}, torch::kUInt8));
    }
  }
  saved.last_loss = state.last_loss;
  saved.loss_history = state.loss_history;

  char name[32];
  std::snprintf(name, sizeof name, "ckpt_%08lld.h5", static_cast<long long>(state.step));
  const std::string path = (fs::path(directory_) / name).string();
  comm_.run_collectively([&] {
    if (comm_.rank() != 0) return;
    fs::create_directories(directory_);
    try {
      // Built in memory and written with write_file_durably: a full disk is then an ordinary
      // error with errno's reason, and HDF5 never has to fail half-way through writing a file
      // (after which HDF5 1.10 crashes at exit closing the broken file; see
      // tests/test_faults_cli.cpp, DiskFull).
      write_file_durably(path, checkpoint_image(path, model, optimizer, saved, config_text_));
    } catch (const std::exception& error) {
      throw Error(path + ": checkpoint not written: " + error.what());
    }
    // Only now that the new file is complete may the oldest go, beyond the newest `keep`.
    // (Checkpoints of steps after the one a run resumed from were set aside at the resume.)
    long kept = 0;
    for (const std::string& existing : list_checkpoints(fs::path(directory_).parent_path())) {
      if (++kept <= keep_) continue;
      std::error_code ignored;
      fs::remove(existing, ignored);
    }
  });
  return path;
}

void Checkpointer::record_stop(std::int64_t step, const std::string& checkpoint) {
  comm_.run_collectively([&] {
    if (comm_.rank() != 0) return;
    // Absolute: the record names the file whatever directory its reader runs in.
    write_file_durably((fs::path(run_dir_) / kStoppedFile).string(),
                       "{\n  \"step\": " + std::to_string(step) + ",\n  \"checkpoint\": " +
                           json_string(fs::absolute(checkpoint).string()) +
                           ",\n  \"exit_code\": " + std::to_string(kExitPreempted) + "\n}\n");
  });
}

void Checkpointer::clear_stop_record() {
  comm_.run_collectively([&] {
    if (comm_.rank() == 0) fs::remove(fs::path(run_dir_) / kStoppedFile);
  });
}

CheckpointData load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Adam& optimizer) {
  const H5File file = H5File::open_read_only(path);
  auto int_attribute = [&](const char* name) {
    try {
      return file.read_int_attribute("/", name);
    } catch (const Error&) {
      throw Error(path + ": not a complete dae_dist checkpoint (attribute " + name + " missing)");
    }
  };
  if (int_attribute("complete") != 1) throw Error(path + ": incomplete checkpoint");
  const std::int64_t version = int_attribute("format_version");
  if (version != kCheckpointFormatVersion)
    throw Error(path + ": checkpoint format version " + std::to_string(version) +
                ", this dae_dist reads version " + std::to_string(kCheckpointFormatVersion));

  // Every parameter present with its shape, and nothing the model does not have.
  const auto parameters = model.named_parameters();
  for (const auto& item : parameters) {
    torch::Tensor target = item.value();
    read_tensor(file, "/model/" + item.key(), target);
  }
  const std::uint64_t stored = file.child_count("/model");
  if (stored != parameters.size())
    throw Error(path + ": /model holds " + std::to_string(stored) + " parameters, the model has " +
                std::to_string(parameters.size()));

  for (const auto& item : parameters) {
    const std::string group = "/optimizer/" + item.key();
    if (!file.has(group + "/exp_avg")) continue;
    // Moments the optimizer already has are overwritten in place, as the parameters are: a
    // CUDA graph that captured the update keeps working on the same tensors.
    torch::optim::AdamParamState& adam = adam_state_of(optimizer, item.value());
    torch::Tensor exp_avg = adam.exp_avg();
    torch::Tensor exp_avg_sq = adam.exp_avg_sq();
    read_tensor(file, group + "/exp_avg", exp_avg);
    read_tensor(file, group + "/exp_avg_sq", exp_avg_sq);
    if (exp_avg_sq.lt(0).any().item<bool>())
      throw Error(path + ": " + group + "/exp_avg_sq: holds negative values (a second moment "
                  "is a mean of squares)");
    const std::int64_t adam_step = read_one_int64(file, group + "/step");
    if (adam_step < 0) throw Error(path + ": " + group + "/step: negative");
    adam.step(adam_step);
  }
  // Adam's hyper-parameters are stored for the record; the run's own configuration sets them, so
  // a resumed run may change its learning rate.

  CheckpointData data;
  try {
    data.config_text = file.read_string_attribute("/", "config");
  } catch (const Error&) {
    // Only for the record: a checkpoint without it still resumes.
  }
  data.step = read_one_int64(file, "/state/step");
  data.world_size = read_one_int64(file, "/state/world_size");
  if (data.step < 0) throw Error(path + ": /state/step: negative (" + std::to_string(data.step) + ")");
  if (data.world_size < 1 || data.world_size > kMaxWorldSize)
    throw Error(path + ": /state/world_size: " + std::to_string(data.world_size) +
                " is not a number of ranks (1 to " + std::to_string(kMaxWorldSize) + ")");
  if (file.has("/state/virtual_shards")) {
    data.virtual_shards = read_one_int64(file, "/state/virtual_shards");
    if (data.virtual_shards < 1 || data.virtual_shards > kMaxVirtualShards)
      throw Error(path + ": /state/virtual_shards: " + std::to_string(data.virtual_shards) +
                  " is not a number of virtual shards (1 to " + std::to_string(kMaxVirtualShards) +
                  ")");
  }
  // Per-rank positions, or in invariant mode per-virtual-shard ones.
  const auto world =
      static_cast<std::uint64_t>(data.virtual_shards > 0 ? data.virtual_shards : data.world_size);
  const auto epochs = read_shaped<std::int64_t>(file, "/state/epoch", {world});
  const auto positions = read_shaped<std::int64_t>(file, "/state/position", {world});
  // A CPU and a CUDA generator save states of different sizes; the trainer decides whether the
  // saved one fits its own (else it re-derives the stream), so only the bound is checked here.
  const auto noise_dims = file.dims("/state/noise_rng");
  if (noise_dims.size() != 2 || noise_dims[1] == 0 || noise_dims[1] > kMaxGeneratorBytes)
    throw Error(path + ": /state/noise_rng: shape " + shape_text(noise_dims) +
                " is not [ranks, generator bytes]");
  const std::uint64_t generator_bytes = noise_dims[1];
  const auto noise =
      read_shaped<std::uint8_t>(file, "/state/noise_rng", {world, generator_bytes});
  for (std::size_t r = 0; r < world; ++r) {
    if (epochs[r] < 0 || positions[r] < 0)
      throw Error(path + ": /state: rank " + std::to_string(r) + "'s data position is negative");
    data.cursors.push_back({epochs[r], positions[r]});
    data.noise_states.push_back(
        torch::from_blob(const_cast<std::uint8_t*>(noise.data()) + r * generator_bytes,
                         {static_cast<std::int64_t>(generator_bytes)}, torch::kUInt8)
            .clone());
  }
  data.last_loss = read_shaped<double>(file, "/state/last_loss", {1}).at(0);
  if (!std::isfinite(data.last_loss))
    throw Error(path + ": /state/last_loss: not a finite number");
  const auto history_dims = file.dims("/state/loss_history");
  if (history_dims.size() != 2 || history_dims[1] != 2)
    throw Error(path + ": /state/loss_history: shape " + shape_text(history_dims) +
                " is not [n, 2]");
  // One row per progress line: more rows than steps means a crafted header, refused before the
  // allocation it asks for.
  if (history_dims[0] > static_cast<std::uint64_t>(data.step) + 1 ||
      history_dims[0] > kMaxHistoryRows)
    throw Error(path + ": /state/loss_history: " + std::to_string(history_dims[0]) +
                " rows for a checkpoint of step " + std::to_string(data.step));
  const auto history = read_shaped<double>(file, "/state/loss_history", history_dims);
  for (std::size_t i = 0; i + 1 < history.size(); i += 2) {
    if (!std::isfinite(history[i]) || !std::isfinite(history[i + 1]) || history[i] < 0 ||
        history[i] > static_cast<double>(data.step))
      throw Error(path + ": /state/loss_history: row " + std::to_string(i / 2) +
                  " is not a (step, finite loss) pair of this run");
    data.loss_history.emplace_back(static_cast<std::int64_t>(history[i]), history[i + 1]);
  }
  return data;
}

std::string set_aside_later_checkpoints(const std::string& run_dir, std::int64_t step) {
  char own[32];
  std::snprintf(own, sizeof own, "ckpt_%08lld.h5", static_cast<long long>(step));
  const fs::path directory = fs::path(run_dir) / "checkpoints";
  std::vector<std::string> later;
  for (const std::string& existing : list_checkpoints(run_dir))
    if (fs::path(existing).filename().string() > own) later.push_back(existing);
  if (later.empty()) return "";
  // A unique folder per resume: an earlier abandoned line is never overwritten.
  fs::path aside = directory / ("abandoned-" + std::to_string(step));
  for (int attempt = 2; fs::exists(aside); ++attempt)
    aside = directory / ("abandoned-" + std::to_string(step) + "-" + std::to_string(attempt));
  fs::create_directories(aside);
  for (const std::string& existing : later)
    fs::rename(existing, aside / fs::path(existing).filename());
  return aside.string();
}

std::string read_checkpoint_config(const std::string& path) {
  const H5File file = H5File::open_read_only(path);
  try {
    return file.read_string_attribute("/", "config");
  } catch (const Error&) {
    return "";
  }
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> paths;
  const fs::path directory = fs::path(run_dir) / "checkpoints";
  std::error_code error;
  if (!fs::is_directory(directory, error)) return paths;
  static const std::regex kName(R"(ckpt_\d{8}\.h5)");
  for (const auto& entry : fs::directory_iterator(directory, error))
    if (std::regex_match(entry.path().filename().string(), kName))
      paths.push_back(entry.path().string());
  // Zero-padded step numbers sort by name; newest first.
  std::sort(paths.rbegin(), paths.rend());
  return paths;
}

}  // namespace dae
