// dae_export: writes a trained conv network (a checkpoint, or a run's newest one) as ONNX or
// safetensors, for inference without this project (onnxruntime, PyTorch).
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/io/safetensors.hpp"
#include "dae/model/export_spec.hpp"
#include "dae/train/trained_model.hpp"
#ifdef DAE_WITH_ONNX
#include "dae/io/onnx_writer.hpp"
#endif

namespace {

namespace po = boost::program_options;

constexpr const char* kUsage =
    "usage: dae_export (--checkpoint CKPT | --run-dir DIR) --format onnx|safetensors --out FILE\n"
    "                  [--overwrite]\n"
    "  Writes the trained conv network: ONNX (opset 17; batch, height and width dynamic) or\n"
    "  safetensors (the weights, with the architecture in the metadata, from which\n"
    "  docs/safetensors_to_pytorch.py rebuilds it in PyTorch). Its input: [batch, 1, H, W]\n"
    "  float32, pixel / 255; H and W multiples of 4.\n";

struct ExportArgs {
  std::string checkpoint, run_dir, format, out;
  bool overwrite = false;
};

// The parsed command line, or nothing after --help.
std::optional<ExportArgs> parse_args(int argc, char** argv) {
  ExportArgs args;
  po::options_description options("options");
  options.add_options()("help,h", "print this help and exit")(
      "checkpoint", po::value<std::string>(&args.checkpoint), "the checkpoint to export")(
      "run-dir", po::value<std::string>(&args.run_dir), "export the run's newest checkpoint")(
      "format", po::value<std::string>(&args.format), "onnx | safetensors")(
      "out", po::value<std::string>(&args.out), "the file to write")(
      "overwrite", po::bool_switch(&args.overwrite), "replace --out if it exists");
  po::variables_map values;
  po::store(po::command_line_parser(argc, argv).options(options).run(), values);
  if (values.count("help")) {
    std::ostringstream help;
    help << kUsage << options;
    std::fputs(help.str().c_str(), stdout);
    return std::nullopt;
  }
  po::notify(values);
  if (args.checkpoint.empty() == args.run_dir.empty())
    throw po::error("give one of --checkpoint and --run-dir");
  if (args.format.empty() || args.out.empty())
    throw po::error("--format and --out are both required");
  if (args.format != "onnx" && args.format != "safetensors")
    throw po::error("--format: '" + args.format + "' is not one of onnx, safetensors");
  return args;
}

// Refuses an --out that exists (unless --overwrite) and one that is the checkpoint itself.
void check_out(const ExportArgs& args, const std::string& checkpoint) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  if (!fs::exists(args.out, ignored)) return;
  if (fs::equivalent(args.out, checkpoint, ignored))
    throw dae::Error("--out " + args.out + ": is the checkpoint");
  if (!args.overwrite) throw dae::Error("--out " + args.out + ": exists (--overwrite replaces it)");
}

std::string file_bytes(const std::string& format, const dae::NetworkSpec& network) {
  if (format == "safetensors") return dae::safetensors_bytes(network);
#ifdef DAE_WITH_ONNX
  return dae::onnx_model_bytes(network);
#else
  throw dae::Error(
      "--format onnx: this dae_export was built without ONNX (install libonnx-dev and "
      "libprotobuf-dev, then configure again)");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<ExportArgs> args;
  try {
    args = parse_args(argc, argv);
  } catch (const po::error& error) {
    std::fprintf(stderr, "dae_export: %s\n%s", error.what(), kUsage);
    return 2;
  }
  if (!args) return 0;
  try {
    const std::string checkpoint =
        args->checkpoint.empty() ? dae::newest_checkpoint(args->run_dir) : args->checkpoint;
    check_out(*args, checkpoint);
    const dae::TrainedModel trained = dae::load_trained_model(checkpoint);
    auto* conv = dynamic_cast<dae::ConvDaeImpl*>(trained.model.get());
    if (conv == nullptr)
      throw dae::Error(checkpoint + ": an " + dae::name_of(trained.options.kind) +
                       " model; dae_export writes the conv network only");
    dae::NetworkSpec network = dae::export_spec(*conv);
    network.producer = "dae_export";
    network.step = trained.step;
    dae::write_file_durably(args->out, file_bytes(args->format, network));
    std::printf("dae_export: wrote %s (%s, step %lld, from %s)\n", args->out.c_str(),
                args->format.c_str(), static_cast<long long>(trained.step), checkpoint.c_str());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dae_export: %s\n", error.what());
    return 1;
  }
  return 0;
}
