package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestAuditLogStream(t *testing.T) {
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write([]byte(`{"time":"2024-05-06T07:08:09.5Z","request":{"ip":"10.0.0.1","path":"/v1/key/create/k","identity":"id"},"response":{"code":200,"time":12}}` + "\n"))
		w.Write([]byte(`{"time":"2024-05-06T07:08:10Z","request":{"ip":"10.0.0.2","path":"/v1/key/delete/k","identity":"id","enclave":"e"},"response":{"code":404,"time":1}}` + "\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // keep the stream open like a server does
	})
	c := newClient(t, []string{srv.URL}, WithEnclave("e"), WithAttemptTimeout(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.AuditLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if req := srv.last(t); req.Path != "/v1/log/audit" || req.HasEnclave {
		t.Fatalf("request %s enclave=%v", req.Path, req.HasEnclave)
	}
	var events []AuditEvent
	for len(events) < 2 && s.Next() {
		events = append(events, s.Event())
	}
	if len(events) != 2 {
		t.Fatalf("got %d events: %v", len(events), s.Err())
	}
	want0 := AuditEvent{
		Time:     time.Date(2024, 5, 6, 7, 8, 9, 500_000_000, time.UTC),
		Request:  AuditRequest{IP: "10.0.0.1", Path: "/v1/key/create/k", Identity: "id"},
		Response: AuditResponse{StatusCode: 200, Time: 12 * time.Millisecond},
	}
	if events[0] != want0 {
		t.Fatalf("event 0 = %+v, want %+v", events[0], want0)
	}
	if events[1].Request.Enclave != "e" || events[1].Response.StatusCode != 404 {
		t.Fatalf("event 1 = %+v", events[1])
	}
	cancel()
	if s.Next() {
		t.Fatal("Next after cancel returned an event")
	}
	if !errors.Is(s.Err(), context.Canceled) {
		t.Fatalf("Err = %v, want context.Canceled", s.Err())
	}
}

func TestErrorLogStreamEnds(t *testing.T) {
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write([]byte(`{"message":"time=x level=ERROR msg=boom"}` + "\n"))
	})
	s, err := newClient(t, []string{srv.URL}).ErrorLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Next() || s.Event().Message != "time=x level=ERROR msg=boom" {
		t.Fatalf("event %+v err %v", s.Event(), s.Err())
	}
	if s.Next() || s.Err() != nil {
		t.Fatalf("clean end: Next true or Err = %v", s.Err())
	}
	if srv.last(t).Path != "/v1/log/error" {
		t.Fatal("wrong path")
	}
}

func TestStreamOpenError(t *testing.T) {
	srv := newTestServer(t, statusHandler(403))
	_, err := newClient(t, []string{srv.URL}).AuditLog(context.Background())
	if !errors.Is(err, Error{Code: 403, Message: "Forbidden"}) {
		t.Fatalf("err = %v", err)
	}
}

func TestStreamInvalidJSON(t *testing.T) {
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not json\n"))
	})
	s, err := newClient(t, []string{srv.URL}).ErrorLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Next() || s.Err() == nil {
		t.Fatal("invalid JSON not reported")
	}
}
