// ZMQ `hashblock` notifications. cppzmq's exceptions become absl::Status (at start) or end the
// thread with a line on stderr (later: polling still finds every block) here, and nowhere else.
#include "tools/follow/block_notifier.h"

#include <iostream>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "absl/strings/str_cat.h"

namespace tandem::follow {

struct BlockNotifier::Socket {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::sub};
};

absl::StatusOr<std::unique_ptr<BlockNotifier>> BlockNotifier::Start(const std::string& endpoint,
                                                                    Wakeup& wakeup) {
  auto socket = std::make_unique<Socket>();
  try {
    socket->socket.set(zmq::sockopt::subscribe, "hashblock");
    socket->socket.set(zmq::sockopt::rcvtimeo, 200);
    socket->socket.set(zmq::sockopt::linger, 0);
    socket->socket.connect(endpoint);
  } catch (const zmq::error_t& error) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot subscribe to ZMQ notifications at '", endpoint, "': ", error.what()));
  }
  return std::unique_ptr<BlockNotifier>(new BlockNotifier(std::move(socket), wakeup));
}

BlockNotifier::BlockNotifier(std::unique_ptr<Socket> socket, Wakeup& wakeup)
    : socket_(std::move(socket)), wakeup_(wakeup), thread_([this] { Run(); }) {}

BlockNotifier::~BlockNotifier() {
  stopping_ = true;
  thread_.join();
}

void BlockNotifier::Run() {
  try {
    while (!stopping_) {
      // A notification is [topic, 32-byte hash, 4-byte sequence number].
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(socket_->socket, std::back_inserter(parts))) continue;  // Timeout.
      if (!parts.empty() && parts[0].to_string_view() == "hashblock") wakeup_.Notify();
    }
  } catch (const zmq::error_t& error) {
    std::cerr << "tandem-follow: ZMQ notifications stopped (" << error.what()
              << "); polling goes on\n";
  }
}

}  // namespace tandem::follow
