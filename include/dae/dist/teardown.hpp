// defines: dae::CollectiveTeardown (release a resource collectively on a normal exit, abort it
//          locally when a failure unwinds the stack)
#pragma once

#include <exception>
#include <functional>
#include <utility>

namespace dae {

// Some resources end with a collective call: ncclCommDestroy (an intra-node barrier), a
// communicator's closing barrier. When one rank fails alone, its exception unwinds the stack
// before run_job can end the job, and a collective teardown on the way then waits for peers
// that are still in the previous collective, or already gone: the job hangs instead of ending.
// A CollectiveTeardown runs `release` when its owner goes out of scope normally and `abort`
// (local, never waits for a peer) when it is destroyed by an exception's unwinding, which
// std::uncaught_exceptions() tells apart (more in flight than when it was made), or after
// mark_failed(). Never throws from its destructor.
class CollectiveTeardown {
 public:
  CollectiveTeardown(std::function<void()> release, std::function<void()> abort)
      : release_(std::move(release)),
        abort_(std::move(abort)),
        exceptions_at_start_(std::uncaught_exceptions()) {}
  ~CollectiveTeardown() {
    try {
      if (failed_ || std::uncaught_exceptions() > exceptions_at_start_) {
        if (abort_) abort_();
      } else if (release_) {
        release_();
      }
    } catch (...) {  // nothing may leave a destructor; the job is ending or already has
    }
  }
  CollectiveTeardown(const CollectiveTeardown&) = delete;
  CollectiveTeardown& operator=(const CollectiveTeardown&) = delete;

  // A call on the resource failed: its pending work may never complete, so abort, even when
  // the owner is later destroyed on a normal path.
  void mark_failed() { failed_ = true; }
  // Whether the destructor will abort if it ran now (for tests and logs).
  bool would_abort() const { return failed_ || std::uncaught_exceptions() > exceptions_at_start_; }

 private:
  std::function<void()> release_;
  std::function<void()> abort_;
  int exceptions_at_start_;
  bool failed_ = false;
};

}  // namespace dae
