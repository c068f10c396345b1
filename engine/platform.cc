// The process-wide V8 platform: initialised once, with the page allocator that notices when the
// host fails to provide memory. It must never be torn down while instances exist.
#include "engine/platform.h"

#include <libplatform/libplatform.h>
#include <sys/mman.h>
#include <v8.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"

namespace tandem::engine {
namespace {

thread_local HostMemoryWatch* current_watch = nullptr;
std::atomic<size_t> failure_threshold_for_testing{0};

// A reservation of at least this many bytes, made with no access, is a guest's linear memory.
// With the trap handler on (InitializeV8 insists), V8 10.2 reserves every 32-bit wasm memory as
// one 10 GiB region (the 4 GiB a guest can address plus guard regions, so that page faults do the
// bounds checks), whatever the memory's maximum, and commits its pages inside it as it grows.
// V8's own reservations are far smaller: heap pages (256 KiB), large objects (bounded by the
// isolate's heap limit), the code range (128 MiB) and wasm code spaces (at most 1 GiB). The
// thread's HostMemoryWatch cannot tell them apart: heap pages and compiled code are committed
// during guest calls and instantiations too. tests/engine/memory_budget_test.cc checks that
// exactly the linear memory is accounted.
constexpr size_t kGuestReservationMinBytes = size_t{8} << 30;

uintptr_t Address(void* pointer) { return reinterpret_cast<uintptr_t>(pointer); }

// Forwards to V8's own page allocator, reports failures to the calling thread's watch, and
// accounts guest memory commits in `ledger`, refusing those that would pass the budget.
// Threading: V8 calls it from any thread; its state is the wrapped allocator (itself
// thread-safe), the ledger (thread-safe) and the atomic test threshold.
class WatchedPageAllocator final : public v8::PageAllocator {
 public:
  WatchedPageAllocator(v8::PageAllocator& inner, GuestMemoryLedger& ledger)
      : inner_(inner), ledger_(ledger) {}

  size_t AllocatePageSize() override { return inner_.AllocatePageSize(); }
  size_t CommitPageSize() override { return inner_.CommitPageSize(); }
  void SetRandomMmapSeed(int64_t seed) override { inner_.SetRandomMmapSeed(seed); }
  void* GetRandomMmapAddr() override { return inner_.GetRandomMmapAddr(); }

  void* AllocatePages(void* address, size_t length, size_t alignment, Permission access) override {
    if (InjectFailure(length)) {
      HostMemoryWatch::RecordFailureOnThisThread(
          HostMemoryWatch::Failure::kHost,
          absl::StrCat("reservation of ", length, " bytes failed (injected)"));
      return nullptr;
    }
    void* result = inner_.AllocatePages(address, length, alignment, access);
    if (result == nullptr) {
      HostMemoryWatch::RecordFailureOnThisThread(
          HostMemoryWatch::Failure::kHost,
          absl::StrCat("reservation of ", length, " bytes failed"));
    } else if (access == Permission::kNoAccess && length >= kGuestReservationMinBytes) {
      ledger_.AddReservation(Address(result), length);
    }
    return result;
  }
  // The ledger forgets a range before the system does: once unmapped, another thread may be
  // given the same addresses for a new reservation.
  bool FreePages(void* address, size_t length) override {
    ledger_.FreeRange(Address(address), length);
    return inner_.FreePages(address, length);
  }
  bool ReleasePages(void* address, size_t length, size_t new_length) override {
    ledger_.TrimReservation(Address(address), length, new_length);
    return inner_.ReleasePages(address, length, new_length);
  }
  bool SetPermissions(void* address, size_t length, Permission permissions) override {
    if (permissions == Permission::kNoAccess) {
      const bool ok = inner_.SetPermissions(address, length, permissions);
      if (ok) ledger_.Uncommit(Address(address), length);
      return ok;
    }
    if (InjectFailure(length)) {
      HostMemoryWatch::RecordFailureOnThisThread(
          HostMemoryWatch::Failure::kHost,
          absl::StrCat("commit of ", length, " bytes failed (injected)"));
      return false;
    }
    // Only a commit inside a watch may be refused: the watch turns the refusal into a failed
    // call, whatever V8 answers the guest. Elsewhere a refusal could reach a guest unnoticed.
    std::vector<std::pair<uintptr_t, uintptr_t>> added;
    const GuestMemoryLedger::Commit commit =
        ledger_.TryCommit(Address(address), length, HostMemoryWatch::ActiveOnThisThread(), &added);
    if (commit == GuestMemoryLedger::Commit::kRefused) {
      const GuestMemoryLedger::Usage usage = ledger_.usage();
      HostMemoryWatch::RecordFailureOnThisThread(
          HostMemoryWatch::Failure::kBudget,
          absl::StrCat("a commit of guest memory would pass the host memory budget: ",
                       usage.committed_bytes, " of ", usage.budget_bytes,
                       " bytes committed by all instances, ", length, " bytes asked"));
      return false;
    }
    const bool ok = inner_.SetPermissions(address, length, permissions);
    if (!ok) {
      for (const auto& [from, to] : added) ledger_.Uncommit(from, to - from);
      HostMemoryWatch::RecordFailureOnThisThread(
          HostMemoryWatch::Failure::kHost, absl::StrCat("commit of ", length, " bytes failed"));
    }
    return ok;
  }
  // Discarded pages stay accessible: a guest touching them again gets memory without another
  // commit, so they stay on the budget until decommitted or freed.
  bool DiscardSystemPages(void* address, size_t size) override {
    return inner_.DiscardSystemPages(address, size);
  }
  bool DecommitPages(void* address, size_t size) override {
    const bool ok = inner_.DecommitPages(address, size);
    if (ok) ledger_.Uncommit(Address(address), size);
    return ok;
  }
  bool ReserveForSharedMemoryMapping(void* address, size_t size) override {
    return inner_.ReserveForSharedMemoryMapping(address, size);
  }
  std::unique_ptr<SharedMemory> AllocateSharedPages(size_t length,
                                                    const void* original_address) override {
    return inner_.AllocateSharedPages(length, original_address);
  }
  bool CanAllocateSharedPages() override { return inner_.CanAllocateSharedPages(); }

