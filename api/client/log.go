package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// AuditEvent is one line of the audit log stream.
type AuditEvent struct {
	Time     time.Time
	Request  AuditRequest
	Response AuditResponse
}

// AuditRequest describes the audited request.
type AuditRequest struct {
	IP       string
	Path     string
	Identity string
	Enclave  string // sent by enclave-aware servers, else ""
}

// AuditResponse describes the answer to the audited request.
type AuditResponse struct {
	StatusCode int
	// Time is how long the server took; the wire value is an integer in
	// milliseconds, as current KES servers write it.
	Time time.Duration
}

// UnmarshalJSON decodes {"time","request":{"ip","path","identity","enclave"},
// "response":{"code","time"}}.
func (e *AuditEvent) UnmarshalJSON(b []byte) error {
	var raw struct {
		Time    time.Time `json:"time"`
		Request struct {
			IP       string `json:"ip"`
			Path     string `json:"path"`
			Identity string `json:"identity"`
			Enclave  string `json:"enclave"`
		} `json:"request"`
		Response struct {
			Code int     `json:"code"`
			Time float64 `json:"time"`
		} `json:"response"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*e = AuditEvent{
		Time:     raw.Time,
		Request:  AuditRequest(raw.Request),
		Response: AuditResponse{StatusCode: raw.Response.Code, Time: scaled(raw.Response.Time, time.Millisecond)},
	}
	return nil
}

// ErrorEvent is one line of the error log stream.
type ErrorEvent struct {
	Message string `json:"message"`
}

// Stream yields the events of a log stream (newline-delimited JSON) until the
// server ends it, the context given to AuditLog/ErrorLog ends, or Close is
// called. A Stream must be used by one goroutine at a time; to stop a Next
// that blocks in another goroutine, cancel the context.
type Stream[T any] struct {
	ctx   context.Context
	body  io.ReadCloser
	dec   *json.Decoder
	event T
	err   error
}

// Next decodes the next event and reports whether there is one. After it
// returns false, Err tells why.
func (s *Stream[T]) Next() bool {
	if s.err != nil {
		return false
	}
	var ev T
	if err := s.dec.Decode(&ev); err != nil {
		switch {
		case s.ctx.Err() != nil:
			s.err = fmt.Errorf("client: log stream: %w", s.ctx.Err())
		case errors.Is(err, io.EOF):
			s.err = io.EOF
		default:
			s.err = fmt.Errorf("client: log stream: %w", err)
		}
		return false
	}
	s.event = ev
	return true
}

// Event returns the event decoded by the last successful Next.
func (s *Stream[T]) Event() T { return s.event }

// Err returns nil while the stream runs and when the server ended it cleanly;
// otherwise the error that ended it, which wraps the context's error when the
// context ended it (errors.Is(err, context.Canceled) etc.).
func (s *Stream[T]) Err() error {
	if errors.Is(s.err, io.EOF) {
		return nil
	}
	return s.err
}

// Close ends the stream and releases the connection. It is safe to call more
// than once; the result of closing the body is returned.
func (s *Stream[T]) Close() error { return s.body.Close() }

// AuditLog subscribes to the audit log (GET /v1/log/audit). Events arrive
// until ctx ends or the stream is closed. It fails like any other request
// when no endpoint answers with 200; the attempt timeout, if set, applies
// only until the response headers arrive.
func (c *Client) AuditLog(ctx context.Context) (*Stream[AuditEvent], error) {
	return openStream[AuditEvent](ctx, c, "/v1/log/audit")
}

// ErrorLog subscribes to the error log (GET /v1/log/error), like AuditLog.
func (c *Client) ErrorLog(ctx context.Context) (*Stream[ErrorEvent], error) {
	return openStream[ErrorEvent](ctx, c, "/v1/log/error")
}

func openStream[T any](ctx context.Context, c *Client, path string) (*Stream[T], error) {
	resp, err := c.send(ctx, &request{method: "GET", path: path, idempotent: true, stream: true})
	if err != nil {
		return nil, err
	}
	return &Stream[T]{ctx: ctx, body: resp.Body, dec: json.NewDecoder(resp.Body)}, nil
}
