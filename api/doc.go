// Package api is Keyraft's HTTP layer: the KES v1 route table, TLS client
// identity, the policy check, one handler file per resource (key, policy,
// identity, status, log), KES-compatible JSON errors, Prometheus metrics and
// the audit stream.
//
// The package knows nothing about Raft, the keystore or key material beyond
// what crosses the Backend interface; *enclave.Service implements Backend and
// cmd wires the two together. TLS is configured by the caller: handlers read
// only r.TLS. A *Server is an http.Handler; NewHTTPServer wraps it in an
// *http.Server with KES's server-level timeouts and HTTP/2.
//
// Wire compatibility follows the KES reference (kes-api.md §1): exact error
// status and message pairs, POST accepted for PUT routes, 405 with an Accept
// header, 404 text/plain for unknown paths, request bodies limited per route,
// empty successes answered with 200 and Content-Length 0.
package api
