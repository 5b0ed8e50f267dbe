package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// The registry floors: what the registry itself needs to take in or hand
// out the weights file when the client does no work at all. They are
// measured in-process with net/http (no process start), so they bound
// from below what any client can reach against that registry on this
// machine.
const (
	opRawPut  = "floor: raw upload, PATCH"
	opRawMono = "floor: raw upload, PUT"
	opRawGet  = "floor: raw download"
	rawRepo   = "bench/raw"
)

// rawUpload sends the weights file the way airlock push does (POST, one
// PATCH with the whole file, PUT ?digest=), but with the digest known in
// advance, so the client neither hashes nor copies: net/http sends an
// *os.File body with sendfile.
func (b *runner) rawUpload(ctx context.Context, host string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	c := benchkit.RawClient()
	defer c.CloseIdleConnections()
	f, err := os.Open(b.weights)
	if err != nil {
		return 0, err
	}
	defer f.Close()

	start := time.Now()
	base := &url.URL{Scheme: "http", Host: host, Path: "/v2/" + rawRepo + "/blobs/uploads/"}
	loc, err := benchkit.RawDo(ctx, c, http.MethodPost, base, nil, 0, nil, http.StatusAccepted)
	if err != nil {
		return 0, err
	}
	hdr := http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {fmt.Sprintf("0-%d", b.cfg.size-1)}}
	loc, err = benchkit.RawDo(ctx, c, http.MethodPatch, loc, f, b.cfg.size, hdr, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return 0, err
	}
	q := loc.Query()
	q.Set("digest", "sha256:"+b.digest)
	loc.RawQuery = q.Encode()
	if _, err := benchkit.RawDo(ctx, c, http.MethodPut, loc, nil, 0, http.Header{"Content-Type": {"application/octet-stream"}}, http.StatusCreated); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// rawUploadMono sends the weights file as the body of the PUT that closes
// the upload session (POST, then PUT ?digest= with the whole file), the
// way regctl and oras-go send a blob whose digest they know.
func (b *runner) rawUploadMono(ctx context.Context, host string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	c := benchkit.RawClient()
	defer c.CloseIdleConnections()
	f, err := os.Open(b.weights)
	if err != nil {
		return 0, err
	}
	defer f.Close()

	start := time.Now()
	base := &url.URL{Scheme: "http", Host: host, Path: "/v2/" + rawRepo + "/blobs/uploads/"}
	loc, err := benchkit.RawDo(ctx, c, http.MethodPost, base, nil, 0, nil, http.StatusAccepted)
	if err != nil {
		return 0, err
	}
	q := loc.Query()
	q.Set("digest", "sha256:"+b.digest)
	loc.RawQuery = q.Encode()
	if _, err := benchkit.RawDo(ctx, c, http.MethodPut, loc, f, b.cfg.size, http.Header{"Content-Type": {"application/octet-stream"}}, http.StatusCreated); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// rawDownload GETs the blob rawUpload stored and discards it.
func (b *runner) rawDownload(ctx context.Context, host string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	c := benchkit.RawClient()
	defer c.CloseIdleConnections()
	u := "http://" + host + "/v2/" + rawRepo + "/blobs/sha256:" + b.digest
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 1<<20))
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	if n != b.cfg.size {
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", u, n, b.cfg.size)
	}
	return d, nil
}

// rawDelete removes the floor's blob so the in-memory registry can free it.
func (b *runner) rawDelete(ctx context.Context, host string) error {
	u := &url.URL{Scheme: "http", Host: host, Path: "/v2/" + rawRepo + "/blobs/sha256:" + b.digest}
	_, err := benchkit.RawDo(ctx, benchkit.RawClient(), http.MethodDelete, u, nil, 0, nil, http.StatusAccepted)
	return err
}
