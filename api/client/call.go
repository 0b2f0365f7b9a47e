package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
)

// call sends req and decodes a JSON response into out (skipped when out is
// nil). The buffered response body is cleared after decoding because it may
// hold key material.
func (c *Client) call(ctx context.Context, req *request, out any) error {
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	body, err := io.ReadAll(resp.Body) // already buffered in memory
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", req.method, req.path, err)
	}
	defer clear(body)
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("client: %s %s: invalid response: %w", req.method, req.path, err)
	}
	return nil
}

// jsonBody encodes v as a request body. The encoding of values the client
// builds cannot fail; an error is still returned, never ignored.
func jsonBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("client: encode request: %w", err)
	}
	return b, nil
}

// resource returns prefix followed by the path-escaped name as one segment.
func resource(prefix, name string) string {
	return prefix + url.PathEscape(name)
}
