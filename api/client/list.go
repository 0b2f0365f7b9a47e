package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
)

// ErrListStalled is returned by the ListAll helpers when the server answers a
// page request with the same continue_at it was given, i.e. it does not
// support the "continue" query parameter.
var ErrListStalled = errors.New("client: listing does not advance: the server ignores the 'continue' parameter")

// listPage fetches one page of a list endpoint. The answer is either the
// current JSON object {"names"|"identities":[...],"continue_at":"..."} or the
// legacy NDJSON stream of {"name"|"identity":...} objects, possibly ending in
// {"error":"..."}.
func (c *Client) listPage(ctx context.Context, route, prefix, continueAt string) ([]string, string, error) {
	req := &request{method: "GET", path: resource(route, prefix), enclave: true, idempotent: true}
	if continueAt != "" {
		req.query = url.Values{"continue": {continueAt}}
	}
	resp, err := c.send(ctx, req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // already buffered in memory
	if err != nil {
		return nil, "", fmt.Errorf("client: GET %s: %w", req.path, err)
	}
	if isNDJSON(resp.Header.Get("Content-Type")) {
		names, err := parseLegacyListing(body)
		if err != nil {
			return names, "", fmt.Errorf("client: GET %s: %w", req.path, err)
		}
		return names, "", nil
	}
	var page struct {
		Names      []string `json:"names"`
		Identities []string `json:"identities"`
		ContinueAt string   `json:"continue_at"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, "", fmt.Errorf("client: GET %s: invalid response: %w", req.path, err)
	}
	names := page.Names
	if names == nil {
		names = page.Identities
	}
	return names, page.ContinueAt, nil
}

// parseLegacyListing decodes a KES 2023 NDJSON listing. A trailing
// {"error":"..."} object becomes an error returned with the names before it.
func parseLegacyListing(body []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var names []string
	for {
		var item struct {
			Name     string `json:"name"`
			Identity string `json:"identity"`
			Error    string `json:"error"`
		}
		if err := dec.Decode(&item); errors.Is(err, io.EOF) {
			return names, nil
		} else if err != nil {
			return names, fmt.Errorf("invalid listing: %w", err)
		}
		switch {
		case item.Error != "":
			return names, errors.New(item.Error)
		case item.Name != "":
			names = append(names, item.Name)
		case item.Identity != "":
			names = append(names, item.Identity)
		}
	}
}

// listAll follows the pages of a listing. Names already returned are not
// repeated.
func listAll(ctx context.Context, prefix string, page func(ctx context.Context, prefix, continueAt string) ([]string, string, error)) ([]string, error) {
	var all []string
	seen := map[string]struct{}{}
	cont := ""
	for {
		names, next, err := page(ctx, prefix, cont)
		for _, n := range names {
			if _, ok := seen[n]; !ok {
				seen[n] = struct{}{}
				all = append(all, n)
			}
		}
		if err != nil {
			return all, err
		}
		if next == "" {
			return all, nil
		}
		if next == cont {
			return all, fmt.Errorf("%w (continue_at %q)", ErrListStalled, next)
		}
		cont = next
	}
}

// errCount reports a response with the wrong number of items.
func errCount(want, got int) error {
	return fmt.Errorf("client: response has %d items, want %d", got, want)
}
