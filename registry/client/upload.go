package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/internal/writeback"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote"
)

// streamBlob uploads a file whose digest is not yet known and returns it:
// POST opens an upload session, one PATCH streams the file while it is
// hashed, and PUT ?digest= closes the session, so the registry verifies
// what this side computed
// (distribution-spec v1.1, "Pushing a blob in chunks").
func (c *Client) streamBlob(ctx context.Context, repo *remote.Repository, ref registry.Ref, e pack.Entry, progress pack.Progress) (digest.Digest, error) {
	base := url.URL{Scheme: c.scheme(ref), Host: ref.Registry, Path: "/v2/" + ref.Repository + "/blobs/uploads/"}
	// The POST carries no body, so an authentication challenge on it can
	// be answered by retrying; the PATCH that follows reuses the token.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := do(repo.Client, req, http.StatusAccepted)
	if err != nil {
		return "", fmt.Errorf("starting upload: %w", err)
	}
	loc, err := location(&base, resp)
	if err != nil {
		return "", err
	}

	f, err := os.Open(e.Abs)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	var report func(int64)
	if progress != nil {
		report = func(n int64) { progress(e.Path, n) }
	}
	body := newHashingPipe(f, h, report)
	defer body.cancel()
	req, err = http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), body)
	if err != nil {
		return "", err
	}
	req.ContentLength = e.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("0-%d", e.Size-1))
	resp, err = do(repo.Client, req, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return "", fmt.Errorf("sending data: %w", err)
	}
	if n, err := body.Wait(); err != nil {
		return "", fmt.Errorf("reading %s: %w", e.Path, err)
	} else if n != e.Size {
		return "", fmt.Errorf("file changed while uploading: read %d bytes, listed as %d", n, e.Size)
	}
	d := pack.NewDigest(h)
	if loc, err = location(loc, resp); err != nil {
		return "", err
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), nil)
	if err != nil {
		return "", err
	}
	req.ContentLength = 0
	req.Header.Set("Content-Type", "application/octet-stream")
	if _, err = do(repo.Client, req, http.StatusCreated); err != nil {
		return "", fmt.Errorf("closing upload of %s: %w", d, err)
	}
	return d, nil
}

// location resolves an upload Location header, which may be relative.
func location(base *url.URL, resp *http.Response) (*url.URL, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return nil, fmt.Errorf("registry sent no upload location (%s %s)", resp.Request.Method, resp.Request.URL.Redacted())
	}
	u, err := base.Parse(l)
	if err != nil {
		return nil, fmt.Errorf("bad upload location %q: %w", l, err)
	}
	return u, nil
}

// do sends a request and closes the response, failing with the
// registry's own error text unless the status is one of ok.
func do(c remote.Client, req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	return nil, responseError(resp)
}

// hashingPipe is an upload body that reads and hashes the file in its own
// goroutine, a buffer ahead of the HTTP transport, so reading, hashing and
// sending overlap instead of running one after the other in net/http's
// write loop. Every byte is read from disk once.
type hashingPipe struct {
	full    chan pipeChunk
	free    chan *[]byte
	stop    chan struct{}
	done    chan struct{} // closed when the producer has exited
	cur     pipeChunk
	off     int
	n       int64 // bytes produced; valid after done
	readErr error // valid after done
	once    sync.Once
}

type pipeChunk struct {
	b *[]byte
	n int
}

func newHashingPipe(src io.Reader, h hash.Hash, progress func(int64)) *hashingPipe {
	const nbuf = 4
	p := &hashingPipe{
		full: make(chan pipeChunk, nbuf),
		free: make(chan *[]byte, nbuf),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range nbuf {
		p.free <- pack.Buffer()
	}
	go func() {
		defer close(p.done)
		defer close(p.full)
		for {
			var b *[]byte
			select {
			case b = <-p.free:
			case <-p.stop:
				return
			}
			n, err := writeback.Fill(src, *b)
			if n > 0 {
				h.Write((*b)[:n])
				p.n += int64(n)
				select {
				case p.full <- pipeChunk{b, n}:
				case <-p.stop:
					return
				}
				if progress != nil {
					progress(int64(n))
				}
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				p.readErr = err
				return
			}
		}
	}()
	return p
}

// Read hands out the hashed buffers in order.
func (p *hashingPipe) Read(out []byte) (int, error) {
	for p.cur.b == nil || p.off == p.cur.n {
		if p.cur.b != nil {
			p.free <- p.cur.b // never blocks: at most nbuf buffers exist
			p.cur = pipeChunk{}
		}
		c, ok := <-p.full
		if !ok {
			<-p.done
			if p.readErr != nil {
				return 0, p.readErr
			}
			return 0, io.EOF
		}
		p.cur, p.off = c, 0
	}
	n := copy(out, (*p.cur.b)[p.off:p.cur.n])
	p.off += n
	return n, nil
}

// Close stops the producer; net/http calls it when the request ends.
func (p *hashingPipe) Close() error {
	p.cancel()
	return nil
}

func (p *hashingPipe) cancel() { p.once.Do(func() { close(p.stop) }) }

// Wait returns how many bytes were read and hashed, once the producer is
// done, and the read error if there was one.
func (p *hashingPipe) Wait() (int64, error) {
	<-p.done
	return p.n, p.readErr
}
