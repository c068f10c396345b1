// The node's ZMQ `hashblock` notifications (bitcoind / litecoind -zmqpubhashblock=ADDRESS), read
// with Debian's libzmq through cppzmq: each one wakes the follower at once instead of at its next
// poll. Polling goes on beside it, so a lost notification only costs one poll interval.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "tools/follow/wakeup.h"

namespace tandem::follow {

// Threading: Start makes a thread that owns the ZMQ socket; the destructor stops and joins it.
class BlockNotifier {
 public:
  // Subscribes to `hashblock` at `endpoint` (e.g. tcp://127.0.0.1:28332). ZMQ connects in the
  // background and reconnects by itself when the node restarts. INVALID_ARGUMENT when libzmq
  // refuses the endpoint.
  static absl::StatusOr<std::unique_ptr<BlockNotifier>> Start(const std::string& endpoint,
                                                              Wakeup& wakeup);
  ~BlockNotifier();
  BlockNotifier(const BlockNotifier&) = delete;
  BlockNotifier& operator=(const BlockNotifier&) = delete;

 private:
  struct Socket;
  BlockNotifier(std::unique_ptr<Socket> socket, Wakeup& wakeup);
  void Run();

  const std::unique_ptr<Socket> socket_;  // Used by thread_ only, once started.
  Wakeup& wakeup_;
  // Set by the destructor, read by the thread between receives (which time out every 200 ms).
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tandem::follow
