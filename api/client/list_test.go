package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// pagingHandler serves names in pages of pageSize and honours ?continue=
// (inclusive), as the Keyraft server must.
func pagingHandler(names []string, pageSize int, honourContinue bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		prefix := strings.TrimPrefix(r.URL.Path, "/v1/key/list/")
		start := ""
		if honourContinue {
			start = r.URL.Query().Get("continue")
		}
		var page []string
		next := ""
		for _, n := range names {
			if !strings.HasPrefix(n, prefix) || n < start {
				continue
			}
			if len(page) == pageSize {
				next = n
				break
			}
			page = append(page, n)
		}
		replyJSON(w, map[string]any{"names": page, "continue_at": next})
	}
}

func TestListAllKeysPaging(t *testing.T) {
	var names []string
	for i := range 2500 {
		names = append(names, fmt.Sprintf("key-%04d", i))
	}
	names = append(names, "other")
	sort.Strings(names)
	srv := newTestServer(t, pagingHandler(names, 1024, true))
	c := newClient(t, []string{srv.URL})
	got, err := c.ListAllKeys(context.Background(), "key-")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, names[:2500]) {
		t.Fatalf("got %d names (first %v), want 2500", len(got), got[:min(3, len(got))])
	}
	if srv.hits.Load() != 3 {
		t.Fatalf("%d page requests, want 3", srv.hits.Load())
	}
	if q := srv.last(t).Query; q != "continue=key-2048" {
		t.Fatalf("last query %q", q)
	}
}

func TestListAllKeysStalled(t *testing.T) {
	names := []string{"a", "b", "c"}
	srv := newTestServer(t, pagingHandler(names, 2, false)) // ignores ?continue
	got, err := newClient(t, []string{srv.URL}).ListAllKeys(context.Background(), "")
	if !errors.Is(err, ErrListStalled) {
		t.Fatalf("err = %v, want ErrListStalled", err)
	}
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("partial result %v", got)
	}
}

func TestLegacyListing(t *testing.T) {
	for _, tc := range []struct {
		body    string
		want    []string
		wantErr string
	}{
		{"{\"name\":\"a\"}\n{\"name\":\"b\"}\n", []string{"a", "b"}, ""},
		{"{\"identity\":\"x\",\"admin\":true}\n", []string{"x"}, ""},
		{"{\"name\":\"a\"}\n{\"error\":\"keystore offline\"}\n", []string{"a"}, "keystore offline"},
		{"", nil, ""},
	} {
		srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Write([]byte(tc.body))
		})
		got, next, err := newClient(t, []string{srv.URL}).ListKeys(context.Background(), "", "")
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.wantErr)
		}
		if !reflect.DeepEqual(got, tc.want) || next != "" {
			t.Errorf("%q: got %v %q, want %v", tc.body, got, next, tc.want)
		}
	}
}
