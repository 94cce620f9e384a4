// Whether a non-streaming request's client is still there. cpp-httplib 0.11 gives handlers no
// connection state, so the handler finds its connection's socket by the peer address.
#pragma once

#include <string>

namespace llada2::server {

// The socket connected to (remote_addr, remote_port) on local port `local_port`, or -1 (Linux:
// scans /proc/self/fd). While the handler runs, httplib keeps that socket open for it.
int find_connection_socket(const std::string& remote_addr, int remote_port, int local_port);

// True once the peer has closed the connection (checked without blocking or consuming data).
bool peer_closed(int fd);

}  // namespace llada2::server
