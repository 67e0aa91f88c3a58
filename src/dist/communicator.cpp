#include "dae/dist/communicator.hpp"

#include <cstdio>
#include <exception>

#include "dae/core/error.hpp"

namespace dae {

bool Communicator::all_agree(bool ok) const {
  int all = ok ? 1 : 0;
  control_.all_reduce(&all, 1, MPI_INT, MPI_MIN, "a vote of all ranks");
  return all == 1;
}

double Communicator::max(double value) const {
  control_.all_reduce(&value, 1, MPI_DOUBLE, MPI_MAX, "a maximum over ranks");
  return value;
}

void Communicator::broadcast_text(std::string& text, int root) const {
  int length = static_cast<int>(text.size());
  control_.broadcast(&length, 1, MPI_INT, root, "a broadcast of text");
  DAE_CHECK(length >= 0, "broadcast_text: negative length");
  text.resize(static_cast<std::size_t>(length));
  control_.broadcast(text.data(), length, MPI_CHAR, root, "a broadcast of text");
}

namespace {

template <typename T>
std::vector<T> gather(const MpiComm& comm, const std::vector<T>& mine, MPI_Datatype type) {
  std::vector<T> all(comm.rank() == 0 ? mine.size() * static_cast<std::size_t>(comm.size()) : 0);
  comm.gather(mine.data(), static_cast<int>(mine.size()), type, all.data(), 0,
              "a gather to rank 0");
  return all;
}

}  // namespace

std::vector<std::int64_t> Communicator::gather_to_root(
    const std::vector<std::int64_t>& mine) const {
  return gather(control_, mine, MPI_INT64_T);
}

std::vector<std::uint8_t> Communicator::gather_to_root(
    const std::vector<std::uint8_t>& mine) const {
  return gather(control_, mine, MPI_UINT8_T);
}

void Communicator::run_collectively(const std::function<void()>& work) const {
  std::string failure;
  try {
    work();
  } catch (const CollectiveTimeout&) {
    throw;  // the others cannot be reached for a vote
  } catch (const std::exception& error) {
    failure = one_line(error);
    if (failure.empty()) failure = "unknown error";
  }
  // The lowest failing rank speaks for the job: every rank learns who it is, then its message.
  int first_failing = failure.empty() ? size() : rank();
  control_.all_reduce(&first_failing, 1, MPI_INT, MPI_MIN, "the vote after a collective step");
  if (first_failing == size()) return;

  broadcast_text(failure, first_failing);
  if (rank() == 0) {
    std::fprintf(stderr, "%s: %s\n", control_.program().c_str(), failure.c_str());
    std::fflush(stderr);
  }
  throw ReportedError(failure);
}

void Communicator::barrier() const { control_.barrier("a barrier"); }

}  // namespace dae