 private:
  static bool InjectFailure(size_t length) {
    size_t threshold = failure_threshold_for_testing.load(std::memory_order_relaxed);
    return threshold != 0 && current_watch != nullptr && length > threshold;
  }

  v8::PageAllocator& inner_;
  GuestMemoryLedger& ledger_;
};

// libplatform's default platform with the watched page allocator in front. Everything else is
// forwarded unchanged. libplatform's free functions (PumpMessageLoop, NotifyIsolateShutdown)
// cast their argument to the default platform, so they are always given `inner_`.
class TandemPlatform final : public v8::Platform {
 public:
  explicit TandemPlatform(std::unique_ptr<v8::Platform> inner)
      : inner_(std::move(inner)), page_allocator_(*inner_->GetPageAllocator(), ledger_) {}

  v8::Platform& inner() { return *inner_; }
  GuestMemoryLedger& ledger() { return ledger_; }

  v8::PageAllocator* GetPageAllocator() override { return &page_allocator_; }
  v8::ZoneBackingAllocator* GetZoneBackingAllocator() override {
    return inner_->GetZoneBackingAllocator();
  }
  void OnCriticalMemoryPressure() override { inner_->OnCriticalMemoryPressure(); }
  bool OnCriticalMemoryPressure(size_t length) override {
    return inner_->OnCriticalMemoryPressure(length);
  }
  int NumberOfWorkerThreads() override { return inner_->NumberOfWorkerThreads(); }
  std::shared_ptr<v8::TaskRunner> GetForegroundTaskRunner(v8::Isolate* isolate) override {
    return inner_->GetForegroundTaskRunner(isolate);
  }
  void CallOnWorkerThread(std::unique_ptr<v8::Task> task) override {
    inner_->CallOnWorkerThread(std::move(task));
  }
  void CallBlockingTaskOnWorkerThread(std::unique_ptr<v8::Task> task) override {
    inner_->CallBlockingTaskOnWorkerThread(std::move(task));
  }
  void CallLowPriorityTaskOnWorkerThread(std::unique_ptr<v8::Task> task) override {
    inner_->CallLowPriorityTaskOnWorkerThread(std::move(task));
  }
  void CallDelayedOnWorkerThread(std::unique_ptr<v8::Task> task, double delay_in_seconds) override {
    inner_->CallDelayedOnWorkerThread(std::move(task), delay_in_seconds);
  }
  bool IdleTasksEnabled(v8::Isolate* isolate) override { return inner_->IdleTasksEnabled(isolate); }
  std::unique_ptr<v8::JobHandle> PostJob(v8::TaskPriority priority,
                                         std::unique_ptr<v8::JobTask> job_task) override {
    return inner_->PostJob(priority, std::move(job_task));
  }
  double MonotonicallyIncreasingTime() override { return inner_->MonotonicallyIncreasingTime(); }
  double CurrentClockTimeMillis() override { return inner_->CurrentClockTimeMillis(); }
  StackTracePrinter GetStackTracePrinter() override { return inner_->GetStackTracePrinter(); }
  v8::TracingController* GetTracingController() override { return inner_->GetTracingController(); }
  void DumpWithoutCrashing() override { inner_->DumpWithoutCrashing(); }

