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

// Paging modes of a test server.
const (
	ignoreContinue = iota // real KES: ?continue is ignored
	inclusive             // continue_at = first name not returned; resume at it
	exclusive             // continue_at = last name returned; resume after it (Keyraft)
)

// pagingHandler serves names in pages of pageSize.
func pagingHandler(names []string, pageSize, mode int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		prefix := strings.TrimPrefix(r.URL.Path, "/v1/key/list/")
		cont := r.URL.Query().Get("continue")
		var matching []string
		for _, n := range names {
			if !strings.HasPrefix(n, prefix) {
				continue
			}
			if cont != "" && (mode == inclusive && n < cont || mode == exclusive && n <= cont) {
				continue
			}
			matching = append(matching, n)
		}
		page, next := matching, ""
		if len(matching) > pageSize {
			page = matching[:pageSize]
			next = matching[pageSize]
			if mode == exclusive {
				next = matching[pageSize-1]
			}
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
	for mode, lastQuery := range map[int]string{inclusive: "continue=key-2048", exclusive: "continue=key-2047"} {
		srv := newTestServer(t, pagingHandler(names, 1024, mode))
		c := newClient(t, []string{srv.URL})
		got, err := c.ListAllKeys(context.Background(), "key-")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, names[:2500]) {
			t.Fatalf("mode %d: got %d names (first %v), want 2500", mode, len(got), got[:min(3, len(got))])
		}
		if srv.hits.Load() != 3 {
			t.Fatalf("mode %d: %d page requests, want 3", mode, srv.hits.Load())
		}
		if q := srv.last(t).Query; q != lastQuery {
			t.Fatalf("mode %d: last query %q, want %q", mode, q, lastQuery)
		}
	}
}

func TestListAllKeysStalled(t *testing.T) {
	names := []string{"a", "b", "c"}
	srv := newTestServer(t, pagingHandler(names, 2, ignoreContinue))
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
