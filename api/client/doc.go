// Package client is a Go client for the KES v1 HTTP API, as served by Keyraft
// and by MinIO's KES. It is a clean-room implementation written from the
// protocol description; it does not use the KES SDKs.
//
// # Connecting
//
// A Client talks HTTPS to one or more endpoints ("host:port",
// "https://host:port"; "http://" is rewritten to https) and authenticates
// with a TLS client certificate, either given directly (WithCertificate) or
// derived from a KES API key (WithAPIKey). The server's identity for the
// caller is the SHA-256 of the certificate's public key (package
// internal/identity).
//
//	key, _ := identity.ParseAPIKey(os.Getenv("KES_API_KEY"))
//	c, err := client.New([]string{"node1:7373", "node2:7373"},
//		client.WithAPIKey(key), client.WithRootCAs(pool))
//	if err != nil { ... }
//	dek, err := c.GenerateKey(ctx, "minio-default", []byte(`{}`))
//	if errors.Is(err, client.ErrKeyNotFound) { ... }
//
// # Errors
//
// A non-2xx response becomes an Error (= kes.Error) carrying the status code
// and the server's message, so callers compare with errors.Is against
// ErrKeyNotFound, ErrKeyExists, ErrNotAllowed, ErrDecrypt and the other
// exported values, exactly as MinIO does. The pre-v0.19 messages "key does
// already exist" (400) and "prohibited by policy" (403) are mapped to
// ErrKeyExists and ErrNotAllowed. Transport failures are returned as
// *ConnError; a cancelled or expired context is returned wrapped so that
// errors.Is(err, context.DeadlineExceeded) holds.
//
// # Several endpoints
//
// Each request tries the endpoints in a random order. An endpoint that fails
// at the transport level or answers with a 5xx status other than 501 is
// benched for a cool-down (30 s by default, WithEndpointCooldown); after it
// the next request probes it once, and a success returns it to service.
// Benched endpoints are tried only as a last resort, after every healthy one
// failed. A 4xx or 501 answer is returned immediately without trying other
// endpoints.
//
// Which requests move on to the next endpoint after a failure:
//   - reads and crypto operations (every GET, generate, encrypt, decrypt,
//     bulk decrypt, hmac) fail over on transport errors and on 5xx other
//     than 501; repeating them is harmless;
//   - create, import and delete fail over only when the request provably
//     never reached a server (the connection could not be established or the
//     request was not completely written). A 5xx or a connection lost after
//     sending is returned, since the write may have been applied.
//
// Request bodies are byte slices, so a retried request resends the same body.
// A request whose context ends is not retried and does not bench the endpoint.
// WithAttemptTimeout bounds each single attempt so that a hanging node costs
// at most that long before the next node is tried.
//
// # Listing
//
// ListKeys, ListPolicies and ListIdentities return one page and the
// server's "continue_at" marker ("" on the last page). ListAllKeys and
// friends follow the pages by sending the same prefix with the query
// parameter ?continue=<continue_at>. The server must resume consistently
// with its marker: either the marker is the first name not yet returned (as
// in KES) and the next page starts at it, or the marker is the last name
// returned (as in Keyraft) and the next page starts after it; names repeated
// across pages are dropped. A server that ignores the parameter returns the
// same marker again, which the helpers report as ErrListStalled instead of
// looping. The legacy NDJSON listing format (KES 2023) is accepted too.
//
// A Client is safe for concurrent use; the per-endpoint health state is shared
// by every Client derived from it with Enclave or Node.
package client
