package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// streamWriteTimeout bounds a single event write to a log-stream client, so
// that a client that stops reading is disconnected instead of holding the
// stream forever.
const streamWriteTimeout = 30 * time.Second

func (s *Server) logError(w http.ResponseWriter, req *request) error {
	return s.stream(w, req, s.errorStream, s.metrics.errorEvents)
}

func (s *Server) logAudit(w http.ResponseWriter, req *request) error {
	return s.stream(w, req, s.auditStream, s.metrics.auditEvents)
}

// stream sends m's events to the client as NDJSON until the client goes
// away or the Server is closed. The subscription exists before the response
// headers are sent, so a client that has seen the headers sees every later
// event (unless it falls more than streamBuffer events behind).
func (s *Server) stream(w http.ResponseWriter, req *request, m *Multicast, delivered prometheus.Counter) error {
	sub := m.Subscribe()
	defer sub.Cancel()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		s.log.Debug("log stream cannot be flushed", "path", req.URL.Path, "error", err)
		return nil
	}
	ctx := req.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case event, ok := <-sub.C:
			if !ok {
				return nil
			}
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := w.Write(event); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			// HTTP/2 resets a stream whose deadline passes even when idle.
			_ = rc.SetWriteDeadline(time.Time{})
			delivered.Inc()
		}
	}
}

// ErrorLogWriter returns a writer whose lines reach /v1/log/error
// subscribers, each as {"message":"<line>"}. Plug it into hclog so that
// error-level records are streamed, e.g.
//
//	logger := hclog.NewInterceptLogger(opts)
//	srv, _ := api.New(api.Config{Logger: logger, ...})
//	logger.RegisterSink(hclog.NewSinkAdapter(&hclog.LoggerOptions{
//		Level: hclog.Error, Output: srv.ErrorLogWriter(),
//	}))
//
// Writes never fail and never block: without subscribers they cost almost
// nothing, and a slow subscriber loses lines. The writer is safe for
// concurrent use and does not retain p.
func (s *Server) ErrorLogWriter() io.Writer { return errorLogWriter{s.errorStream} }

type errorLogWriter struct{ m *Multicast }

func (w errorLogWriter) Write(p []byte) (int, error) {
	if w.m.Subscribers() == 0 {
		return len(p), nil
	}
	for line := range bytes.Lines(p) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			continue
		}
		b, err := json.Marshal(struct {
			Message string `json:"message"`
		}{string(line)})
		if err != nil {
			continue // a struct of one string always encodes
		}
		w.m.Publish(append(b, '\n'))
	}
	return len(p), nil
}
