// A main() for fuzz targets in builds without libFuzzer: runs LLVMFuzzerTestOneInput once on
// each file named on the command line (as libFuzzer does with file arguments), so the seed
// corpus and every saved crash input replay in the ordinary test suite with any compiler.
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {
// libFuzzer's -timeout: an input that takes longer is a hang, reported as a failure at once.
constexpr unsigned kSecondsPerInput = 10;
const char* current_input = "";
void on_alarm(int) {
  const char message[] = "replay: an input took longer than 10 s (a hang): ";
  (void)!::write(2, message, sizeof message - 1);
  (void)!::write(2, current_input, std::strlen(current_input));
  (void)!::write(2, "\n", 1);
  std::_Exit(1);
}
}  // namespace

int main(int argc, char** argv) {
  int replayed = 0;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;  // libFuzzer flags: meaningless here
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read %s\n", argv[i]);
      return 1;
    }
    const std::vector<std::uint8_t> bytes(std::istreambuf_iterator<char>(in), {});
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", argv[i], bytes.size());
    current_input = argv[i];
    std::signal(SIGALRM, on_alarm);
    ::alarm(kSecondsPerInput);
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ::alarm(0);
    ++replayed;
  }
  std::fprintf(stderr, "replay: %d inputs, all rejected cleanly or accepted\n", replayed);
  return replayed > 0 ? 0 : 1;
}
