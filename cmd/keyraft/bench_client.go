package main

import (
	"crypto/tls"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/keyraft/keyraft/api/client"
)

// protoRecorder collects the application protocols (ALPN) that the client's
// TLS connections negotiated.
type protoRecorder struct {
	mu     sync.Mutex
	protos map[string]bool
}

// record notes the negotiated protocol of one connection; none means
// HTTP/1.1.
func (r *protoRecorder) record(alpn string) {
	if alpn == "" {
		alpn = "http/1.1"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.protos == nil {
		r.protos = map[string]bool{}
	}
	r.protos[alpn] = true
}

// String returns the protocols seen, comma-separated ("h2", "http/1.1"), or
// "" before the first connection.
func (r *protoRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]string, 0, len(r.protos))
	for p := range r.protos {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return strings.Join(ps, ",")
}

// newBenchClient builds the bench's client from the client flags, like
// clientFlags.client but with a transport of its own: the same TLS settings
// and HTTP/2 as client.New uses, or HTTP/1.1 only when http1 is set; up to
// idle idle connections per endpoint (Go's default of 2 would make HTTP/1.1
// workers open a new TLS connection for most requests); and every
// connection's negotiated protocol recorded in the returned recorder.
func newBenchClient(f *clientFlags, http1 bool, idle int) (*client.Client, *protoRecorder, error) {
	cs, err := f.settings()
	if err != nil {
		return nil, nil, err
	}
	rec := &protoRecorder{}
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{cs.cert},
		RootCAs:            cs.roots,
		InsecureSkipVerify: cs.insecure, //nolint:gosec // explicit opt-in (-k)
		VerifyConnection: func(cs tls.ConnectionState) error {
			rec.record(cs.NegotiatedProtocol)
			return nil
		},
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = conf
	tr.MaxIdleConns = 0 // no limit over all endpoints
	tr.MaxIdleConnsPerHost = idle
	if http1 {
		tr.ForceAttemptHTTP2 = false
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
	} else {
		tr.ForceAttemptHTTP2 = true
	}
	c, err := client.New(f.endpoints(),
		client.WithHTTPClient(&http.Client{Transport: tr}),
		client.WithAttemptTimeout(attemptTimeout),
		client.WithEnclave(cs.enclave))
	if err != nil {
		return nil, nil, err
	}
	return c, rec, nil
}
