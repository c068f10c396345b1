# tandem_metrics: the Prometheus metrics of tandemd (server/metrics.*, server/process_metrics.*,
# server/write_path_metrics.*).
# Included from server/CMakeLists.txt (include(metrics.cmake)); tandem_server links it.
add_library(tandem_metrics
  ${CMAKE_CURRENT_LIST_DIR}/metrics.cc
  ${CMAKE_CURRENT_LIST_DIR}/process_metrics.cc
  ${CMAKE_CURRENT_LIST_DIR}/write_path_metrics.cc)
target_include_directories(tandem_metrics PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(tandem_metrics
  PUBLIC tandem_proxy tandem_store prometheus-cpp::core prometheus-cpp::pull gRPC::grpc++
         absl::status absl::statusor absl::time absl::flat_hash_map tandem_proc_stat
  PRIVATE absl::strings tandem_warnings)