 private:
  std::unique_ptr<v8::Platform> inner_;
  GuestMemoryLedger ledger_;
  WatchedPageAllocator page_allocator_;
};

// Set once under `init_once`, never freed: V8 cannot be re-initialised in a process.
absl::once_flag init_once;
TandemPlatform* platform = nullptr;
absl::Status* init_status = nullptr;

}  // namespace

HostMemoryWatch::HostMemoryWatch() : outer_(current_watch) { current_watch = this; }

HostMemoryWatch::~HostMemoryWatch() { current_watch = outer_; }

bool HostMemoryWatch::ActiveOnThisThread() { return current_watch != nullptr; }

void HostMemoryWatch::RecordFailureOnThisThread(Failure kind, std::string what) {
  HostMemoryWatch* watch = current_watch;
  if (watch == nullptr || watch->failed()) return;
  watch->kind_ = kind;
  watch->failure_ = std::move(what);
}

absl::Status InitializeV8(const PlatformOptions& options) {
  absl::call_once(init_once, [&options] {
    // --expose-gc lets a worker ask for exactly one full collection after retiring instances
    // (GuestRuntime::CollectGarbage). Its only other effect, a `gc` function on each context's
    // global object, is out of reach of WebAssembly guests.
    //
    // --single-threaded-gc: a worker's heap holds one context and a few retired instances, so
    // V8's parallel and concurrent collection only hands small jobs to its platform threads and
    // back, a context switch each. Collecting on the worker's own thread cost 4-10% less CPU per
    // block under `block` (pair_bench BM_Ingest cpu_us_per_block, both guests, 4 runs each) and
    // changes nothing under `none`.
    const std::string flags = absl::StrCat("--expose-gc --single-threaded-gc ", options.v8_flags);
    v8::V8::SetFlagsFromString(flags.data(), flags.size());
    if (!v8::V8::InitializeICU()) {
      init_status = new absl::Status(absl::InternalError("V8 could not initialise ICU"));
      return;
    }
    platform = new TandemPlatform(v8::platform::NewDefaultPlatform());
    v8::V8::InitializePlatform(platform);
    if (!v8::V8::Initialize()) {
      init_status = new absl::Status(absl::InternalError("V8 failed to initialise"));
      return;
    }
    // Out-of-bounds wasm memory accesses become traps through guard regions and a signal
    // handler; Node installs it for itself, an embedder must ask.
    if (!v8::V8::EnableWebAssemblyTrapHandler(/*use_v8_signal_handler=*/true)) {
      init_status = new absl::Status(
          absl::InternalError("V8 could not install the WebAssembly trap handler"));
      return;
    }
    init_status = new absl::Status();
  });
  return *init_status;
}

std::string V8Version() { return v8::V8::GetVersion(); }

v8::Platform& V8Platform() { return *platform; }

void PumpForegroundTasks(v8::Isolate* isolate) {
  while (v8::platform::PumpMessageLoop(&platform->inner(), isolate,
                                       v8::platform::MessageLoopBehavior::kDoNotWait)) {
  }
}

void NotifyIsolateShutdown(v8::Isolate* isolate) {
  v8::platform::NotifyIsolateShutdown(&platform->inner(), isolate);
}

void SetGuestMemoryBudget(uint64_t bytes) { platform->ledger().SetBudget(bytes); }

GuestMemoryLedger::Usage GuestMemoryUsage() { return platform->ledger().usage(); }

void SetGuestMemoryReclaimer(GuestMemoryReclaimer* reclaimer) {
  platform->ledger().SetReclaimer(reclaimer);
}

void RemoveGuestMemoryReclaimer(GuestMemoryReclaimer* reclaimer) {
  platform->ledger().RemoveReclaimer(reclaimer);
}

void ReleaseGuestMemory(void* data, size_t length) {
  // The pages must go back at once, which is what the budget counts on, and the range must become
  // inaccessible too, which takes it off what the kernel charges as writable memory (RLIMIT_DATA,
  // and the commit charge under strict overcommit): without that, a retired guest's gigabytes
  // stayed charged until the next collection, and a host near its limit failed V8's own heap
  // commits, which abort the process (reliability_memory caught it). A fresh inaccessible mapping
  // over the range does both in one call, as V8's own DecommitPages does, so the other threads'
  // TLBs are flushed once, not once for madvise and again for mprotect (measured: those flushes'
  // IPIs were 8% of a block's CPU under `block`). Nothing touches the range again: the guest never
  // runs, and V8 only unmaps the reservation when it collects the buffer.
  if (mmap(data, length, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
           0) != MAP_FAILED) {
    platform->ledger().Uncommit(Address(data), length);
    return;
  }
  // Refused (the process is at its limit of mappings): the two steps, which cannot be refused for
  // that reason. A failed mprotect would only leave the pages charged until the collection.
  if (madvise(data, length, MADV_DONTNEED) == 0) platform->ledger().Uncommit(Address(data), length);
  mprotect(data, length, PROT_NONE);
}

void SetHostMemoryFailureThresholdForTesting(size_t bytes) {
  failure_threshold_for_testing.store(bytes, std::memory_order_relaxed);
}

}  // namespace tandem::engine
